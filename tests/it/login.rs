//! Logging in: token mode, cookie mode, and one answer for every wrong guess.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn token_login_returns_a_pair_and_me_answers_with_bearer() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let resp = app.login(&email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_expires_in"].as_u64().unwrap() > 0);
    let tokens = Tokens::from_json(&body);
    // 256 random bits, base64url.
    assert_eq!(tokens.refresh.len(), 43);

    let me = app.me(&tokens).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["auth_source"], "bearer");
    assert_eq!(me["session_id"], tokens.session_id.as_str());
    assert_eq!(me["user"]["email"], email.as_str());
}

#[tokio::test]
async fn cookie_login_sets_httponly_cookies_and_puts_no_token_in_the_body() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let resp = app.login_cookie_mode(&email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let set_cookie = set_cookie_lines(&resp);
    let body = resp.text().await.unwrap();
    let access = cookie_value(&set_cookie, "doorman_access").unwrap();
    let refresh = cookie_value(&set_cookie, "doorman_refresh").unwrap();
    assert!(!body.contains(&access) && !body.contains(&refresh));
    assert!(!body.contains("access_token"));
    for line in &set_cookie {
        assert!(line.contains("HttpOnly"), "{line}");
        assert!(line.contains("SameSite=Lax"), "{line}");
        assert!(
            !line.contains("Secure"),
            "plain http must not set Secure: {line}"
        );
    }
    let refresh_line = set_cookie
        .iter()
        .find(|l| l.starts_with("doorman_refresh="))
        .unwrap();
    assert!(refresh_line.contains("Path=/api/auth"), "{refresh_line}");

    let me = app
        .me(Credential::Cookie(format!("doorman_access={access}")))
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["auth_source"], "cookie");
}

#[tokio::test]
async fn https_public_url_makes_cookies_secure_with_host_prefix() {
    let app =
        spawn_with(|c| c.public_url = Some("https://auth.example.org".parse().unwrap())).await;
    let email = app.new_user().await;
    let resp = app.login_cookie_mode(&email, PASSWORD).await;
    let lines = set_cookie_lines(&resp);
    let access = lines
        .iter()
        .find(|l| l.starts_with("__Host-doorman_access="))
        .expect("__Host- cookie");
    assert!(access.contains("Secure") && access.contains("Path=/") && !access.contains("Domain"));
    // The refresh and device cookies too: a sibling subdomain cannot plant a
    // `__Host-` cookie (see refresh::a_refresh_cookie_planted_by_a_sibling_…).
    for name in ["__Host-doorman_refresh=", "__Host-doorman_device="] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {lines:?}"));
        assert!(
            line.contains("Secure") && line.contains("Path=/;") && !line.contains("Domain"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let wrong = app.login(&email, "wrong password").await;
    let unknown = app.login("nobody@example.org", "wrong password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().contains_key("www-authenticate"));
    let a: Value = wrong.json().await.unwrap();
    let b: Value = unknown.json().await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a["error"], "invalid_credentials");
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
    let ok = app.login("uni@example.org", &password).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let last_char_differs = password[..password.len() - 1].to_owned() + "B";
    let wrong = app.login("uni@example.org", &last_char_differs).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}
