//! The live sockets of this instance (doorman's `/ws` and a host's own), by session
//! and by user. It subscribes to the
//! auth core's session events: it closes a revoked session's sockets (this is what
//! closes a socket on logout) and tells the user's other sockets with `notice`
//! frames. It also counts every session's live sockets across instances.

use std::{
    collections::{HashMap, HashSet, hash_map},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{broadcast::error::RecvError, oneshot};
use uuid::Uuid;

mod close;
mod notice;

use crate::{
    auth::{Auth, FactorChange, SessionEvent, SessionId, UserId},
    rooms::{ConnId, Outbox, Outgoing},
};
pub use close::Close;
pub use notice::Notice;

use crate::http::scope::Traffic;

struct Entry {
    bound: Option<Binding>,
    close: Option<oneshot::Sender<Close>>,
}

/// What binds a socket to its session.
pub struct Binding {
    /// The session: the socket closes when it ends.
    pub session: SessionId,
    /// Its user: the per-user cap, and notices.
    pub user: UserId,
    /// The key that signed its credential: the socket closes (4401) when that key
    /// is retired.
    pub key: Option<Arc<str>>,
    /// For a socket that takes doorman's frames, its queue.
    pub outbox: Option<Outbox>,
}

impl Binding {
    /// The binding of a socket authenticated as `identity`, with `outbox` if it
    /// takes doorman's frames.
    pub fn of(identity: &crate::auth::Identity, outbox: Option<Outbox>) -> Self {
        Self {
            session: identity.session_id,
            user: identity.user_id,
            key: identity.key_id.clone(),
            outbox,
        }
    }
}

/// foldhash, not std's SipHash, for the tables keyed by ids this server made (socket
/// numbers from a counter, session and user ids from the database): no client picks
/// a key, so flooding one bucket is no concern; a handshake hashes about sixteen
/// times here (the room check, register, bind, removal). The seed is random per
/// process.
type Fast = foldhash::fast::RandomState;

/// A session's or a user's sockets here: almost always one, held without a table
/// (a table per session and per user was two allocations per handshake, and two
/// frees at its close).
enum Ids {
    One(ConnId),
    Many(HashSet<ConnId, Fast>),
}

impl Ids {
    fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(ids) => ids.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &ConnId> {
        let (one, many) = match self {
            Self::One(id) => (Some(id), None),
            Self::Many(ids) => (None, Some(ids)),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// Adds `id` to `key`'s sockets in `map`.
    fn add<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Self, Fast>, key: K, id: ConnId) {
        match map.entry(key) {
            hash_map::Entry::Vacant(slot) => {
                slot.insert(Self::One(id));
            }
            hash_map::Entry::Occupied(mut slot) => match slot.get_mut() {
                Self::One(first) if *first == id => {}
                Self::One(first) => {
                    let mut ids = HashSet::with_capacity_and_hasher(2, Fast::default());
                    ids.insert(*first);
                    ids.insert(id);
                    *slot.get_mut() = Self::Many(ids);
                }
                Self::Many(ids) => {
                    ids.insert(id);
                }
            },
        }
    }

    /// Takes `id` out of `key`'s sockets in `map`, and `key` out of `map` when it
    /// has none left.
    fn take<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Self, Fast>, key: K, id: ConnId) {
        if let hash_map::Entry::Occupied(mut slot) = map.entry(key) {
            let empty = match slot.get_mut() {
                Self::One(only) => *only == id,
                Self::Many(ids) => {
                    ids.remove(&id);
                    ids.is_empty()
                }
            };
            if empty {
                slot.remove();
            }
        }
    }
}

#[derive(Default)]
struct Tables {
    conns: HashMap<ConnId, Entry, Fast>,
    by_session: HashMap<SessionId, Ids, Fast>,
    by_user: HashMap<UserId, Ids, Fast>,
    /// Other instances' live sockets per session, as they last reported them.
    elsewhere: HashMap<SessionId, HashMap<Uuid, usize>>,
    /// Sessions whose count here changed since other instances were last told;
    /// `None` while there are no other instances to tell.
    changed: Option<HashSet<SessionId>>,
    shutting_down: bool,
}

impl Tables {
    /// Whether `user` holds fewer than `max` sockets.
    fn has_place(&self, user: UserId, max: usize) -> bool {
        self.by_user.get(&user).map_or(0, Ids::len) < max
    }

    /// Counts socket `id` among `session`'s and `user`'s sockets.
    fn add_place(&mut self, id: ConnId, session: SessionId, user: UserId) {
        Ids::add(&mut self.by_session, session, id);
        Ids::add(&mut self.by_user, user, id);
        self.count_changed(session);
    }

    fn count_changed(&mut self, session: SessionId) {
        if let Some(changed) = &mut self.changed {
            changed.insert(session);
        }
    }
}

/// The socket registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    tables: Arc<Mutex<Tables>>,
    next_id: Arc<AtomicU64>,
    max_per_user: usize,
    /// HTTP requests seen while draining (noted by the request scope).
    traffic: Traffic,
}

/// How long a drain with no socket left waits without a request before it ends
/// early: requests still arriving mean a load balancer that has not yet seen
/// `/readyz` 503, and they are answered until the window ends.
const DRAIN_QUIET: Duration = Duration::from_millis(500);

/// Why [`Registry::register`] refused a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The server is draining.
    ShuttingDown,
    /// The user already holds `DOORMAN_WS_MAX_SOCKETS_PER_USER` sockets.
    TooManySockets,
}

/// A socket's registration: removes it from the registry when dropped.
pub struct Registration {
    pub id: ConnId,
    registry: Registry,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

impl Registry {
    /// An empty registry that lets each user hold at most `max_per_user` sockets.
    pub fn new(max_per_user: usize) -> Self {
        Self {
            tables: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            max_per_user,
            traffic: Traffic::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new socket. `bound`: the session, user and notice queue of a
    /// socket authenticated at its handshake, bound at once. Its user's socket cap
    /// is checked and its place taken under one lock, so two handshakes cannot both
    /// take the last place; a socket that authenticates later is bound by
    /// [`Registry::bind`].
    pub fn register(
        &self,
        bound: Option<Binding>,
    ) -> Result<(Registration, oneshot::Receiver<Close>), Refused> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut t = self.lock();
        if t.shutting_down {
            return Err(Refused::ShuttingDown);
        }
        if let Some(b) = &bound {
            if !t.has_place(b.user, self.max_per_user) {
                return Err(Refused::TooManySockets);
            }
            t.add_place(id, b.session, b.user);
        }
        let (tx, rx) = oneshot::channel();
        t.conns.insert(
            id,
            Entry {
                bound,
                close: Some(tx),
            },
        );
        Ok((
            Registration {
                id,
                registry: self.clone(),
            },
            rx,
        ))
    }

    /// Binds a socket registered unbound to its session, with the queue its notices
    /// go to; refused when the user holds too many sockets.
    pub fn bind(&self, id: ConnId, binding: Binding) -> Result<(), Close> {
        let mut t = self.lock();
        if !t.has_place(binding.user, self.max_per_user) {
            return Err(Close::TOO_MANY_SOCKETS);
        }
        let Some(entry) = t.conns.get_mut(&id) else {
            return Err(Close::NORMAL);
        };
        let (session, user) = (binding.session, binding.user);
        entry.bound = Some(binding);
        t.add_place(id, session, user);
        Ok(())
    }

    /// Open sockets of a session on every instance.
    pub fn live_sockets(&self, session: SessionId) -> usize {
        let t = self.lock();
        let here = t.by_session.get(&session).map_or(0, Ids::len);
        here + t.elsewhere.get(&session).map_or(0, |m| m.values().sum())
    }

    /// From now on, remembers which sessions' counts changed, for
    /// [`Registry::take_changed_counts`].
    pub fn track_count_changes(&self) {
        let mut t = self.lock();
        if t.changed.is_none() {
            t.changed = Some(HashSet::new());
        }
    }

    /// The sessions whose live-socket count here changed since the last call, with
    /// their count now (0 for sessions with none left).
    pub fn take_changed_counts(&self) -> Vec<(SessionId, usize)> {
        let mut t = self.lock();
        let changed = t.changed.as_mut().map(std::mem::take).unwrap_or_default();
        changed
            .into_iter()
            .map(|s| (s, t.by_session.get(&s).map_or(0, Ids::len)))
            .collect()
    }

    /// Every session with live sockets here, with their count.
    pub fn counts_here(&self) -> Vec<(SessionId, usize)> {
        self.lock()
            .by_session
            .iter()
            .map(|(s, conns)| (*s, conns.len()))
            .collect()
    }

    /// Records another instance's live-socket counts; with `replace`, they are its
    /// whole state (it restarted, or it died and `counts` is empty).
    pub fn counts_elsewhere(&self, instance: Uuid, counts: &[(SessionId, usize)], replace: bool) {
        let mut t = self.lock();
        if replace {
            t.elsewhere.retain(|_, by_instance| {
                by_instance.remove(&instance);
                !by_instance.is_empty()
            });
        }
        for (session, n) in counts {
            let by_instance = t.elsewhere.entry(*session).or_default();
            if *n == 0 {
                by_instance.remove(&instance);
                if by_instance.is_empty() {
                    t.elsewhere.remove(session);
                }
            } else {
                by_instance.insert(instance, *n);
            }
        }
    }

    fn remove(&self, id: ConnId) {
        let mut t = self.lock();
        let Some(entry) = t.conns.remove(&id) else {
            return;
        };
        if let Some(b) = entry.bound {
            Ids::take(&mut t.by_session, b.session, id);
            Ids::take(&mut t.by_user, b.user, id);
            t.count_changed(b.session);
        }
    }

    /// Closes every socket of a session; returns how many.
    pub fn close_session(&self, session: SessionId, close: Close) -> usize {
        let mut t = self.lock();
        let ids: Vec<ConnId> = t
            .by_session
            .get(&session)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let mut closed = 0;
        for id in ids {
            if let Some(tx) = t.conns.get_mut(&id).and_then(|e| e.close.take()) {
                closed += usize::from(tx.send(close).is_ok());
            }
        }
        closed
    }

    /// Closes every socket whose credential the key `kid` signed; returns how many.
    /// A walk over every socket: keys are retired by hand, rarely.
    pub fn close_key(&self, kid: &str, close: Close) -> usize {
        let mut t = self.lock();
        let mut closed = 0;
        for entry in t.conns.values_mut() {
            if entry
                .bound
                .as_ref()
                .is_some_and(|b| b.key.as_deref() == Some(kid))
                && let Some(tx) = entry.close.take()
            {
                closed += usize::from(tx.send(close).is_ok());
            }
        }
        closed
    }

    /// Sends a notice to every socket of `user` except those of session `except`.
    fn notify_user(&self, user: UserId, except: Option<SessionId>, notice: &Notice) {
        let frame: Arc<str> = notice.to_text().into();
        let t = self.lock();
        for id in t.by_user.get(&user).into_iter().flat_map(Ids::iter) {
            if let Some(Binding {
                session,
                outbox: Some(outbox),
                ..
            }) = t.conns.get(id).and_then(|e| e.bound.as_ref())
                && Some(*session) != except
            {
                // A socket that stopped reading misses it, as it misses messages.
                let _ = outbox.try_send(Outgoing::Frame(frame.clone()));
            }
        }
    }

    /// Whether the server is draining: new sockets are refused, `/readyz` says 503.
    pub fn is_draining(&self) -> bool {
        self.lock().shutting_down
    }

    /// The request count its drain reads (noted by the request scope).
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Refuses new sockets at once, then closes the open ones with 1001 spread
    /// evenly over `window` (so their clients reconnect spread out, not in one
    /// burst), and waits (up to `window` plus `grace`) until their tasks have sent
    /// the close frame and finished. The window is an upper bound: once no socket
    /// is left and no request has arrived for half a second, it ends early
    /// (requests still in flight are finished by the server's graceful shutdown).
    pub async fn drain(&self, window: Duration, grace: Duration) {
        let start = tokio::time::Instant::now();
        // Read before the sockets close (which may take the window): requests
        // that arrive meanwhile must count as traffic below.
        let mut seen = self.traffic.start_counting();
        let closers: Vec<oneshot::Sender<Close>> = {
            let mut t = self.lock();
            t.shutting_down = true;
            t.conns
                .values_mut()
                .filter_map(|e| e.close.take())
                .collect()
        };
        let n = closers.len() as u32;
        tracing::info!(sockets = n, window_s = window.as_secs_f64(), "draining");
        for (i, tx) in closers.into_iter().enumerate() {
            if n > 1 {
                tokio::time::sleep_until(start + window * i as u32 / n).await;
            }
            let _ = tx.send(Close::SHUTDOWN);
        }
        // Sockets registered before the flag was set but bound after the list was
        // taken: close them now.
        for entry in self.lock().conns.values_mut() {
            if let Some(tx) = entry.close.take() {
                let _ = tx.send(Close::SHUTDOWN);
            }
        }
        let deadline = start + window + grace;
        let mut quiet_since = start;
        loop {
            let now = tokio::time::Instant::now();
            if !self.lock().conns.is_empty() {
                // Sockets still closing: up to the grace after the window.
                if now >= deadline {
                    break;
                }
            } else {
                // Nothing open: through the window (the load balancer keeps
                // seeing 503) while requests keep coming, not a moment longer.
                let requests = self.traffic.count();
                if requests != seen {
                    seen = requests;
                    quiet_since = now;
                }
                if now >= start + window || now >= quiet_since + DRAIN_QUIET {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Re-checks every live socket's session every `every`, on any backend: the
    /// bound on a lost revocation event, and what closes sockets of sessions that
    /// reached their idle expiry.
    pub fn spawn_sweeper(&self, auth: Arc<Auth>, every: Duration) {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                // An incomplete pass is retried at the next tick.
                registry.recheck(&auth).await;
            }
        });
    }

    /// Re-checks until one pass completes, retrying every half second while the
    /// database does not answer: a missed event must not stay missed.
    pub async fn recheck_until_complete(&self, auth: &Auth) {
        while !self.recheck(auth).await {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Follows the session events until they end: an ended session's sockets
    /// close, and the user's other sockets get a `notice`. If it falls behind, every
    /// bound socket's session is re-checked against the store, so a missed event
    /// never leaves a revoked socket open.
    pub fn spawn_event_listener(&self, auth: Arc<Auth>) {
        let registry = self.clone();
        let mut events = auth.session_events();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(SessionEvent::Ended(event)) => {
                        let close = Close::session_ended(event.reason.ended_as());
                        if registry.close_session(event.session_id, close) > 0 {
                            metrics::histogram!("doorman_revocation_close_seconds")
                                .record(event.at.elapsed());
                        }
                        registry.notify_user(
                            event.user_id,
                            Some(event.session_id),
                            &Notice::SessionEnded {
                                session_id: event.session_id.0,
                                reason: event.reason.as_str(),
                            },
                        );
                    }
                    Ok(SessionEvent::KeyRetired(kid)) => {
                        // The sessions may have been revoked with the key (`doorman
                        // keys retire --revoke-sessions`): those sockets close with
                        // 4403 first; the key's remaining ones with 4401. One pass:
                        // an outage must not hold the key's sockets open.
                        registry.recheck(&auth).await;
                        let closed = registry.close_key(&kid, Close::INVALID_TOKEN);
                        tracing::info!(kid = %kid, closed, "sockets of a retired key closed");
                    }
                    Ok(SessionEvent::Opened(o)) => registry.notify_user(
                        o.user_id,
                        Some(o.session_id),
                        &Notice::NewSession {
                            session_id: o.session_id.0,
                            ip: o.ip.as_deref(),
                            user_agent: o.user_agent.as_deref(),
                            at: o.at,
                        },
                    ),
                    Ok(SessionEvent::Assurance(change)) => {
                        let notice = match change.factor {
                            Some(FactorChange::Added(m)) => {
                                Notice::FactorAdded { method: m.as_str() }
                            }
                            Some(FactorChange::Removed(m)) => {
                                Notice::FactorRemoved { method: m.as_str() }
                            }
                            None => continue,
                        };
                        registry.notify_user(change.user_id, None, &notice);
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "session events missed; re-checking sockets");
                        registry.recheck_until_complete(&auth).await;
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    /// Re-checks every bound socket's session against the store and closes those
    /// that ended: the backstop for revocation events that never arrived. Returns
    /// `false` if some session could not be checked (the database did not answer).
    /// A session that cannot be checked keeps its sockets open: only a session known
    /// to have ended closes them, never a database outage.
    pub async fn recheck(&self, auth: &Auth) -> bool {
        use crate::auth::Error;
        let sessions: Vec<SessionId> = self.lock().by_session.keys().copied().collect();
        let mut closed = 0;
        let mut complete = true;
        for session in &sessions {
            match auth.session_still_active(*session).await {
                Ok(()) => {}
                Err(Error::Auth(e)) => {
                    closed += self.close_session(*session, Close::session_ended(e));
                }
                Err(Error::DatabaseUnavailable(cause)) => {
                    // The rest would wait for the same database in turn: stop, and
                    // let the caller retry the whole pass.
                    complete = false;
                    tracing::warn!(cause = %cause, "re-check of live sockets stopped: database unavailable");
                    break;
                }
                Err(e) => {
                    complete = false;
                    tracing::warn!(error = ?e, session_id = %session, "re-check failed");
                }
            }
        }
        tracing::debug!(
            sessions = sessions.len(),
            closed,
            complete,
            "re-checked live sockets"
        );
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_hold_one_then_many_and_leave_the_map_when_empty() {
        let mut map: HashMap<u8, Ids, Fast> = HashMap::default();
        Ids::add(&mut map, 1, 10);
        Ids::add(&mut map, 1, 10);
        assert_eq!(map[&1].len(), 1);
        Ids::add(&mut map, 1, 11);
        Ids::add(&mut map, 1, 12);
        assert_eq!(map[&1].len(), 3);
        let mut seen: Vec<ConnId> = map[&1].iter().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, [10, 11, 12]);
        // Taking an id that is not there changes nothing.
        Ids::take(&mut map, 1, 99);
        Ids::take(&mut map, 2, 10);
        assert_eq!(map[&1].len(), 3);
        Ids::take(&mut map, 1, 10);
        Ids::take(&mut map, 1, 12);
        assert_eq!(map[&1].iter().copied().collect::<Vec<_>>(), [11]);
        Ids::take(&mut map, 1, 11);
        assert!(map.is_empty());
        Ids::add(&mut map, 3, 7);
        Ids::take(&mut map, 3, 8);
        assert_eq!(map[&3].len(), 1);
        Ids::take(&mut map, 3, 7);
        assert!(map.is_empty());
    }
}
