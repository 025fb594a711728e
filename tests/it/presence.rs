//! Presence: who is in a room, counted per user across tabs (first socket in is a
//! `join`, last socket out a `leave`), in `subscribed` and over HTTP.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const ROOM: &str = "lobby";

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// Waits until the server counts `n` open sockets on `tokens`' session: a closed
/// socket is let go asynchronously.
async fn wait_live_sockets(app: &TestApp, tokens: &Tokens, n: u64) {
    poll_until(
        Duration::from_secs(3),
        async || app.live_sockets(tokens, &tokens.session_id).await,
        |&live| live == n,
    )
    .await;
}

#[tokio::test]
async fn subscribed_lists_who_is_present_including_oneself() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let (mut a, _) = app.ws_welcomed(&alice).await;
    let (mut b, _) = app.ws_welcomed(&bob).await;
    assert_eq!(subscribe(&mut a, ROOM).await, vec![alice.user_id.clone()]);
    assert_eq!(
        subscribe(&mut b, ROOM).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );
    // Alice hears bob arrive; bob does not hear his own join.
    expect_presence(&mut a, ROOM, &bob.user_id, "join").await;
    assert_no_more(&mut b, Duration::from_millis(200)).await;

    // Re-subscribing answers again, with the same people.
    assert_eq!(
        subscribe(&mut a, ROOM).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );
    assert_no_more(&mut b, Duration::from_millis(200)).await;

    // An unsubscribe is a leave for the others.
    send_json(&mut b, json!({"type": "unsubscribe", "room": ROOM})).await;
    assert_eq!(
        next_json(&mut b).await,
        json!({"type": "unsubscribed", "room": ROOM})
    );
    expect_presence(&mut a, ROOM, &bob.user_id, "leave").await;
    assert_eq!(
        app.present_users(&alice, ROOM).await,
        vec![alice.user_id.clone()]
    );
}

#[tokio::test]
async fn two_tabs_of_one_user_make_one_join_and_one_leave() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    let bob_email = app.new_user().await;
    let bob = app.login_tokens(&bob_email).await;
    // A second device of bob's, logged in before any socket opens (a login is a
    // notice on the sockets already open).
    let bob_phone = app.login_tokens(&bob_email).await;
    let (mut a, _) = app.ws_welcomed(&alice).await;
    subscribe(&mut a, ROOM).await;

    let (mut b1, _) = app.ws_welcomed(&bob).await;
    let (mut b2, _) = app.ws_welcomed(&bob_phone).await;
    subscribe(&mut b1, ROOM).await;
    expect_presence(&mut a, ROOM, &bob.user_id, "join").await;
    assert_eq!(
        subscribe(&mut b2, ROOM).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );
    // Bob's second socket is no news to anyone, his first socket included.
    assert_no_more(&mut a, Duration::from_millis(300)).await;
    assert_no_more(&mut b1, Duration::from_millis(50)).await;

    // Closing the first: bob is still there.
    close_socket(b1).await;
    wait_live_sockets(&app, &bob, 0).await;
    assert_no_more(&mut a, Duration::from_millis(300)).await;
    assert_eq!(
        app.present_users(&alice, ROOM).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );

    // Closing the last: one leave.
    close_socket(b2).await;
    expect_presence(&mut a, ROOM, &bob.user_id, "leave").await;
    assert_no_more(&mut a, Duration::from_millis(300)).await;
    assert_eq!(
        app.present_users(&alice, ROOM).await,
        vec![alice.user_id.clone()]
    );
}

#[tokio::test]
async fn a_dropped_connection_is_a_leave_too() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let (mut a, _) = app.ws_welcomed(&alice).await;
    subscribe(&mut a, ROOM).await;
    let (mut b, _) = app.ws_welcomed(&bob).await;
    subscribe(&mut b, ROOM).await;
    expect_presence(&mut a, ROOM, &bob.user_id, "join").await;
    // No close handshake: the TCP connection just goes.
    drop(b);
    expect_presence(&mut a, ROOM, &bob.user_id, "leave").await;
}

#[tokio::test]
async fn the_presence_endpoint_lists_users_with_the_time_they_arrived() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let carol = app.user_with_tokens().await;
    assert!(app.present_users(&carol, ROOM).await.is_empty());

    let before = time::OffsetDateTime::now_utc();
    let (mut a, _) = app.ws_welcomed(&alice).await;
    let (mut b1, _) = app.ws_welcomed(&bob).await;
    let (mut b2, _) = app.ws_welcomed(&bob).await;
    subscribe(&mut a, ROOM).await;
    subscribe(&mut b1, ROOM).await;
    subscribe(&mut b2, ROOM).await;
    let after = time::OffsetDateTime::now_utc();

    // Any signed-in user may read a public room's presence: one entry per user.
    let resp = app.presence(&carol, ROOM).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["room"], ROOM);
    let users = body["users"].as_array().expect("users");
    assert_eq!(users.len(), 2, "{body}");
    let mut ids: Vec<&str> = users
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, sorted(&[&alice.user_id, &bob.user_id]));
    for u in users {
        let since = u["since"].as_str().expect("since");
        let since =
            time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339");
        // Clocks of one machine; a second of slack for coarse stored times.
        let slack = time::Duration::seconds(1);
        assert!(
            since >= before - slack && since <= after + slack,
            "{since} outside {before}..{after}"
        );
    }
    // Another room has no one in it.
    assert!(app.present_users(&carol, "elsewhere").await.is_empty());
    drop((a, b1, b2));
}

#[tokio::test]
async fn presence_in_a_private_room_is_for_its_members() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let carol = app.user_with_tokens().await;
    let room = "private:den";
    app.private_room(&alice, room, &[&bob]).await;
    let (mut a, _) = app.ws_welcomed(&alice).await;
    let (mut b, _) = app.ws_welcomed(&bob).await;
    assert_eq!(subscribe(&mut a, room).await, vec![alice.user_id.clone()]);
    assert_eq!(
        subscribe(&mut b, room).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );
    expect_presence(&mut a, room, &bob.user_id, "join").await;
    assert_eq!(
        app.present_users(&bob, room).await,
        sorted(&[&alice.user_id, &bob.user_id])
    );
    assert_error(app.presence(&carol, room).await, 403, "forbidden").await;
    // Carol, in the public room of the same socket registry, hears nothing of it.
    let (mut c, _) = app.ws_welcomed(&carol).await;
    subscribe(&mut c, ROOM).await;
    send_json(&mut b, json!({"type": "unsubscribe", "room": room})).await;
    assert_eq!(next_json(&mut b).await["type"], "unsubscribed");
    expect_presence(&mut a, room, &bob.user_id, "leave").await;
    assert_no_more(&mut c, Duration::from_millis(200)).await;
}

/// Issue 31, item 4: sixteen sockets of one account flipping subscribe and
/// unsubscribe made a presence frame of every flip (hundreds a second, far past the
/// publish budget), and a subscriber reading 100 frames a second lost most real
/// messages behind them. Presence frames are coalesced per room now: at most a few
/// a second per user, and the real messages get through.
#[tokio::test]
async fn presence_churn_cannot_crowd_out_real_messages() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let app = spawn_app().await;
    let (watcher, speaker) = (app.user_with_tokens().await, app.user_with_tokens().await);
    let flipper_email = app.new_user().await;
    let (mut w, _) = app.ws_welcomed(&watcher).await;
    subscribe(&mut w, ROOM).await;
    let (mut s, _) = app.ws_welcomed(&speaker).await;
    subscribe(&mut s, ROOM).await;
    expect_presence(&mut w, ROOM, &speaker.user_id, "join").await;

    // Sixteen sockets of one account (one session each: a login is a notice on the
    // sockets already open, so all log in first).
    let mut sessions = Vec::new();
    for _ in 0..16 {
        sessions.push(app.login_tokens(&flipper_email).await);
    }
    let mut flippers = Vec::new();
    for tokens in &sessions {
        flippers.push(app.ws_welcomed(tokens).await.0);
    }
    let attack = Duration::from_secs(3);
    let stop = tokio::time::Instant::now() + attack;
    let flipping = tokio::spawn(async move {
        let sub = Message::Text(
            json!({"type": "subscribe", "room": ROOM})
                .to_string()
                .into(),
        );
        let unsub = Message::Text(
            json!({"type": "unsubscribe", "room": ROOM})
                .to_string()
                .into(),
        );
        let mut flips = 0u32;
        while tokio::time::Instant::now() < stop {
            let round = tokio::time::Instant::now();
            // One socket at a time in the room: every flip is a join and a leave.
            for ws in &mut flippers {
                ws.send(sub.clone()).await.unwrap();
                next_json(ws).await;
                ws.send(unsub.clone()).await.unwrap();
                next_json(ws).await;
                flips += 1;
            }
            // Two frames per socket per round, under the per-socket frame rate.
            tokio::time::sleep_until(round + Duration::from_millis(50)).await;
        }
        flips
    });

    // Real messages, 10 a second (half the publish budget), while the watcher reads
    // at most 100 frames a second.
    let publishing = tokio::spawn(async move {
        let mut sent = 0u32;
        while tokio::time::Instant::now() < stop {
            send_json(
                &mut s,
                json!({"type": "publish", "room": ROOM, "body": format!("m{sent}")}),
            )
            .await;
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    });
    let (mut messages, mut presence) = (0u32, 0u32);
    let read_until = stop + Duration::from_secs(2);
    while tokio::time::Instant::now() < read_until
        && let Ok(Some(Ok(msg))) = tokio::time::timeout_at(read_until, w.next()).await
    {
        if let Message::Text(text) = msg {
            let frame: Value = serde_json::from_str(&text).unwrap();
            match frame["type"].as_str() {
                Some("message") => messages += 1,
                Some("presence") => presence += 1,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flips = flipping.await.unwrap();
    let sent = publishing.await.unwrap();
    assert!(flips > 500, "the attack ran: {flips} flips");
    assert!(
        f64::from(messages) >= 0.95 * f64::from(sent),
        "{messages} of {sent} messages arrived ({presence} presence frames, {flips} flips)"
    );
    // Coalesced: a few presence frames a second, however fast the flips.
    let per_second = f64::from(presence) / attack.as_secs_f64();
    assert!(
        per_second <= 20.0,
        "{presence} presence frames in {attack:?} ({flips} flips)"
    );
    assert!(
        f64::from(messages) >= 0.95 * f64::from(sent),
        "{messages} of {sent} messages arrived ({presence} presence frames)"
    );
}
