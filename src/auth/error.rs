//! What the auth core can fail with. [`AuthError`]: a credential that does not
//! hold, each with a stable code. [`Error`]: everything the core's operations can
//! fail with. The core says *what* went wrong; an edge (the HTTP API, the WebSocket
//! route, another poem app) chooses statuses and close codes.

use sea_orm::DbErr;

/// An authentication failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials were presented")]
    MissingCredentials,
    #[error("the access token is invalid or expired")]
    InvalidToken,
    #[error("the session has been revoked")]
    SessionRevoked,
    #[error("the session has expired")]
    SessionExpired,
    #[error("cookie credentials are not accepted from this origin")]
    OriginRefused,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("the refresh token is invalid or expired")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
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
    #[error("an account with this email already exists")]
    EmailTaken,
    /// More password hashes wait than the hashing threads can serve promptly.
    #[error("the server is busy checking passwords; retry in {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    /// The database cannot be reached (refused, dropped, timed out, shutting down).
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] DbErr),
    /// The database answered with an error: a bug, not a client mistake.
    #[error("database error")]
    Database(#[source] DbErr),
    /// Anything else that is the server's fault (no randomness, a bad stored key).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn internal(detail: impl Into<String>) -> Self {
        Error::Internal(detail.into())
    }

    /// A stable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Auth(e) => e.code(),
            Error::Invalid(_) => "invalid_input",
            Error::EmailTaken => "email_taken",
            Error::Overloaded { .. } => "overloaded",
            Error::DatabaseUnavailable(_) => "database_unavailable",
            Error::Database(_) | Error::Internal(_) => "internal_error",
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
