//! Signing keys operated with `doorman keys`: rotation and retirement reach every
//! instance within two seconds, and private keys can be kept encrypted at rest.

use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};

use crate::helpers::*;

/// Runs `doorman keys ARGS` against `database_url`.
fn keys(database_url: &str, kek: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_doorman"));
    cmd.arg("keys").args(args).env("DATABASE_URL", database_url);
    match kek {
        Some(file) => cmd.env("DOORMAN_KEY_ENCRYPTION_KEY_FILE", file),
        None => cmd.env_remove("DOORMAN_KEY_ENCRYPTION_KEY_FILE"),
    };
    cmd.output().expect("doorman keys runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The `kid` in a JWT's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(on: &ServerProcess) -> Vec<String> {
    let mut kids: Vec<String> = on.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

/// Two instances of the binary on one fresh PostgreSQL database (its temporary
/// directory holds their logs).
async fn two_instances() -> (PgDatabase, tempfile::TempDir, ServerProcess, ServerProcess) {
    let db = PgDatabase::create()
        .await
        .expect("needs DOORMAN_TEST_DATABASE_URL=postgres://…");
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("DATABASE_URL", db.url.clone()),
        ("DOORMAN_LOGIN_PER_MINUTE", "10000".to_owned()),
        ("DOORMAN_PUBLIC_URL", "http://doorman.test".to_owned()),
    ];
    let a = ServerProcess::start(&envs, &dir.path().join("a.log")).await;
    let b = ServerProcess::start(&envs, &dir.path().join("b.log")).await;
    (db, dir, a, b)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn rotation_and_retirement_reach_every_instance_within_two_seconds() {
    let (db, _dir, a, b) = two_instances().await;
    let email = a.new_user().await;
    let old = a.login_tokens(&email).await;
    let old_kid = kid(&old.access);
    // Verified on both, so both caches hold it.
    assert_eq!(a.me(&old).await.status(), StatusCode::OK);
    assert_eq!(b.me(&old).await.status(), StatusCode::OK);
    // A socket on each instance, opened with the soon-retired key's token.
    let mut old_sockets = vec![a.ws_welcomed(&old).await.0, b.ws_welcomed(&old).await.0];

    let new_kid = stdout(&keys(&db.url, None, &["rotate"])).trim().to_owned();
    assert_ne!(new_kid, old_kid);
    let rotated = Instant::now();
    for on in [&a, &b] {
        let tokens = poll_until(
            Duration::from_secs(2),
            async || on.login_tokens(&email).await,
            |t| kid(&t.access) == new_kid,
        )
        .await;
        assert_eq!(a.me(&tokens).await.status(), StatusCode::OK);
        assert_eq!(b.me(&tokens).await.status(), StatusCode::OK);
    }
    assert!(rotated.elapsed() < Duration::from_secs(3));
    // Old tokens still verify; both keys are published.
    assert_eq!(a.me(&old).await.status(), StatusCode::OK);
    assert_eq!(b.me(&old).await.status(), StatusCode::OK);
    let mut both = vec![old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(jwks_kids(&a).await, both);
    assert_eq!(jwks_kids(&b).await, both);
    let listed = stdout(&keys(&db.url, None, &["list"]));
    assert!(
        listed.contains(&format!("{new_kid}\t")) && listed.contains("signing"),
        "{listed}"
    );

    stdout(&keys(&db.url, None, &["retire", &old_kid]));
    let retired = Instant::now();
    for on in [&a, &b] {
        poll_until(
            Duration::from_secs(2),
            async || on.me(&old).await.status(),
            |s| *s == StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(jwks_kids(on).await, vec![new_kid.clone()]);
    }
    // Its sockets close too, on every instance, within two seconds (4401).
    for socket in &mut old_sockets {
        let (code, reason) = expect_close(socket, Duration::from_secs(2)).await;
        assert_eq!((code, reason.as_str()), (4401, "invalid_token"));
    }
    assert!(retired.elapsed() < Duration::from_secs(3));
    // The last active key cannot be retired.
    let refused = keys(&db.url, None, &["retire", &new_kid]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("only active key"), "{said}");

    // Nor can two retirements at once leave none: with two active keys, retiring
    // both concurrently lets exactly one through.
    let mut current = new_kid;
    for _ in 0..5 {
        let fresh = stdout(&keys(&db.url, None, &["rotate"])).trim().to_owned();
        let (url_a, url_b) = (db.url.clone(), db.url.clone());
        let (kid_a, kid_b) = (current.clone(), fresh.clone());
        let a = std::thread::spawn(move || keys(&url_a, None, &["retire", &kid_a]));
        let b = std::thread::spawn(move || keys(&url_b, None, &["retire", &kid_b]));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(
            u8::from(a.status.success()) + u8::from(b.status.success()),
            1,
            "{}{}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        let listed = stdout(&keys(&db.url, None, &["list"]));
        let active: Vec<&str> = listed
            .lines()
            .filter(|l| l.contains("\tsigning\t") || l.contains("\tverifying\t"))
            .collect();
        assert_eq!(active.len(), 1, "{listed}");
        current = active[0].split('\t').next().unwrap().to_owned();
    }
}

/// The issue-31 finding: a leaked key's token opened a socket, and after `keys
/// rotate` + `keys retire` HTTP refused the token but the socket stayed open.
#[tokio::test]
async fn retiring_a_key_closes_the_sockets_its_tokens_opened() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/keys.db?mode=rwc", dir.path().display());
    let envs = [
        ("DATABASE_URL", url.clone()),
        ("DOORMAN_LOGIN_PER_MINUTE", "10000".to_owned()),
    ];
    let server = ServerProcess::start(&envs, &dir.path().join("server.log")).await;
    let email = server.new_user().await;
    let old = server.login_tokens(&email).await;
    let old_kid = kid(&old.access);
    let (mut leaked, _) = server.ws_welcomed(&old).await;

    let new_kid = stdout(&keys(&url, None, &["rotate"])).trim().to_owned();
    let new = poll_until(
        Duration::from_secs(2),
        async || server.login_tokens(&email).await,
        |t| kid(&t.access) == new_kid,
    )
    .await;
    let (mut kept, _) = server.ws_welcomed(&new).await;

    stdout(&keys(&url, None, &["retire", &old_kid]));
    let (code, reason) = expect_close(&mut leaked, Duration::from_secs(2)).await;
    assert_eq!((code, reason.as_str()), (4401, "invalid_token"));
    // A socket authenticated with the other key lives on.
    assert_alive(&mut kept).await;
}

#[tokio::test]
async fn keys_are_encrypted_at_rest_and_the_server_needs_the_key_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/keys.db?mode=rwc", dir.path().display());
    let kek = dir.path().join("kek");
    std::fs::write(
        &kek,
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    )
    .unwrap();
    let other = dir.path().join("other");
    std::fs::write(
        &other,
        base64::engine::general_purpose::STANDARD.encode([8u8; 32]),
    )
    .unwrap();

    // A first start without encryption leaves a plain key; the next start with a
    // key file encrypts it.
    // One public URL (the tokens' issuer) whatever port each start gets.
    let issuer = ("DOORMAN_PUBLIC_URL", "http://doorman.test".to_owned());
    let plain = ServerProcess::start(
        &[("DATABASE_URL", url.clone()), issuer.clone()],
        &dir.path().join("0.log"),
    )
    .await;
    let email = plain.new_user().await;
    let tokens = plain.login_tokens(&email).await;
    assert!(plain.terminate().await.success());
    let with_key = [
        ("DATABASE_URL", url.clone()),
        issuer,
        ("DOORMAN_KEY_ENCRYPTION_KEY_FILE", kek.display().to_string()),
    ];
    let server = ServerProcess::start(&with_key, &dir.path().join("1.log")).await;
    assert_eq!(server.me(&tokens).await.status(), StatusCode::OK);
    assert!(server.terminate().await.success());

    let conn = Database::connect(&url).await.unwrap();
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT private_key FROM signing_keys",
        ))
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let stored: String = row.try_get("", "private_key").unwrap();
        assert!(
            !stored.contains("PRIVATE KEY"),
            "a PEM private key is stored"
        );
        assert!(stored.starts_with("enc:v1:"));
    }
    conn.close().await.ok();

    // Restart with the key file: the same key, the same tokens.
    let again = ServerProcess::start(&with_key, &dir.path().join("2.log")).await;
    assert_eq!(again.me(&tokens).await.status(), StatusCode::OK);
    assert!(again.terminate().await.success());

    // Without it, or with another key: a clear start-up error, no new key.
    for (kek, says) in [
        (None, "is encrypted; set DOORMAN_KEY_ENCRYPTION_KEY_FILE"),
        (Some(&other), "cannot be decrypted"),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_doorman"));
        cmd.env("DATABASE_URL", &url)
            .env("DOORMAN_BIND", "127.0.0.1:0")
            .env_remove("DOORMAN_KEY_ENCRYPTION_KEY_FILE");
        if let Some(file) = kek {
            cmd.env("DOORMAN_KEY_ENCRYPTION_KEY_FILE", file);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
    let listed = stdout(&keys(&url, Some(&kek), &["list"]));
    assert_eq!(
        listed.lines().count(),
        2,
        "one key and the header: {listed}"
    );
    assert!(listed.contains("encrypted"));
}

/// Starts two servers at once on the fresh database `url` (as two instances of a
/// new deployment do) and returns how many signing keys the database then holds;
/// checks that each instance accepts the other's tokens.
async fn keys_after_starting_two_at_once(url: &str) -> i64 {
    // One public URL: it is the tokens' issuer.
    let shared = |c: &mut doorman::Config| {
        c.public_url = Some("http://doorman.test".parse().unwrap());
    };
    let (a, b) = tokio::join!(spawn_on(url, shared), spawn_on(url, shared));
    let on_a = a.user_with_tokens().await;
    assert_eq!(b.me(&on_a).await.status(), StatusCode::OK);
    let on_b = b.user_with_tokens().await;
    assert_eq!(a.me(&on_b).await.status(), StatusCode::OK);
    let db = Database::connect(url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM signing_keys",
        ))
        .await
        .unwrap()
        .unwrap();
    db.close().await.ok();
    row.try_get::<i64>("", "n").unwrap()
}

/// Two instances starting together on an empty database create exactly one
/// signing key between them (issue 31, item 13), on SQLite…
#[tokio::test]
async fn two_instances_starting_together_on_an_empty_sqlite_database_make_one_key() {
    for round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/keys.db?mode=rwc", dir.path().display());
        assert_eq!(
            keys_after_starting_two_at_once(&url).await,
            1,
            "round {round}"
        );
    }
}

/// …and on PostgreSQL.
#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn two_instances_starting_together_on_an_empty_postgres_database_make_one_key() {
    for round in 0..8 {
        let db = PgDatabase::create()
            .await
            .expect("needs DOORMAN_TEST_DATABASE_URL=postgres://…");
        assert_eq!(
            keys_after_starting_two_at_once(&db.url).await,
            1,
            "round {round}"
        );
    }
}

fn write_kek(path: &Path, byte: u8) {
    std::fs::write(
        path,
        base64::engine::general_purpose::STANDARD.encode([byte; 32]),
    )
    .unwrap();
}

/// Warnings about signing keys in a JSON log.
fn key_warnings(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""level":"WARN""#) && l.contains("signing key"))
        .map(str::to_owned)
        .collect()
}

/// Issue 31, item 12: a key-encryption key adopted while an instance still runs
/// without the file (a rolling restart, or `keys rotate` run with the file first)
/// sealed every key, and that instance then refused the others' tokens (401) and
/// warned every second. Public keys need no secret: every instance keeps verifying
/// every active key; one without the file keeps signing with the key it holds.
#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn adopting_a_key_encryption_key_on_a_live_cluster_never_splits_it() {
    let db = PgDatabase::create()
        .await
        .expect("needs DOORMAN_TEST_DATABASE_URL=postgres://…");
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    write_kek(&kek, 9);
    let plain = [
        ("DATABASE_URL", db.url.clone()),
        ("DOORMAN_LOGIN_PER_MINUTE", "10000".to_owned()),
        ("DOORMAN_PUBLIC_URL", "http://doorman.test".to_owned()),
        ("DOORMAN_LOG_FORMAT", "json".to_owned()),
    ];
    let mut sealed = plain.to_vec();
    sealed.push(("DOORMAN_KEY_ENCRYPTION_KEY_FILE", kek.display().to_string()));

    let a_log = dir.path().join("a.log");
    let a = ServerProcess::start(&plain, &a_log).await;
    let b = ServerProcess::start(&plain, &dir.path().join("b.log")).await;
    let email = a.new_user().await;
    let before = a.login_tokens(&email).await;
    let old_kid = kid(&before.access);

    // B restarts with the file first (it seals every key at its start), and the
    // operator rotates with the file while A still runs without it.
    assert!(b.terminate().await.success());
    let b = ServerProcess::start(&sealed, &dir.path().join("b2.log")).await;
    // A re-reads the keys B sealed (its own among them) before the rotation.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let new_kid = stdout(&keys(&db.url, Some(&kek), &["rotate"]))
        .trim()
        .to_owned();
    let listed = stdout(&keys(&db.url, Some(&kek), &["list"]));
    assert_eq!(listed.matches("encrypted").count(), 2, "{listed}");
    let from_b = poll_until(
        Duration::from_secs(2),
        async || b.login_tokens(&email).await,
        |t| kid(&t.access) == new_kid,
    )
    .await;
    let adopted = Instant::now();

    // A, without the file, accepts B's tokens…
    assert_eq!(a.me(&from_b).await.status(), StatusCode::OK);
    // …keeps signing with the key it holds, which B accepts…
    let from_a = a.login_tokens(&email).await;
    assert_eq!(kid(&from_a.access), old_kid);
    assert_eq!(b.me(&from_a).await.status(), StatusCode::OK);
    assert_eq!(b.me(&before).await.status(), StatusCode::OK);
    // …and both publish both keys.
    let mut both = vec![old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(jwks_kids(&a).await, both);
    assert_eq!(jwks_kids(&b).await, both);
    // A says once that it cannot sign with the new key, not every second (and
    // nothing of its own key, sealed since it started but held).
    sleep_past(adopted + Duration::from_secs(3)).await;
    let warned = key_warnings(&a_log);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(warned[0].contains(&new_kid), "{warned:#?}");
    assert!(
        !std::fs::read_to_string(&a_log)
            .unwrap()
            .contains("PRIVATE KEY")
    );

    // The trap the docs warn of: retiring A's key before A has the file. A still
    // verifies every token, but cannot sign: its /readyz sends its load balancer's
    // logins elsewhere (the outside re-attack saw logins answer 500 there, with
    // A still "ready").
    stdout(&keys(&db.url, Some(&kek), &["retire", &old_kid]));
    let not_ready = poll_until(
        Duration::from_secs(3),
        async || a.get("/readyz").await,
        |r| r.status() == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let body: serde_json::Value = not_ready.json().await.unwrap();
    assert_eq!(body["status"], "signing_key_unavailable");
    assert_eq!(b.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(a.me(&from_b).await.status(), StatusCode::OK);

    // The last step: A restarts with the file; everyone signs with the new key, and
    // the key that was once stored in plain text is refused everywhere.
    assert!(a.terminate().await.success());
    let a = ServerProcess::start(&sealed, &dir.path().join("a2.log")).await;
    assert_eq!(a.get("/readyz").await.status(), StatusCode::OK);
    let from_a = a.login_tokens(&email).await;
    assert_eq!(kid(&from_a.access), new_kid);
    assert_eq!(b.me(&from_a).await.status(), StatusCode::OK);
    for on in [&a, &b] {
        poll_until(
            Duration::from_secs(2),
            async || on.me(&before).await.status(),
            |s| *s == StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(on.me(&from_b).await.status(), StatusCode::OK);
    }
}

/// Issue 31, item 3: when a signing key leaked, one command retires it and revokes
/// every session (a leaked key mints tokens for any session id). Every instance
/// closes every socket with 4403 `session_revoked` and refuses the old access and
/// refresh tokens within about two seconds; logging in again works.
async fn retiring_a_leaked_key_revokes_every_session(url: &str, servers: &[&ServerProcess]) {
    let first = servers[0];
    let victim = first.new_user().await;
    let leaked = first.login_tokens(&victim).await;
    let leaked_kid = kid(&leaked.access);
    let new_kid = stdout(&keys(url, None, &["rotate"])).trim().to_owned();
    let other = first.new_user().await;
    let fresh = poll_until(
        Duration::from_secs(2),
        async || first.login_tokens(&other).await,
        |t| kid(&t.access) == new_kid,
    )
    .await;
    let mut sockets = Vec::new();
    for on in servers {
        sockets.push(on.ws_welcomed(&leaked).await.0);
        sockets.push(on.ws_welcomed(&fresh).await.0);
    }

    let out = keys(url, None, &["retire", &leaked_kid, "--revoke-sessions"]);
    let said = stdout(&out);
    let ran = Instant::now();
    assert!(said.contains(&format!("retired {leaked_kid}")), "{said}");
    // Both users' sessions, and any the polling above opened.
    let revoked: u64 = said
        .split("revoked ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(revoked >= 2, "{said}");
    assert!(!said.contains("PRIVATE KEY"), "{said}");
    for socket in &mut sockets {
        let (code, reason) = expect_close(socket, Duration::from_secs(2)).await;
        assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    }
    for on in servers {
        for tokens in [&leaked, &fresh] {
            poll_until(
                Duration::from_secs(2),
                async || on.me(tokens).await.status(),
                |s| *s == StatusCode::UNAUTHORIZED,
            )
            .await;
        }
        assert_error(on.me(&fresh).await, 401, "session_revoked").await;
        for tokens in [&leaked, &fresh] {
            let refused = on.refresh(&tokens.refresh).await;
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        }
    }
    assert!(ran.elapsed() < Duration::from_secs(3));
    // The users log in again (with the new key) and see what happened.
    for on in servers {
        let again = on.login_tokens(&other).await;
        assert_eq!(kid(&again.access), new_kid);
        assert_eq!(on.me(&again).await.status(), StatusCode::OK);
        let activity: serde_json::Value = on.activity(&again).await.json().await.unwrap();
        assert!(
            activity.to_string().contains("session_revoked"),
            "{activity}"
        );
    }
}

#[tokio::test]
async fn retiring_a_leaked_key_revokes_every_session_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/keys.db?mode=rwc", dir.path().display());
    let envs = [
        ("DATABASE_URL", url.clone()),
        ("DOORMAN_LOGIN_PER_MINUTE", "10000".to_owned()),
    ];
    let server = ServerProcess::start(&envs, &dir.path().join("server.log")).await;
    retiring_a_leaked_key_revokes_every_session(&url, &[&server]).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn retiring_a_leaked_key_revokes_every_session_on_every_instance() {
    let (db, _dir, a, b) = two_instances().await;
    retiring_a_leaked_key_revokes_every_session(&db.url, &[&a, &b]).await;
}
