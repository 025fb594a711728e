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
    /// A passkey registration, bound to the session that started it; its token is
    /// the WebAuthn challenge.
    PasskeyRegister,
    /// A passkey assertion (sign-in or re-authentication); its token is the
    /// WebAuthn challenge.
    PasskeyAssertion,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::MfaLogin => "mfa_login",
            Purpose::PasskeyRegister => "passkey_register",
            Purpose::PasskeyAssertion => "passkey_assertion",
        }
    }

    /// How long the next step may take.
    pub(crate) fn lifetime(self) -> time::Duration {
        match self {
            // Long enough to open an authenticator app and type a code, or to
            // find a security key (webauthn-rs's default ceremony timeout).
            Purpose::MfaLogin | Purpose::PasskeyRegister | Purpose::PasskeyAssertion => {
                time::Duration::minutes(5)
            }
        }
    }
}

/// A pending step, as stored.
pub(crate) struct Pending {
    pub user: Option<UserId>,
    pub session: Option<SessionId>,
    pub state: Option<String>,
}

impl From<auth_challenge::Model> for Pending {
    fn from(m: auth_challenge::Model) -> Self {
        Self {
            user: m.user_id.map(UserId),
            session: m.session_id.map(SessionId),
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
    store(db, purpose, &token, user, session, state).await?;
    Ok(token)
}

/// Stores a challenge under a token made elsewhere (a WebAuthn challenge, which
/// the ceremony's answer carries back in its client data).
pub(crate) async fn store(
    db: &Db,
    purpose: Purpose,
    token: &str,
    user: Option<UserId>,
    session: Option<SessionId>,
    state: Option<String>,
) -> Result<(), Error> {
    let now = now();
    auth_challenge::Entity::delete_many()
        .filter(auth_challenge::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    auth_challenge::ActiveModel {
        token_hash: Set(hash(token)),
        purpose: Set(purpose.as_str().to_owned()),
        user_id: Set(user.map(|u| u.0)),
        session_id: Set(session.map(|s| s.0)),
        state: Set(state),
        expires_at: Set(now + purpose.lifetime()),
    }
    .insert(db)
    .await?;
    Ok(())
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

/// Takes (deletes) the unexpired challenge of `purpose` with this token and
/// returns it: for exactly one caller, who then checks the answer against it.
pub(crate) async fn take_pending(
    db: &Db,
    purpose: Purpose,
    token: &str,
) -> Result<Option<Pending>, Error> {
    let Some(found) = peek(db, purpose, token).await? else {
        return Ok(None);
    };
    Ok(take(db, purpose, token).await?.then_some(found))
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
