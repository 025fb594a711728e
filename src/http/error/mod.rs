//! The one error type of the server and the one place that turns it into an HTTP
//! response: `{"error": "<stable_code>", "message": "<human text>"}`.
//! `sets`: the statuses each operation documents; `redact`: credentials kept out
//! of parse errors; `input`: refused input explained from the spec.

mod input;
mod redact;
mod sets;

pub use input::{SpecFacts, attach};
pub(crate) use sets::error_set;
pub use sets::{AuthFailures, BodyAuthFailures, ErrorSet, Fail};

use poem::{
    IntoResponse, Response,
    error::ResponseError,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{Enum, Object};

use crate::auth::{AuthError, FactorError};

/// Every code an error body can carry: an enum in the spec, so generated clients
/// can match on it, and the list in docs/behaviour.md is checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: the request carried no credential (no `Authorization` header, no session cookie).
    MissingCredentials,
    /// 401: the access token is malformed, badly signed or expired; refresh it and retry.
    InvalidToken,
    /// 401: the credential's session was revoked (logout, an admin, token reuse); log in again.
    SessionRevoked,
    /// 401: the credential's session passed its idle or absolute expiry; log in again.
    SessionExpired,
    /// 403: a cookie credential came from an origin that is not allowed (the CSRF rule).
    OriginRefused,
    /// 401: login with a wrong email or password (it never says which).
    InvalidCredentials,
    /// 401: the refresh token is unknown, expired, or of a session that has ended; log in again.
    InvalidRefreshToken,
    /// 401: a spent refresh token came back after the grace window; its session is now revoked.
    RefreshTokenReused,
    /// 403: the account is blocked by an admin (login with the right password, or a credential of a session the block ended); do not retry.
    AccountBlocked,
    /// 401: a TOTP or recovery code that is wrong, expired or already used (a failure counted like a wrong password).
    InvalidCode,
    /// 401: the `mfa_token` of a login's second step is unknown, used or expired (5 minutes); log in again.
    InvalidMfaToken,
    /// 403: the operation needs an authentication within `DOORMAN_STEP_UP_SECONDS`; re-authenticate with `POST /api/auth/reauth`, then retry.
    StepUpRequired,
    /// 403: a password alone re-authenticates an account that has a second factor; use a TOTP code, a recovery code or a passkey.
    MfaRequired,
    /// 409: starting a TOTP enrolment while TOTP is on; remove it first.
    TotpEnabled,
    /// 409: confirming a TOTP enrolment when none is pending.
    TotpNotPending,
    /// 401: a passkey answer that does not verify (unknown, used or expired challenge, another origin, an unknown credential, a bad signature, a signature counter that went back); start the ceremony again.
    InvalidPasskey,
    /// 409: passkeys need `DOORMAN_PUBLIC_URL` with a domain name (`localhost` works), not an IP address.
    PasskeysUnavailable,
    /// 400: a field or parameter breaks a documented rule (missing, wrong type, too short, not one of the values); the message names each field and its rule, as "password: 8 to 128 characters".
    InvalidInput,
    /// 400: the request did not parse (a body that is not JSON, a malformed header, a WebSocket handshake not over HTTP/1.1).
    BadRequest,
    /// 409: registering an email that already has an account.
    EmailTaken,
    /// 403: login or refresh of an account whose email address is not verified, while `DOORMAN_REQUIRE_VERIFIED_EMAIL` is on; a login with the right password also mails a new verification link.
    EmailUnverified,
    /// 409: asking for a verification link for an address that is verified already.
    AlreadyVerified,
    /// 403: a verification or password-reset token that is unknown, used, expired, replaced by a newer link, or issued before the password last changed (never says which); ask for a new link.
    InvalidEmailToken,
    /// 409: a password change while a password-reset link mailed for the account is still valid; use the link.
    ResetPending,
    /// 409: creating a room whose name is already taken.
    RoomExists,
    /// 409: a cap on rooms owned, rooms joined or members of a room is reached.
    LimitReached,
    /// 403: not allowed for this caller (a private room they are not in, an owner-only operation).
    Forbidden,
    /// 404: no such route, or no such resource among the caller's own.
    NotFound,
    /// 405: the route exists but not with this method; `Allow` lists the ones it has.
    MethodNotAllowed,
    /// 429: the client went over a rate limit; retry after `Retry-After` seconds.
    RateLimited,
    /// 429: the user holds `DOORMAN_WS_MAX_SOCKETS_PER_USER` sockets; close one or retry later.
    TooManySockets,
    /// 413: the request body is over 64 KiB.
    PayloadTooLarge,
    /// 431: `Cookie` or `Authorization` is over 8 KiB, or all headers over 32 KiB.
    HeadersTooLarge,
    /// 408: the body did not arrive within `DOORMAN_BODY_TIMEOUT_SECONDS`; the connection closes.
    RequestTimeout,
    /// 415: the body is not sent as `application/json`.
    UnsupportedMediaType,
    /// 503: a WebSocket handshake reached a server that is draining to stop; reconnect.
    ShuttingDown,
    /// 503: too many password checks wait already; retry after `Retry-After` seconds.
    Overloaded,
    /// 503: the database cannot be reached; retry after `Retry-After` seconds.
    DatabaseUnavailable,
    /// 500: a server-side failure; the message names the request id whose cause is logged.
    InternalError,
}

impl From<AuthError> for ErrorCode {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingCredentials => ErrorCode::MissingCredentials,
            AuthError::InvalidToken => ErrorCode::InvalidToken,
            AuthError::SessionRevoked => ErrorCode::SessionRevoked,
            AuthError::SessionExpired => ErrorCode::SessionExpired,
            AuthError::OriginRefused => ErrorCode::OriginRefused,
            AuthError::InvalidCredentials => ErrorCode::InvalidCredentials,
            AuthError::InvalidRefreshToken => ErrorCode::InvalidRefreshToken,
            AuthError::RefreshTokenReused => ErrorCode::RefreshTokenReused,
            AuthError::AccountBlocked => ErrorCode::AccountBlocked,
        }
    }
}

impl From<FactorError> for ErrorCode {
    fn from(e: FactorError) -> Self {
        match e {
            FactorError::InvalidCode => ErrorCode::InvalidCode,
            FactorError::InvalidMfaToken => ErrorCode::InvalidMfaToken,
            FactorError::StepUpRequired => ErrorCode::StepUpRequired,
            FactorError::SecondFactorRequired => ErrorCode::MfaRequired,
            FactorError::TotpEnabled => ErrorCode::TotpEnabled,
            FactorError::TotpNotPending => ErrorCode::TotpNotPending,
            FactorError::InvalidPasskey => ErrorCode::InvalidPasskey,
            FactorError::PasskeysUnavailable => ErrorCode::PasskeysUnavailable,
            FactorError::TooManyPasskeys => ErrorCode::LimitReached,
        }
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A credential that does not hold (401, or 403 `origin_refused`, `account_blocked`).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A second factor or a step-up that does not hold (401 `invalid_code`,
    /// `invalid_mfa_token`; 403 `step_up_required`, `mfa_required`; 409
    /// `totp_enabled`, `totp_not_pending`).
    #[error(transparent)]
    Factor(#[from] crate::auth::FactorError),
    /// Input that parsed but breaks a rule (`invalid_input`).
    #[error("{0}")]
    Invalid(String),
    /// Input that did not parse (`bad_request`).
    #[error("{0}")]
    BadRequest(String),
    /// The email already has an account (`email_taken`, 409).
    #[error("an account with this email already exists")]
    EmailTaken,
    /// Login or refresh of an unverified account while verification is required
    /// (`email_unverified`, 403).
    #[error(
        "this account's email address is not verified yet: open the newest link mailed to it (each refused login mails a new one, within an hourly limit, and voids the older ones), or reset the password, which verifies the address too"
    )]
    EmailUnverified,
    /// The address is verified already (`already_verified`, 409).
    #[error("this account's email address is already verified")]
    AlreadyVerified,
    /// A mailed token that does not hold (`invalid_email_token`, 403: the link
    /// grants nothing, whatever the reason).
    #[error("this link is invalid or has expired; ask for a new one")]
    InvalidEmailToken,
    /// A password change while a reset link is outstanding (`reset_pending`, 409).
    #[error(
        "a password reset link was mailed for this account and is still valid: use it to set the password (or wait until it expires, 30 minutes after it was sent)"
    )]
    ResetPending,
    /// The room name is taken (`room_exists`, 409).
    #[error("a room with this name already exists")]
    RoomExists,
    /// A cap on what one user's requests may make the server hold (rooms owned,
    /// rooms joined, members of a room): 409 `limit_reached`.
    #[error("{0}")]
    LimitReached(String),
    /// Not allowed for this caller (a private room they are not a member of, an
    /// owner-only operation). Never says whether a private room exists.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such resource, or not the caller's (`not_found`, 404).
    #[error("not found")]
    NotFound,
    /// A rate limit was hit (`rate_limited`, 429).
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the limit lets the client through again (`Retry-After`).
        retry_after_secs: u64,
    },
    /// The body is over the size limit (`payload_too_large`, 413).
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// A credential header or the whole head is over its limit (`headers_too_large`, 431).
    #[error("request headers are too large")]
    HeadersTooLarge,
    /// The request body did not arrive within `DOORMAN_BODY_TIMEOUT_SECONDS`.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The user is at the per-user socket cap (`too_many_sockets`, 429).
    #[error("this user has too many open sockets")]
    TooManySockets,
    /// The server is draining and takes no new sockets (`shutting_down`, 503).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// More password hashes wait than the hashing threads can serve promptly.
    #[error("the server is busy checking passwords; retry in {retry_after_secs} s")]
    Overloaded {
        /// Seconds the client is told to wait (`Retry-After`).
        retry_after_secs: u64,
    },
    /// The database cannot be reached (refused, dropped, timed out, shutting down).
    /// The source is logged, never sent: the client only learns to retry.
    #[error("the database is unavailable; retry shortly")]
    DatabaseUnavailable {
        /// The connection failure, for the log.
        source: sea_orm::DbErr,
    },
    /// The database answered with an error: logged with its source, answered 500.
    #[error("internal error: database")]
    Database {
        /// The database's error, for the log.
        source: sea_orm::DbErr,
    },
    /// A server-side failure. The detail is logged, never sent.
    #[error("internal error: {detail}")]
    Internal {
        /// What failed, for the log (the client sees only the request id).
        detail: String,
        /// What made it fail, when there is such an error (logged as a chain).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// A server-side failure with no underlying error (500; `detail` is only logged).
    pub fn internal(detail: impl Into<String>) -> Self {
        Error::Internal {
            detail: detail.into(),
            source: None,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Auth(e) => (*e).into(),
            Error::Factor(e) => (*e).into(),
            Error::Invalid(_) => ErrorCode::InvalidInput,
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::EmailTaken => ErrorCode::EmailTaken,
            Error::EmailUnverified => ErrorCode::EmailUnverified,
            Error::AlreadyVerified => ErrorCode::AlreadyVerified,
            Error::InvalidEmailToken => ErrorCode::InvalidEmailToken,
            Error::ResetPending => ErrorCode::ResetPending,
            Error::RoomExists => ErrorCode::RoomExists,
            Error::LimitReached(_) => ErrorCode::LimitReached,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::NotFound => ErrorCode::NotFound,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Error::TooManySockets => ErrorCode::TooManySockets,
            Error::HeadersTooLarge => ErrorCode::HeadersTooLarge,
            Error::RequestTimeout => ErrorCode::RequestTimeout,
            Error::ShuttingDown => ErrorCode::ShuttingDown,
            Error::Overloaded { .. } => ErrorCode::Overloaded,
            Error::DatabaseUnavailable { .. } => ErrorCode::DatabaseUnavailable,
            Error::Internal { .. } | Error::Database { .. } => ErrorCode::InternalError,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Auth(AuthError::OriginRefused | AuthError::AccountBlocked)
            | Error::Forbidden(_)
            | Error::EmailUnverified
            | Error::InvalidEmailToken => StatusCode::FORBIDDEN,
            Error::Auth(_) => StatusCode::UNAUTHORIZED,
            Error::Factor(e) => match e {
                FactorError::InvalidCode
                | FactorError::InvalidMfaToken
                | FactorError::InvalidPasskey => StatusCode::UNAUTHORIZED,
                FactorError::StepUpRequired | FactorError::SecondFactorRequired => {
                    StatusCode::FORBIDDEN
                }
                FactorError::TotpEnabled
                | FactorError::TotpNotPending
                | FactorError::PasskeysUnavailable
                | FactorError::TooManyPasskeys => StatusCode::CONFLICT,
            },
            Error::Invalid(_) | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::EmailTaken
            | Error::RoomExists
            | Error::LimitReached(_)
            | Error::AlreadyVerified
            | Error::ResetPending => StatusCode::CONFLICT,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::RateLimited { .. } | Error::TooManySockets => StatusCode::TOO_MANY_REQUESTS,
            Error::ShuttingDown | Error::Overloaded { .. } | Error::DatabaseUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::Internal { .. } | Error::Database { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response for this error. `request_id` goes into a 500's message so an
    /// operator can find the logged cause.
    pub fn to_response(&self, request_id: Option<&str>) -> Response {
        let message = match (self, request_id) {
            (Error::Internal { .. } | Error::Database { .. }, Some(id)) => {
                format!("internal error (request id {id})")
            }
            (Error::Internal { .. } | Error::Database { .. }, None) => "internal error".to_owned(),
            _ => self.to_string(),
        };
        let body = ErrorBody {
            error: self.code(),
            message,
        };
        let mut resp = poem::web::Json(body)
            .with_status(self.status())
            .into_response();
        let headers = resp.headers_mut();
        match self {
            Error::Auth(e) if self.status() == StatusCode::UNAUTHORIZED => {
                let value = match e {
                    AuthError::MissingCredentials => r#"Bearer realm="doorman""#.to_owned(),
                    other => format!(
                        r#"Bearer realm="doorman", error="invalid_token", error_description="{}""#,
                        other.code()
                    ),
                };
                if let Ok(v) = value.parse() {
                    headers.insert("WWW-Authenticate", v);
                }
            }
            // A wrong code or passkey, a spent second step: every 401 names the
            // scheme (RFC 9110 §15.5.2), with no token error (the token is fine).
            Error::Factor(_) if self.status() == StatusCode::UNAUTHORIZED => {
                headers.insert(
                    "WWW-Authenticate",
                    HeaderValue::from_static(r#"Bearer realm="doorman""#),
                );
            }
            Error::RateLimited { retry_after_secs } | Error::Overloaded { retry_after_secs } => {
                headers.insert("Retry-After", (*retry_after_secs).into());
            }
            Error::TooManySockets => {
                headers.insert("Retry-After", 5u64.into());
            }
            // The rest of the body may still be on its way: the connection cannot
            // carry another request.
            Error::RequestTimeout => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Error::DatabaseUnavailable { .. } => {
                headers.insert("Retry-After", DATABASE_RETRY_AFTER_SECS.into());
            }
            _ => {}
        }
        resp
    }
}

/// What a client is told to wait after `database_unavailable`: the pool opens a
/// new connection on the next request, so a database that is back is used at once.
const DATABASE_RETRY_AFTER_SECS: u64 = 1;

/// A database failure is the database being unreachable (503, retry) or a bug (500
/// with a request id). Only failures of the connection itself count as the former;
/// a failed statement on a working connection (a constraint, a decode error) stays a
/// 500, so a real bug is never disguised as an outage.
impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        crate::auth::Error::from(e).into()
    }
}

/// The core's errors keep their meaning at the edge; database failures keep
/// their source, so the log shows the whole chain.
impl From<crate::auth::Error> for Error {
    fn from(e: crate::auth::Error) -> Self {
        use crate::auth::Error as Core;
        match e {
            Core::Auth(e) => Error::Auth(e),
            Core::Factor(e) => Error::Factor(e),
            Core::Invalid(message) => Error::Invalid(message),
            Core::EmailTaken => Error::EmailTaken,
            Core::EmailUnverified => Error::EmailUnverified,
            Core::AlreadyVerified => Error::AlreadyVerified,
            Core::InvalidEmailToken => Error::InvalidEmailToken,
            Core::ResetPending => Error::ResetPending,
            Core::Overloaded { retry_after_secs } => Error::Overloaded { retry_after_secs },
            Core::DatabaseUnavailable(source) => Error::DatabaseUnavailable { source },
            Core::Database(source) => Error::Database { source },
            Core::Internal { context, source } => Error::Internal {
                detail: context,
                source,
            },
        }
    }
}

impl From<crate::ratelimit::Limited> for Error {
    fn from(e: crate::ratelimit::Limited) -> Self {
        Error::RateLimited {
            retry_after_secs: e.retry_after_secs,
        }
    }
}

impl ResponseError for Error {
    fn status(&self) -> StatusCode {
        Error::status(self)
    }

    fn as_response(&self) -> Response {
        self.to_response(None)
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `invalid_token`.
    pub error: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

/// The response for any error that reaches the top of the stack: ours keep their
/// code; poem's own (unknown route, unparsable body, bad path parameter) get the
/// same JSON shape. Server errors are logged with their cause and answered with a
/// generic message carrying the request id.
pub fn respond_to(err: poem::Error, id: Option<&str>, spec: &SpecFacts) -> Response {
    // In the log line whether or not the client is told one.
    let request_id = id.unwrap_or("-");
    if let Some(e) = err.downcast_ref::<Error>() {
        match e {
            Error::Internal { detail, .. } => {
                let cause = crate::auth::Causes(e);
                tracing::error!(request_id, detail = %detail, cause = %cause, "internal error");
            }
            // sqlx's messages name the failure (refused, reset, timed out, the failing
            // statement's error), never the database URL or statement values.
            Error::Database { source } => {
                tracing::error!(request_id, cause = %source, "internal error: database");
            }
            Error::DatabaseUnavailable { source } => {
                tracing::warn!(request_id, cause = %source, "database unavailable");
            }
            _ => {}
        }
        return e.to_response(id);
    }
    // A refused body or parameter of a documented operation: which field, which rule.
    if let Some(e) = spec.explain(&err) {
        return e.to_response(id);
    }
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(request_id, detail = %err, "internal error");
        return Error::internal(String::new()).to_response(id);
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "not found".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => {
            (ErrorCode::MethodNotAllowed, "method not allowed".to_owned())
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            Error::PayloadTooLarge.to_string(),
        ),
        // The content type someone sent may be anything, a token included: say
        // what is wanted instead of repeating it.
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            if err.to_string().contains("does not include") {
                "the request has no `content-type` header; send `application/json`".to_owned()
            } else {
                "this content type is not supported; send `application/json`".to_owned()
            },
        ),
        _ => (
            ErrorCode::BadRequest,
            redact::redact(&err.to_string(), &spec.known_names),
        ),
    };
    poem::web::Json(ErrorBody {
        error: code,
        message,
    })
    .with_status(status)
    .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, sqlx};

    use super::{Error, ErrorCode};
    use crate::auth::db::{is_unavailable, pg_unavailable};

    fn query_err(e: sqlx::Error) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
    }

    #[test]
    fn connection_failures_are_unavailable_and_bugs_are_internal() {
        let down = [
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            DbErr::Conn(RuntimeErr::Internal("refused".into())),
            query_err(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())),
            query_err(sqlx::Error::PoolTimedOut),
            query_err(sqlx::Error::PoolClosed),
            query_err(sqlx::Error::Protocol("unexpected eof".into())),
            DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(
                std::io::ErrorKind::BrokenPipe.into(),
            )))),
        ];
        for e in down {
            assert!(is_unavailable(&e), "{e}");
            let err = Error::from(e);
            assert_eq!(err.code(), ErrorCode::DatabaseUnavailable);
            assert_eq!(err.status().as_u16(), 503);
            let resp = err.to_response(Some("r1"));
            assert_eq!(resp.headers()["retry-after"], "1");
        }
        let bugs = [
            query_err(sqlx::Error::RowNotFound),
            query_err(sqlx::Error::ColumnNotFound("x".into())),
            DbErr::Exec(RuntimeErr::Internal("boom".into())),
            DbErr::RecordNotFound("x".into()),
            DbErr::Type("bad".into()),
        ];
        for e in bugs {
            assert!(!is_unavailable(&e), "{e}");
            assert_eq!(Error::from(e).status().as_u16(), 500);
        }
    }

    #[test]
    fn postgres_codes_for_not_now() {
        for code in ["08006", "08001", "57P01", "57P03", "57014", "53300"] {
            assert!(pg_unavailable(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "40001"] {
            assert!(!pg_unavailable(code), "{code}");
        }
    }

    #[test]
    fn the_cause_is_not_sent() {
        let err = Error::from(DbErr::Conn(RuntimeErr::Internal(
            "password authentication failed for user postgres".into(),
        )));
        assert_eq!(
            err.to_string(),
            "the database is unavailable; retry shortly"
        );
    }
}
