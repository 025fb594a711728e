//! Rooms: publishing over HTTP and WebSocket, subscriptions, and their limits.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn rooms_deliver_over_websocket_and_http_stamped_with_the_sender() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let (mut a, _) = app.ws_welcomed(&alice).await;
    let (mut b, _) = app.ws_welcomed(&bob).await;
    send_json(&mut a, json!({"type": "subscribe", "room": "lobby"})).await;
    assert_eq!(
        next_json(&mut a).await,
        json!({"type": "subscribed", "room": "lobby", "present": [alice.user_id], "offset": 0, "epoch": ""})
    );
    let mut both = vec![alice.user_id.clone(), bob.user_id.clone()];
    both.sort();
    assert_eq!(subscribe(&mut b, "lobby").await, both);
    // Bob's arrival is news to alice only.
    expect_presence(&mut a, "lobby", &bob.user_id, "join").await;
    send_json(
        &mut a,
        json!({"type": "publish", "room": "lobby", "body": "hello"}),
    )
    .await;
    for ws in [&mut a, &mut b] {
        let msg = next_json(ws).await;
        assert_eq!(msg["type"], "message");
        assert_eq!(msg["room"], "lobby");
        assert_eq!(msg["body"], "hello");
        assert_eq!(msg["from"], alice.user_id.as_str());
        assert!(msg["id"].is_string() && msg["sent_at"].is_string());
    }

    let resp = app.publish(&bob, "lobby", "from http").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["delivered"], 2);
    for ws in [&mut a, &mut b] {
        let msg = next_json(ws).await;
        assert_eq!(msg["body"], "from http");
        assert_eq!(msg["from"], bob.user_id.as_str());
    }

    send_json(&mut b, json!({"type": "unsubscribe", "room": "lobby"})).await;
    assert_eq!(next_json(&mut b).await["type"], "unsubscribed");
    let resp: Value = app
        .publish(&bob, "lobby", "again")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["delivered"], 1);
}

#[tokio::test]
async fn rooms_refuse_bad_names_and_empty_bodies() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    for (room, body) in [("bad%20room", "hi"), ("lobby", "")] {
        let resp = app.publish(&tokens, room, body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{room} {body}");
    }
}

#[tokio::test]
async fn a_socket_may_join_only_so_many_rooms() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    for i in 0..64 {
        send_json(
            &mut ws,
            json!({"type": "subscribe", "room": format!("r{i}")}),
        )
        .await;
        assert_eq!(next_json(&mut ws).await["type"], "subscribed");
    }
    send_json(
        &mut ws,
        json!({"type": "subscribe", "room": "one-too-many"}),
    )
    .await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "too_many_rooms");
    // Re-joining a room already joined is fine.
    send_json(&mut ws, json!({"type": "subscribe", "room": "r0"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");
}

#[tokio::test]
async fn http_and_websocket_publishes_share_one_per_user_budget() {
    let app = spawn_with(|c| c.publish_per_second = 5).await;
    let tokens = app.user_with_tokens().await;
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..40 {
        let resp = app.publish(&tokens, "lobby", "hello").await;
        match resp.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused = Some(resp);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // Burst twice the rate, plus what refilled while the loop ran.
    assert!((10..=14).contains(&accepted), "{accepted} accepted");
    let refused = refused.expect("the flood was refused");
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");

    // The socket of the same user finds the budget spent: an error frame, and
    // the socket lives.
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    send_json(
        &mut ws,
        json!({"type": "publish", "room": "lobby", "body": "x"}),
    )
    .await;
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], "rate_limited");
    assert_alive(&mut ws).await;

    // Another user's budget is their own.
    let other = app.user_with_tokens().await;
    let resp = app.publish(&other, "lobby", "mine").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}
