//! The `notice` frames doorman writes to a user's other sockets (when a socket
//! takes them): the registry sends them as session events arrive.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::RevocationReason;

/// What a user's other devices are told: `{"type":"notice","kind":…}`.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice<'a> {
    /// A new session of the same user opened (a login somewhere).
    NewSession {
        /// The new session's id.
        session_id: Uuid,
        /// The client IP the login came from, when known.
        ip: Option<&'a str>,
        /// The login's `User-Agent`, when it sent one.
        user_agent: Option<&'a str>,
        /// When the session opened (RFC 3339).
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "String", extend("format" = "date-time"))]
        at: OffsetDateTime,
    },
    /// Another session of the same user ended (this socket's own session ending
    /// closes it with 4403 instead).
    SessionEnded {
        /// The ended session's id.
        session_id: Uuid,
        /// Why it ended (logout, revocation, expiry, …).
        #[schemars(schema_with = "revocation_reason")]
        reason: &'a str,
    },
    /// A second factor was added to the account (TOTP confirmed, a passkey
    /// registered), from any session.
    FactorAdded {
        /// The factor's method: `otp` or `webauthn`.
        #[schemars(schema_with = "factor_method")]
        method: &'a str,
    },
    /// A second factor was removed from the account. Sessions that were at aal2
    /// by it are aal1 now: their sockets left the rooms that require aal2
    /// (`unsubscribed`, reason `mfa_required`).
    FactorRemoved {
        /// The factor's method: `otp` or `webauthn`.
        #[schemars(schema_with = "factor_method")]
        method: &'a str,
    },
}

/// The schema of a factor's method.
fn factor_method(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["otp", "webauthn"] })
}

/// The schema of a session's end reason: the names the auth core gives them.
fn revocation_reason(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
    json_schema!({ "type": "string", "enum": names })
}

/// A notice as its frame: `{"type":"notice","kind":…}`, as the `notice` variant of
/// the server's frames writes it.
#[derive(Serialize)]
#[serde(tag = "type", rename = "notice")]
struct Frame<'a> {
    #[serde(flatten)]
    notice: &'a Notice<'a>,
}

impl Notice<'_> {
    /// The notice as the JSON text of its frame.
    pub fn to_text(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(&Frame { notice: self }).unwrap_or_default()
    }
}
