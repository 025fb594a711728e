//! Refresh tokens: minted with a session, rotated on every use, and a session
//! never holds more than one unused token.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{refresh_token, session};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
    sea_query::Expr,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Opened, SessionStore, check_active};
use crate::auth::{AuthError, Error, RevocationReason, SessionId, UserId, accounts::now};

impl SessionStore {
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
        // A blocked account's refresh is a 401 like any ended session's (the
        // contract: login 403, refresh 401), not the 403 its access tokens get.
        check_active(&session, now).map_err(|e| match e {
            AuthError::AccountBlocked => AuthError::SessionRevoked,
            e => e,
        })?;
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
            refresh_expires_in: secs_until(successor.1, now),
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

    pub(super) async fn mint_refresh(
        &self,
        session: &session::Model,
    ) -> Result<(String, u64), Error> {
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
        Ok(secs_until(expires_at, now))
    }
}

/// Whole seconds from `now` until `at`, never negative.
fn secs_until(at: OffsetDateTime, now: OffsetDateTime) -> u64 {
    (at - now).whole_seconds().max(0) as u64
}

/// Lower-case hex of some bytes.
fn hex(bytes: impl IntoIterator<Item = u8>) -> String {
    bytes.into_iter().map(|b| format!("{b:02x}")).collect()
}

/// A new refresh token: 256 random bits, and their base64url text.
fn new_token() -> Result<([u8; 32], String), Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::caused("no randomness", e))?;
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
    hex(pad(spent).iter().zip(successor).map(|(p, s)| p ^ s))
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
    hex(Sha256::digest(token.as_bytes()))
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
