//! Second factors and step-up (issue 35): TOTP enrolment and login with codes the
//! test computes from the secret (RFC 6238), replay and skew, recovery codes,
//! guesses on the login failure budget, the session's assurance everywhere it is
//! shown, re-authentication, the operations that need it, and rooms that require
//! aal2 following a removed factor live.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{client::ApiClient, helpers::*};

/// How soon a removed factor must take a socket out of an aal2 room.
const LIVE: Duration = Duration::from_secs(1);

/// The TOTP code of `secret` (base32) at Unix time `unix` + `steps` × 30 s.
pub(crate) fn code(secret: &str, steps: i64) -> String {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .expect("base32");
    let unix = time::OffsetDateTime::now_utc().unix_timestamp();
    let step = unix.div_euclid(30) + steps;
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&step.to_be_bytes());
    let d = mac.finalize().into_bytes();
    let o = usize::from(d[19] & 0x0f);
    let bin = u32::from_be_bytes([d[o] & 0x7f, d[o + 1], d[o + 2], d[o + 3]]);
    format!("{:06}", bin % 1_000_000)
}

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.expect("json")
}

async fn me(app: &TestApp, who: &Tokens) -> Value {
    let resp = app.me(who).await;
    assert_eq!(resp.status(), StatusCode::OK);
    json_of(resp).await
}

/// Turns TOTP on for `who` and returns the secret and the recovery codes.
pub(crate) async fn enrol(app: &ApiClient, who: &Tokens) -> (String, Vec<String>) {
    let resp = app.call(Method::POST, "/api/me/totp", who).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let enrolment = json_of(resp).await;
    let secret = enrolment["secret"].as_str().expect("secret").to_owned();
    let resp = app
        .post_json(
            "/api/me/totp/confirm",
            who,
            &json!({"code": code(&secret, 0)}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let codes: Vec<String> = json_of(resp).await["recovery_codes"]
        .as_array()
        .expect("recovery_codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

/// A login of `email` that must stop at the second step; its `mfa_token`.
async fn first_step(app: &TestApp, email: &str) -> String {
    let resp = app.login(email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(
        set_cookie_lines(&resp)
            .iter()
            .all(|c| !c.starts_with("doorman_access") && !c.starts_with("doorman_refresh"))
    );
    let body = json_of(resp).await;
    assert_eq!(body["mfa_required"], json!(["totp"]), "{body}");
    assert_eq!(body["expires_in"], 300, "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    body["mfa_token"].as_str().expect("mfa_token").to_owned()
}

fn second_step(app: &TestApp, token: &str, proof: Value) -> crate::client::Call {
    let mut body = proof;
    body["mfa_token"] = json!(token);
    app.post_json("/api/auth/login/mfa", Anonymous, &body)
}

/// The payload of a JWT.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn totp_enrolment_login_replay_skew_and_recovery_codes() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let alice = app.login_tokens(&email).await;
    let shown = me(&app, &alice).await;
    assert_eq!(shown["aal"], "aal1", "{shown}");
    assert_eq!(shown["amr"], json!(["pwd"]), "{shown}");
    assert_eq!(claims(&alice.access)["aal"], "aal1");

    // Enrolment: pending until a first code; a wrong one is refused.
    let resp = app.call(Method::POST, "/api/me/totp", &alice).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let enrolment = json_of(resp).await;
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/127.0.0.1:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    // Nothing is on yet: a login still opens a session at once.
    assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
    let wrong = if code(&secret, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_error(
        app.post_json("/api/me/totp/confirm", &alice, &json!({"code": wrong}))
            .await,
        401,
        "invalid_code",
    )
    .await;
    let resp = app
        .post_json(
            "/api/me/totp/confirm",
            &alice,
            &json!({"code": code(&secret, 0)}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let codes: Vec<String> = json_of(resp).await["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    // The confirming code proves the caller holds the new secret, not who they
    // are: the session stays as it was (a stolen session cannot step up this way).
    let shown = me(&app, &alice).await;
    assert_eq!(shown["aal"], "aal1", "{shown}");
    assert_eq!(shown["amr"], json!(["pwd"]), "{shown}");
    let factors = json_of(app.call(Method::GET, "/api/me/factors", &alice).await).await;
    assert_eq!(
        factors,
        json!({"totp": true, "passkeys": 0, "passkeys_available": false, "recovery_codes_left": 10})
    );
    // A factor change from this aal1 session is refused now that a factor exists.
    assert_error(
        app.call(Method::POST, "/api/me/totp", &alice).await,
        403,
        "mfa_required",
    )
    .await;

    // Login now stops after the password. One step of skew is accepted.
    let token = first_step(&app, &email).await;
    let next = code(&secret, 1);
    let resp = second_step(&app, &token, json!({"code": next})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens = Tokens::from_json(&json_of(resp).await);
    let shown = me(&app, &tokens).await;
    assert_eq!(shown["aal"], "aal2", "{shown}");
    assert_eq!(shown["amr"], json!(["pwd", "otp"]), "{shown}");
    // On already: a second enrolment is refused, even at aal2.
    assert_error(
        app.call(Method::POST, "/api/me/totp", &tokens).await,
        409,
        "totp_enabled",
    )
    .await;
    let c = claims(&tokens.access);
    assert_eq!(c["aal"], "aal2");
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    assert!(c["auth_at"].is_i64(), "{c}");
    // The step is spent: its token is no longer good, whatever the code.
    assert_error(
        second_step(&app, &token, json!({"code": code(&secret, 0)})).await,
        401,
        "invalid_mfa_token",
    )
    .await;
    // A code is accepted once: the same code on a new login is refused, and so
    // is any code of an earlier step.
    let token = first_step(&app, &email).await;
    assert_error(
        second_step(&app, &token, json!({"code": next})).await,
        401,
        "invalid_code",
    )
    .await;
    assert_error(
        second_step(&app, &token, json!({"code": code(&secret, 0)})).await,
        401,
        "invalid_code",
    )
    .await;
    // With both, the code is what counts (here a spent one); with neither, there is
    // no proof: a wrong code too. The recovery code sent beside was not spent.
    assert_error(
        second_step(
            &app,
            &token,
            json!({"code": next, "recovery_code": codes[0]}),
        )
        .await,
        401,
        "invalid_code",
    )
    .await;
    assert_error(
        second_step(&app, &token, json!({})).await,
        401,
        "invalid_code",
    )
    .await;

    // The step survived the wrong codes: a recovery code finishes it, once.
    let resp = second_step(
        &app,
        &token,
        json!({"recovery_code": codes[0].to_uppercase()}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let by_recovery = Tokens::from_json(&json_of(resp).await);
    let shown = me(&app, &by_recovery).await;
    assert_eq!(shown["aal"], "aal2", "{shown}");
    assert_eq!(shown["amr"], json!(["pwd", "recovery_code"]), "{shown}");
    let token = first_step(&app, &email).await;
    assert_error(
        second_step(&app, &token, json!({"recovery_code": codes[0]})).await,
        401,
        "invalid_code",
    )
    .await;
    let factors = json_of(app.call(Method::GET, "/api/me/factors", &alice).await).await;
    assert_eq!(factors["recovery_codes_left"], 9);

    // Cookie mode: the second step answers as the first asked.
    let resp = app.login_cookie_mode(&email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let token = json_of(resp).await["mfa_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = second_step(&app, &token, json!({"recovery_code": codes[1]})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let set = set_cookie_lines(&resp);
    assert!(cookie_value(&set, "doorman_access").is_some(), "{set:?}");
    let body = json_of(resp).await;
    assert!(body.get("access_token").is_none(), "{body}");

    // The activity log has the factor and the wrong codes.
    let log = json_of(app.activity(&alice).await).await;
    let kinds: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"factor_added"), "{kinds:?}");
    assert!(kinds.contains(&"second_factor_failed"), "{kinds:?}");
}

#[tokio::test]
async fn second_factor_guesses_spend_the_login_failure_budget() {
    // N = 10: an account takes at most 10 failures a quarter hour from devices it
    // does not know, half of them at once, from however many addresses.
    let app = spawn_with(|c| {
        c.login_per_minute = 10;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let email = app.new_user().await;
    let alice = app.login_tokens(&email).await;
    let (secret, _) = enrol(&app, &alice).await;
    let token = first_step(&app, &email).await;
    let right = code(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for i in 0..5 {
        assert_error(
            second_step(&app, &token, json!({"code": wrong}))
                .forwarded_for(&format!("203.0.113.{i}"))
                .await,
            401,
            "invalid_code",
        )
        .await;
    }
    // Spent: even the right code waits, from a fresh address, as a right password
    // would; and the password step of the account is held back too (one budget).
    assert_error(
        second_step(&app, &token, json!({"code": code(&secret, 1)}))
            .forwarded_for("203.0.113.50")
            .await,
        429,
        "rate_limited",
    )
    .await;
    assert_error(
        app.login(&email, "wrong password!")
            .forwarded_for("203.0.113.51")
            .await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn sensitive_operations_need_a_recent_authentication() {
    let app = spawn_with(|c| c.step_up = Duration::from_secs(1)).await;
    let email = app.new_user().await;
    let alice = app.login_tokens(&email).await;
    let other = app.login_tokens(&email).await;
    let third = app.login_tokens(&email).await;
    assert_eq!(
        app.create_room(&alice, "private:desk").await.status(),
        StatusCode::CREATED
    );
    let bob = app.user_with_tokens().await;
    let before = me(&app, &alice).await["auth_at"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Who may comes before how recently: a stranger is told no, not asked to
    // re-authenticate.
    assert_error(
        app.delete_room(&bob, "private:desk").await,
        403,
        "forbidden",
    )
    .await;

    for resp in [
        app.revoke_other_sessions(&alice).await,
        app.revoke_all_sessions(&alice).await,
        app.revoke_session(&alice, &other.session_id).await,
        app.change_password(&alice, PASSWORD, "another long password")
            .await,
        app.delete_room(&alice, "private:desk").await,
        app.call(Method::DELETE, "/api/me/totp", &alice).await,
    ] {
        assert_error(resp, 403, "step_up_required").await;
    }
    // Nothing changed: the other session lives, the room is there.
    assert_eq!(app.me(&other).await.status(), StatusCode::OK);
    // Ending one's own session is a logout, never held back.
    assert_eq!(
        app.revoke_session(&third, &third.session_id).await.status(),
        StatusCode::NO_CONTENT
    );
    // Re-authentication: a wrong password changes nothing.
    assert_error(
        app.post_json(
            "/api/auth/reauth",
            &alice,
            &json!({"password": "nope nope nope"}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_error(
        app.post_json("/api/auth/reauth", &alice, &json!({})).await,
        401,
        "invalid_credentials",
    )
    .await;
    let resp = app
        .post_json("/api/auth/reauth", &alice, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let now = me(&app, &alice).await;
    assert!(now["auth_at"].as_str().unwrap() > before.as_str(), "{now}");
    assert_eq!(
        now["session_id"],
        alice.session_id.as_str(),
        "the same session"
    );
    assert_eq!(now["aal"], "aal1");
    // Within the window again: the operations go through.
    assert_eq!(
        app.delete_room(&alice, "private:desk").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.revoke_session(&alice, &other.session_id).await.status(),
        StatusCode::NO_CONTENT
    );

    // With TOTP on, a password alone no longer re-authenticates; a code does,
    // and raises the session to aal2.
    let (secret, _) = enrol(&app, &alice).await;
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::ACCEPTED
    );
    assert_error(
        app.post_json("/api/auth/reauth", &alice, &json!({"password": PASSWORD}))
            .await,
        403,
        "mfa_required",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let resp = app
        .post_json(
            "/api/auth/reauth",
            &alice,
            &json!({"code": code(&secret, 1)}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let now = me(&app, &alice).await;
    assert_eq!(now["aal"], "aal2", "{now}");
    assert_eq!(
        app.call(Method::DELETE, "/api/me/totp", &alice)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    // Off: the codes and TOTP went from the session's amr, and logins are one step.
    let now = me(&app, &alice).await;
    assert_eq!(now["aal"], "aal1", "{now}");
    assert_eq!(now["amr"], json!(["pwd"]), "{now}");
    assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
    assert_error(
        app.call(Method::DELETE, "/api/me/totp", &alice).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn rooms_that_require_aal2_refuse_aal1_and_follow_a_removed_factor_live() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let alice = app.login_tokens(&email).await;
    let bob = app.user_with_tokens().await;

    // An aal1 session cannot make a room it could not enter.
    assert_error(
        app.post_json(
            "/api/rooms",
            &alice,
            &json!({"name": "private:vault", "require_aal2": true}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    // Alice's socket, opened at aal1, stays open while her session steps up.
    let (mut early, welcome) = app.ws_welcomed(&alice).await;
    assert_eq!(welcome["aal"], "aal1", "{welcome}");
    assert_eq!(welcome["amr"], json!(["pwd"]), "{welcome}");
    let (secret, _) = enrol(&app, &alice).await;
    // Still aal1 after the enrolment: a code raises the session.
    let resp = app
        .post_json(
            "/api/auth/reauth",
            &alice,
            &json!({"code": code(&secret, 1)}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app
        .post_json(
            "/api/rooms",
            &alice,
            &json!({"name": "private:vault", "require_aal2": true}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(json_of(resp).await["require_aal2"], true);
    assert_eq!(
        app.add_member(&alice, "private:vault", &bob.user_id)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // Bob is a member at aal1: refused, by socket and over HTTP alike.
    let (mut bobs, _) = app.ws_welcomed(&bob).await;
    expect_refused(
        &mut bobs,
        json!({"type": "subscribe", "room": "private:vault"}),
        "forbidden",
    )
    .await;
    assert_error(
        app.publish(&bob, "private:vault", "hi").await,
        403,
        "forbidden",
    )
    .await;

    // The socket opened before the step-up enters: the level is the session's now.
    let (mut fresh, welcome) = app.ws_welcomed(&alice).await;
    assert_eq!(welcome["aal"], "aal2", "{welcome}");
    assert_eq!(welcome["amr"], json!(["pwd", "otp"]), "{welcome}");
    // The early socket heard of the factor.
    let notice = next_json(&mut early).await;
    assert_eq!(
        notice,
        json!({"type": "notice", "kind": "factor_added", "method": "otp"})
    );
    // `whoami` tells the session's level now, not the handshake's.
    send_json(&mut early, json!({"type": "whoami"})).await;
    let identity = next_json(&mut early).await;
    assert_eq!(identity["type"], "identity", "{identity}");
    assert_eq!(identity["aal"], "aal2", "{identity}");
    assert_eq!(identity["amr"], json!(["pwd", "otp"]), "{identity}");
    subscribe(&mut early, "private:vault").await;
    subscribe(&mut fresh, "private:vault").await;
    assert_eq!(
        app.publish(&alice, "private:vault", "in").await.status(),
        StatusCode::ACCEPTED
    );
    for ws in [&mut early, &mut fresh] {
        expect_message(ws, "private:vault", &alice.user_id, "in").await;
    }

    // The factor goes: both sockets leave the room within a second, and hear why.
    let resp = app.call(Method::DELETE, "/api/me/totp", &alice).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for ws in [&mut early, &mut fresh] {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            seen.push(next_json_within(ws, LIVE).await);
        }
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
        // Still open, and refused the room now.
        expect_refused(
            ws,
            json!({"type": "subscribe", "room": "private:vault"}),
            "forbidden",
        )
        .await;
    }
    assert_error(
        app.publish(&alice, "private:vault", "out").await,
        403,
        "forbidden",
    )
    .await;
}

/// Outside attack of issue 35: a session that is not at aal2 could add a factor of
/// its own to an account that has one (and step up with it), or remove the
/// owner's. Changing an account's factors needs a recent authentication and,
/// once the account has a factor, aal2.
#[tokio::test]
async fn factors_change_only_from_a_recent_aal2_session_once_the_account_has_one() {
    let app = spawn_with(|c| c.public_url = Some("http://localhost:8080".parse().unwrap())).await;
    let email = app.new_user().await;
    let stolen = app.login_tokens(&email).await; // aal1, recent
    let owner = app.login_tokens(&email).await;
    let (secret, _) = enrol(&app, &owner).await;
    // The other session is recent, but aal1 on an account with a factor now.
    // Nor any other sensitive operation: a password proves less than the account
    // can now.
    for resp in [
        app.call(Method::POST, "/api/me/passkeys/register/start", &stolen)
            .await,
        app.call(Method::POST, "/api/me/totp", &stolen).await,
        app.call(Method::DELETE, "/api/me/totp", &stolen).await,
        app.revoke_other_sessions(&stolen).await,
        app.change_password(&stolen, PASSWORD, "a stolen new password")
            .await,
    ] {
        assert_error(resp, 403, "mfa_required").await;
    }
    // Nor can it step up with the password.
    assert_error(
        app.post_json("/api/auth/reauth", &stolen, &json!({"password": PASSWORD}))
            .await,
        403,
        "mfa_required",
    )
    .await;
    // The owner, at aal2 after a code, may.
    let resp = app
        .post_json(
            "/api/auth/reauth",
            &owner,
            &json!({"code": code(&secret, 1)}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.call(Method::POST, "/api/me/passkeys/register/start", &owner)
            .await
            .status(),
        StatusCode::OK
    );
}

/// Outside attack of issue 35: second steps racing on one `mfa_token`, each with
/// another recovery code, spent the codes of the losers. Only the winner's is.
#[tokio::test]
async fn racing_second_steps_spend_only_the_winners_recovery_code() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let alice = app.login_tokens(&email).await;
    let (_, codes) = enrol(&app, &alice).await;
    let token = first_step(&app, &email).await;
    let app = &app;
    let answers = futures_util::future::join_all(codes[..5].iter().map(|c| {
        let body = json!({"mfa_token": token, "recovery_code": c});
        async move {
            app.post_json("/api/auth/login/mfa", Anonymous, &body)
                .await
                .status()
        }
    }))
    .await;
    let won = answers.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(won, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{answers:?}"
    );
    let factors = json_of(app.call(Method::GET, "/api/me/factors", &alice).await).await;
    assert_eq!(factors["recovery_codes_left"], 9, "{factors}");
}
