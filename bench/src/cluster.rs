//! Two doorman instances on one PostgreSQL database: what
//! crosses between them, and how fast. Driven by `bench/cluster.sh`, which starts the
//! pair; this binary only talks to them over HTTP and WebSockets.
//!
//! - `logout`: `--background` authenticated sockets held open on each instance, then
//!   `--trials` times: a fresh session with a socket on B, `POST /api/auth/logout` on
//!   A, the time from sending the logout until B's socket receives its close frame
//!   (4403). Prints p50/p99/max in milliseconds.
//! - `throughput`: one subscriber per room on B, one publisher per room on A
//!   publishing over its WebSocket as fast as the window lets it (at most `--window`
//!   messages of a room sent and not yet seen on B), for `--seconds`. Prints the
//!   messages delivered on B per second, how many never arrived, the time from
//!   sending a message on A to its arrival on B (p50/p99/max, over the timed
//!   stretch), and (with `--cpu-of PID`, repeatable) the servers' CPU time per
//!   relayed message. With `--rate N` the publishers together send N messages a
//!   second (paced, still within the window) instead of as many as they can: the
//!   latency at a given load rather than at the ceiling.
//!
//! Every result is a `key: value` line on stdout.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

mod proc_cpu;

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use proc_cpu::{clock_ticks_per_second, cpu_ticks};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Parser)]
struct Args {
    /// Instance A, e.g. http://127.0.0.1:19100
    #[arg(long)]
    a: String,
    /// Instance B, e.g. http://127.0.0.1:19101
    #[arg(long)]
    b: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Logout on A → close on B, with background sockets open on both.
    Logout {
        /// Authenticated sockets held open on each instance meanwhile.
        #[arg(long, default_value_t = 1000)]
        background: usize,
        /// Sessions the background sockets are spread over (per instance).
        #[arg(long, default_value_t = 20)]
        background_sessions: usize,
        #[arg(long, default_value_t = 100)]
        trials: usize,
    },
    /// Room messages published on A, delivered on B, per second.
    Throughput {
        /// Rooms, each with one publisher on A and one subscriber on B.
        #[arg(long, default_value_t = 32)]
        rooms: usize,
        /// Messages of a room sent and not yet delivered on B, at most. Below the
        /// server's queue per socket (64): a subscriber whose queue is full misses
        /// messages, which would be counted as lost on the bus.
        #[arg(long, default_value_t = 48)]
        window: u64,
        /// Bytes of each message body.
        #[arg(long, default_value_t = 64)]
        body_bytes: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Messages a second, all publishers together (default: as many as the
        /// window lets through).
        #[arg(long)]
        rate: Option<f64>,
        /// Server processes whose CPU time is charged to the relayed messages.
        #[arg(long = "cpu-of")]
        cpu_of: Vec<u32>,
    },
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let (a, b) = (
        args.a.trim_end_matches('/').to_owned(),
        args.b.trim_end_matches('/').to_owned(),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    match args.scenario {
        Scenario::Logout {
            background,
            background_sessions,
            trials,
        } => logout(&http, &a, &b, background, background_sessions, trials).await,
        Scenario::Throughput {
            rooms,
            window,
            body_bytes,
            seconds,
            rate,
            cpu_of,
        } => {
            let load = Load {
                rooms,
                window,
                body_bytes,
                seconds,
                rate,
            };
            throughput(&http, &a, &b, load, &cpu_of).await
        }
    }
}

const PASSWORD: &str = "cluster bench password";

/// Registers a fresh user on `base`; returns the email.
async fn new_user(http: &reqwest::Client, base: &str) -> Result<String, Error> {
    let email = format!("c{}@bench.example.org", uuid_ish());
    let resp = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?;
    if resp.status().as_u16() != 201 {
        return Err(format!("register: {}", resp.status()).into());
    }
    Ok(email)
}

fn uuid_ish() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{t:x}{:x}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A token-mode login on `base`: the access token.
async fn login(http: &reqwest::Client, base: &str, email: &str) -> Result<String, Error> {
    let resp = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(format!("login: {}", resp.status()).into());
    }
    let body: Value = resp.json().await?;
    Ok(body["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned())
}

/// A welcomed socket on `base` with `token` as Bearer.
async fn socket(base: &str, token: &str) -> Result<Socket, Error> {
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"welcome\"") => return Ok(ws),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => return Err(format!("no welcome: {other:?}").into()),
        }
    }
}

/// `n` sockets on `base` spread over `sessions` sessions of one user, kept open
/// (and read, so pings are answered) until the returned guard drops.
async fn background(
    http: &reqwest::Client,
    base: &str,
    n: usize,
    sessions: usize,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Error> {
    let email = new_user(http, base).await?;
    let mut tokens = vec![];
    for _ in 0..sessions.max(1) {
        tokens.push(login(http, base, &email).await?);
    }
    let mut held = vec![];
    for i in 0..n {
        let mut ws = socket(base, &tokens[i % tokens.len()]).await?;
        held.push(tokio::spawn(async move {
            while let Some(Ok(_)) = ws.next().await {}
        }));
    }
    Ok(held)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

async fn logout(
    http: &reqwest::Client,
    a: &str,
    b: &str,
    n: usize,
    sessions: usize,
    trials: usize,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut held = background(http, a, n, sessions).await?;
    held.extend(background(http, b, n, sessions).await?);
    eprintln!(
        "{} background sockets open in {:.1}s",
        held.len(),
        started.elapsed().as_secs_f64()
    );
    let email = new_user(http, a).await?;
    let mut latencies = Vec::with_capacity(trials);
    for _ in 0..trials {
        let token = login(http, a, &email).await?;
        let mut ws = socket(b, &token).await?;
        let sent = Instant::now();
        let resp = http
            .post(format!("{a}/api/auth/logout"))
            .bearer_auth(&token)
            .send()
            .await?;
        if resp.status().as_u16() != 204 {
            return Err(format!("logout: {}", resp.status()).into());
        }
        let code = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(Some(f)))) => return Ok(u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    other => return Err(format!("no close frame: {other:?}")),
                }
            }
        })
        .await
        .map_err(|_| "no close within 5 s")??;
        latencies.push(sent.elapsed());
        if code != 4403 {
            return Err(format!("closed with {code}, not 4403").into());
        }
    }
    latencies.sort();
    println!("logout_trials: {trials}");
    println!("background_sockets_per_instance: {n}");
    println!("logout_p50_ms: {}", ms(percentile(&latencies, 0.5)));
    println!("logout_p99_ms: {}", ms(percentile(&latencies, 0.99)));
    println!("logout_max_ms: {}", ms(*latencies.last().unwrap()));
    for h in held {
        h.abort();
    }
    Ok(())
}

/// One room's bookkeeping: sent by the publisher, delivered to the subscriber.
#[derive(Default)]
struct Flow {
    sent: AtomicU64,
    delivered: AtomicU64,
    wake: Notify,
}

/// The `throughput` scenario's shape.
struct Load {
    rooms: usize,
    window: u64,
    body_bytes: usize,
    seconds: f64,
    rate: Option<f64>,
}

/// Microseconds since `start`, as a message body carries it (its first 16 digits).
fn stamp(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

async fn throughput(
    http: &reqwest::Client,
    a: &str,
    b: &str,
    load: Load,
    cpu_of: &[u32],
) -> Result<(), Error> {
    let Load {
        rooms,
        window,
        body_bytes,
        seconds,
        rate,
    } = load;
    let start = Instant::now();
    // Send → arrival times, in microseconds, noted while `timing` is set.
    let timing = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let email = new_user(http, a).await?;
    let token = login(http, a, &email).await?;
    let run = Arc::new(AtomicBool::new(true));
    let errors = Arc::new(AtomicU64::new(0));
    let flows: Vec<Arc<Flow>> = (0..rooms).map(|_| Arc::default()).collect();
    let mut tasks = vec![];
    // Subscribers on B first, each subscribed before anything is published.
    for (i, flow) in flows.iter().enumerate() {
        let mut ws = socket(b, &token).await?;
        ws.send(Message::Text(
            json!({"type": "subscribe", "room": format!("bench{i}")})
                .to_string()
                .into(),
        ))
        .await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"subscribed\"") => break,
                Some(Ok(_)) => continue,
                other => return Err(format!("no subscribed: {other:?}").into()),
            }
        }
        let flow = flow.clone();
        let (timing, latencies) = (timing.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m
                    && t.contains("\"type\":\"message\"")
                {
                    let now = stamp(start);
                    flow.delivered.fetch_add(1, Ordering::Relaxed);
                    flow.wake.notify_one();
                    if timing.load(Ordering::Relaxed)
                        && let Ok(frame) = serde_json::from_str::<Value>(&t)
                        && let Some(sent) = frame["body"]
                            .as_str()
                            .and_then(|b| b.get(..16))
                            .and_then(|b| b.parse::<u64>().ok())
                    {
                        let mut l = latencies.lock().unwrap_or_else(|e| e.into_inner());
                        l.push(now.saturating_sub(sent));
                    }
                }
            }
        }));
    }
    let pad = "x".repeat(body_bytes.saturating_sub(16));
    // Paced: each room's publisher sends one message every `period`.
    let period = rate.map(|r| Duration::from_secs_f64(rooms as f64 / r.max(1.0)));
    for (i, flow) in flows.iter().enumerate() {
        let ws = socket(a, &token).await?;
        let (mut tx, mut rx) = ws.split();
        let errors = errors.clone();
        // Read what A says (errors, pings): a socket nobody reads fills its queue.
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = m
                    && t.contains("\"error\"")
                {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        let room = format!("bench{i}");
        let pad = pad.clone();
        let frame = move || {
            let body = format!("{:016}{pad}", stamp(start));
            json!({"type": "publish", "room": room, "body": body}).to_string()
        };
        let (flow, run) = (flow.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = period.map(|p| {
                let mut t = tokio::time::interval(p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while run.load(Ordering::Relaxed) {
                if let Some(tick) = &mut tick {
                    tick.tick().await;
                    if flow.sent.load(Ordering::Relaxed) - flow.delivered.load(Ordering::Relaxed)
                        >= window
                    {
                        continue;
                    }
                    if tx.send(Message::Text(frame().into())).await.is_err() {
                        return;
                    }
                    flow.sent.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let in_flight =
                    flow.sent.load(Ordering::Relaxed) - flow.delivered.load(Ordering::Relaxed);
                if in_flight >= window {
                    // Woken by the subscriber; the timeout re-checks `run`.
                    let _ =
                        tokio::time::timeout(Duration::from_millis(50), flow.wake.notified()).await;
                    continue;
                }
                // Fed without a flush per frame; flushed when the window is full.
                let burst = (window - in_flight).min(32);
                for _ in 0..burst {
                    if tx.feed(Message::Text(frame().into())).await.is_err() {
                        return;
                    }
                }
                flow.sent.fetch_add(burst, Ordering::Relaxed);
                if tx.flush().await.is_err() {
                    return;
                }
            }
        }));
    }
    let delivered = || {
        flows
            .iter()
            .map(|f| f.delivered.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let sent = || {
        flows
            .iter()
            .map(|f| f.sent.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    // Warm-up, then the timed stretch.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = if cpu_of.is_empty() {
        None
    } else {
        Some(cpu_ticks(cpu_of)?)
    };
    let (d0, t0) = (delivered(), Instant::now());
    timing.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    timing.store(false, Ordering::Relaxed);
    let (d1, elapsed) = (delivered(), t0.elapsed().as_secs_f64());
    let cpu_after = if cpu_of.is_empty() {
        None
    } else {
        Some(cpu_ticks(cpu_of)?)
    };
    run.store(false, Ordering::Relaxed);
    // Whatever is still on its way gets two seconds.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while delivered() < sent() && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let relayed = d1 - d0;
    println!("rooms: {rooms}");
    println!("window: {window}");
    println!("msgs_delivered: {relayed}");
    println!("msgs_per_s: {:.0}", relayed as f64 / elapsed);
    println!("msgs_sent_total: {}", sent());
    println!("msgs_lost: {}", sent().saturating_sub(delivered()));
    println!("publish_errors: {}", errors.load(Ordering::Relaxed));
    let mut l = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    l.sort_unstable();
    if !l.is_empty() {
        let at = |p: f64| l[((l.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
        println!("latency_p50_ms: {:.2}", at(0.5));
        println!("latency_p99_ms: {:.2}", at(0.99));
        println!("latency_max_ms: {:.2}", at(1.0));
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let us = (after - before) as f64 * 1e6 / clock_ticks_per_second() as f64;
        println!("server_cpu_us_per_msg: {:.2}", us / relayed.max(1) as f64);
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}
