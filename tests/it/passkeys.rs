//! Passkeys over HTTP, without an authenticator: the options the server hands
//! out, and every answer it must refuse (the ceremonies themselves run in Chromium
//! with its virtual authenticator: `e2e/browser.mjs`).

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// A server whose public URL has a domain name (WebAuthn refuses IP addresses as
/// relying parties); requests still go to 127.0.0.1.
async fn app_on_localhost() -> TestApp {
    spawn_with(|c| c.public_url = Some("http://localhost:8080".parse().unwrap())).await
}

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.expect("json")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A registration answer for `challenge` that no authenticator made.
fn forged_registration(challenge: &str) -> Value {
    let client_data = json!({"type": "webauthn.create", "challenge": challenge, "origin": "http://localhost:8080"});
    json!({
        "id": b64(b"forged"),
        "rawId": b64(b"forged"),
        "type": "public-key",
        "response": {
            "attestationObject": b64(b"\xa0"),
            "clientDataJSON": b64(client_data.to_string().as_bytes()),
        },
    })
}

/// An assertion answer for `challenge` naming `user`, that no authenticator made.
fn forged_assertion(challenge: &str, user: &str) -> Value {
    let client_data =
        json!({"type": "webauthn.get", "challenge": challenge, "origin": "http://localhost:8080"});
    let user = uuid::Uuid::parse_str(user).unwrap();
    json!({
        "id": b64(b"forged"),
        "rawId": b64(b"forged"),
        "type": "public-key",
        "response": {
            "authenticatorData": b64(&[0u8; 37]),
            "clientDataJSON": b64(client_data.to_string().as_bytes()),
            "signature": b64(b"sig"),
            "userHandle": b64(user.as_bytes()),
        },
    })
}

#[tokio::test]
async fn passkeys_need_a_public_url_with_a_domain_name() {
    let app = spawn_app().await; // http://127.0.0.1:PORT
    let tokens = app.user_with_tokens().await;
    assert_error(
        app.post_json("/api/auth/passkey/start", Anonymous, &json!({}))
            .await,
        409,
        "passkeys_unavailable",
    )
    .await;
    assert_error(
        app.call(Method::POST, "/api/me/passkeys/register/start", &tokens)
            .await,
        409,
        "passkeys_unavailable",
    )
    .await;
    // Everything else works as before.
    let factors = json_of(app.call(Method::GET, "/api/me/factors", &tokens).await).await;
    assert_eq!(factors["passkeys"], 0);
    assert_eq!(factors["passkeys_available"], false);
}

#[tokio::test]
async fn the_options_ask_for_a_discoverable_credential_with_user_verification() {
    let app = app_on_localhost().await;
    let tokens = app.user_with_tokens().await;
    let resp = app
        .call(Method::POST, "/api/me/passkeys/register/start", &tokens)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let options = json_of(resp).await;
    let factors = json_of(app.call(Method::GET, "/api/me/factors", &tokens).await).await;
    assert_eq!(factors["passkeys_available"], true);
    let pk = &options["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost", "{options}");
    assert_eq!(
        pk["user"]["id"],
        b64(uuid::Uuid::parse_str(&tokens.user_id).unwrap().as_bytes()),
        "the user handle is the user's id: {options}"
    );
    let selection = &pk["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{options}");
    assert_eq!(selection["userVerification"], "required", "{options}");
    assert!(
        pk["challenge"].as_str().is_some_and(|c| c.len() >= 43),
        "{options}"
    );

    let resp = app
        .post_json("/api/auth/passkey/start", Anonymous, &json!({}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let options = json_of(resp).await;
    assert_eq!(options["publicKey"]["rpId"], "localhost", "{options}");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert_eq!(
        options["publicKey"]["allowCredentials"],
        json!([]),
        "discoverable"
    );
    assert!(
        options.get("mediation").is_none(),
        "modal, not autofill: {options}"
    );
}

#[tokio::test]
async fn answers_that_do_not_verify_are_refused_and_spend_their_challenge() {
    let app = app_on_localhost().await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;

    // Registration: garbage, a forged answer, another session's challenge.
    // Not an object at all: the schema says so.
    assert_error(
        app.post_json(
            "/api/me/passkeys/register/finish",
            &alice,
            &json!({"credential": "x"}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    for garbage in [json!({}), json!({"response": {"clientDataJSON": "!!"}})] {
        assert_error(
            app.post_json(
                "/api/me/passkeys/register/finish",
                &alice,
                &json!({"credential": garbage}),
            )
            .await,
            401,
            "invalid_passkey",
        )
        .await;
    }
    let options = json_of(
        app.call(Method::POST, "/api/me/passkeys/register/start", &alice)
            .await,
    )
    .await;
    let challenge = options["publicKey"]["challenge"].as_str().unwrap();
    // Bob cannot finish Alice's ceremony…
    assert_error(
        app.post_json(
            "/api/me/passkeys/register/finish",
            &bob,
            &json!({"credential": forged_registration(challenge)}),
        )
        .await,
        401,
        "invalid_passkey",
    )
    .await;
    // …and that spent it: Alice cannot either, even with a valid one later.
    assert_error(
        app.post_json(
            "/api/me/passkeys/register/finish",
            &alice,
            &json!({"credential": forged_registration(challenge), "name": "laptop"}),
        )
        .await,
        401,
        "invalid_passkey",
    )
    .await;
    assert_error(
        app.post_json(
            "/api/me/passkeys/register/finish",
            &alice,
            &json!({"credential": {}, "name": "\u{7}bell"}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;

    // Sign-in and re-authentication: forged assertions.
    let options = json_of(
        app.post_json("/api/auth/passkey/start", Anonymous, &json!({}))
            .await,
    )
    .await;
    let challenge = options["publicKey"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    for mode in [json!(null), json!("cookie")] {
        assert_error(
            app.post_json(
                "/api/auth/passkey/finish",
                Anonymous,
                &json!({"credential": forged_assertion(&challenge, &alice.user_id), "mode": mode}),
            )
            .await,
            401,
            "invalid_passkey",
        )
        .await;
    }
    assert_error(
        app.post_json(
            "/api/auth/reauth",
            &alice,
            &json!({"credential": forged_assertion(&challenge, &alice.user_id)}),
        )
        .await,
        401,
        "invalid_passkey",
    )
    .await;
    assert_error(
        app.post_json(
            "/api/auth/reauth",
            &alice,
            &json!({"credential": {}, "password": PASSWORD}),
        )
        .await,
        401,
        "invalid_passkey",
    )
    .await;
    // Nothing was registered, and removing an unknown passkey is a 404.
    let list = json_of(app.call(Method::GET, "/api/me/passkeys", &alice).await).await;
    assert_eq!(list, json!([]));
    assert_error(
        app.call(
            Method::DELETE,
            &format!("/api/me/passkeys/{}", uuid::Uuid::new_v4()),
            &alice,
        )
        .await,
        404,
        "not_found",
    )
    .await;
}
