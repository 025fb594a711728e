//! Sessions: the store of session rows ([`SessionStore`], here), what this
//! instance believes about them ([`state`]), and the rotation of their refresh
//! tokens ([`rotation`]).

use std::{sync::Arc, time::Duration};

use entity::session;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, sea_query::Expr,
};
use time::OffsetDateTime;
use uuid::Uuid;

mod rotation;
mod state;
#[cfg(test)]
mod store_tests;

pub(crate) use state::unix_nanos;
pub use state::{ActiveSession, SessionEnds};
use state::{Known, SessionStates};

use super::{
    AuthError, SessionId, UserId,
    accounts::now,
    activity,
    assurance::{Aal, Amr, Assurance, Method},
    events::{
        AssuranceChange, FactorChange, Revocation, RevocationReason, SessionBus, SessionEvent,
    },
};
use super::{Error, db::Db};

/// Lifetimes and windows of sessions and refresh tokens.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Absolute lifetime of a session.
    pub absolute: Duration,
    /// A session unused this long expires.
    pub idle: Duration,
    /// A just-used refresh token presented again within this window is a concurrent
    /// refresh, not a theft.
    pub refresh_grace: Duration,
}

/// Where a session was opened from, for the session list.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The request's `User-Agent`, when it sent one.
    pub user_agent: Option<String>,
    /// The client IP (behind a trusted proxy, the one it reports), when known.
    pub ip: Option<String>,
}

/// A session with a plaintext refresh token the caller must hand out exactly once.
pub struct Opened {
    pub session: session::Model,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
}

impl Opened {
    /// The new session's assurance.
    pub fn assurance(&self) -> Assurance {
        state::assurance_of(&self.session)
    }
}

/// One active session, as a session list shows it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The session's id.
    pub id: SessionId,
    /// When it was opened (the login).
    pub created_at: OffsetDateTime,
    /// When it was last used (recorded at most once a minute).
    pub last_used_at: OffsetDateTime,
    /// Its absolute expiry.
    pub expires_at: OffsetDateTime,
    /// When it expires unless used again (last use plus the idle window).
    pub idle_expires_at: OffsetDateTime,
    /// The `User-Agent` of the login, when it sent one.
    pub user_agent: Option<String>,
    /// The client IP of the login, when known.
    pub ip: Option<String>,
}

impl From<&session::Model> for SessionSummary {
    fn from(s: &session::Model) -> Self {
        Self {
            id: SessionId(s.id),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            idle_expires_at: s.idle_expires_at,
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
        }
    }
}

/// How stale `last_used_at` may get before a request writes it again: one write per
/// session per minute instead of one per request.
const TOUCH_EVERY: time::Duration = time::Duration::seconds(60);

/// The session store: session rows, what this instance believes about them, and
/// the revocation bus their ends are announced on.
#[derive(Clone)]
pub struct SessionStore {
    db: Db,
    settings: SessionSettings,
    bus: SessionBus,
    states: Arc<SessionStates>,
}

impl SessionStore {
    pub fn new(db: Db, settings: SessionSettings, bus: SessionBus) -> Self {
        Self {
            db,
            settings,
            bus,
            states: Arc::new(SessionStates::default()),
        }
    }

    /// Takes in a revocation made by another instance: this instance's cache
    /// refuses the session first, then the event goes to the local subscribers
    /// (the socket registry), so nothing here can still accept the session once a
    /// subscriber has acted on its end.
    pub fn revoked_elsewhere(&self, session: SessionId, user: UserId, reason: RevocationReason) {
        self.end(session.0, reason.ended_as());
        self.bus.publish(SessionEvent::Ended(Revocation {
            session_id: session,
            user_id: user,
            reason,
            remote: true,
            at: std::time::Instant::now(),
        }));
    }

    /// Forgets every cached session state (after events may have been missed).
    /// What is known to have ended stays known.
    pub fn forget_cached(&self) {
        self.states.forget_active();
    }

    /// The mark of the session ends recorded so far (see [`SessionEnds`]).
    pub fn ends(&self) -> SessionEnds {
        self.states.ends()
    }

    /// Records that a session ended, before anyone can act on it.
    fn end(&self, id: Uuid, why: AuthError) {
        self.states.ended(id, why);
    }

    pub fn bus(&self) -> &SessionBus {
        &self.bus
    }

    /// Opens a session for a user who just proved who they are, by `amr`.
    pub async fn open(&self, user: UserId, client: ClientInfo, amr: Amr) -> Result<Opened, Error> {
        let now = now();
        let session = session::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(user.0),
            created_at: Set(now),
            last_used_at: Set(now),
            expires_at: Set(now + self.settings.absolute),
            idle_expires_at: Set(now + self.settings.idle),
            user_agent: Set(client.user_agent.map(|ua| ua.chars().take(256).collect())),
            ip: Set(client.ip),
            revoked_at: Set(None),
            revoked_reason: Set(None),
            aal: Set(amr.aal().level()),
            amr: Set(amr.to_column()),
            auth_at: Set(Some(now)),
        }
        .insert(&self.db)
        .await?;
        let (refresh_token, refresh_expires_in) = self.mint_refresh(&session).await?;
        Ok(Opened {
            session,
            refresh_token,
            refresh_expires_in,
        })
    }

    /// The session if it is active; otherwise why not. Answers from the cache when it
    /// can (the hot path of every authenticated request); records use, debounced.
    pub async fn active(&self, id: SessionId) -> Result<ActiveSession, Error> {
        let clock = state::unix_nanos();
        let known = self.states.get(&id.0);
        // Literal labels make static keys: no allocation per request.
        if known.is_some() {
            metrics::counter!("doorman_cache_lookups_total", "cache" => "sessions", "result" => "hit")
                .increment(1);
        } else {
            metrics::counter!("doorman_cache_lookups_total", "cache" => "sessions", "result" => "miss")
                .increment(1);
        }
        match known {
            Some(Known::Ended(e)) => Err(e.into()),
            Some(Known::Active(s)) => {
                if s.expired(clock) {
                    self.end(id.0, AuthError::SessionExpired);
                    return Err(AuthError::SessionExpired.into());
                }
                if s.used_before(clock, TOUCH_EVERY) {
                    // A calendar time only for what is written.
                    let now = now();
                    self.states.touched(&id.0, now, self.settings.idle);
                    // Off the request path: a lost write only shortens the idle window.
                    let store = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = store.touch_row(&store.db, id.0, now).await {
                            tracing::warn!(error = %e, "could not record session use");
                        }
                    });
                }
                Ok(s)
            }
            // Boxed so the database future does not bloat the hot path's (see
            // `TokenKeys::verify`).
            None => Box::pin(self.load(id)).await,
        }
    }

    /// The session's state straight from the database, refreshing the cache and
    /// recording use: the path of cache misses.
    async fn load(&self, id: SessionId) -> Result<ActiveSession, Error> {
        let mark = self.states.changes();
        let mut session = self.fetch(id).await?;
        if self.states.changes() != mark {
            // An assurance changed (and was announced) while the row was read: read
            // it again, so that nobody acts on the level from before the change.
            session = self.fetch(id).await?;
        }
        let mut active = ActiveSession::from(&session);
        // Believe what was just written, or the next request would write it again.
        if let Some(now) = self.touch(&session).await? {
            active.used(now, self.settings.idle);
        }
        self.states.active_unless_changed(active, mark);
        Ok(active)
    }

    /// Whether the session is still active, from the database and without recording
    /// use: the re-check of live sockets, which must neither trust the cache nor
    /// keep an idle session alive.
    pub async fn check(&self, id: SessionId) -> Result<(), Error> {
        self.fetch(id).await.map(|_| ())
    }

    async fn fetch(&self, id: SessionId) -> Result<session::Model, Error> {
        let Some(session) = session::Entity::find_by_id(id.0).one(&self.db).await? else {
            self.end(id.0, AuthError::SessionRevoked);
            return Err(AuthError::SessionRevoked.into());
        };
        if let Err(e) = check_active(&session, now()) {
            self.end(id.0, e);
            return Err(e.into());
        }
        Ok(session)
    }

    /// Records use unless it was recorded less than [`TOUCH_EVERY`] ago; returns
    /// the time written, if it wrote.
    async fn touch(&self, session: &session::Model) -> Result<Option<OffsetDateTime>, Error> {
        let now = now();
        if now - session.last_used_at < TOUCH_EVERY {
            return Ok(None);
        }
        self.touch_row(&self.db, session.id, now).await?;
        Ok(Some(now))
    }

    async fn touch_row(
        &self,
        conn: &impl ConnectionTrait,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), DbErr> {
        session::Entity::update_many()
            .col_expr(session::Column::LastUsedAt, Expr::value(now))
            .col_expr(
                session::Column::IdleExpiresAt,
                Expr::value(now + self.settings.idle),
            )
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Ends a session and tells the subscribers. `false` if it had already ended.
    pub async fn revoke(
        &self,
        id: SessionId,
        user: UserId,
        reason: RevocationReason,
    ) -> Result<bool, Error> {
        let result = session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now()))
            .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
            .filter(session::Column::Id.eq(id.0))
            .filter(session::Column::UserId.eq(user.0))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        let revoked = result.rows_affected > 0;
        if revoked {
            // Before anyone hears of it: this instance refuses the session at once.
            self.end(id.0, reason.ended_as());
            tracing::info!(
                security_event = "session_revoked",
                user_id = %user,
                session_id = %id,
                reason = reason.as_str(),
                "session revoked"
            );
            self.bus.publish(SessionEvent::Ended(Revocation {
                session_id: id,
                user_id: user,
                reason,
                remote: false,
                at: std::time::Instant::now(),
            }));
            metrics::counter!("doorman_revocations_total", "reason" => reason.as_str())
                .increment(1);
            if let Some(kind) = activity::Kind::of_revocation(reason) {
                activity::record(&self.db, user, kind, Some(id), None).await;
            }
        }
        Ok(revoked)
    }

    /// Ends one of `user`'s active sessions; `false` (a 404 for the API) for a
    /// session that is not theirs, not active, or does not exist.
    pub async fn revoke_own(
        &self,
        id: SessionId,
        user: UserId,
        reason: RevocationReason,
    ) -> Result<bool, Error> {
        let Some(session) = session::Entity::find_by_id(id.0).one(&self.db).await? else {
            return Ok(false);
        };
        if session.user_id != user.0 || check_active(&session, now()).is_err() {
            return Ok(false);
        }
        self.revoke(id, user, reason).await
    }

    /// Ends every active session of a user but `keep` (if given).
    pub async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: RevocationReason,
    ) -> Result<u64, Error> {
        let sessions = self.list_active(user).await?;
        let mut count = 0;
        for s in sessions
            .into_iter()
            .filter(|s| Some(SessionId(s.id)) != keep)
        {
            if self.revoke(SessionId(s.id), user, reason).await? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Records a re-authentication of an active session by `method`: `auth_at`
    /// becomes now, `method` joins its `amr`, and its level is what they reach.
    /// `None` if the session is no longer active.
    pub async fn step_up(
        &self,
        id: SessionId,
        user: UserId,
        method: Method,
    ) -> Result<Option<Assurance>, Error> {
        let session = self.fetch(id).await?;
        if session.user_id != user.0 {
            return Ok(None);
        }
        let was = state::assurance_of(&session);
        let amr = was.amr.with(method);
        let now = now();
        let updated = session::Entity::update_many()
            .col_expr(session::Column::Aal, Expr::value(amr.aal().level()))
            .col_expr(session::Column::Amr, Expr::value(amr.to_column()))
            .col_expr(session::Column::AuthAt, Expr::value(now))
            .filter(session::Column::Id.eq(id.0))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            return Ok(None);
        }
        let lowered = Vec::new();
        self.assurance_changed(user, vec![id], lowered, None);
        Ok(Some(Assurance::new(amr, now)))
    }

    /// Takes `method` out of the `amr` of every active session of `user` that used
    /// it (its factor was removed): a session it held at aal2 drops to aal1.
    /// Announces the change, with `factor` for the user's sockets; returns the
    /// sessions that dropped.
    pub async fn forget_method(
        &self,
        user: UserId,
        method: Method,
        factor: Option<FactorChange>,
    ) -> Result<Vec<SessionId>, Error> {
        let mut changed = Vec::new();
        let mut lowered = Vec::new();
        for s in self.list_active(user).await? {
            let was = state::assurance_of(&s);
            if !was.amr.contains(method) {
                continue;
            }
            let amr = was.amr.without(method);
            session::Entity::update_many()
                .col_expr(session::Column::Aal, Expr::value(amr.aal().level()))
                .col_expr(session::Column::Amr, Expr::value(amr.to_column()))
                .filter(session::Column::Id.eq(s.id))
                .exec(&self.db)
                .await?;
            changed.push(SessionId(s.id));
            if was.aal == Aal::Aal2 && amr.aal() == Aal::Aal1 {
                lowered.push(SessionId(s.id));
            }
        }
        self.assurance_changed(user, changed, lowered.clone(), factor);
        Ok(lowered)
    }

    /// Announces a factor added to `user`'s account (no session changes).
    pub fn factor_added(&self, user: UserId, method: Method) {
        self.assurance_changed(
            user,
            Vec::new(),
            Vec::new(),
            Some(FactorChange::Added(method)),
        );
    }

    /// Forgets the changed sessions' cached state here, then tells the subscribers
    /// (the socket registry, the relay to other instances).
    fn assurance_changed(
        &self,
        user: UserId,
        changed: Vec<SessionId>,
        lowered: Vec<SessionId>,
        factor: Option<FactorChange>,
    ) {
        for id in &changed {
            self.states.forget(&id.0);
        }
        self.bus.publish(SessionEvent::Assurance(AssuranceChange {
            user_id: user,
            changed,
            lowered,
            factor,
            remote: false,
        }));
    }

    /// Takes in an assurance change made by another instance: the cache first,
    /// then the local subscribers.
    pub fn assurance_changed_elsewhere(&self, change: AssuranceChange) {
        for id in &change.changed {
            self.states.forget(&id.0);
        }
        self.bus.publish(SessionEvent::Assurance(change));
    }

    /// A user's active sessions, newest first.
    pub async fn list_active(&self, user: UserId) -> Result<Vec<session::Model>, Error> {
        let now = now();
        Ok(session::Entity::find()
            .filter(session::Column::UserId.eq(user.0))
            .filter(session::Column::RevokedAt.is_null())
            .order_by_desc(session::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .filter(|s| check_active(s, now).is_ok())
            .collect())
    }
}

/// Ends every active session, in `conn` (the transaction of `doorman keys retire
/// --revoke-sessions`), recording a `session_revoked` activity event for each;
/// returns how many. Running instances do not hear of it here: each re-checks its
/// sessions when it sees the key retired in the same transaction.
pub(crate) async fn revoke_every(
    conn: &impl ConnectionTrait,
    reason: RevocationReason,
) -> Result<u64, DbErr> {
    revoke_where(conn, reason, sea_orm::Condition::all()).await
}

/// Ends every active session of a user whose address is not verified, in `conn`
/// (at the start of a server that requires verified addresses: such sessions,
/// opened before, must not go on; their access tokens stop at once, and sockets
/// cannot open with them). Returns how many.
pub(crate) async fn revoke_unverified(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    use sea_orm::sea_query::{Expr as E, ExprTrait, Query};
    let unverified = Query::select()
        .column(entity::user::Column::Id)
        .from(entity::user::Entity)
        .and_where(E::col(entity::user::Column::EmailVerifiedAt).is_null())
        .to_owned();
    revoke_where(
        conn,
        RevocationReason::Revoked,
        sea_orm::Condition::all().add(E::col(session::Column::UserId).in_subquery(unverified)),
    )
    .await
}

/// [`revoke_every`] of the sessions that also meet `only`.
async fn revoke_where(
    conn: &impl ConnectionTrait,
    reason: RevocationReason,
    only: sea_orm::Condition,
) -> Result<u64, DbErr> {
    let now = now();
    let ended: Vec<(Uuid, Uuid)> = session::Entity::find()
        .select_only()
        .column(session::Column::UserId)
        .column(session::Column::Id)
        .filter(only)
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .filter(session::Column::IdleExpiresAt.gt(now))
        .into_tuple()
        .all(conn)
        .await?;
    for chunk in ended.chunks(1000) {
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
            .filter(session::Column::Id.is_in(chunk.iter().map(|&(_, id)| id)))
            .filter(session::Column::RevokedAt.is_null())
            .exec(conn)
            .await?;
    }
    if let Some(kind) = activity::Kind::of_revocation(reason) {
        activity::record_many(conn, kind, &ended).await?;
    }
    Ok(ended.len() as u64)
}

/// Why a session is not active, if it is not.
fn check_active(session: &session::Model, now: OffsetDateTime) -> Result<(), AuthError> {
    if session.revoked_at.is_some() {
        // A block says so (403 `account_blocked`) wherever the session is read;
        // every other end is `session_revoked`, as before.
        let blocked =
            session.revoked_reason.as_deref() == Some(RevocationReason::AccountBlocked.as_str());
        return Err(if blocked {
            AuthError::AccountBlocked
        } else {
            AuthError::SessionRevoked
        });
    }
    if now >= session.expires_at || now >= session.idle_expires_at {
        return Err(AuthError::SessionExpired);
    }
    Ok(())
}
