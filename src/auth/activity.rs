//! The account activity log behind `GET /api/me/activity`: logins, failed logins,
//! sessions that ended, password changes and wrong current passwords given to a
//! password change, password resets and email verifications. Recording never
//! fails the operation it records: a lost line is logged, the login still succeeds.

use entity::activity;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ClientInfo, Error, RevocationReason, SessionId, UserId, db::Db};

/// How many events `GET /api/me/activity` shows, failed guesses apart…
pub const SHOWN: u64 = 100;
/// …and how many failed guesses (`login_failed`, `password_change_failed`,
/// `second_factor_failed`) on top:
/// someone guessing passwords must not push a real login (theirs, say) out of the
/// owner's view.
pub const SHOWN_FAILED: u64 = 20;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A successful login (`login`).
    Login,
    /// A login with a wrong password for this account (`login_failed`).
    LoginFailed,
    /// A session logged out (`logout`).
    Logout,
    /// A session revoked by the user, or by their password change (`session_revoked`).
    SessionRevoked,
    /// A refresh token used twice; its session was revoked as stolen (`refresh_reuse`).
    RefreshReuse,
    /// The password was changed (`password_changed`).
    PasswordChanged,
    /// A wrong current password at `POST /api/me/password`: someone holding one of
    /// the account's sessions is guessing the password.
    PasswordChangeFailed,
    /// The password was set from a mailed reset link (`password_reset`); every
    /// session of the account was revoked.
    PasswordReset,
    /// The email address was verified from a mailed link (`email_verified`).
    EmailVerified,
    /// A second factor was added: TOTP confirmed (`factor_added`).
    FactorAdded,
    /// A second factor was removed (`factor_removed`).
    FactorRemoved,
    /// A wrong TOTP or recovery code, at a login's second step or a
    /// re-authentication, or a wrong password at a re-authentication
    /// (`second_factor_failed`).
    SecondFactorFailed,
}

impl Kind {
    /// The name stored and shown for it, e.g. `login_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::LoginFailed => "login_failed",
            Kind::Logout => "logout",
            Kind::SessionRevoked => "session_revoked",
            Kind::RefreshReuse => "refresh_reuse",
            Kind::PasswordChanged => "password_changed",
            Kind::PasswordChangeFailed => "password_change_failed",
            Kind::PasswordReset => "password_reset",
            Kind::EmailVerified => "email_verified",
            Kind::FactorAdded => "factor_added",
            Kind::FactorRemoved => "factor_removed",
            Kind::SecondFactorFailed => "second_factor_failed",
        }
    }

    /// The event a session's early end is recorded as (`None`: not recorded).
    pub fn of_revocation(reason: RevocationReason) -> Option<Kind> {
        match reason {
            RevocationReason::Logout => Some(Kind::Logout),
            RevocationReason::RefreshTokenReuse => Some(Kind::RefreshReuse),
            // The account's activity goes with it.
            RevocationReason::Expired | RevocationReason::AccountDeleted => None,
            RevocationReason::Revoked
            | RevocationReason::RevokedAll
            | RevocationReason::RevokedOthers
            | RevocationReason::PasswordChanged
            | RevocationReason::Operator
            | RevocationReason::Admin
            | RevocationReason::AccountBlocked => Some(Kind::SessionRevoked),
        }
    }
}

/// One entry of the log.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened: a [`Kind`]'s name.
    pub kind: String,
    /// When it happened.
    pub at: OffsetDateTime,
    /// The client IP of the request, when known.
    pub ip: Option<String>,
    /// The request's `User-Agent`, when it sent one.
    pub user_agent: Option<String>,
    /// The session it concerns, when there is one.
    pub session_id: Option<Uuid>,
}

/// Appends an event; a failure is logged, not returned.
pub async fn record(
    db: &Db,
    user: UserId,
    kind: Kind,
    session: Option<SessionId>,
    client: Option<&ClientInfo>,
) {
    let row = activity::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.0),
        kind: Set(kind.as_str().to_owned()),
        at: Set(OffsetDateTime::now_utc()),
        ip: Set(client.and_then(|c| c.ip.clone())),
        // As long as a session keeps it: a client must not grow the table with a
        // 30 KB header per failed login.
        user_agent: Set(client
            .and_then(|c| c.user_agent.as_deref())
            .map(|ua| ua.chars().take(256).collect())),
        session_id: Set(session.map(|s| s.0)),
    };
    if let Err(e) = row.insert(db).await {
        tracing::warn!(error = %e, user_id = %user, kind = kind.as_str(), "activity not recorded");
    }
}

/// Appends one event of `kind` for each (user, session), in `conn` (a transaction:
/// the events commit with what they record).
pub async fn record_many(
    conn: &impl ConnectionTrait,
    kind: Kind,
    sessions: &[(Uuid, Uuid)],
) -> Result<(), DbErr> {
    let at = OffsetDateTime::now_utc();
    // Bounded statements (SQLite's and PostgreSQL's bind limits).
    for chunk in sessions.chunks(1000) {
        activity::Entity::insert_many(chunk.iter().map(|&(user, session)| activity::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user),
            kind: Set(kind.as_str().to_owned()),
            at: Set(at),
            ip: Set(None),
            user_agent: Set(None),
            session_id: Set(Some(session)),
        }))
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

/// A user's newest events, newest first.
pub async fn recent(db: &Db, user: UserId) -> Result<Vec<Event>, Error> {
    // Failed password guesses, shown in their own, smaller window.
    let failed = [
        Kind::LoginFailed,
        Kind::PasswordChangeFailed,
        Kind::SecondFactorFailed,
    ]
    .map(Kind::as_str);
    let newest = |failures: bool, limit: u64| {
        let kind = if failures {
            activity::Column::Kind.is_in(failed)
        } else {
            activity::Column::Kind.is_not_in(failed)
        };
        activity::Entity::find()
            .filter(activity::Column::UserId.eq(user.0))
            .filter(kind)
            .order_by_desc(activity::Column::At)
            .order_by_desc(activity::Column::Id)
            .limit(limit)
            .all(db)
    };
    let mut rows = newest(false, SHOWN).await?;
    rows.extend(newest(true, SHOWN_FAILED).await?);
    rows.sort_by_key(|r| std::cmp::Reverse((r.at, r.id)));
    Ok(rows
        .into_iter()
        .map(|m| Event {
            kind: m.kind,
            at: m.at,
            ip: m.ip,
            user_agent: m.user_agent,
            session_id: m.session_id,
        })
        .collect())
}
