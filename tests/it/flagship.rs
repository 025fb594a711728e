//! The flow doorman exists for, end to end: a browser logs in with cookies, opens
//! the WebSocket on the same cookie, chats, logs out, and the socket is closed by the
//! logout, not left to live on.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_browser_session_logs_in_with_a_cookie_opens_a_socket_and_logout_closes_it_4403() {
    let app = spawn_app().await;
    let email = app.new_user().await;

    // Cookie login: the browser holds the cookies, the page never sees a token.
    let cookies = app.login_cookies(&email).await;

    // The page opens /ws; the browser adds the cookie and the page's Origin.
    let (mut ws, welcome) = app
        .ws(cookies.access())
        .origin(&app.origin())
        .welcomed()
        .await;
    assert_eq!(welcome["auth_source"], "cookie");
    assert_eq!(welcome["session_id"], cookies.session_id.as_str());

    // A room message round trip on the socket.
    send_json(&mut ws, json!({"type": "subscribe", "room": "lobby"})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "subscribed", "room": "lobby", "present": [welcome["user_id"]], "offset": 0, "epoch": ""})
    );
    send_json(
        &mut ws,
        json!({"type": "publish", "room": "lobby", "body": "hello from the page"}),
    )
    .await;
    let msg = next_json(&mut ws).await;
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["room"], "lobby");
    assert_eq!(msg["body"], "hello from the page");
    assert_eq!(msg["from"], welcome["user_id"]);

    // Logout by cookie, from the page's Origin.
    let started = Instant::now();
    let logout = app.logout(cookies.both()).origin(&app.origin()).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    // The socket is closed by the server: the session is over, do not retry.
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(1)).await;
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "closed after {:?}",
        started.elapsed()
    );

    // And the old cookie opens nothing any more.
    let me = app.me(cookies.access()).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["error"], "session_revoked");
}
