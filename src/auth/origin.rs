//! Which origins may use cookie credentials.
//!
//! Cookies are sent by the browser on cross-site requests too, so a cookie is only
//! believed when the request's `Origin` says it came from a page we trust: the
//! request's own origin (same scheme, host and port as `Host`) or one listed in
//! `DOORMAN_ALLOWED_ORIGINS`. Matching is exact; `null` is never allowed.

use poem::{
    Request,
    http::{HeaderName, Method, header},
};

use super::AuthError;

/// The origin rules for cookie credentials.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// `http` or `https`: the scheme browsers use to reach us.
    scheme: &'static str,
    /// Exact, lower-case `scheme://host[:port]` strings.
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// `public_url` gives the scheme and is itself allowed; `extra` are more origins.
    pub fn new(public_url: &str, extra: Vec<String>) -> Self {
        let scheme = if public_url.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        let mut allowed = extra;
        if let Some(origin) = origin_of(public_url) {
            allowed.push(origin);
        }
        Self { scheme, allowed }
    }

    /// Whether `origin` is listed (CORS uses this alone: same-origin needs no CORS).
    pub fn is_listed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.allowed.contains(&origin)
    }

    /// Whether `origin` is allowed for a request that arrived with this `Host`.
    pub fn is_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        if origin.eq_ignore_ascii_case("null") {
            return false;
        }
        let same_origin = host.is_some_and(|host| {
            let expected = format!("{}://{}", self.scheme, host);
            origin.eq_ignore_ascii_case(&expected)
        });
        same_origin || self.is_listed(origin)
    }

    /// May this request use a cookie credential? Safe methods (the WebSocket
    /// handshake is a GET) need an absent or allowed `Origin`; unsafe methods need an
    /// allowed `Origin` or `Sec-Fetch-Site: same-origin`.
    pub fn check_cookie_request(&self, req: &Request) -> Result<(), AuthError> {
        // By `HeaderName`, not `&str`: a name given as a string is parsed again at
        // every lookup (about 180 instructions each, on every cookie request).
        let header = |name: &HeaderName| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().map_err(|_| AuthError::OriginRefused))
                .transpose()
        };
        let origin = header(&header::ORIGIN)?;
        let host = header(&header::HOST)?;
        let allowed = match origin {
            Some(origin) => self.is_allowed(origin, host),
            None if is_safe(req.method()) => true,
            None => header(&SEC_FETCH_SITE)?.is_some_and(|v| v == "same-origin"),
        };
        if allowed {
            Ok(())
        } else {
            tracing::warn!(
                security_event = "origin_refused",
                origin = origin.unwrap_or("(none)"),
                method = %req.method(),
                path = req.uri().path(),
                "cookie credential refused for this origin"
            );
            Err(AuthError::OriginRefused)
        }
    }
}

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `scheme://host[:port]` of a URL, lower-cased.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OriginPolicy {
        OriginPolicy::new(
            "http://127.0.0.1:8080",
            vec!["https://app.example.org".into()],
        )
    }

    #[test]
    fn same_origin_with_host_is_allowed() {
        assert!(policy().is_allowed("http://localhost:9000", Some("localhost:9000")));
    }

    #[test]
    fn look_alikes_and_other_ports_are_refused() {
        let p = policy();
        let host = Some("127.0.0.1:8080");
        for bad in [
            "null",
            "http://127.0.0.1:8081",
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8080.evil.org",
            "http://evil.org",
            "https://app.example.org.evil.org",
            "https://evil-app.example.org",
        ] {
            assert!(!p.is_allowed(bad, host), "{bad} should be refused");
        }
    }

    #[test]
    fn listed_origins_and_the_public_url_are_allowed() {
        let p = policy();
        assert!(p.is_allowed("https://app.example.org", Some("other:1")));
        assert!(p.is_allowed("http://127.0.0.1:8080", None));
    }
}
