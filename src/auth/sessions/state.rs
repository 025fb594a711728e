//! What this instance believes about sessions, in one map with a lifetime per
//! entry: an active session is believed for a second without asking the database
//! (the hot path of every authenticated request); an ended one is remembered for a
//! day, so a load that read the row just before the revocation can never put the
//! session back. The database stays the truth: once a tombstone is gone, the next
//! load reads the ended row and refuses the session again.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use entity::session;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::AuthError;

/// How long an active session's state is believed. Revocations on this instance
/// (and, on PostgreSQL, on others) replace the entry at once; the lifetime bounds
/// how long a lost event could let a revoked session's token through.
const ACTIVE_TTL: Duration = Duration::from_secs(1);
/// How long this instance remembers that a session ended.
const ENDED_TTL: Duration = Duration::from_secs(24 * 3600);
/// Sessions whose state is kept at once.
const MAX_ENTRIES: usize = 100_000;

/// What a request needs to know of an active session.
#[derive(Debug, Clone, Copy)]
pub struct ActiveSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: OffsetDateTime,
    pub(super) idle_expires_at: OffsetDateTime,
    pub(super) last_used_at: OffsetDateTime,
}

impl From<&session::Model> for ActiveSession {
    fn from(m: &session::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            expires_at: m.expires_at,
            idle_expires_at: m.idle_expires_at,
            last_used_at: m.last_used_at,
        }
    }
}

/// A session's state as this instance knows it.
#[derive(Debug, Clone, Copy)]
pub enum Known {
    Active(ActiveSession),
    Ended(AuthError),
}

/// foldhash, not std's SipHash: looked up twice per WebSocket handshake and once per
/// authenticated request, where SipHash over a UUID cost more than the rest of the
/// lookup. Every key is a session id this server made (read from the database, or
/// carried by a token whose signature was checked, or by a revocation event), so no
/// client picks one; the seed is random per process.
type Map = HashMap<Uuid, (Known, Instant), foldhash::fast::RandomState>;

/// The one map of session states.
#[derive(Default)]
pub struct SessionStates {
    map: Mutex<Map>,
}

impl SessionStates {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known of `id`, unless its entry has run out.
    pub fn get(&self, id: &Uuid) -> Option<Known> {
        let map = self.lock();
        let (known, until) = map.get(id)?;
        (Instant::now() < *until).then_some(*known)
    }

    /// Records that a session ended, for a day.
    pub fn ended(&self, id: Uuid, why: AuthError) {
        self.insert(id, Known::Ended(why), ENDED_TTL);
    }

    /// Believes a session active for a second, unless it is known to have ended: a
    /// revocation that raced the read that found it active has left a tombstone.
    pub fn active(&self, session: ActiveSession) {
        let mut map = self.lock();
        if let Some((Known::Ended(_), until)) = map.get(&session.id)
            && Instant::now() < *until
        {
            return;
        }
        make_room(&mut map, &session.id);
        map.insert(
            session.id,
            (Known::Active(session), Instant::now() + ACTIVE_TTL),
        );
    }

    /// Records use of a believed-active session, keeping its lifetime.
    pub fn touched(&self, id: &Uuid, now: OffsetDateTime, idle: Duration) {
        if let Some((Known::Active(s), until)) = self.lock().get_mut(id)
            && Instant::now() < *until
        {
            s.last_used_at = now;
            s.idle_expires_at = now + idle;
        }
    }

    /// Forgets what is believed active (after events may have been missed); what
    /// is known to have ended stays known.
    pub fn forget_active(&self) {
        self.lock()
            .retain(|_, (known, _)| matches!(known, Known::Ended(_)));
    }

    fn insert(&self, id: Uuid, known: Known, ttl: Duration) {
        let mut map = self.lock();
        make_room(&mut map, &id);
        map.insert(id, (known, Instant::now() + ttl));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Keeps the map bounded: drop what ran out, then what is merely believed active
/// (a miss costs one lookup), and only then, if a flood filled it with tombstones,
/// start over (a tombstone only guards a race of a second or so).
fn make_room(map: &mut Map, id: &Uuid) {
    if map.len() < MAX_ENTRIES || map.contains_key(id) {
        return;
    }
    let now = Instant::now();
    map.retain(|_, (_, until)| now < *until);
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, (known, _)| matches!(known, Known::Ended(_)));
    }
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(id: Uuid) -> ActiveSession {
        let now = OffsetDateTime::now_utc();
        ActiveSession {
            id,
            user_id: Uuid::nil(),
            expires_at: now,
            idle_expires_at: now,
            last_used_at: now,
        }
    }

    #[test]
    fn an_ended_session_is_never_believed_active_again() {
        let states = SessionStates::default();
        let id = Uuid::new_v4();
        states.active(active(id));
        states.ended(id, AuthError::SessionRevoked);
        states.active(active(id));
        assert!(matches!(
            states.get(&id),
            Some(Known::Ended(AuthError::SessionRevoked))
        ));
        states.forget_active();
        assert!(matches!(states.get(&id), Some(Known::Ended(_))));
    }

    #[test]
    fn forgetting_drops_only_what_is_believed_active() {
        let states = SessionStates::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        states.active(active(a));
        states.ended(b, AuthError::SessionExpired);
        states.forget_active();
        assert!(states.get(&a).is_none());
        assert!(states.get(&b).is_some());
    }

    #[test]
    fn the_bound_holds_under_a_flood_of_sessions() {
        let states = SessionStates::default();
        for _ in 0..(MAX_ENTRIES + 10) {
            states.active(active(Uuid::new_v4()));
        }
        assert!(states.len() <= MAX_ENTRIES);
    }
}
