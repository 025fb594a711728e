//! Guards on each accepted TCP connection, below HTTP: a deadline on every request
//! head (`DOORMAN_HEADER_TIMEOUT_SECONDS`), the idle timeout of keep-alive
//! connections (`DOORMAN_IDLE_TIMEOUT_SECONDS`), a cap on concurrent connections per
//! client IP (`DOORMAN_MAX_CONNECTIONS_PER_IP`), HTTP/2 prior knowledge refused,
//! and, once a connection is a WebSocket, its bytes read within a budget.
//!
//! Why an `Acceptor` wrapping the socket rather than our own hyper accept loop with
//! `http1::Builder::header_read_timeout`: poem's `Server` gives us graceful shutdown,
//! HTTP/2 and WebSocket upgrades, and a second accept loop would have to re-create
//! all of them. hyper's own header timeout (1.12) also runs while a keep-alive
//! connection sits idle waiting for its next request, so the idle timeout would
//! shrink to the header timeout. Watching the bytes instead lets the deadline start
//! at a request's first byte and end at the blank line that closes its head.
//!
//! Why the idle timeout is here and not poem's (`Server::idle_timeout`): poem's
//! spawns a watcher task per connection and wakes it on every read and every write,
//! each wake re-arming a timer; on a WebSocket that continues for every frame.
//! Measured (docs/benchmarks.md), that was a visible share of a request's and of a
//! ping's cost. Here the connection notes the time of its last bytes, and one timer,
//! polled only while the connection waits (for its next request, or on a stalled
//! write), is moved forward when it fires early: one timer operation per idle
//! period instead of several per request.
//!
//! What the byte watcher ([`HeadWatch`]) follows, per HTTP/1 connection:
//! - reads: idle → (first byte) head in progress, deadline running → (blank line)
//!   answering, no deadline → (final response written) idle again. Bytes read while
//!   answering (a body, a pipelined request) are not examined: request bodies have
//!   their own deadline in [`crate::http::bounds`].
//! - writes: the status line of each response. `1xx` interim answers (`100 Continue`)
//!   do not end a request; `101` means the connection became a WebSocket (so does
//!   the WebSocket route's [`UpgradeMarks`], which pipelining cannot fool): no
//!   more head deadline, the per-IP permit goes back, and reads follow the byte
//!   budget ([`ReadRate`]); any other status ends the request.
//! - a connection that opens with the HTTP/2 preface (`PRI * HTTP/2.0`) is closed
//!   before the HTTP/2 server sees a byte of it (see [`HeadWatch::is_http2`]).
//!
//! One more duty belongs here because only the connection sees its writes: when the
//! route upgrades a socket that writes its first frame at once (an authenticated
//! one, whose `welcome` follows), the `101` is held back and leaves in the same
//! write as that frame: one system call and one TCP segment fewer per handshake
//! (see [`UpgradeMarks::mark`]).
//!
//! Limits of the watcher, by design: it does not parse bodies, so a client that
//! pipelines requests behind a response still being written can put it out of step
//! with the real requests; the worst outcomes are a deadline on the wrong bytes (the
//! client's own connection closed) or one connection of that client without a head
//! deadline, which the per-IP cap still bounds.

use std::{
    collections::{HashMap, hash_map::Entry},
    future::Future,
    io,
    io::IoSlice,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU8, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use poem::{
    http::uri::Scheme,
    listener::{Acceptor, TcpAcceptor},
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};

use crate::http::client_ip;

/// How long accepting pauses after a failed accept (typically `EMFILE`).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts TCP connections, closing at once those over the per-IP cap, and hands
/// out each admitted one wrapped in a `GuardedStream`.
pub struct GuardedAcceptor {
    inner: TcpAcceptor,
    header_timeout: Duration,
    idle_timeout: Duration,
    counts: ConnCounts,
    upgraded_read: ReadRate,
    upgrades: UpgradeMarks,
    /// The last accept failed: one warning per episode, not one per pause.
    accept_failing: bool,
}

impl GuardedAcceptor {
    /// Guards connections from `inner`: request heads must arrive within
    /// `header_timeout` of their first byte, a connection that moves no bytes for
    /// `idle_timeout` while it has no request in progress (or while a write is
    /// stalled) is closed, and one client IP (an IPv6 client by its /64) may hold at
    /// most `max_per_ip` connections at once.
    /// Once a connection has upgraded to a WebSocket, what it sends is read at most
    /// at `upgraded_read`.
    ///
    /// `upgrades` is shared with the WebSocket route, which marks the connections it
    /// upgrades (see `UpgradeMarks`).
    pub fn new(
        inner: TcpAcceptor,
        header_timeout: Duration,
        idle_timeout: Duration,
        max_per_ip: usize,
        upgraded_read: ReadRate,
        upgrades: UpgradeMarks,
    ) -> Self {
        Self {
            inner,
            header_timeout,
            idle_timeout,
            counts: ConnCounts::new(max_per_ip),
            upgraded_read,
            upgrades,
            accept_failing: false,
        }
    }
}

impl Acceptor for GuardedAcceptor {
    type Io = GuardedStream<TcpStream>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let (stream, local, remote, scheme) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors (or another transient failure): poem's
                    // accept loop retries at once, which spins a core while the
                    // condition lasts. Pause instead; open connections close and
                    // free descriptors in the meantime.
                    if self.accept_failing {
                        tracing::debug!(error = %e, "accept failed again; pausing");
                    } else {
                        self.accept_failing = true;
                        tracing::warn!(error = %e, "accept failed; pausing 100 ms before each retry until it succeeds");
                    }
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    return Err(e);
                }
            };
            if self.accept_failing {
                self.accept_failing = false;
                tracing::info!("accepting connections again");
            }
            // The socket peer, never a forwarded address: nothing has been read yet.
            // Behind a proxy every connection comes from the proxy's address.
            let (permit, mark) = match remote.as_socket_addr() {
                Some(peer) => match self.counts.admit(peer.ip()) {
                    Some(permit) => (Some(permit), Some(self.upgrades.register(*peer))),
                    None => continue, // dropping `stream` closes it
                },
                None => (None, None),
            };
            let mut io = GuardedStream::new(
                stream,
                self.header_timeout,
                self.idle_timeout,
                permit,
                self.upgraded_read,
            );
            io.mark = mark;
            return Ok((io, local, remote, scheme));
        }
    }
}

/// Open connections per client key, shared by the acceptor and the permits of the
/// connections it admitted. A key is removed when its count reaches zero, so memory
/// follows the number of open connections.
#[derive(Clone)]
pub struct ConnCounts {
    inner: Arc<Mutex<HashMap<IpAddr, Slot>>>,
    max: usize,
}

#[derive(Default)]
struct Slot {
    open: usize,
    /// A refusal was logged since the key was last under its cap: one line per
    /// episode, not one per refused connection.
    warned: bool,
}

impl ConnCounts {
    /// Counts allowing `max` connections per key.
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::default(),
            max,
        }
    }

    /// A permit for one more connection from `ip`, or `None` when it holds `max`.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnPermit> {
        let key = client_ip::limit_key(client_ip::canonical(ip));
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = map.entry(key).or_default();
        if slot.open >= self.max {
            if !slot.warned {
                slot.warned = true;
                tracing::warn!(ip = %key, max = self.max, "connection cap reached; refusing further connections");
            }
            return None;
        }
        slot.open += 1;
        Some(ConnPermit {
            counts: self.clone(),
            key,
        })
    }

    /// Open connections counted for `ip`.
    #[cfg(test)]
    pub fn open(&self, ip: IpAddr) -> usize {
        let key = client_ip::limit_key(client_ip::canonical(ip));
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&key).map_or(0, |s| s.open)
    }

    /// Keys with at least one open connection.
    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn release(&self, key: IpAddr) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Through the entry: the address is hashed once, not again for the removal.
        if let Entry::Occupied(mut slot) = map.entry(key) {
            let s = slot.get_mut();
            s.open = s.open.saturating_sub(1);
            s.warned = false;
            if s.open == 0 {
                slot.remove();
            }
        }
    }
}

/// One counted connection; dropping it gives the slot back.
pub struct ConnPermit {
    counts: ConnCounts,
    key: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.counts.release(self.key);
    }
}

/// A connection whose reads fail with [`io::ErrorKind::TimedOut`] when a request
/// head is still incomplete `timeout` after its first byte. Holds the connection's
/// per-IP permit until it closes or becomes a WebSocket (sockets count under their
/// own caps); a WebSocket's reads follow the byte budget.
pub struct GuardedStream<S> {
    inner: S,
    watch: HeadWatch,
    timeout: Duration,
    /// When the pending head's time is up (its first byte + `timeout`); `None`
    /// while no head is pending.
    head_due: Option<Instant>,
    /// The timer of `head_due`, made only once a read has to wait for more of the
    /// head. Most heads arrive whole, or in pieces that follow one another at once
    /// (hyper's HTTP/2 detection reads a new connection's first 24 bytes alone):
    /// a timer armed and cancelled for each of those cost every new connection a
    /// timer-wheel insertion and removal, under the wheel's lock. Dropped rather
    /// than left armed: a polled timer holds the waker of the task that polled it,
    /// and after an upgrade that is hyper's finished connection task with its
    /// buffers — kept alive until the timer fired, 10 s later, it cost every new
    /// socket about 6 KiB.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Once a WebSocket: the timer of a pause of the read budget.
    pause: Option<Pin<Box<Sleep>>>,
    idle: IdleTimer,
    permit: Option<ConnPermit>,
    budget: ReadBudget,
    /// Set by the WebSocket route when it upgrades this connection.
    mark: Option<UpgradeMark>,
    /// A `101` not yet written: it leaves with the socket's first write (see
    /// [`FRAME_FOLLOWS`]), or before the first read, or at shutdown.
    held: Option<Box<[u8]>>,
    /// A WebSocket, its HTTP state dropped: latched by [`Self::sync`], so that a
    /// socket's every read and write does not ask the watcher and the mark again.
    websocket: bool,
}

/// The connections the WebSocket route is upgrading, by peer address. The byte
/// watcher sees a `101` only when it kept step with the requests, and a client that
/// pipelines a request before its upgrade puts it out of step; so the route itself
/// says "this connection is becoming a WebSocket", and the stream reads within the
/// byte budget from then on, whatever the watcher made of it.
#[derive(Clone, Default)]
pub struct UpgradeMarks {
    inner: Arc<Mutex<HashMap<SocketAddr, Arc<AtomicU8>>>>,
}

/// An [`UpgradeMark`]'s states.
const NOT_MARKED: u8 = 0;
const UPGRADING: u8 = 1;
/// Upgrading, and the socket writes a frame as soon as it starts: the `101` waits
/// for it and both leave in one write.
const FRAME_FOLLOWS: u8 = 2;

impl UpgradeMarks {
    fn register(&self, peer: SocketAddr) -> UpgradeMark {
        let flag = Arc::new(AtomicU8::new(NOT_MARKED));
        self.lock().insert(peer, flag.clone());
        UpgradeMark {
            marks: self.clone(),
            peer,
            flag,
        }
    }

    /// Marks the connection from `peer` as becoming a WebSocket. With
    /// `frame_follows`, the socket promises to write a frame (or close) as soon as
    /// its task starts, without waiting for the client: the `101` is then held back
    /// and sent in the same write as that frame.
    pub fn mark(&self, peer: SocketAddr, frame_follows: bool) {
        if let Some(flag) = self.lock().get(&peer) {
            flag.store(
                if frame_follows {
                    FRAME_FOLLOWS
                } else {
                    UPGRADING
                },
                Ordering::Relaxed,
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<AtomicU8>>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's entry in [`UpgradeMarks`], removed when the connection closes.
struct UpgradeMark {
    marks: UpgradeMarks,
    peer: SocketAddr,
    flag: Arc<AtomicU8>,
}

impl UpgradeMark {
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed) != NOT_MARKED
    }

    /// Whether a `101` should wait for the socket's first frame; true once.
    fn take_frame_follows(&self) -> bool {
        self.flag
            .compare_exchange(
                FRAME_FOLLOWS,
                UPGRADING,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

impl Drop for UpgradeMark {
    fn drop(&mut self) {
        let mut map = self.marks.lock();
        // A new connection may reuse the address: remove only our own entry (found
        // through the entry, so the address is hashed once).
        if let Entry::Occupied(mark) = map.entry(self.peer)
            && Arc::ptr_eq(mark.get(), &self.flag)
        {
            mark.remove();
        }
    }
}

/// How fast an upgraded connection's bytes are read: `per_second` sustained, up to
/// `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct ReadRate {
    pub per_second: u64,
    pub burst: u64,
}

/// A token bucket of bytes that may run into debt: a read takes what it got, and
/// the next read waits until the debt is repaid. Why bytes: tungstenite assembles
/// fragmented messages below the socket's message count, so a client streaming
/// empty continuation frames (tens of millions a second) never sends a "message"
/// and escapes the per-socket message rate; every frame costs bytes, though.
#[derive(Debug)]
struct ReadBudget {
    rate: ReadRate,
    /// Exact as of `last`: refilled (and capped at `burst`) up to then.
    tokens: f64,
    last: Instant,
}

impl ReadBudget {
    fn new(rate: ReadRate, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.burst as f64,
            last: now,
        }
    }

    /// When the debt will be repaid, if there is one. Without a debt the clock is
    /// not read: a refill only adds, and one done later, capped then, gives what
    /// one done now would (nothing is charged in between). So a read that finds
    /// nothing to read costs no clock reading.
    fn wait_until(&mut self, now: impl FnOnce() -> Instant) -> Option<Instant> {
        if self.tokens >= 0.0 {
            return None;
        }
        let now = now();
        self.refill(now);
        (self.tokens < 0.0).then(|| now + Duration::from_secs_f64(-self.tokens / self.per_second()))
    }

    /// Takes `bytes`, read at `now`: refilled up to then first, so the cap applies
    /// where it would have.
    fn charge(&mut self, bytes: usize, now: Instant) {
        self.refill(now);
        self.tokens -= bytes as f64;
    }

    fn refill(&mut self, now: Instant) {
        self.tokens = (self.tokens + (now - self.last).as_secs_f64() * self.per_second())
            .min(self.rate.burst as f64);
        self.last = now;
    }

    fn per_second(&self) -> f64 {
        self.rate.per_second.max(1) as f64
    }
}

/// The idle timeout: when bytes last moved, and a timer that is moved forward only
/// when it fires before the connection has really been idle that long.
struct IdleTimer {
    timeout: Duration,
    last: Instant,
    /// Armed from the first wait on. Dropped (with the waker it holds) once the
    /// connection is a WebSocket, for the reason given at `deadline`.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    fn new(timeout: Duration, now: Instant) -> Self {
        Self {
            timeout,
            last: now,
            sleep: None,
        }
    }

    /// Bytes moved.
    fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// Ready once no bytes have moved for the timeout; registers the waker.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let due = self.last + self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        loop {
            ready!(sleep.as_mut().poll(cx));
            let due = self.last + self.timeout;
            if due <= Instant::now() {
                return Poll::Ready(());
            }
            sleep.as_mut().reset(due);
        }
    }

    /// An error for the IO call that found the connection idle: hyper closes it.
    fn closing(&self) -> io::Error {
        tracing::debug!(timeout = ?self.timeout, "connection idle; closing");
        io::Error::new(io::ErrorKind::TimedOut, "connection idle")
    }
}

impl<S> GuardedStream<S> {
    fn new(
        inner: S,
        timeout: Duration,
        idle: Duration,
        permit: Option<ConnPermit>,
        upgraded: ReadRate,
    ) -> Self {
        // One clock reading for both: each costs a call into the vDSO.
        let now = Instant::now();
        Self {
            inner,
            watch: HeadWatch::new(),
            timeout,
            head_due: None,
            deadline: None,
            pause: None,
            idle: IdleTimer::new(idle, now),
            permit,
            budget: ReadBudget::new(upgraded, now),
            mark: None,
            held: None,
            websocket: false,
        }
    }

    /// Whether the connection became a WebSocket: the watcher saw the `101`, or the
    /// WebSocket route marked it (the watcher may be out of step with pipelined
    /// requests).
    fn is_websocket(&self) -> bool {
        self.websocket || self.watch.is_off() || self.mark.as_ref().is_some_and(UpgradeMark::is_set)
    }

    /// Starts the deadline when a head has begun and drops it when none is pending;
    /// once a WebSocket, there is no head deadline and the permit goes back.
    fn sync(&mut self) {
        if self.websocket {
            return;
        }
        if self.is_websocket() {
            // For good: neither the watcher's verdict nor the mark is ever undone.
            self.websocket = true;
            self.head_due = None;
            self.deadline = None;
            self.idle.sleep = None;
            self.permit = None;
            return;
        }
        if !self.watch.head_pending() {
            self.head_due = None;
            self.deadline = None;
        } else if self.head_due.is_none() {
            self.head_due = Some(Instant::now() + self.timeout);
        }
    }

    /// The error of a head not complete by its deadline.
    fn head_too_late(&self) -> io::Error {
        tracing::debug!(timeout = ?self.timeout, "request head incomplete at its deadline; closing");
        io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A socket that reads before its first write waits for the client, who
        // waits for the `101`.
        if this.held.is_some() {
            ready!(this.poll_release(cx))?;
        }
        if this.is_websocket() {
            // Whatever the head watcher thought: no deadline, no permit.
            this.sync();
            // A WebSocket now: read within the byte budget.
            if let Some(until) = this.budget.wait_until(Instant::now) {
                let pause = this
                    .pause
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                pause.as_mut().reset(until);
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let read = buf.filled().len() - before;
            if read > 0 {
                this.budget.charge(read, Instant::now());
            }
            return Poll::Ready(Ok(()));
        }
        // Polled before the read so that a client sending nothing still wakes us.
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(this.head_too_late()));
        }
        let before = buf.filled().len();
        if Pin::new(&mut this.inner).poll_read(cx, buf)?.is_pending() {
            if let Some(due) = this.head_due {
                // Inside a head, and the rest has not come: now it needs the timer.
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(this.head_too_late()));
                }
                return Poll::Pending;
            }
            // Waiting for a request (not inside one: the head has its deadline, and
            // a request being answered is not idle).
            if this.watch.is_idle() && this.idle.poll_expired(cx).is_ready() {
                return Poll::Ready(Err(this.idle.closing()));
            }
            return Poll::Pending;
        }
        // A head whose pieces never keep a read waiting still has its deadline.
        if this.deadline.is_none() && this.head_due.is_some_and(|due| due <= Instant::now()) {
            return Poll::Ready(Err(this.head_too_late()));
        }
        if buf.filled().len() > before {
            this.idle.touch();
        }
        this.watch.on_read(&buf.filled()[before..]);
        if this.watch.is_http2() {
            // Not one byte of it reaches the HTTP/2 server.
            buf.set_filled(before);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP/2 prior knowledge is not served",
            )));
        }
        this.sync();
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> GuardedStream<S> {
    /// Once the last response of the connection is written, hyper waits for the
    /// next request on the read interest it registered while answering, without
    /// reading again: the idle timer is armed here, with this task's waker.
    fn arm_idle(&mut self, cx: &mut Context<'_>) {
        if self.watch.is_idle() {
            // Just touched: pending, and now it wakes this task when due.
            let _ = self.idle.poll_expired(cx);
        }
    }

    /// A write; one that cannot proceed (the client reads nothing) for the idle
    /// timeout fails, and the connection closes. Not on a WebSocket: its heartbeat
    /// and outbox bound it.
    fn poll_stalled(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let written = write(Pin::new(&mut self.inner), cx);
        if written.is_pending() && !self.is_websocket() && self.idle.poll_expired(cx).is_ready() {
            return Poll::Ready(Err(self.idle.closing()));
        }
        written
    }
}

impl<S: AsyncWrite + Unpin> GuardedStream<S> {
    /// Holds `bufs` back when they are the `101` of an upgrade whose socket writes
    /// at once ([`FRAME_FOLLOWS`]), and says they were written.
    ///
    /// Why: the `101` and the socket's first frame (the `welcome`) then leave in one
    /// system call and one TCP segment instead of two; on loopback the kernel's work
    /// for a segment (the sender's and the receiver's TCP path) is most of a
    /// handshake's cost.
    fn hold_101(&mut self, bufs: &[IoSlice<'_>]) -> Option<usize> {
        let first = bufs.iter().find(|b| !b.is_empty())?;
        if !first.starts_with(b"HTTP/1.1 101 ")
            || !self
                .mark
                .as_ref()
                .is_some_and(UpgradeMark::take_frame_follows)
        {
            return None;
        }
        let mut held = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
        for b in bufs {
            held.extend_from_slice(b);
        }
        let n = held.len();
        self.held = Some(held.into_boxed_slice());
        self.sync();
        Some(n)
    }

    /// Writes the held `101` out.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(held) = self.held.as_deref() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held = (n < held.len()).then(|| held[n..].into());
        }
        Poll::Ready(Ok(()))
    }

    /// The write of `bufs` when the held `101` decides it: the `101` held now, or
    /// written in front of `bufs`; `None` for an ordinary write.
    fn poll_write_101(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        if self.held.is_some() {
            return Some(self.poll_write_behind_held(cx, bufs));
        }
        self.hold_101(bufs).map(|n| Poll::Ready(Ok(n)))
    }

    /// A write of `bufs` with the held `101` in front, in one system call.
    fn poll_write_behind_held(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(held) = self.held.as_deref() {
            // A write may take less than it is offered: the first few buffers do.
            let mut iovs = [IoSlice::new(&[]); 5];
            let k = bufs.len().min(iovs.len() - 1);
            iovs[0] = IoSlice::new(held);
            iovs[1..=k].copy_from_slice(&bufs[..k]);
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &iovs[..=k]))?;
            match n.checked_sub(held.len()) {
                Some(0) => self.held = None,
                Some(rest) => {
                    self.held = None;
                    return Poll::Ready(Ok(rest));
                }
                None if n == 0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                None => {
                    self.held = Some(held[n..].into());
                    ready!(self.poll_release(cx))?;
                }
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(done) = this.poll_write_101(cx, &[IoSlice::new(buf)]) {
            return done;
        }
        let n = ready!(this.poll_stalled(cx, |inner, cx| inner.poll_write(cx, buf)))?;
        if !this.is_websocket() {
            this.idle.touch();
            this.watch.on_write(&buf[..n.min(buf.len())]);
            this.arm_idle(cx);
        }
        // Also for a connection the route marked: its `101` gives the permit back.
        this.sync();
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(done) = this.poll_write_101(cx, bufs) {
            return done;
        }
        let n = ready!(this.poll_stalled(cx, |inner, cx| inner.poll_write_vectored(cx, bufs)))?;
        if !this.is_websocket() {
            this.idle.touch();
            // Only the bytes the socket took: the rest will be offered again.
            let mut left = n;
            for b in bufs {
                if left == 0 {
                    break;
                }
                let take = left.min(b.len());
                this.watch.on_write(&b[..take]);
                left -= take;
            }
            this.arm_idle(cx);
        }
        this.sync();
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// `HTTP/1.1 200`: enough of a status line to know its code.
const STATUS_PREFIX: usize = 12;

/// Where the client is in sending requests, as far as the bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadPhase {
    /// No request in progress (`fresh`: nothing read on this connection yet).
    Idle { fresh: bool },
    /// The connection's first bytes, all matching the HTTP/2 preface so far.
    Preface { matched: usize },
    /// A head in progress. `content`: a byte other than CR/LF seen (blank lines
    /// before a request line are skipped by the parser, so they end nothing);
    /// `eol`: 0 inside a line, 1 after LF, 2 after LF CR.
    Head { content: bool, eol: u8 },
    /// The head is complete; the response has not started.
    Answering,
    /// Upgraded to a WebSocket: not watched.
    Off,
    /// The client opened with the HTTP/2 preface: refused (see [`HeadWatch::is_http2`]).
    Http2,
}

/// Where the server is in writing the current response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WritePhase {
    /// Expecting a status line; its first bytes so far.
    Status {
        got: [u8; STATUS_PREFIX],
        len: usize,
    },
    /// Inside a `1xx` interim head (no body): scanning for its blank line.
    Interim { eol: u8 },
    /// Inside a final response, or nothing expected until the next head.
    Rest,
}

const EXPECT_STATUS: WritePhase = WritePhase::Status {
    got: [0; STATUS_PREFIX],
    len: 0,
};

/// Whether a head ends in `bytes`, read inside a head past its first content byte
/// with `eol` the line-end state before them (0 inside a line, 1 after LF, 2 after
/// LF CR); if not, the state after the last byte. A line ends at LF (CR LF or a
/// bare LF, as the parser accepts), and the head at a line that is empty or a lone
/// CR. Where it ends does not matter: what follows it in the same read (a body, a
/// pipelined request) is not examined.
///
/// This runs on every byte a client sends, and a request head is mostly one long
/// credential header. The usual read holds a whole head and ends with it: its last
/// bytes say so at once. Otherwise one vectorised search per line end.
fn head_ends(bytes: &[u8], mut eol: u8) -> Result<(), u8> {
    let mut i = 0;
    // What the last read left open: a line end, perhaps of the head.
    while eol != 0 {
        let Some(&b) = bytes.get(i) else {
            return Err(eol);
        };
        i += 1;
        eol = match (b, eol) {
            (b'\n', _) => return Ok(()),
            (b'\r', 1) => 2,
            _ => 0,
        };
    }
    let rest = &bytes[i..];
    if rest.ends_with(b"\n\n") || rest.ends_with(b"\n\r\n") {
        return Ok(());
    }
    for at in memchr::memchr_iter(b'\n', rest) {
        match &rest[at + 1..] {
            [b'\n', ..] | [b'\r', b'\n', ..] => return Ok(()),
            [] => return Err(1),
            [b'\r'] => return Err(2),
            _ => {}
        }
    }
    Err(0)
}

/// The byte-watching state machine behind [`GuardedStream`]: no IO, no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadWatch {
    read: ReadPhase,
    write: WritePhase,
    upgraded: bool,
}

impl HeadWatch {
    pub(crate) fn new() -> Self {
        Self {
            read: ReadPhase::Idle { fresh: true },
            write: EXPECT_STATUS,
            upgraded: false,
        }
    }

    /// Whether a request head has begun and not ended: the deadline runs.
    pub(crate) fn head_pending(&self) -> bool {
        matches!(
            self.read,
            ReadPhase::Preface { .. } | ReadPhase::Head { .. }
        )
    }

    /// Whether the connection became a WebSocket (a `101` was written).
    #[cfg(test)]
    pub(crate) fn upgraded(&self) -> bool {
        self.upgraded
    }

    /// Whether no request is in progress (none yet, or the last one answered).
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.read, ReadPhase::Idle { .. })
    }

    /// Whether the watcher has stood aside for good (upgraded).
    pub(crate) fn is_off(&self) -> bool {
        self.read == ReadPhase::Off
    }

    /// Whether the client opened with the HTTP/2 preface (h2c prior knowledge).
    /// doorman does not serve it: an HTTP/2 connection multiplexes unbounded
    /// streams past every per-connection bound here (one connection with 25,000
    /// stalled streams took a gigabyte), and a TLS proxy in front speaks HTTP/2 to
    /// browsers and HTTP/1.1 to doorman anyway.
    pub(crate) fn is_http2(&self) -> bool {
        self.read == ReadPhase::Http2
    }

    /// Bytes the client sent.
    pub(crate) fn on_read(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.read {
                ReadPhase::Off | ReadPhase::Http2 | ReadPhase::Answering => return,
                ReadPhase::Idle { fresh: true } => self.read = ReadPhase::Preface { matched: 0 },
                ReadPhase::Idle { fresh: false } => {
                    self.read = ReadPhase::Head {
                        content: false,
                        eol: 0,
                    }
                }
                ReadPhase::Preface { matched } => {
                    let take = (H2_PREFACE.len() - matched).min(bytes.len() - i);
                    if bytes[i..i + take] == H2_PREFACE[matched..matched + take] {
                        i += take;
                        self.read = if matched + take == H2_PREFACE.len() {
                            ReadPhase::Http2
                        } else {
                            ReadPhase::Preface {
                                matched: matched + take,
                            }
                        };
                    } else {
                        // HTTP/1 after all. The matched bytes hold no line end;
                        // scan on from the first byte that differed.
                        self.read = ReadPhase::Head {
                            content: matched > 0,
                            eol: 0,
                        };
                    }
                }
                ReadPhase::Head { content: true, eol } => match head_ends(&bytes[i..], eol) {
                    Ok(()) => {
                        self.write = EXPECT_STATUS;
                        self.read = ReadPhase::Answering;
                        return;
                    }
                    Err(eol) => {
                        self.read = ReadPhase::Head { content: true, eol };
                        return;
                    }
                },
                ReadPhase::Head { content: false, .. } => {
                    // Blank lines before a request line: skipped, they end nothing.
                    let b = bytes[i];
                    i += 1;
                    if b != b'\r' && b != b'\n' {
                        self.read = ReadPhase::Head {
                            content: true,
                            eol: 0,
                        };
                    }
                }
            }
        }
    }

    /// Bytes the server sent.
    pub(crate) fn on_write(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.write {
                WritePhase::Rest => return,
                WritePhase::Status { mut got, len } => {
                    let take = (STATUS_PREFIX - len).min(bytes.len() - i);
                    got[len..len + take].copy_from_slice(&bytes[i..i + take]);
                    i += take;
                    if len + take < STATUS_PREFIX {
                        self.write = WritePhase::Status {
                            got,
                            len: len + take,
                        };
                        return;
                    }
                    let http1 = got.starts_with(b"HTTP/1.");
                    match &got[9..] {
                        b"101" if http1 => {
                            self.upgraded = true;
                            self.read = ReadPhase::Off;
                            self.write = WritePhase::Rest;
                            return;
                        }
                        [b'1', _, _] if http1 => self.write = WritePhase::Interim { eol: 0 },
                        // A final status (or bytes we do not recognise): the request
                        // is answered. A head still arriving keeps its deadline.
                        _ => {
                            self.write = WritePhase::Rest;
                            if self.read == ReadPhase::Answering {
                                self.read = ReadPhase::Idle { fresh: false };
                            }
                            return;
                        }
                    }
                }
                WritePhase::Interim { eol } => {
                    let b = bytes[i];
                    i += 1;
                    self.write = match (b, eol) {
                        (b'\n', 1 | 2) => EXPECT_STATUS,
                        (b'\n', _) => WritePhase::Interim { eol: 1 },
                        (b'\r', 1) => WritePhase::Interim { eol: 2 },
                        _ => WritePhase::Interim { eol: 0 },
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(w: &mut HeadWatch, chunks: &[&[u8]]) {
        for c in chunks {
            w.on_read(c);
        }
    }

    #[test]
    fn the_read_budget_caps_where_it_would_have_and_reads_the_clock_only_in_debt() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let rate = ReadRate {
            per_second: 100,
            burst: 1_000,
        };
        let mut budget = ReadBudget::new(rate, t0);
        // Not in debt: no clock reading.
        assert_eq!(budget.wait_until(|| unreachable!()), None);
        budget.charge(1_000, at(1));
        assert_eq!(budget.wait_until(|| unreachable!()), None);
        // A long silence refills up to the burst, no more: 1,000 then 500 leaves a
        // debt of 500, five seconds at 100 bytes a second.
        budget.charge(1_000, at(101));
        budget.charge(500, at(101));
        assert_eq!(budget.wait_until(|| at(101)), Some(at(106)));
        // Paying off in part shortens the wait, and nothing is owed at its end.
        assert_eq!(budget.wait_until(|| at(103)), Some(at(106)));
        assert_eq!(budget.wait_until(|| at(106)), None);
        assert_eq!(budget.wait_until(|| unreachable!()), None);
    }

    #[test]
    fn a_head_is_pending_from_its_first_byte_to_its_blank_line() {
        let mut w = HeadWatch::new();
        assert!(!w.head_pending(), "no deadline before the first byte");
        w.on_read(b"G");
        assert!(w.head_pending());
        w.on_read(b"ET / HTTP/1.1\r\nHost: x\r\n");
        assert!(w.head_pending());
        w.on_read(b"\r");
        assert!(w.head_pending());
        w.on_read(b"\n");
        assert!(!w.head_pending());
    }

    #[test]
    fn the_blank_line_is_found_across_reads_and_with_bare_line_feeds() {
        for chunks in [
            &[&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]][..],
            &[b"GET / HTTP/1.1\r", b"\nHost: x\r", b"\n\r", b"\n"],
            &[b"GET / HTTP/1.1\nHost: x\n\n"],
            &[b"GET / HTTP/1.1\r\nHost: x\n", b"\r\n"],
        ] {
            let mut w = HeadWatch::new();
            read_all(&mut w, chunks);
            assert!(!w.head_pending(), "{chunks:?}");
        }
    }

    /// The rule [`head_ends`] implements, one byte at a time.
    fn head_ends_by_bytes(bytes: &[u8], mut eol: u8) -> Result<(), u8> {
        for &b in bytes {
            eol = match (b, eol) {
                (b'\n', 1 | 2) => return Ok(()),
                (b'\n', _) => 1,
                (b'\r', 1) => 2,
                _ => 0,
            };
        }
        Err(eol)
    }

    #[test]
    fn the_head_end_search_agrees_with_the_byte_rule_on_every_short_input() {
        // Every string of up to 8 bytes over {a, CR, LF}, from every start state,
        // and behind a first line that holds no line end, with and without more
        // bytes after it.
        let alphabet = [b'a', b'\r', b'\n'];
        let mut checked = 0;
        for len in 0..=8u32 {
            for mut n in 0..3usize.pow(len) {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[n % 3];
                        n /= 3;
                        b
                    })
                    .collect();
                for eol in 0..=2 {
                    assert_eq!(
                        head_ends(&bytes, eol),
                        head_ends_by_bytes(&bytes, eol),
                        "{bytes:?} from {eol}"
                    );
                    checked += 1;
                }
                for input in [
                    [&[b'x'; 100][..], &bytes, &[b'y'; 40]].concat(),
                    [&[b'x'; 100][..], &bytes].concat(),
                ] {
                    assert_eq!(
                        head_ends(&input, 0),
                        head_ends_by_bytes(&input, 0),
                        "{bytes:?}"
                    );
                }
            }
        }
        assert_eq!(checked, 3 * (0..=8).map(|l| 3usize.pow(l)).sum::<usize>());
    }

    #[test]
    fn blank_lines_before_a_request_line_do_not_end_a_head() {
        let mut w = HeadWatch::new();
        w.on_read(b"\r\n\r\n\r\n");
        assert!(w.head_pending());
        w.on_read(b"GET / HTTP/1.1\r\n");
        assert!(w.head_pending());
        w.on_read(b"\r\n");
        assert!(!w.head_pending());
    }

    #[test]
    fn a_final_response_ends_the_request_and_the_next_head_starts_a_new_deadline() {
        let mut w = HeadWatch::new();
        w.on_read(b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
        assert!(!w.head_pending());
        // Body bytes and anything else read while answering are not examined.
        w.on_read(b"more\r\n\r\n");
        assert!(!w.head_pending());
        w.on_write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        // Idle keep-alive: no deadline until the next request's first byte.
        assert!(!w.head_pending());
        w.on_read(b"GET /");
        assert!(w.head_pending());
        w.on_read(b" HTTP/1.1\r\n\r\n");
        assert!(!w.head_pending());
    }

    #[test]
    fn an_interim_response_does_not_end_the_request() {
        let mut w = HeadWatch::new();
        w.on_read(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        w.on_write(b"HTTP/1.1 100 Continue\r\n\r\n");
        // The body arrives after the interim answer: still the same request.
        w.on_read(b"x\r\n\r\nGET");
        assert!(!w.head_pending());
        assert_eq!(w.read, ReadPhase::Answering);
        // Interim and final answer in one write, the status line split.
        let mut v = HeadWatch::new();
        v.on_read(b"POST /x HTTP/1.1\r\n\r\n");
        v.on_write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2");
        assert_eq!(v.read, ReadPhase::Answering);
        v.on_write(b"04 No Content\r\n\r\n");
        assert_eq!(v.read, ReadPhase::Idle { fresh: false });
    }

    #[test]
    fn a_101_turns_the_watch_off_even_when_its_status_line_is_split() {
        let mut w = HeadWatch::new();
        w.on_read(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
        w.on_write(b"HTTP/1.1 1");
        assert!(!w.upgraded());
        w.on_write(b"01 Switching Protocols\r\n\r\n");
        assert!(w.upgraded() && w.is_off());
        // WebSocket frames, whatever they hold, start no head.
        w.on_read(b"\x81\x05hello");
        assert!(!w.head_pending());
    }

    #[test]
    fn the_http2_preface_is_recognised_and_anything_else_is_http1() {
        let mut w = HeadWatch::new();
        read_all(&mut w, &[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n\r\n"]);
        assert!(w.is_http2() && !w.head_pending() && !w.upgraded());

        let mut v = HeadWatch::new();
        v.on_read(b"PRI * HTTP/1.1\r\n");
        assert!(v.head_pending() && !v.is_off());
        v.on_read(b"\r\n");
        assert!(!v.head_pending());

        // The preface only counts at the start of a connection.
        let mut u = HeadWatch::new();
        u.on_read(b"GET / HTTP/1.1\r\n\r\n");
        u.on_write(b"HTTP/1.1 200 OK\r\n\r\n");
        u.on_read(b"PRI * HTTP/2.0\r\n\r\n");
        assert!(!u.is_off() && !u.is_http2());
    }

    #[test]
    fn an_error_answer_to_a_head_in_progress_keeps_its_deadline() {
        let mut w = HeadWatch::new();
        w.on_read(b"GET / HTTP/1.1\r\nX: ");
        w.on_write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n");
        assert!(w.head_pending());
    }

    #[test]
    fn permits_count_per_ip_and_forget_a_key_at_zero() {
        let counts = ConnCounts::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b_same_64: IpAddr = "2001:db8::2".parse().unwrap();
        let p1 = counts.admit(a).unwrap();
        let p2 = counts.admit(mapped).unwrap();
        assert!(counts.admit(a).is_none(), "third from one IPv4 address");
        let q1 = counts.admit(b).unwrap();
        let _q2 = counts.admit(b_same_64).unwrap();
        assert!(counts.admit(b).is_none(), "third from one /64");
        assert_eq!(counts.keys(), 2);
        drop(p1);
        assert_eq!(counts.open(a), 1);
        let p3 = counts.admit(a).unwrap();
        drop((p2, p3, q1));
        assert_eq!(counts.keys(), 1);
        assert_eq!(counts.open(a), 0);
    }

    /// A connection that takes at most `max` bytes per write and records each write
    /// call's bytes; reads find nothing yet.
    struct Recorder {
        writes: Vec<Vec<u8>>,
        max: usize,
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let bytes: Vec<u8> = bufs
                .iter()
                .flat_map(|b| b.iter().copied())
                .take(this.max)
                .collect();
            let n = bytes.len();
            this.writes.push(bytes);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n";

    /// A guarded connection over a [`Recorder`], marked by the route as `mark` says.
    fn upgrading(max: usize, frame_follows: bool) -> GuardedStream<Recorder> {
        let marks = UpgradeMarks::default();
        let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let rate = ReadRate {
            per_second: 1 << 20,
            burst: 1 << 20,
        };
        let second = Duration::from_secs(1);
        let mut io = GuardedStream::new(
            Recorder {
                writes: Vec::new(),
                max,
            },
            second,
            second,
            None,
            rate,
        );
        io.mark = Some(marks.register(peer));
        marks.mark(peer, frame_follows);
        io
    }

    #[tokio::test]
    async fn the_101_of_a_socket_that_writes_at_once_leaves_with_its_first_frame() {
        use tokio::io::AsyncWriteExt;
        let mut io = upgrading(usize::MAX, true);
        // As hyper writes a response head: vectored, then flushed.
        let n = io.write_vectored(&[IoSlice::new(SWITCHING)]).await.unwrap();
        assert_eq!(n, SWITCHING.len());
        io.flush().await.unwrap();
        assert!(io.inner.writes.is_empty(), "the 101 waits for the frame");
        assert_eq!(io.write(b"welcome").await.unwrap(), 7);
        assert_eq!(io.inner.writes, vec![[SWITCHING, b"welcome"].concat()]);
        // Held once only: what follows is written as it comes.
        io.write_all(b"next").await.unwrap();
        assert_eq!(io.inner.writes.len(), 2);
    }

    #[tokio::test]
    async fn a_101_without_the_promise_of_a_frame_is_written_at_once() {
        use tokio::io::AsyncWriteExt;
        let mut io = upgrading(usize::MAX, false);
        io.write_all(SWITCHING).await.unwrap();
        assert_eq!(io.inner.writes, vec![SWITCHING.to_vec()]);
    }

    #[tokio::test]
    async fn a_read_or_a_shutdown_before_the_first_frame_sends_the_held_101() {
        use tokio::io::AsyncWriteExt;
        let mut io = upgrading(usize::MAX, true);
        io.write_all(SWITCHING).await.unwrap();
        let mut buf = [0u8; 16];
        let mut read = ReadBuf::new(&mut buf);
        let read =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut io).poll_read(cx, &mut read)))
                .await;
        assert!(read.is_pending(), "nothing to read yet");
        assert_eq!(io.inner.writes, vec![SWITCHING.to_vec()]);

        let mut io = upgrading(usize::MAX, true);
        io.write_all(SWITCHING).await.unwrap();
        io.shutdown().await.unwrap();
        assert_eq!(io.inner.writes, vec![SWITCHING.to_vec()]);
    }

    #[tokio::test]
    async fn a_held_101_survives_short_writes_in_order() {
        use tokio::io::AsyncWriteExt;
        for max in [1, 7, SWITCHING.len(), SWITCHING.len() + 3] {
            let mut io = upgrading(max, true);
            io.write_all(SWITCHING).await.unwrap();
            io.write_all(b"welcome frame").await.unwrap();
            assert_eq!(
                io.inner.writes.concat(),
                [SWITCHING, b"welcome frame"].concat(),
                "max {max}"
            );
            assert!(
                io.inner
                    .writes
                    .iter()
                    .all(|w| !w.is_empty() && w.len() <= max)
            );
        }
    }
}
