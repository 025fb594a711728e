//! Administering accounts, the auth core's part: the admin flag, blocking, the
//! sessions of any user, and the rows an account leaves in the core's tables. What
//! an account holds elsewhere (rooms, history) and what must be told to live
//! sockets beyond the session bus is the caller's (`crate::admin`).
//!
//! The admin flag is read from the database on every admin request, never carried
//! in a token: revoking it takes effect on the next request, on every instance.

use entity::{activity, refresh_token, session, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Email, Error, SessionId, User, UserId,
    accounts::{self, now},
    db::Db,
    events::{RevocationReason, SessionBus},
    sessions::{SessionSettings, SessionStore, SessionSummary},
};

/// An account as an admin sees it.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: User,
    pub is_admin: bool,
    pub blocked_at: Option<OffsetDateTime>,
    pub blocked_reason: Option<String>,
}

impl From<user::Model> for Account {
    fn from(m: user::Model) -> Self {
        Self {
            user: User::from(&m),
            is_admin: m.is_admin,
            blocked_at: m.blocked_at,
            blocked_reason: m.blocked_reason,
        }
    }
}

/// The core's administration of accounts. Cheap to make: the server's shares the
/// core's session store (its cache and bus); `doorman users` makes one of its own.
#[derive(Clone)]
pub struct Admin {
    db: Db,
    sessions: SessionStore,
}

impl Admin {
    pub(super) fn new(db: Db, sessions: SessionStore) -> Self {
        Self { db, sessions }
    }

    /// For a process without a running core (`doorman users …`): session ends are
    /// published on `bus` only, for the caller to pass on.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub fn offline(db: Db, settings: SessionSettings, bus: SessionBus) -> Self {
        let sessions = SessionStore::new(db.clone(), settings, bus);
        Self { db, sessions }
    }

    /// The database, for the caller's part of a change (its own transaction).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Whether the user exists and holds the admin role, read now.
    pub async fn is_admin(&self, id: UserId) -> Result<bool, Error> {
        let flag: Option<bool> = user::Entity::find_by_id(id.0)
            .select_only()
            .column(user::Column::IsAdmin)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(flag == Some(true))
    }

    /// One account by id.
    pub async fn account(&self, id: UserId) -> Result<Option<Account>, Error> {
        Ok(accounts::find(&self.db, id.0).await?.map(Account::from))
    }

    /// One account by email (normalised first) or by id (the command line's).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub async fn lookup(&self, email_or_id: &str) -> Result<Option<Account>, Error> {
        if let Ok(id) = Uuid::parse_str(email_or_id.trim()) {
            return self.account(UserId(id)).await;
        }
        let email = Email::parse(email_or_id)?;
        Ok(accounts::find_by_email(&self.db, &email)
            .await?
            .map(Account::from))
    }

    /// Accounts whose email or display name contains `query` (any case), in
    /// creation order, `limit` at most after the account `after`; the second
    /// value is the next page's cursor while there is one.
    pub async fn search(
        &self,
        query: Option<&str>,
        after: Option<UserId>,
        limit: u64,
    ) -> Result<(Vec<Account>, Option<UserId>), Error> {
        let mut find = user::Entity::find()
            .order_by_asc(user::Column::Id)
            .limit(limit + 1);
        if let Some(q) = query.map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
            let like = || LikeExpr::new(pattern.clone()).escape('\\');
            find = find.filter(
                Expr::col(user::Column::Email)
                    .like(like())
                    .or(Func::lower(Expr::col(user::Column::DisplayName)).like(like())),
            );
        }
        if let Some(after) = after {
            find = find.filter(user::Column::Id.gt(after.0));
        }
        let mut rows = find.all(&self.db).await?;
        let next = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|r| UserId(r.id))
        } else {
            None
        };
        Ok((rows.into_iter().map(Account::from).collect(), next))
    }

    /// Grants or revokes the admin role; `false` for an unknown user.
    pub async fn set_admin(&self, id: UserId, admin: bool) -> Result<bool, Error> {
        let done = user::Entity::update_many()
            .col_expr(user::Column::IsAdmin, Expr::value(admin))
            .filter(user::Column::Id.eq(id.0))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected > 0)
    }

    /// Blocks an account: the flag first (a login racing this sees it after
    /// inserting its session, see `Auth::login`), then every session ends with
    /// `account_blocked`. Blocking a blocked account updates the reason and ends
    /// any session that slipped through. `None` for an unknown user, else how many
    /// sessions ended.
    pub async fn block(&self, id: UserId, reason: &str) -> Result<Option<u64>, Error> {
        // The first block's time stays; the reason is the latest.
        user::Entity::update_many()
            .col_expr(user::Column::BlockedAt, Expr::value(now()))
            .filter(user::Column::Id.eq(id.0))
            .filter(user::Column::BlockedAt.is_null())
            .exec(&self.db)
            .await?;
        let done = user::Entity::update_many()
            .col_expr(user::Column::BlockedReason, Expr::value(reason.to_owned()))
            .filter(user::Column::Id.eq(id.0))
            .exec(&self.db)
            .await?;
        if done.rows_affected == 0 {
            return Ok(None);
        }
        let ended = self
            .sessions
            .revoke_all(id, None, RevocationReason::AccountBlocked)
            .await?;
        Ok(Some(ended))
    }

    /// Lifts a block; `false` for an unknown user. Sessions the block ended stay
    /// ended: the user signs in again.
    pub async fn unblock(&self, id: UserId) -> Result<bool, Error> {
        let done = user::Entity::update_many()
            .col_expr(
                user::Column::BlockedAt,
                Expr::value(Option::<OffsetDateTime>::None),
            )
            .col_expr(
                user::Column::BlockedReason,
                Expr::value(Option::<String>::None),
            )
            .filter(user::Column::Id.eq(id.0))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected > 0)
    }

    /// The user's active sessions, newest first.
    pub async fn sessions(&self, id: UserId) -> Result<Vec<SessionSummary>, Error> {
        Ok(self
            .sessions
            .list_active(id)
            .await?
            .iter()
            .map(SessionSummary::from)
            .collect())
    }

    /// Ends one of the user's active sessions; `false` when it is not theirs or
    /// not active.
    pub async fn revoke_session(&self, id: UserId, session: SessionId) -> Result<bool, Error> {
        self.sessions
            .revoke_own(session, id, RevocationReason::Admin)
            .await
    }

    /// Ends every active session of the user; how many.
    pub async fn revoke_sessions(
        &self,
        id: UserId,
        reason: RevocationReason,
    ) -> Result<u64, Error> {
        self.sessions.revoke_all(id, None, reason).await
    }

    /// The first step of deleting an account: it is blocked (no new session from
    /// here on) and every session ends (`account_deleted`: its sockets close with
    /// 4403 `session_revoked`). `false` for an unknown user.
    pub async fn begin_delete(&self, id: UserId) -> Result<bool, Error> {
        let done = user::Entity::update_many()
            .col_expr(user::Column::BlockedAt, Expr::value(now()))
            .col_expr(
                user::Column::BlockedReason,
                Expr::value("account being deleted".to_owned()),
            )
            .filter(user::Column::Id.eq(id.0))
            .exec(&self.db)
            .await?;
        if done.rows_affected == 0 {
            return Ok(false);
        }
        self.sessions
            .revoke_all(id, None, RevocationReason::AccountDeleted)
            .await?;
        Ok(true)
    }
}

/// The account's rows in the core's tables, in `conn` (the deletion's
/// transaction): refresh tokens, sessions, activity, then the user. Explicit, not
/// left to the foreign keys' cascades, so that nothing depends on a backend
/// enforcing them.
pub async fn delete_rows(conn: &impl ConnectionTrait, id: UserId) -> Result<(), DbErr> {
    let sessions: Vec<Uuid> = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::UserId.eq(id.0))
        .into_tuple()
        .all(conn)
        .await?;
    for chunk in sessions.chunks(500) {
        refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::SessionId.is_in(chunk.iter().copied()))
            .exec(conn)
            .await?;
    }
    session::Entity::delete_many()
        .filter(session::Column::UserId.eq(id.0))
        .exec(conn)
        .await?;
    activity::Entity::delete_many()
        .filter(activity::Column::UserId.eq(id.0))
        .exec(conn)
        .await?;
    user::Entity::delete_by_id(id.0).exec(conn).await?;
    Ok(())
}

/// `s` with LIKE's wildcards and the escape character taken literally.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_in_a_search_are_taken_literally() {
        assert_eq!(escape_like("a%b_c\\d"), "a\\%b\\_c\\\\d");
        assert_eq!(escape_like("ann"), "ann");
    }
}
