//! Room names: public (`lobby`) or private (`private:team`).

use super::RoomError;

/// The prefix that makes a room private.
pub const PRIVATE_PREFIX: &str = "private:";

/// The rule of [`RoomName::parse`] as a pattern, for the documents (the spec's
/// room parameters, asyncapi.json's frames): a public name, or `private:` and one.
pub const ANY_ROOM: &str = r"^(private:)?[A-Za-z0-9_.-]{1,64}$";
/// `private:` and a name.
pub const PRIVATE_ROOM: &str = r"^private:[A-Za-z0-9_.-]{1,64}$";

/// A validated room name: 1 to 64 of `A-Z a-z 0-9 _ - .`, or `private:` and such a
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, RoomError> {
        let base = raw.strip_prefix(PRIVATE_PREFIX).unwrap_or(raw);
        let ok = (1..=64).contains(&base.len())
            && base
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RoomError::InvalidName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether only members may enter.
    pub fn is_private(&self) -> bool {
        self.0.starts_with(PRIVATE_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_short_and_plain() {
        assert!(RoomName::parse("lobby-1.en_GB").is_ok());
        assert!(RoomName::parse("private:team").unwrap().is_private());
        assert!(!RoomName::parse("lobby").unwrap().is_private());
        for bad in [
            "",
            "a b",
            "a/b",
            "é",
            &"x".repeat(65),
            "private:",
            "public:x",
            "private:private:x",
            ":x",
        ] {
            assert!(RoomName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
