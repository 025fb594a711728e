//! The single-use tokens that mailed links carry: email verification (24 h) and
//! password reset (30 min). A token is 256 random bits; only its SHA-256 hash is
//! stored, beside a digest of the password hash it was issued under, so a password
//! change (or a reset) makes every outstanding token useless. A user has at most
//! one outstanding token per purpose: issuing one deletes the older. Using one
//! deletes it, and of two racing uses exactly one wins.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{email_token, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Error, accounts::now, db::Db};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Proves the user reads mail at their address (`verify_email`, 24 h).
    VerifyEmail,
    /// Sets a new password without the old one (`password_reset`, 30 min).
    PasswordReset,
}

impl Purpose {
    /// The name stored in `email_tokens.purpose` (and the mail's kind in logs).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::PasswordReset => "password_reset",
        }
    }

    /// How long a token stays usable.
    pub(crate) fn lifetime(self) -> time::Duration {
        match self {
            Purpose::VerifyEmail => time::Duration::hours(24),
            // Short: a reset link is a password in transit, and mailboxes leak.
            Purpose::PasswordReset => time::Duration::minutes(30),
        }
    }
}

/// A token to mail, with the address it goes to: hand it out exactly once. Its
/// `Debug` never shows the token.
pub(crate) struct Mailable {
    pub purpose: Purpose,
    /// The user's (normalised) address.
    pub to: String,
    /// The user's display name, for the greeting.
    pub display_name: String,
    /// The token itself: only in the mailed link, never in a log.
    pub token: String,
}

impl std::fmt::Debug for Mailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailable")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// The longest token anyone could have been sent (43 base64url characters); a
/// longer one is refused without a database read.
const MAX_TOKEN_CHARS: usize = 128;

/// A digest of a password hash (itself salted): what a token is bound to. A
/// database reader learns nothing from it that the hash does not already say.
pub(super) fn binding(password_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"doorman email token binding v1\0");
    h.update(password_hash.as_bytes());
    hex(&h.finalize()[..16])
}

/// Issues a token of `purpose` for `user`, replacing an outstanding one.
pub(super) async fn issue(
    db: &Db,
    user: &user::Model,
    purpose: Purpose,
) -> Result<Mailable, Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| Error::caused("no randomness", e))?;
    let token = URL_SAFE_NO_PAD.encode(raw);
    let now = now();
    let row = email_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        purpose: Set(purpose.as_str().to_owned()),
        token_hash: Set(hash(&token)),
        password_binding: Set(binding(&user.password_hash)),
        created_at: Set(now),
        expires_at: Set(now + purpose.lifetime()),
    };
    db.transaction(async |txn| {
        email_token::Entity::delete_many()
            .filter(email_token::Column::UserId.eq(user.id))
            .filter(email_token::Column::Purpose.eq(purpose.as_str()))
            .exec(txn)
            .await?;
        row.insert(txn).await?;
        Ok(())
    })
    .await?;
    Ok(Mailable {
        purpose,
        to: user.email.clone(),
        display_name: user.display_name.clone(),
        token,
    })
}

/// The outstanding token `presented` for `purpose` and its user: unexpired, and
/// issued under the user's current password. Anything else is
/// `InvalidEmailToken`, the same answer whatever the reason.
pub(super) async fn check(
    db: &Db,
    presented: &str,
    purpose: Purpose,
) -> Result<(email_token::Model, user::Model), Error> {
    if presented.is_empty() || presented.len() > MAX_TOKEN_CHARS {
        return Err(Error::InvalidEmailToken);
    }
    let row = email_token::Entity::find()
        .filter(email_token::Column::TokenHash.eq(hash(presented)))
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .one(db)
        .await?
        .ok_or(Error::InvalidEmailToken)?;
    if now() >= row.expires_at {
        return Err(Error::InvalidEmailToken);
    }
    let user = user::Entity::find_by_id(row.user_id)
        .one(db)
        .await?
        .ok_or(Error::InvalidEmailToken)?;
    if binding(&user.password_hash) != row.password_binding {
        return Err(Error::InvalidEmailToken);
    }
    Ok((row, user))
}

/// Whether `user` has an unexpired token of `purpose` outstanding.
pub(super) async fn outstanding(db: &Db, user: Uuid, purpose: Purpose) -> Result<bool, Error> {
    Ok(email_token::Entity::find()
        .filter(email_token::Column::UserId.eq(user))
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .filter(email_token::Column::ExpiresAt.gt(now()))
        .one(db)
        .await?
        .is_some())
}

/// Spends a checked token: `true` for exactly one of any racing callers.
pub(super) async fn spend(conn: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    let deleted = email_token::Entity::delete_many()
        .filter(email_token::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(deleted.rows_affected == 1)
}

/// Tokens carry 256 random bits: a fast hash is enough (see the refresh tokens).
fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_password_hash_breaks_the_binding() {
        let a = binding("$argon2id$v=19$m=19456,t=2,p=1$salt$aaaa");
        let b = binding("$argon2id$v=19$m=19456,t=2,p=1$salt$bbbb");
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn the_debug_form_never_shows_the_token() {
        let m = Mailable {
            purpose: Purpose::PasswordReset,
            to: "ann@example.org".into(),
            display_name: "ann".into(),
            token: "s3cr3t-token".into(),
        };
        let shown = format!("{m:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("ann@"),
            "{shown}"
        );
    }
}
