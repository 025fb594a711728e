//! A whole session against the real binary, logging at the most verbose level:
//! none of the secrets the client saw may appear in any log line.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Anonymous, ServerProcess, Tokens, expect_close, next_json, send_json};

#[tokio::test]
async fn no_secret_reaches_the_logs_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let server = ServerProcess::start(
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}/logs.db?mode=rwc", dir.path().display()),
            ),
            ("DOORMAN_REFRESH_REUSE_GRACE_SECONDS", "0".into()),
            ("DOORMAN_LOG_FORMAT", "json".into()),
            (
                "RUST_LOG",
                "trace,tungstenite::protocol=trace,sqlx::query=trace,sea_orm::driver=trace".into(),
            ),
        ],
        &log_path,
    )
    .await;
    let mut secrets: Vec<String> = Vec::new();
    let password = "s3cret-Passw0rd-for-logs";
    secrets.push(password.to_owned());
    let email = "logs@example.org";
    let resp = server.register(email, password).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    // A failed login with a wrong (also secret) password.
    secrets.push("wrong-Passw0rd-for-logs".into());
    let resp = server.login(email, "wrong-Passw0rd-for-logs").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Token mode, refresh, then reuse of the spent refresh token.
    let first = Tokens::from_response(server.login(email, password).await).await;
    let second = Tokens::from_response(server.refresh(&first.refresh).await).await;
    secrets.extend([
        first.access.clone(),
        first.refresh.clone(),
        second.access.clone(),
        second.refresh.clone(),
    ]);

    // Cookie mode, and a socket on the cookie.
    let cookies = server.login_cookies_with(email, password).await;
    secrets.extend([cookies.access.clone(), cookies.refresh.clone()]);
    let (mut cookie_ws, welcome) = server.ws_welcomed(cookies.access()).await;
    assert_eq!(welcome["auth_source"], "cookie");

    // A cross-site handshake riding the cookie is refused (and logged, cookie-free).
    assert!(
        server
            .ws(cookies.access())
            .origin("http://evil.example")
            .await
            .is_err()
    );

    // A socket with first-message auth, on the second token-mode session.
    let mut msg_ws = server.ws(Anonymous).await.unwrap();
    send_json(&mut msg_ws, json!({"type": "auth", "token": second.access})).await;
    assert_eq!(next_json(&mut msg_ws).await["auth_source"], "message");
    // A bad token in an auth frame and in a header.
    let mut bad_ws = server.ws(Anonymous).await.unwrap();
    let bogus = format!("{}tampered", second.access);
    secrets.push(bogus.clone());
    send_json(&mut bad_ws, json!({"type": "auth", "token": bogus})).await;
    assert_eq!(
        expect_close(&mut bad_ws, Duration::from_secs(3)).await.0,
        4401
    );

    // Reuse of the first refresh token: the session is revoked, its socket closes.
    let reuse = server.refresh(&first.refresh).await;
    assert_eq!(reuse.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        expect_close(&mut msg_ws, Duration::from_secs(2)).await.0,
        4403
    );

    // Cookie-mode logout closes the cookie socket.
    let resp = server
        .logout(cookies.access())
        .origin(&server.origin())
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        expect_close(&mut cookie_ws, Duration::from_secs(2)).await.0,
        4403
    );

    // A server-side failure: its request id must lead to the logged cause.
    {
        use sea_orm::{ConnectionTrait, Database};
        let db = Database::connect(format!("sqlite://{}/logs.db", dir.path().display()))
            .await
            .unwrap();
        db.execute_unprepared("DROP TABLE refresh_tokens")
            .await
            .unwrap();
        db.close().await.ok();
    }
    let failed = server.login(email, password).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let request_id = failed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let status = server.terminate().await;
    assert!(
        status.success(),
        "server exited with {status} after SIGTERM"
    );

    let log = std::fs::read_to_string(&log_path).unwrap();
    // RUST_LOG=trace is in force (our own debug lines show it); the libraries that
    // log frame payloads at trace are capped by the server, which is what this
    // test guards.
    assert!(
        log.contains(r#""level":"DEBUG""#),
        "the server did not log at debug level"
    );
    let cause = log
        .lines()
        .find(|l| l.contains(&request_id) && l.contains(r#""level":"ERROR""#))
        .expect("the 500's request id is in an ERROR log line");
    assert!(
        cause.contains("refresh_tokens"),
        "the logged cause names the failure: {cause}"
    );
    for event in [
        "login_failed",
        "refresh_token_reuse",
        "session_revoked",
        "origin_refused",
    ] {
        assert!(log.contains(event), "security event {event} was not logged");
    }
    for secret in &secrets {
        // A JWT's header is the same public text in every token: probe with its
        // signature, the part that is secret until the token is shown.
        let probe = secret.rsplit('.').next().unwrap_or(secret);
        let probe = &probe[..probe.len().min(24)];
        let leak = log
            .lines()
            .find(|l| l.contains(probe))
            .map(|l| l.replace(probe, "<SECRET>"));
        assert!(
            leak.is_none(),
            "leaked in: {}",
            leak.unwrap_or_default()
                .chars()
                .take(600)
                .collect::<String>()
        );
        assert!(
            !log.contains(probe),
            "a secret ({} chars, ending {:?}) reached the log",
            secret.len(),
            &secret[secret.len() - 6..]
        );
    }
}

#[tokio::test]
async fn text_logs_in_a_file_carry_no_colour_codes_and_the_banner_names_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let server = ServerProcess::start(
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}/logs.db?mode=rwc", dir.path().display()),
            ),
            ("DOORMAN_PUBLIC_URL", "http://doorman.test:8080".into()),
            ("DOORMAN_LOG_FORMAT", "text".into()),
            ("RUST_LOG", "info".into()),
        ],
        &log_path,
    )
    .await;
    assert_eq!(server.get("/readyz").await.status(), StatusCode::OK);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("listening"), "{log}");
    // ESC: the start of every ANSI colour code.
    assert!(!log.contains('\u{1b}'), "colour codes in a file:\n{log}");
    assert!(
        log.contains("WebSocket:  ws://doorman.test:8080/ws"),
        "the banner names the socket's URL:\n{log}"
    );
}

/// Verification and password reset, with the server logging at trace level: no
/// token, link or new password reaches the log, nor the address the links went
/// to (mail is logged by kind and message id).
#[tokio::test]
async fn no_mailed_token_link_or_address_reaches_the_logs() {
    use crate::mailbox::Mailbox;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let outbox = Mailbox::new();
    let public = "http://doorman.test";
    let server = ServerProcess::start(
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}/logs.db?mode=rwc", dir.path().display()),
            ),
            ("DOORMAN_PUBLIC_URL", public.into()),
            ("DOORMAN_MAIL_DIR", outbox.path().display().to_string()),
            ("DOORMAN_LOG_FORMAT", "json".into()),
            (
                "RUST_LOG",
                "trace,sqlx::query=trace,sea_orm::driver=trace".into(),
            ),
        ],
        &log_path,
    )
    .await;
    let email = "mailed-logs@example.org";
    let password = "first-Passw0rd-for-logs";
    let new_password = "second-Passw0rd-for-logs";
    assert_eq!(server.register(email, password).await.status(), 201);
    let tokens = Tokens::from_response(server.login(email, password).await).await;
    assert_eq!(server.send_verification(&tokens).await.status(), 202);
    let verify = outbox
        .message(1)
        .await
        .token(&format!("{public}/#verify-email="));
    assert_eq!(server.verify_email(&verify).await.status(), 204);
    assert_eq!(server.request_reset(email).await.status(), 202);
    assert_eq!(
        server
            .request_reset("unknown-logs@example.org")
            .await
            .status(),
        202
    );
    let reset = outbox
        .message(2)
        .await
        .token(&format!("{public}/#reset-password="));
    assert_eq!(
        server.confirm_reset(&reset, new_password).await.status(),
        204
    );
    // Used and unknown tokens are refused, and not logged either.
    assert_eq!(
        server.confirm_reset(&reset, new_password).await.status(),
        403
    );
    assert_eq!(server.login(email, new_password).await.status(), 200);
    assert!(server.terminate().await.success());

    let log = std::fs::read_to_string(&log_path).unwrap();
    for event in ["email_verified", "password_reset", "mail sent"] {
        assert!(log.contains(event), "{event} was not logged");
    }
    for secret in [
        verify.as_str(),
        reset.as_str(),
        "#verify-email",
        "#reset-password",
        password,
        new_password,
        email,
        "unknown-logs@example.org",
    ] {
        let leak = log.lines().find(|l| l.contains(secret));
        assert!(
            leak.is_none(),
            "{secret:?} reached the log: {}",
            leak.unwrap_or_default()
                .chars()
                .take(600)
                .collect::<String>()
        );
    }
}
