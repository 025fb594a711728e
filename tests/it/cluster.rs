//! Two real server processes on one PostgreSQL database. Ignored by default (they
//! need PostgreSQL); run them with
//! `DOORMAN_TEST_DATABASE_URL=postgres://… cargo test --workspace -- --include-ignored`,
//! as CI does.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

struct Pair {
    a: ServerProcess,
    b: ServerProcess,
    db: PgDatabase,
    http: reqwest::Client,
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
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Pair {
    async fn user(&self, on: &ServerProcess) -> Tokens {
        self.user_with_email(on).await.1
    }

    async fn user_with_email(&self, on: &ServerProcess) -> (String, Tokens) {
        let email = format!("c-{}@example.org", uuid::Uuid::new_v4().simple());
        let creds = json!({"email": email, "password": PASSWORD});
        let resp = self
            .http
            .post(format!("{}/api/auth/register", on.base))
            .json(&creds)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let tokens = self.login(on, &email).await;
        (email, tokens)
    }

    async fn login(&self, on: &ServerProcess, email: &str) -> Tokens {
        let resp = self
            .http
            .post(format!("{}/api/auth/login", on.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        Tokens::from_json(&resp.json().await.unwrap())
    }

    async fn me(&self, on: &ServerProcess, access: &str) -> StatusCode {
        self.http
            .get(format!("{}/api/me", on.base))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn logout(&self, on: &ServerProcess, access: &str) {
        let resp = self
            .http
            .post(format!("{}/api/auth/logout", on.base))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }
}

async fn socket(on: &ServerProcess, access: &str) -> Ws {
    let mut req = on.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {access}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    ws
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
    let (email, tokens) = pair.user_with_email(a).await;
    assert_eq!(pair.me(b, &tokens.access).await, StatusCode::OK);
    let jwks_a: Value = pair
        .http
        .get(format!("{}/.well-known/jwks.json", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_b: Value = pair
        .http
        .get(format!("{}/.well-known/jwks.json", b.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_a, jwks_b);

    // A socket on A closes when B serves the logout; 20 trials for the latency.
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let t = pair.login(b, &email).await;
        let mut ws = socket(a, &t.access).await;
        let started = Instant::now();
        pair.logout(b, &t.access).await;
        let (code, reason) = expect_close(&mut ws, Duration::from_secs(2)).await;
        latencies.push(started.elapsed());
        assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
        assert_eq!(pair.me(a, &t.access).await, StatusCode::UNAUTHORIZED);
    }
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    eprintln!(
        "cross-instance revocation (logout on B → close on A), 20 trials: p50 {p50:?}, p99 {p99:?}, max {:?}",
        latencies[19]
    );
    assert!(p99 < Duration::from_secs(2), "p99 {p99:?}");

    // Rooms: a subscriber on A and one on B each get every message once, in order.
    let alice = pair.user(a).await;
    let bob = pair.user(b).await;
    let mut on_a = socket(a, &alice.access).await;
    let mut on_b = socket(b, &bob.access).await;
    for ws in [&mut on_a, &mut on_b] {
        send_json(ws, json!({"type": "subscribe", "room": "x"})).await;
        assert_eq!(next_json(ws).await["type"], "subscribed");
    }
    let resp = pair
        .http
        .post(format!("{}/api/rooms/x/messages", b.base))
        .bearer_auth(&bob.access)
        .json(&json!({"body": "over http on B"}))
        .send()
        .await
        .unwrap();
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
    let tokens = pair.user(b).await;
    let mut ws = socket(a, &tokens.access).await;
    let other = pair.user(b).await;
    let mut unaffected = socket(a, &other.access).await;

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
    pair.logout(b, &tokens.access).await;
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
    let t = pair.user(b).await;
    let mut ws = socket(a, &t.access).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    pair.logout(b, &t.access).await;
    assert_eq!(expect_close(&mut ws, Duration::from_secs(2)).await.0, 4403);
    drop(pair);
}
