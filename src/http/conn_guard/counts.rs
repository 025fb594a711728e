//! The cap on concurrent connections per client IP.

use std::{
    collections::{HashMap, hash_map::Entry},
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use crate::http::client_ip;

/// Open connections per client key, shared by the acceptor and the permits of the
/// connections it admitted. A key is removed when its count reaches zero, so memory
/// follows the number of open connections.
#[derive(Clone)]
pub struct ConnCounts {
    /// foldhash, seeded per map, not std's SipHash: two lookups per connection, and
    /// the keys are client addresses (an IPv6 client's whole /64 is one key).
    pub(super) inner: Arc<Mutex<HashMap<IpAddr, Slot, foldhash::fast::RandomState>>>,
    pub(super) max: usize,
}

#[derive(Default)]
pub(super) struct Slot {
    pub(super) open: usize,
    /// A refusal was logged since the key was last under its cap: one line per
    /// episode, not one per refused connection.
    pub(super) warned: bool,
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

    pub(super) fn release(&self, key: IpAddr) {
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
    pub(super) counts: ConnCounts,
    pub(super) key: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.counts.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
