//! Measurements of a real doorman process, driven from this separate process so the
//! server's RSS is the server's alone.
//!
//! `doorman-bench idle-memory --sockets 5000`: server RSS growth per idle
//! authenticated WebSocket.

use std::{process::Stdio, time::Duration};

use clap::{Parser, Subcommand};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser)]
struct Args {
    /// The doorman binary to start (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/doorman")]
    server: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Server RSS growth per idle authenticated socket.
    IdleMemory {
        #[arg(long, default_value_t = 5000)]
        sockets: usize,
    },
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    match args.scenario {
        Scenario::IdleMemory { sockets } => idle_memory(&args.server, sockets).await,
    }
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(bin: &str) -> Result<Self, Error> {
        let dir = tempfile::tempdir()?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let child = Command::new(bin)
            .env("DOORMAN_BIND", format!("127.0.0.1:{port}"))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
            )
            .env("DOORMAN_WS_MAX_SOCKETS_PER_USER", "1000000")
            .env("DOORMAN_WS_HANDSHAKE_PER_SECOND", "1000000")
            .env("DOORMAN_WS_HANDSHAKE_BURST", "1000000")
            .env("DOORMAN_LOGIN_PER_MINUTE", "100000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{base}/readyz")).send().await.is_ok() {
                return Ok(Self {
                    child,
                    base,
                    _dir: dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("server did not become ready".into())
    }

    fn rss_kib(&self) -> Result<u64, Error> {
        let pid = self.child.id().ok_or("server exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| "no VmRSS".into())
    }

    async fn access_token(&self) -> Result<String, Error> {
        let http = reqwest::Client::new();
        let creds = json!({"email": "bench@example.org", "password": "bench password"});
        http.post(format!("{}/api/auth/register", self.base))
            .json(&creds)
            .send()
            .await?;
        let login: Value = http
            .post(format!("{}/api/auth/login", self.base))
            .json(&creds)
            .send()
            .await?
            .json()
            .await?;
        Ok(login["access_token"].as_str().ok_or("no token")?.to_owned())
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_bearer(base: &str, token: &str) -> Result<Socket, Error> {
    let mut req = format!("{}/ws", base.replacen("http", "ws", 1)).into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    match ws.next().await {
        Some(Ok(msg)) if msg.to_text().unwrap_or("").contains("welcome") => Ok(ws),
        other => Err(format!("no welcome: {other:?}").into()),
    }
}

async fn open_many(base: &str, token: &str, n: usize) -> Result<Vec<Socket>, Error> {
    stream::iter(0..n)
        .map(|_| open_bearer(base, token))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn idle_memory(bin: &str, sockets: usize) -> Result<(), Error> {
    let server = Server::start(bin).await?;
    let token = server.access_token().await?;
    // Warm up allocator pools and lazily built state, then let them settle.
    drop(open_many(&server.base, &token, 200).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_kib()?;
    let held = open_many(&server.base, &token, sockets).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib()?;
    let per_socket = (after.saturating_sub(before)) as f64 / held.len() as f64;
    println!("idle authenticated sockets: {}", held.len());
    println!("server RSS before: {before} KiB, after: {after} KiB");
    println!("server RSS per idle socket: {per_socket:.2} KiB");
    drop(held);
    Ok(())
}
