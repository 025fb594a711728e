//! What this instance believes about sessions, in one map with a lifetime per
//! entry: an active session is believed for a second without asking the database
//! (the hot path of every authenticated request); an ended one is remembered for a
//! day, so a load that read the row just before the revocation can never put the
//! session back. The database stays the truth: once a tombstone is gone, the next
//! load reads the ended row and refuses the session again.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use entity::session;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{
    AuthError,
    assurance::{Aal, Amr, Assurance},
};

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
    /// How strongly its user authenticated, and when last.
    pub assurance: Assurance,
    /// The expiry, the idle expiry and the last recorded use, in nanoseconds since
    /// the epoch: every authenticated request compares them with the clock, and a
    /// calendar date made of the clock (`OffsetDateTime::now_utc`) and compared
    /// costs a few hundred instructions more than the clock's count.
    nanos: Nanos,
}

#[derive(Debug, Clone, Copy)]
struct Nanos {
    expires: i128,
    idle_expires: i128,
    last_used: i128,
}

impl ActiveSession {
    pub(super) fn new(
        id: Uuid,
        user_id: Uuid,
        expires_at: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
        last_used_at: OffsetDateTime,
        assurance: Assurance,
    ) -> Self {
        Self {
            id,
            user_id,
            expires_at,
            assurance,
            nanos: Nanos {
                expires: expires_at.unix_timestamp_nanos(),
                idle_expires: idle_expires_at.unix_timestamp_nanos(),
                last_used: last_used_at.unix_timestamp_nanos(),
            },
        }
    }

    /// Whether the session has expired (either limit) at `now`, in nanoseconds
    /// since the epoch ([`unix_nanos`]).
    pub(super) fn expired(&self, now: i128) -> bool {
        now >= self.nanos.expires || now >= self.nanos.idle_expires
    }

    /// Whether its use was last recorded `every` or longer before `now`.
    pub(super) fn used_before(&self, now: i128, every: time::Duration) -> bool {
        now - self.nanos.last_used >= every.whole_nanoseconds()
    }

    /// Records use at `at`: the idle limit moves to `idle` after it.
    pub(super) fn used(&mut self, at: OffsetDateTime, idle: Duration) {
        *self = Self::new(
            self.id,
            self.user_id,
            self.expires_at,
            at + idle,
            at,
            self.assurance,
        );
    }
}

/// The system clock in nanoseconds since the epoch (negative before it).
pub(crate) fn unix_nanos() -> i128 {
    match std::time::SystemTime::now().duration_since(std::time::SystemTime::UNIX_EPOCH) {
        Ok(since) => since.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

impl From<&session::Model> for ActiveSession {
    fn from(m: &session::Model) -> Self {
        Self::new(
            m.id,
            m.user_id,
            m.expires_at,
            m.idle_expires_at,
            m.last_used_at,
            assurance_of(m),
        )
    }
}

/// A session row's assurance: what it stored, `auth_at` defaulting to the login.
pub(crate) fn assurance_of(m: &session::Model) -> Assurance {
    Assurance {
        aal: if m.aal >= 2 { Aal::Aal2 } else { Aal::Aal1 },
        amr: Amr::from_column(&m.amr),
        auth_at: m.auth_at.unwrap_or(m.created_at),
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
    /// Session ends recorded so far, and forgettings of what was believed active:
    /// see [`SessionStates::ends`].
    ends: AtomicU64,
    /// Assurance changes recorded so far ([`SessionStates::forget`]): a load that
    /// read a session row across one caches nothing (see
    /// [`SessionStates::active_unless_changed`]).
    changes: AtomicU64,
}

/// A mark of the session ends an instance had recorded at one moment
/// ([`crate::auth::Auth::session_ends`]). Two equal marks mean that no session
/// ended, as far as this instance knows, between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEnds(u64);

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
        // After the entry: whoever sees the new count finds the tombstone. Every
        // party that could act on this end (the socket registry, through the
        // session bus) hears of it after this, so the count needs no stronger order
        // than the locks and channels between them give.
        self.ends.fetch_add(1, Ordering::Relaxed);
    }

    /// How many session ends (and forgettings) have been recorded: a check made
    /// after one mark was read still holds while the mark is unchanged.
    pub fn ends(&self) -> SessionEnds {
        SessionEnds(self.ends.load(Ordering::Relaxed))
    }

    /// Believes a session active for a second, unless it is known to have ended: a
    /// revocation that raced the read that found it active has left a tombstone.
    #[cfg(test)]
    pub fn active(&self, session: ActiveSession) {
        believe(&mut self.lock(), session);
    }

    /// Records use of a believed-active session, keeping its lifetime.
    pub fn touched(&self, id: &Uuid, now: OffsetDateTime, idle: Duration) {
        if let Some((Known::Active(s), until)) = self.lock().get_mut(id)
            && Instant::now() < *until
        {
            s.used(now, idle);
        }
    }

    /// Forgets what is believed of one active session (its assurance changed): the
    /// next request reads its row. An end stays known.
    pub fn forget(&self, id: &Uuid) {
        let mut map = self.lock();
        self.changes.fetch_add(1, Ordering::Relaxed);
        if let Some((Known::Active(_), _)) = map.get(id) {
            map.remove(id);
        }
    }

    /// The mark of assurance changes: read before a session row, compared after.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// [`SessionStates::active`], unless an assurance changed since `mark` (then
    /// the row read may be older than the change, which was announced already:
    /// caching it would show the old level for a second); `false` if not cached.
    pub fn active_unless_changed(&self, session: ActiveSession, mark: u64) -> bool {
        let mut map = self.lock();
        // Under the lock `forget` takes: no change slips in between.
        if self.changes.load(Ordering::Relaxed) != mark {
            return false;
        }
        believe(&mut map, session);
        true
    }

    /// Forgets what is believed active (after events may have been missed); what
    /// is known to have ended stays known.
    pub fn forget_active(&self) {
        self.lock()
            .retain(|_, (known, _)| matches!(known, Known::Ended(_)));
        // Sessions may have ended unheard of: as good as an end recorded.
        self.ends.fetch_add(1, Ordering::Relaxed);
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
/// [`SessionStates::active`] under its lock.
fn believe(map: &mut Map, session: ActiveSession) {
    if let Some((Known::Ended(_), until)) = map.get(&session.id)
        && Instant::now() < *until
    {
        return;
    }
    make_room(map, &session.id);
    map.insert(
        session.id,
        (Known::Active(session), Instant::now() + ACTIVE_TTL),
    );
}

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
    use crate::auth::assurance::Method;

    fn pwd(at: OffsetDateTime) -> Assurance {
        Assurance::new(Amr::of(Method::Pwd), at)
    }

    fn active(id: Uuid) -> ActiveSession {
        let now = OffsetDateTime::now_utc();
        ActiveSession::new(id, Uuid::nil(), now, now, now, pwd(now))
    }

    #[test]
    fn a_row_read_across_an_assurance_change_is_not_believed() {
        let states = SessionStates::default();
        let id = Uuid::new_v4();
        let mark = states.changes();
        states.forget(&id);
        assert!(!states.active_unless_changed(active(id), mark));
        assert!(states.get(&id).is_none());
        assert!(states.active_unless_changed(active(id), states.changes()));
        assert!(matches!(states.get(&id), Some(Known::Active(_))));
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
    fn expiry_and_use_compare_as_the_calendar_times_do() {
        let t = OffsetDateTime::now_utc();
        let ns = |at: OffsetDateTime| at.unix_timestamp_nanos();
        let second = time::Duration::SECOND;
        let mut s = ActiveSession::new(
            Uuid::nil(),
            Uuid::nil(),
            t + 10 * second,
            t + 5 * second,
            t,
            pwd(t),
        );
        assert!(!s.expired(ns(t + 5 * second - time::Duration::NANOSECOND)));
        assert!(
            s.expired(ns(t + 5 * second)),
            "the idle limit is reached at its instant"
        );
        assert!(!s.used_before(ns(t + 59 * second), time::Duration::minutes(1)));
        assert!(s.used_before(ns(t + 60 * second), time::Duration::minutes(1)));
        s.used(t + 4 * second, Duration::from_secs(5));
        assert!(!s.expired(ns(t + 8 * second)), "use moved the idle limit");
        assert!(s.expired(ns(t + 10 * second)), "but never the absolute one");
        assert_eq!(s.nanos.idle_expires, ns(t + 9 * second));
        let before = ns(OffsetDateTime::now_utc());
        let clock = unix_nanos();
        assert!(clock >= before && clock - before < 1_000_000_000);
    }

    #[test]
    fn every_end_and_every_forgetting_moves_the_mark() {
        let states = SessionStates::default();
        let id = Uuid::new_v4();
        let before = states.ends();
        states.active(active(id));
        assert_eq!(
            states.ends(),
            before,
            "a session believed active ends nothing"
        );
        states.ended(id, AuthError::SessionRevoked);
        let after_end = states.ends();
        assert_ne!(after_end, before);
        states.forget_active();
        assert_ne!(states.ends(), after_end);
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
