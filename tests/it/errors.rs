//! Error answers: no echo of credentials, and generic 500s that carry a request id.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn error_bodies_do_not_echo_credentials() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let resp = app
        .login_json(&json!({"email": "a@example.org", "password": PASSWORD, "mode": tokens.access}))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&tokens.access), "{text}");
    let resp = app.me(Bearer(&format!("{}x", tokens.access))).await;
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&tokens.access[..40]), "{text}");
}

#[tokio::test]
async fn a_server_failure_is_a_generic_500_with_a_request_id() {
    use sea_orm::{ConnectionTrait, Database};
    let app = spawn_app().await;
    let email = app.new_user().await;
    // Break the database under the running server.
    let db = Database::connect(&app.database_url).await.unwrap();
    db.execute_unprepared("DROP TABLE refresh_tokens")
        .await
        .unwrap();
    db.close().await.ok();
    let resp = app.login(&email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "internal_error");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&request_id), "{message}");
    for leak in [
        "refresh_tokens",
        "SQL",
        "sqlx",
        "sea_orm",
        "no such table",
        "relation",
        "/",
    ] {
        assert!(!message.contains(leak), "{message} reveals {leak}");
    }
}

#[tokio::test]
async fn parse_errors_never_repeat_what_was_sent() {
    let app = spawn_app().await;
    let secret = "Hunter2Secret99";
    for body in [
        json!({"email": "a@b.co", "password": "x", "mode": secret}),
        json!({"email": "a@b.co", "password": "x", "mode": 12345678}),
        json!({"email": "a@b.co", "password": "x", "mode": {secret: secret}}),
        json!(secret),
        json!(1234567890123_u64),
        json!([secret]),
    ] {
        let resp = app.login_json(&body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains(secret), "{body} echoed: {text}");
        assert!(!text.contains("12345678"), "{body} echoed: {text}");
    }
    // A content type may be a token pasted in the wrong header.
    let token = "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.e30.c2ln";
    let resp = app
        .http
        .post(app.url("/api/auth/login"))
        .header("content-type", token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("eyJ0eXAi"), "echoed: {text}");
    assert!(text.contains("application/json"), "{text}");
}
