//! A room frame too large for one note travels as several: [`split`] cuts it into
//! pieces that each fit a NOTIFY payload once escaped, the sender's one relay task
//! sends them one after another in its batch (one statement, so one transaction,
//! unless the batch's 256 notes end among them: then two consecutive ones; either
//! way PostgreSQL delivers them in order), and [`Joiner`] puts them back together on
//! every other instance; a piece lost to a failed send or a listening gap drops only
//! its own message. Nothing is written to a table, so nothing a user publishes
//! stays in the database once the notifications are read.

use std::collections::HashMap;

use uuid::Uuid;

/// The most pieces one frame is cut into. The largest frame (4,096 characters
/// that each escape to `\u0001`, seven bytes once escaped again inside a note) is
/// about 29 KB: five pieces.
pub(super) const MAX_PARTS: u8 = 16;
/// The longest frame a joiner puts together (every piece counted as received).
pub(super) const MAX_FRAME: usize = 64 * 1024;

/// How long `text` is once written inside a note: it is carried as a JSON
/// string, so each `"` and `\` in it is escaped once more (a body of quotes
/// doubles in size; serde's frame holds no raw control characters).
pub(super) fn inline_len(text: &str) -> usize {
    text.len() + text.bytes().filter(|b| matches!(b, b'"' | b'\\')).count()
}

/// Cuts `frame` into pieces of at most `budget` bytes each once escaped inside a
/// note, on character boundaries; `None` if that takes more than [`MAX_PARTS`].
pub(super) fn split(frame: &str, budget: usize) -> Option<Vec<&str>> {
    let mut pieces = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (at, c) in frame.char_indices() {
        let n = c.len_utf8() + usize::from(matches!(c, '"' | '\\'));
        if len + n > budget && at > start {
            pieces.push(&frame[start..at]);
            (start, len) = (at, 0);
        }
        len += n;
    }
    if start < frame.len() || pieces.is_empty() {
        pieces.push(&frame[start..]);
    }
    (pieces.len() <= usize::from(MAX_PARTS)).then_some(pieces)
}

/// A frame being put together: what arrived so far of message `id`.
struct Partial {
    id: Uuid,
    room: String,
    of: u8,
    next: u8,
    frame: String,
}

/// One piece of a frame, as a note carries it.
pub(super) struct Piece {
    pub(super) room: String,
    pub(super) id: Uuid,
    /// Its place, from 0.
    pub(super) p: u8,
    /// How many pieces the frame has.
    pub(super) of: u8,
    pub(super) f: String,
}

/// The frames being put together, one at most per sending instance (an
/// instance's pieces arrive in order, one frame's after another's).
#[derive(Default)]
pub(super) struct Joiner {
    partial: HashMap<Uuid, Partial>,
}

impl Joiner {
    /// Takes the next piece from instance `from`; the room and the whole frame once
    /// its last piece is in. A piece out of place (one before it was lost: a
    /// failed send, or a gap in listening) drops the frame it belongs to.
    pub(super) fn add(&mut self, from: Uuid, piece: Piece) -> Option<(String, String)> {
        let Piece { room, id, p, of, f } = piece;
        if of == 0 || of > MAX_PARTS || p >= of {
            self.partial.remove(&from);
            return None;
        }
        if p == 0 {
            self.partial.insert(
                from,
                Partial {
                    id,
                    room,
                    of,
                    next: 0,
                    frame: String::new(),
                },
            );
        }
        let partial = self.partial.get_mut(&from)?;
        if (partial.id, partial.next, partial.of) != (id, p, of)
            || partial.frame.len() + f.len() > MAX_FRAME
        {
            tracing::warn!(
                instance = %from,
                "an incomplete room message from another instance was dropped"
            );
            self.partial.remove(&from);
            return None;
        }
        partial.frame.push_str(&f);
        partial.next += 1;
        if partial.next < partial.of {
            return None;
        }
        let done = self.partial.remove(&from)?;
        Some((done.room, done.frame))
    }

    /// Forgets what the instances `gone` had begun (they died or went silent).
    pub(super) fn forget_all(&mut self, gone: &[Uuid]) {
        for from in gone {
            self.partial.remove(from);
        }
    }

    /// Forgets everything (notes were lost while the listener was away).
    pub(super) fn clear(&mut self) {
        self.partial.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Uuid = Uuid::from_u128(1);
    const B: Uuid = Uuid::from_u128(2);

    fn pieces(id: Uuid, frame: &str, budget: usize) -> Vec<Piece> {
        let parts = split(frame, budget).unwrap();
        let of = parts.len() as u8;
        parts
            .into_iter()
            .enumerate()
            .map(|(p, f)| Piece {
                room: "lobby".into(),
                id,
                p: p as u8,
                of,
                f: f.to_owned(),
            })
            .collect()
    }

    #[test]
    fn pieces_fit_their_budget_once_escaped_and_join_back() {
        for frame in [
            "ab".to_owned(),
            "😀".repeat(4096),
            r#"\u0001"#.repeat(4096),
            "\"".repeat(4096),
            "é".repeat(4096) + "x",
        ] {
            let parts = split(&frame, 6800).unwrap();
            assert!(parts.iter().all(|p| inline_len(p) <= 6800));
            assert!(parts.iter().all(|p| !p.is_empty()));
            assert_eq!(parts.concat(), frame);
            assert!(parts.len() <= 5, "{}", parts.len());
            let mut joiner = Joiner::default();
            let mut out = None;
            for piece in pieces(A, &frame, 6800) {
                assert!(out.is_none());
                out = joiner.add(A, piece);
            }
            assert_eq!(out, Some(("lobby".to_owned(), frame)));
            assert!(joiner.partial.is_empty());
        }
        assert_eq!(split("", 10), Some(vec![""]));
        // Too many pieces: refused rather than sent.
        assert_eq!(split(&"x".repeat(100), 5), None);
    }

    #[test]
    fn two_instances_pieces_interleave_and_a_lost_piece_drops_only_its_frame() {
        let (one, two) = ("1".repeat(50), "2".repeat(50));
        let mut joiner = Joiner::default();
        let mut a = pieces(Uuid::from_u128(10), &one, 20).into_iter();
        let mut b = pieces(Uuid::from_u128(20), &two, 20).into_iter();
        assert!(joiner.add(A, a.next().unwrap()).is_none());
        assert!(joiner.add(B, b.next().unwrap()).is_none());
        // A's second piece is lost: its third drops the frame.
        a.next();
        assert!(joiner.add(A, a.next().unwrap()).is_none());
        assert!(joiner.add(B, b.next().unwrap()).is_none());
        assert_eq!(joiner.add(B, b.next().unwrap()).unwrap().1, two);
        assert!(joiner.partial.is_empty());
        // A's next frame starts afresh.
        let mut out = None;
        for piece in pieces(Uuid::from_u128(11), &one, 20) {
            out = joiner.add(A, piece);
        }
        assert_eq!(out.unwrap().1, one);
        // A frame whose first piece was lost never completes, and a piece claiming
        // too much is refused.
        let mut late = pieces(Uuid::from_u128(12), &one, 20);
        late.remove(0);
        for piece in late {
            assert!(joiner.add(A, piece).is_none());
        }
        let huge = Piece {
            room: "lobby".into(),
            id: A,
            p: 0,
            of: 1,
            f: "x".repeat(MAX_FRAME + 1),
        };
        assert!(joiner.add(A, huge).is_none());
        assert!(joiner.partial.is_empty());
    }
}
