//! Session events. The auth core publishes one whenever a session opens or ends
//! early; whoever holds live connections (the WebSocket registry) subscribes. The
//! core never calls into its subscribers, so another instance can feed the same
//! stream.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::broadcast;

use super::{AuthError, SessionId, UserId, assurance::Method};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    /// The user logged out.
    Logout,
    /// The user revoked this session (`DELETE /api/sessions/{id}`).
    Revoked,
    /// The user revoked all sessions (`DELETE /api/sessions`).
    RevokedAll,
    /// The user revoked every other session (`DELETE /api/sessions/others`).
    RevokedOthers,
    /// The user changed their password, which ends every other session.
    PasswordChanged,
    /// A refresh token was used twice: presumed stolen.
    RefreshTokenReuse,
    /// The session reached its expiry.
    Expired,
    /// An operator revoked every session (`doorman keys retire <kid>
    /// --revoke-sessions`, when a signing key leaked).
    Operator,
    /// An admin revoked this session or all of the user's
    /// (`DELETE /api/admin/users/{id}/sessions[/{sid}]`).
    Admin,
    /// An admin blocked the account: every session ends, and its credentials then
    /// fail with `account_blocked`.
    AccountBlocked,
    /// An admin deleted the account (the session's row goes with it).
    AccountDeleted,
}

impl RevocationReason {
    /// Every reason, for documents that list them (`asyncapi.json`).
    pub const ALL: [RevocationReason; 11] = [
        RevocationReason::Logout,
        RevocationReason::Revoked,
        RevocationReason::RevokedAll,
        RevocationReason::RevokedOthers,
        RevocationReason::PasswordChanged,
        RevocationReason::RefreshTokenReuse,
        RevocationReason::Expired,
        RevocationReason::Operator,
        RevocationReason::Admin,
        RevocationReason::AccountBlocked,
        RevocationReason::AccountDeleted,
    ];

    /// What a credential of a session that ended this way now fails with: the one
    /// mapping from a session's end to `session_expired` / `session_revoked` (and so
    /// to the WebSocket close reason).
    pub fn ended_as(self) -> AuthError {
        match self {
            RevocationReason::Expired => AuthError::SessionExpired,
            RevocationReason::AccountBlocked => AuthError::AccountBlocked,
            _ => AuthError::SessionRevoked,
        }
    }

    /// The reason named by [`RevocationReason::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "logout" => Self::Logout,
            "revoked" => Self::Revoked,
            "revoked_all" => Self::RevokedAll,
            "revoked_others" => Self::RevokedOthers,
            "password_changed" => Self::PasswordChanged,
            "refresh_token_reuse" => Self::RefreshTokenReuse,
            "expired" => Self::Expired,
            "operator" => Self::Operator,
            "admin" => Self::Admin,
            "account_blocked" => Self::AccountBlocked,
            "account_deleted" => Self::AccountDeleted,
            _ => return None,
        })
    }

    /// The value stored in `sessions.revoked_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Logout => "logout",
            RevocationReason::Revoked => "revoked",
            RevocationReason::RevokedAll => "revoked_all",
            RevocationReason::RevokedOthers => "revoked_others",
            RevocationReason::PasswordChanged => "password_changed",
            RevocationReason::RefreshTokenReuse => "refresh_token_reuse",
            RevocationReason::Expired => "expired",
            RevocationReason::Operator => "operator",
            RevocationReason::Admin => "admin",
            RevocationReason::AccountBlocked => "account_blocked",
            RevocationReason::AccountDeleted => "account_deleted",
        }
    }
}

/// A session that ended.
#[derive(Debug, Clone, Copy)]
pub struct Revocation {
    /// The session that ended.
    pub session_id: SessionId,
    /// Its user, whose other sockets hear of it.
    pub user_id: UserId,
    /// Why it ended; decides the close reason of its sockets.
    pub reason: RevocationReason,
    /// `true` when another instance revoked the session and this event was relayed
    /// here; relays forward only local events, so nothing loops.
    pub remote: bool,
    /// When this instance learnt of it (the revocation's commit here, or the
    /// notification's arrival), for the revocation-to-close latency metric.
    pub at: std::time::Instant,
}

/// A session that opened (a login), for the user's other devices to hear of.
#[derive(Debug, Clone)]
pub struct Opening {
    /// The new session.
    pub session_id: SessionId,
    /// Its user, whose other sockets hear of it.
    pub user_id: UserId,
    /// The client IP the login came from, when known.
    pub ip: Option<String>,
    /// The login's `User-Agent`, when it sent one.
    pub user_agent: Option<String>,
    /// When the session opened.
    pub at: OffsetDateTime,
    /// `true` when relayed from another instance.
    pub remote: bool,
}

/// What happens to sessions.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A session opened (a login).
    Opened(Opening),
    /// A session ended (logout, revocation, refresh-token reuse, expiry).
    Ended(Revocation),
    /// A signing key was retired (`doorman keys retire`): its tokens are refused,
    /// and sockets authenticated with one close with 4401, after the registry
    /// re-checked every socket's session (`--revoke-sessions` revoked them all in
    /// the retirement's transaction: those close with 4403). Every instance sees
    /// the retirement itself (it re-reads the keys every second): never relayed.
    KeyRetired(Arc<str>),
    /// Sessions' assurance changed (a step-up, or a factor removed), or a factor
    /// was added: caches forget those sessions, sockets of sessions that dropped
    /// to aal1 leave the rooms that require aal2, the user's sockets hear of the
    /// factor.
    Assurance(AssuranceChange),
}

/// A factor added to or removed from an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorChange {
    /// A factor of this method was added (TOTP confirmed, a passkey registered).
    Added(Method),
    /// A factor of this method was removed.
    Removed(Method),
}

impl FactorChange {
    /// `+otp`, `-webauthn`: how notes between instances carry it.
    pub fn encode(self) -> String {
        match self {
            FactorChange::Added(m) => format!("+{}", m.as_str()),
            FactorChange::Removed(m) => format!("-{}", m.as_str()),
        }
    }

    /// What [`FactorChange::encode`] wrote.
    pub fn decode(s: &str) -> Option<Self> {
        if let Some(m) = s.strip_prefix('+') {
            return Method::parse(m).map(FactorChange::Added);
        }
        s.strip_prefix('-')
            .and_then(Method::parse)
            .map(FactorChange::Removed)
    }
}

/// What changed in the assurance of a user's sessions.
#[derive(Debug, Clone)]
pub struct AssuranceChange {
    /// The user.
    pub user_id: UserId,
    /// Sessions whose assurance changed.
    pub changed: Vec<SessionId>,
    /// Those of them that dropped from aal2 to aal1.
    pub lowered: Vec<SessionId>,
    /// The factor added or removed, if that is what happened.
    pub factor: Option<FactorChange>,
    /// `true` when relayed from another instance.
    pub remote: bool,
}

impl SessionEvent {
    /// Whether another instance relayed this event here.
    pub fn remote(&self) -> bool {
        match self {
            SessionEvent::Opened(o) => o.remote,
            SessionEvent::Ended(r) => r.remote,
            SessionEvent::KeyRetired(_) => false,
            SessionEvent::Assurance(a) => a.remote,
        }
    }
}

/// The session event stream: cheap to clone, many subscribers.
#[derive(Clone)]
pub struct SessionBus {
    tx: broadcast::Sender<SessionEvent>,
}

impl Default for SessionBus {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionBus {
    /// A bus with no subscribers yet; one that falls 1024 events behind misses some.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { tx }
    }

    /// Tells every subscriber; having none is fine.
    pub fn publish(&self, event: SessionEvent) {
        let _ = self.tx.send(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::RevocationReason::{self, *};

    #[test]
    fn all_lists_every_reason_once_and_each_name_parses_back() {
        let mut names: Vec<&str> = Vec::new();
        for r in RevocationReason::ALL {
            // A new variant stops this from compiling until it is added here and to ALL.
            match r {
                Logout | Revoked | RevokedAll | RevokedOthers | PasswordChanged
                | RefreshTokenReuse | Expired | Operator | Admin | AccountBlocked
                | AccountDeleted => {}
            }
            assert_eq!(RevocationReason::parse(r.as_str()), Some(r));
            assert!(!names.contains(&r.as_str()), "{} listed twice", r.as_str());
            names.push(r.as_str());
        }
        assert_eq!(names.len(), 11);
    }
}
