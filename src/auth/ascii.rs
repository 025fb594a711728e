//! Credential bytes as text, checked once.

/// `bytes` as text if every one is ASCII. `is_ascii` checks a word at a time, and
/// ASCII is UTF-8, so `from_utf8` would only check the same bytes again: about 350
/// instructions for a bearer token, on every authenticated request (callgrind).
pub(super) fn ascii_text(bytes: &[u8]) -> Option<&str> {
    if !bytes.is_ascii() {
        return None;
    }
    // SAFETY: every byte is ASCII (checked above), and ASCII text is valid UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

#[cfg(test)]
mod tests {
    use super::ascii_text;

    #[test]
    fn ascii_only() {
        assert_eq!(ascii_text(b"Bearer abc.def"), Some("Bearer abc.def"));
        assert_eq!(ascii_text(b""), Some(""));
        assert_eq!(ascii_text("caf\u{e9}".as_bytes()), None);
        assert_eq!(ascii_text(&[b'a', 0xff]), None);
    }
}
