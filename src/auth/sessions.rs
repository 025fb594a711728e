//! Sessions and their refresh tokens: issue, check, rotate, revoke.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{refresh_token, session};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::Expr,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AuthError, SessionId, UserId,
    accounts::now,
    events::{Revocation, RevocationBus, RevocationReason},
};
use crate::error::Error;

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

/// How stale `last_used_at` may get before a request writes it again: one write per
/// session per minute instead of one per request.
const TOUCH_EVERY: time::Duration = time::Duration::seconds(60);

/// The session store.
#[derive(Clone)]
pub struct SessionStore {
    db: DatabaseConnection,
    settings: SessionSettings,
    bus: RevocationBus,
}

impl SessionStore {
    pub fn new(db: DatabaseConnection, settings: SessionSettings, bus: RevocationBus) -> Self {
        Self { db, settings, bus }
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
        let (refresh_token, refresh_expires_in) = self.mint_refresh(&session, None).await?;
        Ok(Opened {
            session,
            refresh_token,
            refresh_expires_in,
        })
    }

    /// The session if it is active; otherwise why not. Records use (debounced).
    pub async fn active(&self, id: SessionId) -> Result<session::Model, Error> {
        let session = session::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        check_active(&session, now())?;
        self.touch(&session).await?;
        Ok(session)
    }

    async fn touch(&self, session: &session::Model) -> Result<(), Error> {
        let now = now();
        if now - session.last_used_at < TOUCH_EVERY {
            return Ok(());
        }
        session::Entity::update_many()
            .col_expr(session::Column::LastUsedAt, Expr::value(now))
            .col_expr(
                session::Column::IdleExpiresAt,
                Expr::value(now + self.settings.idle),
            )
            .filter(session::Column::Id.eq(session.id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Exchanges a refresh token for its successor. A token presented again after
    /// the grace window revokes the whole session.
    pub async fn rotate(&self, presented: &str) -> Result<Opened, Error> {
        let hash = hash_token(presented);
        let token = refresh_token::Entity::find()
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

        let successor = Uuid::new_v4();
        let used_at = match token.used_at {
            Some(used_at) => used_at,
            None => {
                // Claim the token; of two racing requests exactly one wins here.
                let claimed = refresh_token::Entity::update_many()
                    .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
                    .col_expr(refresh_token::Column::ReplacedBy, Expr::value(successor))
                    .filter(refresh_token::Column::Id.eq(token.id))
                    .filter(refresh_token::Column::UsedAt.is_null())
                    .exec(&self.db)
                    .await?;
                if claimed.rows_affected == 1 {
                    now
                } else {
                    refresh_token::Entity::find_by_id(token.id)
                        .one(&self.db)
                        .await?
                        .and_then(|t| t.used_at)
                        .unwrap_or(now)
                }
            }
        };
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

        self.touch_now(&session).await?;
        let (refresh_token, refresh_expires_in) =
            self.mint_refresh(&session, Some(successor)).await?;
        Ok(Opened {
            session,
            refresh_token,
            refresh_expires_in,
        })
    }

    async fn touch_now(&self, session: &session::Model) -> Result<(), Error> {
        let now = now();
        session::Entity::update_many()
            .col_expr(session::Column::LastUsedAt, Expr::value(now))
            .col_expr(
                session::Column::IdleExpiresAt,
                Expr::value(now + self.settings.idle),
            )
            .filter(session::Column::Id.eq(session.id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn mint_refresh(
        &self,
        session: &session::Model,
        id: Option<Uuid>,
    ) -> Result<(String, u64), Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = now();
        let expires_at = (now + self.settings.idle).min(session.expires_at);
        refresh_token::ActiveModel {
            id: Set(id.unwrap_or_else(Uuid::new_v4)),
            session_id: Set(session.id),
            token_hash: Set(hash_token(&token)),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
            replaced_by: Set(None),
        }
        .insert(&self.db)
        .await?;
        let expires_in = (expires_at - now).whole_seconds().max(0) as u64;
        Ok((token, expires_in))
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

/// Refresh tokens carry 256 random bits, so a fast hash is enough: nobody can
/// brute-force the preimage, and the database never holds a usable token.
fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
