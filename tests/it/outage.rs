//! The database going away and coming back, and the server being killed and
//! restarted. The outage test needs PostgreSQL (a TCP proxy in front of it is cut and
//! restored); the restart test runs on SQLite, and on PostgreSQL when
//! `DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const DB_TIMEOUT: Duration = Duration::from_secs(1);

/// Polls `path` until it answers `status`; returns how long that took.
async fn wait_for_status(
    app: &TestApp,
    path: &str,
    status: StatusCode,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        // Not `get()`: a failed connection is one more reason to poll again.
        if let Ok(resp) = app.http.get(app.url(path)).send().await
            && resp.status() == status
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts a `database_unavailable` answer, and that it came within about the
/// database timeout.
async fn assert_unavailable(resp: reqwest::Response, took: Duration, what: &str) {
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert!(
        resp.headers().get("retry-after").is_some(),
        "{what}: Retry-After"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "database_unavailable", "{what}: {body}");
    assert!(
        took < DB_TIMEOUT + Duration::from_millis(700),
        "{what} took {took:?}"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn outage_answers_503_keeps_sockets_open_and_recovers_without_losing_revocations() {
    let db = PgDatabase::create()
        .await
        .expect("the outage test needs DOORMAN_TEST_DATABASE_URL=postgres://…");
    let proxy = DbProxy::start(&db.url).await;
    let app = spawn_on(&proxy.url, |c| {
        c.db_timeout = DB_TIMEOUT;
        // Far away: whatever closes a socket below is the cluster bridge's re-check.
        c.sweep = Duration::from_secs(600);
    })
    .await;

    let email = app.new_user().await;
    let kept = app.login_tokens(&email).await;
    let doomed = app.login_tokens(&email).await;
    let (mut kept_ws, _) = app.ws_welcomed(&kept).await;
    let (mut doomed_ws, _) = app.ws_welcomed(&doomed).await;
    // Past the 1 s session cache: the next request must ask the database.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    proxy.cut();
    let started = Instant::now();
    let resp = app.me(&kept).await;
    assert_unavailable(resp, started.elapsed(), "/api/me").await;

    let started = Instant::now();
    let resp = app.readyz().await;
    let took = started.elapsed();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "database_unavailable");
    assert!(
        took < DB_TIMEOUT + Duration::from_millis(700),
        "/readyz took {took:?}"
    );

    let started = Instant::now();
    let resp = app.login(&email, PASSWORD).await;
    assert_unavailable(resp, started.elapsed(), "login").await;

    let started = Instant::now();
    let resp = app.refresh(&kept.refresh).await;
    assert_unavailable(resp, started.elapsed(), "refresh").await;

    // A new socket cannot be authenticated, and says so before the upgrade.
    let err = app.ws(&kept).await.expect_err("handshake refused");
    assert_eq!(handshake_status(&err), 503);
    assert_eq!(handshake_body(&err)["error"], "database_unavailable");

    // A socket that authenticates by its first message is upgraded (no credential
    // yet), then closed with 1013 "try again later", not blamed on its token.
    let mut pending = app.ws(Anonymous).await.expect("credential-less handshake");
    send_json(&mut pending, json!({"type": "auth", "token": kept.access})).await;
    let (code, reason) = expect_close(&mut pending, DB_TIMEOUT * 3).await;
    assert_eq!((code, reason.as_str()), (1013, "database_unavailable"));

    // Open sockets stay open.
    assert_alive(&mut kept_ws).await;
    assert_alive(&mut doomed_ws).await;

    // A revocation this instance cannot hear of: straight into the database.
    db.execute(&format!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'revoked' WHERE id = '{}'",
        doomed.session_id
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_alive(&mut kept_ws).await;
    assert_alive(&mut doomed_ws).await;

    proxy.restore();
    let restored = Instant::now();
    let ready_after =
        wait_for_status(&app, "/readyz", StatusCode::OK, Duration::from_secs(5)).await;
    let (code, reason) = expect_close(&mut doomed_ws, Duration::from_secs(10)).await;
    let closed_after = restored.elapsed();
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    eprintln!(
        "after the link returned: /readyz 200 in {ready_after:?}, the revoked session's socket closed in {closed_after:?}"
    );

    // Everything works again, without a restart.
    assert_alive(&mut kept_ws).await;
    assert_eq!(app.me(&kept).await.status(), StatusCode::OK);
    assert_eq!(app.me(&doomed).await.status(), StatusCode::UNAUTHORIZED);
    let again = app.login_tokens(&email).await;
    assert_eq!(app.refresh(&again.refresh).await.status(), StatusCode::OK);

    drop(app);
    drop(proxy);
    drop(db);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn outage_of_a_database_that_hangs_is_answered_within_the_timeout() {
    let db = PgDatabase::create()
        .await
        .expect("the outage test needs DOORMAN_TEST_DATABASE_URL=postgres://…");
    let proxy = DbProxy::start(&db.url).await;
    let app = spawn_on(&proxy.url, |c| c.db_timeout = DB_TIMEOUT).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    // Past the 1 s session cache: the next request must ask the database.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Nothing is refused or closed; nothing answers either.
    proxy.stall();
    let started = Instant::now();
    let resp = app.me(&tokens).await;
    assert_unavailable(resp, started.elapsed(), "/api/me").await;
    let started = Instant::now();
    let resp = app.readyz().await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < DB_TIMEOUT + Duration::from_millis(700));
    assert_alive(&mut ws).await;

    proxy.restore();
    let ready_after =
        wait_for_status(&app, "/readyz", StatusCode::OK, Duration::from_secs(5)).await;
    eprintln!("after the stall ended: /readyz 200 in {ready_after:?}");
    assert_eq!(app.me(&tokens).await.status(), StatusCode::OK);
    assert_alive(&mut ws).await;
    drop(app);
    drop(proxy);
    drop(db);
}

/// Starts the real binary, logs in and refreshes, kills it with SIGKILL, starts it
/// again on the same database, and checks that nothing was lost.
async fn kill_and_restart(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("DATABASE_URL", database_url),
        ("DOORMAN_LOGIN_PER_MINUTE", "10000".to_owned()),
        // The issuer must not change with the port the restarted process gets.
        ("DOORMAN_PUBLIC_URL", "http://doorman.test".to_owned()),
    ];
    let first = ServerProcess::start(&envs, &dir.path().join("first.log")).await;
    let email = first.new_user().await;
    let login = first.login_tokens(&email).await;
    let current = Tokens::from_response(first.refresh(&login.refresh).await).await;

    first.kill();
    let second = ServerProcess::start(&envs, &dir.path().join("second.log")).await;

    // The signing keys survived: both access tokens still verify.
    for tokens in [&login, &current] {
        assert_eq!(second.me(tokens).await.status(), StatusCode::OK);
    }
    let resp = second.sessions(&current).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let sessions: Value = resp.json().await.unwrap();
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == current.session_id.as_str()),
        "{sessions}"
    );
    // The current refresh token refreshes; the spent one is still recognised as spent
    // (presented again past the grace window, it would revoke the session).
    let resp = second.refresh(&current.refresh).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(second.terminate().await.success());
}

#[tokio::test]
async fn outage_kill_9_and_restart_on_sqlite_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/doorman.db?mode=rwc", dir.path().display());
    kill_and_restart(url).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn outage_kill_9_and_restart_on_postgres_loses_nothing() {
    let db = PgDatabase::create()
        .await
        .expect("needs DOORMAN_TEST_DATABASE_URL=postgres://…");
    kill_and_restart(db.url.clone()).await;
}

/// A SQLite file another process holds the write lock on (in WAL mode since issue 33,
/// where such a lock no longer stops readers): a request that writes answers 503
/// `database_unavailable` within the database timeout instead of hanging, and
/// writes work again once the lock is gone.
#[tokio::test]
async fn outage_a_write_locked_sqlite_file_refuses_writes_in_time_and_keeps_reads() {
    let app = spawn_with(|c| c.db_timeout = Duration::from_millis(500)).await;
    if !app.database_url.starts_with("sqlite") {
        return; // the PostgreSQL outages are the tests above
    }
    assert_eq!(app.readyz().await.status(), StatusCode::OK);
    let mut options = sea_orm::ConnectOptions::new(app.database_url.clone());
    options.max_connections(1).sqlx_logging(false);
    let locker = sea_orm::Database::connect(options).await.unwrap();
    use sea_orm::ConnectionTrait;
    locker.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();
    let started = std::time::Instant::now();
    let resp = app.register("locked@example.org", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "database_unavailable");
    locker.execute_unprepared("COMMIT").await.unwrap();
    assert_eq!(app.readyz().await.status(), StatusCode::OK);
    // Another address: the refused statement itself may still have run once the
    // lock went (a timed-out SQLite statement is not taken back).
    assert_eq!(
        app.register("unlocked@example.org", PASSWORD)
            .await
            .status(),
        StatusCode::CREATED
    );
}
