//! Devices: live sockets per session, logging out the other devices, changing the
//! password, notices of sessions opening and ending, and the account's activity.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

/// How soon a revoked session's sockets close on the instance that revoked it.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

fn rfc3339(v: &Value) -> time::OffsetDateTime {
    let s = v.as_str().unwrap_or_else(|| panic!("a time string: {v}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s} is not RFC 3339: {e}"))
}

/// Waits for the server's close frame and returns it with the text frames that came
/// before it.
async fn close_and_frames_before(ws: &mut Ws, within: Duration) -> ((u16, String), Vec<Value>) {
    let mut frames = Vec::new();
    let close = tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).unwrap()),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no close frame within {within:?}"));
    (close, frames)
}

/// Expects the session's socket to close 4403 `session_revoked` within a second,
/// without having been told of its own session's end by a notice.
async fn expect_revoked(ws: &mut Ws) {
    let (close, frames) = close_and_frames_before(ws, CLOSE_WITHIN).await;
    assert_eq!((close.0, close.1.as_str()), (4403, "session_revoked"));
    assert!(
        frames.iter().all(|f| f["type"] != "notice"),
        "a closing socket got notices: {frames:?}"
    );
}

/// Expects `session_ended` notices for exactly `sessions` (any order), `reason`.
async fn expect_session_ended(ws: &mut Ws, sessions: &[&str], reason: &str) {
    let mut seen = Vec::new();
    for _ in sessions {
        let frame = next_json(ws).await;
        assert_eq!(frame["type"], "notice", "{frame}");
        assert_eq!(frame["kind"], "session_ended", "{frame}");
        assert_eq!(frame["reason"], reason, "{frame}");
        seen.push(frame["session_id"].as_str().expect("session_id").to_owned());
    }
    seen.sort();
    let mut want: Vec<String> = sessions.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn sessions_count_their_live_sockets() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let one = app.login_tokens(&email).await;
    let two = app.login_tokens(&email).await;
    let (w1, _) = app.ws_welcomed(&one).await;
    let (w2, _) = app.ws_welcomed(&one).await;
    // A socket that authenticates with an `auth` frame counts as well.
    let mut w3 = app.ws(Anonymous).await.expect("handshake");
    send_json(&mut w3, json!({"type": "auth", "token": one.access})).await;
    assert_eq!(next_json(&mut w3).await["type"], "welcome");

    // Counting may trail the welcome by a moment: poll briefly.
    poll_until(
        Duration::from_secs(3),
        async || app.live_sockets(&one, &one.session_id).await,
        |&n| n == 3,
    )
    .await;
    assert_eq!(app.live_sockets(&one, &two.session_id).await, 0);
    // Seen from the other session, the counts are the same.
    assert_eq!(app.live_sockets(&two, &one.session_id).await, 3);

    // Closing is asynchronous: poll briefly.
    close_socket(w1).await;
    poll_until(
        Duration::from_secs(3),
        async || app.live_sockets(&one, &one.session_id).await,
        |&n| n == 2,
    )
    .await;
    // A connection that just goes away is let go of too.
    drop(w2);
    close_socket(w3).await;
    poll_until(
        Duration::from_secs(3),
        async || app.live_sockets(&one, &one.session_id).await,
        |&n| n == 0,
    )
    .await;
}

#[tokio::test]
async fn logging_out_the_other_devices_keeps_the_current_one() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let one = app.login_tokens(&email).await;
    let two = app.login_tokens(&email).await;
    let three = app.login_tokens(&email).await;
    let stranger = app.user_with_tokens().await;
    let (mut w1, _) = app.ws_welcomed(&one).await;
    let (mut w2, _) = app.ws_welcomed(&two).await;
    let (mut w3, _) = app.ws_welcomed(&three).await;
    let (mut ws_stranger, _) = app.ws_welcomed(&stranger).await;

    let resp = app.revoke_other_sessions(&one).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (close, _) = close_and_frames_before(&mut w2, CLOSE_WITHIN).await;
    assert_eq!((close.0, close.1.as_str()), (4403, "session_revoked"));
    let (close, _) = close_and_frames_before(&mut w3, CLOSE_WITHIN).await;
    assert_eq!((close.0, close.1.as_str()), (4403, "session_revoked"));

    // The current session is told, and lives on.
    expect_session_ended(
        &mut w1,
        &[&two.session_id, &three.session_id],
        "revoked_others",
    )
    .await;
    assert_alive(&mut w1).await;
    assert_eq!(app.me(&one).await.status(), StatusCode::OK);
    for t in [&two, &three] {
        assert_eq!(app.me(t).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.refresh(&t.refresh).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let list: Value = app.sessions(&one).await.json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], one.session_id.as_str());

    // Another user's sockets heard nothing.
    assert_no_more(&mut ws_stranger, Duration::from_millis(200)).await;
    assert_alive(&mut ws_stranger).await;
    assert_eq!(app.me(&stranger).await.status(), StatusCode::OK);
    // With no other session left, it is still 204.
    let resp = app.revoke_other_sessions(&one).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.revoke_other_sessions(Anonymous).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let one = app.login_tokens(&email).await;
    let two = app.login_tokens(&email).await;
    let (mut w1, _) = app.ws_welcomed(&one).await;
    let (mut w2, _) = app.ws_welcomed(&two).await;

    // The current password must be right; nothing changes when it is not.
    let resp = app
        .change_password(&one, "not my password", NEW_PASSWORD)
        .await;
    assert_error(resp, 401, "invalid_credentials").await;
    // The new password must follow the password rules.
    let resp = app.change_password(&one, PASSWORD, "short").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_input", "message": "new_password: 8 to 128 characters"})
    );
    assert_eq!(app.me(&two).await.status(), StatusCode::OK);
    assert_no_more(&mut w2, Duration::from_millis(100)).await;
    assert_alive(&mut w2).await;

    let started = Instant::now();
    let resp = app.change_password(&one, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    expect_revoked(&mut w2).await;
    assert!(started.elapsed() < CLOSE_WITHIN, "{:?}", started.elapsed());
    expect_session_ended(&mut w1, &[&two.session_id], "password_changed").await;
    assert_alive(&mut w1).await;
    assert_eq!(app.me(&one).await.status(), StatusCode::OK);
    assert_eq!(app.me(&two).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&two.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The current session's refresh token still works.
    let one = Tokens::from_response(app.refresh(&one.refresh).await).await;
    assert_eq!(app.me(&one).await.status(), StatusCode::OK);

    // The old password is gone, the new one logs in.
    assert_error(
        app.login(&email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let resp = app.login(&email, NEW_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.change_password(Anonymous, NEW_PASSWORD, PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn wrong_current_passwords_are_throttled_like_logins() {
    let app = spawn_with(|c| c.login_per_minute = 3).await;
    let tokens = app.user_with_tokens().await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..10 {
        let resp = app
            .change_password(&tokens, "not my password", NEW_PASSWORD)
            .await;
        statuses.push(resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(resp);
            break;
        }
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED, "{statuses:?}");
    let refused = refused.unwrap_or_else(|| panic!("never throttled: {statuses:?}"));
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    assert_error(refused, 429, "rate_limited").await;
    // The session itself is untouched.
    assert_eq!(app.me(&tokens).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_new_session_is_announced_on_every_socket_of_the_user_and_no_one_else() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let laptop = app.login_tokens(&email).await;
    let tablet = app.login_tokens(&email).await;
    let stranger = app.user_with_tokens().await;
    let (mut l1, _) = app.ws_welcomed(&laptop).await;
    let (mut l2, _) = app.ws_welcomed(&laptop).await;
    let (mut t1, _) = app.ws_welcomed(&tablet).await;
    let (mut s1, _) = app.ws_welcomed(&stranger).await;

    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let resp = app
        .login(&email, PASSWORD)
        .header("user-agent", "PhoneBrowser/1.0")
        .await;
    let phone = Tokens::from_response(resp).await;
    let after = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    for ws in [&mut l1, &mut l2, &mut t1] {
        let notice = next_json(ws).await;
        assert_eq!(notice["type"], "notice", "{notice}");
        assert_eq!(notice["kind"], "new_session", "{notice}");
        assert_eq!(notice["session_id"], phone.session_id.as_str(), "{notice}");
        assert_eq!(notice["ip"], "127.0.0.1", "{notice}");
        assert_eq!(notice["user_agent"], "PhoneBrowser/1.0", "{notice}");
        let at = rfc3339(&notice["at"]);
        assert!(at >= before && at <= after, "{at}");
        assert_alive(ws).await;
    }
    assert_no_more(&mut s1, Duration::from_millis(200)).await;

    // A refresh is no new session: no notice.
    let laptop = Tokens::from_response(app.refresh(&laptop.refresh).await).await;
    assert_eq!(app.me(&laptop).await.status(), StatusCode::OK);
    assert_no_more(&mut l1, Duration::from_millis(300)).await;
    // Nor is a failed login.
    assert_eq!(
        app.login(&email, "wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_no_more(&mut t1, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_session_ending_is_announced_to_the_users_other_sessions_only() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let laptop = app.login_tokens(&email).await;
    let phone = app.login_tokens(&email).await;
    let tablet = app.login_tokens(&email).await;
    let stranger = app.user_with_tokens().await;
    let (mut l, _) = app.ws_welcomed(&laptop).await;
    let (mut p, _) = app.ws_welcomed(&phone).await;
    let (mut t, _) = app.ws_welcomed(&tablet).await;
    let (mut s, _) = app.ws_welcomed(&stranger).await;

    // The phone logs out: its socket closes without a notice, the others are told.
    assert_eq!(app.logout(&phone).await.status(), StatusCode::NO_CONTENT);
    expect_revoked(&mut p).await;
    for ws in [&mut l, &mut t] {
        assert_eq!(
            next_json(ws).await,
            json!({
                "type": "notice",
                "kind": "session_ended",
                "session_id": phone.session_id,
                "reason": "logout",
            })
        );
        assert_alive(ws).await;
    }

    // The laptop revokes the tablet: the laptop hears of it.
    let resp = app.revoke_session(&laptop, &tablet.session_id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    expect_revoked(&mut t).await;
    let notice = next_json(&mut l).await;
    assert_eq!(notice["kind"], "session_ended", "{notice}");
    assert_eq!(notice["session_id"], tablet.session_id.as_str());
    assert_eq!(notice["reason"], "revoked");
    assert_alive(&mut l).await;

    assert_no_more(&mut s, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn the_activity_log_lists_what_happened_newest_first() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let laptop = app
        .login(&email, PASSWORD)
        .header("user-agent", "Laptop/1")
        .await;
    let laptop = Tokens::from_response(laptop).await;
    let failed = app
        .login(&email, "wrong password")
        .header("user-agent", "Guesser/1")
        .await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let phone = app
        .login(&email, PASSWORD)
        .header("user-agent", "Phone/1")
        .await;
    let phone = Tokens::from_response(phone).await;
    assert_eq!(app.logout(&phone).await.status(), StatusCode::NO_CONTENT);
    let resp = app.change_password(&laptop, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let stranger = app.user_with_tokens().await;

    let resp = app.activity(&laptop).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let events = body["events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "password_changed",
            "logout",
            "login",
            "login_failed",
            "login"
        ],
        "{body}"
    );
    let at: Vec<_> = events.iter().map(|e| rfc3339(&e["at"])).collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {at:?}");
    for e in events {
        // Each may be null (an event not tied to a request); when known it is right.
        assert!(e["ip"] == "127.0.0.1" || e["ip"].is_null(), "{e}");
        for field in ["user_agent", "session_id"] {
            assert!(e[field].is_string() || e[field].is_null(), "{field} in {e}");
        }
    }
    let (logout, phone_login, laptop_login) = (&events[1], &events[2], &events[4]);
    assert_eq!(logout["session_id"], phone.session_id.as_str());
    assert_eq!(phone_login["session_id"], phone.session_id.as_str());
    assert_eq!(phone_login["user_agent"], "Phone/1");
    assert_eq!(laptop_login["session_id"], laptop.session_id.as_str());
    assert_eq!(laptop_login["user_agent"], "Laptop/1");
    // Where the logins and the failed guess came from is what the log is for.
    for e in [phone_login, &events[3], laptop_login] {
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
    }
    assert_eq!(events[3]["user_agent"], "Guesser/1", "{}", events[3]);
    assert!(events[3]["session_id"].is_null(), "{}", events[3]);

    // Each user sees their own account's events only.
    let theirs: Value = app.activity(&stranger).await.json().await.unwrap();
    let kinds: Vec<&str> = theirs["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["login"], "{theirs}");
    assert_eq!(
        app.activity(Anonymous).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_login_racing_a_password_change_does_not_outlive_it() {
    // A login that checked the old password before the change, but opened its
    // session after the change revoked the others, must not keep a session.
    let app = spawn_app().await;
    for trial in 0..12 {
        let email = app.new_user().await;
        let keeper = app.login_tokens(&email).await;
        let new_password = format!("a brand new password {trial}");
        // Logins spread over the change's two hashes, so that some check the old
        // password just before the new hash is written.
        let logins = (0..12u64).map(|i| {
            let email = email.clone();
            let app = &app;
            async move {
                tokio::time::sleep(Duration::from_millis(8 * i)).await;
                let resp = app.login(&email, PASSWORD).await;
                (resp.status() == StatusCode::OK).then_some(resp)
            }
        });
        let (changed, logins) = tokio::join!(
            async {
                app.change_password(&keeper, PASSWORD, &new_password)
                    .await
                    .status()
            },
            futures_util::future::join_all(logins)
        );
        assert_eq!(changed, StatusCode::NO_CONTENT);
        for resp in logins.into_iter().flatten() {
            let tokens = crate::client::Tokens::from_response(resp).await;
            assert_eq!(
                app.me(&tokens).await.status(),
                StatusCode::UNAUTHORIZED,
                "trial {trial}: a session opened with the old password survived the change"
            );
        }
    }
}

#[tokio::test]
async fn failed_logins_neither_bloat_nor_flood_the_activity_log() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let owner = app.login_tokens(&email).await;
    let huge_agent = "x".repeat(20_000);
    for _ in 0..30 {
        let resp = app
            .login(&email, "not the password")
            .header("user-agent", huge_agent.as_str())
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let body: Value = app.activity(&owner).await.json().await.unwrap();
    let events = body["events"].as_array().unwrap();
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "login_failed")
        .collect();
    assert_eq!(failed.len(), 20, "failed logins shown: at most 20");
    for e in &failed {
        assert_eq!(e["user_agent"].as_str().unwrap().len(), 256);
    }
    // The real login is still there, older than every failure.
    assert_eq!(events.last().unwrap()["kind"], "login", "{body}");
}

/// Someone holding a stolen token who guesses the current password at
/// `POST /api/me/password` is seen in the activity log like a failed login
/// (issue 31, item 7): `password_change_failed`, with the guessing session, its IP
/// and user agent; the guesses cannot push the real logins out of view.
#[tokio::test]
async fn wrong_current_passwords_at_a_password_change_are_in_the_activity_log() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let owner = app.login_tokens(&email).await;
    let thief = app
        .login(&email, PASSWORD)
        .header("user-agent", "Thief/1")
        .await;
    let thief = Tokens::from_response(thief).await;
    for i in 0..25 {
        let resp = app
            .change_password(&thief, &format!("guess number {i}"), NEW_PASSWORD)
            .header("user-agent", "Thief/1")
            .await;
        assert_error(resp, 401, "invalid_credentials").await;
    }
    let body: Value = app.activity(&owner).await.json().await.unwrap();
    let events = body["events"].as_array().expect("events");
    let guesses: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "password_change_failed")
        .collect();
    // Shown in the failed-guess window, like failed logins: at most 20.
    assert_eq!(guesses.len(), 20, "{body}");
    for e in &guesses {
        assert_eq!(e["session_id"], thief.session_id.as_str(), "{e}");
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
        assert_eq!(e["user_agent"], "Thief/1", "{e}");
    }
    // The newest events are the guesses; both real logins are still there.
    assert_eq!(events[0]["kind"], "password_change_failed", "{body}");
    let logins: Vec<&Value> = events.iter().filter(|e| e["kind"] == "login").collect();
    assert_eq!(logins.len(), 2, "{body}");
    // Nothing changed: the owner's password still works.
    assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
}
