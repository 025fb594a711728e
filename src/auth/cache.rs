//! A small bounded map with optional time-to-live, for the auth core's hot-path
//! caches (verified tokens, session state, users). Bounded so that a flood of
//! distinct keys cannot grow memory without limit.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher},
    sync::Mutex,
    time::{Duration, Instant},
};

/// foldhash, not std's SipHash: the verified-token cache is keyed by whole access
/// tokens (hundreds of bytes), hashed on every authenticated request, and SipHash
/// cost more than the rest of the lookup. Flooding is no concern here: only tokens
/// that passed signature verification and ids read from the database are inserted
/// (lookups of made-up keys insert nothing), and the map is bounded anyway; the seed
/// is random per process.
type Map<K, V, S> = HashMap<K, (V, Instant), S>;

pub struct Cache<K, V, S = foldhash::fast::RandomState> {
    map: Mutex<Map<K, V, S>>,
    ttl: Option<Duration>,
    max: usize,
}

impl<K: Hash + Eq + Clone, V: Clone, S: BuildHasher + Default> Cache<K, V, S> {
    /// `ttl`: entries older than this count as absent; `max`: entry bound.
    pub fn new(ttl: Option<Duration>, max: usize) -> Self {
        Self {
            map: Mutex::new(Map::default()),
            ttl,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map<K, V, S>> {
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

    /// Forgets one entry.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(key);
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

/// Hashes a text by its last [`TailHash::TAIL`] bytes and its length, with
/// foldhash: for keys whose end alone tells them apart, such as signed tokens (a
/// JWT ends with its signature, 86 characters of it for EdDSA). Equality still
/// compares whole keys: a made-up text that shares a real token's end lands in its
/// bucket and misses. Only verified tokens are inserted, each with its own
/// signature, so no one can pile entries into one bucket either.
#[derive(Clone, Default)]
pub struct TailHash(foldhash::fast::RandomState);

impl TailHash {
    pub const TAIL: usize = 32;
}

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

/// The hasher of [`TailHash`].
pub struct TailHasher(foldhash::fast::FoldHasher<'static>);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(TailHash::TAIL)..];
        self.0.write(tail);
        self.0.write_usize(bytes.len());
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache: Cache<_, _> = Cache::new(Some(Duration::from_millis(20)), 10);
        cache.insert(1, "a");
        assert_eq!(cache.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn texts_hashed_by_their_tails_are_still_told_apart_whole() {
        let cache: Cache<String, u32, TailHash> = Cache::new(None, 10);
        let tail = "s".repeat(TailHash::TAIL);
        let (a, b) = (format!("a.{tail}"), format!("b.{tail}"));
        cache.insert(a.clone(), 1);
        assert_eq!(cache.get(a.as_str()), Some(1));
        assert_eq!(
            cache.get(b.as_str()),
            None,
            "same end, same length, other text"
        );
        cache.insert(b.clone(), 2);
        assert_eq!(
            (cache.get(a.as_str()), cache.get(b.as_str())),
            (Some(1), Some(2))
        );
        // Short keys hash whole.
        cache.insert("x".to_owned(), 3);
        assert_eq!(cache.get("x"), Some(3));
        assert_eq!(cache.get("y"), None);
    }

    #[test]
    fn the_bound_holds_under_a_flood_of_keys() {
        let cache: Cache<_, _> = Cache::new(None, 100);
        for k in 0..10_000 {
            cache.insert(k, k);
        }
        assert!(cache.len() <= 100);
    }
}
