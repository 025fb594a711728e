//! `examples/shop.rs`, the reference host app, as its users meet it: its own
//! operations and socket on doorman's one authentication, beside doorman's
//! sign-in and sessions API; on SQLite, and as two processes sharing PostgreSQL.

use std::time::Duration;

use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

async fn shop(envs: &[(&str, String)], log: &std::path::Path) -> ServerProcess {
    let mut all = vec![("DOORMAN_LOGIN_PER_MINUTE", "10000".to_owned())];
    all.extend(envs.iter().cloned());
    ServerProcess::start_program(&example("shop"), &all, log, "/openapi.json").await
}

/// The `hello` of `/feed`, which must come first.
async fn hello(ws: &mut Ws) -> Value {
    let hello = next_json(ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    hello
}

#[tokio::test]
async fn the_shop_puts_one_authentication_on_its_own_operations_and_socket() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let shop = shop(
        &[
            ("DATABASE_URL", db),
            ("DOORMAN_STEP_UP_SECONDS", "1".to_owned()),
        ],
        &dir.path().join("shop.log"),
    )
    .await;

    // doorman's sign-in, at its usual paths.
    let tokens = shop.user_with_tokens().await;
    let email = shop.new_user().await;
    let cookies = shop.login_cookies(&email).await;
    let sessions = shop.sessions(&tokens).await;
    assert_eq!(sessions.status(), StatusCode::OK);

    // The shop's own operation, with either credential.
    let mine = shop.call(Method::GET, "/api/orders", &tokens).await;
    assert_eq!(mine.status(), StatusCode::OK);
    let mine: Value = mine.json().await.unwrap();
    assert_eq!(
        mine,
        json!({"user_id": tokens.user_id, "auth_source": "bearer", "aal": "aal1"})
    );
    let by_cookie: Value = shop
        .call(Method::GET, "/api/orders", cookies.access())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_cookie["auth_source"], "cookie");
    // doorman's errors, exactly.
    let none = shop.call(Method::GET, "/api/orders", Anonymous).await;
    assert!(none.headers().contains_key("www-authenticate"));
    assert_error(none, 401, "missing_credentials").await;
    let bad = shop
        .call(Method::GET, "/api/orders", Bearer("not-a-token"))
        .await;
    assert_error(bad, 401, "invalid_token").await;

    // An unsafe method with the cookie needs an allowed Origin.
    let order = json!({"item": "tea"});
    let forged = shop
        .post_json("/api/orders", cookies.access(), &order)
        .origin("https://evil.example")
        .await;
    assert_error(forged, 403, "origin_refused").await;
    let placed = shop
        .post_json("/api/orders", cookies.access(), &order)
        .origin(&shop.origin())
        .await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let placed: Value = placed.json().await.unwrap();
    assert_eq!(placed["item"], "tea");
    let by_bearer = shop.post_json("/api/orders", &tokens, &order).await;
    assert_eq!(by_bearer.status(), StatusCode::CREATED);
    let malformed = shop
        .post_json("/api/orders", &tokens, &json!({"items": 1}))
        .await;
    assert_error(malformed, 400, "bad_request").await;

    // A sensitive operation of the shop: a recent authentication, or 403 until the
    // session re-authenticates (doorman's own step-up, on the shop's operation).
    let fresh = shop.login_tokens(&email).await;
    let cancel = shop.call(Method::DELETE, "/api/orders", &fresh).await;
    assert_eq!(cancel.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_error(
        shop.call(Method::DELETE, "/api/orders", &fresh).await,
        403,
        "step_up_required",
    )
    .await;
    let reauth = shop
        .post_json("/api/auth/reauth", &fresh, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(reauth.status(), StatusCode::NO_CONTENT);
    let cancel = shop.call(Method::DELETE, "/api/orders", &fresh).await;
    assert_eq!(cancel.status(), StatusCode::OK);

    // The spec documents both schemes on the shop's operations, and doorman's API.
    let spec: Value = shop.get("/openapi.json").await.json().await.unwrap();
    for method in ["get", "post"] {
        let security = &spec["paths"]["/api/orders"][method]["security"];
        assert_eq!(
            *security,
            json!([{"bearerAuth": []}, {"cookieAuth": []}]),
            "{method}"
        );
        assert!(spec["paths"]["/api/orders"][method]["responses"]["401"].is_object());
    }
    for path in ["/api/auth/login", "/api/auth/refresh", "/api/sessions"] {
        assert!(spec["paths"][path].is_object(), "{path}");
    }
    assert_eq!(shop.get("/docs").await.status(), StatusCode::OK);

    // The shop's own socket: Bearer or cookie at the handshake.
    let mut feed = shop.ws_at("/feed", &tokens).await.expect("handshake");
    let hi = hello(&mut feed).await;
    assert_eq!(hi["user_id"], tokens.user_id.as_str());
    assert_eq!(hi["auth_source"], "bearer");
    feed.send(Message::text("two words")).await.unwrap();
    assert_eq!(
        next_json(&mut feed).await,
        json!({"type": "echo", "body": "two words"})
    );
    let mut by_cookie = shop
        .ws_at("/feed", cookies.access())
        .origin(&shop.origin())
        .await
        .expect("handshake");
    assert_eq!(hello(&mut by_cookie).await["auth_source"], "cookie");

    // Refused before the upgrade, with doorman's answers.
    let foreign = shop
        .ws_at("/feed", cookies.access())
        .origin("https://evil.example")
        .await
        .unwrap_err();
    assert_eq!(handshake_status(&foreign), 403);
    let anonymous = shop.ws_at("/feed", Anonymous).await.unwrap_err();
    assert_eq!(handshake_status(&anonymous), 401);
    assert_eq!(handshake_body(&anonymous)["error"], "missing_credentials");

    // Logout closes that session's socket with 4403; the other session's lives.
    assert_eq!(shop.logout(&tokens).await.status(), StatusCode::NO_CONTENT);
    let (code, reason) = expect_close(&mut feed, Duration::from_secs(1)).await;
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    by_cookie.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_json(&mut by_cookie).await["body"], "still here");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DOORMAN_TEST_DATABASE_URL)"]
async fn a_logout_on_one_shop_closes_the_feed_on_the_other() {
    let db = PgDatabase::create()
        .await
        .expect("this test needs DOORMAN_TEST_DATABASE_URL=postgres://…");
    let dir = tempfile::tempdir().unwrap();
    let envs = |name: &str| {
        [
            (
                "DATABASE_URL",
                format!("{}?application_name={name}", db.url),
            ),
            // One public URL behind one load balancer: the tokens' issuer.
            ("DOORMAN_PUBLIC_URL", "http://shop.test".to_owned()),
        ]
    };
    let a = shop(&envs("shop-a"), &dir.path().join("a.log")).await;
    let b = shop(&envs("shop-b"), &dir.path().join("b.log")).await;

    let tokens = a.user_with_tokens().await;
    let other = b.login_tokens(&a.new_user().await).await;
    let mut feed = b.ws_at("/feed", &tokens).await.expect("handshake");
    assert_eq!(hello(&mut feed).await["user_id"], tokens.user_id.as_str());
    let mut bystander = b.ws_at("/feed", &other).await.expect("handshake");
    hello(&mut bystander).await;
    // A token from one instance is good on the other.
    let orders = b.call(Method::GET, "/api/orders", &tokens).await;
    assert_eq!(orders.status(), StatusCode::OK);

    assert_eq!(a.logout(&tokens).await.status(), StatusCode::NO_CONTENT);
    let (code, reason) = expect_close(&mut feed, Duration::from_secs(2)).await;
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    bystander.send(Message::text("ok")).await.unwrap();
    assert_eq!(next_json(&mut bystander).await["body"], "ok");
}
