//! Device cookies (OWASP's answer to account lockout): a successful login leaves a
//! cookie that marks this browser as one the account has used. Login throttling
//! lets its holder past the account-wide ceiling on failures, so guesses made
//! elsewhere can slow an account down but never lock its owner out.
//!
//! A device cookie names no user: it carries a tag of the normalised email (the
//! first 16 bytes of its SHA-256), a random nonce (the device's id for the
//! throttle), an expiry and an HMAC-SHA256 over all three. It grants nothing by
//! itself: the password is still checked.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// How long a device stays known without a new successful login.
pub const DEVICE_LIFETIME_SECS: u64 = 365 * 24 * 3600;

/// Mints and recognises device cookies.
pub struct DeviceCookies {
    /// Keyed once; cloned for each MAC.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for DeviceCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceCookies(…)")
    }
}

impl DeviceCookies {
    /// `key`: 32 secret bytes shared by every instance (derived from the signing
    /// key). `None` only if the MAC refused the key, which HMAC never does.
    pub fn new(key: [u8; 32]) -> Option<Self> {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
        Some(Self { mac })
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }

    /// A device cookie value for the account `email` (normalised).
    pub fn mint(&self, email: &str) -> String {
        let mut nonce = [0u8; 16];
        // Without randomness the nonce is zeros: the cookie still works, and only
        // the devices of this account share one failure budget.
        let _ = getrandom::fill(&mut nonce);
        let expires = OffsetDateTime::now_utc().unix_timestamp() + DEVICE_LIFETIME_SECS as i64;
        let body = format!(
            "{}.{}.{expires}",
            URL_SAFE_NO_PAD.encode(tag(email)),
            URL_SAFE_NO_PAD.encode(nonce)
        );
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// The device's id when `value` is a genuine, unexpired device cookie of the
    /// account `email`; `None` for anything else.
    pub fn recognise(&self, value: &str, email: &str) -> Option<String> {
        let (body, sig) = value.rsplit_once('.')?;
        let mut parts = body.split('.');
        let (tag_b64, nonce, expires) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&sig).ok()?;
        let expires: i64 = expires.parse().ok()?;
        if expires <= OffsetDateTime::now_utc().unix_timestamp() {
            return None;
        }
        (URL_SAFE_NO_PAD.decode(tag_b64).ok()? == tag(email)).then(|| nonce.to_owned())
    }
}

fn tag(email: &str) -> [u8; 16] {
    let digest = Sha256::digest(email.as_bytes());
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&digest[..16]);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_cookie_is_recognised_for_its_account_only() {
        let devices = DeviceCookies::new([7; 32]).unwrap();
        let cookie = devices.mint("ann@example.org");
        let id = devices.recognise(&cookie, "ann@example.org");
        assert!(id.is_some());
        assert_eq!(devices.recognise(&cookie, "bob@example.org"), None);
        // Two logins are two devices.
        assert_ne!(
            devices.recognise(&devices.mint("ann@example.org"), "ann@example.org"),
            id
        );
    }

    #[test]
    fn forged_or_foreign_cookies_are_not_recognised() {
        let devices = DeviceCookies::new([7; 32]).unwrap();
        let other_server = DeviceCookies::new([8; 32]).unwrap();
        let cookie = other_server.mint("ann@example.org");
        assert_eq!(devices.recognise(&cookie, "ann@example.org"), None);
        let genuine = devices.mint("ann@example.org");
        let (body, _) = genuine.rsplit_once('.').unwrap();
        // A later expiry with the old signature.
        let mut parts: Vec<&str> = body.split('.').collect();
        parts[2] = "99999999999";
        let sig = genuine.rsplit_once('.').unwrap().1;
        let tampered = format!("{}.{sig}", parts.join("."));
        assert_eq!(devices.recognise(&tampered, "ann@example.org"), None);
        for junk in ["", ".", "a.b.c.d", "a.b.c.d.e", "....", "x.y.1.zz"] {
            assert_eq!(devices.recognise(junk, "ann@example.org"), None, "{junk:?}");
        }
    }
}
