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
//! When a WebSocket's connection is dropped, its end lingers: the FIN goes out
//! after the Close frame and what the peer still sends is drained for a bounded
//! time and size, so that no reset destroys the close code (see `linger`). Unless
//! the peer closed first ([`CloseNote`]): it sends nothing more, the FIN goes at once.
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

mod budget;
mod counts;
mod head;
mod linger;
mod marks;
mod stream;

pub use budget::ReadRate;
pub use counts::ConnCounts;
#[cfg(feature = "fuzzing")]
pub use head::{HeadWatch, chunking_agrees};
pub use linger::LingeringTcp;
pub use marks::{CloseNote, UpgradeMarks};
pub use stream::GuardedStream;

use std::{io, time::Duration};

use poem::{
    http::uri::Scheme,
    listener::{Acceptor, TcpAcceptor},
    web::{LocalAddr, RemoteAddr},
};

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
    type Io = GuardedStream<LingeringTcp>;

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
                LingeringTcp::new(stream),
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
