//! The library's public face on a host app built in this process: the optional
//! extractor, `Identity` on a plain handler, and a host socket's opt-ins (the
//! first-frame `auth`, doorman's notices) and limits. `shop.rs` covers the
//! reference app as its own process.

use std::time::Duration;

use doorman::{
    Config, Doorman, MaybeAuthenticated,
    api::{AuthApi, SessionApi},
    auth::Identity,
    ws::SocketUpgrade,
};
use futures_util::SinkExt;
use poem::{
    EndpointExt, IntoResponse, Route, Server, get, handler,
    listener::{Acceptor, Listener, TcpListener},
    web::websocket::Message,
};
use poem_openapi::{OpenApi, OpenApiService, payload::Json};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::helpers::*;

struct Host;

#[OpenApi]
impl Host {
    /// The caller if any.
    #[oai(path = "/api/maybe", method = "get")]
    async fn maybe(&self, auth: MaybeAuthenticated) -> Json<Value> {
        Json(json!({"user_id": auth.0.map(|id| id.user_id)}))
    }
}

#[handler]
fn plain(id: Identity) -> String {
    id.user_id.to_string()
}

/// Takes the first-frame `auth` and doorman's notices.
#[handler]
fn live(upgrade: SocketUpgrade) -> impl IntoResponse {
    upgrade
        .with_auth_frame()
        .with_notices()
        .on_upgrade(|mut socket| async move {
            let ready = json!({"type": "ready", "user_id": socket.identity().user_id});
            if socket.send(Message::Text(ready.to_string())).await.is_ok() {
                while let Some(frame) = socket.recv().await {
                    if socket.send(frame).await.is_err() {
                        break;
                    }
                }
            }
        })
}

/// No opt-ins: credentials at the handshake, only the host's frames.
#[handler]
fn strict(upgrade: SocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(frame) = socket.recv().await {
            if socket.send(frame).await.is_err() {
                break;
            }
        }
    })
}

struct Hosted {
    api: ApiClient,
    _dir: tempfile::TempDir,
}

async fn host(adjust: impl FnOnce(&mut Config)) -> Hosted {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::from_env().expect("the defaults parse");
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.database_url = format!("sqlite://{}/host.db?mode=rwc", dir.path().display());
    config.login_per_minute = 1000;
    adjust(&mut config);
    let doorman = Doorman::builder(config)
        .start()
        .await
        .expect("doorman starts");
    let api = OpenApiService::new((AuthApi, SessionApi, Host), "host", "1");
    let app = Route::new()
        .at("/plain", get(plain))
        .at("/live", get(live))
        .at("/strict", get(strict))
        // doorman's own socket protocol, at a path the host chose.
        .at("/chat", get(doorman::ws::route))
        .nest("/", api);
    let listener = doorman.listen().await.unwrap();
    let addr = *listener.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(Server::new_with_acceptor(listener).run(doorman.edge(app)));
    Hosted {
        api: ApiClient::new(format!("http://{addr}")),
        _dir: dir,
    }
}

#[tokio::test]
async fn the_optional_extractor_lets_no_credential_through_but_never_a_bad_one() {
    let host = host(|_| {}).await;
    let tokens = host.api.user_with_tokens().await;
    let anonymous: Value = host.api.get("/api/maybe").await.json().await.unwrap();
    assert_eq!(anonymous, json!({"user_id": null}));
    let known = host
        .api
        .call(reqwest::Method::GET, "/api/maybe", &tokens)
        .await;
    let known: Value = known.json().await.unwrap();
    assert_eq!(known["user_id"], tokens.user_id.as_str());
    let bad = host
        .api
        .call(reqwest::Method::GET, "/api/maybe", Bearer("x.y.z"))
        .await;
    assert_error(bad, 401, "invalid_token").await;
}

#[tokio::test]
async fn identity_is_the_extractor_of_plain_handlers() {
    let host = host(|_| {}).await;
    let tokens = host.api.user_with_tokens().await;
    let me = host.api.call(reqwest::Method::GET, "/plain", &tokens).await;
    assert_eq!(me.text().await.unwrap(), tokens.user_id);
    let none = host.api.get("/plain").await;
    assert_error(none, 401, "missing_credentials").await;
}

#[tokio::test]
async fn a_host_socket_can_take_the_auth_frame_and_doormans_notices() {
    let host = host(|c| c.ws_auth_timeout = Duration::from_millis(500)).await;
    let email = host.api.new_user().await;
    let tokens = host.api.login_tokens(&email).await;

    let mut ws = host
        .api
        .ws_at("/live", Anonymous)
        .await
        .expect("pending upgrade");
    send_json(&mut ws, json!({"type": "auth", "token": tokens.access})).await;
    let ready = next_json(&mut ws).await;
    assert_eq!(ready, json!({"type": "ready", "user_id": tokens.user_id}));
    // Another sign-in of the same user: doorman's notice, between the host's frames.
    let _second = host.api.login_tokens(&email).await;
    let notice = next_json(&mut ws).await;
    assert_eq!(notice["type"], "notice", "{notice}");
    assert_eq!(notice["kind"], "new_session");

    // The pending state's rules.
    let mut wrong = host.api.ws_at("/live", Anonymous).await.unwrap();
    send_json(&mut wrong, json!({"type": "hello"})).await;
    assert_eq!(
        expect_close(&mut wrong, Duration::from_secs(1)).await.0,
        4400
    );
    let mut forged = host.api.ws_at("/live", Anonymous).await.unwrap();
    send_json(&mut forged, json!({"type": "auth", "token": "x.y.z"})).await;
    assert_eq!(
        expect_close(&mut forged, Duration::from_secs(1)).await.0,
        4401
    );
    let mut silent = host.api.ws_at("/live", Anonymous).await.unwrap();
    let (code, reason) = expect_close(&mut silent, Duration::from_secs(2)).await;
    assert_eq!((code, reason.as_str()), (4408, "auth_timeout"));
}

#[tokio::test]
async fn a_host_socket_without_opt_ins_gets_only_its_own_frames_and_doormans_limits() {
    let host = host(|c| c.ws_messages_per_second = 5).await;
    let email = host.api.new_user().await;
    let tokens = host.api.login_tokens(&email).await;
    // No credential and no auth-frame opt-in: refused before the upgrade.
    let refused = host.api.ws_at("/strict", Anonymous).await.unwrap_err();
    assert_eq!(handshake_status(&refused), 401);

    let mut ws = host.api.ws_at("/strict", &tokens).await.expect("handshake");
    let _second = host.api.login_tokens(&email).await;
    assert_no_more(&mut ws, Duration::from_millis(300)).await;
    // A flood: closed with 4429, and the client reads the code.
    for i in 0..40 {
        if ws
            .send(tungstenite::Message::text(format!("{i}")))
            .await
            .is_err()
        {
            break;
        }
    }
    let (code, _) = expect_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!(code, 4429);
}

#[tokio::test]
async fn doormans_own_socket_protocol_mounts_at_a_path_the_host_chooses() {
    let host = host(|_| {}).await;
    let tokens = host.api.user_with_tokens().await;
    let mut ws = host.api.ws_at("/chat", &tokens).await.expect("handshake");
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["user_id"], tokens.user_id.as_str());
    send_json(&mut ws, json!({"type": "ping", "id": 7})).await;
    assert_eq!(next_json(&mut ws).await, json!({"type": "pong", "id": 7}));
    assert_eq!(host.api.logout(&tokens).await.status(), 204);
    let (code, _) = expect_close(&mut ws, Duration::from_secs(1)).await;
    assert_eq!(code, 4403);
}

/// The host app on poem's own listener with `pieces` applied to it instead of the
/// whole edge (the handle attached with `.data()`).
async fn host_with_pieces(
    pieces: impl FnOnce(&Doorman, Route) -> poem::endpoint::BoxEndpoint<'static>,
) -> Hosted {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::from_env().expect("the defaults parse");
    config.database_url = format!("sqlite://{}/host.db?mode=rwc", dir.path().display());
    config.login_per_minute = 1000;
    config.allowed_origins = vec!["https://app.example.test".parse().unwrap()];
    let doorman = Doorman::builder(config).start().await.unwrap();
    let api = OpenApiService::new((AuthApi, Host), "host", "1");
    let app = pieces(&doorman, Route::new().nest("/", api));
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    Hosted {
        api: ApiClient::new(format!("http://{addr}")),
        _dir: dir,
    }
}

#[tokio::test]
async fn each_edge_piece_applies_on_its_own() {
    let huge = "a".repeat(9 * 1024);
    // Bounds alone: an oversized credential header is refused before the handler,
    // and nothing else of the edge is there.
    let host = host_with_pieces(|d, app| app.with(d.bounds()).data(d.clone()).boxed()).await;
    let refused = host
        .api
        .http
        .get(format!("{}/api/maybe", host.api.base))
        .header("authorization", format!("Bearer {huge}"))
        .send()
        .await
        .unwrap();
    assert_error(refused, 431, "headers_too_large").await;
    let bare = host.api.get("/api/maybe").await;
    assert_eq!(bare.status(), 200);
    for absent in [
        "x-request-id",
        "cache-control",
        "x-content-type-options",
        "vary",
    ] {
        assert!(
            bare.headers().get(absent).is_none(),
            "{absent} without its piece"
        );
    }

    // Headers and errors, no bounds: the same header reaches the handler (a bad
    // token), unknown paths answer doorman's JSON, every answer has its id.
    let host = host_with_pieces(|d, app| {
        app.with(d.security_headers())
            .with(d.errors())
            .data(d.clone())
            .boxed()
    })
    .await;
    let ok = host.api.get("/api/maybe").await;
    assert_eq!(ok.headers()["cache-control"], "no-store");
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    assert_eq!(ok.headers()["x-request-id"].len(), 16);
    let unbounded = host
        .api
        .http
        .get(format!("{}/api/maybe", host.api.base))
        .header("authorization", format!("Bearer {huge}"))
        .send()
        .await
        .unwrap();
    assert!(unbounded.headers().contains_key("x-request-id"));
    assert_error(unbounded, 401, "invalid_token").await;
    let missing = host.api.get("/api/nowhere").await;
    assert_eq!(missing.headers()["cache-control"], "no-store");
    assert_error(missing, 404, "not_found").await;

    // CORS alone: a listed origin's preflight is answered and echoed, any other
    // origin gets no CORS header.
    let host = host_with_pieces(|d, app| app.with(d.cors()).data(d.clone()).boxed()).await;
    let preflight = |origin: &'static str| {
        host.api
            .http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/maybe", host.api.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let listed = preflight("https://app.example.test").await.unwrap();
    assert_eq!(listed.status(), 204);
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "https://app.example.test"
    );
    assert_eq!(listed.headers()["access-control-allow-credentials"], "true");
    let foreign = preflight("https://evil.example.test").await.unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let answered = host.api.get("/api/maybe").await;
    assert_eq!(answered.headers()["vary"], "Origin");
    assert!(answered.headers().get("x-request-id").is_none());
}
