//! Hostile clients (issue 10): foreign cookie bytes, body-less cookie refresh,
//! refresh chains, frame floods, publish floods and account lockout.

use std::time::Duration;

use futures_util::SinkExt;
use reqwest::{StatusCode, header::HeaderValue};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::helpers::*;

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
        let lines: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        refresh = cookie_value(&lines, "doorman_refresh").unwrap();
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

#[tokio::test]
async fn cookie_refresh_accepts_no_body_at_all() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    // What `fetch(url, {method: "POST", credentials: "include"})` sends.
    let resp = app
        .http
        .post(app.url("/api/auth/refresh"))
        .header("cookie", cookies.refresh_header())
        .header("origin", app.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["mode"], "cookie");

    // A body without a type still says which header is missing, by name.
    let resp = app
        .http
        .post(app.url("/api/auth/refresh"))
        .header("origin", app.origin())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("`content-type`"),
        "{body}"
    );
    // Without any credential, no body is a plain 401.
    let resp = app
        .http
        .post(app.url("/api/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refresh_token_presented_again_in_the_grace_window_gets_the_same_successor() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let results =
        futures_util::future::join_all((0..5).map(|_| app.refresh(&tokens.refresh))).await;
    let mut successors = std::collections::HashSet::new();
    for resp in results {
        assert_eq!(resp.status(), StatusCode::OK);
        successors.insert(Tokens::from_json(&resp.json().await.unwrap()).refresh);
    }
    // And once more, later but inside the window.
    let again = app.refresh(&tokens.refresh).await;
    assert_eq!(again.status(), StatusCode::OK);
    successors.insert(Tokens::from_json(&again.json().await.unwrap()).refresh);
    assert_eq!(successors.len(), 1, "one successor, not {successors:?}");

    // The chain goes on from the one successor, and the session holds exactly one
    // unused refresh token.
    let successor = successors.into_iter().next().unwrap();
    let next = app.refresh(&successor).await;
    assert_eq!(next.status(), StatusCode::OK);
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE used_at IS NULL",
        ))
        .await
        .unwrap()
        .unwrap();
    let unused: i64 = row.try_get("", "n").unwrap();
    assert_eq!(unused, 1);
}

#[tokio::test]
async fn a_pong_flood_is_cut_like_any_other_flood() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
    // Unsolicited pongs, as fast as the socket takes them.
    for _ in 0..5000 {
        if ws.send(Message::Pong(Vec::new().into())).await.is_err() {
            break;
        }
    }
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!((code, reason.as_str()), (4429, "rate_limited"));
}

#[tokio::test]
async fn http_and_websocket_publishes_share_one_per_user_budget() {
    let app = spawn_with(|c| c.publish_per_second = 5).await;
    let tokens = app.user_with_tokens().await;
    let publish = |body: &'static str| {
        app.http
            .post(app.url("/api/rooms/lobby/messages"))
            .bearer_auth(&tokens.access)
            .json(&json!({ "body": body }))
            .send()
    };
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..40 {
        let resp = publish("hello").await.unwrap();
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
    let (mut ws, _) = app.ws_bearer(&tokens.access).await;
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
    let resp = app
        .http
        .post(app.url("/api/rooms/lobby/messages"))
        .bearer_auth(&other.access)
        .json(&json!({ "body": "mine" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

/// A login as a browser behind a trusted proxy would send it.
async fn login_from(
    app: &TestApp,
    email: &str,
    password: &str,
    ip: &str,
    device: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}));
    if let Some(device) = device {
        req = req.header("cookie", format!("doorman_device={device}"));
    }
    req.send().await.unwrap()
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    let lines: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    cookie_value(&lines, name)
}

#[tokio::test]
async fn guessing_from_many_ips_never_stops_the_owner_on_a_known_device() {
    // N = 2: two attempts per IP per minute, two failures per (account, IP) per
    // quarter hour, twenty failures per account per hour from unknown devices.
    let app = spawn_with(|c| {
        c.login_per_minute = 2;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let email = app.new_user().await;
    let bystander = app.new_user().await;
    let owner = login_from(&app, &email, PASSWORD, "198.51.100.1", None).await;
    assert_eq!(owner.status(), StatusCode::OK);
    let device = set_cookie(&owner, "doorman_device").expect("a device cookie");
    let line = owner
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|l| l.starts_with("doorman_device="))
        .unwrap()
        .to_owned();
    assert!(
        line.contains("HttpOnly") && line.contains("Path=/api/auth"),
        "{line}"
    );

    // The attacker guesses at full speed from 40 addresses, 3 guesses each, all at
    // once, the email in another case.
    let guesses = (0..40).flat_map(|i| {
        let ip = format!("203.0.113.{i}");
        let email = email.to_uppercase();
        let app = &app;
        (0..3).map(move |_| {
            let (ip, email) = (ip.clone(), email.clone());
            async move { login_from(app, &email, "wrong password", &ip, None).await }
        })
    });
    let answers = futures_util::future::join_all(guesses).await;
    let wrong = answers
        .iter()
        .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(wrong + refused, 120, "every guess answered 401 or 429");
    // The account-wide ceiling bounds what the whole botnet tried.
    assert!(wrong <= 20, "{wrong} guesses were checked");
    assert!(
        wrong >= 19,
        "{wrong}: the ceiling, not less, was let through"
    );
    assert!(
        answers
            .iter()
            .all(|r| r.status() != StatusCode::TOO_MANY_REQUESTS
                || r.headers().contains_key("retry-after"))
    );

    // The owner, on the known device, from yet another address: in.
    let resp = login_from(&app, &email, PASSWORD, "198.51.100.2", Some(&device)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // A wrong password from the device is its own business, and the device cookie
    // of one account means nothing for another.
    let resp = login_from(&app, &email, "typo password", "198.51.100.2", Some(&device)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let forged = format!("{device}x");
    let resp = login_from(&app, &email, PASSWORD, "198.51.100.3", Some(&forged)).await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a forged device is unknown"
    );

    // Unknown devices wait for the ceiling to refill; other accounts do not.
    let resp = login_from(&app, &bystander, PASSWORD, "198.51.100.4", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_correct_password_does_not_count_against_the_budget() {
    let app = spawn_with(|c| {
        c.login_per_minute = 1000;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let email = app.new_user().await;
    // 1000 per quarter hour per (account, IP): far more successes than that pass.
    for _ in 0..5 {
        let resp = login_from(&app, &email, PASSWORD, "198.51.100.9", None).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
