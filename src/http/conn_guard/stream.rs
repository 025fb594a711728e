//! The guarded connection: head deadline, idle timeout, read budget, the held `101`.

use std::{
    future::Future,
    io,
    io::IoSlice,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

use super::{budget::*, counts::*, head::*, linger::Upgradable, marks::*};

/// A connection whose reads fail with [`io::ErrorKind::TimedOut`] when a request
/// head is still incomplete `timeout` after its first byte. Holds the connection's
/// per-IP permit until it closes or becomes a WebSocket (sockets count under their
/// own caps); a WebSocket's reads follow the byte budget.
pub struct GuardedStream<S> {
    pub(super) inner: S,
    pub(super) watch: HeadWatch,
    pub(super) timeout: Duration,
    /// When the pending head's time is up (its first byte + `timeout`); `None`
    /// while no head is pending.
    pub(super) head_due: Option<Instant>,
    /// The timer of `head_due`, made only once a read has to wait for more of the
    /// head. Most heads arrive whole, or in pieces that follow one another at once
    /// (hyper's HTTP/2 detection reads a new connection's first 24 bytes alone):
    /// a timer armed and cancelled for each of those cost every new connection a
    /// timer-wheel insertion and removal, under the wheel's lock. Dropped rather
    /// than left armed: a polled timer holds the waker of the task that polled it,
    /// and after an upgrade that is hyper's finished connection task with its
    /// buffers — kept alive until the timer fired, 10 s later, it cost every new
    /// socket about 6 KiB.
    pub(super) deadline: Option<Pin<Box<Sleep>>>,
    /// Once a WebSocket: the timer of a pause of the read budget.
    pub(super) pause: Option<Pin<Box<Sleep>>>,
    pub(super) idle: IdleTimer,
    pub(super) permit: Option<ConnPermit>,
    pub(super) budget: ReadBudget,
    /// Set by the WebSocket route when it upgrades this connection.
    pub(super) mark: Option<UpgradeMark>,
    /// A `101` not yet written: it leaves with the socket's first write (see
    /// [`FRAME_FOLLOWS`]), or before the first read, or at shutdown.
    pub(super) held: Option<Box<[u8]>>,
    /// A WebSocket, its HTTP state dropped: latched by [`Self::sync`], so that a
    /// socket's every read and write does not ask the watcher and the mark again.
    pub(super) websocket: bool,
}

/// The idle timeout: when bytes last moved, and a timer that is moved forward only
/// when it fires before the connection has really been idle that long.
pub(super) struct IdleTimer {
    pub(super) timeout: Duration,
    pub(super) last: Instant,
    /// Armed from the first wait on. Dropped (with the waker it holds) once the
    /// connection is a WebSocket, for the reason given at `deadline`.
    pub(super) sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    pub(super) fn new(timeout: Duration, now: Instant) -> Self {
        Self {
            timeout,
            last: now,
            sleep: None,
        }
    }

    /// Bytes moved.
    pub(super) fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// Ready once no bytes have moved for the timeout; registers the waker.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
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
    pub(super) fn closing(&self) -> io::Error {
        tracing::debug!(timeout = ?self.timeout, "connection idle; closing");
        io::Error::new(io::ErrorKind::TimedOut, "connection idle")
    }
}

impl<S> GuardedStream<S> {
    pub(super) fn new(
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
    pub(super) fn is_websocket(&self) -> bool {
        self.websocket || self.watch.is_off() || self.mark.as_ref().is_some_and(UpgradeMark::is_set)
    }

    /// Starts the deadline when a head has begun and drops it when none is pending;
    /// once a WebSocket, there is no head deadline and the permit goes back.
    pub(super) fn sync(&mut self)
    where
        S: Upgradable,
    {
        if self.websocket {
            return;
        }
        if self.is_websocket() {
            // For good: neither the watcher's verdict nor the mark is ever undone.
            self.websocket = true;
            self.inner
                .upgraded(self.mark.as_ref().map(UpgradeMark::note));
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
    pub(super) fn head_too_late(&self) -> io::Error {
        tracing::debug!(timeout = ?self.timeout, "request head incomplete at its deadline; closing");
        io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Upgradable> AsyncRead for GuardedStream<S> {
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

impl<S: AsyncWrite + Unpin + Upgradable> GuardedStream<S> {
    /// Once the last response of the connection is written, hyper waits for the
    /// next request on the read interest it registered while answering, without
    /// reading again: the idle timer is armed here, with this task's waker.
    pub(super) fn arm_idle(&mut self, cx: &mut Context<'_>) {
        if self.watch.is_idle() {
            // Just touched: pending, and now it wakes this task when due.
            let _ = self.idle.poll_expired(cx);
        }
    }

    /// A write; one that cannot proceed (the client reads nothing) for the idle
    /// timeout fails, and the connection closes. Not on a WebSocket: its heartbeat
    /// and outbox bound it.
    pub(super) fn poll_stalled(
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

impl<S: AsyncWrite + Unpin + Upgradable> GuardedStream<S> {
    /// Holds `bufs` back when they are the `101` of an upgrade whose socket writes
    /// at once ([`FRAME_FOLLOWS`]), and says they were written.
    ///
    /// Why: the `101` and the socket's first frame (the `welcome`) then leave in one
    /// system call and one TCP segment instead of two; on loopback the kernel's work
    /// for a segment (the sender's and the receiver's TCP path) is most of a
    /// handshake's cost.
    pub(super) fn hold_101(&mut self, bufs: &[IoSlice<'_>]) -> Option<usize> {
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
    pub(super) fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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
    pub(super) fn poll_write_101(
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
    pub(super) fn poll_write_behind_held(
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

impl<S: AsyncWrite + Unpin + Upgradable> AsyncWrite for GuardedStream<S> {
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

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

    impl Upgradable for Recorder {}

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
