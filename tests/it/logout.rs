//! Logging out: by Bearer token, and by cookie from an allowed Origin.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn logout_ends_access_and_refresh_tokens_at_once() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let resp = app.logout(&tokens).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let me = app.me(&tokens).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let www = me.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.starts_with("Bearer"), "{www}");
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["error"], "session_revoked");

    let refresh = app.refresh(&tokens.refresh).await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.logout(&tokens).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cookie_logout_needs_origin_and_clears_both_cookies() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;

    let csrf = app
        .logout(cookies.both())
        .origin("http://attacker.example")
        .await;
    assert_eq!(csrf.status(), StatusCode::FORBIDDEN);
    let body: Value = csrf.json().await.unwrap();
    assert_eq!(body["error"], "origin_refused");

    let resp = app.logout(cookies.both()).origin(&app.origin()).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let lines = set_cookie_lines(&resp);
    for name in ["doorman_access", "doorman_refresh"] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name}=")))
            .expect(name);
        assert!(line.contains("Max-Age=0"), "{line}");
    }
    let me = app.me(cookies.access()).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}
