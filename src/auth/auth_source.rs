//! [`AuthSource`]: the one place identity is resolved. The HTTP API (through its
//! security scheme) and the WebSocket route (its handshake and its first `auth`
//! frame) all call it; there is no second copy.
//!
//! Sources, in order: `Authorization: Bearer`, then the access cookie, and for a
//! WebSocket that presented neither, its first `auth` frame. A credential that is
//! present but invalid is refused: it never falls back to the next source. Tokens
//! in query strings are never read.

use poem::{
    Request,
    http::{HeaderMap, header},
};

use std::sync::Arc;

use super::Error;
use super::{Auth, AuthError, CredentialSource, Identity, ascii::ascii_text, cookies, outcomes};

/// A credential as the request presented it, not yet verified.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    /// The token of an `Authorization: Bearer` header.
    Bearer(&'a str),
    /// The value of the access cookie.
    Cookie(&'a str),
}

/// The credential in a set of request headers: a pure function of the bytes, so it
/// can be fuzzed (`fuzz/fuzz_targets/credentials.rs`).
pub fn credential_in_headers<'a>(
    headers: &'a HeaderMap,
    access_cookie: &str,
) -> Result<Option<Presented<'a>>, AuthError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        if authorization.next().is_some() {
            return Err(AuthError::InvalidToken);
        }
        let value = visible_ascii(value.as_bytes()).ok_or(AuthError::InvalidToken)?;
        return parse_bearer(value).map(|t| Some(Presented::Bearer(t)));
    }
    Ok(cookies::find(headers.get_all(header::COOKIE), access_cookie)?.map(Presented::Cookie))
}

/// The header value as text if it is visible ASCII and tabs: what
/// `HeaderValue::to_str` accepts. A `HeaderValue` holds no control byte but tab
/// and no DEL (`from_bytes` refuses them, and hyper's parser before it), so for one
/// that is all ASCII, which std checks a word at a time where `to_str` checks a
/// byte at a time (a credential header is hundreds of bytes, on every request).
fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    ascii_text(bytes)
}

/// `Bearer <token>`; any other scheme, or an empty token, is an invalid credential.
fn parse_bearer(value: &str) -> Result<&str, AuthError> {
    let space = memchr::memchr(b' ', value.as_bytes()).ok_or(AuthError::InvalidToken)?;
    let (scheme, token) = (&value[..space], value[space + 1..].trim_ascii());
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || memchr::memchr(b' ', token.as_bytes()).is_some()
    {
        return Err(AuthError::InvalidToken);
    }
    Ok(token)
}

/// Resolves who a request or socket is: the one resolver of doorman, for every
/// door (OpenAPI operations, the WebSocket handshake and its first frame).
#[derive(Clone)]
pub struct AuthSource {
    auth: Arc<Auth>,
}

impl AuthSource {
    /// The resolver over the auth core.
    pub fn new(auth: Arc<Auth>) -> Self {
        Self { auth }
    }

    /// The request's identity; `None` when it presents no credential at all.
    pub async fn resolve_optional(&self, req: &Request) -> Result<Option<Identity>, Error> {
        let auth = &self.auth;
        let presented = match credential_in_headers(req.headers(), auth.cookies.access_name) {
            Ok(presented) => presented,
            Err(e) => {
                // Refused before any token is read (two Authorization headers,
                // another scheme, an empty token, the cookie twice or malformed):
                // counted all the same, under the header that carried it.
                let source = if req.headers().contains_key(header::AUTHORIZATION) {
                    CredentialSource::Bearer
                } else {
                    CredentialSource::Cookie
                };
                outcomes::refused(source, e);
                return Err(e.into());
            }
        };
        match presented {
            None => Ok(None),
            Some(Presented::Bearer(token)) => auth
                .authenticate(token, CredentialSource::Bearer)
                .await
                .map(Some),
            Some(Presented::Cookie(token)) => {
                // Cookies ride along on cross-site requests; headers do not.
                if let Err(e) = auth.origins.check_cookie_request(req) {
                    outcomes::refused(CredentialSource::Cookie, e);
                    return Err(e.into());
                }
                auth.authenticate(token, CredentialSource::Cookie)
                    .await
                    .map(Some)
            }
        }
    }

    /// The request's identity; `missing_credentials` when it presents none.
    pub async fn resolve(&self, req: &Request) -> Result<Identity, Error> {
        self.resolve_optional(req)
            .await?
            .ok_or(Error::Auth(AuthError::MissingCredentials))
    }

    /// The identity of a WebSocket that presented neither header nor cookie, from
    /// the access token of its first `{"type":"auth"}` frame.
    pub async fn resolve_message(&self, token: &str) -> Result<Identity, Error> {
        self.auth
            .authenticate(token, CredentialSource::Message)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(parse_bearer("bearer abc"), Ok("abc"));
        assert_eq!(parse_bearer("Bearer abc"), Ok("abc"));
    }

    #[test]
    fn visible_ascii_is_what_header_values_to_str_accepts() {
        for b in 0..=255u8 {
            let bytes = [b'a', b, b'z'];
            // Only the bytes a header value can hold.
            let Ok(value) = poem::http::HeaderValue::from_bytes(&bytes) else {
                continue;
            };
            assert_eq!(
                visible_ascii(value.as_bytes()),
                value.to_str().ok(),
                "{b:#04x}"
            );
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_invalid() {
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "abc",
        ] {
            assert_eq!(parse_bearer(bad), Err(AuthError::InvalidToken), "{bad}");
        }
    }
}
