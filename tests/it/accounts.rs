//! Registration: who may sign up, with what, and what comes back.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn register_creates_a_user_with_a_normalised_email() {
    let app = spawn_app().await;
    let resp = app.register("  Ann.Lee@Example.ORG ", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let user: Value = resp.json().await.unwrap();
    assert_eq!(user["email"], "ann.lee@example.org");
    assert_eq!(user["display_name"], "ann.lee");
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert!(user.get("password_hash").is_none());
}

#[tokio::test]
async fn registering_an_email_twice_in_any_case_is_409() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("bob@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let resp = app.register("BOB@example.org", "another password").await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "email_taken");
}

#[tokio::test]
async fn invalid_registration_input_is_400_with_the_json_error_shape() {
    let app = spawn_app().await;
    for (email, password) in [
        ("not-an-email", PASSWORD),
        ("a@example.org", "short"),
        ("a@example.org", &"x".repeat(129)),
    ] {
        let resp = app.register(email, password).await;
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "{email} / {password}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_input");
        assert!(body["message"].is_string());
    }
    // Raw: the test is about a body that is not JSON at all.
    let resp = app
        .http
        .post(app.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");
}

#[tokio::test]
async fn json_numbers_and_booleans_are_not_strings() {
    let app = spawn_app().await;
    for body in [
        json!({"email": "n@example.org", "password": 12345678}),
        json!({"email": "n@example.org", "password": PASSWORD, "display_name": 0}),
        json!({"email": true, "password": PASSWORD}),
    ] {
        let resp = app.register_json(&body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let tokens = app.user_with_tokens().await;
    let resp = app
        .publish_json(&tokens, "lobby", &json!({"body": 42}))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
