//! Mail for the tests: a real SMTP server on loopback (`tests/smtp/sink.py`, on
//! aiosmtpd) that writes what it receives into a directory, and the development
//! outbox, which doorman writes into itself. Either is read as a [`Mailbox`]: a
//! directory of `.eml` files whose names sort in arrival order.
//!
//! The SMTP tests need Python with aiosmtpd (`DOORMAN_TEST_PYTHON`, default
//! `python3`). Without it they print why and pass on a developer's machine; with
//! `DOORMAN_TEST_SMTP=required` (as CI sets it) a missing aiosmtpd fails them.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A directory of received messages.
pub struct Mailbox {
    pub dir: tempfile::TempDir,
}

impl Mailbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a mail directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The messages so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.path()) else {
            return Vec::new();
        };
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| std::fs::read_to_string(self.path().join(n)).expect("a message"))
            .collect()
    }

    /// Waits (up to 10 s) until there are `n` messages; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} messages after 10 s, expected {n}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The `n`-th message (1-based), once it is there.
    pub async fn message(&self, n: usize) -> Mail {
        Mail(self.wait_for(n).await.swap_remove(n - 1))
    }
}

/// One message, raw.
#[derive(Debug, Clone)]
pub struct Mail(pub String);

impl Mail {
    /// The message's text with quoted-printable undone (soft line breaks and
    /// `=XX` escapes), as a mail reader shows it.
    pub fn text(&self) -> String {
        let joined = self.0.replace("=\r\n", "").replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A header's value (first occurrence).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.0.split("\r\n\r\n").next()?;
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The link in the message that starts with `prefix` (e.g.
    /// `http://…/#reset-password=`).
    pub fn link(&self, prefix: &str) -> String {
        let text = self.text();
        let at = text
            .find(prefix)
            .unwrap_or_else(|| panic!("no link starting {prefix} in {text}"));
        text[at..]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap()
            .to_owned()
    }

    /// The token of the link that starts with `prefix`.
    pub fn token(&self, prefix: &str) -> String {
        self.link(prefix)[prefix.len()..].to_owned()
    }
}

/// An SMTP server on loopback; stops (its standard input closes) when dropped.
pub struct SmtpSink {
    pub mailbox: Mailbox,
    pub port: u16,
    child: Child,
}

impl SmtpSink {
    /// Starts the server; `None` (after saying why) where aiosmtpd is missing
    /// and the environment does not require it.
    pub fn start() -> Option<Self> {
        Self::start_failing(0)
    }

    /// Starts a server that refuses the first `n` messages with a transient 451.
    pub fn start_failing(n: u32) -> Option<Self> {
        let python = std::env::var("DOORMAN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let required = std::env::var("DOORMAN_TEST_SMTP").is_ok_and(|v| v == "required");
        let has_aiosmtpd = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_aiosmtpd {
            assert!(
                !required,
                "DOORMAN_TEST_SMTP=required, but {python} cannot import aiosmtpd \
                 (pip install -r tests/smtp/requirements.txt)"
            );
            eprintln!(
                "skipped: {python} has no aiosmtpd (pip install -r tests/smtp/requirements.txt, \
                 or set DOORMAN_TEST_PYTHON)"
            );
            return None;
        }
        let mailbox = Mailbox::new();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/sink.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg(mailbox.path())
            .args(["--fail-first", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the SMTP sink starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("the SMTP sink prints its port");
        let port = line.trim().parse().expect("a port");
        Some(Self {
            mailbox,
            port,
            child,
        })
    }

    /// The URL doorman sends through.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl std::ops::Deref for SmtpSink {
    type Target = Mailbox;

    fn deref(&self) -> &Mailbox {
        &self.mailbox
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
