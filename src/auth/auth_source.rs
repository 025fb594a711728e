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
use super::{Auth, AuthError, CredentialSource, Identity, cookies};

/// A credential as the request presented it, not yet verified.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    Bearer(&'a str),
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
/// `HeaderValue::to_str` accepts, checked without an early exit so that the loop
/// vectorises (a credential header is hundreds of bytes, on every request).
fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    let visible = bytes.iter().fold(true, |ok, &b| {
        ok & ((b.wrapping_sub(0x20) < 0x5f) | (b == b'\t'))
    });
    // All ASCII, so this cannot fail.
    visible.then(|| std::str::from_utf8(bytes).ok()).flatten()
}

/// `Bearer <token>`; any other scheme, or an empty token, is an invalid credential.
fn parse_bearer(value: &str) -> Result<&str, AuthError> {
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::InvalidToken)?;
    let token = token.trim();
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
    pub fn new(auth: Arc<Auth>) -> Self {
        Self { auth }
    }

    /// The request's identity; `None` when it presents no credential at all.
    pub async fn resolve_optional(&self, req: &Request) -> Result<Option<Identity>, Error> {
        let auth = &self.auth;
        match credential_in_headers(req.headers(), auth.cookies.access_name)? {
            None => Ok(None),
            Some(Presented::Bearer(token)) => auth
                .authenticate(token, CredentialSource::Bearer)
                .await
                .map(Some),
            Some(Presented::Cookie(token)) => {
                // Cookies ride along on cross-site requests; headers do not.
                auth.origins.check_cookie_request(req)?;
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
            let expected = poem::http::HeaderValue::from_bytes(&bytes)
                .ok()
                .and_then(|v| v.to_str().ok().map(str::to_owned));
            assert_eq!(
                visible_ascii(&bytes).map(str::to_owned),
                expected,
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
