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
