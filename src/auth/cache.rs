//! A small bounded map with optional time-to-live, for the auth core's hot-path
//! caches (verified tokens, session state, users). Bounded so that a flood of
//! distinct keys cannot grow memory without limit.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// foldhash, not std's SipHash: the verified-token cache is keyed by whole access
/// tokens (hundreds of bytes), hashed on every authenticated request, and SipHash
/// cost more than the rest of the lookup. Flooding is no concern here: only tokens
/// that passed signature verification and ids read from the database are inserted
/// (lookups of made-up keys insert nothing), and the map is bounded anyway; the seed
/// is random per process.
type Map<K, V> = HashMap<K, (V, Instant), foldhash::fast::RandomState>;

pub struct Cache<K, V> {
    map: Mutex<Map<K, V>>,
    ttl: Option<Duration>,
    max: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// `ttl`: entries older than this count as absent; `max`: entry bound.
    pub fn new(ttl: Option<Duration>, max: usize) -> Self {
        Self {
            map: Mutex::new(Map::default()),
            ttl,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map<K, V>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, stored: Instant) -> bool {
        self.ttl.is_none_or(|ttl| stored.elapsed() < ttl)
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.lock();
        let (value, stored) = map.get(key)?;
        self.fresh(*stored).then(|| value.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut map = self.lock();
        if map.len() >= self.max && !map.contains_key(&key) {
            // Drop what is stale first; if the map is full of fresh entries, start
            // over: a cache miss costs one lookup, unbounded memory costs more.
            map.retain(|_, (_, stored)| self.ttl.is_some_and(|ttl| stored.elapsed() < ttl));
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(key, (value, Instant::now()));
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.lock().clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = Cache::new(Some(Duration::from_millis(20)), 10);
        cache.insert(1, "a");
        assert_eq!(cache.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn the_bound_holds_under_a_flood_of_keys() {
        let cache = Cache::new(None, 100);
        for k in 0..10_000 {
            cache.insert(k, k);
        }
        assert!(cache.len() <= 100);
    }
}
