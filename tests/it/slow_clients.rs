//! Slow clients: deadlines on request heads and bodies, the idle keep-alive timeout,
//! and the per-IP connection cap. Raw sockets, because HTTP clients do not send
//! half a request on purpose.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::helpers::*;

/// Waits until the server closes `stream` (EOF or reset), writing one byte of
/// `trickle` every 100 ms meanwhile when given. Returns how long that took and what
/// the server sent; `None` when the connection was still open after `within`.
async fn wait_closed(
    stream: &mut TcpStream,
    trickle: Option<u8>,
    within: Duration,
) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.tick().await;
    let deadline = tokio::time::sleep(within);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some((start.elapsed(), received)),
                Ok(n) => received.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick(), if trickle.is_some() => {
                if let Some(b) = trickle {
                    // A refused write means the server has closed: the read sees it next.
                    let _ = stream.write_all(&[b]).await;
                }
            }
            _ = &mut deadline => return None,
        }
    }
}

/// Reads one response with a `Content-Length` body: (status, lower-case head, body).
async fn read_response(stream: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().expect("content-length"))
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    let status = head[9..12].parse().expect("status code");
                    let body = data[end + 4..end + 4 + length].to_vec();
                    data.drain(..end + 4 + length);
                    assert!(data.is_empty(), "unexpected bytes after the response");
                    return (status, head, body);
                }
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed before a whole response");
            data.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a response within 5 s")
}

async fn connect_from(ip: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}

fn post(path: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn half_sent_headers_are_cut_at_the_header_deadline() {
    let app = spawn_with(|c| c.header_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // A byte every 100 ms keeps any inactivity timer happy; only a deadline helps.
    let (after, sent) = wait_closed(&mut stream, Some(b'a'), Duration::from_secs(3))
        .await
        .expect("the server closes a head that is still incomplete after its deadline");
    assert!(
        after >= Duration::from_millis(400),
        "closed too early: {after:?}"
    );
    assert!(
        after < Duration::from_millis(1500),
        "closed too late: {after:?}"
    );
    assert!(sent.is_empty(), "no response to half a request: {sent:?}");
}

#[tokio::test]
async fn one_byte_of_a_declared_body_gets_408_at_the_body_deadline_and_a_close() {
    let app = spawn_with(|c| c.body_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 65000\r\n\r\n{",
        )
        .await
        .unwrap();
    let (after, sent) = wait_closed(&mut stream, None, Duration::from_secs(3))
        .await
        .expect("the server answers and closes a body that is still incomplete");
    assert!(
        after >= Duration::from_millis(400),
        "answered too early: {after:?}"
    );
    let text = String::from_utf8_lossy(&sent).to_lowercase();
    assert!(text.starts_with("http/1.1 408"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"], "request_timeout");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_deadline_until_the_idle_timeout() {
    let app = spawn_with(|c| {
        c.header_timeout = Duration::from_millis(200);
        c.idle_timeout = Duration::from_millis(800);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);

    // Idle for twice the header deadline: the connection is still usable.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stream.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);

    let (after, sent) = wait_closed(&mut stream, None, Duration::from_secs(3))
        .await
        .expect("an idle connection is closed after the idle timeout");
    assert!(
        after >= Duration::from_millis(600),
        "closed too early: {after:?}"
    );
    assert!(sent.is_empty(), "{sent:?}");
}

#[tokio::test]
async fn a_response_the_client_stops_reading_is_given_up_after_the_idle_timeout() {
    let app = spawn_with(|c| c.idle_timeout = Duration::from_millis(300)).await;
    // A small receive window, so that the server's writes stall.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.addr).await.unwrap();
    // Swagger UI's page, about 1.7 MB, six times over: more than the kernel's
    // socket buffers take (Linux grows a send buffer up to 4 MiB by default).
    stream
        .write_all(&b"GET /docs HTTP/1.1\r\nHost: x\r\n\r\n".repeat(6))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // What was buffered arrives, then the end: the server gave the write up.
    let (_, sent) = wait_closed(&mut stream, None, Duration::from_secs(5))
        .await
        .expect("a stalled connection is closed after the idle timeout");
    let text = String::from_utf8_lossy(&sent);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..40.min(text.len())]
    );
    assert!(
        sent.len() < 6 * 1_600_000,
        "{} bytes: every page",
        sent.len()
    );
}

#[tokio::test]
async fn an_open_websocket_outlives_the_idle_and_header_timeouts() {
    let app = spawn_with(|c| {
        c.header_timeout = Duration::from_millis(200);
        c.idle_timeout = Duration::from_millis(300);
        // Room for the test client's pooled connection and one handshake at a time:
        // upgraded sockets leave the HTTP connection cap.
        c.max_connections_per_ip = 2;
    })
    .await;
    let tokens = app.user_with_tokens().await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(app.ws_welcomed(&tokens).await.0);
    }
    // Silent for three idle timeouts (heartbeats are 30 s apart by default).
    tokio::time::sleep(Duration::from_millis(900)).await;
    for ws in &mut sockets {
        assert_alive(ws).await;
    }
    // Frames the client sends later are not request heads either.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for ws in &mut sockets {
        assert_alive(ws).await;
    }
    let resp = app.healthz().await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn slow_connections_from_one_ip_neither_pass_the_cap_nor_starve_another_ip() {
    const CAP: usize = 64;
    const SLOW: usize = 500;
    let app = spawn_with(|c| {
        c.max_connections_per_ip = CAP;
        c.header_timeout = Duration::from_secs(30);
        c.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut s = connect_from(local, app.addr).await.unwrap();
        // The write may fail when the server has already closed this one.
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(s);
    }

    // Another client is served at once while the slow ones hang.
    let started = Instant::now();
    let mut other = connect_from("127.0.0.2".parse().unwrap(), app.addr)
        .await
        .unwrap();
    other.write_all(HEALTHZ).await.unwrap();
    let (status, _, _) = read_response(&mut other).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served after {:?}",
        started.elapsed()
    );

    // Those over the cap were closed at once; the first CAP are still open.
    let checks = slow.iter_mut().map(|s| async move {
        let mut buf = [0u8; 64];
        // Still waiting when the timer ends: open.
        tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf))
            .await
            .is_err()
    });
    let open = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .filter(|open| *open)
        .count();
    assert_eq!(open, CAP, "connections left open from 127.0.0.1");

    // When they end, their slots are given back.
    drop(slow);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = Vec::new();
    for _ in 0..CAP {
        let mut s = connect_from(local, app.addr).await.unwrap();
        s.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut s).await.0, 200);
        again.push(s);
    }
}

#[tokio::test]
async fn requests_with_bodies_and_keep_alive_reuse_still_work() {
    let app = spawn_with(|c| {
        c.header_timeout = Duration::from_millis(500);
        c.body_timeout = Duration::from_millis(500);
        c.max_connections_per_ip = 2;
    })
    .await;
    let email = format!("slow-{}@example.org", uuid::Uuid::new_v4().simple());
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(&post(
            "/api/auth/register",
            &json!({"email": email, "password": PASSWORD}),
        ))
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream).await.0, 201);

    // The same connection, after more than a header deadline of idling.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream
        .write_all(&post(
            "/api/auth/login",
            &json!({"email": email, "password": PASSWORD}),
        ))
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut stream).await;
    assert_eq!(status, 200);
    let tokens = Tokens::from_json(&serde_json::from_slice(&body).unwrap());

    // A request sent in pieces within its deadline is fine.
    let me = format!(
        "GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        tokens.access
    );
    for piece in me.as_bytes().chunks(me.len() / 3 + 1) {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read_response(&mut stream).await.0, 200);

    // `Expect: 100-continue`: the interim answer does not end the request.
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    stream
        .write_all(
            format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("100 Continue within 5 s")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);

    // And a second connection alongside, within the cap of two.
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    second.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut second).await.0, 200);
    stream.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
}
