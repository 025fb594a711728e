//! Frames on an open socket: bad ones are answered, oversized ones and ones that break
//! the protocol close it.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn bad_frames_are_answered_without_closing() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    let types = "auth, ping, whoami, subscribe, unsubscribe, publish";
    // Each answer names the field and the rule in plain words (issue 32, item 4).
    for (bad, code, message) in [
        (
            "not json".to_owned(),
            "bad_request",
            "the frame is not valid JSON: expected ident at line 1 column 2".to_owned(),
        ),
        (
            json!({"type": "nope"}).to_string(),
            "bad_request",
            format!("type: one of {types}"),
        ),
        (
            json!({"type": "subscribe"}).to_string(),
            "bad_request",
            "subscribe: room: required".to_owned(),
        ),
        (
            json!({"no": "type"}).to_string(),
            "bad_request",
            format!("type: required, one of {types}"),
        ),
        (
            json!(["ping"]).to_string(),
            "bad_request",
            format!("a frame is a JSON object whose type is one of {types}"),
        ),
        (
            json!({"type": "subscribe", "room": "lobby", "rooom": 1}).to_string(),
            "bad_request",
            "subscribe: a field that is not one of room, since, type".to_owned(),
        ),
        (
            json!({"type": "subscribe", "room": "bad room!"}).to_string(),
            "invalid_room",
            "room must be 1 to 64 characters of A-Z a-z 0-9 _ - ., optionally after private:"
                .to_owned(),
        ),
        (
            json!({"type": "publish", "room": "lobby", "body": ""}).to_string(),
            "invalid_message",
            "body must be 1 to 4096 characters".to_owned(),
        ),
        (
            json!({"type": "publish", "room": "lobby", "body": "x".repeat(4097)}).to_string(),
            "invalid_message",
            "body must be 1 to 4096 characters".to_owned(),
        ),
        (
            json!({"type": "publish", "room": "lobby", "body": 5}).to_string(),
            "bad_request",
            "publish: body: must be a string".to_owned(),
        ),
        (
            json!({"type": "subscribe", "room": "lobby", "since": {"offset": 1}}).to_string(),
            "bad_request",
            "subscribe: since.epoch: required".to_owned(),
        ),
        (
            json!({"type": "auth", "token": null}).to_string(),
            "bad_request",
            "auth: token: must be a string, not null".to_owned(),
        ),
    ] {
        ws.send(Message::Text(bad.clone().into())).await.unwrap();
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["type"], "error", "{bad}");
        assert_eq!(
            (reply["code"].as_str(), reply["message"].as_str()),
            (Some(code), Some(message.as_str())),
            "{bad}"
        );
    }
    send_json(&mut ws, json!({"type": "ping", "id": 42})).await;
    let pong = next_json(&mut ws).await;
    assert_eq!(pong, json!({"type": "pong", "id": 42}));
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    let big = json!({"type": "publish", "room": "r", "body": "x".repeat(70 * 1024)}).to_string();
    ws.send(Message::Text(big.into())).await.unwrap();
    assert_eq!(expect_close(&mut ws, Duration::from_secs(3)).await.0, 1009);
}

/// Frames that break RFC 6455 itself, each with the close code the RFC names.
fn frames_breaking_the_protocol() -> Vec<(
    &'static str,
    Vec<tokio_tungstenite::tungstenite::protocol::frame::Frame>,
    u16,
)> {
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Control, Data, OpCode},
    };
    // `Frame::message` takes data opcodes only; the header is set by hand after it.
    let frame = |opcode: OpCode, payload: &[u8], fin: bool| {
        let mut frame = Frame::message(payload.to_vec(), OpCode::Data(Data::Binary), fin);
        frame.header_mut().opcode = opcode;
        frame
    };
    let text = OpCode::Data(Data::Text);
    let mut reserved_bit = frame(text, br#"{"type":"ping"}"#, true);
    reserved_bit.header_mut().rsv1 = true;
    vec![
        (
            "text that is not UTF-8",
            vec![frame(text, b"\"\xff\xfe\"", true)],
            1007,
        ),
        (
            "a fragmented text message whose second part is not UTF-8",
            vec![
                frame(text, b"{\"type\":", false),
                frame(OpCode::Data(Data::Continue), b"\"\xc3\x28\"}", true),
            ],
            1007,
        ),
        ("a reserved bit set", vec![reserved_bit], 1002),
        (
            "an unknown data opcode",
            vec![frame(OpCode::Data(Data::Reserved(3)), b"x", true)],
            1002,
        ),
        (
            "an unknown control opcode",
            vec![frame(OpCode::Control(Control::Reserved(11)), b"", true)],
            1002,
        ),
        (
            "a fragmented ping",
            vec![frame(OpCode::Control(Control::Ping), b"", false)],
            1002,
        ),
        (
            "a continuation with nothing to continue",
            vec![frame(OpCode::Data(Data::Continue), b"x", true)],
            1002,
        ),
        (
            "a new message inside a fragmented one",
            vec![frame(text, b"{", false), frame(text, b"{}", true)],
            1002,
        ),
        (
            "a ping over 125 bytes",
            vec![frame(OpCode::Control(Control::Ping), &[b'p'; 126], true)],
            1002,
        ),
        (
            "a Close payload of one byte",
            vec![frame(OpCode::Control(Control::Close), b"\x03", true)],
            1002,
        ),
        (
            "a Close whose reason is not UTF-8",
            vec![frame(
                OpCode::Control(Control::Close),
                b"\x03\xe8\xff\xfe",
                true,
            )],
            1007,
        ),
    ]
}

/// tungstenite reports these only as text (poem turns its error into an
/// `io::Error`), so this also pins the texts of the locked version: an upgrade that
/// changes them fails here instead of closing with 1000.
#[tokio::test]
async fn frames_breaking_the_protocol_close_with_1002_or_1007() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    for pending in [false, true] {
        for (what, frames, code) in frames_breaking_the_protocol() {
            let mut ws = if pending {
                app.ws(Credential::Anonymous).await.unwrap()
            } else {
                app.ws_welcomed(&tokens).await.0
            };
            for frame in frames {
                ws.feed(Message::Frame(frame)).await.unwrap();
            }
            ws.flush().await.unwrap();
            let (got, reason) = expect_close(&mut ws, Duration::from_secs(3)).await;
            let want = if code == 1007 {
                "invalid_utf8"
            } else {
                "protocol_error"
            };
            assert_eq!(
                (got, reason.as_str()),
                (code, want),
                "{what} (pending: {pending})"
            );
        }
    }
}

/// A client's Close with a code RFC 6455 does not allow is answered by tungstenite
/// itself, with its own reason (documented as such); allowed codes are echoed.
#[tokio::test]
async fn a_close_with_a_forbidden_code_is_answered_with_1002() {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    for (sent, want) in [
        (999, (1002, "Protocol violation")),
        (1005, (1002, "Protocol violation")),
        (5000, (1002, "Protocol violation")),
        (4000, (4000, "")),
    ] {
        let (mut ws, _) = app.ws_welcomed(&tokens).await;
        let frame = CloseFrame {
            code: close_code(sent),
            reason: "".into(),
        };
        ws.send(Message::Close(Some(frame))).await.unwrap();
        let (code, reason) = expect_close(&mut ws, Duration::from_secs(3)).await;
        assert_eq!((code, reason.as_str()), want, "sent {sent}");
    }
}
