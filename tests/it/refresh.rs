//! Refreshing: rotation, the reuse grace window, and refresh by cookie.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn refresh_rotates_the_pair_and_spends_the_old_token() {
    let app = spawn_with(|c| c.refresh_reuse_grace = Duration::ZERO).await;
    let first = app.user_with_tokens().await;
    let resp = app.refresh(&first.refresh).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let second = Tokens::from_json(&resp.json().await.unwrap());
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(app.me(&second).await.status(), StatusCode::OK);
    // The successor rotates too.
    let third = app.refresh(&second.refresh).await;
    assert_eq!(third.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_reused_refresh_token_after_the_grace_window_revokes_the_session() {
    const GRACE: Duration = Duration::from_millis(200);
    let app = spawn_with(|c| c.refresh_reuse_grace = GRACE).await;
    let first = app.user_with_tokens().await;
    let second = Tokens::from_response(app.refresh(&first.refresh).await).await;
    // The first token was spent before its answer arrived: the window is over by now.
    sleep_past(Instant::now() + GRACE).await;

    let reuse = app.refresh(&first.refresh).await;
    assert_eq!(reuse.status(), StatusCode::UNAUTHORIZED);
    let body: Value = reuse.json().await.unwrap();
    assert_eq!(body["error"], "refresh_token_reused");

    // The whole session is gone: its access token and its newest refresh token.
    let me = app.me(&second).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["error"], "session_revoked");
    assert_eq!(
        app.refresh(&second.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn concurrent_refreshes_inside_the_grace_window_keep_the_session() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let results =
        futures_util::future::join_all((0..4).map(|_| app.refresh(&tokens.refresh).send())).await;
    let mut newest = None;
    for resp in results {
        assert_eq!(resp.status(), StatusCode::OK);
        newest = Some(Tokens::from_json(&resp.json().await.unwrap()));
    }
    let newest = newest.unwrap();
    assert_eq!(app.me(&newest).await.status(), StatusCode::OK);
    assert_eq!(app.me(&tokens).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_token_presented_again_in_the_grace_window_gets_the_same_successor() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let results =
        futures_util::future::join_all((0..5).map(|_| app.refresh(&tokens.refresh).send())).await;
    let mut successors = std::collections::HashSet::new();
    for resp in results {
        assert_eq!(resp.status(), StatusCode::OK);
        successors.insert(Tokens::from_json(&resp.json().await.unwrap()).refresh);
    }
    // And once more, later but inside the window.
    let again = app.refresh(&tokens.refresh).await;
    assert_eq!(again.status(), StatusCode::OK);
    successors.insert(Tokens::from_json(&again.json().await.unwrap()).refresh);
    assert_eq!(successors.len(), 1, "one successor, not {successors:?}");

    // The chain goes on from the one successor, and the session holds exactly one
    // unused refresh token.
    let successor = successors.into_iter().next().unwrap();
    let next = app.refresh(&successor).await;
    assert_eq!(next.status(), StatusCode::OK);
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE used_at IS NULL",
        ))
        .await
        .unwrap()
        .unwrap();
    let unused: i64 = row.try_get("", "n").unwrap();
    assert_eq!(unused, 1);
}

#[tokio::test]
async fn garbage_refresh_tokens_are_401_and_change_nothing() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    for bad in ["", "x", &tokens.access, &format!("{}x", tokens.refresh)] {
        let resp = app.refresh(bad).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
    let resp = app.refresh_json(Anonymous, &json!({})).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "missing_credentials");
    assert_eq!(app.refresh(&tokens.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn cookie_refresh_needs_an_allowed_origin_and_rotates_the_cookies() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;

    let without_origin = app.refresh_cookie(cookies.refresh()).await;
    assert_eq!(without_origin.status(), StatusCode::FORBIDDEN);
    let foreign = app
        .refresh_cookie(cookies.refresh())
        .origin("http://evil.example")
        .await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);

    let resp = app
        .refresh_cookie(cookies.refresh())
        .origin(&app.origin())
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let lines = set_cookie_lines(&resp);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("access_token").is_none());
    let new_refresh = cookie_value(&lines, "doorman_refresh").unwrap();
    assert_ne!(new_refresh, cookies.refresh);
}

#[tokio::test]
async fn cookie_refresh_accepts_no_body_at_all() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let cookies = app.login_cookies(&email).await;
    // What `fetch(url, {method: "POST", credentials: "include"})` sends.
    let resp = app
        .refresh_without_body(cookies.refresh())
        .origin(&app.origin())
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["mode"], "cookie");

    // A body without a type still says which header is missing, by name. Raw: the
    // request is deliberately malformed.
    let resp = app
        .http
        .post(app.url("/api/auth/refresh"))
        .header("origin", app.origin())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("`content-type`"),
        "{body}"
    );
    // Without any credential, no body is a plain 401.
    let resp = app.refresh_without_body(Anonymous).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// Cookie tossing: behind TLS at `https://app.example.test`, a page on a sibling
/// (`https://evil.example.test`) can set a cookie with `Domain=example.test`, but
/// never a `__Host-` one. Its planted refresh token (of the attacker's own account)
/// must not sign the victim's browser in at the next cookie refresh.
#[tokio::test]
async fn a_refresh_cookie_planted_by_a_sibling_subdomain_is_never_read() {
    const PUBLIC: &str = "https://app.example.test";
    let app = spawn_with(|c| c.public_url = Some(PUBLIC.parse().unwrap())).await;
    let attacker = app.new_user().await;
    let login = app.login_cookie_mode(&attacker, PASSWORD).await;
    let planted = cookie_value(&set_cookie_lines(&login), "__Host-doorman_refresh")
        .expect("the host's refresh cookie");
    // What a sibling can plant: any name but a `__Host-` one.
    for name in ["__Secure-doorman_refresh", "doorman_refresh"] {
        let tossed = app
            .refresh_cookie(Credential::Cookie(format!("{name}={planted}")))
            .origin(PUBLIC)
            .await;
        let lines = set_cookie_lines(&tossed);
        assert!(
            !lines.iter().any(|l| l.contains("doorman_access=ey")),
            "{name}: {lines:?}"
        );
        assert_error(tossed, 401, "missing_credentials").await;
    }
    // The cookie the host set itself still refreshes.
    let own = app
        .refresh_cookie(Credential::Cookie(format!(
            "__Host-doorman_refresh={planted}"
        )))
        .origin(PUBLIC)
        .await;
    assert_eq!(own.status(), StatusCode::OK);
}

/// Logging out over https also expires the refresh cookie of the name it had before
/// its `__Host-` prefix, so browsers that still hold one drop it.
#[tokio::test]
async fn logout_over_https_clears_the_old_refresh_cookie_too() {
    const PUBLIC: &str = "https://app.example.test";
    let app = spawn_with(|c| c.public_url = Some(PUBLIC.parse().unwrap())).await;
    let email = app.new_user().await;
    let tokens = app.login_tokens(&email).await;
    let out = app.logout(&tokens).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let lines = set_cookie_lines(&out);
    for (name, path) in [
        ("__Host-doorman_access=", "Path=/;"),
        ("__Host-doorman_refresh=", "Path=/;"),
        ("__Secure-doorman_refresh=", "Path=/api/auth;"),
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {lines:?}"));
        assert!(line.contains("Max-Age=0") && line.contains(path), "{line}");
    }
}
