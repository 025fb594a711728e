//! The access and refresh cookies: names, attributes, and reading them from a
//! `Cookie` header without trusting its shape.

use poem::web::cookie::{Cookie, SameSite};

use super::AuthError;

/// Cookie names and attributes, fixed at start from the public URL.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    pub access_name: &'static str,
    pub refresh_name: &'static str,
    secure: bool,
}

/// The path the refresh cookie is scoped to, so it travels only to the auth endpoints.
pub const REFRESH_COOKIE_PATH: &str = "/api/auth";

impl CookieSettings {
    /// On https the access cookie gets the `__Host-` prefix (Secure, Path=/, no
    /// Domain) and the refresh cookie `__Secure-` (it has a narrower path).
    pub fn new(https: bool) -> Self {
        if https {
            Self {
                access_name: "__Host-doorman_access",
                refresh_name: "__Secure-doorman_refresh",
                secure: true,
            }
        } else {
            Self {
                access_name: "doorman_access",
                refresh_name: "doorman_refresh",
                secure: false,
            }
        }
    }

    pub fn access(&self, token: &str, max_age_secs: u64) -> Cookie {
        self.build(self.access_name, token, "/", max_age_secs)
    }

    pub fn refresh(&self, token: &str, max_age_secs: u64) -> Cookie {
        self.build(self.refresh_name, token, REFRESH_COOKIE_PATH, max_age_secs)
    }

    /// Cookies that make the browser forget both credentials.
    pub fn cleared(&self) -> [Cookie; 2] {
        [
            self.build(self.access_name, "", "/", 0),
            self.build(self.refresh_name, "", REFRESH_COOKIE_PATH, 0),
        ]
    }

    fn build(&self, name: &str, value: &str, path: &str, max_age_secs: u64) -> Cookie {
        let mut c = Cookie::new_with_str(name, value);
        c.set_http_only(true);
        c.set_secure(self.secure);
        c.set_same_site(SameSite::Lax);
        c.set_path(path);
        c.set_max_age(std::time::Duration::from_secs(max_age_secs));
        c
    }
}

/// The value of cookie `name` across all `Cookie` headers. The same name twice is
/// refused (a sibling domain can plant a second cookie; we never guess which one is
/// real). An empty value counts as absent: it is what a cleared cookie leaves.
pub fn find<'a>(
    headers: impl Iterator<Item = &'a str>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    let mut found = None;
    for header in headers {
        for pair in header.split(';') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if k.trim() != name {
                continue;
            }
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if found.is_some() {
                return Err(AuthError::InvalidToken);
            }
            found = Some(v);
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_others_and_across_headers() {
        let headers = ["a=1; doorman_access=tok", "b=2"];
        assert_eq!(find(headers.into_iter(), "doorman_access"), Ok(Some("tok")));
    }

    #[test]
    fn a_duplicated_cookie_is_refused_not_guessed() {
        let headers = ["doorman_access=one", "doorman_access=two"];
        assert_eq!(
            find(headers.into_iter(), "doorman_access"),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn a_name_that_merely_contains_ours_does_not_match() {
        let headers = ["xdoorman_access=1; doorman_access_old=2"];
        assert_eq!(find(headers.into_iter(), "doorman_access"), Ok(None));
    }
}
