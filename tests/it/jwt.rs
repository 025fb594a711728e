//! Access-token forgeries: each must be refused with 401 `invalid_token`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, pkcs8::DecodePrivateKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use sea_orm::{Database, EntityTrait};
use serde_json::{Value, json};

use crate::helpers::*;

async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let resp = app.me(Bearer(token)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{what}");
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, claims, it.next().unwrap().to_owned())
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The server's own signing key, read from its database, as PKCS#8 DER.
async fn server_key(app: &TestApp) -> (String, Vec<u8>, String) {
    let db = Database::connect(&app.database_url).await.unwrap();
    let key = entity::signing_key::Entity::find()
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let signing = SigningKey::from_pkcs8_pem(&key.private_key).unwrap();
    let der = signing.to_pkcs8_der().unwrap().as_bytes().to_vec();
    db.close().await.ok();
    (key.kid, der, key.public_key)
}

fn sign(kid: &str, der: &[u8], claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der)).unwrap()
}

#[tokio::test]
async fn the_jwks_verifies_issued_tokens_and_they_carry_the_documented_claims() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let jwks = app.jwks().await;
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    let (header, _, _) = parts(&tokens.access);
    assert_eq!(header["kid"], key["kid"]);
    assert_eq!(header["alg"], "EdDSA");

    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["doorman"]);
    validation.set_issuer(&[app.base.as_str()]);
    let decoded = jsonwebtoken::decode::<Value>(
        &tokens.access,
        &DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap(),
        &validation,
    )
    .expect("the JWKS key verifies the token");
    let claims = decoded.claims;
    assert_eq!(claims["sub"], tokens.user_id.as_str());
    assert_eq!(claims["sid"], tokens.session_id.as_str());
    for claim in ["iat", "exp", "jti", "iss", "aud"] {
        assert!(claims.get(claim).is_some(), "{claim}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut header, claims, _) = parts(&tokens.access);
    header["alg"] = json!("none");
    assert_refused(
        &app,
        &format!("{}.{}.", b64(&header), b64(&claims)),
        "alg none",
    )
    .await;
    header["alg"] = json!("None");
    assert_refused(
        &app,
        &format!("{}.{}.", b64(&header), b64(&claims)),
        "alg None",
    )
    .await;
}

#[tokio::test]
async fn tampered_claims_are_refused() {
    let app = spawn_app().await;
    let victim = app.user_with_tokens().await;
    let attacker = app.user_with_tokens().await;
    let (header, mut claims, signature) = parts(&attacker.access);
    claims["sub"] = json!(victim.user_id);
    claims["sid"] = json!(victim.session_id);
    let forged = format!("{}.{}.{}", b64(&header), b64(&claims), signature);
    assert_refused(&app, &forged, "swapped sub/sid").await;

    let (header, mut claims, signature) = parts(&attacker.access);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86400);
    let forged = format!("{}.{}.{}", b64(&header), b64(&claims), signature);
    assert_refused(&app, &forged, "extended exp").await;
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_is_refused() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (kid, _, x) = server_key(&app).await;
    let (_, claims, _) = parts(&tokens.access);
    let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
    for secret in [raw.as_slice(), x.as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
        assert_refused(&app, &token, "HS256 with the public key").await;
    }
}

#[tokio::test]
async fn unknown_kid_and_foreign_keys_are_refused() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (kid, _, _) = server_key(&app).await;
    let (_, claims, _) = parts(&tokens.access);
    let foreign = SigningKey::from_bytes(&[7u8; 32]);
    let der = foreign.to_pkcs8_der().unwrap().as_bytes().to_vec();
    assert_refused(&app, &sign("no-such-kid", &der, &claims), "unknown kid").await;
    assert_refused(&app, &sign(&kid, &der, &claims), "right kid, wrong key").await;
    // No kid at all.
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_der(&der),
    )
    .unwrap();
    assert_refused(&app, &token, "no kid").await;
}

#[tokio::test]
async fn the_servers_own_key_with_wrong_claims_is_refused() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (kid, der, _) = server_key(&app).await;
    let (_, claims, _) = parts(&tokens.access);
    // Sanity: the key and claims as they are make a token the server accepts.
    assert_eq!(
        app.me(Bearer(&sign(&kid, &der, &claims))).await.status(),
        StatusCode::OK
    );

    let now = claims["iat"].as_i64().unwrap();
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "expired",
            Box::new(move |c| {
                c["iat"] = json!(now - 3600);
                c["exp"] = json!(now - 1800);
            }),
        ),
        (
            "wrong audience",
            Box::new(|c| c["aud"] = json!("someone-else")),
        ),
        (
            "wrong issuer",
            Box::new(|c| c["iss"] = json!("https://evil.example")),
        ),
        (
            "no exp",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "no aud",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        (
            "no iss",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
        ),
        (
            "unknown session",
            Box::new(|c| c["sid"] = json!(uuid::Uuid::new_v4())),
        ),
        (
            "sub not matching the session",
            Box::new(|c| c["sub"] = json!(uuid::Uuid::new_v4())),
        ),
    ];
    for (what, change) in cases {
        let mut forged = claims.clone();
        change(&mut forged);
        let resp = app.me(Bearer(&sign(&kid, &der, &forged))).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
}

/// Signs `header` and `claims` exactly as given (jsonwebtoken's `Header` cannot
/// write every field an attacker might).
fn sign_raw(der: &[u8], header: &Value, claims: &Value) -> String {
    use ed25519_dalek::Signer;
    let key = SigningKey::from_pkcs8_der(der).unwrap();
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = key.sign(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// What RFC 7515, 7519 and 8725 say a verifier must refuse, signed with the
/// server's own key (issue 31, item 9): a `crit` naming an extension it does not
/// understand, a `typ` other than JWT, a `cty` (a nested token), key-locating
/// header fields, and `nbf` or `iat` beyond the clock-skew leeway.
#[tokio::test]
async fn the_servers_own_key_with_a_header_or_times_outside_the_rfcs_is_refused() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (kid, der, _) = server_key(&app).await;
    let (_, claims, _) = parts(&tokens.access);
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let now = claims["iat"].as_i64().unwrap();

    // Sanity: what doorman writes, spelled as RFC 7515 allows, is accepted, and so
    // are times within the leeway.
    let with = |change: &dyn Fn(&mut Value, &mut Value)| {
        let (mut h, mut c) = (header.clone(), claims.clone());
        change(&mut h, &mut c);
        sign_raw(&der, &h, &c)
    };
    let fine: Vec<(&str, String)> = vec![
        ("as issued", with(&|_, _| {})),
        ("typ jwt", with(&|h, _| h["typ"] = json!("jwt"))),
        (
            "typ application/jwt",
            with(&|h, _| h["typ"] = json!("application/JWT")),
        ),
        ("nbf now", with(&|_, c| c["nbf"] = json!(now))),
        ("iat 2 s ahead", with(&|_, c| c["iat"] = json!(now + 2))),
    ];
    for (what, token) in fine {
        assert_eq!(
            app.me(Bearer(&token)).await.status(),
            StatusCode::OK,
            "{what}"
        );
    }

    let refused: Vec<(&str, String)> = vec![
        (
            "crit with an unknown extension",
            with(&|h, _| {
                h["crit"] = json!(["urn:example:must-understand"]);
                h["urn:example:must-understand"] = json!(true);
            }),
        ),
        ("crit naming exp", with(&|h, _| h["crit"] = json!(["exp"]))),
        ("typ JWE", with(&|h, _| h["typ"] = json!("JWE"))),
        ("typ at+jwt", with(&|h, _| h["typ"] = json!("at+jwt"))),
        (
            "no typ",
            with(&|h, _| {
                h.as_object_mut().unwrap().remove("typ");
            }),
        ),
        ("cty JWT", with(&|h, _| h["cty"] = json!("JWT"))),
        (
            "jku",
            with(&|h, _| h["jku"] = json!("https://evil.example/jwks.json")),
        ),
        (
            "an unknown header field",
            with(&|h, _| h["x-extra"] = json!(1)),
        ),
        (
            "nbf an hour ahead",
            with(&|_, c| c["nbf"] = json!(now + 3600)),
        ),
        ("nbf 2 min ahead", with(&|_, c| c["nbf"] = json!(now + 120))),
        (
            "iat an hour ahead",
            with(&|_, c| {
                c["iat"] = json!(now + 3600);
                c["exp"] = json!(now + 3600 + 900);
            }),
        ),
        ("iat 2 min ahead", with(&|_, c| c["iat"] = json!(now + 120))),
        ("nbf not a number", with(&|_, c| c["nbf"] = json!("soon"))),
    ];
    for (what, token) in refused {
        assert_refused(&app, &token, what).await;
        // The same over a socket: the handshake is refused.
        let err = app.ws(Bearer(&token)).await.expect_err(what);
        assert_eq!(handshake_status(&err), 401, "{what}");
    }
}
