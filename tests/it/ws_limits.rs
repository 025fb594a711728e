//! Limits on sockets: the per-IP handshake rate (and whose forwarding headers count),
//! sockets per user, and frame floods of every kind.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn a_handshake_flood_gets_429_and_forged_forwarding_headers_do_not_help() {
    let app = spawn_with(|c| {
        c.ws_handshake_per_second = 1;
        c.ws_handshake_burst = 3;
    })
    .await;
    let mut refused = None;
    for i in 0..10 {
        let spoof = format!("10.0.0.{i}");
        let result = app
            .ws(Anonymous)
            .forwarded_for(&spoof)
            .header("x-real-ip", &spoof)
            .header("forwarded", &format!("for={spoof}"))
            .await;
        if let Err(e) = result {
            refused = Some((i, e));
            break;
        }
    }
    let (attempt, err) = refused.expect("the flood is refused");
    assert_eq!(attempt, 3, "the burst of 3 passes, the 4th is refused");
    assert_eq!(handshake_status(&err), 429);
    match &err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
        }
        _ => unreachable!(),
    }
    assert_eq!(handshake_body(&err)["error"], "rate_limited");
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let app = spawn_with(|c| {
        c.ws_handshake_per_second = 1;
        c.ws_handshake_burst = 1;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    // Behind a trusted proxy, each forwarded client has its own budget.
    for i in 0..4 {
        let client = format!("203.0.113.{i}");
        app.ws(Anonymous)
            .forwarded_for(&client)
            .await
            .expect("distinct clients behind the proxy");
    }
    let err = app
        .ws(Anonymous)
        .forwarded_for("203.0.113.0")
        .await
        .unwrap_err();
    assert_eq!(handshake_status(&err), 429);
}

#[tokio::test]
async fn a_user_may_hold_only_so_many_sockets() {
    let app = spawn_with(|c| c.ws_max_sockets_per_user = 2).await;
    let tokens = app.user_with_tokens().await;
    let (_a, _) = app.ws_welcomed(&tokens).await;
    let (_b, _) = app.ws_welcomed(&tokens).await;
    let err = app.ws(&tokens).await.unwrap_err();
    assert_eq!(handshake_status(&err), 429);
    assert_eq!(handshake_body(&err)["error"], "too_many_sockets");
    let other = app.user_with_tokens().await;
    app.ws_welcomed(&other).await;
}

/// The cap is checked and the place taken in one step: of handshakes racing for the
/// last places, exactly as many as there are places are welcomed, and every other
/// one is refused before its upgrade (none is upgraded and then closed).
#[tokio::test]
async fn racing_handshakes_take_exactly_the_places_left() {
    let app = spawn_with(|c| c.ws_max_sockets_per_user = 3).await;
    let tokens = app.user_with_tokens().await;
    let (_held, _) = app.ws_welcomed(&tokens).await;
    let attempts = futures_util::future::join_all((0..12).map(|_| app.ws(&tokens).connect())).await;
    let mut welcomed = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt {
            Ok(mut ws) => {
                let welcome = next_json(&mut ws).await;
                assert_eq!(welcome["type"], "welcome", "{welcome}");
                welcomed.push(ws);
            }
            Err(e) => {
                assert_eq!(handshake_status(&e), 429, "{e}");
                assert_eq!(handshake_body(&e)["error"], "too_many_sockets");
                refused += 1;
            }
        }
    }
    assert_eq!((welcomed.len(), refused), (2, 10));
}

/// A socket that authenticates with its first frame is held to the same cap when
/// that frame is accepted.
#[tokio::test]
async fn an_auth_frame_over_the_cap_closes_with_4429() {
    let app = spawn_with(|c| c.ws_max_sockets_per_user = 1).await;
    let tokens = app.user_with_tokens().await;
    let mut pending = app.ws(Anonymous).await.expect("pending socket");
    let (_held, _) = app.ws_welcomed(&tokens).await;
    send_json(
        &mut pending,
        json!({"type": "auth", "token": tokens.access}),
    )
    .await;
    assert_eq!(
        expect_close(&mut pending, Duration::from_secs(3)).await,
        (4429, "too_many_sockets".into())
    );
}

#[tokio::test]
async fn a_flooding_socket_is_closed_with_4429() {
    let app = spawn_with(|c| c.ws_messages_per_second = 5).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    for _ in 0..30 {
        if ws
            .send(Message::Text(json!({"type": "ping"}).to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(3)).await,
        (4429, "rate_limited".into())
    );
}

/// A burst written in one go, read only afterwards: the server closes after a few
/// frames with a thousand more unread. Closing with them unread made the kernel
/// reset the connection, and the reset destroyed the 4429 before the client read it.
#[tokio::test]
async fn a_flood_sent_in_one_burst_still_gets_its_4429() {
    let app = spawn_with(|c| c.ws_messages_per_second = 5).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    let ping = Message::Text(json!({"type": "ping"}).to_string().into());
    for _ in 0..3000 {
        ws.feed(ping.clone()).await.expect("queue a ping");
    }
    ws.flush().await.expect("the burst is written");
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(5)).await,
        (4429, "rate_limited".into())
    );
}

#[tokio::test]
async fn binary_floods_count_against_the_rate_too() {
    let app = spawn_with(|c| c.ws_messages_per_second = 5).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    for _ in 0..30 {
        if ws
            .send(Message::Binary(vec![0u8; 16].into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(3)).await,
        (4429, "rate_limited".into())
    );
}

#[tokio::test]
async fn a_pong_flood_is_cut_like_any_other_flood() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    // Unsolicited pongs, as fast as the socket takes them.
    for _ in 0..5000 {
        if ws.send(Message::Pong(Vec::new().into())).await.is_err() {
            break;
        }
    }
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!((code, reason.as_str()), (4429, "rate_limited"));
}

#[tokio::test]
async fn a_socket_waiting_for_auth_cannot_flood_pings() {
    let app = spawn_app().await;
    let mut ws = app.ws(Credential::Anonymous).await.unwrap();
    for _ in 0..200 {
        if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
            break;
        }
    }
    // Well before the 10 s auth timeout.
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!((code, reason.as_str()), (4429, "rate_limited"));
}

/// Sends a `ping` split as a text frame, 11,000 empty continuation frames (6 bytes
/// each from a client: 66 KB) and a last fragment; returns how long until the pong.
async fn fragment_flood_then_ping(ws: &mut Ws) -> Duration {
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    let started = std::time::Instant::now();
    let text = |payload: &'static str, op: Data, fin: bool| {
        Message::Frame(Frame::message(payload, OpCode::Data(op), fin))
    };
    ws.feed(text(r#"{"type":"#, Data::Text, false))
        .await
        .unwrap();
    for _ in 0..11_000 {
        ws.feed(text("", Data::Continue, false)).await.unwrap();
    }
    ws.feed(text(r#""ping","id":7}"#, Data::Continue, true))
        .await
        .unwrap();
    ws.flush().await.unwrap();
    let pong = next_json(ws).await;
    assert_eq!(pong["type"], "pong", "{pong}");
    started.elapsed()
}

/// Empty continuation frames never make a message, so no message rate sees them;
/// the socket's bytes are read within a budget instead (four largest messages a
/// second, two at once), so a fragment flood is slowed down, not served at wire speed.
#[tokio::test]
async fn a_fragment_flood_is_read_no_faster_than_the_byte_budget() {
    // 8 KiB messages: 32 KiB a second, 16 KiB at once.
    let app = spawn_with(|c| c.ws_max_message_bytes = 8 * 1024).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    let took = fragment_flood_then_ping(&mut ws).await;
    // (66 KB - 16 KiB at once) / 32 KiB a second ≈ 1.5 s; at wire speed, ~20 ms.
    assert!(took >= Duration::from_millis(1200), "read in {took:?}");
}

/// The byte budget must hold when the client pipelines a request before its
/// upgrade (which puts the connection's byte watcher out of step with the requests).
#[tokio::test]
async fn a_pipelined_upgrade_still_reads_within_the_byte_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    let app = spawn_with(|c| c.ws_max_message_bytes = 8 * 1024).await;
    let tokens = app.user_with_tokens().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let requests = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {}\r\n\r\n",
        tokens.access
    );
    stream.write_all(requests.as_bytes()).await.unwrap();
    // Both answers: the health check, then the switch.
    let mut seen = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "cut: {seen:?}");
        seen.push(byte[0]);
        let text = String::from_utf8_lossy(&seen);
        if let Some(at) = text.find("HTTP/1.1 101")
            && text[at..].ends_with("\r\n\r\n")
        {
            break;
        }
    }
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
        Role::Client,
        None,
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    let took = fragment_flood_then_ping(&mut ws).await;
    assert!(took >= Duration::from_millis(1200), "read in {took:?}");
}

#[tokio::test]
async fn an_http_1_0_upgrade_is_a_client_mistake_not_a_server_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
    assert!(answer.contains("bad_request"), "{answer}");
}

/// The attack of issue 31 (item 10): a client that keeps flooding after the server
/// has closed. Closing the connection with its pongs still arriving made the
/// kernel answer them with a reset, which destroyed the 4429 before the client
/// read it (the client saw 1006). The server now drains what the peer still sends
/// for a bounded time after its Close (a lingering close).
#[tokio::test]
async fn a_client_still_flooding_after_the_close_reads_its_4429() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    // 5,000 unsolicited pongs, in bursts of 50 every millisecond or so: the rate
    // (50/s, burst 100) is spent within the first bursts, and pongs keep arriving
    // for a good while after the server's Close.
    for _ in 0..100 {
        for _ in 0..50 {
            if ws.feed(Message::Pong(Vec::new().into())).await.is_err() {
                break;
            }
        }
        if ws.flush().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!((code, reason.as_str()), (4429, "rate_limited"));
    expect_clean_end(&mut ws).await;
}

/// The same for a message over the size limit with the rest of it in flight: the
/// server stops reading at the frame's header, and the megabyte behind it made the
/// kernel reset the connection over the 1009.
#[tokio::test]
async fn an_oversized_message_still_in_flight_gets_its_1009() {
    let app = spawn_with(|c| c.ws_max_message_bytes = 4096).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    let _ = ws.send(Message::Binary(vec![7u8; 512 * 1024].into())).await;
    let (code, _) = expect_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(code, 1009);
    expect_clean_end(&mut ws).await;
}

/// After the server's Close has been read: the client's reply goes out and the
/// connection ends with the server's FIN, not a reset. A reset is what a browser
/// (or any client that was still writing) reports as 1006, the code lost.
async fn expect_clean_end(ws: &mut Ws) {
    use tokio_tungstenite::tungstenite::Error;
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                Some(Ok(_)) => continue,
                None | Some(Err(Error::ConnectionClosed | Error::AlreadyClosed)) => return Ok(()),
                Some(Err(e)) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("the connection ends");
    assert_eq!(
        end,
        Ok(()),
        "the connection ended with an error, not a clean close"
    );
}
