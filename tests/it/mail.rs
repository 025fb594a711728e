//! Email verification and password reset, over a real SMTP server on loopback
//! (`mailbox::SmtpSink`) or the development outbox: the links arrive, their tokens
//! work once and not after they expire or the password changes, a reset ends every
//! session and socket, unknown and known addresses answer alike, the limits hold.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;

use crate::helpers::*;
use crate::mailbox::{Mail, Mailbox, SmtpSink};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// A server sending through `sink`.
async fn app_with_smtp(sink: &SmtpSink) -> TestApp {
    let url = sink.url();
    spawn_with(|c| c.smtp_url = Some(url.parse().unwrap())).await
}

/// A server writing its mail into `outbox`.
async fn app_with_outbox(outbox: &Mailbox, adjust: impl FnOnce(&mut doorman::Config)) -> TestApp {
    let dir = outbox.path().to_owned();
    spawn_with(move |c| {
        c.mail_dir = dir;
        adjust(c);
    })
    .await
}

fn verify_prefix(app: &TestApp) -> String {
    format!("{}/#verify-email=", app.url(""))
}

fn reset_prefix(app: &TestApp) -> String {
    format!("{}/#reset-password=", app.url(""))
}

async fn me(app: &TestApp, tokens: &Tokens) -> Value {
    let resp = app.me(tokens).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn activity_kinds(app: &TestApp, tokens: &Tokens) -> Vec<String> {
    let body: Value = app.activity(tokens).await.json().await.unwrap();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs SQL on the app's own database.
async fn sql(app: &TestApp, statement: &str) {
    let db = Database::connect(&app.database_url).await.unwrap();
    db.execute_unprepared(statement).await.unwrap();
    db.close().await.ok();
}

#[tokio::test]
async fn a_verification_link_arrives_over_smtp_and_verifies_the_address_once() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let app = app_with_smtp(&sink).await;
    let email = app.new_user().await;
    let tokens = app.login_tokens(&email).await;
    assert_eq!(
        me(&app, &tokens).await["user"]["email_verified_at"],
        Value::Null
    );

    let resp = app.send_verification(&tokens).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mail = sink.message(1).await;
    assert_eq!(mail.header("To").as_deref(), Some(email.as_str()));
    assert!(
        mail.header("Subject").unwrap().contains("Confirm"),
        "{mail:?}"
    );
    let token = mail.token(&verify_prefix(&app));
    assert_eq!(token.len(), 43, "256 bits, base64url");

    let resp = app.verify_email(&token).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let user = &me(&app, &tokens).await["user"];
    let at = user["email_verified_at"].as_str().expect("verified");
    assert!(at >= user["created_at"].as_str().unwrap(), "{user}");
    assert!(
        activity_kinds(&app, &tokens)
            .await
            .contains(&"email_verified".to_owned())
    );

    // Single use, and nothing left to verify.
    assert_error(app.verify_email(&token).await, 403, "invalid_email_token").await;
    assert_error(
        app.send_verification(&tokens).await,
        409,
        "already_verified",
    )
    .await;
}

#[tokio::test]
async fn verification_tokens_expire_are_replaced_and_are_stored_only_as_hashes() {
    let outbox = Mailbox::new();
    let app = app_with_outbox(&outbox, |_| {}).await;
    let tokens = app.user_with_tokens().await;
    assert_eq!(app.send_verification(&tokens).await.status(), 202);
    let first = outbox.message(1).await.token(&verify_prefix(&app));
    assert_eq!(app.send_verification(&tokens).await.status(), 202);
    let second = outbox.message(2).await.token(&verify_prefix(&app));
    assert_ne!(first, second);
    // A newer link replaces the older one.
    assert_error(app.verify_email(&first).await, 403, "invalid_email_token").await;

    // Only a hash is stored: the token is nowhere in the table.
    let db = Database::connect(&app.database_url).await.unwrap();
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT token_hash, purpose FROM email_tokens",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let hash: String = rows[0].try_get("", "token_hash").unwrap();
    assert_ne!(hash, second);
    assert_eq!(hash.len(), 64);
    db.close().await.ok();

    // 24 hours later (the row aged by hand): expired.
    sql(
        &app,
        "UPDATE email_tokens SET expires_at = created_at WHERE purpose = 'verify_email'",
    )
    .await;
    assert_error(app.verify_email(&second).await, 403, "invalid_email_token").await;
    assert_eq!(
        me(&app, &tokens).await["user"]["email_verified_at"],
        Value::Null
    );
}

#[tokio::test]
async fn the_outbox_holds_one_private_file_per_message() {
    let outbox = Mailbox::new();
    // A directory doorman creates itself, inside the test's.
    let dir = outbox.path().join("outbox");
    let app = spawn_with({
        let dir = dir.clone();
        move |c| c.mail_dir = dir
    })
    .await;
    let tokens = app.user_with_tokens().await;
    assert_eq!(app.send_verification(&tokens).await.status(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let file = loop {
        let files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if let Some(f) = files
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "eml"))
        {
            break f;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no .eml in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600, "a message holds a live link");
        assert_eq!(mode(&dir), 0o700);
    }
    let mail = Mail(std::fs::read_to_string(&file).unwrap());
    assert!(
        mail.header("Message-ID").unwrap().ends_with("@127.0.0.1>"),
        "{mail:?}"
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("doorman <noreply@localhost>")
    );
    assert_eq!(
        app.verify_email(&mail.token(&verify_prefix(&app)))
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn a_password_reset_over_smtp_sets_the_password_and_ends_every_session_and_socket() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let app = app_with_smtp(&sink).await;
    let email = app.new_user().await;
    let tokens = app.login_tokens(&email).await;
    let cookies = app.login_cookies(&email).await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    let (mut cookie_ws, _) = app.ws_welcomed(cookies.access()).await;

    let resp = app.request_reset(&email.to_uppercase()).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mail = sink.message(1).await;
    assert_eq!(mail.header("To").as_deref(), Some(email.as_str()));
    let token = mail.token(&reset_prefix(&app));

    // A password that breaks the rules does not spend the link.
    assert_error(
        app.confirm_reset(&token, "short").await,
        400,
        "invalid_input",
    )
    .await;
    let resp = app.confirm_reset(&token, NEW_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    for socket in [&mut ws, &mut cookie_ws] {
        let (code, reason) = expect_close(socket, Duration::from_secs(2)).await;
        assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    }
    assert_error(app.me(&tokens).await, 401, "session_revoked").await;
    assert_error(app.refresh(&tokens.refresh).await, 401, "session_revoked").await;
    assert_error(
        app.login(&email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let resp = app.login(&email, NEW_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let fresh = Tokens::from_response(resp).await;
    // The link was read at the address: it counts as verified.
    assert!(me(&app, &fresh).await["user"]["email_verified_at"].is_string());
    assert!(
        activity_kinds(&app, &fresh)
            .await
            .contains(&"password_reset".to_owned())
    );

    // Single use.
    assert_error(
        app.confirm_reset(&token, "yet another password").await,
        403,
        "invalid_email_token",
    )
    .await;
}

#[tokio::test]
async fn unknown_and_known_addresses_get_the_same_answer_and_only_an_account_gets_mail() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let app = app_with_smtp(&sink).await;
    let known = app.new_user().await;
    let unknown = format!("nobody-{}@example.org", uuid::Uuid::new_v4().simple());
    let answer = |resp: reqwest::Response| async move {
        let status = resp.status();
        let mut headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id"))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (status, headers, resp.bytes().await.unwrap())
    };
    let mut times = [Vec::new(), Vec::new()];
    let mut answers = Vec::new();
    for round in 0..4 {
        for (i, address) in [&known, &unknown].into_iter().enumerate() {
            let started = std::time::Instant::now();
            let resp = app.request_reset(address).await;
            times[i].push(started.elapsed());
            if round == 0 {
                answers.push(answer(resp).await);
            }
        }
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, StatusCode::ACCEPTED);
    // The work that differs runs after the answer: no request waits on it.
    for t in &mut times {
        t.sort();
    }
    eprintln!(
        "reset request medians: known {:?}, unknown {:?}",
        times[0][2], times[1][2]
    );
    assert!(times[0][2] < Duration::from_millis(250) && times[1][2] < Duration::from_millis(250));
    // Four links for the account (the newest alone works), none for the stranger.
    let mails = sink.wait_for(4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 4);
    for raw in mails {
        assert_eq!(Mail(raw).header("To").as_deref(), Some(known.as_str()));
    }
}

#[tokio::test]
async fn reset_requests_are_limited_per_address_and_per_ip_alike_for_every_address() {
    let outbox = Mailbox::new();
    let app = app_with_outbox(&outbox, |c| {
        c.mail_per_address_per_hour = 2;
        c.login_per_minute = 6;
    })
    .await;
    let known = app.new_user().await;
    let unknown = "stranger@example.org";
    for address in [known.as_str(), unknown] {
        for _ in 0..2 {
            assert_eq!(app.request_reset(address).await.status(), 202);
        }
        let refused = app.request_reset(address).await;
        assert!(refused.headers().contains_key("retry-after"));
        assert_error(refused, 429, "rate_limited").await;
    }
    // Six requests from this IP so far (six allowed a minute): any other address is refused now.
    assert_error(
        app.request_reset("third@example.org").await,
        429,
        "rate_limited",
    )
    .await;
    // From another IP (not believed without a trusted proxy): the same peer, still refused.
    assert_error(
        app.request_reset("fourth@example.org")
            .forwarded_for("203.0.113.9")
            .await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(outbox.wait_for(2).await.len(), 2);
}

#[tokio::test]
async fn mailed_tokens_are_useless_after_a_password_change() {
    let outbox = Mailbox::new();
    let app = app_with_outbox(&outbox, |_| {}).await;
    let email = app.new_user().await;
    let tokens = app.login_tokens(&email).await;
    assert_eq!(app.send_verification(&tokens).await.status(), 202);
    let verify = Mail(outbox.wait_for(1).await[0].clone()).token(&verify_prefix(&app));

    let resp = app.change_password(&tokens, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_error(app.verify_email(&verify).await, 403, "invalid_email_token").await;
    // The changed password still stands.
    assert_eq!(app.login(&email, NEW_PASSWORD).await.status(), 200);
}

/// Outside attack of issue 34: someone holding a session and the password kept
/// changing it, and every change voided the owner's reset link. An outstanding
/// reset link now freezes password changes until it is used or expires.
#[tokio::test]
async fn an_outstanding_reset_link_freezes_password_changes_so_the_owner_wins() {
    let outbox = Mailbox::new();
    let app = app_with_outbox(&outbox, |_| {}).await;
    let email = app.new_user().await;
    let attacker = app.login_tokens(&email).await;
    // The owner asks for a link.
    assert_eq!(app.request_reset(&email).await.status(), 202);
    let reset = Mail(outbox.wait_for(1).await[0].clone()).token(&reset_prefix(&app));
    // The attacker's change is refused while the link is valid, and changes nothing.
    assert_error(
        app.change_password(&attacker, PASSWORD, "attackers new password")
            .await,
        409,
        "reset_pending",
    )
    .await;
    assert_eq!(app.login(&email, PASSWORD).await.status(), 200);
    // The owner's link still works, and ends the attacker's session.
    assert_eq!(
        app.confirm_reset(&reset, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(app.me(&attacker).await, 401, "session_revoked").await;
    // Spent: password changes go through again.
    let owner = Tokens::from_response(app.login(&email, NEW_PASSWORD).await).await;
    let resp = app
        .change_password(&owner, NEW_PASSWORD, "a third password")
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_tokens_are_a_clear_4xx_never_a_5xx() {
    let app = spawn_app().await;
    for bad in ["", "not a token!", &"x".repeat(129)] {
        assert_error(app.verify_email(bad).await, 400, "invalid_input").await;
        assert_error(
            app.confirm_reset(bad, NEW_PASSWORD).await,
            400,
            "invalid_input",
        )
        .await;
    }
    let unknown = "A".repeat(43);
    assert_error(app.verify_email(&unknown).await, 403, "invalid_email_token").await;
    assert_error(
        app.confirm_reset(&unknown, NEW_PASSWORD).await,
        403,
        "invalid_email_token",
    )
    .await;
    let resp = app
        .post_json(
            "/api/auth/password-reset",
            Anonymous,
            &serde_json::json!({"email": "no-at-sign"}),
        )
        .await;
    assert_error(resp, 400, "invalid_input").await;
    let resp = app
        .post_json(
            "/api/auth/password-reset/confirm",
            Anonymous,
            &serde_json::json!({"token": unknown}),
        )
        .await;
    assert_error(resp, 400, "invalid_input").await;
}

#[tokio::test]
async fn a_refused_message_is_retried_until_the_server_takes_it() {
    let Some(sink) = SmtpSink::start_failing(1) else {
        return;
    };
    let app = app_with_smtp(&sink).await;
    let tokens = app.user_with_tokens().await;
    let started = std::time::Instant::now();
    assert_eq!(app.send_verification(&tokens).await.status(), 202);
    // Refused once (451), taken on the retry a second later.
    let mail = sink.message(1).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        app.verify_email(&mail.token(&verify_prefix(&app)))
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn required_verification_refuses_login_and_mails_a_new_link() {
    let outbox = Mailbox::new();
    let app = app_with_outbox(&outbox, |c| c.require_verified_email = true).await;
    let email = app.new_user().await;
    // The wrong password says nothing about verification.
    assert_error(
        app.login(&email, "wrong password!").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_error(app.login(&email, PASSWORD).await, 403, "email_unverified").await;
    let token = outbox.message(1).await.token(&verify_prefix(&app));
    assert_eq!(app.verify_email(&token).await.status(), 204);
    assert_eq!(app.login(&email, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn required_verification_ends_unverified_sessions_when_the_server_starts() {
    // A session opened before the policy, then the server restarted with it.
    let before = spawn_app().await;
    let email = before.new_user().await;
    let tokens = before.login_tokens(&email).await;
    let outbox = Mailbox::new();
    let dir = outbox.path().to_owned();
    // The same issuer, as behind one load balancer.
    let issuer = before.origin().parse().unwrap();
    let after = spawn_on(&before.database_url, move |c| {
        c.require_verified_email = true;
        c.mail_dir = dir;
        c.public_url = Some(issuer);
    })
    .await;
    // Ended at the start, not at the next refresh: the access token stops at once
    // and no socket opens with it (a socket never refreshes; outside attack).
    assert_error(after.me(&tokens).await, 401, "session_revoked").await;
    let refused = after.ws(&tokens).connect().await.unwrap_err();
    assert_eq!(handshake_status(&refused), 401);
    assert_eq!(after.refresh(&tokens.refresh).await.status(), 401);
}
