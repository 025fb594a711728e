//! What an attacker cannot do: CORS, throttling, hostile input, server errors.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn cors_answers_listed_origins_only_and_never_with_a_wildcard() {
    let app =
        spawn_with(|c| c.allowed_origins = vec!["https://app.example.org".parse().unwrap()]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://app.example.org").await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );

    for origin in [
        "https://evil.example.org",
        "null",
        "https://app.example.org.evil.org",
    ] {
        let refused = preflight(origin).await.unwrap();
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin} got CORS headers"
        );
    }

    let tokens = app.user_with_tokens().await;
    let resp = app
        .http
        .get(app.url("/api/me"))
        .bearer_auth(&tokens.access)
        .header("origin", "https://app.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let resp = app
        .http
        .get(app.url("/api/me"))
        .bearer_auth(&tokens.access)
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn logins_are_throttled_per_ip_even_with_the_right_password() {
    let app = spawn_with(|c| c.login_per_minute = 3).await;
    let email = app.new_user().await;
    for _ in 0..3 {
        let resp = app
            .post_json(
                "/api/auth/login",
                json!({"email": email, "password": "wrong password"}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = app
        .post_json(
            "/api/auth/login",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
}

#[tokio::test]
async fn registration_and_refresh_are_throttled_per_ip() {
    let app = spawn_with(|c| c.login_per_minute = 2).await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(
            app.register(&format!("r{i}@example.org"), PASSWORD)
                .await
                .status(),
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    let mut last = StatusCode::OK;
    for _ in 0..20 {
        last = app.refresh("not-a-token").await.status();
        if last == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn long_unicode_passwords_are_neither_truncated_nor_mangled() {
    let app = spawn_app().await;
    let password: String = "pässwörd-🔑-".chars().cycle().take(127).collect::<String>() + "A";
    assert_eq!(password.chars().count(), 128);
    assert_eq!(
        app.register("uni@example.org", &password).await.status(),
        StatusCode::CREATED
    );
    let ok = app
        .post_json(
            "/api/auth/login",
            json!({"email": "uni@example.org", "password": password}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let last_char_differs = password[..password.len() - 1].to_owned() + "B";
    let wrong = app
        .post_json(
            "/api/auth/login",
            json!({"email": "uni@example.org", "password": last_char_differs}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn huge_credential_headers_get_431() {
    let app = spawn_app().await;
    let huge = "a".repeat(20 * 1024);
    let resp = app
        .get_with_cookie("/api/me", &format!("doorman_access={huge}"))
        .await;
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let resp = app
        .http
        .get(app.url("/api/me"))
        .header("authorization", format!("Bearer {huge}"))
        .send()
        .await
        .unwrap();
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
        .post_json(
            "/api/auth/register",
            json!({"email": "c@example.org", "password": PASSWORD, "display_name": "Eve\r\nSet-Cookie: x=1"}),
        )
        .await;
    assert_eq!(crlf.status(), StatusCode::BAD_REQUEST);
    let crlf_email = app
        .post_json(
            "/api/auth/register",
            json!({"email": "c@exa\r\nmple.org", "password": PASSWORD}),
        )
        .await;
    assert_eq!(crlf_email.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.register("c@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn error_bodies_do_not_echo_credentials() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let resp = app
        .post_json(
            "/api/auth/login",
            json!({"email": "a@example.org", "password": PASSWORD, "mode": tokens.access}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&tokens.access), "{text}");
    let resp = app
        .http
        .get(app.url("/api/me"))
        .header("authorization", format!("Bearer {}x", tokens.access))
        .send()
        .await
        .unwrap();
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
    let resp = app
        .post_json(
            "/api/auth/login",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
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
async fn json_numbers_and_booleans_are_not_strings() {
    let app = spawn_app().await;
    for body in [
        json!({"email": "n@example.org", "password": 12345678}),
        json!({"email": "n@example.org", "password": PASSWORD, "display_name": 0}),
        json!({"email": true, "password": PASSWORD}),
    ] {
        let resp = app.post_json("/api/auth/register", body.clone()).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let tokens = app.user_with_tokens().await;
    let resp = app
        .http
        .post(app.url("/api/rooms/lobby/messages"))
        .bearer_auth(&tokens.access)
        .json(&json!({"body": 42}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
