//! The WebSocket wire protocol: JSON text frames tagged by `type`, and close codes.
//!
//! These types are the one source of the protocol: serde (de)serializes the frames
//! with them, and `asyncapi.json` is generated from them (their `JsonSchema`s and
//! the doc comments below, which become the document's descriptions).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    auth::{
        CredentialSource, Identity,
        assurance::{Aal, Amr},
    },
    json_text,
};
pub use crate::{
    rooms::MAX_BODY_CHARS,
    sockets::{Close, Notice},
};

/// A frame from the client.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientFrame {
    /// The first frame of a socket opened without a cookie or Bearer header: the
    /// access token (from `POST /api/auth/login` in token mode). Answered with
    /// `welcome`, or the socket closes with 4401. Anything else first closes it with
    /// 4400; no `auth` within `DOORMAN_WS_AUTH_TIMEOUT_SECONDS` closes it with 4408.
    Auth {
        /// An access token (JWT).
        token: String,
    },
    /// Answered with `pong` carrying the same `id`.
    Ping {
        /// Any JSON value; echoed in the `pong`.
        id: Option<serde_json::Value>,
    },
    /// Answered with `identity`.
    Whoami,
    /// Join a room: answered with `subscribed` (who is present), or an `error`
    /// (`invalid_room`, `forbidden`, `too_many_rooms`). Subscribing again is harmless.
    Subscribe {
        /// `lobby` (public) or `private:team` (members only); 1–64 of
        /// `A-Z a-z 0-9 _ - .` after the optional `private:`.
        #[schemars(pattern(crate::rooms::ANY_ROOM))]
        room: String,
        /// Where the client left off (the `offset` and `epoch` of the last `message`
        /// it has from this room): the `subscribed` answer says whether what came
        /// after was `recovered`, and the missed messages follow it, in order,
        /// before the live ones.
        #[serde(default)]
        since: Option<crate::rooms::Since>,
    },
    /// Leave a room: answered with `unsubscribed`.
    Unsubscribe {
        /// The room to leave.
        #[schemars(pattern(crate::rooms::ANY_ROOM))]
        room: String,
    },
    /// Send `body` to the room: every subscriber (the sender too, if subscribed) gets
    /// `message`. No answer on success; an `error` (`invalid_message`, `forbidden`,
    /// `rate_limited`, …) otherwise.
    Publish {
        /// The room to send to (a private room: members only).
        #[schemars(pattern(crate::rooms::ANY_ROOM))]
        room: String,
        /// 1–4096 characters.
        #[schemars(length(min = 1, max = crate::rooms::MAX_BODY_CHARS))]
        body: String,
    },
}

impl ClientFrame {
    /// A client frame, or what is wrong with it.
    ///
    /// `ping`, the most frequent frame, in the exact shape clients send it
    /// (`{"type":"ping"}`, or `{"type":"ping","id":…}` with a number, string, bool
    /// or null `id`), is read without serde's internally tagged path, which buffers
    /// the whole object before it looks at `type` (about 1,200 instructions of a
    /// 11,000-instruction ping). The answer is the one serde gives, which a test
    /// and the `ws_frame` fuzz target check; every other text takes serde's way.
    pub fn parse(text: &str) -> Result<Self, String> {
        match ping_fast(text) {
            Some(id) => Ok(ClientFrame::Ping { id }),
            None => Self::parse_with_serde(text),
        }
    }

    /// [`Self::parse`] without its `ping` shortcut: what the shortcut must agree
    /// with (public for the `ws_frame` fuzz target).
    #[doc(hidden)]
    pub fn parse_with_serde(text: &str) -> Result<Self, String> {
        serde_json::from_str::<ClientFrame>(text).map_err(|e| refusal(text, &e))
    }
}

/// Why a text is not a client frame, in plain words: not JSON (serde_json's
/// message gives the position, never the text), or the frame's field and the
/// rule it breaks, read against the frame's schema in asyncapi.json
/// (`crate::schema_check`). serde's own message for a data error quotes values
/// and names no field of a tagged enum.
fn refusal(text: &str, e: &serde_json::Error) -> String {
    use std::sync::OnceLock;

    use serde_json::Value;

    use crate::schema_check::Schemas;

    static FRAMES: OnceLock<(Schemas, Vec<String>)> = OnceLock::new();
    if e.is_syntax() || e.is_eof() {
        return format!("the frame is not valid JSON: {e}");
    }
    let (schemas, types) = FRAMES.get_or_init(|| {
        let frames = super::asyncapi::client_frames();
        let types = frames.iter().map(|(name, _)| name.clone()).collect();
        let doc = Value::Object(frames.into_iter().collect());
        (Schemas::new(doc), types)
    });
    let one_of = types.join(", ");
    let frame = serde_json::from_str::<Value>(text).unwrap_or_default();
    if !frame.is_object() {
        return format!("a frame is a JSON object whose type is one of {one_of}");
    }
    let Some(kind) = frame.get("type").and_then(Value::as_str) else {
        return format!("type: required, one of {one_of}");
    };
    let schema = match schemas.doc().get(kind) {
        Some(schema) if types.iter().any(|t| t == kind) => schema,
        _ => return format!("type: one of {one_of}"),
    };
    let problems = schemas.problems(schema, &frame);
    if problems.is_empty() {
        format!("not a valid {kind} frame (see asyncapi.json)")
    } else {
        format!("{kind}: {}", problems.join("; "))
    }
}

/// A `ping` in its plain shape: `Some(id)` (`None` for an absent or null `id`, as
/// `Option` reads it), or `None` for any other text. Object and array ids go to
/// serde: nested, they meet its depth limit one level later than alone.
fn ping_fast(text: &str) -> Option<Option<serde_json::Value>> {
    let rest = text.strip_prefix(r#"{"type":"ping""#)?;
    if rest == "}" {
        return Some(None);
    }
    // The text is `{"type":"ping","id":` + `id` + `}`: valid JSON exactly when `id`
    // is a JSON value, and then a `ping` with that `id` and no other field.
    let id = rest.strip_prefix(r#","id":"#)?.strip_suffix('}')?;
    if id.trim_start().starts_with(['{', '[']) {
        return None;
    }
    match serde_json::from_str(id).ok()? {
        serde_json::Value::Null => Some(None),
        id => Some(Some(id)),
    }
}

/// A frame from the server (room `message` and `presence` frames are built by
/// `rooms`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame<'a> {
    /// The socket is authenticated (the first frame the server sends). Resend your
    /// subscriptions after every (re)connect: a new socket is in no room.
    Welcome {
        /// The authenticated user's id.
        user_id: Uuid,
        /// The session the socket is bound to: it closes when this session ends.
        session_id: Uuid,
        /// Where the credential came from.
        auth_source: CredentialSource,
        /// The session's absolute expiry: the socket closes with 4403
        /// `session_expired` then.
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "String", extend("format" = "date-time"))]
        session_expires_at: OffsetDateTime,
        /// The server pings every this many seconds (WebSocket ping frames) and drops
        /// a peer silent for three intervals; a client may treat a socket it has heard
        /// nothing from for about three intervals as dead.
        heartbeat_s: u64,
        /// The session's assurance level when the socket opened: `aal2` after a
        /// second factor or a passkey. Rooms that require aal2 refuse an aal1 socket.
        aal: Aal,
        /// How the session's user authenticated.
        amr: Amr,
        /// The session's last authentication (login or re-authentication).
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "String", extend("format" = "date-time"))]
        auth_at: OffsetDateTime,
    },
    /// The answer to `ping`.
    Pong {
        /// The `ping`'s `id`; absent when the `ping` had none.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// The answer to `whoami`.
    Identity {
        /// The authenticated user's id.
        user_id: Uuid,
        /// The session the socket is bound to.
        session_id: Uuid,
        /// Where the credential came from.
        auth_source: CredentialSource,
        /// The session's absolute expiry, when the socket closes with 4403.
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "String", extend("format" = "date-time"))]
        session_expires_at: OffsetDateTime,
        /// The session's assurance level, as the session says now.
        aal: Aal,
        /// How the session's user authenticated.
        amr: Amr,
        /// The session's last authentication.
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "String", extend("format" = "date-time"))]
        auth_at: OffsetDateTime,
    },
    /// The answer to `subscribe`: the socket is in the room.
    Subscribed {
        /// The room joined, as the `subscribe` named it.
        room: &'a str,
        /// Who is in the room now, the subscriber included.
        present: Vec<Uuid>,
        /// The room's last offset when the subscription began (0 before its first
        /// message): live messages follow it. Absent when the server keeps no
        /// history.
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// The epoch `offset` counts in (`""` before the room's first message).
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a str>,
        /// Only when the `subscribe` had `since`: `true` when every message after it
        /// that this user may read follows (replayed, in order, before the live
        /// ones); `false` when they cannot be, and `reason` says why: refetch.
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// Why `recovered` is `false`.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<crate::rooms::RecoveryFailure>,
    },
    /// The socket left the room: the answer to `unsubscribe`, or (with `reason`) the
    /// server took it out.
    Unsubscribed {
        /// The room the socket left.
        room: &'a str,
        /// Set when the server took the socket out: `removed` (the user was removed
        /// from the room, or it was deleted: do not resubscribe), `mfa_required`
        /// (the session dropped to aal1 in a room that requires aal2). Absent when
        /// the client asked.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<UnsubscribedReason>,
    },
    /// A frame was refused; the socket lives.
    Error {
        /// The stable code: what was wrong, and what to do (the socket lives).
        code: FrameError,
        /// Human text; `code` is the stable part.
        message: &'a str,
    },
    /// Something happened to another session of the same user.
    Notice(crate::sockets::Notice<'a>),
}

/// Why the server took a socket out of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribedReason {
    /// The user was removed from the private room, or the room was deleted.
    Removed,
    /// The room requires a session at aal2 and this socket's session dropped to
    /// aal1 (a second factor it used was removed): re-authenticate with a second
    /// factor, then subscribe again.
    MfaRequired,
}

/// The codes of `error` frames: a bad frame is answered, and the socket lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameError {
    /// Not JSON, an unknown type, missing fields, or a binary frame. Fix the client;
    /// do not resend the frame.
    BadRequest,
    /// A room name outside 1–64 of `A-Z a-z 0-9 _ - .` (after an optional
    /// `private:`). Fix the name.
    InvalidRoom,
    /// A message body outside 1–4096 characters. Fix the body.
    InvalidMessage,
    /// A socket joins at most 64 rooms. Unsubscribe from one first, or open another
    /// socket.
    TooManyRooms,
    /// An `auth` frame on a socket that is already authenticated. Harmless; do not
    /// send it.
    AlreadyAuthenticated,
    /// The user's publish budget (shared with HTTP) is spent; the publish was not
    /// delivered. Wait a second and resend.
    RateLimited,
    /// A private room the user is not a member of (or an unclaimed private name). Do
    /// not retry.
    Forbidden,
    /// The database could not be asked (a private room's membership). Retry after a
    /// second.
    DatabaseUnavailable,
    /// A server-side failure; the cause is logged. Retry later.
    InternalError,
}

impl ServerFrame<'_> {
    /// The `welcome` frame for an authenticated socket.
    pub fn welcome(id: &Identity, heartbeat_s: u64) -> Self {
        ServerFrame::Welcome {
            user_id: id.user_id.0,
            session_id: id.session_id.0,
            auth_source: id.source,
            session_expires_at: id.session_expires_at,
            heartbeat_s,
            aal: id.assurance.aal,
            amr: id.assurance.amr,
            auth_at: id.assurance.auth_at,
        }
    }

    /// The `identity` frame, the answer to `whoami`.
    pub fn identity(id: &Identity) -> Self {
        ServerFrame::Identity {
            user_id: id.user_id.0,
            session_id: id.session_id.0,
            auth_source: id.source,
            session_expires_at: id.session_expires_at,
            aal: id.assurance.aal,
            amr: id.assurance.amr,
            auth_at: id.assurance.auth_at,
        }
    }

    /// `pong`'s text, byte for byte what [`Self::to_text`] makes of
    /// [`Self::Pong`], without serde's tagged-struct machinery around the one value.
    pub fn pong_text(id: Option<&serde_json::Value>) -> String {
        let Some(id) = id else {
            return r#"{"type":"pong"}"#.to_owned();
        };
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(br#"{"type":"pong","id":"#);
        // Writing a `Value` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut out, id);
        out.push(b'}');
        // serde_json writes UTF-8.
        String::from_utf8(out).unwrap_or_default()
    }

    /// The frame as JSON text, as it goes on the wire.
    pub fn to_text(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `welcome`'s text, byte for byte what [`Self::to_text`] makes of
    /// [`Self::welcome`], written directly: it is sent on every handshake, and
    /// serde's way (each UUID and the time formatted apart, then escaped) cost
    /// about 4,000 instructions of a handshake. Its strings need no escaping: UUIDs,
    /// a fixed word and RFC 3339 digits.
    pub fn welcome_text(id: &Identity, heartbeat_s: u64) -> String {
        // The frame is about 290 bytes: room for it at once, not a second allocation.
        let mut out = Vec::with_capacity(352);
        out.extend_from_slice(br#"{"type":"welcome","user_id":"#);
        json_text::uuid(&mut out, &id.user_id.0);
        out.extend_from_slice(br#","session_id":"#);
        json_text::uuid(&mut out, &id.session_id.0);
        out.extend_from_slice(br#","auth_source":""#);
        out.extend_from_slice(id.source.as_str().as_bytes());
        out.extend_from_slice(br#"","session_expires_at":"#);
        if json_text::rfc3339(&mut out, &id.session_expires_at).is_none() {
            // A time RFC 3339 cannot write: serde's answer, whatever it is.
            return Self::welcome(id, heartbeat_s).to_text();
        }
        out.extend_from_slice(br#","heartbeat_s":"#);
        json_text::u64(&mut out, heartbeat_s);
        out.extend_from_slice(br#","aal":""#);
        out.extend_from_slice(id.assurance.aal.as_str().as_bytes());
        out.extend_from_slice(br#"","amr":"#);
        id.assurance.amr.write_json(&mut out);
        out.extend_from_slice(br#","auth_at":"#);
        if json_text::rfc3339(&mut out, &id.assurance.auth_at).is_none() {
            return Self::welcome(id, heartbeat_s).to_text();
        }
        out.push(b'}');
        // ASCII only.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// What a client should do after a close: the machine-readable column of the
/// close-code table in `asyncapi.json` (`x-close-codes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseAction {
    /// Nothing is required: a client that did not ask for the close may reconnect.
    None,
    /// Reconnect, with a jittered exponential backoff.
    Reconnect,
    /// Reconnect after a longer backoff (seconds, not milliseconds).
    ReconnectLater,
    /// Get a fresh access token (refresh), then reconnect with it.
    RefreshToken,
    /// The session is over: do not retry; sign in again.
    SignInAgain,
    /// The client sent too much: reconnect only after a long backoff.
    BackOff,
    /// A bug in the client: do not retry the same thing.
    FixClient,
}

/// One row of the close-code table.
#[derive(Debug, Clone, Copy)]
pub struct CloseDoc {
    /// The code and reason.
    pub close: Close,
    /// Whether the server sends it (1006 is what a client sees when no close frame
    /// arrived at all).
    pub sent_by_server: bool,
    /// When a socket gets it.
    pub when: &'static str,
    /// What a client should do, machine-readable.
    pub action: CloseAction,
    /// What a client should do, in words.
    pub client_should: &'static str,
}

/// Every close a client can see, with what it should do: the source of the table in
/// `asyncapi.json` and docs/websocket.md.
pub const CLOSE_CODES: &[CloseDoc] = &[
    CloseDoc {
        close: Close::NORMAL,
        sent_by_server: true,
        when: "a write to the socket failed, or the peer vanished (nobody reads it); a \
               client's own Close is echoed with its code (none if it sent none)",
        action: CloseAction::None,
        client_should: "nothing; reconnect if the client did not ask for it",
    },
    CloseDoc {
        close: Close::HEARTBEAT_TIMEOUT,
        sent_by_server: true,
        when: "the peer answered no ping for three heartbeat intervals",
        action: CloseAction::Reconnect,
        client_should: "reconnect",
    },
    CloseDoc {
        close: Close::SHUTDOWN,
        sent_by_server: true,
        when: "the server is stopping (restart, deploy); closes are spread over the drain window",
        action: CloseAction::Reconnect,
        client_should: "reconnect with a jittered backoff; resubscribe",
    },
    CloseDoc {
        close: Close::PROTOCOL_ERROR,
        sent_by_server: true,
        when: "a frame that breaks RFC 6455: reserved bits set, an unknown opcode, an \
               unmasked frame, a fragmented or oversized control frame, a continuation \
               with nothing to continue, a new message inside a fragmented one, a Close \
               payload of one byte",
        action: CloseAction::FixClient,
        client_should: "stop and report: the WebSocket library is broken",
    },
    CloseDoc {
        close: Close::PEER_CLOSE_CODE_INVALID,
        sent_by_server: true,
        when: "the client's own Close carried a code tungstenite refuses (below 1000, \
               1004–1006, 1014–2999, 5000 and above): the WebSocket library substitutes \
               this reply, in its wording, and doorman cannot change it",
        action: CloseAction::FixClient,
        client_should: "stop and report: close with 1000 or a code of 3000–4999",
    },
    CloseDoc {
        close: Close::ABNORMAL,
        sent_by_server: false,
        when: "no close frame arrived: the network dropped, the server was killed, or (in \
               browsers) the handshake was refused with an HTTP error",
        action: CloseAction::Reconnect,
        client_should: "reconnect with a jittered backoff; resubscribe",
    },
    CloseDoc {
        close: Close::INVALID_UTF8,
        sent_by_server: true,
        when: "a text message, or the reason in a Close frame, that is not valid UTF-8",
        action: CloseAction::FixClient,
        client_should: "stop and report: send text frames as UTF-8",
    },
    CloseDoc {
        close: Close::TOO_BIG,
        sent_by_server: true,
        when: "a message over DOORMAN_WS_MAX_MESSAGE_BYTES (default 64 KiB)",
        action: CloseAction::FixClient,
        client_should: "not send such messages",
    },
    CloseDoc {
        close: Close::INTERNAL_ERROR,
        sent_by_server: true,
        when: "a server-side failure while authenticating the socket (logged)",
        action: CloseAction::ReconnectLater,
        client_should: "reconnect after a longer backoff",
    },
    CloseDoc {
        close: Close::DATABASE_UNAVAILABLE,
        sent_by_server: true,
        when: "the database could not be reached while the socket was being authenticated; \
               an open socket is never closed for this",
        action: CloseAction::ReconnectLater,
        client_should: "reconnect after a second or more; keep the token",
    },
    CloseDoc {
        close: Close::BAD_REQUEST,
        sent_by_server: true,
        when: "anything but `auth` as the first frame of a socket opened without credentials",
        action: CloseAction::FixClient,
        client_should: "stop and report: send `auth` first",
    },
    CloseDoc {
        close: Close::INVALID_TOKEN,
        sent_by_server: true,
        when: "a bad or expired token in the `auth` frame",
        action: CloseAction::RefreshToken,
        client_should: "refresh the access token, then reconnect with the new one",
    },
    CloseDoc {
        close: Close::SESSION_REVOKED,
        sent_by_server: true,
        when: "the session ended while the socket was open (logout, revocation, a password \
               change, refresh-token reuse)",
        action: CloseAction::SignInAgain,
        client_should: "not retry: the session is over; sign in again",
    },
    CloseDoc {
        close: Close::SESSION_EXPIRED,
        sent_by_server: true,
        when: "the session reached its absolute expiry (`session_expires_at`) or idle expiry",
        action: CloseAction::SignInAgain,
        client_should: "not retry: the session is over; sign in again",
    },
    CloseDoc {
        close: Close::ACCOUNT_BLOCKED,
        sent_by_server: true,
        when: "an admin blocked the account while the socket was open (every session of \
               the account ended)",
        action: CloseAction::SignInAgain,
        client_should: "not retry: signing in is refused with `account_blocked` until an \
                        admin unblocks the account",
    },
    CloseDoc {
        close: Close::AUTH_TIMEOUT,
        sent_by_server: true,
        when: "no `auth` frame within DOORMAN_WS_AUTH_TIMEOUT_SECONDS (default 10)",
        action: CloseAction::Reconnect,
        client_should: "reconnect and send `auth` at once",
    },
    CloseDoc {
        close: Close::RATE_LIMITED,
        sent_by_server: true,
        when: "the socket sent more than DOORMAN_WS_MESSAGES_PER_SECOND frames (burst twice \
               that), or more than 16 pings before `auth`",
        action: CloseAction::BackOff,
        client_should: "reconnect only after a long backoff, and send less",
    },
    CloseDoc {
        close: Close::TOO_MANY_SOCKETS,
        sent_by_server: true,
        when: "the user already holds DOORMAN_WS_MAX_SOCKETS_PER_USER sockets on this instance",
        action: CloseAction::BackOff,
        client_should: "close sockets it no longer needs; reconnect only after a long backoff",
    },
];

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::auth::assurance::{Assurance, Method};
    use crate::auth::{SessionId, UserId};

    #[test]
    fn the_welcome_is_written_byte_for_byte_as_serde_writes_it() {
        let times = [
            datetime!(2026-12-27 21:00:14.273725839 UTC),
            datetime!(2026-12-27 21:00:14 UTC),
            datetime!(2026-01-01 00:00:00.5 UTC),
            datetime!(2026-06-30 23:59:59.000000001 +02:00),
            datetime!(9999-12-31 23:59:59.999999999 UTC),
        ];
        let sources = [
            CredentialSource::Bearer,
            CredentialSource::Cookie,
            CredentialSource::Message,
        ];
        for (i, at) in times.into_iter().enumerate() {
            for source in sources {
                let id = Identity {
                    user_id: UserId(Uuid::now_v7()),
                    session_id: SessionId(Uuid::new_v4()),
                    source,
                    session_expires_at: at,
                    key_id: None,
                    assurance: Assurance::new(Amr::of(Method::Pwd).with(Method::Otp), at),
                };
                for heartbeat in [0, 1, 30, 86_400, u64::MAX] {
                    assert_eq!(
                        ServerFrame::welcome_text(&id, heartbeat),
                        ServerFrame::welcome(&id, heartbeat).to_text(),
                        "{i} {source:?} {heartbeat}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_ping_read_by_the_shortcut_is_what_serde_reads() {
        // (text, whether the shortcut takes it)
        let cases = [
            (r#"{"type":"ping"}"#, true),
            (r#"{"type":"ping","id":1}"#, true),
            (r#"{"type":"ping","id":-0}"#, true),
            (r#"{"type":"ping","id":1.5e3}"#, true),
            (r#"{"type":"ping","id":18446744073709551616}"#, true),
            (r#"{"type":"ping","id":"a\u00e9\"b"}"#, true),
            (r#"{"type":"ping","id":true}"#, true),
            (r#"{"type":"ping","id":null}"#, true),
            (r#"{"type":"ping","id": 7 }"#, true),
            (r#"{"type":"ping","id":{"a":[1]}}"#, false),
            (r#"{"type":"ping","id":[1,2]}"#, false),
            (r#"{"type":"ping","id": [1]}"#, false),
            (r#"{"type":"ping","id":1,"id":2}"#, false),
            (r#"{"type":"ping","id":1,"x":2}"#, false),
            (r#"{"type":"ping","id":1}}"#, false),
            (r#"{"type":"ping","id":1} "#, false),
            (r#"{"type":"ping","id":}"#, false),
            (r#"{"type":"ping","id":1e400}"#, false),
            (r#"{"type":"ping","id":"\x"}"#, false),
            (r#"{"type":"ping","id""#, false),
            (r#"{"type":"ping","x":1}"#, false),
            (r#"{"type":"pingx"}"#, false),
            (r#"{"type":"ping" }"#, false),
            (r#"{"id":1,"type":"ping"}"#, false),
            (r#"{ "type":"ping"}"#, false),
            (r#"{"type":"ping"}}"#, false),
        ];
        for (text, shortcut) in cases {
            assert_eq!(ping_fast(text).is_some(), shortcut, "{text}");
            assert_eq!(
                format!("{:?}", ClientFrame::parse(text)),
                format!("{:?}", ClientFrame::parse_with_serde(text)),
                "{text}"
            );
        }
        // Nested ids stay with serde, whose depth limit counts the frame itself.
        let deep = format!(
            r#"{{"type":"ping","id":{}1{}}}"#,
            "[".repeat(127),
            "]".repeat(127)
        );
        assert!(ping_fast(&deep).is_none());
        assert!(ClientFrame::parse(&deep).is_err());
    }

    #[test]
    fn the_pong_is_written_byte_for_byte_as_serde_writes_it() {
        let ids = [
            None,
            Some(serde_json::json!(1)),
            Some(serde_json::json!(-2.5)),
            Some(serde_json::json!("quote \" and \u{1} and é")),
            Some(serde_json::json!({"a": [1, null, true]})),
            Some(serde_json::Value::Null),
        ];
        for id in ids {
            assert_eq!(
                ServerFrame::pong_text(id.as_ref()),
                ServerFrame::Pong { id: id.clone() }.to_text(),
                "{id:?}"
            );
        }
    }
}
