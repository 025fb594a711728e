//! Which connections the WebSocket route is upgrading.

use std::{
    collections::{HashMap, hash_map::Entry},
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU8, Ordering},
    },
};

/// Each connection's flag, by peer address. foldhash, seeded per map, not std's
/// SipHash: three lookups per WebSocket handshake, and a peer address is a key its
/// client chooses only among the ports of addresses it holds.
type Marks = HashMap<SocketAddr, Arc<AtomicU8>, foldhash::fast::RandomState>;

/// The connections the WebSocket route is upgrading, by peer address. The byte
/// watcher sees a `101` only when it kept step with the requests, and a client that
/// pipelines a request before its upgrade puts it out of step; so the route itself
/// says "this connection is becoming a WebSocket", and the stream reads within the
/// byte budget from then on, whatever the watcher made of it.
#[derive(Clone, Default)]
pub struct UpgradeMarks {
    pub(super) inner: Arc<Mutex<Marks>>,
}

/// An [`UpgradeMark`]'s states.
pub(super) const NOT_MARKED: u8 = 0;
pub(super) const UPGRADING: u8 = 1;
/// Upgrading, and the socket writes a frame as soon as it starts: the `101` waits
/// for it and both leave in one write.
pub(super) const FRAME_FOLLOWS: u8 = 2;
/// A bit beside the states: the WebSocket's peer closed first (see [`CloseNote`]).
const PEER_CLOSED: u8 = 0x80;

impl UpgradeMarks {
    pub(super) fn register(&self, peer: SocketAddr) -> UpgradeMark {
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
    /// and sent in the same write as that frame. The note is the socket's say in how
    /// its connection ends; `None` for a peer this acceptor did not admit.
    pub fn mark(&self, peer: SocketAddr, frame_follows: bool) -> Option<CloseNote> {
        let map = self.lock();
        let flag = map.get(&peer)?;
        flag.store(
            if frame_follows {
                FRAME_FOLLOWS
            } else {
                UPGRADING
            },
            Ordering::Relaxed,
        );
        Some(CloseNote(flag.clone()))
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a WebSocket tells its connection about its end: that the peer sent its Close
/// frame (or ended its stream) before ours went out. RFC 6455 (5.5.1): an endpoint
/// sends no data after its Close, so that connection has nothing left to drain and
/// closes at once, without the lingering close (`super::linger`) a close begun by
/// the server needs: no task, no timer, no reads per socket the client ended.
#[derive(Clone)]
pub struct CloseNote(Arc<AtomicU8>);

impl CloseNote {
    /// The peer closed first; call once the Close reply is written.
    pub fn peer_closed(&self) {
        self.0.fetch_or(PEER_CLOSED, Ordering::Relaxed);
    }

    pub(super) fn is_peer_closed(&self) -> bool {
        self.0.load(Ordering::Relaxed) & PEER_CLOSED != 0
    }
}

/// One connection's entry in [`UpgradeMarks`], removed when the connection closes.
pub(super) struct UpgradeMark {
    pub(super) marks: UpgradeMarks,
    pub(super) peer: SocketAddr,
    pub(super) flag: Arc<AtomicU8>,
}

impl UpgradeMark {
    pub(super) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed) != NOT_MARKED
    }

    /// The socket's note, for the transport to read when it is dropped.
    pub(super) fn note(&self) -> CloseNote {
        CloseNote(self.flag.clone())
    }

    /// Whether a `101` should wait for the socket's first frame; true once.
    pub(super) fn take_frame_follows(&self) -> bool {
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
