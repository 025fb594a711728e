//! The one error type of the server and the one place that turns it into an HTTP
//! response: `{"error": "<stable_code>", "message": "<human text>"}`.

use std::{collections::HashSet, marker::PhantomData, sync::OnceLock};

use poem::{
    IntoResponse, Response,
    error::ResponseError,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiResponse, Enum, Object,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};

use crate::auth::AuthError;

/// Every code an error body can carry: an enum in the spec, so generated clients
/// can match on it, and the list in docs/behaviour.md is checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MissingCredentials,
    InvalidToken,
    SessionRevoked,
    SessionExpired,
    OriginRefused,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    InvalidInput,
    BadRequest,
    EmailTaken,
    RoomExists,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    TooManySockets,
    PayloadTooLarge,
    HeadersTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    ShuttingDown,
    Overloaded,
    DatabaseUnavailable,
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
        }
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Input that parsed but breaks a rule (`invalid_input`).
    #[error("{0}")]
    Invalid(String),
    /// Input that did not parse (`bad_request`).
    #[error("{0}")]
    BadRequest(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("a room with this name already exists")]
    RoomExists,
    /// Not allowed for this caller (a private room they are not a member of, an
    /// owner-only operation). Never says whether a private room exists.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("request headers are too large")]
    HeadersTooLarge,
    /// The request body did not arrive within `DOORMAN_BODY_TIMEOUT_SECONDS`.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("this user has too many open sockets")]
    TooManySockets,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// More password hashes wait than the hashing threads can serve promptly.
    #[error("the server is busy checking passwords; retry in {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    /// The database cannot be reached (refused, dropped, timed out, shutting down).
    /// The source is logged, never sent: the client only learns to retry.
    #[error("the database is unavailable; retry shortly")]
    DatabaseUnavailable { source: sea_orm::DbErr },
    /// The database answered with an error: logged with its source, answered 500.
    #[error("internal error: database")]
    Database { source: sea_orm::DbErr },
    /// A server-side failure. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn internal(detail: impl Into<String>) -> Self {
        Error::Internal(detail.into())
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Auth(e) => (*e).into(),
            Error::Invalid(_) => ErrorCode::InvalidInput,
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::EmailTaken => ErrorCode::EmailTaken,
            Error::RoomExists => ErrorCode::RoomExists,
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
            Error::Internal(_) | Error::Database { .. } => ErrorCode::InternalError,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Auth(AuthError::OriginRefused) | Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Auth(_) => StatusCode::UNAUTHORIZED,
            Error::Invalid(_) | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::EmailTaken | Error::RoomExists => StatusCode::CONFLICT,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::RateLimited { .. } | Error::TooManySockets => StatusCode::TOO_MANY_REQUESTS,
            Error::ShuttingDown | Error::Overloaded { .. } | Error::DatabaseUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::Internal(_) | Error::Database { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response for this error. `request_id` goes into a 500's message so an
    /// operator can find the logged cause.
    pub fn to_response(&self, request_id: Option<&str>) -> Response {
        let message = match (self, request_id) {
            (Error::Internal(_) | Error::Database { .. }, Some(id)) => {
                format!("internal error (request id {id})")
            }
            (Error::Internal(_) | Error::Database { .. }, None) => "internal error".to_owned(),
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
            Core::Invalid(message) => Error::Invalid(message),
            Core::EmailTaken => Error::EmailTaken,
            Core::Overloaded { retry_after_secs } => Error::Overloaded { retry_after_secs },
            Core::DatabaseUnavailable(source) => Error::DatabaseUnavailable { source },
            Core::Database(source) => Error::Database { source },
            Core::Internal(detail) => Error::Internal(detail),
        }
    }
}

/// Room refusals at the edge: one `forbidden` for every "not yours" case.
impl From<crate::rooms::RoomError> for Error {
    fn from(e: crate::rooms::RoomError) -> Self {
        use crate::rooms::RoomError as R;
        match e {
            R::InvalidName | R::NotPrivate | R::OwnerCannotLeave => Error::Invalid(e.to_string()),
            R::Forbidden => Error::Forbidden("not allowed in this room"),
            R::Exists => Error::RoomExists,
            R::UnknownUser | R::Gone => Error::NotFound,
            R::Core(e) => e.into(),
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

/// A set of error statuses one operation can answer with, for the spec.
pub trait ErrorSet: Send + Sync + 'static {
    const STATUSES: &'static [u16];
}

/// An operation's error response: any [`Error`], documented in the spec with only
/// the statuses of `S`, so generated clients get typed errors per operation.
pub struct Fail<S>(pub Error, PhantomData<S>);

impl<S> std::fmt::Debug for Fail<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<S, E: Into<Error>> From<E> for Fail<S> {
    fn from(e: E) -> Self {
        Fail(e.into(), PhantomData)
    }
}

impl<S> From<Fail<S>> for poem::Error {
    fn from(f: Fail<S>) -> Self {
        poem::Error::from(f.0)
    }
}

impl<S: ErrorSet> ApiResponse for Fail<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::STATUSES
                .iter()
                .map(|&status| MetaResponse {
                    description: describe(status),
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        // The media type, not the header we send (which adds `; charset=utf-8`):
                        // tools match spec keys against `application/json` exactly.
                        content_type: "application/json",
                        schema: ErrorBody::schema_ref(),
                    }],
                    headers: header_for(status).into_iter().collect(),
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

fn describe(status: u16) -> &'static str {
    match status {
        400 => "The input is malformed or breaks a rule (`bad_request`, `invalid_input`).",
        401 => "Missing, invalid or expired credentials, or the session has ended.",
        403 => {
            "A cookie credential from an origin that is not allowed (`origin_refused`), or not \
             allowed for this caller (`forbidden`)."
        }
        404 => "Not found, or not yours.",
        408 => {
            "The request body did not arrive in time (`request_timeout`); the connection is closed."
        }
        409 => "Conflicts with existing data (`email_taken`, `room_exists`).",
        413 => "The request body is too large (64 KiB at most).",
        415 => "The body is not `application/json`.",
        429 => "Rate limited; see `Retry-After`.",
        503 => {
            "The server is temporarily unable to answer (`database_unavailable`, `overloaded`); see `Retry-After`."
        }
        _ => "Server error; the message carries a request id.",
    }
}

fn header_for(status: u16) -> Option<MetaHeader> {
    let (name, description) = match status {
        401 => ("WWW-Authenticate", "RFC 6750 challenge."),
        429 | 503 => ("Retry-After", "Seconds to wait before retrying."),
        _ => return None,
    };
    Some(MetaHeader {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        required: true,
        deprecated: false,
        schema: if matches!(status, 429 | 503) {
            u64::schema_ref()
        } else {
            String::schema_ref()
        },
    })
}

/// Declares an [`ErrorSet`]: `error_set!(LoginErrors: 400, 401, 429);`.
macro_rules! error_set {
    ($name:ident: $($status:literal),+) => {
        pub struct $name;
        impl $crate::http::error::ErrorSet for $name {
            const STATUSES: &'static [u16] = &[$($status),+];
        }
    };
}
pub(crate) use error_set;

/// poem's parse errors quote what they could not parse, which may be a credential
/// someone put in the wrong field. Keep quoted names the API itself defines (its
/// types, fields, parameters and a few header names), replace any other quoted
/// text, and any value after "found", by `…`.
fn redact(message: &str, known: &HashSet<String>) -> String {
    let is_known = |quoted: &str| {
        known.contains(quoted)
            || known.contains(&quoted.to_ascii_lowercase())
            || is_primitive_type_name(quoted)
    };
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[start] as char;
        out.push_str(&rest[..=start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else {
            rest = after;
            out.push('…');
            break;
        };
        let quoted = &after[..end];
        out.push_str(if is_known(quoted) { quoted } else { "…" });
        out.push(quote);
        rest = &after[end + 1..];
    }
    if !rest.is_empty() && !out.ends_with('…') {
        out.push_str(rest);
    }
    // Unquoted values (numbers, serde's `found 123`) follow "found".
    if let Some(at) = out.find("found ") {
        let value = &out[at + "found ".len()..];
        if !value.starts_with(['"', '`']) {
            let end = if out.ends_with('.') { "." } else { "" };
            out.truncate(at + "found ".len());
            out.push('…');
            out.push_str(end);
        }
    }
    out
}

/// `string`, `integer`, `string_email`…: the names poem-openapi gives basic types.
fn is_primitive_type_name(s: &str) -> bool {
    let base = s.split('_').next().unwrap_or(s);
    matches!(
        base,
        "string" | "integer" | "number" | "boolean" | "object" | "array"
    ) && s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The names the API defines, from its own spec: schema names, their properties,
/// operation parameters, and the headers parse errors mention.
fn known_names() -> &'static HashSet<String> {
    static KNOWN: OnceLock<HashSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known: HashSet<String> = ["content-type", "content-length"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let spec: serde_json::Value =
            serde_json::from_str(&crate::api::spec_json()).unwrap_or_default();
        if let Some(schemas) = spec["components"]["schemas"].as_object() {
            for (name, schema) in schemas {
                known.insert(name.clone());
                if let Some(props) = schema["properties"].as_object() {
                    known.extend(props.keys().cloned());
                }
            }
        }
        if let Some(paths) = spec["paths"].as_object() {
            for op in paths
                .values()
                .filter_map(|p| p.as_object())
                .flat_map(|p| p.values())
            {
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if let Some(name) = param["name"].as_str() {
                        known.insert(name.to_owned());
                    }
                }
            }
        }
        known
    })
}

/// The response for any error that reaches the top of the stack: ours keep their
/// code; poem's own (unknown route, unparsable body, bad path parameter) get the
/// same JSON shape. Server errors are logged with their cause and answered with a
/// generic message carrying the request id.
pub fn respond_to(err: poem::Error, request_id: &str) -> Response {
    if let Some(e) = err.downcast_ref::<Error>() {
        match e {
            Error::Internal(detail) => {
                tracing::error!(request_id, detail = %detail, "internal error");
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
        return e.to_response(Some(request_id));
    }
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(request_id, detail = %err, "internal error");
        return Error::Internal(String::new()).to_response(Some(request_id));
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
            redact(&err.to_string(), known_names()),
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

    use super::{Error, ErrorCode, redact};
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
    fn the_documented_error_codes_are_exactly_the_enum() {
        let doc = include_str!("../../docs/behaviour.md");
        let start = doc
            .find("codes: `missing_credentials`")
            .expect("the code list");
        let list = &doc[start..];
        let list = &list[..list.find('.').expect("the list ends")];
        let documented: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
        let spec: serde_json::Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        let enumerated: Vec<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode is an enum in the spec")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut a = documented.clone();
        let mut b = enumerated.clone();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "docs/behaviour.md and the ErrorCode enum differ");
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

    #[test]
    fn redaction_keeps_identifiers_and_hides_values() {
        let known = super::known_names();
        let redact = |m: &str| redact(m, known);
        assert_eq!(
            redact(r#"Expected input type "LoginMode", found "eyJhbGciOi.secret.sig"."#),
            r#"Expected input type "LoginMode", found "…"."#
        );
        // Short plain words are values too when the API does not define them.
        assert_eq!(
            redact(
                r#"failed to parse "LoginMode": Expected input type "LoginMode", found "Hunter2Secret99"."#
            ),
            r#"failed to parse "LoginMode": Expected input type "LoginMode", found "…"."#
        );
        assert_eq!(
            redact(r#"Expected input type "string", found 12345678."#),
            r#"Expected input type "string", found …."#
        );
        assert_eq!(redact("missing field `email`"), "missing field `email`");
        assert_eq!(
            redact("invalid type: integer `1234567890123`, expected a map"),
            "invalid type: integer `…`, expected a map"
        );
        assert_eq!(
            redact("the client request does not include the `Content-Type` header"),
            "the client request does not include the `Content-Type` header"
        );
        assert_eq!(redact("no quotes at all"), "no quotes at all");
        assert_eq!(redact(r#"unterminated "abc"#), r#"unterminated "…"#);
    }
}
