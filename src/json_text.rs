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
///
/// UTC times (every time doorman stores) are written here, in place: `time`'s
/// formatter, general over offsets and formats, cost about 1,000 instructions per
/// time (callgrind), this about 200; the welcome frame and `/api/me` each write one.
/// Other offsets, and years RFC 3339 cannot hold, go through `time`.
pub(crate) fn rfc3339(out: &mut Vec<u8>, t: &OffsetDateTime) -> Option<()> {
    let (year, month, day) = t.to_calendar_date();
    if !t.offset().is_utc() || !(0..=9999).contains(&year) {
        out.push(b'"');
        t.format_into(out, &Rfc3339).ok()?;
        out.push(b'"');
        return Some(());
    }
    let (hour, minute, second, nanos) = t.to_hms_nano();
    // `"YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"`: at most 32 bytes, written in place.
    let mut buf = *b"\"0000-00-00T00:00:00.000000000Z\"";
    let year = year as u16; // 0..=9999, checked above
    buf[1..3].copy_from_slice(&PAIRS[usize::from(year / 100)]);
    buf[3..5].copy_from_slice(&PAIRS[usize::from(year % 100)]);
    buf[6..8].copy_from_slice(&PAIRS[usize::from(u8::from(month))]);
    buf[9..11].copy_from_slice(&PAIRS[usize::from(day)]);
    buf[12..14].copy_from_slice(&PAIRS[usize::from(hour)]);
    buf[15..17].copy_from_slice(&PAIRS[usize::from(minute)]);
    buf[18..20].copy_from_slice(&PAIRS[usize::from(second)]);
    let mut end = 20;
    if nanos != 0 {
        // As `time` writes them: nine digits less the trailing zeros.
        let mut n = nanos;
        for digit in buf[21..30].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
        end = 30;
        while buf[end - 1] == b'0' {
            end -= 1;
        }
    }
    buf[end] = b'Z';
    buf[end + 1] = b'"';
    out.extend_from_slice(&buf[..end + 2]);
    Some(())
}

/// `00` to `99`.
const PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    pairs
};

/// An unsigned integer.
pub(crate) fn u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

    fn ours(t: OffsetDateTime) -> Option<String> {
        let mut out = Vec::new();
        super::rfc3339(&mut out, &t)?;
        Some(String::from_utf8(out).expect("ASCII"))
    }

    fn times(t: OffsetDateTime) -> Option<String> {
        t.format(&Rfc3339).ok().map(|s| format!("\"{s}\""))
    }

    #[test]
    fn rfc3339_writes_what_time_writes() {
        // Every width of fraction (none, trailing zeros of each length), the ends of
        // the year range, and times spread over the centuries in odd steps.
        let mut cases = vec![
            OffsetDateTime::UNIX_EPOCH,
            OffsetDateTime::now_utc(),
            time::macros::datetime!(0000-01-01 00:00:00 UTC),
            time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC),
            time::macros::datetime!(2026-11-27 21:00:00.123456789 UTC),
            time::macros::datetime!(2026-02-28 09:05:07.1 UTC),
        ];
        let base = time::macros::datetime!(2026-11-27 21:00:00 UTC);
        for width in 0..=9 {
            let nanos = 10i64.pow(9 - width) * 7 % 1_000_000_000;
            cases.push(base + Duration::nanoseconds(nanos));
        }
        let mut t = time::macros::datetime!(1900-01-01 00:00:00 UTC);
        while t.year() < 2200 {
            cases.push(t);
            t += Duration::seconds(86_399 * 37) + Duration::nanoseconds(123_457_000 * 3 + 11);
        }
        for t in cases {
            assert_eq!(ours(t), times(t), "{t}");
        }
    }

    #[test]
    fn rfc3339_leaves_other_offsets_and_years_to_time() {
        let t = time::macros::datetime!(2026-11-27 21:00:00.5 UTC);
        let offset = t.to_offset(UtcOffset::from_hms(5, 30, 0).expect("offset"));
        assert_eq!(
            ours(offset).as_deref(),
            Some("\"2026-11-28T02:30:00.5+05:30\"")
        );
        let beyond = time::macros::datetime!(-0001-12-31 23:59:59 UTC);
        assert_eq!(ours(beyond), None);
        assert_eq!(times(beyond), None);
    }
}
