//! Starting the real server for a test: port 0, a fresh database (a temporary SQLite
//! file, or a fresh PostgreSQL database when `DOORMAN_TEST_DATABASE_URL` is set,
//! dropped afterwards), driven through the typed [`ApiClient`] over real HTTP and
//! WebSocket clients.

use std::{net::SocketAddr, ops::Deref, time::Duration};

use clap::Parser;
use doorman::{Application, Config};
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::{net::TcpStream, sync::oneshot};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, protocol::frame::coding::CloseCode},
};

pub use crate::client::*;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server running in this process. It derefs to its [`ApiClient`]: `app.me(…)`.
pub struct TestApp {
    pub addr: SocketAddr,
    pub api: ApiClient,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    // Declared last: dropped after the server is told to stop.
    _db: TestDb,
}

/// Kept for its `Drop`: the temp dir or the PostgreSQL database goes with the app.
#[allow(dead_code)]
enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
    /// The test owns the database (and whatever stands in front of it).
    External,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Starts a server whose configuration `adjust` may change first.
pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let (database_url, db) = fresh_database().await;
    spawn_app_on(database_url, db, adjust).await
}

/// Starts a server on a database the test owns (e.g. behind a [`DbProxy`]).
pub async fn spawn_on(database_url: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(database_url.to_owned(), TestDb::External, adjust).await
}

async fn spawn_app_on(
    database_url: String,
    db: TestDb,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    init_logging();
    let mut config = Config::try_parse_from([
        "doorman",
        "--bind",
        "127.0.0.1:0",
        "--database-url",
        &database_url,
    ])
    .expect("test configuration parses");
    // Generous login limits unless a test is about them.
    config.login_per_minute = 1000;
    config.room_create_per_minute = 1000;
    config.ws_handshake_per_second = 1000;
    config.ws_handshake_burst = 1000;
    // No drain window unless a test asks for one.
    config.drain = std::time::Duration::ZERO;
    adjust(&mut config);
    let app = Application::build(config).await.expect("server builds");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        api: ApiClient::new(format!("http://{addr}")),
        database_url,
        shutdown: Some(tx),
        server: Some(server),
        _db: db,
    }
}

fn init_logging() {
    if std::env::var_os("DOORMAN_TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,sqlx=warn"))
            .with_test_writer()
            .try_init();
    }
}

async fn fresh_database() -> (String, TestDb) {
    match PgDatabase::create().await {
        Some(pg) => (pg.url.clone(), TestDb::Postgres(pg)),
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/doorman.db?mode=rwc", dir.path().display());
            (url, TestDb::Sqlite(dir))
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl TestApp {
    /// Asks the server to shut down gracefully (as SIGTERM does).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The status of a refused handshake.
pub fn handshake_status(err: &tungstenite::Error) -> u16 {
    match err {
        tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

/// The JSON body of a refused handshake.
pub fn handshake_body(err: &tungstenite::Error) -> Value {
    match err {
        tungstenite::Error::Http(resp) => {
            serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).expect("json body")
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// The next text frame as JSON (pings skipped), within 5 s.
pub async fn next_json(ws: &mut Ws) -> Value {
    next_json_within(ws, Duration::from_secs(5)).await
}

/// The next text frame as JSON (pings skipped), within `within`.
pub async fn next_json_within(ws: &mut Ws, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no frame within {within:?}"))
            .expect("stream open")
            .expect("frame ok");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("json frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Waits (up to `within`) for the server's close frame; returns code and reason.
pub async fn expect_close(ws: &mut Ws, within: Duration) -> (u16, String) {
    let result = tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error before close: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    })
    .await;
    result.unwrap_or_else(|_| panic!("no close frame within {within:?}"))
}

/// Sleeps until just past `deadline`: the latest moment something that `deadline`
/// bounds (an expiry measured from when a response arrived) can end.
pub async fn sleep_past(deadline: std::time::Instant) {
    tokio::time::sleep_until((deadline + Duration::from_millis(50)).into()).await;
}

/// Sends a ping frame and expects the pong: the socket is alive.
pub async fn assert_alive(ws: &mut Ws) {
    let id = uuid::Uuid::new_v4().to_string();
    send_json(ws, json!({"type": "ping", "id": id})).await;
    let pong = next_json(ws).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["id"], id);
}

/// Asserts that no further text frame arrives within `quiet` (a negative can only
/// be checked over a window).
pub async fn assert_no_more(ws: &mut Ws, quiet: Duration) {
    if let Ok(Some(Ok(msg))) = tokio::time::timeout(quiet, ws.next()).await {
        assert!(!msg.is_text(), "unexpected extra frame: {msg:?}");
    }
}

/// Subscribes to `room`, expects `subscribed` and returns its `present`, sorted.
pub async fn subscribe(ws: &mut Ws, room: &str) -> Vec<String> {
    send_json(ws, json!({"type": "subscribe", "room": room})).await;
    let frame = next_json(ws).await;
    assert_eq!(frame["type"], "subscribed", "{frame}");
    assert_eq!(frame["room"], room, "{frame}");
    let mut present: Vec<String> = frame["present"]
        .as_array()
        .unwrap_or_else(|| panic!("present in {frame}"))
        .iter()
        .map(|u| u.as_str().expect("a user id").to_owned())
        .collect();
    present.sort();
    present
}

/// Sends `frame`, expects an `error` frame with `code`, and checks that the socket
/// still answers a ping.
pub async fn expect_refused(ws: &mut Ws, frame: Value, code: &str) {
    send_json(ws, frame.clone()).await;
    let reply = next_json(ws).await;
    assert_eq!(reply["type"], "error", "{frame} -> {reply}");
    assert_eq!(reply["code"], code, "{frame} -> {reply}");
    assert!(reply["message"].is_string(), "{reply}");
    assert_alive(ws).await;
}

/// Expects the next frame to be `presence` of `user` in `room` with `event`.
pub async fn expect_presence(ws: &mut Ws, room: &str, user: &str, event: &str) {
    let frame = next_json(ws).await;
    assert_eq!(
        frame,
        json!({"type": "presence", "room": room, "user_id": user, "event": event}),
    );
}

/// Expects `{"type":"unsubscribed","room":room,"reason":"removed"}` within `within`.
pub async fn expect_removed(ws: &mut Ws, room: &str, within: Duration) {
    let frame = next_json_within(ws, within).await;
    assert_eq!(
        frame,
        json!({"type": "unsubscribed", "room": room, "reason": "removed"}),
    );
}

/// Expects `unsubscribed` `removed` from a room being deleted, within `within`.
/// The others taken out in the same deletion may be announced (`leave`) before it,
/// never after it.
pub async fn expect_removed_with_the_room(ws: &mut Ws, room: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = next_json_within(ws, left).await;
        if frame["type"] == "presence" && frame["room"] == room && frame["event"] == "leave" {
            continue;
        }
        assert_eq!(
            frame,
            json!({"type": "unsubscribed", "room": room, "reason": "removed"}),
        );
        return;
    }
}

/// Expects a `message` frame in `room` with `body` from `from`.
pub async fn expect_message(ws: &mut Ws, room: &str, from: &str, body: &str) {
    let msg = next_json(ws).await;
    assert_eq!(msg["type"], "message", "{msg}");
    assert_eq!(msg["room"], room, "{msg}");
    assert_eq!(msg["from"], from, "{msg}");
    assert_eq!(msg["body"], body, "{msg}");
}

/// Closes a socket from the client side and waits for the server's answer.
pub async fn close_socket(mut ws: Ws) {
    ws.close(None).await.expect("close sent");
    let drained = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(drained.is_ok(), "the server did not answer the close");
}

/// Asserts that `resp` has `status` and the JSON error `code`.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) {
    let url = resp.url().clone();
    assert_eq!(resp.status().as_u16(), status, "{url}");
    let body: Value = resp.json().await.expect("a JSON error");
    assert_eq!(body["error"], code, "{url}: {body}");
    assert!(body["message"].is_string(), "{url}: {body}");
}

/// Probes until `done` holds for what `probe` returns, for at most `within`;
/// returns that value, or fails with the last one seen.
pub async fn poll_until<T: std::fmt::Debug>(
    within: Duration,
    mut probe: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        let value = probe().await;
        if done(&value) {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {value:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[allow(dead_code)]
pub fn close_code(code: u16) -> CloseCode {
    CloseCode::from(code)
}

/// The real `doorman` binary in its own process, for tests that need a process
/// boundary (logs, several instances, signals). It derefs to its [`ApiClient`].
pub struct ServerProcess {
    child: Option<std::process::Child>,
    pub api: ApiClient,
}

impl Deref for ServerProcess {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl ServerProcess {
    /// Starts the binary with `envs` (plus a free `DOORMAN_BIND`), writing its output
    /// to `log`, and waits until `/readyz` answers.
    pub async fn start(envs: &[(&str, String)], log: &std::path::Path) -> Self {
        Self::start_program(env!("CARGO_BIN_EXE_doorman").as_ref(), envs, log, "/readyz").await
    }

    /// Starts `program` (the doorman binary, or an example built on the library)
    /// with `envs` plus a free `DOORMAN_BIND`, and waits until `ready` answers 2xx.
    pub async fn start_program(
        program: &std::path::Path,
        envs: &[(&str, String)],
        log: &std::path::Path,
        ready: &str,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = std::fs::File::create(log).unwrap();
        let mut cmd = std::process::Command::new(program);
        // No drain window unless a test asks for one: stopping must not wait for it.
        cmd.env("DOORMAN_BIND", format!("127.0.0.1:{port}"))
            .env("DOORMAN_DRAIN_SECONDS", "0")
            .stdout(std::process::Stdio::from(file.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(file));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        // Owned by `Self` at once, so its `Drop` kills the process on any panic.
        let server = Self {
            child: Some(cmd.spawn().expect("server binary starts")),
            api: ApiClient::new(format!("http://127.0.0.1:{port}")),
        };
        for _ in 0..150 {
            // Not `readyz()`: refused connections are expected until it listens.
            if let Ok(resp) = server.http.get(server.url(ready)).send().await
                && resp.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server on port {port} did not become ready");
    }

    /// The server's process id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL (`kill -9`): no shutdown code runs.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The binary of example `name`, which `cargo test` builds beside the tests
/// (`target/<profile>/examples/`).
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/it-… → target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is built by `cargo test` (alone: `cargo build --example {name}`)",
        path.display()
    );
    path
}

/// A fresh PostgreSQL database for a multi-process test, dropped with the guard;
/// `None` (the test is skipped, and says so) when no PostgreSQL is configured.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    pub async fn create() -> Option<Self> {
        let admin_url = std::env::var("DOORMAN_TEST_DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))?;
        let name = format!("doorman_t_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin.close().await.ok();
        let base = admin_url.rsplit_once('/').unwrap().0;
        Some(Self {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }

    /// Runs SQL on the admin connection (e.g. `pg_terminate_backend`).
    pub async fn admin(&self, sql: &str) {
        let admin = Database::connect(&self.admin_url).await.unwrap();
        admin.execute_unprepared(sql).await.unwrap();
        admin.close().await.ok();
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL on the test database itself, over a direct connection.
    pub async fn execute(&self, sql: &str) {
        let db = Database::connect(&self.url).await.unwrap();
        db.execute_unprepared(sql).await.unwrap();
        db.close().await.ok();
    }
}

/// A TCP proxy in front of PostgreSQL that a test can cut off: the server under test
/// connects through it, while the test keeps its own direct connections.
pub struct DbProxy {
    /// The database URL with the proxy's address in place of PostgreSQL's.
    pub url: String,
    link: std::sync::Arc<tokio::sync::watch::Sender<Link>>,
    task: tokio::task::JoinHandle<()>,
}

/// The proxy's state: forwarding; cut (open connections dropped, new ones closed as
/// soon as they are accepted: a database that is down); or stalled (nothing is
/// forwarded and nothing is closed: a host that vanished from the network, where
/// only the client's own timeouts help). Connections held by a stall are dropped
/// when it ends, as a partition's are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Cut,
    Stalled,
}

impl DbProxy {
    pub async fn start(database_url: &str) -> Self {
        let mut url = url::Url::parse(database_url).expect("database URL");
        let upstream = format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port().unwrap_or(5432)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(addr.port())).unwrap();
        let (link, _) = tokio::sync::watch::channel(Link::Up);
        let link = std::sync::Arc::new(link);
        let shared = link.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = shared.subscribe();
                let now = *state.borrow_and_update();
                match now {
                    Link::Cut => continue,
                    Link::Stalled => {
                        tokio::spawn(async move {
                            let _ = state.wait_for(|l| *l != Link::Stalled).await;
                            drop(client);
                        });
                        continue;
                    }
                    Link::Up => {}
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|l| *l != Link::Up) => {}
                    }
                    if *state.borrow_and_update() == Link::Stalled {
                        let _ = state.wait_for(|l| *l != Link::Stalled).await;
                    }
                    // Both sockets drop here: the connection is gone for both ends.
                    drop((client, server));
                });
            }
        });
        Self {
            url: url.to_string(),
            link,
            task,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.link.send_replace(Link::Cut);
    }

    /// Stops forwarding without closing anything.
    pub fn stall(&self) {
        self.link.send_replace(Link::Stalled);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.link.send_replace(Link::Up);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
