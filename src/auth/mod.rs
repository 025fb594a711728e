//! The auth core: who is calling, and the sessions and tokens that say so.
//!
//! It knows neither the HTTP API nor the WebSocket route; both ask [`AuthSource`],
//! the one resolver. Revocations leave it as events on a
//! [`RevocationBus`], which live-connection holders subscribe to.

pub mod accounts;
mod auth_source;
mod cache;
pub mod cookies;
pub mod db;
pub mod devices;
mod error;
pub mod events;
mod identity;
pub mod origin;
mod passwords;
pub mod sessions;
pub mod tokens;

use std::time::Duration;

use entity::user;

pub use auth_source::{AuthSource, Presented, credential_in_headers};
pub use error::{AuthError, Error};
pub use events::{Revocation, RevocationBus, RevocationReason};
pub use identity::{CredentialSource, Identity, SessionId, UserId};
pub use passwords::Passwords;

use cache::Cache;
use cookies::CookieSettings;
use db::Db;
use devices::DeviceCookies;
use origin::OriginPolicy;
use sessions::{ClientInfo, Opened, SessionSettings, SessionStore};
use tokens::{AccessToken, TokenKeys};

/// What the auth core needs to know, taken from the server's configuration.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The public URL: token issuer, cookie security and same-origin scheme.
    pub public_url: String,
    pub allowed_origins: Vec<String>,
    pub access_ttl: Duration,
    pub sessions: SessionSettings,
    /// How many password hashes may run at once.
    pub hash_concurrency: usize,
}

/// A credential pair for a session.
pub struct Issued {
    pub access: AccessToken,
    pub opened: Opened,
}

/// The auth core, shared by every door.
pub struct Auth {
    pub db: Db,
    /// Users never change once created (no endpoint edits them), so they are cached
    /// without expiry; deleting a user removes its sessions, which ends access.
    users: Cache<uuid::Uuid, user::Model>,
    pub tokens: TokenKeys,
    pub sessions: SessionStore,
    pub passwords: Passwords,
    pub origins: OriginPolicy,
    pub cookies: CookieSettings,
    pub devices: DeviceCookies,
}

impl Auth {
    pub async fn new(db: Db, settings: AuthSettings, bus: RevocationBus) -> Result<Self, Error> {
        let https = settings.public_url.starts_with("https://");
        let tokens =
            TokenKeys::load_or_create(db.clone(), settings.public_url.clone(), settings.access_ttl)
                .await?;
        let devices = DeviceCookies::new(tokens.derived_secret())
            .ok_or_else(|| Error::internal("the device-cookie MAC refused its key"))?;
        Ok(Self {
            tokens,
            devices,
            sessions: SessionStore::new(db.clone(), settings.sessions, bus),
            users: Cache::new(None, 100_000),
            passwords: Passwords::new(settings.hash_concurrency).await?,
            origins: OriginPolicy::new(&settings.public_url, settings.allowed_origins),
            cookies: CookieSettings::new(https),
            db,
        })
    }

    /// An identity for an access token from `source`: signature, claims and an
    /// active session, or the reason why not.
    async fn authenticate(&self, token: &str, source: CredentialSource) -> Result<Identity, Error> {
        let claims = self.tokens.verify(token).await?;
        let session = self.sessions.active(SessionId(claims.sid)).await?;
        if session.user_id != claims.sub {
            return Err(AuthError::InvalidToken.into());
        }
        Ok(Identity {
            user_id: UserId(claims.sub),
            session_id: SessionId(session.id),
            source,
            session_expires_at: session.expires_at,
        })
    }

    /// A user by id, from the cache when possible.
    pub async fn user(&self, id: UserId) -> Result<Option<user::Model>, Error> {
        if let Some(user) = self.users.get(&id.0) {
            return Ok(Some(user));
        }
        let user = Box::pin(accounts::find(&self.db, id.0)).await?;
        if let Some(u) = &user {
            self.users.insert(id.0, u.clone());
        }
        Ok(user)
    }

    /// Checks email and password and opens a session.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        client: ClientInfo,
    ) -> Result<(user::Model, Issued), Error> {
        let ip = client.ip.clone();
        let user = match accounts::authenticate(&self.db, &self.passwords, email, password).await {
            Ok(user) => user,
            Err(e) => {
                if matches!(e, Error::Auth(AuthError::InvalidCredentials)) {
                    tracing::warn!(
                        security_event = "login_failed",
                        ip = ip.as_deref().unwrap_or("-"),
                        "failed login"
                    );
                }
                return Err(e);
            }
        };
        let opened = self.sessions.open(UserId(user.id), client).await?;
        let access = self
            .tokens
            .issue(UserId(user.id), SessionId(opened.session.id))?;
        tracing::info!(user_id = %user.id, session_id = %opened.session.id, "login");
        Ok((user, Issued { access, opened }))
    }

    /// Rotates a refresh token into a new pair.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Issued, Error> {
        let opened = self.sessions.rotate(refresh_token).await?;
        let access = self
            .tokens
            .issue(UserId(opened.session.user_id), SessionId(opened.session.id))?;
        Ok(Issued { access, opened })
    }
}
