//! Which error statuses each operation documents in the spec: [`Fail`] answers
//! any [`Error`] and documents only its [`ErrorSet`]'s statuses.

use std::marker::PhantomData;

use poem_openapi::{
    ApiResponse,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};

use super::{Error, ErrorBody};

/// A set of error statuses one operation can answer with, for the spec.
pub trait ErrorSet: Send + Sync + 'static {
    /// The statuses (e.g. `[401, 429]`) the operation's spec lists.
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
            "A cookie credential from an origin that is not allowed (`origin_refused`), a \
             blocked account (`account_blocked`), not allowed for this caller (`forbidden`), \
             an email address not verified while the server requires it \
             (`email_unverified`), or a mailed link's token that does not hold \
             (`invalid_email_token`)."
        }
        404 => "Not found, or not yours.",
        408 => {
            "The request body did not arrive in time (`request_timeout`); the connection is closed."
        }
        409 => {
            "Conflicts with existing data or a cap (`email_taken`, `room_exists`, `limit_reached`, \
             `already_verified`)."
        }
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

/// The errors of an operation that takes [`crate::Authenticated`] and nothing
/// else that can fail: 401, 403 (`origin_refused`), 503. For a host's operations:
/// `Result<Json<T>, Fail<AuthFailures>>`.
pub struct AuthFailures;

impl ErrorSet for AuthFailures {
    const STATUSES: &'static [u16] = &[401, 403, 503];
}

/// The errors of an operation with a JSON body that takes
/// [`crate::Authenticated`]: 400, 401, 403, 408, 413, 415, 503.
pub struct BodyAuthFailures;

impl ErrorSet for BodyAuthFailures {
    const STATUSES: &'static [u16] = &[400, 401, 403, 408, 413, 415, 503];
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
