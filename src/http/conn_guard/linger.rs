//! The lingering close of a WebSocket's connection.
//!
//! A socket closes by sending its Close frame, but the peer may still be writing:
//! a flood the rate cut off, the rest of a message over the size limit (1009), the
//! frames behind a protocol error (1002, 1007). Closing the TCP connection with
//! bytes unread makes the kernel answer with a reset instead of a FIN, and a
//! client that is still writing (a browser, most SDKs) then reports 1006 and never
//! sees the code that tells it what to do (4429: back off). So when a WebSocket's
//! connection is dropped, its end is handed to a small task that sends the FIN,
//! reads and discards what the peer still sends until it closes its side, and
//! stops at [`LINGER_TIME`] or [`LINGER_BYTES`], whichever comes first (like
//! Apache's and nginx's lingering close). The drained bytes bypass the byte budget
//! and the socket's frame parser: nothing of them is looked at. The socket's place
//! among its user's sockets is given back before (with its registration): only
//! the file descriptor and a task of about 1 KiB linger.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use super::marks::CloseNote;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
};

/// How long a closed WebSocket's connection is drained at most.
pub(super) const LINGER_TIME: Duration = Duration::from_secs(2);
/// How many bytes a closed WebSocket's connection drains at most.
pub(super) const LINGER_BYTES: usize = 1 << 20;

/// A transport that can be told it carries a WebSocket (so that its end lingers).
pub trait Upgradable {
    /// The connection is a WebSocket from now on; `note`, when the route marked it,
    /// says at the end whether the peer closed first (then nothing lingers).
    fn upgraded(&mut self, note: Option<CloseNote>) {
        let _ = note;
    }
}

/// An accepted TCP connection whose end lingers once it is a WebSocket.
pub struct LingeringTcp {
    /// `None` only once dropped.
    stream: Option<TcpStream>,
    linger: bool,
    note: Option<CloseNote>,
}

impl LingeringTcp {
    pub(super) fn new(stream: TcpStream) -> Self {
        Self {
            stream: Some(stream),
            linger: false,
            note: None,
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Upgradable for LingeringTcp {
    fn upgraded(&mut self, note: Option<CloseNote>) {
        self.linger = true;
        self.note = note;
    }
}

impl Drop for LingeringTcp {
    fn drop(&mut self) {
        if !self.linger || self.note.as_ref().is_some_and(CloseNote::is_peer_closed) {
            return;
        }
        // Outside a runtime (never in the server) the connection just closes.
        if let (Some(stream), Ok(runtime)) =
            (self.stream.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(linger(stream));
        }
    }
}

/// Sends the FIN after what was written (the Close frame), then drains the peer
/// until it closes its side, [`LINGER_TIME`] or [`LINGER_BYTES`].
async fn linger(mut stream: TcpStream) {
    let _ = tokio::time::timeout(LINGER_TIME, async {
        if stream.shutdown().await.is_err() {
            return;
        }
        let mut discard = [0u8; 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut discard).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

impl AsyncRead for LingeringTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LingeringTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
