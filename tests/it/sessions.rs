//! The session list, revoking one or all sessions, and session expiry.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn sessions_are_listed_and_revoked_only_by_their_owner() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let one = app.login_tokens(&email).await;
    let two = app.login_tokens(&email).await;
    let stranger = app.user_with_tokens().await;

    let list: Value = app.sessions(&one).await.json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], one.session_id.as_str());
    assert_eq!(current[0]["ip"], "127.0.0.1");

    // Someone else's session id is a 404, and stays alive.
    let resp = app.revoke_session(&stranger, &two.session_id).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.me(&two).await.status(), StatusCode::OK);
    let random = app
        .revoke_session(&one, &uuid::Uuid::new_v4().to_string())
        .await;
    assert_eq!(random.status(), StatusCode::NOT_FOUND);
    let malformed = app.revoke_session(&one, "not-a-uuid").await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    let resp = app.revoke_session(&one, &two.session_id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&two).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&one).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoking_all_sessions_logs_out_everywhere_but_not_other_users() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let one = app.login_tokens(&email).await;
    let two = app.login_tokens(&email).await;
    let stranger = app.user_with_tokens().await;
    let resp = app.revoke_all_sessions(&one).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&one).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&two).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&two.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&stranger).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_session_refuses_its_tokens() {
    const TTL: Duration = Duration::from_millis(600);
    let app = spawn_with(|c| c.session_ttl = TTL).await;
    let tokens = app.user_with_tokens().await;
    // The session began before the login answered.
    let expired_by = Instant::now() + TTL;
    assert_eq!(app.me(&tokens).await.status(), StatusCode::OK);
    sleep_past(expired_by).await;
    let me = app.me(&tokens).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["error"], "session_expired");
    assert_eq!(
        app.refresh(&tokens.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revoking_ones_own_expired_session_is_404() {
    const TTL: Duration = Duration::from_millis(500);
    let app = spawn_with(|c| c.session_ttl = TTL).await;
    let email = app.new_user().await;
    let old = app.login_tokens(&email).await;
    sleep_past(Instant::now() + TTL).await;
    let fresh = app.login_tokens(&email).await;
    let resp = app.revoke_session(&fresh, &old.session_id).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
