//! Pending steps of a sign-in or a ceremony, single-use and short-lived: the
//! second login step after a password (the `mfa_token`), and the passkey
//! ceremonies. A token is 256 random bits handed to the client; only its SHA-256
//! is stored, in `auth_challenges`, with what the next step needs. Taking one
//! deletes it, so of two racing uses exactly one wins; expired ones are deleted
//! whenever a new one is made.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::auth_challenge;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};

use super::{Error, SessionId, UserId, accounts::now, db::Db};

/// The longest token this server hands out is 43 characters; a longer one is
/// refused without a database read.
const MAX_TOKEN_CHARS: usize = 128;

/// What a challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The second step of a login whose password was right (`mfa_token`).
    MfaLogin,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::MfaLogin => "mfa_login",
        }
    }

    /// How long the next step may take.
    pub(crate) fn lifetime(self) -> time::Duration {
        match self {
            // Long enough to open an authenticator app and type a code.
            Purpose::MfaLogin => time::Duration::minutes(5),
        }
    }
}

/// A pending step, as stored.
pub(crate) struct Pending {
    pub user: Option<UserId>,
    pub state: Option<String>,
}

impl From<auth_challenge::Model> for Pending {
    fn from(m: auth_challenge::Model) -> Self {
        Self {
            user: m.user_id.map(UserId),
            state: m.state,
        }
    }
}

/// Makes a challenge; returns the token for the client (hand it out once).
pub(crate) async fn create(
    db: &Db,
    purpose: Purpose,
    user: Option<UserId>,
    session: Option<SessionId>,
    state: Option<String>,
) -> Result<String, Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| Error::caused("no randomness", e))?;
    let token = URL_SAFE_NO_PAD.encode(raw);
    let now = now();
    auth_challenge::Entity::delete_many()
        .filter(auth_challenge::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    auth_challenge::ActiveModel {
        token_hash: Set(hash(&token)),
        purpose: Set(purpose.as_str().to_owned()),
        user_id: Set(user.map(|u| u.0)),
        session_id: Set(session.map(|s| s.0)),
        state: Set(state),
        expires_at: Set(now + purpose.lifetime()),
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// The unexpired challenge of `purpose` with this token, left in place (a wrong
/// code may be retried while the challenge lives); `None` for anything else.
pub(crate) async fn peek(db: &Db, purpose: Purpose, token: &str) -> Result<Option<Pending>, Error> {
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Ok(None);
    }
    Ok(auth_challenge::Entity::find_by_id(hash(token))
        .filter(auth_challenge::Column::Purpose.eq(purpose.as_str()))
        .filter(auth_challenge::Column::ExpiresAt.gt(now()))
        .one(db)
        .await?
        .map(Pending::from))
}

/// Takes (deletes) the unexpired challenge of `purpose` with this token: `true`
/// for exactly one caller.
pub(crate) async fn take(db: &Db, purpose: Purpose, token: &str) -> Result<bool, Error> {
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Ok(false);
    }
    let deleted = auth_challenge::Entity::delete_many()
        .filter(auth_challenge::Column::TokenHash.eq(hash(token)))
        .filter(auth_challenge::Column::Purpose.eq(purpose.as_str()))
        .filter(auth_challenge::Column::ExpiresAt.gt(now()))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected == 1)
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
