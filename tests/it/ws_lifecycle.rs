//! How an open socket ends: with its session (logout, revocation, refresh-token
//! reuse, absolute and idle expiry), with the server, or with a silent peer.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn logout_closes_that_sessions_sockets_within_a_second_and_no_others() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let mine = app.login_tokens(&email).await;
    let other_session = app.login_tokens(&email).await;
    let (mut a1, _) = app.ws_welcomed(&mine).await;
    let (mut a2, _) = app.ws_welcomed(&mine).await;
    let (mut other, _) = app.ws_welcomed(&other_session).await;

    let started = Instant::now();
    assert_eq!(app.logout(&mine).await.status(), StatusCode::NO_CONTENT);
    for ws in [&mut a1, &mut a2] {
        let (code, reason) = expect_close(ws, Duration::from_secs(1)).await;
        assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    // The other session is told, and lives on.
    let notice = next_json(&mut other).await;
    assert_eq!(notice["kind"], "session_ended", "{notice}");
    assert_eq!(notice["session_id"], mine.session_id.as_str());
    assert_alive(&mut other).await;
}

/// A logout racing handshakes: whatever the interleaving, no socket of the ended
/// session stays open: it is refused, or closed by the revocation, or closed before
/// or right after its welcome. The narrowest interleaving (credential check just
/// before the revocation, bind to the registry just after it was announced) is
/// microseconds wide and this test does not reliably reach it: with the socket's
/// re-check removed it still passed 5 runs of 5. What guards that window is argued
/// in `Conn::authenticated` and the mark's unit test in `sessions::state`.
#[tokio::test]
async fn a_logout_racing_handshakes_leaves_none_of_its_sockets_open() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let (mut welcomed, mut refused) = (0, 0);
    for round in 0..20u64 {
        let tokens = app.login_tokens(&email).await;
        // Spread over the logout's few milliseconds: some before, some during,
        // some after.
        let sockets = futures_util::future::join_all((0..4u64).map(|i| {
            let connect = app.ws(&tokens).connect();
            async move {
                tokio::time::sleep(Duration::from_micros((round % 5 + i * 3) * 700)).await;
                connect.await
            }
        }));
        let (sockets, logout) = tokio::join!(sockets, app.logout(&tokens));
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        for socket in sockets {
            let mut ws = match socket {
                Ok(ws) => ws,
                Err(e) => {
                    assert_eq!(handshake_status(&e), 401, "{e}");
                    refused += 1;
                    continue;
                }
            };
            // Upgraded: whatever came first, the last word is the session's end.
            let closed = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                        Some(Ok(Message::Text(t))) if t.contains(r#""type":"welcome""#) => {
                            welcomed += 1;
                        }
                        Some(Ok(_)) => {}
                        other => panic!("no close frame: {other:?}"),
                    }
                }
            })
            .await
            .expect("a socket of the ended session stayed open");
            assert_eq!(closed, 4403, "the session's end, as `session_revoked`");
        }
    }
    // Both outcomes are legitimate; the count only says which ones this run saw.
    eprintln!("welcomed then closed: {welcomed}, refused: {refused}");
}

#[tokio::test]
async fn revoking_a_session_or_all_sessions_closes_their_sockets() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let one = app.login_tokens(&email).await;
    let two = app.login_tokens(&email).await;
    let stranger = app.user_with_tokens().await;
    let (mut ws_two, _) = app.ws_welcomed(&two).await;
    let (mut ws_one, _) = app.ws_welcomed(&one).await;
    let (mut ws_stranger, _) = app.ws_welcomed(&stranger).await;

    let resp = app.revoke_session(&one, &two.session_id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        expect_close(&mut ws_two, Duration::from_secs(1)).await.0,
        4403
    );
    let notice = next_json(&mut ws_one).await;
    assert_eq!(notice["kind"], "session_ended", "{notice}");
    assert_eq!(notice["session_id"], two.session_id.as_str());
    assert_alive(&mut ws_one).await;

    let resp = app.revoke_all_sessions(&one).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        expect_close(&mut ws_one, Duration::from_secs(1)).await.0,
        4403
    );
    assert_alive(&mut ws_stranger).await;
}

#[tokio::test]
async fn refresh_token_reuse_closes_the_sessions_sockets() {
    let app = spawn_with(|c| c.refresh_reuse_grace = Duration::ZERO).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    assert_eq!(app.refresh(&tokens.refresh).await.status(), StatusCode::OK);
    // With no grace window, any later presentation is a reuse; a little later, so
    // that it is later at any clock resolution the database keeps.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        app.refresh(&tokens.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(1)).await,
        (4403, "session_revoked".into())
    );
}

#[tokio::test]
async fn a_socket_closes_when_its_session_expires() {
    const TTL: Duration = Duration::from_millis(700);
    let app = spawn_with(|c| c.session_ttl = TTL).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    assert_eq!(
        expect_close(&mut ws, TTL + Duration::from_secs(2)).await,
        (4403, "session_expired".into())
    );
}

#[tokio::test]
async fn a_socket_closes_when_its_session_goes_idle_and_sockets_do_not_keep_it_alive() {
    const IDLE: Duration = Duration::from_millis(700);
    let app = spawn_with(|c| {
        c.session_idle = IDLE;
        c.sweep = Duration::from_millis(200);
    })
    .await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    let (code, reason) = expect_close(&mut ws, IDLE + Duration::from_secs(3)).await;
    assert_eq!((code, reason.as_str()), (4403, "session_expired"));
    assert_eq!(app.me(&tokens).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let mut app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut authed, _) = app.ws_welcomed(&tokens).await;
    let mut pending = app.ws(Anonymous).await.unwrap();
    app.stop();
    for ws in [&mut authed, &mut pending] {
        assert_eq!(
            expect_close(ws, Duration::from_secs(3)).await,
            (1001, "shutdown".into())
        );
    }
}

#[tokio::test]
async fn the_welcome_announces_the_heartbeat_interval() {
    let app = spawn_with(|c| c.ws_heartbeat = Duration::from_secs(1)).await;
    let tokens = app.user_with_tokens().await;
    let (_ws, welcome) = app.ws_welcomed(&tokens).await;
    assert_eq!(welcome["heartbeat_s"], 1);
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    use tokio::io::AsyncReadExt;
    const HEARTBEAT: Duration = Duration::from_millis(250);
    let app = spawn_with(|c| c.ws_heartbeat = HEARTBEAT).await;
    let tokens = app.user_with_tokens().await;
    let (ws, _) = app.ws_welcomed(&tokens).await;
    let welcomed = Instant::now();
    // Not reading with a WebSocket client means not answering the server's pings.
    // Read the raw bytes instead: a WebSocket client would try to answer the queued
    // pings on a connection the server has already closed.
    let tokio_tungstenite::MaybeTlsStream::Plain(mut tcp) = ws.into_inner() else {
        panic!("plain TCP expected");
    };
    let mut bytes = Vec::new();
    tokio::time::timeout(
        HEARTBEAT * 4 + Duration::from_secs(2),
        tcp.read_to_end(&mut bytes),
    )
    .await
    .expect("the server closed the connection")
    .ok();
    // Dropped for missing pings, not at once.
    assert!(
        welcomed.elapsed() >= HEARTBEAT * 2,
        "{:?}",
        welcomed.elapsed()
    );
    let reason = b"heartbeat_timeout";
    let mut close = vec![0x88, (2 + reason.len()) as u8, 0x03, 0xE8];
    close.extend_from_slice(reason);
    assert!(
        bytes.windows(close.len()).any(|w| w == close.as_slice()),
        "no close 1000 heartbeat_timeout in {bytes:?}"
    );
}

#[tokio::test]
async fn a_reading_peer_survives_heartbeats() {
    const HEARTBEAT: Duration = Duration::from_millis(250);
    let app = spawn_with(|c| c.ws_heartbeat = HEARTBEAT).await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    // Reading lets the client answer pings; the socket outlives four intervals
    // (the server gives up after three unanswered).
    let deadline = tokio::time::Instant::now() + HEARTBEAT * 9 / 2;
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(deadline, ws.next()).await {
        match frame {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("only pings expected, got {other:?}"),
        }
    }
    assert!(pings >= 3, "{pings} pings");
    assert_alive(&mut ws).await;
}

/// RFC 6455 §5.5.1: a Close from the client is answered with a Close, so the
/// client sees a clean close (1000 from its own code), not 1006.
#[tokio::test]
async fn a_close_from_the_client_is_answered_with_a_close() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    ws.close(None).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    assert!(
        matches!(reply, Ok(Some(Ok(Message::Close(_))))),
        "the server's answer to a Close: {reply:?}"
    );
}

/// A socket the server closes is gone at once, even when the client never answers
/// the Close: nothing lingers that would still hold a place of the user's sockets.
#[tokio::test]
async fn a_socket_the_server_closes_is_gone_without_waiting_for_the_client() {
    use tokio::io::AsyncReadExt;
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    app.logout(&tokens).await;
    // The Close frame is read; no further poll, so no Close goes back.
    let (code, _) = expect_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!(code, 4403);
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        panic!("a plain TCP socket");
    };
    let mut buf = [0u8; 64];
    let eof = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await;
    assert!(
        matches!(eof, Ok(Ok(0))),
        "the server ends the connection at once: {eof:?}"
    );
}

/// Who closed first decides how the connection ends. A close the server began
/// lingers: bytes the client still sends are read and dropped for a while, so no
/// reset destroys the close code. A client that closed first sends nothing more
/// (RFC 6455, 5.5.1): its connection closes at once, with no task, timer or reads
/// left behind, and bytes sent anyway meet a closed socket (a reset).
#[tokio::test]
async fn only_a_close_the_server_began_lingers() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let tokens = app.user_with_tokens().await;
    // What a client sees when it writes after the end: `true` for a reset.
    async fn reset_after_end(ws: &mut Ws) -> bool {
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {}
        let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
            panic!("a plain TCP socket");
        };
        // The first write is accepted locally; a closed peer answers it with a
        // reset, which the next write (or two) reports.
        for _ in 0..5 {
            if tcp.write_all(b"stray bytes").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    let (mut ws, _) = app.ws_welcomed(&tokens).await;
    ws.close(None).await.unwrap();
    assert!(
        reset_after_end(&mut ws).await,
        "a socket the client closed first does not linger"
    );

    let (mut lingering, _) = app.ws_welcomed(&tokens).await;
    app.logout(&tokens).await;
    let (code, _) = expect_close(&mut lingering, Duration::from_secs(2)).await;
    assert_eq!(code, 4403);
    assert!(
        !reset_after_end(&mut lingering).await,
        "a socket the server closed drains what the client still sends"
    );
}
