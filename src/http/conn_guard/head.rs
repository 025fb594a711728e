//! The byte watcher: where request heads start and end, and which status each
//! response carries, from the bytes alone (no I/O: fuzzed in `fuzz/`).

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4).
pub(super) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// `HTTP/1.1 200`: enough of a status line to know its code.
pub(super) const STATUS_PREFIX: usize = 12;

/// Where the client is in sending requests, as far as the bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadPhase {
    /// No request in progress (`fresh`: nothing read on this connection yet).
    Idle { fresh: bool },
    /// The connection's first bytes, all matching the HTTP/2 preface so far.
    Preface { matched: usize },
    /// A head in progress. `content`: a byte other than CR/LF seen (blank lines
    /// before a request line are skipped by the parser, so they end nothing);
    /// `eol`: 0 inside a line, 1 after LF, 2 after LF CR.
    Head { content: bool, eol: u8 },
    /// The head is complete; the response has not started.
    Answering,
    /// Upgraded to a WebSocket: not watched.
    Off,
    /// The client opened with the HTTP/2 preface: refused (see [`HeadWatch::is_http2`]).
    Http2,
}

/// Where the server is in writing the current response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WritePhase {
    /// Expecting a status line; its first bytes so far.
    Status {
        got: [u8; STATUS_PREFIX],
        len: usize,
    },
    /// Inside a `1xx` interim head (no body): scanning for its blank line.
    Interim { eol: u8 },
    /// Inside a final response, or nothing expected until the next head.
    Rest,
}

pub(super) const EXPECT_STATUS: WritePhase = WritePhase::Status {
    got: [0; STATUS_PREFIX],
    len: 0,
};

/// Whether a head ends in `bytes`, read inside a head past its first content byte
/// with `eol` the line-end state before them (0 inside a line, 1 after LF, 2 after
/// LF CR); if not, the state after the last byte. A line ends at LF (CR LF or a
/// bare LF, as the parser accepts), and the head at a line that is empty or a lone
/// CR. Where it ends does not matter: what follows it in the same read (a body, a
/// pipelined request) is not examined.
///
/// This runs on every byte a client sends, and a request head is mostly one long
/// credential header. The usual read holds a whole head and ends with it: its last
/// bytes say so at once. Otherwise one vectorised search per line end.
pub(super) fn head_ends(bytes: &[u8], mut eol: u8) -> Result<(), u8> {
    let mut i = 0;
    // What the last read left open: a line end, perhaps of the head.
    while eol != 0 {
        let Some(&b) = bytes.get(i) else {
            return Err(eol);
        };
        i += 1;
        eol = match (b, eol) {
            (b'\n', _) => return Ok(()),
            (b'\r', 1) => 2,
            _ => 0,
        };
    }
    let rest = &bytes[i..];
    if rest.ends_with(b"\n\n") || rest.ends_with(b"\n\r\n") {
        return Ok(());
    }
    for at in memchr::memchr_iter(b'\n', rest) {
        match &rest[at + 1..] {
            [b'\n', ..] | [b'\r', b'\n', ..] => return Ok(()),
            [] => return Err(1),
            [b'\r'] => return Err(2),
            _ => {}
        }
    }
    Err(0)
}

/// The byte-watching state machine behind [`GuardedStream`]: no IO, no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadWatch {
    pub(super) read: ReadPhase,
    pub(super) write: WritePhase,
    pub(super) upgraded: bool,
}

impl Default for HeadWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadWatch {
    /// The state of a fresh connection: no byte read or written yet.
    pub fn new() -> Self {
        Self {
            read: ReadPhase::Idle { fresh: true },
            write: EXPECT_STATUS,
            upgraded: false,
        }
    }

    /// Whether a request head has begun and not ended: the deadline runs.
    pub fn head_pending(&self) -> bool {
        matches!(
            self.read,
            ReadPhase::Preface { .. } | ReadPhase::Head { .. }
        )
    }

    /// Whether the connection became a WebSocket (a `101` was written).
    #[cfg(test)]
    pub fn upgraded(&self) -> bool {
        self.upgraded
    }

    /// Whether no request is in progress (none yet, or the last one answered).
    pub fn is_idle(&self) -> bool {
        matches!(self.read, ReadPhase::Idle { .. })
    }

    /// Whether the watcher has stood aside for good (upgraded).
    pub fn is_off(&self) -> bool {
        self.read == ReadPhase::Off
    }

    /// Whether the client opened with the HTTP/2 preface (h2c prior knowledge).
    /// doorman does not serve it: an HTTP/2 connection multiplexes unbounded
    /// streams past every per-connection bound here (one connection with 25,000
    /// stalled streams took a gigabyte), and a TLS proxy in front speaks HTTP/2 to
    /// browsers and HTTP/1.1 to doorman anyway.
    pub fn is_http2(&self) -> bool {
        self.read == ReadPhase::Http2
    }

    /// Bytes the client sent.
    pub fn on_read(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.read {
                ReadPhase::Off | ReadPhase::Http2 | ReadPhase::Answering => return,
                ReadPhase::Idle { fresh: true } => self.read = ReadPhase::Preface { matched: 0 },
                ReadPhase::Idle { fresh: false } => {
                    self.read = ReadPhase::Head {
                        content: false,
                        eol: 0,
                    }
                }
                ReadPhase::Preface { matched } => {
                    let take = (H2_PREFACE.len() - matched).min(bytes.len() - i);
                    if bytes[i..i + take] == H2_PREFACE[matched..matched + take] {
                        i += take;
                        self.read = if matched + take == H2_PREFACE.len() {
                            ReadPhase::Http2
                        } else {
                            ReadPhase::Preface {
                                matched: matched + take,
                            }
                        };
                    } else {
                        // HTTP/1 after all. The matched bytes hold no line end;
                        // scan on from the first byte that differed.
                        self.read = ReadPhase::Head {
                            content: matched > 0,
                            eol: 0,
                        };
                    }
                }
                ReadPhase::Head { content: true, eol } => match head_ends(&bytes[i..], eol) {
                    Ok(()) => {
                        self.write = EXPECT_STATUS;
                        self.read = ReadPhase::Answering;
                        return;
                    }
                    Err(eol) => {
                        self.read = ReadPhase::Head { content: true, eol };
                        return;
                    }
                },
                ReadPhase::Head { content: false, .. } => {
                    // Blank lines before a request line: skipped, they end nothing.
                    let b = bytes[i];
                    i += 1;
                    if b != b'\r' && b != b'\n' {
                        self.read = ReadPhase::Head {
                            content: true,
                            eol: 0,
                        };
                    }
                }
            }
        }
    }

    /// Bytes the server sent.
    pub fn on_write(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.write {
                WritePhase::Rest => return,
                WritePhase::Status { mut got, len } => {
                    let take = (STATUS_PREFIX - len).min(bytes.len() - i);
                    got[len..len + take].copy_from_slice(&bytes[i..i + take]);
                    i += take;
                    if len + take < STATUS_PREFIX {
                        self.write = WritePhase::Status {
                            got,
                            len: len + take,
                        };
                        return;
                    }
                    let http1 = got.starts_with(b"HTTP/1.");
                    match &got[9..] {
                        b"101" if http1 => {
                            self.upgraded = true;
                            self.read = ReadPhase::Off;
                            self.write = WritePhase::Rest;
                            return;
                        }
                        [b'1', _, _] if http1 => self.write = WritePhase::Interim { eol: 0 },
                        // A final status (or bytes we do not recognise): the request
                        // is answered. A head still arriving keeps its deadline.
                        _ => {
                            self.write = WritePhase::Rest;
                            if self.read == ReadPhase::Answering {
                                self.read = ReadPhase::Idle { fresh: false };
                            }
                            return;
                        }
                    }
                }
                WritePhase::Interim { eol } => {
                    let b = bytes[i];
                    i += 1;
                    self.write = match (b, eol) {
                        (b'\n', 1 | 2) => EXPECT_STATUS,
                        (b'\n', _) => WritePhase::Interim { eol: 1 },
                        (b'\r', 1) => WritePhase::Interim { eol: 2 },
                        _ => WritePhase::Interim { eol: 0 },
                    };
                }
            }
        }
    }
}

/// The property the byte watcher's fuzz target (`fuzz/fuzz_targets/head_watch.rs`)
/// and a unit test check: reading `bytes` in the chunks `cuts` marks (positions,
/// in any order, out of range ignored) leaves the watcher exactly where reading
/// them one byte at a time does. TCP splits a head anywhere; the deadline must not
/// depend on where.
#[cfg(any(test, feature = "fuzzing"))]
pub fn chunking_agrees(bytes: &[u8], cuts: &[usize]) -> bool {
    let mut cuts: Vec<usize> = cuts.iter().copied().filter(|&c| c < bytes.len()).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunked = HeadWatch::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        chunked.on_read(&bytes[start..cut]);
        start = cut;
    }
    let mut bytewise = HeadWatch::new();
    for b in bytes {
        bytewise.on_read(std::slice::from_ref(b));
    }
    chunked == bytewise
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(w: &mut HeadWatch, chunks: &[&[u8]]) {
        for c in chunks {
            w.on_read(c);
        }
    }

    #[test]
    fn a_head_is_pending_from_its_first_byte_to_its_blank_line() {
        let mut w = HeadWatch::new();
        assert!(!w.head_pending(), "no deadline before the first byte");
        w.on_read(b"G");
        assert!(w.head_pending());
        w.on_read(b"ET / HTTP/1.1\r\nHost: x\r\n");
        assert!(w.head_pending());
        w.on_read(b"\r");
        assert!(w.head_pending());
        w.on_read(b"\n");
        assert!(!w.head_pending());
    }

    #[test]
    fn the_blank_line_is_found_across_reads_and_with_bare_line_feeds() {
        for chunks in [
            &[&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]][..],
            &[b"GET / HTTP/1.1\r", b"\nHost: x\r", b"\n\r", b"\n"],
            &[b"GET / HTTP/1.1\nHost: x\n\n"],
            &[b"GET / HTTP/1.1\r\nHost: x\n", b"\r\n"],
        ] {
            let mut w = HeadWatch::new();
            read_all(&mut w, chunks);
            assert!(!w.head_pending(), "{chunks:?}");
        }
    }

    /// The rule [`head_ends`] implements, one byte at a time.
    fn head_ends_by_bytes(bytes: &[u8], mut eol: u8) -> Result<(), u8> {
        for &b in bytes {
            eol = match (b, eol) {
                (b'\n', 1 | 2) => return Ok(()),
                (b'\n', _) => 1,
                (b'\r', 1) => 2,
                _ => 0,
            };
        }
        Err(eol)
    }

    #[test]
    fn the_head_end_search_agrees_with_the_byte_rule_on_every_short_input() {
        // Every string of up to 8 bytes over {a, CR, LF}, from every start state,
        // and behind a first line that holds no line end, with and without more
        // bytes after it.
        let alphabet = [b'a', b'\r', b'\n'];
        let mut checked = 0;
        for len in 0..=8u32 {
            for mut n in 0..3usize.pow(len) {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[n % 3];
                        n /= 3;
                        b
                    })
                    .collect();
                for eol in 0..=2 {
                    assert_eq!(
                        head_ends(&bytes, eol),
                        head_ends_by_bytes(&bytes, eol),
                        "{bytes:?} from {eol}"
                    );
                    checked += 1;
                }
                for input in [
                    [&[b'x'; 100][..], &bytes, &[b'y'; 40]].concat(),
                    [&[b'x'; 100][..], &bytes].concat(),
                ] {
                    assert_eq!(
                        head_ends(&input, 0),
                        head_ends_by_bytes(&input, 0),
                        "{bytes:?}"
                    );
                }
            }
        }
        assert_eq!(checked, 3 * (0..=8).map(|l| 3usize.pow(l)).sum::<usize>());
    }

    #[test]
    fn blank_lines_before_a_request_line_do_not_end_a_head() {
        let mut w = HeadWatch::new();
        w.on_read(b"\r\n\r\n\r\n");
        assert!(w.head_pending());
        w.on_read(b"GET / HTTP/1.1\r\n");
        assert!(w.head_pending());
        w.on_read(b"\r\n");
        assert!(!w.head_pending());
    }

    #[test]
    fn a_final_response_ends_the_request_and_the_next_head_starts_a_new_deadline() {
        let mut w = HeadWatch::new();
        w.on_read(b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
        assert!(!w.head_pending());
        // Body bytes and anything else read while answering are not examined.
        w.on_read(b"more\r\n\r\n");
        assert!(!w.head_pending());
        w.on_write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        // Idle keep-alive: no deadline until the next request's first byte.
        assert!(!w.head_pending());
        w.on_read(b"GET /");
        assert!(w.head_pending());
        w.on_read(b" HTTP/1.1\r\n\r\n");
        assert!(!w.head_pending());
    }

    #[test]
    fn an_interim_response_does_not_end_the_request() {
        let mut w = HeadWatch::new();
        w.on_read(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        w.on_write(b"HTTP/1.1 100 Continue\r\n\r\n");
        // The body arrives after the interim answer: still the same request.
        w.on_read(b"x\r\n\r\nGET");
        assert!(!w.head_pending());
        assert_eq!(w.read, ReadPhase::Answering);
        // Interim and final answer in one write, the status line split.
        let mut v = HeadWatch::new();
        v.on_read(b"POST /x HTTP/1.1\r\n\r\n");
        v.on_write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2");
        assert_eq!(v.read, ReadPhase::Answering);
        v.on_write(b"04 No Content\r\n\r\n");
        assert_eq!(v.read, ReadPhase::Idle { fresh: false });
    }

    #[test]
    fn a_101_turns_the_watch_off_even_when_its_status_line_is_split() {
        let mut w = HeadWatch::new();
        w.on_read(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
        w.on_write(b"HTTP/1.1 1");
        assert!(!w.upgraded());
        w.on_write(b"01 Switching Protocols\r\n\r\n");
        assert!(w.upgraded() && w.is_off());
        // WebSocket frames, whatever they hold, start no head.
        w.on_read(b"\x81\x05hello");
        assert!(!w.head_pending());
    }

    #[test]
    fn the_http2_preface_is_recognised_and_anything_else_is_http1() {
        let mut w = HeadWatch::new();
        read_all(&mut w, &[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n\r\n"]);
        assert!(w.is_http2() && !w.head_pending() && !w.upgraded());

        let mut v = HeadWatch::new();
        v.on_read(b"PRI * HTTP/1.1\r\n");
        assert!(v.head_pending() && !v.is_off());
        v.on_read(b"\r\n");
        assert!(!v.head_pending());

        // The preface only counts at the start of a connection.
        let mut u = HeadWatch::new();
        u.on_read(b"GET / HTTP/1.1\r\n\r\n");
        u.on_write(b"HTTP/1.1 200 OK\r\n\r\n");
        u.on_read(b"PRI * HTTP/2.0\r\n\r\n");
        assert!(!u.is_off() && !u.is_http2());
    }

    #[test]
    fn an_error_answer_to_a_head_in_progress_keeps_its_deadline() {
        let mut w = HeadWatch::new();
        w.on_read(b"GET / HTTP/1.1\r\nX: ");
        w.on_write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n");
        assert!(w.head_pending());
    }

    #[test]
    fn where_reads_are_cut_does_not_change_the_watch() {
        // Heads built from the pieces that matter (line ends, blank lines, the
        // HTTP/2 preface), cut at pseudo-random places: xorshift, fixed seed.
        let pieces: [&[u8]; 8] = [
            b"GET / HTTP/1.1",
            b"\r\n",
            b"\n",
            b"\r",
            b"Host: a",
            b"PRI * HTTP/2.0",
            b" ",
            b"x",
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            for _ in 0..(next() % 12) {
                bytes.extend_from_slice(pieces[(next() % 8) as usize]);
            }
            let cuts: Vec<usize> = (0..(next() % 6))
                .map(|_| (next() as usize) % (bytes.len() + 1))
                .collect();
            assert!(
                chunking_agrees(&bytes, &cuts),
                "{:?} cut at {cuts:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}
