//! The access and refresh cookies: names, attributes, and reading them from a
//! `Cookie` header without trusting its shape.

use poem::{
    http::HeaderValue,
    web::cookie::{Cookie, SameSite},
};

use super::AuthError;

/// Cookie names and attributes, fixed at start from the public URL.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// The access-token cookie's name (`__Host-` prefixed on https).
    pub access_name: &'static str,
    /// The refresh-token cookie's name (`__Host-` prefixed on https).
    pub refresh_name: &'static str,
    /// The device cookie (see [`super::devices`]): outlives logout on purpose.
    pub device_name: &'static str,
    /// The path of the refresh and device cookies.
    auth_path: &'static str,
    secure: bool,
}

/// The path the refresh and device cookies are scoped to over plain http, so they
/// travel only to the auth endpoints.
pub const REFRESH_COOKIE_PATH: &str = "/api/auth";

/// The refresh cookie's name before it took the `__Host-` prefix (path `/api/auth`):
/// expired at logout so that browsers drop it, never read.
const LEGACY_REFRESH_NAME: &str = "__Secure-doorman_refresh";

impl CookieSettings {
    /// On https every cookie gets the `__Host-` prefix (Secure, Path=/, no Domain).
    /// Why the refresh and device cookies too, at the price of travelling to every
    /// path: a page on a sibling subdomain can set a cookie for the parent domain,
    /// and a `__Secure-` name does not stop it; a planted refresh cookie would sign
    /// the browser into the planter's account at the next cookie refresh (login
    /// CSRF by cookie tossing). A `__Host-` cookie can only be set by this host, so
    /// a planted one never has the name doorman reads.
    pub fn new(https: bool) -> Self {
        if https {
            Self {
                access_name: "__Host-doorman_access",
                refresh_name: "__Host-doorman_refresh",
                device_name: "__Host-doorman_device",
                auth_path: "/",
                secure: true,
            }
        } else {
            Self {
                access_name: "doorman_access",
                refresh_name: "doorman_refresh",
                device_name: "doorman_device",
                auth_path: REFRESH_COOKIE_PATH,
                secure: false,
            }
        }
    }

    /// The access cookie carrying `token`, for every path, kept `max_age_secs` seconds.
    pub fn access(&self, token: &str, max_age_secs: u64) -> Cookie {
        self.build(self.access_name, token, "/", max_age_secs)
    }

    /// The refresh cookie carrying `token`, kept `max_age_secs` seconds: sent only
    /// to `/api/auth` over http, to every path (its `__Host-` prefix needs it) over
    /// https.
    pub fn refresh(&self, token: &str, max_age_secs: u64) -> Cookie {
        self.build(self.refresh_name, token, self.auth_path, max_age_secs)
    }

    /// The device cookie: only the login endpoint needs it; scoped like the
    /// refresh cookie.
    pub fn device(&self, value: &str) -> Cookie {
        self.build(
            self.device_name,
            value,
            self.auth_path,
            super::devices::DEVICE_LIFETIME_SECS,
        )
    }

    /// Cookies that make the browser forget both credentials (not the device
    /// cookie: a device stays known after logout); over https also the refresh
    /// cookie of the name it had before its `__Host-` prefix.
    pub fn cleared(&self) -> Vec<Cookie> {
        let mut cleared = vec![
            self.build(self.access_name, "", "/", 0),
            self.build(self.refresh_name, "", self.auth_path, 0),
        ];
        if self.secure {
            cleared.push(self.build(LEGACY_REFRESH_NAME, "", REFRESH_COOKIE_PATH, 0));
        }
        cleared
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

/// The value of cookie `name` across all `Cookie` headers, read as bytes: the one
/// cookie reader, shared by the access cookie, the refresh cookie and the WebSocket.
///
/// Browsers send every cookie of the host in one header, including cookies other
/// apps on the same host or a parent domain set, with whatever bytes those apps
/// chose (`lang=café` arrives as raw UTF-8, or Latin-1). Such cookies never change
/// the answer: only our own cookie's value must be token characters. Our name twice
/// is refused (a sibling domain can plant a second cookie; we never guess which one
/// is real), and so is our cookie with a value that no doorman token can have. An
/// empty value counts as absent: it is what a cleared cookie leaves.
pub fn find<'a>(
    headers: impl IntoIterator<Item = &'a HeaderValue>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    let mut found: Option<&[u8]> = None;
    for value in values(headers, name) {
        if found.is_some() {
            return Err(AuthError::InvalidToken);
        }
        found = Some(value);
    }
    match found {
        None | Some(b"") => Ok(None),
        Some(value) => as_token(value).map(Some).ok_or(AuthError::InvalidToken),
    }
}

/// Every value of cookie `name` that could be a doorman token, in order. For a
/// cookie whose values are each verified on their own (the device cookie is
/// signed), a planted copy beside the real one must not hide it.
pub fn find_all<'a>(
    headers: impl IntoIterator<Item = &'a HeaderValue>,
    name: &str,
) -> Vec<&'a str> {
    values(headers, name).filter_map(as_token).collect()
}

/// The raw values of cookie `name` across all headers, quotes stripped.
fn values<'a, 'n, H: IntoIterator<Item = &'a HeaderValue>>(
    headers: H,
    name: &'n str,
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n, H> {
    headers
        .into_iter()
        .flat_map(|header| pairs(header.as_bytes()))
        .filter_map(move |pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            if trim(&pair[..eq]) != name.as_bytes() {
                return None;
            }
            let value = trim(&pair[eq + 1..]);
            Some(
                value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value),
            )
        })
}

/// The pieces of a `Cookie` header between semicolons, exactly as
/// `split(|&b| b == b';')` yields them (empty pieces included), found with memchr:
/// a header is mostly one long token, and this runs on every cookie request.
fn pairs(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b';', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The value as text if it is a non-empty run of token characters.
fn as_token(value: &[u8]) -> Option<&str> {
    // Every byte is checked, without an early exit, so the loop vectorises.
    if value.is_empty() || !value.iter().fold(true, |ok, &b| ok & is_token_byte(b)) {
        return None;
    }
    // Token bytes are ASCII: text without a second UTF-8 pass.
    super::ascii::ascii_text(value)
}

/// The characters of every token doorman puts in a cookie: JWTs and base64url
/// (`A-Z a-z 0-9 - _ .`), and `=` padding for good measure. Branch-free: `b | 0x20`
/// maps exactly the upper-case letters onto the lower-case ones, and `-`, `.`, `/`
/// and the digits are one range (0x2d–0x39) less `/`: fewer comparisons per byte
/// in the vectorised loop over a cookie's few hundred bytes.
fn is_token_byte(b: u8) -> bool {
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | ((b.wrapping_sub(b'-') < 13) & (b != b'/'))
        | (b == b'_')
        | (b == b'=')
}

/// Trims the optional whitespace RFC 6265 allows around names and values.
fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(raw: &[&[u8]]) -> Vec<HeaderValue> {
        raw.iter()
            .map(|b| HeaderValue::from_bytes(b).unwrap())
            .collect()
    }

    fn find_in(raw: &[&[u8]]) -> Result<Option<String>, AuthError> {
        let h = headers(raw);
        find(&h, "doorman_access").map(|v| v.map(str::to_owned))
    }

    #[test]
    fn finds_a_cookie_among_others_and_across_headers() {
        assert_eq!(
            find_in(&[b"a=1; doorman_access=tok", b"b=2"]),
            Ok(Some("tok".into()))
        );
    }

    #[test]
    fn a_duplicated_cookie_is_refused_not_guessed() {
        assert_eq!(
            find_in(&[b"doorman_access=one", b"doorman_access=two"]),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn a_name_that_merely_contains_ours_does_not_match() {
        assert_eq!(
            find_in(&[b"xdoorman_access=1; doorman_access_old=2"]),
            Ok(None)
        );
    }

    #[test]
    fn foreign_cookies_with_any_bytes_do_not_change_the_answer() {
        for foreign in [
            "lang=café".as_bytes(),
            b"lang=caf\xe9",
            b"x=\xff\xfe; y",
            b"=; ;;",
            b"name with spaces=v a l",
        ] {
            let mut header = foreign.to_vec();
            header.extend_from_slice(b"; doorman_access=eyJ0.abc-_.x");
            assert_eq!(
                find_in(&[&header]),
                Ok(Some("eyJ0.abc-_.x".into())),
                "{foreign:?}"
            );
            assert_eq!(
                find_in(&[foreign, b"doorman_access=tok"]),
                Ok(Some("tok".into()))
            );
        }
    }

    #[test]
    fn our_cookie_with_bytes_no_token_has_is_refused() {
        for bad in [
            b"doorman_access=caf\xc3\xa9".as_slice(),
            b"doorman_access=a b",
            b"doorman_access=a,b",
        ] {
            assert_eq!(find_in(&[bad]), Err(AuthError::InvalidToken), "{bad:?}");
        }
    }

    #[test]
    fn find_all_keeps_every_plausible_copy() {
        let h = headers(&[
            b"doorman_device=planted; doorman_device=real.one",
            b"doorman_device=caf\xc3\xa9",
        ]);
        assert_eq!(find_all(&h, "doorman_device"), ["planted", "real.one"]);
    }

    #[test]
    fn token_bytes_are_exactly_the_ascii_alphanumerics_and_four_marks() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=');
            assert_eq!(is_token_byte(b), expected, "{b:#04x}");
        }
    }

    #[test]
    fn pairs_are_what_split_on_semicolons_gives() {
        for raw in [&b""[..], b";", b"a", b"a;b", b"a;b;", b";;a;;", b"x=1; y=2"] {
            let ours: Vec<&[u8]> = pairs(raw).collect();
            let split: Vec<&[u8]> = raw.split(|&b| b == b';').collect();
            assert_eq!(ours, split, "{raw:?}");
        }
    }

    #[test]
    fn a_duplicate_hidden_after_foreign_bytes_is_still_refused() {
        assert_eq!(
            find_in(&[b"lang=caf\xe9; doorman_access=a; doorman_access=b"]),
            Err(AuthError::InvalidToken)
        );
    }
}
