//! How strongly a session's user proved who they are: the authenticator assurance
//! level (`aal`, NIST SP 800-63B), the methods used (`amr`, RFC 8176 style) and
//! when they last authenticated (`auth_at`). Every session carries one; it is in
//! `/api/me`, the `welcome` frame and the access token, and the step-up checks and
//! the rooms that require a second factor read it from the session, never from a
//! token (a token minted before a step-up or a downgrade would say the wrong thing).

use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;

/// The authenticator assurance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Aal {
    /// One factor (a password).
    Aal1,
    /// Two factors: a password and a TOTP or recovery code, or a passkey (which is
    /// something held and, with user verification, something known or had).
    Aal2,
}

impl Aal {
    /// `aal1` or `aal2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
        }
    }

    /// The number stored in `sessions.aal`.
    pub(crate) fn level(self) -> i16 {
        match self {
            Aal::Aal1 => 1,
            Aal::Aal2 => 2,
        }
    }
}

/// One way of authenticating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A password.
    Pwd,
    /// A TOTP code.
    Otp,
    /// A single-use recovery code (a look-up secret).
    RecoveryCode,
    /// A passkey (WebAuthn).
    Webauthn,
}

impl Method {
    const ALL: [Method; 4] = [
        Method::Pwd,
        Method::Otp,
        Method::RecoveryCode,
        Method::Webauthn,
    ];

    /// Its name in `amr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Pwd => "pwd",
            Method::Otp => "otp",
            Method::RecoveryCode => "recovery_code",
            Method::Webauthn => "webauthn",
        }
    }

    /// The method named `name` ([`Method::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Whether it is a second factor (or, a passkey, both at once).
    pub fn is_second_factor(self) -> bool {
        !matches!(self, Method::Pwd)
    }
}

/// The set of methods a session's user authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amr(u8);

impl Amr {
    /// The set of one method.
    pub fn of(method: Method) -> Self {
        Self(method.bit())
    }

    /// This set and `method`.
    #[must_use]
    pub fn with(self, method: Method) -> Self {
        Self(self.0 | method.bit())
    }

    /// This set without `method`.
    #[must_use]
    pub fn without(self, method: Method) -> Self {
        Self(self.0 & !method.bit())
    }

    /// Whether `method` is in the set.
    pub fn contains(self, method: Method) -> bool {
        self.0 & method.bit() != 0
    }

    /// The methods, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Method> {
        Method::ALL.into_iter().filter(move |m| self.contains(*m))
    }

    /// The level these methods reach: aal2 with a passkey, or a password and a
    /// second factor.
    pub fn aal(self) -> Aal {
        let second = self.contains(Method::Otp) || self.contains(Method::RecoveryCode);
        if self.contains(Method::Webauthn) || (self.contains(Method::Pwd) && second) {
            Aal::Aal2
        } else {
            Aal::Aal1
        }
    }

    /// The names as JSON text (`["pwd","otp"]`): what serde writes of it.
    pub(crate) fn write_json(self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, m) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(m.as_str().as_bytes());
            out.push(b'"');
        }
        out.push(b']');
    }

    /// The names, comma-separated: how `sessions.amr` stores them.
    pub fn to_column(self) -> String {
        self.iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What [`Amr::to_column`] wrote; unknown names are skipped.
    pub fn from_column(s: &str) -> Self {
        s.split(',')
            .filter_map(Method::parse)
            .fold(Self::default(), Self::with)
    }

    /// The names, as `/api/me`, the `welcome` frame and the access token list them.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Method::as_str).collect()
    }
}

impl Serialize for Amr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Method::as_str))
    }
}

impl JsonSchema for Amr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Amr".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
        schemars::json_schema!({
            "type": "array",
            "items": { "type": "string", "enum": names },
            "description": "How the session's user authenticated (`pwd`, `otp`, `recovery_code`, `webauthn`)."
        })
    }
}

/// A session's assurance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assurance {
    /// The level the session reached.
    pub aal: Aal,
    /// How its user authenticated.
    pub amr: Amr,
    /// The last authentication: the login, or the latest re-authentication.
    pub auth_at: OffsetDateTime,
}

impl Assurance {
    /// A session opened now by `amr`.
    pub fn new(amr: Amr, auth_at: OffsetDateTime) -> Self {
        Self {
            aal: amr.aal(),
            amr,
            auth_at,
        }
    }

    /// Whether the last authentication is within `window` of `now`.
    pub fn recent(&self, now: OffsetDateTime, window: std::time::Duration) -> bool {
        now - self.auth_at <= window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_methods() {
        let pwd = Amr::of(Method::Pwd);
        assert_eq!(pwd.aal(), Aal::Aal1);
        assert_eq!(pwd.with(Method::Otp).aal(), Aal::Aal2);
        assert_eq!(pwd.with(Method::RecoveryCode).aal(), Aal::Aal2);
        assert_eq!(Amr::of(Method::Webauthn).aal(), Aal::Aal2);
        // A code without the password it completes is one factor.
        assert_eq!(Amr::of(Method::Otp).aal(), Aal::Aal1);
        assert_eq!(pwd.with(Method::Otp).without(Method::Otp).aal(), Aal::Aal1);
    }

    #[test]
    fn the_hand_written_json_is_serdes() {
        for amr in [
            Amr::default(),
            Amr::of(Method::Pwd),
            Amr::of(Method::Pwd)
                .with(Method::Otp)
                .with(Method::Webauthn),
        ] {
            let mut out = Vec::new();
            amr.write_json(&mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&amr).unwrap()
            );
        }
    }

    #[test]
    fn the_column_round_trips() {
        let amr = Amr::of(Method::Pwd).with(Method::Otp);
        assert_eq!(amr.to_column(), "pwd,otp");
        assert_eq!(Amr::from_column("pwd,otp"), amr);
        assert_eq!(Amr::from_column("pwd,nonsense"), Amr::of(Method::Pwd));
        assert_eq!(Amr::from_column(""), Amr::default());
    }
}
