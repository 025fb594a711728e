//! What a note says on the wire: the session and room notes instances exchange,
//! each with the version of its format (`v`). A note of a version this instance
//! does not know is logged once and ignored, so instances of two releases can run
//! side by side during a rolling upgrade; a note without `v` is version 1 (what
//! instances before the field sent). Unit tests pin the format, with no database.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The version of the note format this instance writes and reads.
pub(super) const VERSION: u32 = 1;

fn version_one() -> u32 {
    1
}

/// A session event on its way between instances.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct SessionNote {
    /// The format's version.
    #[serde(default = "version_one")]
    pub(super) v: u32,
    /// The instance it happened on.
    pub(super) o: Uuid,
    #[serde(flatten)]
    pub(super) event: SessionKind,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub(super) enum SessionKind {
    /// A session ended.
    #[serde(rename = "end")]
    Ended { s: Uuid, u: Uuid, r: String },
    /// A session opened.
    #[serde(rename = "open")]
    Opened {
        s: Uuid,
        u: Uuid,
        ip: Option<String>,
        ua: Option<String>,
        /// Unix milliseconds.
        at: i64,
    },
    /// The assurance of user `u`'s sessions `c` changed (those in `l` dropped to
    /// aal1), or a factor was added (`f`: `+otp`) or removed (`-webauthn`).
    #[serde(rename = "asr")]
    Assurance {
        u: Uuid,
        c: Vec<Uuid>,
        l: Vec<Uuid>,
        #[serde(skip_serializing_if = "Option::is_none")]
        f: Option<String>,
    },
}

/// A room event or a piece of shared state on its way between instances.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct RoomNote {
    /// The format's version.
    #[serde(default = "version_one")]
    pub(super) v: u32,
    pub(super) o: Uuid,
    /// The sender's sequence number: no two of its notes are alike (NOTIFY drops a
    /// payload repeated within one transaction, which a batch is).
    #[serde(default)]
    pub(super) n: u64,
    #[serde(flatten)]
    pub(super) kind: RoomKind,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub(super) enum RoomKind {
    /// A message: the frame itself when small enough. (With `id` instead: the
    /// `room_messages` row that holds it, as releases before [`RoomKind::Part`]
    /// sent a large one; still read during a rolling upgrade, never written.)
    #[serde(rename = "msg")]
    Message {
        r: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        f: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Uuid>,
    },
    /// Piece `p` of `of` of a message frame too large for one note (`id` tells
    /// one message's pieces from another's); the pieces of one message leave in
    /// order, one after another, and are joined on arrival.
    #[serde(rename = "part")]
    Part {
        r: String,
        id: Uuid,
        p: u8,
        of: u8,
        f: String,
    },
    /// A message stored in room `r`'s history at offset `s` of epoch `e`, sent in
    /// the transaction that stored it (so every instance, the sender included,
    /// hears a room's messages in offset order): the frame itself when small
    /// enough, else only its place (read back from the history).
    #[serde(rename = "log")]
    Logged {
        r: String,
        s: u64,
        e: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        f: Option<String>,
    },
    /// `u` (everyone, without) was taken out of room `r`.
    #[serde(rename = "rm")]
    Removed { r: String, u: Option<Uuid> },
    /// The sender now holds `u` in `r` since `t` (unix ms), or (without `t`) not.
    #[serde(rename = "pr")]
    Presence { r: String, u: Uuid, t: Option<i64> },
    /// Live-socket counts per session on the sender, absolute.
    #[serde(rename = "sc")]
    Counts { c: Vec<(Uuid, usize)> },
    /// The sender's whole state, in chunks; the first replaces what was known.
    #[serde(rename = "st")]
    State {
        first: bool,
        p: Vec<(String, Uuid, i64)>,
        c: Vec<(Uuid, usize)>,
    },
    /// A newcomer (or a reconnected instance) asks everyone for their state.
    #[serde(rename = "hi")]
    Hello,
    /// Still alive.
    #[serde(rename = "hb")]
    Heartbeat,
}

/// A received payload, read.
#[derive(Debug, PartialEq)]
pub(super) enum Read<T> {
    Note(T),
    /// A format of another release: ignored.
    UnknownVersion(u32),
    /// Not a note at all: ignored.
    Malformed,
}

/// The newest unknown version already logged (one line per version, not per note).
static LOGGED: AtomicU32 = AtomicU32::new(0);

fn read<T: for<'de> Deserialize<'de>>(payload: &str, version: impl Fn(&T) -> u32) -> Read<T> {
    // Parsed once, as a note of this format (every note, at the notification
    // rate); only a payload that is not one is read again, for its version alone:
    // a newer format may not parse as this one at all.
    #[derive(Deserialize)]
    struct Versioned {
        #[serde(default = "version_one")]
        v: u32,
    }
    match serde_json::from_str::<T>(payload) {
        Ok(note) if version(&note) == VERSION => Read::Note(note),
        Ok(note) => unknown_version(version(&note)),
        Err(_) => match serde_json::from_str::<Versioned>(payload) {
            Ok(Versioned { v }) if v != VERSION => unknown_version(v),
            _ => Read::Malformed,
        },
    }
}

/// A note of another format: logged (once per newest version seen), ignored.
fn unknown_version<T>(v: u32) -> Read<T> {
    if LOGGED.fetch_max(v, Ordering::Relaxed) < v {
        tracing::warn!(
            version = v,
            ours = VERSION,
            "cluster notes of another format ignored"
        );
    }
    Read::UnknownVersion(v)
}

impl SessionNote {
    pub(super) fn new(o: Uuid, event: SessionKind) -> Self {
        Self {
            v: VERSION,
            o,
            event,
        }
    }

    pub(super) fn encode(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(super) fn read(payload: &str) -> Read<Self> {
        read(payload, |n: &Self| n.v)
    }
}

impl RoomNote {
    pub(super) fn new(o: Uuid, n: u64, kind: RoomKind) -> Self {
        Self {
            v: VERSION,
            o,
            n,
            kind,
        }
    }

    pub(super) fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(super) fn read(payload: &str) -> Read<Self> {
        read(payload, |n: &Self| n.v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    const S: Uuid = Uuid::from_u128(1);
    const U: Uuid = Uuid::from_u128(2);

    #[test]
    fn the_session_format_is_pinned() {
        let end = SessionNote::new(
            O,
            SessionKind::Ended {
                s: S,
                u: U,
                r: "logout".into(),
            },
        );
        assert_eq!(
            end.encode(),
            r#"{"v":1,"o":"01234567-89ab-cdef-0123-456789abcdef","k":"end","s":"00000000-0000-0000-0000-000000000001","u":"00000000-0000-0000-0000-000000000002","r":"logout"}"#
        );
        assert_eq!(SessionNote::read(&end.encode()), Read::Note(end));
    }

    #[test]
    fn the_part_format_is_pinned() {
        // Instances of the release before it ignore a kind they do not know.
        let part = RoomNote::new(
            O,
            9,
            RoomKind::Part {
                r: "lobby".into(),
                id: S,
                p: 0,
                of: 2,
                f: "{\"type\"".into(),
            },
        );
        assert_eq!(
            part.encode(),
            r#"{"v":1,"o":"01234567-89ab-cdef-0123-456789abcdef","n":9,"k":"part","r":"lobby","id":"00000000-0000-0000-0000-000000000001","p":0,"of":2,"f":"{\"type\""}"#
        );
    }

    #[test]
    fn every_room_note_reads_back_as_written() {
        let kinds = [
            RoomKind::Message {
                r: "lobby".into(),
                f: Some("{}".into()),
                id: None,
            },
            RoomKind::Message {
                r: "lobby".into(),
                f: None,
                id: Some(S),
            },
            RoomKind::Part {
                r: "lobby".into(),
                id: S,
                p: 1,
                of: 3,
                f: "\"\\é".into(),
            },
            RoomKind::Removed {
                r: "private:a".into(),
                u: Some(U),
            },
            RoomKind::Removed {
                r: "private:a".into(),
                u: None,
            },
            RoomKind::Presence {
                r: "lobby".into(),
                u: U,
                t: Some(1_700_000_000_000),
            },
            RoomKind::Presence {
                r: "lobby".into(),
                u: U,
                t: None,
            },
            RoomKind::Counts { c: vec![(S, 3)] },
            RoomKind::State {
                first: true,
                p: vec![("lobby".into(), U, 5)],
                c: vec![(S, 1)],
            },
            RoomKind::Hello,
            RoomKind::Heartbeat,
        ];
        for (n, kind) in kinds.into_iter().enumerate() {
            let note = RoomNote::new(O, n as u64, kind);
            let text = note.encode();
            assert!(text.starts_with(r#"{"v":1,"#), "{text}");
            assert_eq!(RoomNote::read(&text), Read::Note(note), "{text}");
        }
    }

    #[test]
    fn a_note_without_a_version_is_version_one() {
        // As instances before the field wrote them.
        let old = r#"{"o":"01234567-89ab-cdef-0123-456789abcdef","n":7,"k":"hb"}"#;
        assert_eq!(
            RoomNote::read(old),
            Read::Note(RoomNote::new(O, 7, RoomKind::Heartbeat))
        );
        let old = r#"{"o":"01234567-89ab-cdef-0123-456789abcdef","k":"end","s":"00000000-0000-0000-0000-000000000001","u":"00000000-0000-0000-0000-000000000002","r":"expired"}"#;
        assert!(matches!(
            SessionNote::read(old),
            Read::Note(SessionNote { v: 1, .. })
        ));
    }

    #[test]
    fn a_note_of_another_version_or_no_note_is_ignored() {
        // A newer release's note, of a kind this one does not know.
        let newer = r#"{"v":2,"o":"01234567-89ab-cdef-0123-456789abcdef","k":"teleport","x":1}"#;
        assert_eq!(RoomNote::read(newer), Read::UnknownVersion(2));
        assert_eq!(SessionNote::read(newer), Read::UnknownVersion(2));
        // Logged once for version 2, not again.
        assert_eq!(RoomNote::read(newer), Read::UnknownVersion(2));
        for junk in [
            "",
            "null",
            "[]",
            "{",
            r#"{"v":"1"}"#,
            r#"{"v":1,"o":"x","k":"hb"}"#,
        ] {
            assert_eq!(RoomNote::read(junk), Read::Malformed, "{junk}");
        }
        // This version, an unknown kind: not a note.
        let odd = r#"{"v":1,"o":"01234567-89ab-cdef-0123-456789abcdef","k":"teleport"}"#;
        assert_eq!(RoomNote::read(odd), Read::Malformed);
    }
}
