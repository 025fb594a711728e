//! Who a request or socket is: the typed result of credential resolution.

use std::fmt;

use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// A user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

/// A session's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a credential came from (on the wire: `auth_source`). The resolver
/// itself is [`super::AuthSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialSource {
    /// `Authorization: Bearer <access token>`.
    Bearer,
    /// The HttpOnly access-token cookie.
    Cookie,
    /// A WebSocket's first `{"type":"auth"}` frame.
    Message,
}

impl CredentialSource {
    /// Its name on the wire: `bearer`, `cookie` or `message`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Bearer => "bearer",
            CredentialSource::Cookie => "cookie",
            CredentialSource::Message => "message",
        }
    }
}

/// An authenticated caller: a verified access token whose session is active.
/// Only the resolver constructs it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The caller's user.
    pub user_id: UserId,
    /// The session the access token belongs to.
    pub session_id: SessionId,
    /// Where the credential came from.
    pub source: CredentialSource,
    /// The session's absolute expiry: a socket bound to it closes then.
    pub session_expires_at: OffsetDateTime,
    /// The key that signed the access token (its `kid`): a socket authenticated
    /// with it closes (4401) when that key is retired.
    pub key_id: Option<std::sync::Arc<str>>,
    /// How strongly the session's user authenticated, and when last, as the
    /// session says now (a step-up or a removed factor shows on the next request).
    pub assurance: super::assurance::Assurance,
}
