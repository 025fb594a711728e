use std::time::{Duration, Instant};

use futures_util::SinkExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn bearer_handshake_is_welcomed_with_its_session() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, welcome) = app.ws_bearer(&tokens.access).await;
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

#[tokio::test]
async fn cookie_handshake_from_no_or_the_same_origin_is_welcomed() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    let cookie = cookies.access_header();
    let localhost_origin = format!("http://localhost:{}", app.addr.port());
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![("cookie", cookie.as_str()), ("origin", app.base.as_str())],
    ] {
        let mut ws = app.ws_connect(&headers).await.expect("handshake");
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["auth_source"], "cookie");
        assert_eq!(welcome["session_id"], cookies.session_id.as_str());
    }
    // Reached as localhost: the Host header makes it same-origin.
    let host = format!("localhost:{}", app.addr.port());
    let mut ws = app
        .ws_connect(&[
            ("cookie", &cookie),
            ("origin", &localhost_origin),
            ("host", &host),
        ])
        .await
        .expect("handshake via localhost");
    assert_eq!(next_json(&mut ws).await["auth_source"], "cookie");
}

#[tokio::test]
async fn cross_site_cookie_handshakes_are_refused_but_bearer_is_not() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    let cookie = cookies.access_header();
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
            .ws_connect(&[("cookie", &cookie), ("origin", origin)])
            .await
            .expect_err(origin);
        assert_eq!(handshake_status(&err), 403, "{origin}");
        assert_eq!(handshake_body(&err)["error"], "origin_refused");
    }
    let tokens = app.login_tokens(&email).await;
    let bearer = format!("Bearer {}", tokens.access);
    for origin in &foreign {
        let mut ws = app
            .ws_connect(&[("authorization", &bearer), ("origin", origin)])
            .await
            .expect("bearer from any origin");
        assert_eq!(next_json(&mut ws).await["auth_source"], "bearer");
    }
}

#[tokio::test]
async fn invalid_and_revoked_credentials_are_401_before_the_upgrade() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let err = app
        .ws_connect(&[("authorization", "Bearer nonsense")])
        .await
        .unwrap_err();
    assert_eq!(handshake_status(&err), 401);
    assert_eq!(handshake_body(&err)["error"], "invalid_token");

    app.logout_bearer(&tokens.access).await;
    let bearer = format!("Bearer {}", tokens.access);
    let err = app
        .ws_connect(&[("authorization", &bearer)])
        .await
        .unwrap_err();
    assert_eq!(handshake_status(&err), 401);
    assert_eq!(handshake_body(&err)["error"], "session_revoked");

    let cookie = format!("doorman_access={}", tokens.access);
    let err = app.ws_connect(&[("cookie", &cookie)]).await.unwrap_err();
    assert_eq!(handshake_status(&err), 401);
}

#[tokio::test]
async fn a_credentialless_socket_authenticates_with_its_first_message() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let mut ws = app
        .ws_connect(&[("origin", "http://another-site.example")])
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
    let app = spawn_with(|c| c.ws_auth_timeout = Duration::from_secs(1)).await;
    let tokens = app.user_with_tokens().await;

    let mut ws = app.ws_connect(&[]).await.unwrap();
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(3)).await,
        (4400, "bad_request".into())
    );

    let mut ws = app.ws_connect(&[]).await.unwrap();
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(expect_close(&mut ws, Duration::from_secs(3)).await.0, 4400);

    let mut ws = app.ws_connect(&[]).await.unwrap();
    send_json(&mut ws, json!({"type": "auth", "token": "bogus"})).await;
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(3)).await,
        (4401, "invalid_token".into())
    );

    let mut ws = app.ws_connect(&[]).await.unwrap();
    let started = Instant::now();
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(4)).await,
        (4408, "auth_timeout".into())
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A revoked session's token in the auth frame.
    app.logout_bearer(&tokens.access).await;
    let mut ws = app.ws_connect(&[]).await.unwrap();
    send_json(&mut ws, json!({"type": "auth", "token": tokens.access})).await;
    assert_eq!(expect_close(&mut ws, Duration::from_secs(3)).await.0, 4403);
}

#[tokio::test]
async fn bad_frames_are_answered_without_closing() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
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
async fn rooms_deliver_over_websocket_and_http_stamped_with_the_sender() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let (mut a, _) = app.ws_bearer(&alice.access).await;
    let (mut b, _) = app.ws_bearer(&bob.access).await;
    for ws in [&mut a, &mut b] {
        send_json(ws, json!({"type": "subscribe", "room": "lobby"})).await;
        assert_eq!(
            next_json(ws).await,
            json!({"type": "subscribed", "room": "lobby"})
        );
    }
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

    let resp = app
        .http
        .post(app.url("/api/rooms/lobby/messages"))
        .bearer_auth(&bob.access)
        .json(&json!({"body": "from http"}))
        .send()
        .await
        .unwrap();
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
        .http
        .post(app.url("/api/rooms/lobby/messages"))
        .bearer_auth(&bob.access)
        .json(&json!({"body": "again"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["delivered"], 1);
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
    let big = json!({"type": "publish", "room": "r", "body": "x".repeat(70 * 1024)}).to_string();
    ws.send(Message::Text(big.into())).await.unwrap();
    assert_eq!(expect_close(&mut ws, Duration::from_secs(3)).await.0, 1009);
}

#[tokio::test]
async fn logout_closes_that_sessions_sockets_within_a_second_and_no_others() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let mine = app.login_tokens(&email).await;
    let other_session = app.login_tokens(&email).await;
    let (mut a1, _) = app.ws_bearer(&mine.access).await;
    let (mut a2, _) = app.ws_bearer(&mine.access).await;
    let (mut other, _) = app.ws_bearer(&other_session.access).await;

    let started = Instant::now();
    assert_eq!(
        app.logout_bearer(&mine.access).await.status(),
        StatusCode::NO_CONTENT
    );
    for ws in [&mut a1, &mut a2] {
        let (code, reason) = expect_close(ws, Duration::from_secs(1)).await;
        assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_alive(&mut other).await;
}

#[tokio::test]
async fn revoking_a_session_or_all_sessions_closes_their_sockets() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let one = app.login_tokens(&email).await;
    let two = app.login_tokens(&email).await;
    let stranger = app.user_with_tokens().await;
    let (mut ws_two, _) = app.ws_bearer(&two.access).await;
    let (mut ws_one, _) = app.ws_bearer(&one.access).await;
    let (mut ws_stranger, _) = app.ws_bearer(&stranger.access).await;

    let resp = app
        .bearer(
            reqwest::Method::DELETE,
            &format!("/api/sessions/{}", two.session_id),
            &one.access,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        expect_close(&mut ws_two, Duration::from_secs(1)).await.0,
        4403
    );
    assert_alive(&mut ws_one).await;

    let resp = app
        .bearer(reqwest::Method::DELETE, "/api/sessions", &one.access)
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        expect_close(&mut ws_one, Duration::from_secs(1)).await.0,
        4403
    );
    assert_alive(&mut ws_stranger).await;
}

#[tokio::test]
async fn refresh_token_reuse_closes_the_sessions_sockets() {
    let app = spawn_with(|c| c.refresh_reuse_grace = Duration::from_secs(0)).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
    assert_eq!(app.refresh(&tokens.refresh).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.refresh(&tokens.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(1)).await,
        (4403, "session_revoked".into())
    );
}

#[tokio::test]
async fn a_socket_closes_when_its_session_expires() {
    let app = spawn_with(|c| c.session_ttl = Duration::from_secs(2)).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(4)).await,
        (4403, "session_expired".into())
    );
}

#[tokio::test]
async fn a_handshake_flood_gets_429_and_forged_forwarding_headers_do_not_help() {
    let app = spawn_with(|c| {
        c.ws_handshake_per_second = 1;
        c.ws_handshake_burst = 3;
    })
    .await;
    let mut refused = None;
    for i in 0..10 {
        let spoof = format!("10.0.0.{i}");
        let result = app
            .ws_connect(&[
                ("x-forwarded-for", &spoof),
                ("x-real-ip", &spoof),
                ("forwarded", &format!("for={spoof}")),
            ])
            .await;
        if let Err(e) = result {
            refused = Some((i, e));
            break;
        }
    }
    let (attempt, err) = refused.expect("the flood is refused");
    assert_eq!(attempt, 3, "the burst of 3 passes, the 4th is refused");
    assert_eq!(handshake_status(&err), 429);
    match &err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
        }
        _ => unreachable!(),
    }
    assert_eq!(handshake_body(&err)["error"], "rate_limited");
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let app = spawn_with(|c| {
        c.ws_handshake_per_second = 1;
        c.ws_handshake_burst = 1;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    // Behind a trusted proxy, each forwarded client has its own budget.
    for i in 0..4 {
        let client = format!("203.0.113.{i}");
        app.ws_connect(&[("x-forwarded-for", &client)])
            .await
            .expect("distinct clients behind the proxy");
    }
    let err = app
        .ws_connect(&[("x-forwarded-for", "203.0.113.0")])
        .await
        .unwrap_err();
    assert_eq!(handshake_status(&err), 429);
}

#[tokio::test]
async fn a_flooding_socket_is_closed_with_4429() {
    let app = spawn_with(|c| c.ws_messages_per_second = 5).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
    for _ in 0..30 {
        if ws
            .send(Message::Text(json!({"type": "ping"}).to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(3)).await,
        (4429, "rate_limited".into())
    );
}

#[tokio::test]
async fn a_user_may_hold_only_so_many_sockets() {
    let app = spawn_with(|c| c.ws_max_sockets_per_user = 2).await;
    let tokens = app.user_with_tokens().await;
    let (_a, _) = app.ws_bearer(&tokens.access).await;
    let (_b, _) = app.ws_bearer(&tokens.access).await;
    let bearer = format!("Bearer {}", tokens.access);
    let err = app
        .ws_connect(&[("authorization", &bearer)])
        .await
        .unwrap_err();
    assert_eq!(handshake_status(&err), 429);
    assert_eq!(handshake_body(&err)["error"], "too_many_sockets");
    let other = app.user_with_tokens().await;
    app.ws_bearer(&other.access).await;
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let mut app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut authed, _) = app.ws_bearer(&tokens.access).await;
    let mut pending = app.ws_connect(&[]).await.unwrap();
    app.stop();
    for ws in [&mut authed, &mut pending] {
        assert_eq!(
            expect_close(ws, Duration::from_secs(3)).await,
            (1001, "shutdown".into())
        );
    }
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    use tokio::io::AsyncReadExt;
    let app = spawn_with(|c| c.ws_heartbeat = Duration::from_secs(1)).await;
    let tokens = app.user_with_tokens().await;
    let (ws, welcome) = app.ws_bearer(&tokens.access).await;
    assert_eq!(welcome["heartbeat_s"], 1);
    // Not reading means not answering the server's pings. Read the raw bytes
    // afterwards: a WebSocket client would try to answer the queued pings on a
    // connection the server has already closed.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let tokio_tungstenite::MaybeTlsStream::Plain(mut tcp) = ws.into_inner() else {
        panic!("plain TCP expected");
    };
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut bytes))
        .await
        .expect("the server closed the connection")
        .ok();
    let reason = b"heartbeat_timeout";
    let mut close = vec![0x88, (2 + reason.len()) as u8, 0x03, 0xE8];
    close.extend_from_slice(reason);
    assert!(
        bytes.windows(close.len()).any(|w| w == close.as_slice()),
        "no close 1000 heartbeat_timeout in {bytes:?}"
    );
}

#[tokio::test]
async fn a_reading_peer_survives_heartbeats() {
    let app = spawn_with(|c| c.ws_heartbeat = Duration::from_secs(1)).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
    // Reading lets the client answer pings; the socket outlives three intervals.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(4500);
    let mut pings = 0;
    while let Ok(frame) =
        tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut ws)).await
    {
        match frame {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("only pings expected, got {other:?}"),
        }
    }
    assert!(pings >= 3, "{pings} pings");
    assert_alive(&mut ws).await;
}

#[tokio::test]
async fn a_socket_may_join_only_so_many_rooms() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
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
async fn binary_floods_count_against_the_rate_too() {
    let app = spawn_with(|c| c.ws_messages_per_second = 5).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
    for _ in 0..30 {
        if ws
            .send(Message::Binary(vec![0u8; 16].into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(3)).await,
        (4429, "rate_limited".into())
    );
}

#[tokio::test]
async fn a_socket_closes_when_its_session_goes_idle_and_sockets_do_not_keep_it_alive() {
    let app = spawn_with(|c| {
        c.session_idle = Duration::from_secs(2);
        c.sweep = Duration::from_secs(1);
    })
    .await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (4403, "session_expired"));
    assert_eq!(
        app.me_bearer(&tokens.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
