//! How the server closes a socket: a code and a reason, as documented for clients
//! (the table with what a client should do is `crate::ws::protocol::CLOSE_CODES`).

use crate::auth::{AuthError, Error};

/// Why the server closes a socket: code and reason, as documented for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// The close code (RFC 6455 range, or doorman's own 4xxx).
    pub code: u16,
    /// The close reason, a stable snake_case word (empty for a plain 1000).
    pub reason: &'static str,
}

impl Close {
    /// The close for a socket whose session ended for reason `why`.
    pub fn session_ended(why: AuthError) -> Close {
        match why {
            AuthError::SessionExpired => Close::SESSION_EXPIRED,
            AuthError::AccountBlocked => Close::ACCOUNT_BLOCKED,
            _ => Close::SESSION_REVOKED,
        }
    }

    /// The close for a socket whose credential or session could not be checked:
    /// an ended session says so, a bad credential is `invalid_token`, and a database
    /// that cannot be reached says "try again" instead of blaming the token.
    pub fn auth_failed(e: &Error) -> Close {
        match e {
            Error::Auth(
                e @ (AuthError::SessionRevoked
                | AuthError::SessionExpired
                | AuthError::AccountBlocked),
            ) => Close::session_ended(*e),
            Error::Auth(_) => Close::INVALID_TOKEN,
            Error::DatabaseUnavailable(_) => Close::DATABASE_UNAVAILABLE,
            _ => Close::INTERNAL_ERROR,
        }
    }

    /// 1000: a write failed, the peer vanished, or the echo of a client's own Close.
    pub const NORMAL: Close = Close {
        code: 1000,
        reason: "",
    };
    /// 1001: the server is stopping (restart, deploy); reconnect with a jittered backoff.
    pub const SHUTDOWN: Close = Close {
        code: 1001,
        reason: "shutdown",
    };
    /// 1009: a message over `DOORMAN_WS_MAX_MESSAGE_BYTES`; do not send such messages.
    pub const TOO_BIG: Close = Close {
        code: 1009,
        reason: "message too big",
    };
    /// 1002 (RFC 6455 §7.4.1): a frame that breaks the WebSocket protocol itself
    /// (reserved bits set, an unknown opcode, an unmasked frame, a fragmented or
    /// oversized control frame, a stray continuation, a one-byte Close payload).
    pub const PROTOCOL_ERROR: Close = Close {
        code: 1002,
        reason: "protocol_error",
    };
    /// 1002 as tungstenite words it, in answer to a client's Close whose code it
    /// refuses: it substitutes this reply when it parses the frame, and doorman only
    /// flushes it. Listed for clients only.
    pub const PEER_CLOSE_CODE_INVALID: Close = Close {
        code: 1002,
        reason: "Protocol violation",
    };
    /// 1007 (RFC 6455 §8.1): a text message, or a Close reason, that is not UTF-8.
    pub const INVALID_UTF8: Close = Close {
        code: 1007,
        reason: "invalid_utf8",
    };
    /// 4400: anything but `auth` first on a socket opened without credentials; fix the client.
    pub const BAD_REQUEST: Close = Close {
        code: 4400,
        reason: "bad_request",
    };
    /// 4401: a bad or expired token in the `auth` frame; refresh it, then reconnect.
    pub const INVALID_TOKEN: Close = Close {
        code: 4401,
        reason: "invalid_token",
    };
    /// 4403: the session was revoked while the socket was open; sign in again, do not retry.
    pub const SESSION_REVOKED: Close = Close {
        code: 4403,
        reason: "session_revoked",
    };
    /// 4403: the session reached its absolute or idle expiry; sign in again, do not retry.
    pub const SESSION_EXPIRED: Close = Close {
        code: 4403,
        reason: "session_expired",
    };
    /// 4403: an admin blocked the account; its sessions ended. Do not retry.
    pub const ACCOUNT_BLOCKED: Close = Close {
        code: 4403,
        reason: "account_blocked",
    };
    /// 4408: no `auth` frame within `DOORMAN_WS_AUTH_TIMEOUT_SECONDS`; reconnect, `auth` at once.
    pub const AUTH_TIMEOUT: Close = Close {
        code: 4408,
        reason: "auth_timeout",
    };
    /// 4429: the socket sent frames faster than its budget; reconnect only after a long backoff.
    pub const RATE_LIMITED: Close = Close {
        code: 4429,
        reason: "rate_limited",
    };
    /// 4429: the user is at `DOORMAN_WS_MAX_SOCKETS_PER_USER`; close unused sockets, back off.
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
    /// 1000: the peer answered no ping for three heartbeat intervals; reconnect.
    pub const HEARTBEAT_TIMEOUT: Close = Close {
        code: 1000,
        reason: "heartbeat_timeout",
    };
    /// 1006: never sent (RFC 6455 forbids it on the wire); what a client reports when
    /// the connection ended without a close frame. Listed for clients only.
    pub const ABNORMAL: Close = Close {
        code: 1006,
        reason: "",
    };
}
