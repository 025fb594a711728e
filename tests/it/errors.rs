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

/// A refused body or parameter says which field breaks which rule, in plain words:
/// no library type names (`string_password`), no "verification failed", no value
/// repeated (issue 32, item 4).
#[tokio::test]
async fn refused_input_names_the_field_and_the_rule() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let secret = "hunter2 is my password";
    let email_rule = "email: local@domain.tld: one @, a dot inside the domain, no whitespace, control characters or any of \"\\<>()[],;:";
    for (path, body, message) in [
        ("/api/auth/register", json!({"email": "a@example.org", "password": "short"}), "password: 8 to 128 characters".to_owned()),
        ("/api/auth/register", json!({"email": "a@example.org"}), "password: required".to_owned()),
        ("/api/auth/register", json!({"email": 5, "password": secret}), "email: must be a string".to_owned()),
        ("/api/auth/register", json!({"email": secret, "password": secret}), email_rule.to_owned()),
        (
            "/api/auth/register",
            json!({"email": "a@example.org", "password": secret, "display_name": "   "}),
            "display_name: 1 to 64 characters with at least one that is not a space, no control characters".to_owned(),
        ),
        ("/api/auth/register", json!([secret]), "must be a JSON object".to_owned()),
        ("/api/auth/login", json!({"email": "a@example.org", "password": secret, "mode": secret}), "mode: one of token, cookie".to_owned()),
        ("/api/auth/login", json!({"password": [secret]}), "email: required; password: must be a string".to_owned()),
    ] {
        let resp = app.http.post(app.url(path)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer, json!({"error": "invalid_input", "message": message}), "{body}");
    }
    // With a session: a room name, a message body, a path parameter.
    let authed = |req: reqwest::RequestBuilder| req.bearer_auth(&tokens.access);
    for (req, message) in [
        (
            authed(app.http.post(app.url("/api/rooms"))).json(&json!({"name": "lobby"})),
            "public rooms have no owner or members; only private: rooms do",
        ),
        (
            authed(app.http.post(app.url("/api/rooms/lobby/messages"))).json(&json!({"body": ""})),
            "body: must not be empty",
        ),
        (
            authed(app.http.delete(app.url("/api/sessions/not-a-uuid"))),
            "id: must be a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6",
        ),
    ] {
        let answer: Value = req.send().await.unwrap().json().await.unwrap();
        assert_eq!(
            answer,
            json!({"error": "invalid_input", "message": message})
        );
    }
    // A body that is not JSON did not parse at all: `bad_request`, with where.
    let resp = app
        .http
        .post(app.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body("{\"email\": hunter2}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"error": "bad_request", "message": "the body is not valid JSON: expected value at line 1 column 11"})
    );
}

/// Every request body the spec documents, every one of its fields: a value of the
/// wrong type is answered `invalid_input` naming that field, in words a person
/// reads (no parser's type names or phrases).
#[tokio::test]
async fn every_documented_body_names_a_wrong_field() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let spec: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, methods) in spec["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let Some(target) =
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            else {
                continue;
            };
            let schema = spec.pointer(target.trim_start_matches('#')).unwrap();
            let url = path
                .replace("{room}", "lobby")
                .replace("{user_id}", "3fa85f64-5717-4562-b3fc-2c963f66afa6")
                .replace("{id}", "3fa85f64-5717-4562-b3fc-2c963f66afa6");
            for field in schema["properties"].as_object().unwrap().keys() {
                let req = match method.as_str() {
                    "post" => app.http.post(app.url(&url)),
                    "put" => app.http.put(app.url(&url)),
                    "patch" => app.http.patch(app.url(&url)),
                    other => panic!("a body on {other}"),
                };
                let resp = req
                    .bearer_auth(&tokens.access)
                    .json(&json!({ field: [1] }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    resp.status(),
                    StatusCode::BAD_REQUEST,
                    "{method} {path} {field}"
                );
                let answer: Value = resp.json().await.unwrap();
                let message = answer["message"].as_str().unwrap();
                assert_eq!(
                    answer["error"], "invalid_input",
                    "{method} {path}: {answer}"
                );
                assert!(
                    message.contains(&format!("{field}: ")),
                    "{method} {path}: {message}"
                );
                for internal in ["parse", "verification", "string_", "Request\"", "`"] {
                    assert!(!message.contains(internal), "{method} {path}: {message}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} fields checked");
}
