//! The WebSocket wire protocol: JSON text frames tagged by `type`, and close codes.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{AuthError, CredentialSource, Error, Identity};

/// A frame from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientFrame {
    Auth { token: String },
    Ping { id: Option<serde_json::Value> },
    Whoami,
    Subscribe { room: String },
    Unsubscribe { room: String },
    Publish { room: String, body: String },
}

/// A frame from the server (room `message` and `presence` frames are built by
/// `rooms`).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame<'a> {
    Welcome {
        user_id: Uuid,
        session_id: Uuid,
        auth_source: CredentialSource,
        #[serde(with = "time::serde::rfc3339")]
        session_expires_at: OffsetDateTime,
        heartbeat_s: u64,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    Identity {
        user_id: Uuid,
        session_id: Uuid,
        auth_source: CredentialSource,
        #[serde(with = "time::serde::rfc3339")]
        session_expires_at: OffsetDateTime,
    },
    Subscribed {
        room: &'a str,
        /// Who is in the room now, the subscriber included.
        present: Vec<Uuid>,
    },
    Unsubscribed {
        room: &'a str,
        /// `removed` when the server took the socket out (the user was removed from
        /// the room, or it was deleted); absent when the client asked.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    Error {
        code: FrameError,
        message: &'a str,
    },
}

/// The codes of `error` frames: a bad frame is answered, and the socket lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameError {
    /// Not JSON, an unknown type, missing fields, or a binary frame.
    BadRequest,
    /// A room name outside 1–64 of `A-Z a-z 0-9 _ - .`.
    InvalidRoom,
    /// A message body outside 1–4096 characters.
    InvalidMessage,
    /// A socket joins at most 64 rooms.
    TooManyRooms,
    /// An `auth` frame on a socket that is already authenticated.
    AlreadyAuthenticated,
    /// The user's publish budget (shared with HTTP) is spent.
    RateLimited,
    /// A private room the user is not a member of (or an unclaimed private name).
    Forbidden,
    /// The database could not be asked (a private room's membership); retry.
    DatabaseUnavailable,
    /// A server-side failure; the cause is logged.
    InternalError,
}

/// What a user's other devices are told: `{"type":"notice","kind":…}`.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice<'a> {
    /// A new session of the same user opened (a login somewhere).
    NewSession {
        session_id: Uuid,
        ip: Option<&'a str>,
        user_agent: Option<&'a str>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Another session of the same user ended.
    SessionEnded { session_id: Uuid, reason: &'a str },
}

impl Notice<'_> {
    pub fn to_text(&self) -> String {
        #[derive(Serialize)]
        struct Tagged<'n, 'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            #[serde(flatten)]
            notice: &'n Notice<'a>,
        }
        serde_json::to_string(&Tagged {
            ty: "notice",
            notice: self,
        })
        .unwrap_or_default()
    }
}

impl ServerFrame<'_> {
    pub fn welcome(id: &Identity, heartbeat_s: u64) -> Self {
        ServerFrame::Welcome {
            user_id: id.user_id.0,
            session_id: id.session_id.0,
            auth_source: id.source,
            session_expires_at: id.session_expires_at,
            heartbeat_s,
        }
    }

    pub fn identity(id: &Identity) -> Self {
        ServerFrame::Identity {
            user_id: id.user_id.0,
            session_id: id.session_id.0,
            auth_source: id.source,
            session_expires_at: id.session_expires_at,
        }
    }

    pub fn to_text(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why the server closes a socket: code and reason, as documented for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    /// The close for a socket whose session ended for reason `why`.
    pub fn session_ended(why: AuthError) -> Close {
        match why {
            AuthError::SessionExpired => Close::SESSION_EXPIRED,
            _ => Close::SESSION_REVOKED,
        }
    }

    /// The close for a socket whose credential or session could not be checked:
    /// an ended session says so, a bad credential is `invalid_token`, and a database
    /// that cannot be reached says "try again" instead of blaming the token.
    pub fn auth_failed(e: &Error) -> Close {
        match e {
            Error::Auth(e @ (AuthError::SessionRevoked | AuthError::SessionExpired)) => {
                Close::session_ended(*e)
            }
            Error::Auth(_) => Close::INVALID_TOKEN,
            Error::DatabaseUnavailable(_) => Close::DATABASE_UNAVAILABLE,
            _ => Close::INTERNAL_ERROR,
        }
    }

    pub const NORMAL: Close = Close {
        code: 1000,
        reason: "",
    };
    pub const SHUTDOWN: Close = Close {
        code: 1001,
        reason: "shutdown",
    };
    pub const TOO_BIG: Close = Close {
        code: 1009,
        reason: "message too big",
    };
    pub const BAD_REQUEST: Close = Close {
        code: 4400,
        reason: "bad_request",
    };
    pub const INVALID_TOKEN: Close = Close {
        code: 4401,
        reason: "invalid_token",
    };
    pub const SESSION_REVOKED: Close = Close {
        code: 4403,
        reason: "session_revoked",
    };
    pub const SESSION_EXPIRED: Close = Close {
        code: 4403,
        reason: "session_expired",
    };
    pub const AUTH_TIMEOUT: Close = Close {
        code: 4408,
        reason: "auth_timeout",
    };
    pub const RATE_LIMITED: Close = Close {
        code: 4429,
        reason: "rate_limited",
    };
    pub const TOO_MANY_SOCKETS: Close = Close {
        code: 4429,
        reason: "too_many_sockets",
    };
    /// 1011 (RFC 6455): a server-side failure; the cause is logged.
    pub const INTERNAL_ERROR: Close = Close {
        code: 1011,
        reason: "internal_error",
    };
    /// 1013 "Try Again Later" (IANA registry): the database could not be reached
    /// while this socket was being authenticated. Open sockets are never closed
    /// for this.
    pub const DATABASE_UNAVAILABLE: Close = Close {
        code: 1013,
        reason: "database_unavailable",
    };
    pub const HEARTBEAT_TIMEOUT: Close = Close {
        code: 1000,
        reason: "heartbeat_timeout",
    };
}
