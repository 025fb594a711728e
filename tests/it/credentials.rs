//! Where a credential may come from, and what happens when one is bad: no fallback
//! to the next source, no tokens in query strings, cookie headers read as browsers
//! really send them (foreign bytes included).

use reqwest::{StatusCode, header::HeaderValue};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::helpers::*;

#[tokio::test]
async fn an_invalid_bearer_never_falls_back_to_a_valid_cookie() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    let resp = app
        .me(Bearer("not-a-jwt"))
        .header("cookie", cookies.access_header())
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");

    let basic = app
        .me(cookies.access())
        .header("authorization", "Basic dXNlcjpwYXNz")
        .await;
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_in_the_query_string_are_ignored() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    for param in ["access_token", "token"] {
        let resp = app.get(&format!("/api/me?{param}={}", tokens.access)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "missing_credentials");
    }
}

#[tokio::test]
async fn a_duplicated_access_cookie_is_refused() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let a = app.login_cookies(&email).await;
    let other = app.new_user().await;
    let b = app.login_cookies(&other).await;
    let resp = app
        .me(Credential::Cookie(format!(
            "{}; {}",
            a.access_header(),
            b.access_header()
        )))
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// What a browser sends when another app on the host (or a parent domain) set a
/// cookie with non-ASCII bytes: raw UTF-8 `café`, and a Latin-1 byte.
fn with_foreign_cookies(ours: &str) -> Vec<HeaderValue> {
    [
        [b"lang=caf\xc3\xa9; ".as_slice(), ours.as_bytes()].concat(),
        [ours.as_bytes(), b"; theme=\xe9t\xe9; x=\xff".as_slice()].concat(),
    ]
    .into_iter()
    .map(|b| HeaderValue::from_bytes(&b).unwrap())
    .collect()
}

/// A WebSocket handshake written by hand: tungstenite's client refuses to send
/// header bytes that are not UTF-8, which browsers do send.
async fn raw_ws_handshake(app: &TestApp, cookie: &[u8]) -> Ws {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: ",
        app.addr
    )
    .into_bytes();
    request.extend_from_slice(cookie);
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "handshake cut");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tokio_tungstenite::WebSocketStream::from_raw_socket(
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
        tungstenite::protocol::Role::Client,
        None,
    )
    .await
}

#[tokio::test]
async fn a_foreign_non_ascii_cookie_does_not_disable_cookie_auth() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;

    // Raw requests from here on: the cookie headers are deliberately not UTF-8.
    for header in with_foreign_cookies(&cookies.access_header()) {
        let me = app
            .http
            .get(app.url("/api/me"))
            .header("cookie", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK, "{header:?}");
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["auth_source"], "cookie");

        // The WebSocket reads the same cookie the same way.
        let mut ws = raw_ws_handshake(&app, header.as_bytes()).await;
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["auth_source"], "cookie");
    }

    // And the refresh cookie, through the same reader.
    let mut refresh = cookies.refresh.clone();
    for header in with_foreign_cookies("") {
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(format!("; doorman_refresh={refresh}").as_bytes());
        let resp = app
            .http
            .post(app.url("/api/auth/refresh"))
            .header("cookie", HeaderValue::from_bytes(&bytes).unwrap())
            .header("origin", app.origin())
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        refresh = cookie_value(&set_cookie_lines(&resp), "doorman_refresh").unwrap();
    }
}

#[tokio::test]
async fn our_own_cookie_twice_or_with_foreign_bytes_is_still_refused() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    let twice = [
        b"lang=caf\xc3\xa9; ".as_slice(),
        cookies.access_header().as_bytes(),
        b"; doorman_access=planted",
    ]
    .concat();
    let bad_bytes = b"doorman_access=caf\xc3\xa9".to_vec();
    for header in [twice, bad_bytes] {
        let resp = app
            .http
            .get(app.url("/api/me"))
            .header("cookie", HeaderValue::from_bytes(&header).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
}
