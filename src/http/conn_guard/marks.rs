//! Which connections the WebSocket route is upgrading.

use std::{
    collections::{HashMap, hash_map::Entry},
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU8, Ordering},
    },
};

/// The connections the WebSocket route is upgrading, by peer address. The byte
/// watcher sees a `101` only when it kept step with the requests, and a client that
/// pipelines a request before its upgrade puts it out of step; so the route itself
/// says "this connection is becoming a WebSocket", and the stream reads within the
/// byte budget from then on, whatever the watcher made of it.
#[derive(Clone, Default)]
pub struct UpgradeMarks {
    pub(super) inner: Arc<Mutex<HashMap<SocketAddr, Arc<AtomicU8>>>>,
}

/// An [`UpgradeMark`]'s states.
pub(super) const NOT_MARKED: u8 = 0;
pub(super) const UPGRADING: u8 = 1;
/// Upgrading, and the socket writes a frame as soon as it starts: the `101` waits
/// for it and both leave in one write.
pub(super) const FRAME_FOLLOWS: u8 = 2;

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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<AtomicU8>>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
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
