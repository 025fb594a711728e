//! Measurements of a real doorman process, driven from this separate process so the
//! server's RSS is the server's alone.
//!
//! - `idle-memory --sockets 5000`: starts doorman, reports server RSS growth per idle
//!   authenticated WebSocket.
//! - `ws-handshake`, `ws-ping`, `login-load`, `churn`: load against any server that
//!   speaks doorman's `/ws` frames (doorman itself, the floor, or the reference
//!   peer); each prints `key: value` result lines. With `--cpu-of PID` (repeatable)
//!   the two WebSocket scenarios also print the server CPU time (user + system, the
//!   processes and their descendants) per operation, read around the timed stretch.
//! - `cpu-ticks --pid PID…`: the CPU time of processes and their descendants so far,
//!   in clock ticks (for the shell to read around a `wrk` run).
//! - `requests`, `sequential`: exactly N sequential requests on one connection, or
//!   N handshakes, or N pings on one socket (the callgrind runs); `welcome`: the
//!   text of a server's `welcome` frame (the floor's).

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

mod fanout;
mod proc_cpu;

use proc_cpu::{clock_ticks_per_second, cpu_ticks, cpu_ticks_split};

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
        /// Client source addresses 127.0.0.2, 127.0.0.3, …: each source address
        /// has its own ~28,000 ephemeral ports towards the server.
        #[arg(long, default_value_t = 1)]
        sources: u8,
    },
    /// One room, `subscribers` sockets in it, `publishes` messages published one
    /// at a time: server CPU per delivered message and how long the last
    /// subscriber waited for each message.
    Fanout {
        /// e.g. http://127.0.0.1:8080
        #[arg(long)]
        base: String,
        /// An access token, sent as `Authorization: Bearer`.
        #[arg(long)]
        token: String,
        #[command(flatten)]
        cpu: CpuOf,
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 20)]
        publishes: usize,
        #[arg(long, default_value_t = 1)]
        sources: u8,
    },
    /// Handshakes per second: connect, receive `welcome`, close.
    WsHandshake {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[command(flatten)]
        cpu: CpuOf,
    },
    /// Ping/pong round trips per second over many open sockets.
    WsPing {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 50)]
        sockets: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[command(flatten)]
        cpu: CpuOf,
    },
    /// Publishes per second: each socket subscribed to a room of its own, publishing
    /// and waiting for its own message to come back (through history when the
    /// server keeps it): server CPU per published and delivered message.
    WsPublish {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 8)]
        sockets: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[command(flatten)]
        cpu: CpuOf,
    },
    /// CPU time of processes and their descendants so far, in clock ticks.
    CpuTicks {
        #[arg(long = "pid", required = true)]
        pids: Vec<u32>,
    },
    /// Exactly `count` GET requests, one after another on one connection; fails on
    /// any answer but 200.
    Requests {
        /// e.g. http://127.0.0.1:8080/healthz
        #[arg(long)]
        url: String,
        /// `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        #[arg(long)]
        count: u64,
    },
    /// Exactly `count` WebSocket handshakes one after another (connect, `welcome`,
    /// close), or with `--pings`, one socket and `count` ping/pong round trips.
    Sequential {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        pings: bool,
    },
    /// Prints the first text frame a server sends after the handshake.
    Welcome {
        #[command(flatten)]
        target: Target,
    },
    /// Logins as fast as they go (to load argon2 while something else is measured).
    LoginLoad {
        /// Base URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        base: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Server RSS before and after a stretch of handshake churn.
    Churn {
        #[command(flatten)]
        target: Target,
        /// The server process to watch.
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        #[arg(long, default_value_t = 5.0)]
        warmup_seconds: f64,
    },
}

/// The server processes whose CPU time an operation is charged to.
#[derive(clap::Args, Clone)]
struct CpuOf {
    /// A server process (its descendants count too: uvicorn's workers).
    #[arg(long = "cpu-of")]
    pids: Vec<u32>,
}

impl CpuOf {
    /// (user, system) clock ticks so far.
    fn ticks(&self) -> Result<Option<(u64, u64)>, Error> {
        if self.pids.is_empty() {
            return Ok(None);
        }
        cpu_ticks_split(&self.pids).map(Some)
    }

    /// Prints `server_cpu_us_per_op` for `ops` operations since `before`, and the
    /// share of it spent in the kernel (system time: the socket system calls,
    /// which on loopback include the receiving side's TCP work).
    fn report(&self, before: Option<(u64, u64)>, ops: u64) -> Result<(), Error> {
        if let (Some((u0, s0)), Some((u1, s1))) = (before, self.ticks()?) {
            let tick_us = 1e6 / clock_ticks_per_second() as f64;
            let ops = ops.max(1) as f64;
            let (user, sys) = ((u1 - u0) as f64 * tick_us, (s1 - s0) as f64 * tick_us);
            println!("server_cpu_us_per_op: {:.2}", (user + sys) / ops);
            println!("server_user_us_per_op: {:.2}", user / ops);
            println!("server_sys_us_per_op: {:.2}", sys / ops);
        }
        Ok(())
    }
}

/// Where to connect and with which credential headers.
#[derive(clap::Args, Clone)]
struct Target {
    /// e.g. ws://127.0.0.1:8080/ws
    #[arg(long)]
    url: String,
    /// Handshake headers, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    match args.scenario {
        Scenario::IdleMemory { sockets, sources } => {
            idle_memory(&args.server, sockets, sources).await
        }
        Scenario::Fanout {
            base,
            token,
            cpu,
            subscribers,
            publishes,
            sources,
        } => fanout::run(&base, &token, &cpu, subscribers, publishes, sources).await,
        Scenario::WsHandshake {
            target,
            concurrency,
            seconds,
            cpu,
        } => {
            let before = cpu.ticks()?;
            let (ok, failed, elapsed) = handshake_loop(&target, concurrency, seconds).await;
            // Closed sockets finish on the server after the client let go of them.
            tokio::time::sleep(Duration::from_millis(200)).await;
            println!("ws_handshakes: {ok}");
            println!("ws_handshakes_per_s: {:.0}", ok as f64 / elapsed);
            if failed > 0 {
                println!("ws_handshake_failures: {failed}");
            }
            cpu.report(before, ok)
        }
        Scenario::WsPing {
            target,
            sockets,
            seconds,
            cpu,
        } => ws_ping(&target, sockets, seconds, &cpu).await,
        Scenario::WsPublish {
            target,
            sockets,
            seconds,
            cpu,
        } => ws_publish(&target, sockets, seconds, &cpu).await,
        Scenario::CpuTicks { pids } => {
            println!("cpu_ticks: {}", cpu_ticks(&pids)?);
            Ok(())
        }
        Scenario::Requests {
            url,
            headers,
            count,
        } => requests(&url, &headers, count).await,
        Scenario::Sequential {
            target,
            count,
            pings,
        } => {
            if pings {
                let mut ws = connect(&target).await?;
                for id in 0..count {
                    ws.send(Message::Text(
                        format!(r#"{{"type":"ping","id":{id}}}"#).into(),
                    ))
                    .await?;
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Text(t))) if t.contains("pong") => break,
                            Some(Ok(_)) => continue,
                            other => return Err(format!("no pong: {other:?}").into()),
                        }
                    }
                }
                ws.close(None).await?;
            } else {
                for _ in 0..count {
                    let mut ws = connect(&target).await?;
                    ws.close(None).await?;
                    // The server's close frame, then the end.
                    while let Some(Ok(_)) = ws.next().await {}
                }
            }
            println!("operations: {count}");
            Ok(())
        }
        Scenario::Welcome { target } => {
            let mut ws = connect_raw(&target).await?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        println!("{t}");
                        let _ = ws.close(None).await;
                        return Ok(());
                    }
                    Some(Ok(_)) => continue,
                    other => return Err(format!("no text frame: {other:?}").into()),
                }
            }
        }
        Scenario::LoginLoad {
            base,
            email,
            password,
            concurrency,
            seconds,
        } => login_load(&base, &email, &password, concurrency, seconds).await,
        Scenario::Churn {
            target,
            pid,
            seconds,
            warmup_seconds,
        } => {
            handshake_loop(&target, 32, warmup_seconds).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = rss_kib(pid)?;
            let (ok, failed, _) = handshake_loop(&target, 32, seconds).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = rss_kib(pid)?;
            println!("churn_handshakes: {ok}");
            println!("churn_failures: {failed}");
            println!("rss_after_warmup_kib: {before}");
            println!("rss_after_churn_kib: {after}");
            println!(
                "rss_change_percent: {:.1}",
                (after as f64 - before as f64) * 100.0 / before as f64
            );
            Ok(())
        }
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
            .env("DOORMAN_MAX_CONNECTIONS_PER_IP", "1000000")
            .env("DOORMAN_PUBLISH_PER_SECOND", "1000000")
            .env("DOORMAN_WS_MESSAGES_PER_SECOND", "1000000")
            .env("DOORMAN_DRAIN_SECONDS", "0")
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
        rss_kib(self.child.id().ok_or("server exited")?)
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
/// A socket opened from a chosen source address (no TLS).
type PlainSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens an authenticated socket from source address 127.0.0.`source` and waits
/// for its `welcome`.
async fn open_bearer(base: &str, token: &str, source: u8) -> Result<PlainSocket, Error> {
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let host = base.trim_start_matches("http://");
    let server: std::net::SocketAddr = host.parse()?;
    let tcp = tokio::net::TcpSocket::new_v4()?;
    tcp.bind(std::net::SocketAddr::from(([127, 0, 0, source], 0)))?;
    let stream = tcp.connect(server).await?;
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await?;
    match ws.next().await {
        Some(Ok(msg)) if msg.to_text().unwrap_or("").contains("welcome") => Ok(ws),
        other => Err(format!("no welcome: {other:?}").into()),
    }
}

/// `n` authenticated sockets, spread round-robin over `sources` source addresses
/// (127.0.0.2 onwards).
async fn open_many(
    base: &str,
    token: &str,
    n: usize,
    sources: u8,
) -> Result<Vec<PlainSocket>, Error> {
    let sources = sources.clamp(1, 250);
    stream::iter(0..n)
        .map(|i| open_bearer(base, token, 2 + (i % usize::from(sources)) as u8))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Raises this process's open-file limit to its hard limit (children inherit it),
/// and says what it is: the sockets a scenario can hold are bounded by it.
fn raise_open_files() -> u64 {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((0, 0));
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    println!("open_file_limit: {hard}");
    hard
}

async fn idle_memory(bin: &str, sockets: usize, sources: u8) -> Result<(), Error> {
    let limit = raise_open_files();
    if sockets as u64 + 100 > limit {
        return Err(format!(
            "{sockets} sockets need {sockets} descriptors in the server and in this client; \
             the hard open-file limit here is {limit}"
        )
        .into());
    }
    let server = Server::start(bin).await?;
    let token = server.access_token().await?;
    // Warm up allocator pools and lazily built state, then let them settle.
    drop(open_many(&server.base, &token, 200, sources).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_kib()?;
    let held = open_many(&server.base, &token, sockets, sources).await?;
    println!("HELD");
    tokio::time::sleep(Duration::from_secs(
        std::env::var("HOLD")
            .map(|v| v.parse().unwrap())
            .unwrap_or(2),
    ))
    .await;
    let after = server.rss_kib()?;
    let per_socket = (after.saturating_sub(before)) as f64 / held.len() as f64;
    println!("idle authenticated sockets: {}", held.len());
    println!("server RSS before: {before} KiB, after: {after} KiB");
    println!("server RSS per idle socket: {per_socket:.2} KiB");
    drop(held);
    Ok(())
}

fn rss_kib(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

async fn connect_raw(target: &Target) -> Result<Socket, Error> {
    let mut req = target.url.as_str().into_client_request()?;
    for h in &target.headers {
        let (name, value) = h.split_once(':').ok_or("header must be `Name: value`")?;
        req.headers_mut().append(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.trim().as_bytes())?,
            value.trim().parse()?,
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

async fn connect(target: &Target) -> Result<Socket, Error> {
    let mut ws = connect_raw(target).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("welcome") => return Ok(ws),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => return Err(format!("no welcome: {other:?}").into()),
        }
    }
}

/// Handshakes from `concurrency` tasks until `seconds` pass: (ok, failed, elapsed s).
async fn handshake_loop(target: &Target, concurrency: usize, seconds: f64) -> (u64, u64, f64) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < deadline {
                    match connect(&target).await {
                        Ok(mut ws) => {
                            ok += 1;
                            let _ = ws.close(None).await;
                        }
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        if let Ok((o, f)) = t.await {
            ok += o;
            failed += f;
        }
    }
    (ok, failed, started.elapsed().as_secs_f64())
}

async fn ws_ping(target: &Target, sockets: usize, seconds: f64, cpu: &CpuOf) -> Result<(), Error> {
    let mut opened = Vec::new();
    for _ in 0..sockets {
        opened.push((connect(target).await?, String::new()));
    }
    round_trips(
        opened,
        seconds,
        cpu,
        |_, n| format!(r#"{{"type":"ping","id":{n}}}"#),
        "pong",
        "ws_pongs",
    )
    .await
}

async fn ws_publish(
    target: &Target,
    sockets: usize,
    seconds: f64,
    cpu: &CpuOf,
) -> Result<(), Error> {
    let mut opened = Vec::new();
    for i in 0..sockets {
        let mut ws = connect(target).await?;
        let room = format!("bench-publish-{i}");
        ws.send(Message::Text(
            format!(r#"{{"type":"subscribe","room":"{room}"}}"#).into(),
        ))
        .await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("subscribed") => break,
                Some(Ok(_)) => continue,
                other => return Err(format!("not subscribed: {other:?}").into()),
            }
        }
        opened.push((ws, room));
    }
    round_trips(
        opened,
        seconds,
        cpu,
        |room, n| {
            format!(r#"{{"type":"publish","room":"{room}","body":"message {n} of a benchmark"}}"#)
        },
        r#""type":"message""#,
        "ws_publishes",
    )
    .await
}

/// Round trips over `opened` sockets for `seconds`: each socket sends
/// `request(its tag, n)` and waits for a text frame containing `answer` (an `error`
/// frame stops it). Prints the server CPU per round trip, `{name}` and
/// `{name}_per_s`; the sockets close after the CPU reading (a close is not a round
/// trip).
async fn round_trips(
    opened: Vec<(Socket, String)>,
    seconds: f64,
    cpu: &CpuOf,
    request: fn(&str, u64) -> String,
    answer: &'static str,
    name: &str,
) -> Result<(), Error> {
    // Let the handshakes' work finish before the CPU reading.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = cpu.ticks()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = opened
        .into_iter()
        .map(|(mut ws, tag)| {
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    if ws
                        .send(Message::Text(request(&tag, done).into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Text(t))) if t.contains(answer) => {
                                done += 1;
                                break;
                            }
                            Some(Ok(Message::Text(t))) if t.contains(r#""type":"error""#) => {
                                eprintln!("refused: {t}");
                                return (done, None);
                            }
                            Some(Ok(_)) => continue,
                            _ => return (done, None),
                        }
                    }
                }
                (done, Some(ws))
            })
        })
        .collect();
    let mut sockets = Vec::new();
    let mut total = 0;
    for t in tasks {
        if let Ok((done, ws)) = t.await {
            total += done;
            sockets.extend(ws);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    cpu.report(before, total)?;
    println!("{name}: {total}");
    println!("{name}_per_s: {:.0}", total as f64 / elapsed);
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    Ok(())
}

async fn login_load(
    base: &str,
    email: &str,
    password: &str,
    concurrency: usize,
    seconds: f64,
) -> Result<(), Error> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let body = json!({"email": email, "password": password});
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, body, url) = (http.clone(), body.clone(), format!("{base}/api/auth/login"));
            tokio::spawn(async move {
                let mut ok = 0u64;
                while Instant::now() < deadline {
                    if let Ok(r) = http.post(&url).json(&body).send().await
                        && r.status().is_success()
                    {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    println!(
        "logins_per_s: {:.1}",
        total as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn requests(url: &str, headers: &[String], count: u64) -> Result<(), Error> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let mut map = reqwest::header::HeaderMap::new();
    for h in headers {
        let (name, value) = h.split_once(':').ok_or("header must be `Name: value`")?;
        map.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            value.trim().parse()?,
        );
    }
    for _ in 0..count {
        let resp = http.get(url).headers(map.clone()).send().await?;
        let status = resp.status();
        resp.bytes().await?;
        if status != reqwest::StatusCode::OK {
            return Err(format!("{url}: {status}").into());
        }
    }
    println!("requests: {count}");
    Ok(())
}
