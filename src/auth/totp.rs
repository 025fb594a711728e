//! TOTP (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 6 digits, 30-second steps,
//! the parameters every authenticator app defaults to. Pure functions of the
//! secret, the code and the clock; the store (which step was used last, so a code
//! is never accepted twice) is `second_factors`.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::Error;

/// Seconds per time step.
const STEP: i64 = 30;
/// Digits per code.
const DIGITS: u32 = 6;
/// Steps accepted either side of the current one: a phone clock a step off (or a
/// code typed as it rolled over) still signs in.
const SKEW: i64 = 1;

/// A new random secret: 160 bits (RFC 4226's recommended length), base32 without
/// padding, as `otpauth://` URIs carry it.
pub(crate) fn new_secret() -> Result<String, Error> {
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).map_err(|e| Error::caused("no randomness", e))?;
    Ok(data_encoding::BASE32_NOPAD.encode(&raw))
}

/// The time step of a Unix time.
pub(crate) fn step_at(unix: i64) -> i64 {
    unix.div_euclid(STEP)
}

/// The code for `step`, or `None` for a secret that is not base32.
pub(crate) fn code_at(secret: &str, step: i64) -> Option<u32> {
    let key = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).ok()?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).ok()?;
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // RFC 4226 §5.3, dynamic truncation.
    let offset = usize::from(digest[19] & 0x0f);
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    Some(bin % 10u32.pow(DIGITS))
}

/// The step whose code `code` is, within [`SKEW`] steps of `unix`; `None` if it is
/// none of them (or not six digits). Every candidate is compared, in constant time.
pub(crate) fn matching_step(secret: &str, code: &str, unix: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix);
    let mut found = None;
    for step in now - SKEW..=now + SKEW {
        let expected = format!("{:06}", code_at(secret, step)?);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI an authenticator app reads (as a QR code): issuer and
/// account in the label and the `issuer` parameter, percent-encoded.
pub(crate) fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let issuer_enc = percent(issuer);
    format!(
        "otpauth://totp/{issuer_enc}:{}?secret={secret}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        percent(account)
    )
}

/// The QR code of `uri` as an SVG document (black modules on white, with the
/// standard quiet zone), for a page to show; `None` if the URI is too long for
/// a QR code (it never is: a few hundred bytes).
pub(crate) fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 vectors (its 8-digit codes, mod 10^6).
    #[test]
    fn rfc_6238_vectors() {
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        for (t, code) in [
            (59, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(code_at(&secret, step_at(t)), Some(code % 1_000_000), "{t}");
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let secret = new_secret().unwrap();
        let now = 1_700_000_000;
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let step = step_at(now) + offset;
            let code = format!("{:06}", code_at(&secret, step).unwrap());
            assert_eq!(
                matching_step(&secret, &code, now),
                accepted.then_some(step),
                "{offset}"
            );
        }
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "abcdef", now), None);
    }

    #[test]
    fn the_qr_code_is_an_svg() {
        let svg = qr_svg(&otpauth_uri(
            "doorman",
            "a@example.org",
            &new_secret().unwrap(),
        ))
        .unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    }

    #[test]
    fn the_uri_is_what_apps_read() {
        assert_eq!(
            otpauth_uri("doorman", "a+b@example.com", "ABC"),
            "otpauth://totp/doorman:a%2Bb%40example.com?secret=ABC&issuer=doorman&algorithm=SHA1&digits=6&period=30"
        );
    }
}
