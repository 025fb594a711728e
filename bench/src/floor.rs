//! The cost floor: the same poem version as doorman serving the same bytes with no
//! authentication, no request scope and no logging, so that doorman's server CPU per
//! operation can be read against what poem itself costs for that work.
//!
//! - `GET` on each `--canned PATH=FILE`: FILE is a response as `curl -si` prints it
//!   (status line, headers, blank line, body), captured from a live doorman by
//!   `bench/run.sh`. The floor answers with that status, those headers (request id
//!   included, as a fixed value of the same length) and that body, so the bytes on the
//!   wire match doorman's but for the `date` header's value.
//! - `GET /ws`: upgrades (with doorman's socket buffer sizes), sends the text of
//!   `--welcome FILE` as its first frame, then answers every text frame containing
//!   `"type":"ping"` with the same frame, `ping` replaced by `pong`, which is
//!   byte for byte doorman's `pong` for doorman-bench's pings, and answers a close
//!   frame with a close frame before it closes the connection, as doorman does. A
//!   `subscribe` frame adds the socket to the one room there is (answered like
//!   doorman's `subscribed`); a `publish` frame sends a `message` frame of doorman's
//!   shape and length to every socket in it, through each socket's queue as doorman
//!   does (a poem socket is written by its own task).
//!
//! Usage: doorman-floor --bind 127.0.0.1:18803 --canned /healthz=healthz.http
//! --canned /api/me=me.http --welcome welcome.json

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server, get,
    http::{HeaderName, HeaderValue, StatusCode},
    listener::TcpListener,
    web::{
        Data,
        websocket::{Message, WebSocket, WebSocketConfig},
    },
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:18803")]
    bind: SocketAddr,
    /// `PATH=FILE`: answer GET PATH with the response captured in FILE (repeatable).
    #[arg(long = "canned")]
    canned: Vec<String>,
    /// The first frame of every socket (doorman's `welcome`, captured).
    #[arg(long)]
    welcome: Option<std::path::PathBuf>,
}

/// A response captured from doorman, replayed as is.
#[derive(Clone)]
struct Canned {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: bytes::Bytes,
}

impl Canned {
    /// Parses `curl -si` output. `content-length` and `date` are hyper's to write.
    fn parse(raw: &[u8]) -> Result<Self, String> {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no blank line after the headers")?;
        let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
        let body = bytes::Bytes::copy_from_slice(&raw[split + 4..]);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or("no status line")?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(':').ok_or("a header without ':'")?;
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| e.to_string())?;
            if name == "content-length" || name == "date" {
                continue;
            }
            let value = HeaderValue::from_str(value.trim()).map_err(|e| e.to_string())?;
            headers.push((name, value));
        }
        Ok(Self {
            status,
            headers,
            body,
        })
    }
}

impl Endpoint for Canned {
    type Output = Response;

    async fn call(&self, _req: Request) -> poem::Result<Response> {
        let mut resp = Response::builder()
            .status(self.status)
            .body(self.body.clone());
        let headers = resp.headers_mut();
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        Ok(resp)
    }
}

struct Welcome(String);

/// The floor's one room: every subscribed socket's queue.
#[derive(Default)]
struct Room(Mutex<Vec<tokio::sync::mpsc::Sender<Arc<str>>>>);

impl Room {
    /// A `message` frame of doorman's shape and length (ids and time fixed) to
    /// everyone in the room; a socket whose queue is full misses it, as in doorman.
    fn publish(&self, body: &str) {
        let frame: Arc<str> = format!(
            r#"{{"type":"message","id":"019ac6e4-8f3a-7c2e-9b1d-4f6a8e2c1b3d","room":"fanout","from":"019ac6e4-8f3a-7c2e-9b1d-4f6a8e2c1b3e","body":"{body}","sent_at":"2026-11-27T21:00:00.123456789Z"}}"#
        )
        .into();
        let mut subs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|tx| !tx.is_closed());
        for tx in subs.iter() {
            let _ = tx.try_send(Arc::clone(&frame));
        }
    }
}

#[poem::handler]
fn ws(ws: WebSocket, welcome: Data<&Arc<Welcome>>, room: Data<&Arc<Room>>) -> impl IntoResponse {
    let welcome = Arc::clone(&welcome);
    let room = Arc::clone(&room);
    // doorman's buffer sizes (`WsContext::socket_config` with its 64 KiB default).
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(128 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    ws.config(config).on_upgrade(move |socket| async move {
        let (mut sink, mut stream) = socket.split();
        if sink.send(Message::Text(welcome.0.clone())).await.is_err() {
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<str>>(64);
        let mut tx = Some(tx);
        loop {
            let reply = tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(text))) if text.contains(r#""type":"ping""#) => {
                        text.replacen(r#""type":"ping""#, r#""type":"pong""#, 1)
                    }
                    Some(Ok(Message::Text(text))) if text.contains(r#""type":"subscribe""#) => {
                        if let Some(tx) = tx.take() {
                            room.0.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
                        }
                        r#"{"type":"subscribed","room":"fanout","present":["019ac6e4-8f3a-7c2e-9b1d-4f6a8e2c1b3e"]}"#.to_owned()
                    }
                    Some(Ok(Message::Text(text))) if text.contains(r#""type":"publish""#) => {
                        let body = text
                            .split_once(r#""body":""#)
                            .and_then(|(_, rest)| rest.split('"').next())
                            .unwrap_or("");
                        room.publish(body);
                        continue;
                    }
                    // As doorman does: the close handshake answered (the reply
                    // tungstenite queued on reading the client's close, flushed).
                    Some(Ok(Message::Close(_))) => {
                        let _ = sink.close().await;
                        break;
                    }
                    None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                },
                Some(frame) = rx.recv() => frame.to_string(),
            };
            if sink.send(Message::Text(reply)).await.is_err() {
                break;
            }
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut app = Route::new();
    for spec in &args.canned {
        let (path, file) = spec.split_once('=').ok_or("--canned wants PATH=FILE")?;
        let canned = Canned::parse(&std::fs::read(file)?).map_err(|e| format!("{file}: {e}"))?;
        app = app.at(path, get(canned));
    }
    let welcome = match &args.welcome {
        Some(file) => std::fs::read_to_string(file)?,
        None => r#"{"type":"welcome"}"#.to_owned(),
    };
    let app = app
        .at("/ws", get(ws))
        .data(Arc::new(Welcome(welcome.trim_end().to_owned())))
        .data(Arc::new(Room::default()));
    println!("doorman-floor listening on http://{}", args.bind);
    // On a worker thread, as doorman runs its server (`Application::run_until`):
    // how the runtime drives poem's accept loop is not authentication.
    tokio::spawn(Server::new(TcpListener::bind(args.bind)).run(app)).await??;
    Ok(())
}
