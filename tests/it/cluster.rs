//! Two real server processes on one PostgreSQL database. Ignored by default (they
//! need PostgreSQL); run them with
//! `DOORMAN_TEST_DATABASE_URL=postgres://… cargo test --workspace -- --include-ignored`,
//! as CI does.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
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
    two_instances_with(&[]).await
}

async fn two_instances_with(extra: &[(&str, &str)]) -> Pair {
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
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (*k, (*v).to_owned())))
        .collect::<Vec<_>>()
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
    subscribe(&mut on_a, "x").await;
    // Presence crosses instances like everything else, a moment later: once B
    // knows alice is there, bob's `subscribed` lists her and she hears him join.
    wait_present(b, &bob, "x", &[&alice.user_id]).await;
    subscribe(&mut on_b, "x").await;
    expect_presence(&mut on_a, "x", &bob.user_id, "join").await;
    let resp = b.publish(&bob, "x", "over http on B").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    for ws in [&mut on_a, &mut on_b] {
        let msg = next_json(ws).await;
        assert_eq!(msg["body"], "over http on B");
        assert_eq!(msg["from"], bob.user_id.as_str());
    }
    // A burst over WebSocket on A: one message too large for a NOTIFY payload,
    // and two that fit as frames but double once escaped into a note.
    let bodies: Vec<String> = (0..10)
        .map(|i| match i {
            5 => "é".repeat(4000),
            7 => "\"".repeat(2000),
            8 => "\\".repeat(3000),
            _ => format!("m{i}"),
        })
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

// --- issue 12: membership, presence and devices across instances -------------

/// How soon a removal reaches a socket on any instance.
const LIVE: Duration = Duration::from_secs(1);

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// Polls `on` until it lists exactly `users` present in `room` (presence from
/// another instance arrives a moment later).
async fn wait_present(on: &ServerProcess, who: &Tokens, room: &str, users: &[&str]) {
    let want = sorted(users);
    poll_until(
        Duration::from_secs(2),
        async || on.present_users(who, room).await,
        |now| *now == want,
    )
    .await;
}

/// Polls `on` until `tokens`' session counts `n` live sockets (on every instance).
async fn wait_live_sockets(on: &ServerProcess, tokens: &Tokens, n: u64) {
    poll_until(
        Duration::from_secs(5),
        async || on.live_sockets(tokens, &tokens.session_id).await,
        |&live| live == n,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn membership_changes_on_one_instance_reach_sockets_on_the_other_within_a_second() {
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);
    let room = "private:crew";
    let alice = a.user_with_tokens().await;
    let bob = a.user_with_tokens().await;
    a.private_room(&alice, room, &[&bob]).await;
    let mut on_a = socket(a, &alice).await;
    let mut on_b = socket(b, &bob).await;
    assert_eq!(
        subscribe(&mut on_a, room).await,
        vec![alice.user_id.clone()]
    );
    // Bob, on the other instance, sees alice present (once B has heard of her)
    // and she sees him arrive.
    wait_present(b, &bob, room, &[&alice.user_id]).await;
    assert_eq!(
        subscribe(&mut on_b, room).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );
    expect_presence(&mut on_a, room, &bob.user_id, "join").await;
    send_json(
        &mut on_b,
        json!({"type": "publish", "room": room, "body": "from b"}),
    )
    .await;
    for ws in [&mut on_a, &mut on_b] {
        expect_message(ws, room, &bob.user_id, "from b").await;
    }

    // Removed through A: bob's socket on B is taken out within a second, and lives.
    let started = Instant::now();
    let resp = a.remove_member(&alice, room, &bob.user_id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    expect_removed(&mut on_b, room, LIVE).await;
    let elapsed = started.elapsed();
    eprintln!("cross-instance removal (DELETE member on A → unsubscribed on B): {elapsed:?}");
    assert!(elapsed < LIVE, "{elapsed:?}");
    assert_alive(&mut on_b).await;
    expect_presence(&mut on_a, room, &bob.user_id, "leave").await;
    expect_refused(
        &mut on_b,
        json!({"type": "publish", "room": room, "body": "still?"}),
        "forbidden",
    )
    .await;
    assert_error(b.publish(&bob, room, "still?").await, 403, "forbidden").await;

    // Added back through A: B lets him in again (as soon as a revocation would
    // cross, at the latest).
    let resp = a.add_member(&alice, room, &bob.user_id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let in_again = poll_until(
        Duration::from_secs(2),
        async || b.publish(&bob, room, "back").await.status(),
        |s| *s == StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(in_again, StatusCode::ACCEPTED);
    expect_message(&mut on_a, room, &bob.user_id, "back").await;
    subscribe(&mut on_b, room).await;
    expect_presence(&mut on_a, room, &bob.user_id, "join").await;

    // Deleted through A: both sockets are taken out, B's within a second.
    let started = Instant::now();
    assert_eq!(
        a.delete_room(&alice, room).await.status(),
        StatusCode::NO_CONTENT
    );
    expect_removed_with_the_room(&mut on_b, room, LIVE).await;
    assert!(started.elapsed() < LIVE, "{:?}", started.elapsed());
    expect_removed_with_the_room(&mut on_a, room, LIVE).await;
    assert_alive(&mut on_b).await;
    assert_error(b.publish(&bob, room, "gone?").await, 403, "forbidden").await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn presence_counts_a_users_sockets_on_every_instance() {
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);
    let room = "lobby";
    let alice = a.user_with_tokens().await;
    let bob = a.user_with_tokens().await;
    let mut watcher = socket(a, &alice).await;
    subscribe(&mut watcher, room).await;

    let mut bob_on_a = socket(a, &bob).await;
    let mut bob_on_b = socket(b, &bob).await;
    wait_present(b, &bob, room, &[&alice.user_id]).await;
    assert_eq!(
        subscribe(&mut bob_on_b, room).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );
    expect_presence(&mut watcher, room, &bob.user_id, "join").await;
    assert_eq!(
        subscribe(&mut bob_on_a, room).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );
    // One user, one join, wherever his sockets are.
    assert_no_more(&mut watcher, Duration::from_millis(500)).await;
    for on in [a, b] {
        assert_eq!(
            on.present_users(&alice, room).await,
            sorted(&[&alice.user_id, &bob.user_id])
        );
    }

    // His socket on A (alice's instance) goes: he is still there, on B.
    close_socket(bob_on_a).await;
    wait_live_sockets(a, &bob, 1).await;
    assert_no_more(&mut watcher, Duration::from_millis(500)).await;
    assert_eq!(
        a.present_users(&alice, room).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );
    // His last socket goes, on B: one leave, on A.
    close_socket(bob_on_b).await;
    expect_presence(&mut watcher, room, &bob.user_id, "leave").await;
    assert_no_more(&mut watcher, Duration::from_millis(300)).await;
    for on in [a, b] {
        assert_eq!(
            on.present_users(&alice, room).await,
            vec![alice.user_id.clone()]
        );
    }
}

/// Notes that leave one instance together go out in one statement, where NOTIFY
/// would deliver a repeated payload once: a user joining and leaving a room over
/// and over (identical `leave` notes, and `join`s within one millisecond) must
/// still end in the right state on the other instance.
#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn rapid_joins_and_leaves_on_one_instance_end_right_on_the_other() {
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);
    let room = "lobby";
    let alice = a.user_with_tokens().await;
    let bob = b.user_with_tokens().await;
    let mut watcher = socket(b, &bob).await;
    subscribe(&mut watcher, room).await;
    let mut on_a = socket(a, &alice).await;
    // Within the per-socket message burst (100).
    let cycles = 20;
    for round in 0..2 {
        // Sent without waiting for the answers, so the relay queue fills up.
        for _ in 0..cycles {
            send_json(&mut on_a, json!({"type": "subscribe", "room": room})).await;
            send_json(&mut on_a, json!({"type": "unsubscribe", "room": room})).await;
        }
        if round == 0 {
            send_json(&mut on_a, json!({"type": "subscribe", "room": room})).await;
        }
        let mut answers = 0;
        while answers < 2 * cycles + 1 - round {
            let frame = next_json(&mut on_a).await;
            if frame["type"] == "subscribed" || frame["type"] == "unsubscribed" {
                answers += 1;
            }
        }
        // Round 0 ends subscribed, round 1 unsubscribed: B must agree, and stay so.
        let want: Vec<&str> = if round == 0 {
            vec![&alice.user_id, &bob.user_id]
        } else {
            vec![&bob.user_id]
        };
        wait_present(b, &bob, room, &want).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(b.present_users(&bob, room).await, sorted(&want));
    }
    // What bob's socket on B heard of alice: joins and leaves in turn, the last a
    // leave.
    let mut events = vec![];
    while let Ok(frame) =
        tokio::time::timeout(Duration::from_millis(500), next_json(&mut watcher)).await
    {
        assert_eq!(frame["type"], "presence", "{frame}");
        assert_eq!(frame["user_id"], alice.user_id.as_str(), "{frame}");
        events.push(frame["event"].as_str().unwrap().to_owned());
    }
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e == ["join", "leave"][i % 2]),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap(), "leave");
    assert_alive(&mut watcher).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn presence_held_by_a_killed_instance_is_gone_within_60_seconds() {
    let Pair { a, b, db, _dir } = two_instances().await;
    let room = "lobby";
    let alice = a.user_with_tokens().await;
    let bob = a.user_with_tokens().await;
    let carol = a.user_with_tokens().await;
    let mut watcher = socket(&a, &alice).await;
    subscribe(&mut watcher, room).await;
    // Bob is only on B; carol is on both.
    let mut bob_on_b = socket(&b, &bob).await;
    subscribe(&mut bob_on_b, room).await;
    expect_presence(&mut watcher, room, &bob.user_id, "join").await;
    let mut carol_on_a = socket(&a, &carol).await;
    subscribe(&mut carol_on_a, room).await;
    expect_presence(&mut watcher, room, &carol.user_id, "join").await;
    let mut carol_on_b = socket(&b, &carol).await;
    subscribe(&mut carol_on_b, room).await;
    assert_eq!(
        a.present_users(&alice, room).await,
        sorted(&[&alice.user_id, &bob.user_id, &carol.user_id])
    );

    // kill -9: B says goodbye to no one.
    b.kill();
    let killed = Instant::now();
    let frame = next_json_within(&mut watcher, Duration::from_secs(60)).await;
    let after = killed.elapsed();
    eprintln!("presence of a killed instance expired after {after:?}");
    assert_eq!(
        frame,
        json!({"type": "presence", "room": room, "user_id": bob.user_id, "event": "leave"})
    );
    // Carol still has a socket on A: she stays, with no leave.
    expect_presence(&mut carol_on_a, room, &bob.user_id, "leave").await;
    assert_eq!(
        a.present_users(&alice, room).await,
        sorted(&[&alice.user_id, &carol.user_id])
    );
    assert_no_more(&mut watcher, Duration::from_millis(500)).await;
    assert_alive(&mut watcher).await;
    drop((a, db));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn live_sockets_count_the_sockets_on_every_instance() {
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);
    let tokens = a.user_with_tokens().await;
    let on_a = socket(a, &tokens).await;
    let on_b1 = socket(b, &tokens).await;
    let on_b2 = socket(b, &tokens).await;
    wait_live_sockets(a, &tokens, 3).await;
    wait_live_sockets(b, &tokens, 3).await;
    close_socket(on_b1).await;
    drop(on_b2);
    wait_live_sockets(a, &tokens, 1).await;
    close_socket(on_a).await;
    wait_live_sockets(b, &tokens, 0).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn notices_and_password_changes_cross_instances() {
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);
    let email = a.new_user().await;
    let laptop = a.login_tokens(&email).await;
    let tablet = a.login_tokens(&email).await;
    let mut on_a = socket(a, &laptop).await;
    let mut on_b = socket(b, &tablet).await;

    // A login served by B is announced on A.
    let resp = b
        .login(&email, PASSWORD)
        .header("user-agent", "Phone/2")
        .await;
    let phone = Tokens::from_response(resp).await;
    for ws in [&mut on_a, &mut on_b] {
        let notice = next_json(ws).await;
        assert_eq!(notice["type"], "notice", "{notice}");
        assert_eq!(notice["kind"], "new_session", "{notice}");
        assert_eq!(notice["session_id"], phone.session_id.as_str(), "{notice}");
        assert_eq!(notice["user_agent"], "Phone/2", "{notice}");
    }

    // A logout served by B is announced on A.
    assert_eq!(b.logout(&phone).await.status(), StatusCode::NO_CONTENT);
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(
            next_json(ws).await,
            json!({
                "type": "notice",
                "kind": "session_ended",
                "session_id": phone.session_id,
                "reason": "logout",
            })
        );
    }

    // A password change served by A closes the tablet's socket on B with 4403.
    let started = Instant::now();
    let resp = a
        .change_password(&laptop, PASSWORD, "another passphrase")
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (code, reason) = expect_close(&mut on_b, Duration::from_secs(2)).await;
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    assert!(started.elapsed() < Duration::from_secs(2));
    let notice = next_json(&mut on_a).await;
    assert_eq!(notice["kind"], "session_ended", "{notice}");
    assert_eq!(notice["session_id"], tablet.session_id.as_str());
    assert_eq!(notice["reason"], "password_changed");
    assert_alive(&mut on_a).await;
    assert_eq!(b.me(&laptop).await.status(), StatusCode::OK);
    assert_eq!(b.me(&tablet).await.status(), StatusCode::UNAUTHORIZED);
}

// --- issue 35: a removed factor reaches sockets on every instance --------------

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn a_factor_removed_on_one_instance_takes_sockets_out_of_aal2_rooms_on_the_other() {
    use crate::second_factors::{code, enrol};
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);
    let email = a.new_user().await;
    let alice = a.login_tokens(&email).await;
    let (secret, _) = enrol(a, &alice).await;
    let resp = a
        .post_json(
            "/api/auth/reauth",
            &alice,
            &json!({"code": code(&secret, 1)}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = a
        .post_json(
            "/api/rooms",
            &alice,
            &json!({"name": "private:vault", "require_aal2": true}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    // The socket on B: aal2, in the room.
    let (mut on_b, welcome) = b.ws_welcomed(&alice).await;
    assert_eq!(welcome["aal"], "aal2", "{welcome}");
    subscribe(&mut on_b, "private:vault").await;

    // TOTP goes on A: the socket on B leaves the room within a second, and hears why.
    let started = Instant::now();
    let resp = a
        .call(reqwest::Method::DELETE, "/api/me/totp", &alice)
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(next_json_within(&mut on_b, Duration::from_secs(1)).await);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        seen.contains(
            &json!({"type": "unsubscribed", "room": "private:vault", "reason": "mfa_required"})
        ),
        "{seen:?}"
    );
    assert!(
        seen.contains(&json!({"type": "notice", "kind": "factor_removed", "method": "otp"})),
        "{seen:?}"
    );
    // B knows the session is aal1 now: the room refuses it there, and over HTTP.
    expect_refused(
        &mut on_b,
        json!({"type": "subscribe", "room": "private:vault"}),
        "forbidden",
    )
    .await;
    let me: serde_json::Value = b.me(&alice).await.json().await.unwrap();
    assert_eq!(me["aal"], "aal1", "{me}");
}

// --- issue 31 item 2: large room messages leave nothing behind ----------------

/// Rows in `room_messages` and the table's size on disk (with its indexes and
/// TOAST), in bytes.
async fn relay_rows(db: &PgDatabase) -> (i64, i64) {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let conn = Database::connect(&db.url).await.unwrap();
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT COUNT(*) AS n, pg_total_relation_size('room_messages') AS bytes \
             FROM room_messages",
        ))
        .await
        .unwrap()
        .unwrap();
    let counted = (
        row.try_get("", "n").unwrap(),
        row.try_get("", "bytes").unwrap(),
    );
    conn.close().await.ok();
    counted
}

/// The bodies of 4,096 characters whose frames are the largest: four bytes a
/// character, six once escaped in the frame (seven once escaped again in a note),
/// and two.
fn largest_bodies() -> Vec<String> {
    vec![
        "😀".repeat(4096),
        "\u{1}".repeat(4096),
        "\\".repeat(4096),
        "é".repeat(4096),
    ]
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn large_messages_cross_instances_and_a_flood_leaves_no_rows() {
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);
    let alice = a.user_with_tokens().await;
    let bob = b.user_with_tokens().await;
    let mut on_b = socket(b, &bob).await;
    subscribe(&mut on_b, "big").await;
    wait_present(a, &alice, "big", &[&bob.user_id]).await;
    let before = relay_rows(&pair.db).await;

    // The attack: one account floods a room nobody is in with the largest
    // messages, within its publish budget (a burst of 40 at the default 20/s).
    for _ in 0..8 {
        for body in largest_bodies() {
            let resp = a.publish(&alice, "nobody-here", &body).await;
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
        }
    }
    // Large messages still reach a subscriber on the other instance, whole and in
    // order, however their bodies encode.
    let bodies = largest_bodies();
    for body in &bodies {
        let resp = a.publish(&alice, "big", body).await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    for body in &bodies {
        let msg = next_json(&mut on_b).await;
        assert_eq!(msg["room"], "big");
        assert_eq!(msg["from"], alice.user_id.as_str());
        assert_eq!(
            msg["body"].as_str().unwrap(),
            body.as_str(),
            "whole, in order"
        );
    }
    assert_no_more(&mut on_b, Duration::from_millis(300)).await;

    // Nothing of the 36 messages stays in the database.
    let after = relay_rows(&pair.db).await;
    eprintln!(
        "room_messages after 36 messages of 4,096 characters: {} rows, {} → {} bytes",
        after.0, before.1, after.1
    );
    assert_eq!(after.0, 0, "relay rows written");
    assert_eq!(after.1, before.1, "the table grew");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn a_large_message_relayed_by_the_previous_release_still_arrives() {
    // During a rolling upgrade an instance of the previous release still writes a
    // large message into `room_messages` and notifies the row's id.
    let pair = two_instances().await;
    let b = &pair.b;
    let bob = b.user_with_tokens().await;
    let mut on_b = socket(b, &bob).await;
    subscribe(&mut on_b, "big").await;
    let frame = json!({
        "type": "message",
        "id": uuid::Uuid::now_v7(),
        "room": "big",
        "from": uuid::Uuid::new_v4(),
        "body": "é".repeat(4096),
        "sent_at": "2026-11-27T12:00:00Z",
    });
    let id = uuid::Uuid::now_v7();
    pair.db
        .execute(&format!(
            "INSERT INTO room_messages (id, room, frame, created_at) \
             VALUES ('{id}', 'big', '{frame}', now())"
        ))
        .await;
    let note = json!({"v": 1, "o": uuid::Uuid::new_v4(), "n": 1, "k": "msg", "r": "big", "id": id});
    pair.db
        .execute(&format!("SELECT pg_notify('doorman_rooms', '{note}')"))
        .await;
    assert_eq!(next_json(&mut on_b).await, frame);
}

/// Two instances publish into one room at once: every subscriber, on either
/// instance, gets every message once, in one offset order (the offsets are taken
/// and the notifications sent in the transaction that stores the messages).
#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn both_instances_see_one_offset_order() {
    let pair = two_instances().await;
    let alice = pair.a.user_with_tokens().await;
    let bob = pair.b.user_with_tokens().await;
    let mut on_a = socket(&pair.a, &alice).await;
    let mut on_b = socket(&pair.b, &bob).await;
    for ws in [&mut on_a, &mut on_b] {
        send_json(ws, json!({"type": "subscribe", "room": "ordered"})).await;
        assert_eq!(next_json(ws).await["type"], "subscribed");
    }
    // Within one user's publish burst (twice DOORMAN_PUBLISH_PER_SECOND, 20).
    const EACH: u64 = 35;
    let mut publishers = Vec::new();
    for (url, token) in [
        (
            pair.a.url("/api/rooms/ordered/messages"),
            alice.access.clone(),
        ),
        (
            pair.b.url("/api/rooms/ordered/messages"),
            bob.access.clone(),
        ),
    ] {
        let http = reqwest::Client::new();
        publishers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let resp = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"body": format!("m{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::ACCEPTED);
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    let mut epoch = String::new();
    for ws in [&mut on_a, &mut on_b] {
        let mut offsets = Vec::new();
        while offsets.len() < (2 * EACH) as usize {
            let frame = next_json_within(ws, Duration::from_secs(5)).await;
            if frame["type"] == "message" {
                offsets.push(frame["offset"].as_u64().unwrap());
                epoch = frame["epoch"].as_str().unwrap().to_owned();
            }
        }
        assert_eq!(offsets, (1..=2 * EACH).collect::<Vec<_>>());
        // Nothing twice (presence frames may still come).
        while let Ok(Some(Ok(msg))) =
            tokio::time::timeout(Duration::from_millis(300), ws.next()).await
        {
            assert!(
                !msg.to_text().unwrap_or("").contains("\"message\""),
                "{msg:?}"
            );
        }
    }
    // A client of the first instance resumes on the second, from the shared history.
    let (mut resumed, _) = pair.b.ws_welcomed(&alice).await;
    send_json(
        &mut resumed,
        json!({"type": "subscribe", "room": "ordered", "since": {"offset": 2 * EACH - 5, "epoch": epoch}}),
    )
    .await;
    let answer = next_json(&mut resumed).await;
    assert_eq!(answer["recovered"], true, "{answer}");
    for offset in 2 * EACH - 4..=2 * EACH {
        assert_eq!(next_json(&mut resumed).await["offset"], offset);
    }
}

/// One subscriber of the recovery test: follows its rooms on `url`, and when its
/// socket dies (its instance was killed) resumes on `fallback` with `since`.
async fn follow(
    mut url: String,
    fallback: String,
    token: String,
    rooms: Vec<String>,
    targets: std::sync::Arc<std::sync::Mutex<Option<std::collections::HashMap<String, u64>>>>,
) -> std::collections::HashMap<String, Vec<u64>> {
    use std::collections::HashMap;

    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let mut got: HashMap<String, Vec<u64>> = HashMap::new();
    let mut epochs: HashMap<String, String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    'connect: loop {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else {
            url = fallback.clone();
            continue;
        };
        for room in &rooms {
            let mut frame = json!({"type": "subscribe", "room": room});
            if let Some(epoch) = epochs.get(room) {
                let last = got.get(room).and_then(|g| g.last()).copied().unwrap_or(0);
                frame["since"] = json!({"offset": last, "epoch": epoch});
            }
            if ws
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                url = fallback.clone();
                continue 'connect;
            }
        }
        loop {
            assert!(
                Instant::now() < deadline,
                "not every message arrived: {got:?}"
            );
            if let Some(targets) = targets.lock().unwrap().as_ref()
                && rooms
                    .iter()
                    .all(|r| got.get(r).and_then(|g| g.last()) == targets.get(r))
            {
                return got;
            }
            let frame = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                Err(_) => continue,
                Ok(Some(Ok(Message::Text(text)))) => {
                    serde_json::from_str::<serde_json::Value>(&text).unwrap()
                }
                Ok(Some(Ok(_))) => continue,
                // The instance is gone: resume on the other one.
                Ok(_) => {
                    url = fallback.clone();
                    continue 'connect;
                }
            };
            match frame["type"].as_str() {
                Some("subscribed") => {
                    if frame.get("since").is_some() || frame.get("recovered").is_some() {
                        assert_eq!(frame["recovered"], true, "{frame}");
                    }
                    let room = frame["room"].as_str().unwrap().to_owned();
                    epochs
                        .entry(room)
                        .or_insert_with(|| frame["epoch"].as_str().unwrap().to_owned());
                }
                Some("message") => {
                    let room = frame["room"].as_str().unwrap().to_owned();
                    epochs.insert(room.clone(), frame["epoch"].as_str().unwrap().to_owned());
                    got.entry(room)
                        .or_default()
                        .push(frame["offset"].as_u64().unwrap());
                }
                _ => {}
            }
        }
    }
}

/// The guarantee of issue 33 end to end: two instances, subscribers on both,
/// messages published through both, one instance `kill -9`-ed half-way; its
/// subscribers resume on the other with `since`. Every subscriber ends with every
/// message that was accepted, once each, in offset order per room. The issue's
/// size: 100 clients on 10 rooms, 10,000 messages from four publishers at once.
#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn subscribers_of_a_killed_instance_recover_every_message_once_in_order() {
    use std::{collections::HashMap, sync::Arc};

    let pair = two_instances_with(&[
        ("DOORMAN_PUBLISH_PER_SECOND", "100000"),
        ("DOORMAN_HISTORY_SIZE", "5000"),
    ])
    .await;
    let Pair { a, b, db, _dir } = pair;
    const ROOMS: usize = 10;
    const CLIENTS: usize = 100;
    const MESSAGES: usize = 10_000;
    const PUBLISHERS: usize = 4;
    let rooms: Vec<String> = (0..ROOMS).map(|i| format!("resume-{i}")).collect();
    let targets: Arc<std::sync::Mutex<Option<HashMap<String, u64>>>> = Arc::default();
    let mut followers = Vec::new();
    for i in 0..CLIENTS {
        let tokens = a.user_with_tokens().await;
        // Half on each instance; each follows two of the rooms.
        let (url, fallback) = if i % 2 == 0 {
            (a.ws_url(), b.ws_url())
        } else {
            (b.ws_url(), a.ws_url())
        };
        let mine = vec![rooms[i % ROOMS].clone(), rooms[(i + 1) % ROOMS].clone()];
        followers.push(tokio::spawn(follow(
            url,
            fallback,
            tokens.access,
            mine,
            targets.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let publisher = b.user_with_tokens().await;
    let http = reqwest::Client::new();
    let (a_url, b_url) = (a.url("/api/rooms"), b.url("/api/rooms"));
    let a_alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (half_tx, half_rx) = tokio::sync::oneshot::channel::<()>();
    let half_tx = Arc::new(std::sync::Mutex::new(Some(half_tx)));
    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS {
        let (http, token, rooms) = (http.clone(), publisher.access.clone(), rooms.clone());
        let (a_url, b_url, a_alive, next, half_tx) = (
            a_url.clone(),
            b_url.clone(),
            a_alive.clone(),
            next.clone(),
            half_tx.clone(),
        );
        publishers.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::SeqCst;
            // The highest offset accepted per room, and how many were accepted.
            let mut last: HashMap<String, u64> = HashMap::new();
            let mut accepted = 0u64;
            loop {
                let i = next.fetch_add(1, SeqCst);
                if i >= MESSAGES {
                    return (last, accepted);
                }
                if i == MESSAGES / 2
                    && let Some(tx) = half_tx.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
                // Alternate instances while both live; then only the survivor.
                let base = if i % 2 == 0 && a_alive.load(SeqCst) {
                    &a_url
                } else {
                    &b_url
                };
                let room = &rooms[i % ROOMS];
                let sent = http
                    .post(format!("{base}/{room}/messages"))
                    .bearer_auth(&token)
                    .json(&json!({"body": format!("m{i}")}))
                    .send()
                    .await;
                // A request to the instance being killed may fail: not accepted.
                let Ok(resp) = sent else {
                    assert!(base == &a_url, "a request to the surviving instance failed");
                    continue;
                };
                if base == &a_url && resp.status() != StatusCode::ACCEPTED {
                    continue;
                }
                assert_eq!(resp.status(), StatusCode::ACCEPTED);
                let Ok(body) = resp.json::<serde_json::Value>().await else {
                    continue;
                };
                let offset = body["offset"].as_u64().unwrap();
                let top = last.entry(room.clone()).or_default();
                *top = (*top).max(offset);
                accepted += 1;
            }
        }));
    }
    let _ = half_rx.await;
    a_alive.store(false, std::sync::atomic::Ordering::SeqCst);
    a.kill();
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut accepted = 0;
    for p in publishers {
        let (theirs, n) = p.await.unwrap();
        accepted += n;
        for (room, offset) in theirs {
            let top = last.entry(room).or_default();
            *top = (*top).max(offset);
        }
    }
    *targets.lock().unwrap() = Some(last.clone());
    for f in followers {
        let got = f.await.unwrap();
        for (room, offsets) in got {
            assert_eq!(offsets, (1..=last[&room]).collect::<Vec<_>>(), "{room}");
        }
    }
    // Every accepted message has its offset; a request cut off by the kill may
    // have been stored all the same (it is delivered too, and counted above).
    let stored = last.values().sum::<u64>();
    assert!(
        (accepted..=MESSAGES as u64).contains(&stored),
        "{stored} stored, {accepted} accepted"
    );
    assert!(
        accepted >= MESSAGES as u64 - 100,
        "only {accepted} accepted"
    );
    drop((b, db));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn a_password_reset_on_one_instance_closes_the_users_sockets_on_both() {
    let outbox = crate::mailbox::Mailbox::new();
    let dir = outbox.path().display().to_string();
    let pair = two_instances_with(&[("DOORMAN_MAIL_DIR", &dir)]).await;
    let (a, b) = (&pair.a, &pair.b);
    let email = a.new_user().await;
    let first = a.login_tokens(&email).await;
    let second = b.login_tokens(&email).await;
    let mut sockets = vec![
        socket(a, &first).await,
        socket(a, &second).await,
        socket(b, &first).await,
    ];
    let someone_else = a.user_with_tokens().await;
    let mut bystander = socket(a, &someone_else).await;

    assert_eq!(b.request_reset(&email).await.status(), StatusCode::ACCEPTED);
    let token = outbox
        .message(1)
        .await
        .token("http://doorman.test/#reset-password=");
    let new_password = "a brand new passphrase";
    let started = Instant::now();
    let resp = b.confirm_reset(&token, new_password).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for ws in &mut sockets {
        let (code, reason) = expect_close(ws, Duration::from_secs(2)).await;
        assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    }
    eprintln!(
        "reset on B → every socket of the user closed on A and B in {:?}",
        started.elapsed()
    );
    assert_alive(&mut bystander).await;
    assert_eq!(a.me(&second).await.status(), StatusCode::UNAUTHORIZED);
    // Spent for every instance; the new password works on both.
    assert_eq!(
        a.confirm_reset(&token, "another password!").await.status(),
        403
    );
    assert_eq!(a.login(&email, new_password).await.status(), StatusCode::OK);
    assert_eq!(
        a.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
