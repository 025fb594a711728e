//! The auth core: who is calling, and the sessions and tokens that say so.
//!
//! It knows neither the HTTP API nor the WebSocket route; both ask [`AuthSource`],
//! the one resolver. Sessions that open and end leave it as events on a
//! [`SessionBus`], which live-connection holders subscribe to.

mod accounts;
pub mod activity;
pub(crate) mod admin;
mod ascii;
pub mod assurance;
pub(crate) mod audit;
mod auth_source;
mod cache;
mod challenges;
pub mod cookies;
pub mod db;
pub mod devices;
mod email_tokens;
mod error;
pub mod events;
mod identity;
pub mod keys;
mod mfa;
pub mod origin;
pub(crate) mod outcomes;
mod passkeys;
mod passwords;
mod second_factors;
mod sessions;
mod tokens;
mod totp;

use std::time::Duration;

use assurance::{Amr, Method};

pub use auth_source::{AuthSource, Presented, credential_in_headers};
pub use error::{AuthError, Causes, Error, FactorError};
pub use events::{
    AssuranceChange, FactorChange, Opening, Revocation, RevocationReason, SessionBus, SessionEvent,
};
pub use identity::{CredentialSource, Identity, SessionId, UserId};
pub use mfa::{Factors, LoginStep, MfaChallenge, PendingLogin, Proof, Reauth, TotpEnrolment};
pub use passkeys::PasskeyInfo;
pub use passwords::Passwords;

pub use accounts::{DisplayName, Email, Password, User};
use cache::Cache;
use cookies::CookieSettings;
use db::Db;
use devices::DeviceCookies;
pub(crate) use email_tokens::{Mailable, Purpose};
use origin::OriginPolicy;
pub(crate) use sessions::unix_nanos;
pub use sessions::{ClientInfo, SessionEnds, SessionSettings, SessionSummary};
use sessions::{Opened, SessionStore};
pub use tokens::PublicKey;
use tokens::{AccessToken, TokenKeys};

/// What the auth core needs to know, taken from the server's configuration.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The public URL: token issuer, cookie security and same-origin scheme.
    pub public_url: String,
    /// Origins besides the public URL's own whose cookie credentials are accepted.
    pub allowed_origins: Vec<String>,
    /// How long an access token is valid.
    pub access_ttl: Duration,
    /// Session lifetimes: absolute, idle, and the refresh-reuse grace.
    pub sessions: SessionSettings,
    /// How many password hashes may run at once: the hashing threads, each holding
    /// the Argon2 memory (19 MiB) while it has work.
    pub hash_concurrency: usize,
    /// The file holding the key that encrypts private signing keys at rest, if set.
    pub key_encryption_key_file: Option<std::path::PathBuf>,
    /// Whether login and refresh refuse a user whose email address is not
    /// verified (`email_unverified`).
    pub require_verified_email: bool,
    /// How recent an authentication the sensitive operations need.
    pub step_up: Duration,
}

/// A credential pair for a session, freshly minted: hand it out exactly once.
pub struct Issued {
    /// The session the pair belongs to.
    pub session_id: SessionId,
    /// The access token (a JWT) and its lifetime in seconds.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The opaque refresh token and its lifetime in seconds.
    pub refresh_token: String,
    /// Seconds until the refresh token expires if it is not used.
    pub refresh_expires_in: u64,
}

impl Issued {
    fn new(access: AccessToken, opened: Opened) -> Self {
        Self {
            session_id: SessionId(opened.session.id),
            access_token: access.token,
            expires_in: access.expires_in,
            refresh_token: opened.refresh_token,
            refresh_expires_in: opened.refresh_expires_in,
        }
    }
}

/// The auth core, shared by every door: a closed facade over accounts, sessions,
/// tokens and the cookie and origin rules.
pub struct Auth {
    db: Db,
    /// Verified users' names and emails never change once created (no endpoint
    /// edits them), so they are cached without expiry; deleting a user removes its
    /// sessions, which ends access, and forgets it here ([`Auth::forget_user`]).
    /// The admin flag and the block are never read from here.
    users: Cache<uuid::Uuid, User>,
    /// Unverified users, for a second: a verification on another instance shows
    /// here within it (this instance's own verifications forget the entry).
    unverified_users: Cache<uuid::Uuid, User>,
    require_verified_email: bool,
    step_up: Duration,
    /// The issuer named in `otpauth://` URIs: the public URL's host.
    totp_issuer: String,
    /// The WebAuthn relying party (the public URL's origin and host); `None` when
    /// the host is an IP address.
    webauthn: Option<webauthn_rs::Webauthn>,
    tokens: TokenKeys,
    sessions: SessionStore,
    passwords: Passwords,
    origins: OriginPolicy,
    cookies: CookieSettings,
    devices: DeviceCookies,
}

impl Auth {
    /// The core over `db`: loads the signing keys (making one when there is none)
    /// and publishes session events on `bus`.
    pub async fn new(db: Db, settings: AuthSettings, bus: SessionBus) -> Result<Self, Error> {
        let https = settings.public_url.starts_with("https://");
        let cipher = settings
            .key_encryption_key_file
            .as_deref()
            .map(keys::KeyCipher::from_file)
            .transpose()?;
        let tokens = TokenKeys::load_or_create(
            keys::KeyStore::new(db.clone(), cipher),
            settings.public_url.clone(),
            settings.access_ttl,
        )
        .await?;
        let devices = DeviceCookies::new(tokens.derived_secret())
            .ok_or_else(|| Error::internal("the device-cookie MAC refused its key"))?;
        Ok(Self {
            tokens,
            sessions: SessionStore::new(db.clone(), settings.sessions, bus),
            users: Cache::new(None, 100_000),
            unverified_users: Cache::new(Some(Duration::from_secs(1)), 100_000),
            require_verified_email: settings.require_verified_email,
            step_up: settings.step_up,
            webauthn: passkeys::relying_party(&settings.public_url),
            totp_issuer: url::Url::parse(&settings.public_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "doorman".to_owned()),
            passwords: Passwords::new(settings.hash_concurrency).await?,
            origins: OriginPolicy::new(&settings.public_url, settings.allowed_origins),
            cookies: CookieSettings::new(https),
            devices,
            db,
        })
    }

    /// An identity for an access token from `source`: signature, claims and an
    /// active session, or the reason why not.
    async fn authenticate(&self, token: &str, source: CredentialSource) -> Result<Identity, Error> {
        let result = self.check_token(token, source).await;
        outcomes::count(source, result.as_ref().map(|_| ()));
        result
    }

    async fn check_token(&self, token: &str, source: CredentialSource) -> Result<Identity, Error> {
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
            key_id: claims.kid.clone(),
            assurance: session.assurance,
        })
    }

    /// A user by id, from the cache when possible.
    pub async fn user(&self, id: UserId) -> Result<Option<User>, Error> {
        if let Some(user) = self.users.get(&id.0) {
            return Ok(Some(user));
        }
        if let Some(user) = self.unverified_users.get(&id.0) {
            return Ok(Some(user));
        }
        let user = Box::pin(accounts::find(&self.db, id.0))
            .await?
            .map(|m| User::from(&m));
        if let Some(u) = &user {
            if u.email_verified_at.is_some() {
                self.users.insert(id.0, u.clone());
            } else {
                self.unverified_users.insert(id.0, u.clone());
            }
        }
        Ok(user)
    }

    /// Creates an account. The input rules (email, password, display name) are
    /// checked here, in the core, whatever door the request came through.
    pub async fn register(
        &self,
        email: &str,
        password: String,
        display_name: Option<&str>,
    ) -> Result<User, Error> {
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let display_name = match display_name {
            Some(name) => DisplayName::parse(name)?,
            None => DisplayName::from_email(&email),
        };
        let user =
            accounts::register(&self.db, &self.passwords, email, password, display_name).await?;
        tracing::info!(user_id = %user.id, "registered");
        Ok(User::from(&user))
    }

    /// Checks email and password. Without a second factor on the account, opens a
    /// session (the user's other devices hear of it on the session bus); with one,
    /// returns the second step's challenge, which keeps `carry` (what the caller
    /// needs to finish the login its way) for [`Auth::pending_login`].
    pub async fn login(
        &self,
        email: &str,
        password: String,
        client: ClientInfo,
        carry: String,
    ) -> Result<LoginStep, Error> {
        let user = match accounts::authenticate(&self.db, &self.passwords, email, password).await? {
            accounts::Checked::Valid(user) => user,
            failed => {
                tracing::warn!(
                    security_event = "login_failed",
                    ip = client.ip.as_deref().unwrap_or("-"),
                    "failed login"
                );
                if let accounts::Checked::WrongPassword(id) = failed {
                    activity::record(
                        &self.db,
                        UserId(id),
                        activity::Kind::LoginFailed,
                        None,
                        Some(&client),
                    )
                    .await;
                }
                return Err(AuthError::InvalidCredentials.into());
            }
        };
        if self.require_verified_email && user.email_verified_at.is_none() {
            // Only a caller with the right password learns this.
            tracing::info!(user_id = %user.id, "login refused: email address not verified");
            return Err(Error::EmailUnverified);
        }
        let user_id = UserId(user.id);
        // Only after the password held: a wrong password to a blocked account is
        // `invalid_credentials` like any other, so the block tells a guesser nothing.
        if user.blocked_at.is_some() {
            tracing::warn!(
                security_event = "login_blocked",
                user_id = %user.id,
                ip = client.ip.as_deref().unwrap_or("-"),
                "login to a blocked account refused"
            );
            return Err(AuthError::AccountBlocked.into());
        }
        if second_factors::totp_on(&self.db, user_id).await? {
            return self
                .second_step(&user, carry)
                .await
                .map(LoginStep::SecondFactor);
        }
        let (user, issued) = self
            .open_session(&user, Amr::of(Method::Pwd), client)
            .await?;
        Ok(LoginStep::Done(user, issued))
    }

    /// Opens a session for `user` (whose row was read before the check that let
    /// them in), authenticated by `amr`, and tells their other devices.
    async fn open_session(
        &self,
        user: &entity::user::Model,
        amr: Amr,
        client: ClientInfo,
    ) -> Result<(User, Issued), Error> {
        let user_id = UserId(user.id);
        let opened = self.sessions.open(user_id, client.clone(), amr).await?;
        let session_id = SessionId(opened.session.id);
        // A password change or a block between the check above and the session's
        // insert would not have seen this session. Both write the user row before
        // they revoke, so reading the row after the insert closes the gap: either
        // the change sees this session, or this read sees the change.
        let now = accounts::find(&self.db, user.id).await?;
        if now.as_ref().is_some_and(|now| now.blocked_at.is_some()) {
            self.sessions
                .revoke(session_id, user_id, RevocationReason::AccountBlocked)
                .await?;
            return Err(AuthError::AccountBlocked.into());
        }
        let unchanged = now.is_some_and(|now| now.password_hash == user.password_hash);
        if !unchanged {
            self.sessions
                .revoke(session_id, user_id, RevocationReason::PasswordChanged)
                .await?;
            return Err(AuthError::InvalidCredentials.into());
        }
        let access = self
            .tokens
            .issue(user_id, session_id, &opened.assurance())?;
        tracing::info!(user_id = %user.id, session_id = %session_id, "login");
        activity::record(
            &self.db,
            user_id,
            activity::Kind::Login,
            Some(session_id),
            Some(&client),
        )
        .await;
        self.sessions.bus().publish(SessionEvent::Opened(Opening {
            session_id,
            user_id,
            ip: client.ip,
            user_agent: opened.session.user_agent.clone(),
            at: opened.session.created_at,
            remote: false,
        }));
        Ok((User::from(user), Issued::new(access, opened)))
    }

    /// Changes the caller's password after checking the current one, and ends every
    /// other session of theirs (their sockets close). A wrong current password is
    /// `InvalidCredentials` and changes nothing.
    pub async fn change_password(
        &self,
        who: &Identity,
        current: String,
        new: String,
        client: ClientInfo,
    ) -> Result<(), Error> {
        self.require_recent(who).await?;
        let new = Password::parse(new)?;
        // An outstanding reset link decides: otherwise someone holding a session
        // and the password could void each link the owner asks for by changing
        // the password again (outside attack, issue 34).
        if email_tokens::outstanding(&self.db, who.user_id.0, Purpose::PasswordReset).await? {
            tracing::warn!(
                security_event = "password_change_refused",
                user_id = %who.user_id,
                "password change refused: a reset link is outstanding"
            );
            return Err(Error::ResetPending);
        }
        if !accounts::change_password(&self.db, &self.passwords, who.user_id.0, current, new)
            .await?
        {
            tracing::warn!(
                security_event = "password_change_failed",
                user_id = %who.user_id,
                "wrong current password"
            );
            // Like a failed login: the owner sees that a session of theirs (which
            // one, from where) is guessing their password.
            activity::record(
                &self.db,
                who.user_id,
                activity::Kind::PasswordChangeFailed,
                Some(who.session_id),
                Some(&client),
            )
            .await;
            return Err(AuthError::InvalidCredentials.into());
        }
        tracing::info!(security_event = "password_changed", user_id = %who.user_id, "password changed");
        activity::record(
            &self.db,
            who.user_id,
            activity::Kind::PasswordChanged,
            Some(who.session_id),
            Some(&client),
        )
        .await;
        self.sessions
            .revoke_all(
                who.user_id,
                Some(who.session_id),
                RevocationReason::PasswordChanged,
            )
            .await?;
        Ok(())
    }

    /// The caller's recent account activity, newest first.
    pub async fn activity(&self, user: UserId) -> Result<Vec<activity::Event>, Error> {
        activity::recent(&self.db, user).await
    }

    /// Rotates a refresh token into a new pair, for the session's user. While
    /// verified addresses are required, an unverified user's session ends here
    /// instead (`EmailUnverified`): a session opened before the policy was turned
    /// on lasts at most one access-token lifetime more.
    pub async fn refresh(&self, refresh_token: &str) -> Result<(User, Issued), Error> {
        let opened = self.sessions.rotate(refresh_token).await?;
        let user_id = UserId(opened.session.user_id);
        let session_id = SessionId(opened.session.id);
        let mut user = self
            .user(user_id)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        if self.require_verified_email && user.email_verified_at.is_none() {
            // The cache may be a second behind a verification made elsewhere: ask
            // the database before ending a session for it.
            let row = accounts::find(&self.db, user_id.0)
                .await?
                .ok_or(AuthError::InvalidRefreshToken)?;
            user = User::from(&row);
        }
        if self.require_verified_email && user.email_verified_at.is_none() {
            self.sessions
                .revoke(session_id, user_id, RevocationReason::Revoked)
                .await?;
            return Err(Error::EmailUnverified);
        }
        let access = self
            .tokens
            .issue(user_id, session_id, &opened.assurance())?;
        Ok((user, Issued::new(access, opened)))
    }

    /// While verified addresses are required: ends every session of an unverified
    /// user (called at start; sessions opened before the policy was turned on).
    /// Returns how many.
    pub(crate) async fn end_unverified_sessions(&self) -> Result<u64, Error> {
        if !self.require_verified_email {
            return Ok(0);
        }
        Ok(sessions::revoke_unverified(self.db.connection()).await?)
    }

    /// A verification token for the user's address, to mail. `AlreadyVerified`
    /// when there is nothing to verify.
    pub(crate) async fn verification_token(&self, user: UserId) -> Result<Mailable, Error> {
        let row = accounts::find(&self.db, user.0)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        if row.email_verified_at.is_some() {
            return Err(Error::AlreadyVerified);
        }
        email_tokens::issue(&self.db, &row, Purpose::VerifyEmail).await
    }

    /// A verification token for the unverified account at `email`, if there is
    /// one (the login of an unverified user, when verification is required, mails
    /// a new link).
    pub(crate) async fn verification_token_for(
        &self,
        email: &Email,
    ) -> Result<Option<Mailable>, Error> {
        match accounts::find_by_email(&self.db, email).await? {
            Some(row) if row.email_verified_at.is_none() => {
                email_tokens::issue(&self.db, &row, Purpose::VerifyEmail)
                    .await
                    .map(Some)
            }
            _ => Ok(None),
        }
    }

    /// A password-reset token for the account at `email`; `None` when there is no
    /// such account (the caller answers the same either way).
    pub(crate) async fn reset_token(&self, email: &Email) -> Result<Option<Mailable>, Error> {
        match accounts::find_by_email(&self.db, email).await? {
            Some(row) => email_tokens::issue(&self.db, &row, Purpose::PasswordReset)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// Spends a verification token: the user's address is verified from now on.
    pub(crate) async fn verify_email(
        &self,
        token: &str,
        client: ClientInfo,
    ) -> Result<UserId, Error> {
        let (row, user) = email_tokens::check(&self.db, token, Purpose::VerifyEmail).await?;
        let now = accounts::now();
        let spent = self
            .db
            .transaction(async |txn| {
                if !email_tokens::spend(txn, row.id).await? {
                    return Ok(false);
                }
                accounts::mark_verified(txn, user.id, now).await?;
                Ok(true)
            })
            .await?;
        if !spent {
            return Err(Error::InvalidEmailToken);
        }
        let user_id = UserId(user.id);
        self.unverified_users.remove(&user.id);
        tracing::info!(security_event = "email_verified", user_id = %user_id, "email verified");
        activity::record(
            &self.db,
            user_id,
            activity::Kind::EmailVerified,
            None,
            Some(&client),
        )
        .await;
        Ok(user_id)
    }

    /// Spends a password-reset token: the new password is set (and the address
    /// counts as verified: the link was read there), every session of the user is
    /// revoked, so their sockets close on every instance. A token issued before
    /// the password last changed does not hold.
    pub(crate) async fn reset_password(
        &self,
        token: &str,
        new: String,
        client: ClientInfo,
    ) -> Result<UserId, Error> {
        // The rules first: a too-short password must not spend the link.
        let new = Password::parse(new)?;
        let (row, user) = email_tokens::check(&self.db, token, Purpose::PasswordReset).await?;
        let hash = self.passwords.hash(new.into_inner()).await?;
        let now = accounts::now();
        let reset = self
            .db
            .transaction(async |txn| {
                if !email_tokens::spend(txn, row.id).await? {
                    return Ok(false);
                }
                // Only over the password the token was issued under: a change that
                // came in between wins, and the token is spent for nothing.
                accounts::replace_password(txn, &user, hash, now).await
            })
            .await?;
        if !reset {
            return Err(Error::InvalidEmailToken);
        }
        let user_id = UserId(user.id);
        self.unverified_users.remove(&user.id);
        tracing::info!(security_event = "password_reset", user_id = %user_id, "password reset from a mailed link");
        activity::record(
            &self.db,
            user_id,
            activity::Kind::PasswordReset,
            None,
            Some(&client),
        )
        .await;
        // After the new hash is written: a login racing this either saw the old
        // hash and is revoked here, or reads the new one and refuses itself.
        self.sessions
            .revoke_all(user_id, None, RevocationReason::PasswordChanged)
            .await?;
        Ok(user_id)
    }

    /// Ends the caller's session: its tokens stop working at once and its sockets
    /// hear of it on the revocation bus.
    pub async fn logout(&self, who: &Identity) -> Result<(), Error> {
        self.sessions
            .revoke(who.session_id, who.user_id, RevocationReason::Logout)
            .await
            .map(|_| ())
    }

    /// A user's active sessions, newest first.
    pub async fn sessions(&self, user: UserId) -> Result<Vec<SessionSummary>, Error> {
        Ok(self
            .sessions
            .list_active(user)
            .await?
            .iter()
            .map(SessionSummary::from)
            .collect())
    }

    /// Ends one of `user`'s active sessions; `false` for one that is not theirs,
    /// not active, or does not exist.
    pub async fn revoke_session(&self, id: SessionId, user: UserId) -> Result<bool, Error> {
        self.sessions
            .revoke_own(id, user, RevocationReason::Revoked)
            .await
    }

    /// Ends every active session of `user` (log out everywhere).
    pub async fn revoke_all_sessions(&self, user: UserId) -> Result<u64, Error> {
        self.sessions
            .revoke_all(user, None, RevocationReason::RevokedAll)
            .await
    }

    /// Ends every active session of the caller but their current one.
    pub async fn revoke_other_sessions(&self, who: &Identity) -> Result<u64, Error> {
        self.sessions
            .revoke_all(
                who.user_id,
                Some(who.session_id),
                RevocationReason::RevokedOthers,
            )
            .await
    }

    /// Whether the session is still active, from the cache when it can: a socket's
    /// check right after it bound, when a session ended since its credential check
    /// (see [`Auth::session_ends`]).
    pub async fn session_active(&self, id: SessionId) -> Result<(), Error> {
        self.sessions.active(id).await.map(|_| ())
    }

    /// The session's assurance as it is now (from the cache, which forgets a
    /// session whose assurance changed before anyone hears of the change).
    pub async fn current_assurance(&self, id: SessionId) -> Result<assurance::Assurance, Error> {
        Ok(self.sessions.active(id).await?.assurance)
    }

    /// A mark of the session ends this instance has recorded so far: revocations
    /// here and elsewhere, expiries it noticed, and forgettings after missed
    /// events. A check of a session made after reading a mark still holds while
    /// the mark is unchanged; a holder of a live connection reads one before its
    /// check and compares once it is bound to its session's events, where any
    /// later end reaches it.
    pub fn session_ends(&self) -> SessionEnds {
        self.sessions.ends()
    }

    /// Whether the session is still active, straight from the database and without
    /// recording use: the periodic re-check of live sockets.
    pub async fn session_still_active(&self, id: SessionId) -> Result<(), Error> {
        self.sessions.check(id).await
    }

    /// The stream of session openings and ends, for holders of live connections.
    pub fn session_events(&self) -> tokio::sync::broadcast::Receiver<SessionEvent> {
        self.sessions.bus().subscribe()
    }

    /// Takes in a revocation made by another instance: this instance refuses the
    /// session first, then tells its own subscribers.
    pub fn revoked_elsewhere(&self, session: SessionId, user: UserId, reason: RevocationReason) {
        self.sessions.revoked_elsewhere(session, user, reason);
    }

    /// Takes in a login made on another instance, for this instance's subscribers.
    pub fn opened_elsewhere(&self, opening: Opening) {
        self.sessions.bus().publish(SessionEvent::Opened(Opening {
            remote: true,
            ..opening
        }));
    }

    /// Takes in an assurance change made on another instance.
    pub fn assurance_changed_elsewhere(&self, change: AssuranceChange) {
        self.sessions.assurance_changed_elsewhere(AssuranceChange {
            remote: true,
            ..change
        });
    }

    /// Re-reads the signing keys every `every` while the core lives: rotations and
    /// retirements made by `doorman keys` (on any instance) take effect here.
    pub fn spawn_key_refresh(self: &std::sync::Arc<Self>, every: Duration) {
        let auth = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(auth) = auth.upgrade() else { break };
                if let Err(e) = auth.tokens.refresh().await {
                    tracing::warn!(error = %e, "could not re-read the signing keys");
                }
                // Sockets authenticated with a retired key's token close (4401).
                let retired = auth.tokens.take_retired();
                if !retired.is_empty() {
                    // `doorman keys retire --revoke-sessions` revokes every session
                    // in the retirement's transaction: forget what this instance
                    // believes of them (a request re-reads its session), and the
                    // registry re-checks its sockets before closing the key's.
                    auth.sessions.forget_cached();
                }
                for kid in retired {
                    auth.sessions.bus().publish(SessionEvent::KeyRetired(kid));
                }
            }
        });
    }

    /// Administration of accounts over this core's database and session store
    /// (its cache and bus, so ends reach this instance's sockets and the cluster).
    pub(crate) fn admin(&self) -> admin::Admin {
        admin::Admin::new(self.db.clone(), self.sessions.clone())
    }

    /// Forgets a cached user (deleted).
    pub(crate) fn forget_user(&self, id: UserId) {
        self.users.remove(&id.0);
    }

    /// Forgets cached session state after events may have been missed.
    pub fn forget_cached_sessions(&self) {
        self.sessions.forget_cached();
    }

    /// Whether the database answers a real read: a ping alone succeeds on a SQLite
    /// file another process holds locked while every query waits and fails.
    pub async fn ready(&self) -> Result<(), Error> {
        use sea_orm::EntityTrait;
        entity::session::Entity::find().one(&self.db).await?;
        Ok(())
    }

    /// Whether this instance can sign access tokens: not when every key it could
    /// decrypt was retired while it runs without the key-encryption key (it still
    /// verifies every token; logins and refreshes fail until it restarts with it).
    pub fn can_sign(&self) -> bool {
        self.tokens.can_sign()
    }

    /// The public keys that verify access tokens, for the JWKS.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.tokens.public_keys()
    }

    /// Password hashes waiting for a thread (a metric).
    pub fn password_hashes_queued(&self) -> usize {
        self.passwords.queued()
    }

    /// The database pool's open and idle connections (metrics).
    pub fn pool_stats(&self) -> (u32, usize) {
        self.db.pool_stats()
    }

    /// Cookie names and attributes.
    pub fn cookies(&self) -> &CookieSettings {
        &self.cookies
    }

    /// Which origins may use cookie credentials.
    pub fn origins(&self) -> &OriginPolicy {
        &self.origins
    }

    /// Device cookies for login throttling.
    pub fn devices(&self) -> &DeviceCookies {
        &self.devices
    }
}
