//! JSON values written straight into a buffer, for the frames and responses on
//! the hottest paths (`/api/me`, the WebSocket `welcome`). Ids and times are fixed
//! ASCII and need no escaping; only free text goes through serde_json. Each
//! writer appends exactly what serde (and poem-openapi's `ToJSON`) would write;
//! the callers' tests hold them to it.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use uuid::Uuid;

/// A JSON string with serde_json's escaping.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) -> Option<()> {
    serde_json::to_writer(&mut *out, s).ok()
}

/// A UUID as serde writes it: quoted, hyphenated, lower case.
pub(crate) fn uuid(out: &mut Vec<u8>, id: &Uuid) {
    out.push(b'"');
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// A time as `time::serde::rfc3339` writes it: quoted RFC 3339; `None` for a time
/// RFC 3339 cannot write (the caller then falls back to serde's own answer).
pub(crate) fn rfc3339(out: &mut Vec<u8>, t: &OffsetDateTime) -> Option<()> {
    out.push(b'"');
    t.format_into(out, &Rfc3339).ok()?;
    out.push(b'"');
    Some(())
}

/// An unsigned integer.
pub(crate) fn u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}
