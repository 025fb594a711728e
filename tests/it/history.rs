//! Room history (issue 33): offsets, recovery on subscribe, the seam between replay
//! and live, who may read what, and `GET /api/rooms/{room}/messages`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Subscribes with `since` (or without) and returns the `subscribed` frame.
async fn subscribe_since(ws: &mut Ws, room: &str, since: Option<(u64, &str)>) -> Value {
    let mut frame = json!({"type": "subscribe", "room": room});
    if let Some((offset, epoch)) = since {
        frame["since"] = json!({"offset": offset, "epoch": epoch});
    }
    send_json(ws, frame).await;
    let answer = next_json(ws).await;
    assert_eq!(answer["type"], "subscribed", "{answer}");
    answer
}

/// The next `n` message frames (presence frames skipped).
async fn messages(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let frame = next_json(ws).await;
        if frame["type"] == "message" {
            out.push(frame);
        }
    }
    out
}

fn bodies(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["body"].as_str().unwrap()).collect()
}

fn offsets(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .map(|f| f["offset"].as_u64().unwrap())
        .collect()
}

/// Publishes `n` messages (`m1` … `mN`) into `room` over HTTP, one after another, in
/// a task of its own.
fn publish_in_background(
    app: &TestApp,
    tokens: &Tokens,
    room: &str,
    n: u64,
) -> tokio::task::JoinHandle<()> {
    let http = app.http.clone();
    let url = app.url(&format!("/api/rooms/{room}/messages"));
    let token = tokens.access.clone();
    tokio::spawn(async move {
        for i in 1..=n {
            let resp = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"body": format!("m{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
        }
    })
}

/// `GET /api/rooms/{path_and_query}` as `tokens`' user: 200 and its JSON.
async fn history_page(app: &TestApp, tokens: &Tokens, path_and_query: &str) -> Value {
    let resp = app
        .call(
            reqwest::Method::GET,
            &format!("/api/rooms/{path_and_query}"),
            tokens,
        )
        .send()
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn publish_ok(app: &TestApp, tokens: &Tokens, room: &str, body: &str) -> Value {
    let resp = app.publish(tokens, room, body).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_client_that_comes_back_gets_what_it_missed_once_and_in_order() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&alice).await;
    let first = subscribe_since(&mut ws, "lobby", None).await;
    assert_eq!(
        (first["offset"].as_u64(), first["epoch"].as_str()),
        (Some(0), Some(""))
    );
    for body in ["one", "two", "three"] {
        publish_ok(&app, &bob, "lobby", body).await;
    }
    let seen = messages(&mut ws, 3).await;
    assert_eq!(bodies(&seen), ["one", "two", "three"]);
    assert_eq!(offsets(&seen), [1, 2, 3]);
    let epoch = seen[2]["epoch"].as_str().unwrap().to_owned();
    assert!(!epoch.is_empty());
    close_socket(ws).await;

    // Away: four more, the last one over HTTP with its place in the answer.
    for body in ["four", "five", "six"] {
        publish_ok(&app, &bob, "lobby", body).await;
    }
    let published = publish_ok(&app, &bob, "lobby", "seven").await;
    assert_eq!(published["offset"], 7);
    assert_eq!(published["epoch"], epoch.as_str());

    let (mut ws, _) = app.ws_welcomed(&alice).await;
    let answer = subscribe_since(&mut ws, "lobby", Some((3, &epoch))).await;
    assert_eq!(answer["recovered"], true, "{answer}");
    assert_eq!(answer["offset"], 7);
    assert!(answer.get("reason").is_none(), "{answer}");
    let replayed = messages(&mut ws, 4).await;
    assert_eq!(bodies(&replayed), ["four", "five", "six", "seven"]);
    assert_eq!(offsets(&replayed), [4, 5, 6, 7]);
    // Then live, from the next offset on, nothing twice.
    publish_ok(&app, &bob, "lobby", "eight").await;
    let live = messages(&mut ws, 1).await;
    assert_eq!((bodies(&live), offsets(&live)), (vec!["eight"], vec![8]));
    assert_no_more(&mut ws, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn what_cannot_be_replayed_says_why() {
    let app = spawn_with(|c| c.history_size = 3).await;
    let alice = app.user_with_tokens().await;
    for i in 1..=10 {
        publish_ok(&app, &alice, "lobby", &format!("m{i}")).await;
    }
    let (mut ws, _) = app.ws_welcomed(&alice).await;
    let epoch = subscribe_since(&mut ws, "lobby", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    // Offsets 8 to 10 are kept; 3 is long gone.
    let answer = subscribe_since(&mut ws, "lobby", Some((3, &epoch))).await;
    assert_eq!(
        (answer["recovered"].clone(), answer["reason"].clone()),
        (json!(false), json!("too_old"))
    );
    let answer = subscribe_since(&mut ws, "lobby", Some((9, "not-the-epoch"))).await;
    assert_eq!(
        (answer["recovered"].clone(), answer["reason"].clone()),
        (json!(false), json!("epoch_changed"))
    );
    // The last three are still there.
    let answer = subscribe_since(&mut ws, "lobby", Some((7, &epoch))).await;
    assert_eq!(answer["recovered"], true, "{answer}");
    assert_eq!(bodies(&messages(&mut ws, 3).await), ["m8", "m9", "m10"]);
    // From offset 0: whatever the room keeps.
    let answer = subscribe_since(&mut ws, "lobby", Some((0, ""))).await;
    assert_eq!(answer["recovered"], true, "{answer}");
    assert_eq!(offsets(&messages(&mut ws, 3).await), [8, 9, 10]);
    assert_no_more(&mut ws, Duration::from_millis(200)).await;

    let off = spawn_with(|c| c.history_size = 0).await;
    let carol = off.user_with_tokens().await;
    let (mut ws, _) = off.ws_welcomed(&carol).await;
    let answer = subscribe_since(&mut ws, "lobby", Some((3, "x"))).await;
    assert_eq!(
        (answer["recovered"].clone(), answer["reason"].clone()),
        (json!(false), json!("history_off"))
    );
    assert!(answer.get("offset").is_none(), "{answer}");
    publish_ok(&off, &carol, "lobby", "plain").await;
    let frame = messages(&mut ws, 1).await.remove(0);
    assert!(
        frame.get("offset").is_none() && frame.get("epoch").is_none(),
        "{frame}"
    );
}

/// Publishing runs on while a client subscribes with `since`: the replay and the
/// live stream meet without a gap or a repeat.
#[tokio::test]
async fn replay_and_live_meet_without_a_gap_or_a_repeat() {
    let app = spawn_with(|c| c.publish_per_second = 10_000).await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    const N: u64 = 150;
    let publisher = publish_in_background(&app, &bob, "seam", N);
    // Join part-way, asking for everything from the start.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (mut ws, _) = app.ws_welcomed(&alice).await;
    let answer = subscribe_since(&mut ws, "seam", Some((0, ""))).await;
    assert_eq!(answer["recovered"], true, "{answer}");
    let got = messages(&mut ws, N as usize).await;
    assert_eq!(offsets(&got), (1..=N).collect::<Vec<_>>());
    publisher.await.unwrap();
    assert_no_more(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_private_room_replays_only_the_current_membership() {
    let app = spawn_app().await;
    let owner = app.user_with_tokens().await;
    let member = app.user_with_tokens().await;
    let stranger = app.user_with_tokens().await;
    app.private_room(&owner, "private:team", &[&member]).await;
    publish_ok(&app, &owner, "private:team", "while a member").await;
    let resp = app
        .remove_member(&owner, "private:team", &member.user_id)
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    publish_ok(&app, &owner, "private:team", "while away").await;

    // Removed while disconnected: the resume is refused.
    let (mut ws, _) = app.ws_welcomed(&member).await;
    expect_refused(
        &mut ws,
        json!({"type": "subscribe", "room": "private:team", "since": {"offset": 0, "epoch": ""}}),
        "forbidden",
    )
    .await;
    let resp = app
        .call(
            reqwest::Method::GET,
            "/api/rooms/private:team/messages",
            &member,
        )
        .send()
        .await;
    assert_error(resp, 403, "forbidden").await;

    // Added again: only what was said from then on.
    let resp = app
        .add_member(&owner, "private:team", &member.user_id)
        .await;
    assert!(resp.status().is_success());
    publish_ok(&app, &owner, "private:team", "back again").await;
    let answer = subscribe_since(&mut ws, "private:team", Some((0, ""))).await;
    assert_eq!(answer["recovered"], true, "{answer}");
    assert_eq!(bodies(&messages(&mut ws, 1).await), ["back again"]);
    assert_no_more(&mut ws, Duration::from_millis(200)).await;
    let page: Value = history_page(&app, &member, "private:team/messages").await;
    let listed: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["back again"]);
    // Resuming from the message they had before the removal: what was said while
    // they were away is not theirs, so the replay could not be all they missed;
    // not `recovered: true` over a hidden gap (outside attack).
    let first = page["messages"][0]["epoch"].as_str().unwrap().to_owned();
    let (mut again, _) = app.ws_welcomed(&member).await;
    let answer = subscribe_since(&mut again, "private:team", Some((1, &first))).await;
    assert_eq!(answer["recovered"], false, "{answer}");
    assert_eq!(answer["reason"], "too_old", "{answer}");
    // The owner reads it all; a stranger nothing.
    let page: Value = history_page(&app, &owner, "private:team/messages").await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 3, "{page}");
    let resp = app
        .call(
            reqwest::Method::GET,
            "/api/rooms/private:team/messages",
            &stranger,
        )
        .send()
        .await;
    assert_error(resp, 403, "forbidden").await;
}

#[tokio::test]
async fn history_over_http_pages_oldest_first() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    for i in 1..=5 {
        publish_ok(&app, &alice, "paged", &format!("m{i}")).await;
    }
    let get =
        async |query: &str| history_page(&app, &alice, &format!("paged/messages{query}")).await;
    let first = get("?limit=2").await;
    assert_eq!(bodies(first["messages"].as_array().unwrap()), ["m1", "m2"]);
    assert_eq!(first["next"], 2);
    assert_eq!(first["room"], "paged");
    let epoch = first["epoch"].as_str().unwrap();
    assert!(
        first["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["epoch"] == epoch)
    );
    let rest = get("?after=2&limit=10").await;
    assert_eq!(
        bodies(rest["messages"].as_array().unwrap()),
        ["m3", "m4", "m5"]
    );
    assert!(rest.get("next").is_none(), "{rest}");
    let window = get("?after=1&before=4").await;
    assert_eq!(offsets(window["messages"].as_array().unwrap()), [2, 3]);
    let resp = app
        .call(
            reqwest::Method::GET,
            "/api/rooms/paged/messages?limit=101",
            &alice,
        )
        .send()
        .await;
    assert_error(resp, 400, "invalid_input").await;
    let empty = get("").await;
    assert_eq!(empty["messages"].as_array().unwrap().len(), 5);
    let resp = app
        .http
        .get(app.url("/api/rooms/paged/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// History is never a way to fill the disk: past a user's byte budget per TTL,
/// publishing is refused (the socket lives), and other users are unaffected.
#[tokio::test]
async fn a_user_past_the_history_byte_budget_is_refused() {
    let app = spawn_with(|c| {
        c.history_bytes_per_user = 8192;
        c.publish_per_second = 10_000;
    })
    .await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let body = "x".repeat(4000);
    publish_ok(&app, &alice, "big", &body).await;
    publish_ok(&app, &alice, "big", &body).await;
    let resp = app.publish(&alice, "big", &body).await;
    assert_error(resp, 429, "rate_limited").await;
    let (mut ws, _) = app.ws_welcomed(&alice).await;
    expect_refused(
        &mut ws,
        json!({"type": "publish", "room": "big", "body": body}),
        "rate_limited",
    )
    .await;
    publish_ok(&app, &bob, "big", &body).await;
}

/// A private room deleted while its owner's socket is still publishing, and a room
/// of the same name created at once by someone else: nothing of the old room
/// reaches the new one's history (outside attack, issue 33).
#[tokio::test]
async fn a_deleted_rooms_messages_never_reach_a_new_room_of_its_name() {
    use futures_util::SinkExt;
    let app = spawn_with(|c| c.publish_per_second = 100_000).await;
    let old_owner = app.user_with_tokens().await;
    let new_owner = app.user_with_tokens().await;
    for round in 0..6 {
        let room = format!("private:reused{round}");
        app.private_room(&old_owner, &room, &[]).await;
        let (mut ws, _) = app.ws_welcomed(&old_owner).await;
        subscribe_since(&mut ws, &room, None).await;
        // The old owner's socket publishes on and on while the room goes.
        let target = room.clone();
        let flood = tokio::spawn(async move {
            for i in 0..400 {
                let frame = json!({"type": "publish", "room": target, "body": format!("OLD-{i}")});
                let sent = ws
                    .send(tokio_tungstenite::tungstenite::Message::Text(
                        frame.to_string().into(),
                    ))
                    .await;
                if sent.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            ws
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let resp = app.delete_room(&old_owner, &room).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let resp = app.create_room(&new_owner, &room).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let _ws = flood.await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let page = history_page(&app, &new_owner, &format!("{room}/messages?limit=100")).await;
        assert_eq!(page["messages"], json!([]), "round {round}: {page}");
    }
}

/// A burst larger than the room's size: the room keeps its size, and a client that
/// missed more than it keeps is told `too_old`, never `recovered` with a hole.
#[tokio::test]
async fn a_burst_larger_than_the_history_is_trimmed_and_never_replayed_with_a_hole() {
    use futures_util::SinkExt;
    let app = spawn_with(|c| {
        c.history_size = 5;
        c.publish_per_second = 100_000;
    })
    .await;
    let alice = app.user_with_tokens().await;
    publish_ok(&app, &alice, "burst", "first").await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let tokens = app.user_with_tokens().await;
        sockets.push(app.ws_welcomed(&tokens).await.0);
    }
    for ws in &mut sockets {
        for i in 0..40 {
            let frame = json!({"type": "publish", "room": "burst", "body": format!("b{i}")});
            ws.feed(tokio_tungstenite::tungstenite::Message::Text(
                frame.to_string().into(),
            ))
            .await
            .unwrap();
        }
    }
    for ws in &mut sockets {
        ws.flush().await.unwrap();
    }
    let (kept, last, epoch) = poll_until(
        Duration::from_secs(5),
        async || {
            let page: Value = history_page(&app, &alice, "burst/messages?limit=100").await;
            let messages = page["messages"].as_array().unwrap().clone();
            let last = messages
                .last()
                .and_then(|m| m["offset"].as_u64())
                .unwrap_or(0);
            (
                messages.len(),
                last,
                page["epoch"].as_str().unwrap_or("").to_owned(),
            )
        },
        |(_, last, _)| *last == 161,
    )
    .await;
    assert_eq!(last, 161);
    assert_eq!(kept, 5);
    let (mut ws, _) = app.ws_welcomed(&alice).await;
    let answer = subscribe_since(&mut ws, "burst", Some((1, &epoch))).await;
    assert_eq!(
        (answer["recovered"].clone(), answer["reason"].clone()),
        (json!(false), json!("too_old")),
        "{answer}"
    );
}

/// `subscribe` sent again on the same socket, while messages flow: none is lost and
/// none comes twice ("subscribing again is harmless").
#[tokio::test]
async fn subscribing_again_on_a_socket_loses_and_repeats_nothing() {
    let app = spawn_with(|c| c.publish_per_second = 100_000).await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&alice).await;
    subscribe_since(&mut ws, "again", None).await;
    const N: u64 = 120;
    let publisher = publish_in_background(&app, &bob, "again", N);
    let mut offsets = Vec::new();
    let mut since_resubscribe = 0;
    while offsets.last() != Some(&N) {
        let frame = next_json(&mut ws).await;
        if frame["type"] == "message" {
            {
                offsets.push(frame["offset"].as_u64().unwrap());
                since_resubscribe += 1;
                if since_resubscribe == 7 {
                    since_resubscribe = 0;
                    // Alternately plain and with `since` (the last offset it has).
                    let since = offsets.len() % 2 == 0;
                    let mut again = json!({"type": "subscribe", "room": "again"});
                    if since {
                        again["since"] =
                            json!({"offset": offsets.last().unwrap(), "epoch": frame["epoch"]});
                    }
                    send_json(&mut ws, again).await;
                }
            }
        }
    }
    publisher.await.unwrap();
    assert_eq!(offsets, (1..=N).collect::<Vec<_>>());
}

/// A private room's older messages are read and left out of a member's page; the
/// page still says where the next one starts.
#[tokio::test]
async fn a_page_of_left_out_messages_still_points_to_the_next() {
    let app = spawn_with(|c| c.publish_per_second = 100_000).await;
    let owner = app.user_with_tokens().await;
    let late = app.user_with_tokens().await;
    app.private_room(&owner, "private:late", &[]).await;
    for i in 0..12 {
        publish_ok(&app, &owner, "private:late", &format!("before {i}")).await;
    }
    let resp = app.add_member(&owner, "private:late", &late.user_id).await;
    assert!(resp.status().is_success());
    publish_ok(&app, &owner, "private:late", "after").await;
    let mut after = 0;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page: Value = history_page(
            &app,
            &late,
            &format!("private:late/messages?limit=5&after={after}"),
        )
        .await;
        seen.extend(
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["body"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, ["after"]);
}

/// The `subscribed` frame for `room` with `since` on a new socket of `on`.
async fn resume(
    on: &ServerProcess,
    tokens: &Tokens,
    room: &str,
    since: (u64, &str),
) -> (Ws, Value) {
    let (mut ws, _) = on.ws_welcomed(tokens).await;
    let answer = subscribe_since(&mut ws, room, Some(since)).await;
    (ws, answer)
}

/// On SQLite offsets are given out in memory and messages stored behind them: a
/// stop (SIGTERM) stores what is held, and a restart recovers across it in the
/// same epoch; a crash (`kill -9`) may lose what was held, and the next start gives
/// every room a new epoch, so a client that had those offsets is told
/// `epoch_changed` instead of getting offsets given twice.
#[tokio::test]
async fn on_sqlite_a_stop_keeps_the_epoch_and_a_crash_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "DATABASE_URL",
        format!("sqlite://{}/history.db?mode=rwc", dir.path().display()),
    )];
    let log = |n: &str| dir.path().join(format!("{n}.log"));
    let server = ServerProcess::start(&env, &log("first")).await;
    let email = server.new_user().await;
    let tokens = server.login_tokens(&email).await;
    let mut epoch = String::new();
    for body in ["one", "two", "three"] {
        let resp = server.publish(&tokens, "lobby", body).await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let placed: Value = resp.json().await.unwrap();
        epoch = placed["epoch"].as_str().unwrap().to_owned();
    }
    assert!(server.terminate().await.success());

    // A clean stop: everything was stored, the epoch stays, recovery works.
    let server = ServerProcess::start(&env, &log("second")).await;
    // Each start listens on a port of its own, which is the tokens' issuer.
    let tokens = server.login_tokens(&email).await;
    let (mut ws, answer) = resume(&server, &tokens, "lobby", (1, &epoch)).await;
    assert_eq!(answer["recovered"], true, "{answer}");
    assert_eq!(
        (answer["offset"].as_u64(), answer["epoch"].as_str()),
        (Some(3), Some(epoch.as_str()))
    );
    let replayed = messages(&mut ws, 2).await;
    assert_eq!(bodies(&replayed), ["two", "three"]);
    close_socket(ws).await;

    // Two more, then kill -9 before they may have been stored.
    for body in ["four", "five"] {
        let resp = server.publish(&tokens, "lobby", body).await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    server.kill();

    let server = ServerProcess::start(&env, &log("third")).await;
    let tokens = server.login_tokens(&email).await;
    let (ws, answer) = resume(&server, &tokens, "lobby", (5, &epoch)).await;
    assert_eq!(answer["recovered"], false, "{answer}");
    assert_eq!(answer["reason"], "epoch_changed", "{answer}");
    let new_epoch = answer["epoch"].as_str().unwrap().to_owned();
    assert_ne!(new_epoch, epoch);
    close_socket(ws).await;
    // The new epoch's messages carry on from what was stored, each offset once.
    let resp = server.publish(&tokens, "lobby", "six").await;
    let placed: Value = resp.json().await.unwrap();
    assert_eq!(placed["epoch"], new_epoch.as_str());
    let at = placed["offset"].as_u64().unwrap();
    let page = server
        .call(reqwest::Method::GET, "/api/rooms/lobby/messages", &tokens)
        .send()
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let page: Value = page.json().await.unwrap();
    let listed = offsets(page["messages"].as_array().unwrap());
    assert_eq!(listed.last(), Some(&at), "{page}");
    assert!(listed.windows(2).all(|w| w[0] + 1 == w[1]), "{page}");
}

/// A client whose `since` is past the room's position in the same epoch (offsets
/// lost without a new epoch) is told `epoch_changed`, not `recovered: true` with
/// nothing.
#[tokio::test]
async fn a_since_past_the_rooms_position_is_an_epoch_change() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    let placed = publish_ok(&app, &alice, "lobby", "one").await;
    let epoch = placed["epoch"].as_str().unwrap().to_owned();
    let (mut ws, _) = app.ws_welcomed(&alice).await;
    let answer = subscribe_since(&mut ws, "lobby", Some((9, &epoch))).await;
    assert_eq!(answer["recovered"], false, "{answer}");
    assert_eq!(answer["reason"], "epoch_changed", "{answer}");
}
