//! Opening `/ws`: Bearer, cookie (with the Origin rule) and first-message
//! authentication, and what is refused before the upgrade.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn bearer_handshake_is_welcomed_with_its_session() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, welcome) = app.ws_welcomed(&tokens).await;
    assert_eq!(welcome["auth_source"], "bearer");
    assert_eq!(welcome["user_id"], tokens.user_id.as_str());
    assert_eq!(welcome["session_id"], tokens.session_id.as_str());
    assert!(welcome["heartbeat_s"].as_u64().unwrap() > 0);
    assert!(welcome["session_expires_at"].is_string());
    send_json(&mut ws, json!({"type": "whoami"})).await;
    let who = next_json(&mut ws).await;
    assert_eq!(who["type"], "identity");
    assert_eq!(who["session_id"], tokens.session_id.as_str());
}

/// The `101` of a handshake that is welcomed at once waits for the `welcome`, and
/// both leave in one write: one TCP segment with data reaches the client (the
/// kernel's count, `tcpi_data_segs_in`), holding the head and the frame.
#[tokio::test]
async fn a_welcomed_handshake_sends_its_101_and_welcome_in_one_segment() {
    use std::os::fd::AsRawFd;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {}\r\n\r\n",
        tokens.access
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(r#""heartbeat_s":"#) {
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    // A text frame (FIN + opcode 1) right behind the head.
    assert_eq!(got[head_end], 0x81, "{text}");

    // SAFETY: `info` is a plain C struct that getsockopt fills up to `len` bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    assert_eq!(
        info.tcpi_data_segs_in, 1,
        "segments with data from the server"
    );
}

#[tokio::test]
async fn cookie_handshake_from_no_or_the_same_origin_is_welcomed() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    for origin in [None, Some(app.origin())] {
        let mut call = app.ws(cookies.access());
        if let Some(origin) = &origin {
            call = call.origin(origin);
        }
        let mut ws = call.await.expect("handshake");
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["auth_source"], "cookie");
        assert_eq!(welcome["session_id"], cookies.session_id.as_str());
    }
    // Reached as localhost: the Host header makes it same-origin.
    let host = format!("localhost:{}", app.addr.port());
    let mut ws = app
        .ws(cookies.access())
        .origin(&format!("http://{host}"))
        .header("host", &host)
        .await
        .expect("handshake via localhost");
    assert_eq!(next_json(&mut ws).await["auth_source"], "cookie");
}

#[tokio::test]
async fn cross_site_cookie_handshakes_are_refused_but_bearer_is_not() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    let port = app.addr.port();
    let foreign = [
        "http://evil.example".to_owned(),
        "null".to_owned(),
        format!("http://127.0.0.1:{}", port + 1),
        format!("http://127.0.0.1:{port}.evil.example"),
        format!("http://evil127.0.0.1:{port}"),
        format!("https://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ];
    for origin in &foreign {
        let err = app
            .ws(cookies.access())
            .origin(origin)
            .await
            .expect_err(origin);
        assert_eq!(handshake_status(&err), 403, "{origin}");
        assert_eq!(handshake_body(&err)["error"], "origin_refused");
    }
    let tokens = app.login_tokens(&email).await;
    for origin in &foreign {
        let mut ws = app
            .ws(&tokens)
            .origin(origin)
            .await
            .expect("bearer from any origin");
        assert_eq!(next_json(&mut ws).await["auth_source"], "bearer");
    }
}

#[tokio::test]
async fn invalid_and_revoked_credentials_are_401_before_the_upgrade() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let err = app.ws(Bearer("nonsense")).await.unwrap_err();
    assert_eq!(handshake_status(&err), 401);
    assert_eq!(handshake_body(&err)["error"], "invalid_token");

    app.logout(&tokens).await;
    let err = app.ws(&tokens).await.unwrap_err();
    assert_eq!(handshake_status(&err), 401);
    assert_eq!(handshake_body(&err)["error"], "session_revoked");

    let cookie = Credential::Cookie(format!("doorman_access={}", tokens.access));
    let err = app.ws(cookie).await.unwrap_err();
    assert_eq!(handshake_status(&err), 401);
}

#[tokio::test]
async fn a_credentialless_socket_authenticates_with_its_first_message() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let mut ws = app
        .ws(Anonymous)
        .origin("http://another-site.example")
        .await
        .expect("pending handshake");
    send_json(&mut ws, json!({"type": "auth", "token": tokens.access})).await;
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["auth_source"], "message");
    assert_eq!(welcome["session_id"], tokens.session_id.as_str());
    assert_alive(&mut ws).await;
    // A second auth frame is answered, not obeyed.
    send_json(&mut ws, json!({"type": "auth", "token": "x"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "error");
}

#[tokio::test]
async fn the_pending_state_closes_4400_4401_and_4408() {
    const AUTH_TIMEOUT: Duration = Duration::from_millis(500);
    let app = spawn_with(|c| c.ws_auth_timeout = AUTH_TIMEOUT).await;
    let tokens = app.user_with_tokens().await;

    let mut ws = app.ws(Anonymous).await.unwrap();
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(3)).await,
        (4400, "bad_request".into())
    );

    let mut ws = app.ws(Anonymous).await.unwrap();
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(expect_close(&mut ws, Duration::from_secs(3)).await.0, 4400);

    let mut ws = app.ws(Anonymous).await.unwrap();
    send_json(&mut ws, json!({"type": "auth", "token": "bogus"})).await;
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(3)).await,
        (4401, "invalid_token".into())
    );

    let mut ws = app.ws(Anonymous).await.unwrap();
    let started = Instant::now();
    assert_eq!(
        expect_close(&mut ws, AUTH_TIMEOUT + Duration::from_secs(3)).await,
        (4408, "auth_timeout".into())
    );
    assert!(started.elapsed() >= AUTH_TIMEOUT - Duration::from_millis(100));

    // A revoked session's token in the auth frame.
    app.logout(&tokens).await;
    let mut ws = app.ws(Anonymous).await.unwrap();
    send_json(&mut ws, json!({"type": "auth", "token": tokens.access})).await;
    assert_eq!(expect_close(&mut ws, Duration::from_secs(3)).await.0, 4403);
}
