//! A socket bound to its session: the transport under doorman's `/ws` protocol
//! and under a host's own socket routes alike. It waits for a pending socket's
//! `auth` frame, admits it (the re-check that leaves no gap between the credential
//! check and the bind), then yields the client's frames while it keeps the
//! session's promises: closed with 4403 when the session ends (on any instance)
//! or expires, heartbeats, a frame rate (4429), frame-size and protocol closes
//! (1009, 1002, 1007), and a close that leaves the code readable.

use std::{
    num::NonZeroU32,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{FutureExt, SinkExt, StreamExt};
use governor::{
    Quota, RateLimiter,
    clock::DefaultClock,
    state::{InMemoryState, NotKeyed},
};
use poem::web::websocket::{CloseCode, Message, WebSocketStream};
use time::OffsetDateTime;
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, Sleep, sleep, sleep_until},
};

use super::protocol::{ClientFrame, Close};
use crate::{
    Doorman,
    auth::{Error, Identity, SessionEnds},
    http::conn_guard::CloseNote,
    rooms::{Outbox, Outgoing},
    sockets::{Binding, Registration},
};

/// How long one write may wait for a peer that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pings and pongs a socket may send before its `auth` frame.
const MAX_PENDING_CONTROL_FRAMES: u32 = 16;
/// Frames already received that a closing socket reads and drops at most (a burst
/// of a thousand pings is a client's plausible mistake; 1,024 cut its 4429 off).
const MAX_UNREAD_FRAMES_AT_CLOSE: usize = 65_536;

/// What [`Link::next`] found.
pub(crate) enum Event {
    /// A text or binary frame from the client (pings and pongs are handled).
    Frame(Message),
    /// A frame doorman queued for this socket (a notice, a room message).
    Queued(Outgoing),
    /// The socket is to close with this code.
    End(Close),
}

/// The socket's transport, its place in the registry and its close signal.
pub(crate) struct Link {
    /// Boxed, like the heartbeat timer in [`Beat`]: the socket's future is
    /// allocated once per socket, and at more than 1 KiB glibc serves it from its
    /// slow path (its per-thread cache stops at 1,032 bytes) at the allocation and
    /// again at the free; two smaller blocks cost less than one large one.
    socket: Box<WebSocketStream>,
    pub(crate) ctx: Doorman,
    pub(crate) registration: Registration,
    close_rx: oneshot::Receiver<Close>,
    /// The peer sent its Close (or its stream ended): tungstenite has queued the
    /// reply, and a Close of our own would only be refused.
    peer_closed: bool,
    /// Tells the connection, once the reply is out, that the peer closed first.
    close_note: Option<CloseNote>,
}

/// A bound socket's heartbeat, expiry and frame rate.
pub(crate) struct Beat {
    limiter: RateLimiter<NotKeyed, InMemoryState, DefaultClock>,
    heartbeat: Duration,
    expires_at: Instant,
    next_ping: Instant,
    /// One timer for the socket's life, for its heartbeats and its session's
    /// expiry alike, moved forward when it fires: not one armed and dropped per
    /// frame, nor one per purpose (each is an insertion into the timer wheel and
    /// a removal, under its lock).
    timer: Pin<Box<Sleep>>,
    /// The peer's silence, in whole heartbeat intervals: a frame resets it, each
    /// heartbeat that finds no frame since the last adds one, and the third
    /// closes the socket: 3 to 4 intervals after the last frame, as comparing
    /// its time would, without a clock reading per frame. The first write counts
    /// as heard.
    heard: bool,
    silent_intervals: u8,
}

impl Link {
    pub(crate) fn new(
        socket: WebSocketStream,
        ctx: Doorman,
        registration: Registration,
        close_rx: oneshot::Receiver<Close>,
        close_note: Option<CloseNote>,
    ) -> Self {
        Self {
            socket: Box::new(socket),
            ctx,
            registration,
            close_rx,
            peer_closed: false,
            close_note,
        }
    }

    /// Waits for the `auth` frame, then binds the socket to its session (with
    /// `outbox` for doorman's frames, if it takes them); anything else closes the
    /// socket.
    pub(crate) async fn pending(
        &mut self,
        outbox: Option<&Outbox>,
    ) -> Result<(Identity, SessionEnds), Close> {
        let deadline = Instant::now() + self.ctx.ws.auth_timeout;
        // Control frames before `auth` count too: a stranger's socket must not make
        // the server answer pings for the whole pending window.
        let mut control_frames = 0;
        loop {
            tokio::select! {
                biased;
                close = &mut self.close_rx => return Err(close.unwrap_or(Close::SHUTDOWN)),
                _ = sleep_until(deadline) => return Err(Close::AUTH_TIMEOUT),
                msg = self.socket.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        return match ClientFrame::parse(&text) {
                            // Boxed, like every await that may reach the database:
                            // the socket's future is held for its whole life, and
                            // inline it would be as large as its largest await.
                            Ok(ClientFrame::Auth { token }) => {
                                let ends = self.ctx.auth.session_ends();
                                let identity = Box::pin(self.ctx.auth_source.resolve_message(&token))
                                    .await
                                    .map_err(|e| {
                                        log_unavailable(&e);
                                        Close::auth_failed(&e)
                                    })?;
                                // Bound now, as a socket authenticated at its
                                // handshake was bound there.
                                self.ctx.registry.bind(
                                    self.registration.id,
                                    Binding::of(&identity, outbox.cloned()),
                                )?;
                                Ok((identity, ends))
                            }
                            _ => Err(Close::BAD_REQUEST),
                        };
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        control_frames += 1;
                        if control_frames > MAX_PENDING_CONTROL_FRAMES {
                            tracing::warn!(security_event = "rate_limited", "pending socket flooding");
                            return Err(Close::RATE_LIMITED);
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        self.peer_closed = true;
                        return Err(Close::NORMAL);
                    }
                    Some(Ok(Message::Binary(_))) => return Err(Close::BAD_REQUEST),
                    Some(Err(e)) => return Err(close_for_read_error(&e)),
                },
            }
        }
    }

    /// Admits a socket bound to `identity`'s session (at its handshake, or by
    /// [`Self::pending`]) before its first write. `ends`: the mark of session ends
    /// read before the identity was checked.
    pub(crate) async fn admit(
        &mut self,
        identity: &Identity,
        ends: SessionEnds,
    ) -> Result<(), Close> {
        // A revocation between the credential check and the bind found no socket to
        // close. Every end is recorded before it is announced, and the mark moves
        // with each record: unchanged since before the check, no session ended in
        // between, and any end from now on finds this socket bound. Otherwise the
        // session is asked once more, now, which leaves no gap either.
        // Usually answered by the session cache the credential check just filled;
        // if it has to ask a database that is down, the socket closes with 1013 and
        // the client retries: it was never welcomed, so nothing it holds is lost.
        if self.ctx.auth.session_ends() != ends {
            match Box::pin(self.ctx.auth.session_active(identity.session_id)).await {
                Ok(_) => {}
                Err(Error::Auth(e)) => return Err(Close::session_ended(e)),
                Err(e) => {
                    log_unavailable(&e);
                    return Err(Close::auth_failed(&e));
                }
            }
        }
        // A bound socket may have been closed already (its session revoked, the
        // server draining), before its task ran or during the re-check: no first
        // write then.
        match self.close_rx.try_recv() {
            Ok(close) => return Err(close),
            Err(oneshot::error::TryRecvError::Closed) => return Err(Close::SHUTDOWN),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        tracing::info!(user_id = %identity.user_id, session_id = %identity.session_id, source = identity.source.as_str(), "socket authenticated");
        Ok(())
    }

    /// The heartbeat, expiry and rate of a socket admitted for `identity`, from now.
    pub(crate) fn beat(&self, identity: &Identity) -> Beat {
        let settings = &self.ctx.ws;
        let rate = settings.messages_per_second;
        let burst = NonZeroU32::new(rate.get().saturating_mul(2)).unwrap_or(rate);
        let limiter = RateLimiter::direct_with_clock(
            Quota::per_second(rate).allow_burst(burst),
            settings.clock.clone(),
        );
        let heartbeat = settings.heartbeat;
        let now = Instant::now();
        let expires_at = now + until(identity.session_expires_at);
        // Heartbeats at `heartbeat` intervals from now on, as `tokio::time::interval`
        // would tick (a late one does not move the next).
        let next_ping = now + heartbeat;
        Beat {
            limiter,
            heartbeat,
            expires_at,
            next_ping,
            timer: Box::pin(sleep_until(next_ping.min(expires_at))),
            heard: true,
            silent_intervals: 0,
        }
    }

    /// The next thing to act on: a client's frame, a queued frame, or the end.
    pub(crate) async fn next(
        &mut self,
        beat: &mut Beat,
        inbox: &mut mpsc::Receiver<Outgoing>,
    ) -> Event {
        loop {
            // Biased: an ended session or a shutdown wins over pending traffic.
            tokio::select! {
                biased;
                close = &mut self.close_rx => return Event::End(close.unwrap_or(Close::SHUTDOWN)),
                () = &mut beat.timer => {
                    let now = Instant::now();
                    if now >= beat.expires_at {
                        return Event::End(Close::SESSION_EXPIRED);
                    }
                    if now >= beat.next_ping {
                        beat.silent_intervals = if beat.heard { 0 } else { beat.silent_intervals + 1 };
                        beat.heard = false;
                        if beat.silent_intervals >= 3 {
                            return Event::End(Close::HEARTBEAT_TIMEOUT);
                        }
                        if self.send_message(Message::Ping(Vec::new())).await.is_err() {
                            return Event::End(Close::NORMAL);
                        }
                        beat.next_ping += beat.heartbeat;
                    }
                    beat.timer.as_mut().reset(beat.next_ping.min(beat.expires_at));
                }
                Some(out) = inbox.recv() => return Event::Queued(out),
                msg = self.socket.next() => {
                    beat.heard = true;
                    // Every frame counts against the rate: text, binary, pings and
                    // unsolicited pongs alike (a pong flood costs as much to read).
                    if matches!(msg, Some(Ok(_))) && beat.limiter.check().is_err() {
                        tracing::warn!(security_event = "rate_limited", "socket flooding");
                        return Event::End(Close::RATE_LIMITED);
                    }
                    match msg {
                        Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return Event::Frame(m),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => {
                            self.peer_closed = true;
                            return Event::End(Close::NORMAL);
                        }
                        Some(Err(e)) => return Event::End(close_for_read_error(&e)),
                    }
                }
            }
        }
    }

    /// Sends, giving up after [`WRITE_TIMEOUT`]: a peer that stopped reading must not
    /// park this task where revocation, expiry and heartbeats cannot reach it.
    ///
    /// A plain function returning a future, not an `async fn`: each `async fn`
    /// layer kept its arguments beside its callee's future, and the largest of
    /// these chains is part of every socket's future for its whole life.
    pub(crate) fn send_message(
        &mut self,
        message: Message,
    ) -> impl Future<Output = Result<(), ()>> + '_ {
        within(WRITE_TIMEOUT, self.socket.send(message))
            .map(|sent| sent.and_then(|sent| sent.map_err(|_| ())))
    }

    /// Closes the socket with `close` (logged unless it is the everyday 1000).
    pub(crate) async fn finish(&mut self, close: Close) {
        // Not the everyday close a client asks for: a line per socket for nothing.
        if close != Close::NORMAL {
            tracing::info!(code = close.code, reason = close.reason, "closing socket");
        }
        // The peer may be gone already; a failed close is nothing to report.
        let _ = within(Duration::from_secs(2), async {
            // When the peer closed first, tungstenite has queued the reply itself
            // and `close` below sends it; a Close of ours would be refused (at the
            // cost of an error built and formatted for nothing).
            if !self.peer_closed {
                let frame =
                    Message::Close(Some((CloseCode::from(close.code), close.reason.to_owned())));
                if self.socket.send(frame).await.is_ok() {
                    self.drop_unread();
                }
            }
            let _ = self.socket.close().await;
        })
        .await;
        // Its connection then closes without lingering: nothing more will come.
        if self.peer_closed
            && let Some(note) = &self.close_note
        {
            note.peer_closed();
        }
    }

    /// Reads and drops what the peer has already sent, without waiting for more.
    /// Closing with unread bytes makes the kernel end the connection with a reset,
    /// which can destroy the Close frame (and its code) before the peer reads it:
    /// a client that sent a burst of pings would see a reset instead of 4429.
    /// What arrives later (a flood still being written, the rest of a message over
    /// the limit, which the frame parser will not read) is drained below the
    /// socket, by the lingering close of doorman's connection guard
    /// (`http::conn_guard`), once this socket is dropped: not waiting here keeps
    /// a closed socket from holding its place among its user's sockets. Bounded twice: the
    /// connection's byte budget makes a read wait once it is spent (twice the
    /// largest message), which ends this loop, and so does a frame count, for
    /// budgets of tiny frames.
    fn drop_unread(&mut self) {
        for _ in 0..MAX_UNREAD_FRAMES_AT_CLOSE {
            // Stops at the first read that would wait, at the end, or at the peer's Close.
            let Some(Some(Ok(msg))) = self.socket.next().now_or_never() else {
                return;
            };
            if matches!(msg, Message::Close(_)) {
                return;
            }
        }
    }
}

/// `future`'s output, or `Err` once it has waited for `limit`: `tokio::time::timeout`
/// without its cost when the future is ready at once, as a write to a socket
/// almost always is (a timeout reads the clock and builds a timer entry first).
/// The limit runs from the first poll that finds the future waiting; the timer is
/// boxed, made then: inline it would sit in every socket's future for its whole
/// life, to serve the rare write that waits.
fn within<F: Future>(limit: Duration, future: F) -> Within<F> {
    Within {
        future,
        limit,
        timer: None,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`within`].
    struct Within<F> {
        #[pin]
        future: F,
        limit: Duration,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let limit = *this.limit;
        let timer = this.timer.get_or_insert_with(|| Box::pin(sleep(limit)));
        timer.as_mut().poll(cx).map(|()| Err(()))
    }
}

/// The time from now until `at`, zero if it has passed: through the system
/// clock's count of nanoseconds (the clock the auth core judges sessions by), not a
/// calendar date for now (`time` makes one from the clock at a few hundred
/// instructions).
fn until(at: OffsetDateTime) -> Duration {
    let left = at.unix_timestamp_nanos() - crate::auth::unix_nanos();
    if left <= 0 {
        return Duration::ZERO;
    }
    // Past 584 years: as good as never, and still far from `Instant`'s limit.
    Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX))
}

/// Logs why a socket could not be authenticated when it is the server's fault (the
/// cause, never the token).
pub(crate) fn log_unavailable(e: &Error) {
    match e {
        Error::DatabaseUnavailable(cause) => {
            tracing::warn!(cause = %cause, "socket not authenticated: database unavailable");
        }
        Error::Database(cause) => {
            tracing::error!(cause = %cause, "socket not authenticated: database error");
        }
        Error::Internal { context, .. } => {
            let cause = crate::auth::Causes(e);
            tracing::error!(detail = %context, cause = %cause, "socket not authenticated: internal error");
        }
        _ => {}
    }
}

/// The close for a frame the WebSocket layer could not read. poem hands tungstenite's
/// error over as an `io::Error` that keeps only its text, so the text's prefix is
/// what tells the cases apart (pinned against the tungstenite poem links by the unit
/// test below, and end to end by `ws_frames`). A peer that vanished without a close
/// frame, or a failed read, gets the plain 1000: nobody is left to read a code, and
/// `finish` logs no line for it. The text is never logged: it quotes the client's
/// bytes.
fn close_for_read_error(e: &std::io::Error) -> Close {
    let text = e.to_string();
    if text.contains("Message too long") {
        Close::TOO_BIG
    } else if text.starts_with("UTF-8 encoding error") {
        Close::INVALID_UTF8
    } else if text.starts_with("WebSocket protocol error")
        && !text.contains("without closing handshake")
    {
        Close::PROTOCOL_ERROR
    } else {
        Close::NORMAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    #[test]
    fn read_errors_close_with_the_codes_rfc_6455_names() {
        use tungstenite::{
            error::{CapacityError, Error as WsError, ProtocolError},
            protocol::frame::coding::Data,
        };
        // What poem's `tungstenite_error_to_io_error` does.
        let as_poem_does = |e: WsError| match e {
            WsError::Io(e) => e,
            e => std::io::Error::other(e.to_string()),
        };
        let too_long = CapacityError::MessageTooLong {
            size: 70_000,
            max_size: 65_536,
        };
        let protocol = |e: ProtocolError| (WsError::Protocol(e), Close::PROTOCOL_ERROR);
        let cases = [
            (WsError::Utf8("\u{fffd}".into()), Close::INVALID_UTF8),
            (WsError::Capacity(too_long), Close::TOO_BIG),
            protocol(ProtocolError::NonZeroReservedBits),
            protocol(ProtocolError::UnmaskedFrameFromClient),
            protocol(ProtocolError::InvalidOpcode(3)),
            protocol(ProtocolError::FragmentedControlFrame),
            protocol(ProtocolError::ControlFrameTooBig),
            protocol(ProtocolError::UnexpectedContinueFrame),
            protocol(ProtocolError::ExpectedFragment(Data::Text)),
            protocol(ProtocolError::InvalidCloseSequence),
            // The peer is gone: 1000, and no line in the log for each dropped socket.
            (
                WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                Close::NORMAL,
            ),
            (
                WsError::Io(std::io::ErrorKind::ConnectionReset.into()),
                Close::NORMAL,
            ),
        ];
        for (error, close) in cases {
            let text = error.to_string();
            assert_eq!(close_for_read_error(&as_poem_does(error)), close, "{text}");
        }
    }

    #[test]
    fn until_counts_from_now_and_clamps_both_ends() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(until(now - time::Duration::hours(1)), Duration::ZERO);
        let left = until(now + time::Duration::hours(1));
        assert!(
            left <= Duration::from_secs(3600) && left > Duration::from_secs(3590),
            "{left:?}"
        );
        let far = until(time::PrimitiveDateTime::MAX.assume_utc());
        assert_eq!(far, Duration::from_nanos(u64::MAX));
        // The socket's timer takes it.
        let _ = Instant::now() + far;
    }
}
