//! Two real server processes on one PostgreSQL database. Ignored by default (they
//! need PostgreSQL); run them with
//! `DOORMAN_TEST_DATABASE_URL=postgres://… cargo test --workspace -- --include-ignored`,
//! as CI does.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

struct Pair {
    a: ServerProcess,
    b: ServerProcess,
    db: PgDatabase,
    _dir: tempfile::TempDir,
}

async fn two_instances() -> Pair {
    let db = PgDatabase::create()
        .await
        .expect("cluster tests need DOORMAN_TEST_DATABASE_URL=postgres://…");
    let dir = tempfile::tempdir().unwrap();
    // Each instance names its connections, so a test can cut one instance's.
    let envs = |name: &str| {
        [
            (
                "DATABASE_URL",
                format!("{}?application_name={name}", db.url),
            ),
            ("DOORMAN_LOGIN_PER_MINUTE", "10000".to_owned()),
            ("DOORMAN_SWEEP_SECONDS", "30".to_owned()),
            ("DOORMAN_LOG_FORMAT", "json".to_owned()),
            // Behind one load balancer every instance has the same public URL, which is
            // also the tokens' issuer.
            ("DOORMAN_PUBLIC_URL", "http://doorman.test".to_owned()),
        ]
    };
    // The first instance applies the migrations; the second finds them done (in
    // production the migration CLI runs before a rolling upgrade).
    let a = ServerProcess::start(&envs("doorman-a"), &dir.path().join("a.log")).await;
    let b = ServerProcess::start(&envs("doorman-b"), &dir.path().join("b.log")).await;
    Pair {
        a,
        b,
        db,
        _dir: dir,
    }
}

async fn logout(on: &ServerProcess, tokens: &Tokens) {
    assert_eq!(on.logout(tokens).await.status(), StatusCode::NO_CONTENT);
}

/// A socket on `on`, welcomed.
async fn socket(on: &ServerProcess, tokens: &Tokens) -> Ws {
    on.ws_welcomed(tokens).await.0
}

/// Asserts that no further text frame arrives within `quiet`.
async fn assert_no_more(ws: &mut Ws, quiet: Duration) {
    if let Ok(Some(Ok(msg))) = tokio::time::timeout(quiet, futures_util::StreamExt::next(ws)).await
    {
        assert!(!msg.is_text(), "unexpected extra frame: {msg:?}");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn sessions_keys_revocations_and_rooms_cross_instances() {
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);

    // One signing key, one session store: a login on A works on B.
    let email = a.new_user().await;
    let tokens = a.login_tokens(&email).await;
    assert_eq!(b.me(&tokens).await.status(), StatusCode::OK);
    assert_eq!(a.jwks().await, b.jwks().await);

    // A socket on A closes when B serves the logout; 20 trials for the latency.
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let t = b.login_tokens(&email).await;
        let mut ws = socket(a, &t).await;
        let started = Instant::now();
        logout(b, &t).await;
        let (code, reason) = expect_close(&mut ws, Duration::from_secs(2)).await;
        latencies.push(started.elapsed());
        assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
        assert_eq!(a.me(&t).await.status(), StatusCode::UNAUTHORIZED);
    }
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    eprintln!(
        "cross-instance revocation (logout on B → close on A), 20 trials: p50 {p50:?}, p99 {p99:?}, max {:?}",
        latencies[19]
    );
    assert!(p99 < Duration::from_secs(2), "p99 {p99:?}");

    // Rooms: a subscriber on A and one on B each get every message once, in order.
    let alice = a.user_with_tokens().await;
    let bob = b.user_with_tokens().await;
    let mut on_a = socket(a, &alice).await;
    let mut on_b = socket(b, &bob).await;
    for ws in [&mut on_a, &mut on_b] {
        send_json(ws, json!({"type": "subscribe", "room": "x"})).await;
        assert_eq!(next_json(ws).await["type"], "subscribed");
    }
    let resp = b.publish(&bob, "x", "over http on B").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    for ws in [&mut on_a, &mut on_b] {
        let msg = next_json(ws).await;
        assert_eq!(msg["body"], "over http on B");
        assert_eq!(msg["from"], bob.user_id.as_str());
    }
    // A burst over WebSocket on A, one message too large for a NOTIFY payload.
    let big = "é".repeat(4000);
    let bodies: Vec<String> = (0..10)
        .map(|i| if i == 5 { big.clone() } else { format!("m{i}") })
        .collect();
    for body in &bodies {
        send_json(
            &mut on_a,
            json!({"type": "publish", "room": "x", "body": body}),
        )
        .await;
    }
    for ws in [&mut on_a, &mut on_b] {
        for body in &bodies {
            let msg = next_json(ws).await;
            assert_eq!(msg["body"].as_str().unwrap(), body.as_str(), "order kept");
            assert_eq!(msg["from"], alice.user_id.as_str());
        }
        assert_no_more(ws, Duration::from_millis(500)).await;
    }

    assert!(pair.a.terminate().await.success());
    assert!(pair.b.terminate().await.success());
    drop(pair.db);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn a_revocation_missed_while_the_listener_was_down_still_closes_the_socket() {
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);
    let tokens = b.user_with_tokens().await;
    let mut ws = socket(a, &tokens).await;
    let other = b.user_with_tokens().await;
    let mut unaffected = socket(a, &other).await;

    // Keep new connections out and cut all of A's (its listener among them), then
    // revoke through B while A cannot hear it.
    let db = pair.db.name().to_owned();
    pair.db
        .admin(&format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false"))
        .await;
    pair.db
        .admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{db}' AND application_name = 'doorman-a'"
        ))
        .await;
    logout(b, &tokens).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The event was missed: the socket is still open…
    assert_alive(&mut ws).await;
    // …until A's listener is back and re-checks its sockets against the database.
    pair.db
        .admin(&format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true"))
        .await;
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(8)).await;
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    assert_alive(&mut unaffected).await;

    // A's listener is back: the next revocation arrives the fast way.
    let t = b.user_with_tokens().await;
    let mut ws = socket(a, &t).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    logout(b, &t).await;
    assert_eq!(expect_close(&mut ws, Duration::from_secs(2)).await.0, 4403);
    drop(pair);
}
