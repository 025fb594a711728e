//! Size and shape bounds on what a client may send: header and body sizes, and
//! bodies that are not the JSON they claim to be. Raw requests where the bytes are
//! the point.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn huge_credential_headers_get_431() {
    let app = spawn_app().await;
    let huge = "a".repeat(20 * 1024);
    let resp = app
        .me(Credential::Cookie(format!("doorman_access={huge}")))
        .await;
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let resp = app.me(Bearer(&huge)).await;
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "headers_too_large");
}

#[tokio::test]
async fn oversized_bodies_get_413_even_when_chunked() {
    let app = spawn_app().await;
    let big = json!({"email": "a@example.org", "password": "x".repeat(100 * 1024)}).to_string();
    let resp = app
        .http
        .post(app.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(4096)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let resp = app
        .http
        .post(app.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
    // Nothing was created.
    assert_eq!(
        app.register("a@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn malformed_bodies_get_400_and_change_nothing() {
    let app = spawn_app().await;
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let send = |body: Vec<u8>| {
        app.http
            .post(app.url("/api/auth/register"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        deep.into_bytes(),
        b"{\"email\": \"\xff\xfe@example.org\", \"password\": \"correct horse\"}".to_vec(),
        b"\x00\x01\x02".to_vec(),
        b"{\"email\": \"a@example.org\"}".to_vec(),
    ] {
        let resp = send(body).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string());
    }
    let crlf = app
        .register_json(&json!({"email": "c@example.org", "password": PASSWORD, "display_name": "Eve\r\nSet-Cookie: x=1"}))
        .await;
    assert_eq!(crlf.status(), StatusCode::BAD_REQUEST);
    let crlf_email = app
        .register_json(&json!({"email": "c@exa\r\nmple.org", "password": PASSWORD}))
        .await;
    assert_eq!(crlf_email.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.register("c@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
}
