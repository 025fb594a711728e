//! Sessions and their refresh tokens: issue, check, rotate, revoke.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{refresh_token, session};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set, sea_query::Expr,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AuthError, SessionId, UserId,
    accounts::now,
    cache::Cache,
    events::{Revocation, RevocationBus, RevocationReason},
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
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A session with a plaintext refresh token the caller must hand out exactly once.
pub struct Opened {
    pub session: session::Model,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
}

/// One active session, as a session list shows it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub id: SessionId,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
    pub user_agent: Option<String>,
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

/// How long a session's state is believed without asking the database. Revocations
/// on this instance (and, on PostgreSQL, on others) replace the entry at once; the
/// TTL bounds how long a lost event could let a revoked session's token through.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// Sessions whose state is kept at once.
const CACHE_MAX: usize = 100_000;

/// What a request needs to know of an active session.
#[derive(Debug, Clone, Copy)]
pub struct ActiveSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: OffsetDateTime,
    idle_expires_at: OffsetDateTime,
    last_used_at: OffsetDateTime,
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

/// A cached session state.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Active(ActiveSession),
    Ended(AuthError),
}

/// How long this instance remembers that a session ended: past any access token's
/// life, so a load that read the row just before the revocation can never put the
/// session back.
const TOMBSTONE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The session store.
#[derive(Clone)]
pub struct SessionStore {
    db: Db,
    settings: SessionSettings,
    bus: RevocationBus,
    cache: Arc<Cache<Uuid, Slot>>,
    /// Sessions known to have ended; checked before the cache, never cleared.
    ended: Arc<Cache<Uuid, AuthError>>,
}

impl SessionStore {
    pub fn new(db: Db, settings: SessionSettings, bus: RevocationBus) -> Self {
        Self {
            db,
            settings,
            bus,
            cache: Arc::new(Cache::new(Some(CACHE_TTL), CACHE_MAX)),
            ended: Arc::new(Cache::new(Some(TOMBSTONE_TTL), CACHE_MAX)),
        }
    }

    /// Takes in a revocation made by another instance: this instance's cache
    /// refuses the session first, then the event goes to the local subscribers
    /// (the socket registry), so nothing here can still accept the session once a
    /// subscriber has acted on its end.
    pub fn revoked_elsewhere(&self, session: SessionId, user: UserId, reason: RevocationReason) {
        self.end(session.0, reason.ended_as());
        self.bus.publish(Revocation {
            session_id: session,
            user_id: user,
            reason,
            remote: true,
        });
    }

    /// Forgets every cached session state (after events may have been missed).
    /// What is known to have ended stays known.
    pub fn forget_cached(&self) {
        self.cache.clear();
    }

    /// Records that a session ended, before anyone can act on it.
    fn end(&self, id: Uuid, why: AuthError) {
        self.ended.insert(id, why);
        self.cache.insert(id, Slot::Ended(why));
    }

    pub fn bus(&self) -> &RevocationBus {
        &self.bus
    }

    /// Opens a session for a user who just proved who they are.
    pub async fn open(&self, user: UserId, client: ClientInfo) -> Result<Opened, Error> {
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
        let now = now();
        if let Some(why) = self.ended.get(&id.0) {
            return Err(why.into());
        }
        match self.cache.get(&id.0) {
            Some(Slot::Ended(e)) => Err(e.into()),
            Some(Slot::Active(s)) => {
                if now >= s.expires_at || now >= s.idle_expires_at {
                    self.end(id.0, AuthError::SessionExpired);
                    return Err(AuthError::SessionExpired.into());
                }
                if now - s.last_used_at >= TOUCH_EVERY {
                    let idle = self.settings.idle;
                    self.cache.update(&id.0, |slot| {
                        if let Slot::Active(s) = slot {
                            s.last_used_at = now;
                            s.idle_expires_at = now + idle;
                        }
                    });
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
        let session = self.fetch(id).await?;
        self.touch(&session).await?;
        let active = ActiveSession::from(&session);
        // A revocation that raced this read has left a tombstone: keep it.
        if self.ended.get(&id.0).is_none() {
            self.cache
                .insert_unless(id.0, Slot::Active(active), |slot| {
                    matches!(slot, Slot::Ended(_))
                });
        }
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

    async fn touch(&self, session: &session::Model) -> Result<(), Error> {
        let now = now();
        if now - session.last_used_at < TOUCH_EVERY {
            return Ok(());
        }
        Ok(self.touch_row(&self.db, session.id, now).await?)
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

    /// Exchanges a refresh token for its successor. A session has at most one
    /// unused refresh token: a spent one presented again within the grace window (a
    /// concurrent refresh) gets the same successor back; after the window it is
    /// treated as stolen and the whole session is revoked.
    pub async fn rotate(&self, presented: &str) -> Result<Opened, Error> {
        let hash = hash_token(presented);
        let mut token = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(hash))
            .one(&self.db)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let session = session::Entity::find_by_id(token.session_id)
            .one(&self.db)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let now = now();
        check_active(&session, now)?;
        if now >= token.expires_at {
            return Err(AuthError::InvalidRefreshToken.into());
        }

        if token.used_at.is_none() {
            let (raw, successor) = new_token()?;
            let successor_id = Uuid::new_v4();
            // Claim and mint in one transaction: a token is never spent without
            // its successor in place.
            let claimed = self
                .db
                .transaction(async |txn| {
                    // Of two racing requests exactly one claims the token here.
                    let claimed = refresh_token::Entity::update_many()
                        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
                        .col_expr(refresh_token::Column::ReplacedBy, Expr::value(successor_id))
                        .col_expr(
                            refresh_token::Column::SuccessorSealed,
                            Expr::value(seal(&raw, presented)),
                        )
                        .filter(refresh_token::Column::Id.eq(token.id))
                        .filter(refresh_token::Column::UsedAt.is_null())
                        .exec(txn)
                        .await?;
                    if claimed.rows_affected != 1 {
                        return Ok(None);
                    }
                    let expires_in = self
                        .insert_refresh(txn, &session, successor_id, &successor)
                        .await?;
                    self.touch_row(txn, session.id, now).await?;
                    Ok(Some(expires_in))
                })
                .await?;
            if let Some(refresh_expires_in) = claimed {
                return Ok(Opened {
                    session,
                    refresh_token: successor,
                    refresh_expires_in,
                });
            }
            // Another request claimed it first: answer as a re-presentation.
            token = refresh_token::Entity::find_by_id(token.id)
                .one(&self.db)
                .await?
                .ok_or(AuthError::InvalidRefreshToken)?;
        }

        let used_at = token.used_at.unwrap_or(now);
        if now - used_at > self.settings.refresh_grace {
            tracing::warn!(
                security_event = "refresh_token_reuse",
                user_id = %session.user_id,
                session_id = %session.id,
                "a used refresh token was presented again; revoking the session"
            );
            self.revoke(
                SessionId(session.id),
                UserId(session.user_id),
                RevocationReason::RefreshTokenReuse,
            )
            .await?;
            return Err(AuthError::RefreshTokenReused.into());
        }
        // Inside the grace window: the successor the first request got.
        let successor = self
            .unsealed_successor(&token, presented)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        Ok(Opened {
            session,
            refresh_token: successor.0,
            refresh_expires_in: (successor.1 - now).whole_seconds().max(0) as u64,
        })
    }

    /// The successor of a spent token and its expiry, if it can be unsealed with the
    /// presented plaintext and still matches its stored hash.
    async fn unsealed_successor(
        &self,
        token: &refresh_token::Model,
        presented: &str,
    ) -> Result<Option<(String, OffsetDateTime)>, Error> {
        let (Some(sealed), Some(id)) = (&token.successor_sealed, token.replaced_by) else {
            return Ok(None);
        };
        let Some(successor) = unseal(sealed, presented) else {
            return Ok(None);
        };
        let row = refresh_token::Entity::find_by_id(id).one(&self.db).await?;
        Ok(row
            .filter(|row| row.token_hash == hash_token(&successor))
            .map(|row| (successor, row.expires_at)))
    }

    async fn mint_refresh(&self, session: &session::Model) -> Result<(String, u64), Error> {
        let (_, token) = new_token()?;
        let expires_in = self
            .insert_refresh(&self.db, session, Uuid::new_v4(), &token)
            .await?;
        Ok((token, expires_in))
    }

    /// Stores a refresh token's hash; returns its lifetime in seconds.
    async fn insert_refresh(
        &self,
        conn: &impl ConnectionTrait,
        session: &session::Model,
        id: Uuid,
        token: &str,
    ) -> Result<u64, DbErr> {
        let now = now();
        let expires_at = (now + self.settings.idle).min(session.expires_at);
        refresh_token::ActiveModel {
            id: Set(id),
            session_id: Set(session.id),
            token_hash: Set(hash_token(token)),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
            replaced_by: Set(None),
            successor_sealed: Set(None),
        }
        .insert(conn)
        .await?;
        Ok((expires_at - now).whole_seconds().max(0) as u64)
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
            self.bus.publish(Revocation {
                session_id: id,
                user_id: user,
                reason,
                remote: false,
            });
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

    /// Ends every active session of a user.
    pub async fn revoke_all(&self, user: UserId, reason: RevocationReason) -> Result<u64, Error> {
        let sessions = self.list_active(user).await?;
        let mut count = 0;
        for s in sessions {
            if self.revoke(SessionId(s.id), user, reason).await? {
                count += 1;
            }
        }
        Ok(count)
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

/// Why a session is not active, if it is not.
fn check_active(session: &session::Model, now: OffsetDateTime) -> Result<(), AuthError> {
    if session.revoked_at.is_some() {
        return Err(AuthError::SessionRevoked);
    }
    if now >= session.expires_at || now >= session.idle_expires_at {
        return Err(AuthError::SessionExpired);
    }
    Ok(())
}

/// A new refresh token: 256 random bits, and their base64url text.
fn new_token() -> Result<([u8; 32], String), Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok((bytes, URL_SAFE_NO_PAD.encode(bytes)))
}

/// The one-time pad that seals a successor: SHA-256 of the spent token's
/// plaintext, which the database never holds, so a database reader cannot unseal
/// it and only a holder of the spent token can.
fn pad(spent: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"doorman refresh successor v1\0");
    h.update(spent.as_bytes());
    h.finalize().into()
}

fn seal(successor: &[u8; 32], spent: &str) -> String {
    pad(spent)
        .iter()
        .zip(successor)
        .map(|(p, s)| format!("{:02x}", p ^ s))
        .collect()
}

fn unseal(sealed: &str, spent: &str) -> Option<String> {
    if sealed.len() != 64 || !sealed.is_ascii() {
        return None;
    }
    let pad = pad(spent);
    let mut raw = [0u8; 32];
    for (i, out) in raw.iter_mut().enumerate() {
        let byte = u8::from_str_radix(&sealed[2 * i..2 * i + 2], 16).ok()?;
        *out = byte ^ pad[i];
    }
    Some(URL_SAFE_NO_PAD.encode(raw))
}

/// Refresh tokens carry 256 random bits, so a fast hash is enough: nobody can
/// brute-force the preimage, and the database never holds a usable token.
fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_successor_opens_only_with_the_spent_token() {
        let (raw, text) = new_token().unwrap();
        let sealed = seal(&raw, "spent-token");
        assert_eq!(
            unseal(&sealed, "spent-token").as_deref(),
            Some(text.as_str())
        );
        assert_ne!(
            unseal(&sealed, "another-token").as_deref(),
            Some(text.as_str())
        );
        assert_eq!(unseal("zz", "spent-token"), None);
        assert_eq!(unseal(&"é".repeat(32), "spent-token"), None);
    }
}
