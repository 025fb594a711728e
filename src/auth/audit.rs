//! The audit log: every admin action, from `/api/admin/*` or `doorman users …`,
//! with who did it (an admin's user id, or `cli`), what, to whom and when. Reads
//! are not recorded; changes are. Entries name accounts by id only, so deleting
//! an account leaves no email behind here, and they outlive the accounts they name.

use entity::audit_event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Error, UserId, db::Db};

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An admin, through `/api/admin/*`.
    User(UserId),
    /// An operator, through `doorman users …` (no account needed).
    Cli,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(id) => write!(f, "{id}"),
            Actor::Cli => f.write_str("cli"),
        }
    }
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    GrantAdmin,
    RevokeAdmin,
    Block,
    Unblock,
    RevokeSession,
    RevokeSessions,
    DeleteUser,
}

impl Action {
    /// The name stored and shown, e.g. `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::GrantAdmin => "grant_admin",
            Action::RevokeAdmin => "revoke_admin",
            Action::Block => "block",
            Action::Unblock => "unblock",
            Action::RevokeSession => "revoke_session",
            Action::RevokeSessions => "revoke_sessions",
            Action::DeleteUser => "delete_user",
        }
    }
}

/// One entry, as read back.
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor_id: String,
    pub action: String,
    pub target_id: Option<Uuid>,
    pub at: OffsetDateTime,
    pub detail: Option<String>,
}

/// Appends an entry in `conn` (a transaction: the entry commits with the change).
pub async fn record(
    conn: &impl ConnectionTrait,
    actor: Actor,
    action: Action,
    target: Option<UserId>,
    detail: Option<String>,
) -> Result<(), DbErr> {
    audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        actor_id: Set(actor.to_string()),
        action: Set(action.as_str().to_owned()),
        target_id: Set(target.map(|t| t.0)),
        at: Set(OffsetDateTime::now_utc()),
        // Bounded: a block's reason is bounded at the edge, but the log must not
        // grow by whatever a caller sends.
        detail: Set(detail.map(|d| d.chars().take(600).collect())),
    }
    .insert(conn)
    .await?;
    tracing::info!(
        security_event = "admin_action",
        actor = %actor,
        action = action.as_str(),
        target = ?target.map(|t| t.0),
        "admin action"
    );
    Ok(())
}

/// Entries newest first, `limit` at most, older than the entry `before`; the
/// second value is the cursor of the next page, while there is one.
pub async fn page(
    db: &Db,
    before: Option<Uuid>,
    limit: u64,
) -> Result<(Vec<Entry>, Option<Uuid>), Error> {
    let mut query = audit_event::Entity::find()
        .order_by_desc(audit_event::Column::Id)
        .limit(limit + 1);
    if let Some(before) = before {
        query = query.filter(audit_event::Column::Id.lt(before));
    }
    let mut rows = query.all(db).await?;
    let next = (rows.len() as u64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id)
    });
    Ok((
        rows.into_iter()
            .map(|m| Entry {
                actor_id: m.actor_id,
                action: m.action,
                target_id: m.target_id,
                at: m.at,
                detail: m.detail,
            })
            .collect(),
        next.flatten(),
    ))
}
