//! Starting the real server for a test: port 0, a fresh database (a temporary SQLite
//! file, or a fresh PostgreSQL database when `DOORMAN_TEST_DATABASE_URL` is set,
//! dropped afterwards), and typed helpers over real HTTP and WebSocket clients.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use doorman::{Application, Config};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::{net::TcpStream, sync::oneshot};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, protocol::frame::coding::CloseCode},
};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    /// A client without a cookie store: tests set cookies explicitly.
    pub http: reqwest::Client,
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
    config.ws_handshake_per_second = 1000;
    config.ws_handshake_burst = 1000;
    adjust(&mut config);
    let app = Application::build(config).await.expect("server builds");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds"),
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

/// Credentials from a token-mode login.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
    pub user_id: String,
}

impl Tokens {
    pub fn from_json(v: &Value) -> Self {
        Self {
            access: v["access_token"].as_str().expect("access_token").to_owned(),
            refresh: v["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            session_id: v["session_id"].as_str().expect("session_id").to_owned(),
            user_id: v["user"]["id"].as_str().expect("user.id").to_owned(),
        }
    }
}

/// Cookies from a cookie-mode login: `name=value` pairs and the raw Set-Cookie lines.
#[derive(Debug, Clone)]
pub struct Cookies {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
}

impl Cookies {
    /// A `Cookie` header value carrying the access cookie.
    pub fn access_header(&self) -> String {
        format!("doorman_access={}", self.access)
    }

    pub fn refresh_header(&self) -> String {
        format!("doorman_refresh={}", self.refresh)
    }
}

pub fn cookie_value(set_cookie: &[String], name: &str) -> Option<String> {
    set_cookie.iter().find_map(|line| {
        let first = line.split(';').next()?;
        let (k, v) = first.split_once('=')?;
        (k.trim() == name).then(|| v.to_owned())
    })
}

impl TestApp {
    /// Asks the server to shut down gracefully (as SIGTERM does).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The server's own origin, as a browser on it would send.
    pub fn origin(&self) -> String {
        self.base.clone()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/auth/register",
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers a fresh user and returns its email.
    pub async fn new_user(&self) -> String {
        let email = format!("user-{}@example.org", uuid::Uuid::new_v4().simple());
        let resp = self.register(&email, PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "register {email}");
        email
    }

    pub async fn login_tokens(&self, email: &str) -> Tokens {
        let resp = self
            .post_json(
                "/api/auth/login",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        Tokens::from_json(&resp.json().await.expect("json"))
    }

    pub async fn login_cookies(&self, email: &str) -> Cookies {
        let resp = self
            .post_json(
                "/api/auth/login",
                json!({"email": email, "password": PASSWORD, "mode": "cookie"}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let set_cookie: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        let body: Value = resp.json().await.expect("json");
        Cookies {
            access: cookie_value(&set_cookie, "doorman_access").expect("access cookie"),
            refresh: cookie_value(&set_cookie, "doorman_refresh").expect("refresh cookie"),
            session_id: body["session_id"].as_str().expect("session_id").to_owned(),
        }
    }

    /// A new user logged in with tokens.
    pub async fn user_with_tokens(&self) -> Tokens {
        let email = self.new_user().await;
        self.login_tokens(&email).await
    }

    /// A body-less request with a Bearer token.
    pub async fn bearer(
        &self,
        method: reqwest::Method,
        path: &str,
        access: &str,
    ) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .expect("request sent")
    }

    /// A GET with a `Cookie` header.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn me_bearer(&self, access: &str) -> reqwest::Response {
        self.http
            .get(self.url("/api/me"))
            .bearer_auth(access)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn refresh(&self, refresh: &str) -> reqwest::Response {
        self.post_json("/api/auth/refresh", json!({"refresh_token": refresh}))
            .await
    }

    pub async fn logout_bearer(&self, access: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/auth/logout"))
            .bearer_auth(access)
            .send()
            .await
            .expect("request sent")
    }

    /// Opens `/ws` with extra handshake headers.
    pub async fn ws_connect(&self, headers: &[(&str, &str)]) -> Result<Ws, tungstenite::Error> {
        let mut request = self.ws_url().into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(ws, _)| ws)
    }

    /// Opens `/ws` with a Bearer header and reads the welcome.
    pub async fn ws_bearer(&self, access: &str) -> (Ws, Value) {
        let auth = format!("Bearer {access}");
        let mut ws = self
            .ws_connect(&[("authorization", &auth)])
            .await
            .expect("handshake");
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (ws, welcome)
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
    let deadline = Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout(deadline, ws.next())
            .await
            .expect("a frame within 5 s")
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

/// Sends a ping frame and expects the pong: the socket is alive.
pub async fn assert_alive(ws: &mut Ws) {
    let id = uuid::Uuid::new_v4().to_string();
    send_json(ws, json!({"type": "ping", "id": id})).await;
    let pong = next_json(ws).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["id"], id);
}

#[allow(dead_code)]
pub fn close_code(code: u16) -> CloseCode {
    CloseCode::from(code)
}

/// The real `doorman` binary in its own process, for tests that need a process
/// boundary (logs, several instances, signals).
pub struct ServerProcess {
    child: Option<std::process::Child>,
    pub base: String,
    pub port: u16,
}

impl ServerProcess {
    /// Starts the binary with `envs` (plus a free `DOORMAN_BIND`), writing its output
    /// to `log`, and waits until `/readyz` answers.
    pub async fn start(envs: &[(&str, String)], log: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = std::fs::File::create(log).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_doorman"));
        cmd.env("DOORMAN_BIND", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::from(file.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(file));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        // Owned by `Self` at once, so its `Drop` kills the process on any panic.
        let server = Self {
            child: Some(cmd.spawn().expect("server binary starts")),
            base: format!("http://127.0.0.1:{port}"),
            port,
        };
        let http = reqwest::Client::new();
        for _ in 0..150 {
            if let Ok(resp) = http.get(format!("{}/readyz", server.base)).send().await
                && resp.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server on port {port} did not become ready");
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
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
