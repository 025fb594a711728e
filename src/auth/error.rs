//! What the auth core can fail with. [`AuthError`]: a credential that does not
//! hold, each with a stable code. [`Error`]: everything the core's operations can
//! fail with. The core says *what* went wrong; an edge (the HTTP API, the WebSocket
//! route, another poem app) chooses statuses and close codes.

use sea_orm::DbErr;

/// An authentication failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential was presented (`missing_credentials`).
    #[error("no credentials were presented")]
    MissingCredentials,
    /// The access token is malformed, badly signed or expired (`invalid_token`).
    #[error("the access token is invalid or expired")]
    InvalidToken,
    /// The credential's session was revoked (`session_revoked`).
    #[error("the session has been revoked")]
    SessionRevoked,
    /// The credential's session passed its idle or absolute expiry (`session_expired`).
    #[error("the session has expired")]
    SessionExpired,
    /// A cookie credential from an origin that is not allowed (`origin_refused`).
    #[error("cookie credentials are not accepted from this origin")]
    OriginRefused,
    /// A wrong email or password at login; never says which (`invalid_credentials`).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The refresh token is unknown, expired, or its session ended (`invalid_refresh_token`).
    #[error("the refresh token is invalid or expired")]
    InvalidRefreshToken,
    /// A spent refresh token came back after the grace window; its session is revoked
    /// (`refresh_token_reused`).
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// The account is blocked by an admin: its login is refused after the password
    /// was checked, and its sessions ended (`account_blocked`).
    #[error("this account is blocked")]
    AccountBlocked,
}

impl AuthError {
    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "missing_credentials",
            AuthError::InvalidToken => "invalid_token",
            AuthError::SessionRevoked => "session_revoked",
            AuthError::SessionExpired => "session_expired",
            AuthError::OriginRefused => "origin_refused",
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::InvalidRefreshToken => "invalid_refresh_token",
            AuthError::RefreshTokenReused => "refresh_token_reused",
            AuthError::AccountBlocked => "account_blocked",
        }
    }
}

/// A second factor or a step-up that does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FactorError {
    /// A TOTP or recovery code that is wrong, expired or already used
    /// (`invalid_code`).
    #[error(
        "the code is wrong, expired or already used (each code works once: wait for the next one)"
    )]
    InvalidCode,
    /// An `mfa_token` that is unknown, used or expired (`invalid_mfa_token`).
    #[error("this sign-in step is unknown, used or expired; log in again")]
    InvalidMfaToken,
    /// The operation needs an authentication within `DOORMAN_STEP_UP_SECONDS`
    /// (`step_up_required`).
    #[error(
        "this operation needs a recent authentication: re-authenticate with POST /api/auth/reauth, then retry"
    )]
    StepUpRequired,
    /// A password alone where the account has a second factor (`mfa_required`).
    #[error(
        "this account has a second factor: re-authenticate with a TOTP code, a recovery code or a passkey"
    )]
    SecondFactorRequired,
    /// TOTP is on already; removing it comes first (`totp_enabled`).
    #[error("TOTP is already on for this account; remove it first")]
    TotpEnabled,
    /// No TOTP enrolment waits for confirmation (`totp_not_pending`).
    #[error("no TOTP enrolment is pending; start one with POST /api/me/totp")]
    TotpNotPending,
    /// A passkey answer that does not verify: an unknown, used or expired
    /// challenge, another origin, an unknown credential, a bad signature, a
    /// counter that went back (`invalid_passkey`). Which one is only logged.
    #[error("the passkey could not be verified; start again")]
    InvalidPasskey,
    /// The public URL's host is an IP address, which WebAuthn does not allow as a
    /// relying party (`passkeys_unavailable`).
    #[error(
        "passkeys need DOORMAN_PUBLIC_URL with a domain name (localhost works), not an IP address"
    )]
    PasskeysUnavailable,
    /// The account holds as many passkeys as one may (`limit_reached`).
    #[error("this account has as many passkeys as one may (20); remove one first")]
    TooManyPasskeys,
}

impl FactorError {
    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            FactorError::InvalidCode => "invalid_code",
            FactorError::InvalidMfaToken => "invalid_mfa_token",
            FactorError::StepUpRequired => "step_up_required",
            FactorError::SecondFactorRequired => "mfa_required",
            FactorError::TotpEnabled => "totp_enabled",
            FactorError::TotpNotPending => "totp_not_pending",
            FactorError::InvalidPasskey => "invalid_passkey",
            FactorError::PasskeysUnavailable => "passkeys_unavailable",
            FactorError::TooManyPasskeys => "limit_reached",
        }
    }
}

/// What an operation of the auth core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A credential or password that does not hold.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Input that breaks a rule (email, password, display name).
    #[error("{0}")]
    Invalid(String),
    /// A second factor or a step-up that does not hold.
    #[error(transparent)]
    Factor(#[from] FactorError),
    /// The email already has an account (`email_taken`).
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The account's email address is not verified and the server requires it
    /// (`email_unverified`).
    #[error(
        "this account's email address is not verified yet: open the newest link mailed to it (each refused login mails a new one, within an hourly limit, and voids the older ones), or reset the password, which verifies the address too"
    )]
    EmailUnverified,
    /// The email address is verified already (`already_verified`).
    #[error("this account's email address is already verified")]
    AlreadyVerified,
    /// A password change while a password-reset link is outstanding
    /// (`reset_pending`): the link decides, so that someone holding a session and
    /// the password cannot void the owner's link by changing the password again.
    #[error(
        "a password reset link was mailed for this account and is still valid: use it to set the password (or wait until it expires, 30 minutes after it was sent)"
    )]
    ResetPending,
    /// A mailed token that is unknown, used, expired, or issued before the password
    /// last changed; never says which (`invalid_email_token`).
    #[error("this link is invalid or has expired; ask for a new one")]
    InvalidEmailToken,
    /// More password hashes wait than the hashing threads can serve promptly.
    #[error("the server is busy checking passwords; retry in {retry_after_secs} s")]
    Overloaded {
        /// Seconds the caller should wait before retrying.
        retry_after_secs: u64,
    },
    /// The database cannot be reached (refused, dropped, timed out, shutting down).
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] DbErr),
    /// The database answered with an error: a bug, not a client mistake.
    #[error("database error")]
    Database(#[source] DbErr),
    /// Anything else that is the server's fault (no randomness, a bad stored key):
    /// what failed, and the error that made it fail when there is one (kept, so a
    /// log shows the whole chain).
    #[error("{context}")]
    Internal {
        /// What failed, for the log.
        context: String,
        /// The error that made it fail, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// A server-side failure with no underlying error.
    pub fn internal(context: impl Into<String>) -> Self {
        Error::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// A server-side failure caused by `source`.
    pub fn caused(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Internal {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A stable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Auth(e) => e.code(),
            Error::Factor(e) => e.code(),
            Error::Invalid(_) => "invalid_input",
            Error::EmailTaken => "email_taken",
            Error::EmailUnverified => "email_unverified",
            Error::AlreadyVerified => "already_verified",
            Error::InvalidEmailToken => "invalid_email_token",
            Error::ResetPending => "reset_pending",
            Error::Overloaded { .. } => "overloaded",
            Error::DatabaseUnavailable(_) => "database_unavailable",
            Error::Database(_) | Error::Internal { .. } => "internal_error",
        }
    }
}

impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        if super::db::is_unavailable(&e) {
            Error::DatabaseUnavailable(e)
        } else {
            Error::Database(e)
        }
    }
}

/// An error's causes, for a log line: each `source()` after the first, joined by
/// `": "` (the error's own text is logged beside it). Empty without a source.
pub struct Causes<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut next = self.0.source();
        let mut first = true;
        while let Some(e) = next {
            if !first {
                f.write_str(": ")?;
            }
            first = false;
            write!(f, "{e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_source_for_the_log() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::caused("reading the key file", io);
        assert_eq!(e.to_string(), "reading the key file");
        assert_eq!(Causes(&e).to_string(), "disk on fire");
        assert_eq!(Causes(&Error::internal("no cause")).to_string(), "");
    }
}
