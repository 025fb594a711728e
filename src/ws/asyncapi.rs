//! `asyncapi.json`: the AsyncAPI 3.0 document of `GET /ws`, generated from the types
//! that (de)serialize the frames, so the document cannot drift from the wire.
//!
//! Each frame's payload schema is one variant of [`ClientFrame`], [`ServerFrame`] or
//! the rooms' `RoomFrame` as schemars derives it from the serde attributes (draft-07, which
//! AsyncAPI's default schema format extends), with the variant's doc comment as its
//! description. The close codes come from [`CLOSE_CODES`]. Examples of server frames
//! are serialized from real values; client examples are checked by a test to
//! deserialize as the frame they claim to be.
//!
//! The document describes the server: it *receives* client frames and *sends*
//! server frames.

use std::sync::LazyLock;

use schemars::{JsonSchema, generate::SchemaSettings};
use serde_json::{Map, Value, json};
use time::macros::datetime;
use uuid::Uuid;

use super::protocol::{
    CLOSE_CODES, ClientFrame, FrameError, Notice, ServerFrame, UnsubscribedReason,
};
use crate::{
    auth::{
        CredentialSource, UserId,
        assurance::{Aal, Amr, Method},
    },
    http::error::ErrorCode,
    rooms::{RoomFrame, Transition},
};

/// The channel's id in the document.
const CHANNEL: &str = "socket";

/// Client frames as a client would send them: one example each, in the order of
/// [`ClientFrame`]'s variants.
pub const CLIENT_EXAMPLES: &[(&str, &str)] = &[
    (
        "auth",
        r#"{"type":"auth","token":"eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiIuLi4ifQ.c2ln"}"#,
    ),
    ("ping", r#"{"type":"ping","id":1}"#),
    ("whoami", r#"{"type":"whoami"}"#),
    ("subscribe", r#"{"type":"subscribe","room":"lobby"}"#),
    (
        "subscribe",
        r#"{"type":"subscribe","room":"lobby","since":{"offset":41,"epoch":"5f0e2a9c41d3"}}"#,
    ),
    ("unsubscribe", r#"{"type":"unsubscribe","room":"lobby"}"#),
    (
        "publish",
        r#"{"type":"publish","room":"lobby","body":"hello"}"#,
    ),
];

/// The document as pretty JSON with a trailing newline: what `doorman asyncapi`
/// prints, `GET /asyncapi.json` serves and `asyncapi.json` holds.
pub fn asyncapi_json() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
        text.push('\n');
        text
    });
    &TEXT
}

/// Each client frame's payload schema, by its `type`, as the document has them:
/// what a refused frame is read against to say what is wrong with it.
pub(super) fn client_frames() -> Vec<(String, Value)> {
    variants::<ClientFrame>(false)
        .into_iter()
        .map(|frame| (frame.name, frame.schema))
        .collect()
}

/// A frame type's payload schema and examples.
struct Frame {
    name: String,
    schema: Value,
    examples: Vec<Value>,
}

/// One schema per variant of a `type`-tagged enum, keyed by its `type`.
fn variants<T: JsonSchema>(serialize: bool) -> Vec<Frame> {
    let settings = SchemaSettings::draft07().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let settings = if serialize {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    let root = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    let Some(Value::Array(variants)) = root.get("oneOf") else {
        panic!("{} is not a tagged enum", std::any::type_name::<T>());
    };
    variants
        .iter()
        .map(|v| Frame {
            name: tag_of(v)
                .unwrap_or_else(|| panic!("a variant without a `type` const: {v}"))
                .to_owned(),
            schema: v.clone(),
            examples: Vec::new(),
        })
        .collect()
}

/// The `type` a variant's schema pins.
fn tag_of(schema: &Value) -> Option<&str> {
    let tag = schema.pointer("/properties/type")?;
    tag.get("const")
        .or_else(|| tag.pointer("/enum/0"))
        .and_then(Value::as_str)
}

fn server_examples() -> Vec<Value> {
    let user = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    let other = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
    let session = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00a1);
    let at = datetime!(2026-11-27 10:00:00 UTC);
    let frames = [
        ServerFrame::Welcome {
            user_id: user,
            session_id: session,
            auth_source: CredentialSource::Bearer,
            session_expires_at: datetime!(2026-12-27 10:00:00 UTC),
            heartbeat_s: 30,
            aal: Aal::Aal2,
            amr: Amr::of(Method::Pwd).with(Method::Otp),
            auth_at: at,
        },
        ServerFrame::Pong { id: Some(json!(1)) },
        ServerFrame::Identity {
            user_id: user,
            session_id: session,
            auth_source: CredentialSource::Cookie,
            session_expires_at: datetime!(2026-12-27 10:00:00 UTC),
            aal: Aal::Aal1,
            amr: Amr::of(Method::Pwd),
            auth_at: at,
        },
        ServerFrame::Subscribed {
            room: "lobby",
            present: vec![user, other],
            offset: Some(41),
            epoch: Some("5f0e2a9c41d3"),
            recovered: None,
            reason: None,
        },
        ServerFrame::Subscribed {
            room: "lobby",
            present: vec![user, other],
            offset: Some(44),
            epoch: Some("5f0e2a9c41d3"),
            recovered: Some(true),
            reason: None,
        },
        ServerFrame::Subscribed {
            room: "lobby",
            present: vec![user],
            offset: Some(3),
            epoch: Some("a81c07be2f19"),
            recovered: Some(false),
            reason: Some(crate::rooms::RecoveryFailure::EpochChanged),
        },
        ServerFrame::Unsubscribed {
            room: "lobby",
            reason: None,
        },
        ServerFrame::Unsubscribed {
            room: "private:team",
            reason: Some(UnsubscribedReason::Removed),
        },
        ServerFrame::Error {
            code: FrameError::Forbidden,
            message: "not allowed in this room",
        },
        ServerFrame::Notice(Notice::NewSession {
            session_id: Uuid::from_u128(0xb2),
            ip: Some("203.0.113.7"),
            user_agent: Some("Mozilla/5.0"),
            at,
        }),
        ServerFrame::Notice(Notice::SessionEnded {
            session_id: Uuid::from_u128(0xb2),
            reason: "logout",
        }),
    ];
    let rooms = [
        RoomFrame::Message {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0c01),
            room: "lobby",
            from: UserId(other),
            body: "hello",
            sent_at: at,
            offset: Some(42),
            epoch: Some("5f0e2a9c41d3"),
        },
        RoomFrame::Presence {
            room: "lobby",
            user_id: UserId(other),
            event: Transition::Join,
        },
    ];
    frames
        .iter()
        .map(|f| serde_json::to_value(f).unwrap_or_default())
        .chain(
            rooms
                .iter()
                .map(|f| serde_json::to_value(f).unwrap_or_default()),
        )
        .collect()
}

fn with_examples(mut frames: Vec<Frame>, examples: impl IntoIterator<Item = Value>) -> Vec<Frame> {
    for example in examples {
        let tag = example
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match frames.iter_mut().find(|f| f.name == tag) {
            Some(frame) => frame.examples.push(example),
            None => panic!("an example of no frame: {example}"),
        }
    }
    frames
}

/// `welcome` → `Welcome`.
fn title(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The first sentence of a description.
fn summary(description: &str) -> String {
    let first = description.split(". ").next().unwrap_or(description);
    let first = first.trim_end_matches('.');
    format!("{}.", first.replace('\n', " "))
}

/// What the client should do after each kind of refused handshake (HTTP, before the
/// upgrade). Browsers cannot see these statuses: a refused handshake is a 1006
/// close there.
fn handshake_refusals() -> Value {
    let code = |c: ErrorCode| serde_json::to_value(c).unwrap_or_default();
    json!([
        {"status": 400, "error": [code(ErrorCode::BadRequest)], "when": "not a WebSocket upgrade, or not HTTP/1.1", "action": "fix_client"},
        {"status": 401, "error": [code(ErrorCode::InvalidToken), code(ErrorCode::SessionRevoked), code(ErrorCode::SessionExpired)],
         "when": "a Bearer header or cookie is present but invalid, expired, or its session ended", "action": "refresh_token",
         "client_should": "refresh the access token and reconnect; on session_revoked or session_expired, or when the refresh fails, sign in again"},
        {"status": 403, "error": [code(ErrorCode::OriginRefused)], "when": "a cookie credential from an Origin that is not allowed", "action": "fix_client"},
        {"status": 403, "error": [code(ErrorCode::AccountBlocked)], "when": "a credential of a session that ended when an admin blocked the account", "action": "sign_in_again",
         "client_should": "not retry: signing in is refused until an admin unblocks the account"},
        {"status": 429, "error": [code(ErrorCode::RateLimited), code(ErrorCode::TooManySockets)],
         "when": "too many handshakes from this IP (DOORMAN_WS_HANDSHAKE_PER_SECOND), or the user holds DOORMAN_WS_MAX_SOCKETS_PER_USER sockets", "action": "back_off",
         "client_should": "wait at least Retry-After seconds"},
        {"status": 503, "error": [code(ErrorCode::DatabaseUnavailable), code(ErrorCode::ShuttingDown)],
         "when": "the database is unreachable, or the server is draining", "action": "reconnect_later",
         "client_should": "wait Retry-After seconds (or a longer backoff) and reconnect"}
    ])
}

fn close_codes() -> Value {
    Value::Array(
        CLOSE_CODES
            .iter()
            .map(|c| {
                json!({
                    "code": c.close.code,
                    "reason": c.close.reason,
                    "sent_by_server": c.sent_by_server,
                    "when": c.when,
                    "action": c.action,
                    "client_should": c.client_should,
                })
            })
            .collect(),
    )
}

fn close_code_table() -> String {
    let mut table =
        String::from("| code | reason | when | the client should |\n| --- | --- | --- | --- |\n");
    for c in CLOSE_CODES {
        let reason = if c.close.reason.is_empty() {
            "–".to_owned()
        } else {
            format!("`{}`", c.close.reason)
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            c.close.code, reason, c.when, c.client_should
        ));
    }
    table
}

fn frame_error_table() -> String {
    let errors = SchemaSettings::draft07()
        .with(|s| s.meta_schema = None)
        .into_generator()
        .into_root_schema_for::<FrameError>()
        .to_value();
    let mut table = String::from("| code | meaning and what to do |\n| --- | --- |\n");
    for e in errors["oneOf"].as_array().into_iter().flatten() {
        let code = e["const"]
            .as_str()
            .or(e.pointer("/enum/0").and_then(Value::as_str));
        let text = e["description"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ");
        table.push_str(&format!("| `{}` | {} |\n", code.unwrap_or_default(), text));
    }
    table
}

const CHANNEL_DESCRIPTION: &str = "\
One socket per client, authenticated once and bound to its session (not to the access \
token's lifetime): it stays open while the session is active, and the server closes it \
with 4403 when the session ends. Every frame is a JSON text frame with a `type` tag; \
binary frames are answered with an `error`.

**Handshake** (before the upgrade, in order): the per-IP handshake limit (429 + \
`Retry-After`); the credential, from `Authorization: Bearer` or the access cookie (a \
cookie only with an allowed or absent `Origin`, else 403 `origin_refused`; present but \
invalid: 401); the per-user socket cap (429 `too_many_sockets`). Without any credential \
the upgrade succeeds into a pending state whose first frame must be `auth`. Refused \
handshakes carry the usual JSON error body; `x-handshake-refusals` lists them with what \
to do.

**After every (re)connect** wait for `welcome`, then subscribe again: a new socket is \
in no room. `message` ids are unique, so a client may drop one it has already seen.

**Liveness**: the server sends a WebSocket ping every `heartbeat_s` seconds (from \
`welcome`) and closes a peer silent for three intervals. Browsers answer pings without \
telling the page, so a browser client that wants to detect a dead socket sends `ping` \
frames itself and treats about three silent intervals as a dead socket.

**Limits**: frames per socket (`DOORMAN_WS_MESSAGES_PER_SECOND`, burst twice that; past \
it 4429), message size (`DOORMAN_WS_MAX_MESSAGE_BYTES`, 64 KiB; past it 1009), rooms \
per socket (64), publishes per user shared with HTTP (`DOORMAN_PUBLISH_PER_SECOND`; \
past it an `error` frame `rate_limited`).
";

fn document() -> Value {
    let client = with_examples(
        variants::<ClientFrame>(false),
        CLIENT_EXAMPLES
            .iter()
            .map(|(_, text)| serde_json::from_str(text).unwrap_or_default()),
    );
    let mut server = variants::<ServerFrame<'static>>(true);
    server.extend(variants::<RoomFrame<'static>>(true));
    let server = with_examples(server, server_examples());

    let mut schemas = Map::new();
    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    let mut operations = Map::new();
    let names: Vec<&str> = client
        .iter()
        .chain(&server)
        .map(|f| f.name.as_str())
        .collect();
    let correlated = |name: &str| matches!(name, "ping" | "pong");
    for (frame, receive) in client
        .iter()
        .map(|f| (f, true))
        .chain(server.iter().map(|f| (f, false)))
    {
        let name = frame.name.as_str();
        let schema_name = format!("{}Frame", title(name));
        let description = frame.schema["description"].as_str().unwrap_or_default();
        let mut message = json!({
            "name": name,
            "title": title(name),
            "summary": summary(description),
            "description": description,
            "contentType": "application/json",
            "payload": {"$ref": format!("#/components/schemas/{schema_name}")},
            "examples": frame.examples.iter().map(|e| json!({"payload": e})).collect::<Vec<_>>(),
        });
        if correlated(name) {
            message["correlationId"] = json!({
                "description": "`pong` carries the `id` of the `ping` it answers.",
                "location": "$message.payload#/id",
            });
        }
        schemas.insert(schema_name, frame.schema.clone());
        messages.insert(name.to_owned(), message);
        channel_messages.insert(
            name.to_owned(),
            json!({"$ref": format!("#/components/messages/{name}")}),
        );
        let (action, id) = if receive {
            ("receive", format!("receive{}", title(name)))
        } else {
            ("send", format!("send{}", title(name)))
        };
        let mut op = json!({
            "action": action,
            "channel": {"$ref": format!("#/channels/{CHANNEL}")},
            "title": format!("{} `{name}`", if receive { "The client sends" } else { "The server sends" }),
            "summary": summary(description),
            "messages": [{"$ref": format!("#/channels/{CHANNEL}/messages/{name}")}],
        });
        let replies: &[&str] = match name {
            "auth" => &["welcome"],
            "ping" => &["pong"],
            "whoami" => &["identity"],
            "subscribe" => &["subscribed", "error"],
            "unsubscribe" => &["unsubscribed", "error"],
            "publish" => &["error"],
            _ => &[],
        };
        if !replies.is_empty() {
            op["reply"] = json!({
                "channel": {"$ref": format!("#/channels/{CHANNEL}")},
                "messages": replies.iter().map(|r| {
                    assert!(names.contains(r), "a reply that is no frame: {r}");
                    json!({"$ref": format!("#/channels/{CHANNEL}/messages/{r}")})
                }).collect::<Vec<_>>(),
            });
        }
        operations.insert(id, op);
    }

    let security = json!([
        {"$ref": "#/components/securitySchemes/bearer"},
        {"$ref": "#/components/securitySchemes/cookie"},
        {"$ref": "#/components/securitySchemes/authFrame"},
    ]);
    json!({
        "asyncapi": "3.0.0",
        "id": "urn:doorman:ws",
        "info": {
            "title": "doorman WebSocket",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The WebSocket at `GET /ws`: the same credentials as the HTTP API \
                 (`/openapi.json`), resolved by the same function. Generated from the \
                 frame types of the server (`doorman asyncapi`).\n\n\
                 ## Close codes\n\nThe close code tells the client what to do next \
                 (`x-close-codes` on the channel has the same table for programs; \
                 `action` is one of `none`, `reconnect`, `reconnect_later`, \
                 `refresh_token`, `sign_in_again`, `back_off`, `fix_client`).\n\n{}\n\
                 ## Error frames\n\nA refused frame is answered with an `error` frame; \
                 the socket lives.\n\n{}",
                close_code_table(),
                frame_error_table()
            ),
            "license": {"name": "MIT OR Apache-2.0"},
            "tags": [{"name": "auth"}, {"name": "rooms"}, {"name": "presence"}],
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8080",
                "protocol": "ws",
                "description": "The server as `cargo run --release` starts it (DOORMAN_BIND).",
                "security": security,
            },
            "public": {
                "host": "{host}",
                "protocol": "wss",
                "description": "Behind TLS at the public URL (DOORMAN_PUBLIC_URL).",
                "variables": {
                    "host": {
                        "description": "The host (and port) of DOORMAN_PUBLIC_URL.",
                        "examples": ["auth.example.org"]
                    }
                },
                "security": security,
            }
        },
        "channels": {
            CHANNEL: {
                "address": "/ws",
                "title": "The socket",
                "description": CHANNEL_DESCRIPTION,
                "messages": channel_messages,
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "headers": {
                            "type": "object",
                            "properties": {
                                "Authorization": {
                                    "type": "string",
                                    "description": "`Bearer <access token>` (clients that can set headers)."
                                },
                                "Origin": {
                                    "type": "string",
                                    "description": "Sent by browsers. A cookie credential is used only when it is absent, same-origin or listed in DOORMAN_ALLOWED_ORIGINS."
                                }
                            }
                        },
                        "bindingVersion": "0.1.0"
                    }
                },
                "x-close-codes": close_codes(),
                "x-handshake-refusals": handshake_refusals(),
            }
        },
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "`Authorization: Bearer <access token>` on the handshake (Node, CLIs, services). An invalid token refuses the handshake with 401."
                },
                "cookie": {
                    "type": "httpApiKey",
                    "name": "doorman_access",
                    "in": "cookie",
                    "description": "The HttpOnly access cookie of a cookie-mode login (`__Host-doorman_access` when the public URL is https), sent by browsers on the handshake. Used only when `Origin` is absent, same-origin or allowed."
                },
                "authFrame": {
                    "type": "apiKey",
                    "in": "user",
                    "description": "AsyncAPI has no scheme for a credential sent in a message; this entry stands for one. A socket opened with neither header nor cookie sends the access token as its first frame, `{\"type\":\"auth\",\"token\":\"<access token>\"}` (message `auth`), within DOORMAN_WS_AUTH_TIMEOUT_SECONDS. Tokens in the query string are ignored by the server.",
                    "x-in-message": "auth"
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_examples_deserialize_as_the_frame_they_name() {
        for (name, text) in CLIENT_EXAMPLES {
            let frame: ClientFrame =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let tag = format!("{frame:?}").to_ascii_lowercase();
            assert!(tag.starts_with(name), "{name} parsed as {frame:?}");
        }
    }

    #[test]
    fn every_frame_is_a_message_with_an_operation() {
        let doc = document();
        let messages = doc["components"]["messages"].as_object().unwrap();
        let names: Vec<&str> = messages.keys().map(String::as_str).collect();
        for name in [
            "auth",
            "ping",
            "whoami",
            "subscribe",
            "unsubscribe",
            "publish",
            "welcome",
            "pong",
            "identity",
            "subscribed",
            "unsubscribed",
            "error",
            "notice",
            "message",
            "presence",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
            assert!(
                !messages[name]["examples"].as_array().unwrap().is_empty(),
                "{name} has no example"
            );
        }
        assert_eq!(names.len(), 15);
        assert_eq!(doc["operations"].as_object().unwrap().len(), 15);
        assert_eq!(doc["operations"]["receiveAuth"]["action"], "receive");
        assert_eq!(doc["operations"]["sendWelcome"]["action"], "send");
    }

    #[test]
    fn every_close_code_and_error_code_is_documented() {
        let doc = document();
        let closes = doc["channels"][CHANNEL]["x-close-codes"]
            .as_array()
            .unwrap();
        for code in [
            1000, 1001, 1006, 1009, 1011, 1013, 4400, 4401, 4403, 4408, 4429,
        ] {
            assert!(closes.iter().any(|c| c["code"] == code), "close {code}");
        }
        for frame in ["SubscribeFrame", "UnsubscribeFrame", "PublishFrame"] {
            let room = &doc["components"]["schemas"][frame]["properties"]["room"];
            assert_eq!(room["pattern"], crate::rooms::ANY_ROOM, "{frame}");
        }
        let body = &doc["components"]["schemas"]["PublishFrame"]["properties"]["body"];
        assert_eq!(body["maxLength"], crate::rooms::MAX_BODY_CHARS);
        let error_codes = &doc["components"]["schemas"]["ErrorFrame"]["properties"]["code"];
        let text = error_codes.to_string();
        for code in [
            "bad_request",
            "invalid_room",
            "forbidden",
            "rate_limited",
            "internal_error",
        ] {
            assert!(text.contains(code), "{code} not in {text}");
        }
    }
}
