//! Where messages go: an SMTP server, or the development outbox directory.

use std::{
    io::Write,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor, transport::smtp::extension::ClientId,
};
use uuid::Uuid;

use super::MailSettings;

/// How long one SMTP conversation may take before it counts as failed (and is
/// retried): a relay that accepts and then hangs must not hold a slot for good.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where messages go.
pub(crate) enum Transport {
    /// An SMTP server (STARTTLS or implicit TLS through rustls, as the URL says).
    Smtp {
        mailer: AsyncSmtpTransport<Tokio1Executor>,
        /// Scheme, host and port only: the URL may carry a password.
        shown: String,
    },
    /// One `.eml` file per message in this directory (created when needed).
    Outbox(PathBuf),
}

/// Why a delivery failed, for the log: never the server's own words, which may
/// repeat the recipient's address.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The server refused for good (an SMTP 5xx): retrying would not help.
    pub permanent: bool,
    what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl Transport {
    /// The transport the settings ask for; `host` is the public URL's host, the
    /// name doorman gives itself in `EHLO`.
    pub(crate) fn new(settings: &MailSettings, host: &str) -> Result<Self, String> {
        let Some(url) = &settings.smtp_url else {
            return Ok(Transport::Outbox(settings.outbox.clone()));
        };
        let parsed = url::Url::parse(url).map_err(|_| "DOORMAN_SMTP_URL is not a URL")?;
        let shown = format!(
            "{}://{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        // lettre's own message repeats the URL, password included: say what is wrong instead.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|_| {
            format!(
                "DOORMAN_SMTP_URL ({shown}): use smtp://host:port (plain, or ?tls=required for \
                 STARTTLS) or smtps://user:password@host (implicit TLS)"
            )
        })?;
        if parsed.path().len() <= 1 {
            builder = builder.hello_name(match host.trim_matches(['[', ']']).parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => ClientId::Ipv4(ip),
                Ok(IpAddr::V6(ip)) => ClientId::Ipv6(ip),
                Err(_) => ClientId::Domain(host.to_owned()),
            });
        }
        Ok(Transport::Smtp {
            mailer: builder.timeout(Some(SMTP_TIMEOUT)).build(),
            shown,
        })
    }

    /// What the start-up log says about where mail goes.
    pub(crate) fn describe(&self) -> String {
        match self {
            Transport::Smtp { shown, .. } => format!("SMTP at {shown}"),
            Transport::Outbox(dir) => format!(
                "development outbox {} (no DOORMAN_SMTP_URL): messages are written there, \
                 not sent",
                dir.display()
            ),
        }
    }

    /// One try at delivering `message`.
    pub(crate) async fn send(&self, message: &lettre::Message, id: Uuid) -> Result<(), Failure> {
        match self {
            Transport::Smtp { mailer, .. } => {
                mailer.send(message.clone()).await.map(|_| ()).map_err(|e| {
                    let code = e.status().map(|c| c.to_string());
                    let kind = if e.is_permanent() {
                        "refused permanently"
                    } else if e.is_transient() {
                        "refused for now"
                    } else if e.is_timeout() {
                        "timed out"
                    } else if e.is_tls() {
                        "TLS failed"
                    } else {
                        "connection or protocol failure"
                    };
                    Failure {
                        permanent: e.is_permanent(),
                        what: match code {
                            Some(code) => format!("SMTP {kind} ({code})"),
                            None => format!("SMTP {kind}"),
                        },
                    }
                })
            }
            Transport::Outbox(dir) => {
                let dir = dir.clone();
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_eml(&dir, id, &bytes))
                    .await
                    .map_err(|_| Failure {
                        permanent: false,
                        what: "the outbox writer stopped".into(),
                    })?
                    .map_err(|e| Failure {
                        permanent: false,
                        what: format!("cannot write to the outbox: {}", e.kind()),
                    })
            }
        }
    }
}

/// Writes `<id>.eml` into `dir` whole: first under a temporary name, then renamed,
/// so a reader never sees half a message. The files hold live links: only the
/// server's user may read them.
fn write_eml(dir: &Path, id: Uuid, bytes: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".{id}.eml.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(format!("{id}.eml")))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
