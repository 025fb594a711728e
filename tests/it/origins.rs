//! The Origin rule for cookie credentials (CSRF), configured extra origins, and CORS.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn cookie_requests_with_unsafe_methods_follow_the_origin_rule() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    let publish = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut call = app.publish(cookies.access(), "lobby", "hi");
        if let Some(o) = origin {
            call = call.origin(o);
        }
        if let Some(s) = fetch_site {
            call = call.header("sec-fetch-site", s);
        }
        call
    };
    assert_eq!(publish(None, None).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        publish(Some("null"), None).await.status(),
        StatusCode::FORBIDDEN
    );
    let port = app.addr.port();
    for foreign in [
        format!("http://127.0.0.1:{}", port + 1),
        format!("http://127.0.0.1:{port}.evil.org"),
        format!("https://127.0.0.1:{port}"),
        "http://evil.org".to_owned(),
    ] {
        assert_eq!(
            publish(Some(&foreign), None).await.status(),
            StatusCode::FORBIDDEN,
            "{foreign}"
        );
    }
    assert_eq!(
        publish(Some(&app.origin()), None).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        publish(None, Some("same-origin")).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        publish(None, Some("cross-site")).await.status(),
        StatusCode::FORBIDDEN
    );
    // A safe method with a cookie needs no Origin.
    let me = app.me(cookies.access()).await;
    assert_eq!(me.status(), StatusCode::OK);

    // Bearer credentials cannot be forged cross-site: no Origin needed.
    let tokens = app.login_tokens(&email).await;
    let resp = app
        .publish(&tokens, "lobby", "hi")
        .origin("http://evil.org")
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn allowed_origins_from_configuration_may_use_cookies() {
    let app =
        spawn_with(|c| c.allowed_origins = vec!["https://app.example.org".parse().unwrap()]).await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    let resp = app
        .publish(cookies.access(), "lobby", "hi")
        .origin("https://app.example.org")
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn cors_answers_listed_origins_only_and_never_with_a_wildcard() {
    let app =
        spawn_with(|c| c.allowed_origins = vec!["https://app.example.org".parse().unwrap()]).await;
    // Raw: a preflight is its own request shape, sent by browsers, not by clients.
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
    let resp = app.me(&tokens).origin("https://app.example.org").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let resp = app.me(&tokens).origin("https://elsewhere.example").await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}
