//! Frames on an open socket: bad ones are answered, oversized ones close it.

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
    for bad in [
        "not json".to_owned(),
        json!({"type": "nope"}).to_string(),
        json!({"type": "subscribe"}).to_string(),
        json!({"no": "type"}).to_string(),
        json!({"type": "subscribe", "room": "bad room!"}).to_string(),
        json!({"type": "publish", "room": "lobby", "body": ""}).to_string(),
        json!({"type": "publish", "room": "lobby", "body": "x".repeat(4097)}).to_string(),
        json!({"type": "publish", "room": "lobby", "body": 5}).to_string(),
    ] {
        ws.send(Message::Text(bad.clone().into())).await.unwrap();
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["type"], "error", "{bad}");
        assert!(reply["code"].is_string() && reply["message"].is_string());
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
