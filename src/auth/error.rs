//! What can go wrong while authenticating. Each variant has a stable code; the
//! HTTP status and JSON body are chosen in one place, `crate::error`.

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
