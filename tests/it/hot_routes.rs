//! `GET /healthz` and `GET /api/me` are served by plain poem routes in front of the
//! OpenAPI service (src/api/hot.rs). They must answer exactly as OpenAPI operations
//! do: these tests hold each to a sibling operation (`/readyz`, `/api/sessions`) on
//! status, headers and body, for failures, `HEAD` and `405` alike. `GET /ws` is
//! recognised before poem's router, `HEAD /ws` is not: their refusals must match.

use reqwest::{Client, Method};

use crate::helpers::*;

/// Status, headers (but the per-response `date` and `x-request-id`) and body.
async fn answer(app: &TestApp, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Client::new().request(method, app.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("the server answers");
    let status = resp.status().as_u16();
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date" && *name != "x-request-id")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    assert!(resp.headers().contains_key("x-request-id"), "{path}");
    let body = resp.text().await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self
    }
}

#[tokio::test]
async fn api_me_fails_exactly_as_an_openapi_operation_does() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let bearer = format!("Bearer {}", tokens.access);
    let cookie = format!("doorman_access={}", tokens.access);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("authorization", "Bearer not-a-token")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("authorization", "Bearer")],
        vec![("cookie", "doorman_access=caf\u{e9}")],
        vec![("cookie", "doorman_access=a; doorman_access=b")],
        // A bad bearer never falls through to a good cookie.
        vec![("authorization", "Bearer nope"), ("cookie", &cookie)],
        vec![("authorization", &bearer), ("authorization", &bearer)],
    ];
    for headers in &cases {
        let hot = answer(&app, Method::GET, "/api/me", headers).await;
        let openapi = answer(&app, Method::GET, "/api/sessions", headers).await;
        assert!(hot.status >= 400, "{headers:?}: {hot:?}");
        assert_eq!(hot, openapi, "{headers:?}");
    }

    // A revoked session, the same way through both.
    let revoked = app.user_with_tokens().await;
    let headers = [("authorization", format!("Bearer {}", revoked.access))];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(
        answer(&app, Method::POST, "/api/auth/logout", &headers)
            .await
            .status,
        204
    );
    let hot = answer(&app, Method::GET, "/api/me", &headers).await;
    assert_eq!(hot.status, 401);
    assert_eq!(
        hot,
        answer(&app, Method::GET, "/api/sessions", &headers).await
    );
}

#[tokio::test]
async fn head_and_other_methods_are_answered_as_openapi_operations_answer_them() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let bearer = format!("Bearer {}", tokens.access);
    let auth = [("authorization", bearer.as_str())];

    // HEAD: the GET's head without its body (a different length, so not compared).
    let hot = answer(&app, Method::HEAD, "/api/me", &auth).await;
    let openapi = answer(&app, Method::HEAD, "/api/sessions", &auth).await;
    assert_eq!(hot.status, 200);
    assert_eq!(
        hot.without("content-length"),
        openapi.without("content-length")
    );
    assert_eq!(
        answer(&app, Method::HEAD, "/healthz", &[]).await,
        answer(&app, Method::HEAD, "/readyz", &[]).await
    );
    assert_eq!(
        answer(&app, Method::GET, "/healthz", &[]).await,
        answer(&app, Method::GET, "/readyz", &[]).await
    );

    // Methods a path does not take: 405 with the path's own `Allow`.
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let hot = answer(&app, method.clone(), "/api/me", &auth).await;
        assert_eq!(hot.status, 405, "{method}");
        assert!(
            hot.headers.contains(&("allow".into(), "GET, HEAD".into())),
            "{method}: {hot:?}"
        );
        let openapi = answer(&app, method.clone(), "/api/me/activity", &auth).await;
        assert_eq!(hot, openapi, "{method}");
        let hot = answer(&app, method.clone(), "/healthz", &[]).await;
        assert_eq!(
            hot,
            answer(&app, method.clone(), "/readyz", &[]).await,
            "{method}"
        );
    }
}

#[tokio::test]
async fn ws_refusals_are_the_same_before_and_through_the_router() {
    // `GET /ws` is recognised before poem's router; `HEAD /ws` still goes through
    // it (`RouteMethod` runs the `GET` route). Each refusal before the upgrade must
    // come out the same through both doors, but for the body a `HEAD` drops.
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let cookie = format!("doorman_access={}", tokens.access);
    let upgrade = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        upgrade.iter().chain(extra).copied().collect()
    };
    let cookie_from_elsewhere: Vec<(&str, &str)> = with(&[("origin", "https://evil.example")])
        .into_iter()
        .chain([("cookie", cookie.as_str())])
        .collect();
    let cases: Vec<(u16, Vec<(&str, &str)>)> = vec![
        (400, vec![]),
        (
            400,
            vec![("connection", "upgrade"), ("upgrade", "websocket")],
        ),
        (401, with(&[("authorization", "Bearer not-a-token")])),
        (401, with(&[("authorization", "Basic dXNlcjpwYXNz")])),
        (403, cookie_from_elsewhere),
    ];
    for (status, headers) in &cases {
        let hot = answer(&app, Method::GET, "/ws", headers).await;
        assert_eq!(hot.status, *status, "{headers:?}: {hot:?}");
        let routed = answer(&app, Method::HEAD, "/ws", headers).await;
        let routed = Answer {
            body: hot.body.clone(),
            ..routed.without("content-length")
        };
        assert_eq!(hot.without("content-length"), routed, "{headers:?}");
    }
    // Methods `/ws` does not take: the router's 405, with the path's `Allow`.
    let post = answer(&app, Method::POST, "/ws", &[]).await;
    assert_eq!(post.status, 405);
    assert!(post.headers.contains(&("allow".into(), "GET, HEAD".into())));
}
