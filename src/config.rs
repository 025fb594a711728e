//! The one configuration struct: command-line flags with `DOORMAN_*` environment
//! fallbacks, parsed once in `main` and passed down.
//!
//! Every value is parsed into its real type here (URLs, origins, networks,
//! durations), so nonsense is refused at start with one line naming the setting,
//! never trusted blindly: `HTTPS://…` is an https URL, `0.2` is a fine number of
//! seconds, `10s` is not.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

/// A configuration value that did not parse: one line naming the variable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// doorman: one authentication for HTTP endpoints and WebSockets.
#[derive(Debug, Clone, Parser)]
#[command(name = "doorman", version, about)]
// `--help` names each setting's environment variable but never prints its value:
// `DATABASE_URL` may carry a password, and no command prints a secret it found in
// the environment.
#[command(mut_args(|arg| arg.hide_env_values(true)))]
pub struct Config {
    /// What to do; `None` runs the server.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Listen address.
    #[arg(long, env = "DOORMAN_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// `sqlite://…` or `postgres://…`. Default: the SQLite file `doorman.db` in the
    /// working directory, created on first start.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://doorman.db?mode=rwc",
        value_parser = parse_database_url
    )]
    pub database_url: String,

    /// The URL users reach (default `http://` + the bind address): an `http` or
    /// `https` origin, served at its root. An https URL turns on `Secure` cookies with
    /// the `__Host-` prefix.
    #[arg(long, env = "DOORMAN_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<PublicUrl>,

    /// Extra origins (comma-separated, exact `scheme://host[:port]`) allowed for cookie
    /// credentials and CORS.
    #[arg(
        long,
        env = "DOORMAN_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_parser = parse_origin_item
    )]
    pub allowed_origins: Vec<Origin>,

    /// Per-IP WebSocket handshakes per second.
    #[arg(long, env = "DOORMAN_WS_HANDSHAKE_PER_SECOND", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_handshake_per_second: u32,

    /// Per-IP WebSocket handshake burst.
    #[arg(long, env = "DOORMAN_WS_HANDSHAKE_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_handshake_burst: u32,

    /// Per-IP login and register attempts per minute; also the per-account ceiling on
    /// failed logins (see docs/security.md for the arithmetic).
    #[arg(long, env = "DOORMAN_LOGIN_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_per_minute: u32,

    /// Room messages per second one user may publish, over WebSocket and HTTP
    /// together (burst twice that).
    #[arg(long, env = "DOORMAN_PUBLISH_PER_SECOND", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub publish_per_second: u32,

    /// Private rooms one user may create per minute (burst the same).
    #[arg(long, env = "DOORMAN_ROOM_CREATE_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub room_create_per_minute: u32,

    /// Private rooms one user may own at once.
    #[arg(long, env = "DOORMAN_MAX_ROOMS_PER_USER", default_value_t = 100, value_parser = parse_positive_count)]
    pub max_rooms_per_user: usize,

    /// Private rooms one user may belong to at once (owned ones included): nobody
    /// can add a user to rooms without end.
    #[arg(long, env = "DOORMAN_MAX_MEMBERSHIPS_PER_USER", default_value_t = 500, value_parser = parse_positive_count)]
    pub max_memberships_per_user: usize,

    /// Members one private room may have (its owner included).
    #[arg(long, env = "DOORMAN_MAX_ROOM_MEMBERS", default_value_t = 1000, value_parser = parse_positive_count)]
    pub max_room_members: usize,

    /// Messages each room keeps for recovery and `GET /api/rooms/{room}/messages`
    /// (0 turns history, offsets and recovery off).
    #[arg(long, env = "DOORMAN_HISTORY_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub history_size: u32,

    /// Age in seconds after which a message leaves a room's history.
    #[arg(long = "history-ttl-seconds", env = "DOORMAN_HISTORY_TTL_SECONDS", default_value = "600", value_parser = parse_positive_seconds)]
    pub history_ttl: Duration,

    /// Bytes of message bodies one user may add to history per history TTL (on
    /// each instance); past it a publish is refused with `rate_limited`, so history
    /// is never a way to fill the disk.
    #[arg(long, env = "DOORMAN_HISTORY_BYTES_PER_USER", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u32).range(4096..))]
    pub history_bytes_per_user: u32,

    /// PostgreSQL: history write transactions one instance keeps in flight at once
    /// (a room's messages always go through the same one, so they keep their
    /// order). More help a database whose commits wait long for the disk; each
    /// costs a connection while it writes, and smaller batches cost more CPU per
    /// message (docs/benchmarks.md). SQLite writes with one.
    #[arg(long, env = "DOORMAN_HISTORY_WRITERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub history_writers: u16,

    /// Password-hashing threads: how many Argon2 hashes (logins, sign-ups, password
    /// changes) run at once. Each holds the Argon2 memory, 19 MiB, while it has work
    /// and gives it back after a second idle. Default: half the cores, at least one.
    #[arg(long, env = "DOORMAN_HASH_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub hash_threads: Option<u16>,

    /// Access-token lifetime in seconds.
    #[arg(long = "access-ttl-seconds", env = "DOORMAN_ACCESS_TTL_SECONDS", default_value = "900", value_parser = parse_positive_seconds)]
    pub access_ttl: Duration,

    /// Absolute session lifetime in seconds (default 30 days).
    #[arg(long = "session-ttl-seconds", env = "DOORMAN_SESSION_TTL_SECONDS", default_value = "2592000", value_parser = parse_positive_seconds)]
    pub session_ttl: Duration,

    /// A session unused for this many seconds expires (default 7 days).
    #[arg(long = "session-idle-seconds", env = "DOORMAN_SESSION_IDLE_SECONDS", default_value = "604800", value_parser = parse_positive_seconds)]
    pub session_idle: Duration,

    /// How recent an authentication the sensitive operations need (password change,
    /// removing a factor, revoking other sessions, deleting a room, admin actions):
    /// older, they answer 403 `step_up_required` until `POST /api/auth/reauth`.
    #[arg(long = "step-up-seconds", env = "DOORMAN_STEP_UP_SECONDS", default_value = "300", value_parser = parse_positive_seconds)]
    pub step_up: Duration,

    /// Window in which a just-used refresh token may be presented again by a concurrent
    /// request without counting as reuse.
    #[arg(
        long = "refresh-reuse-grace-seconds",
        env = "DOORMAN_REFRESH_REUSE_GRACE_SECONDS",
        default_value = "10",
        value_parser = parse_grace_seconds
    )]
    pub refresh_reuse_grace: Duration,

    /// How long a credential-less socket may wait before its `auth` frame.
    #[arg(long = "ws-auth-timeout-seconds", env = "DOORMAN_WS_AUTH_TIMEOUT_SECONDS", default_value = "10", value_parser = parse_positive_seconds)]
    pub ws_auth_timeout: Duration,

    /// Largest WebSocket message in bytes; a larger one closes the socket with 1009.
    #[arg(long, env = "DOORMAN_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024, value_parser = parse_message_bytes)]
    pub ws_max_message_bytes: usize,

    /// Messages per second one socket may send (burst twice that) before 4429.
    #[arg(long, env = "DOORMAN_WS_MESSAGES_PER_SECOND", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_messages_per_second: u32,

    /// Open sockets one user may hold at once.
    #[arg(long, env = "DOORMAN_WS_MAX_SOCKETS_PER_USER", default_value_t = 32, value_parser = parse_positive_count)]
    pub ws_max_sockets_per_user: usize,

    /// Seconds between server heartbeat pings; a peer silent for three of them is closed.
    #[arg(long = "ws-heartbeat-seconds", env = "DOORMAN_WS_HEARTBEAT_SECONDS", default_value = "30", value_parser = parse_positive_seconds)]
    pub ws_heartbeat: Duration,

    /// How often every live socket's session is re-checked against the database: the
    /// bound on how long a lost revocation event (PostgreSQL) can keep a socket open,
    /// and how soon a socket closes after its session's idle expiry.
    #[arg(long = "sweep-seconds", env = "DOORMAN_SWEEP_SECONDS", default_value = "30", value_parser = parse_positive_seconds)]
    pub sweep: Duration,

    /// A request whose headers have not all arrived this many seconds after its first
    /// byte is dropped.
    #[arg(long = "header-timeout-seconds", env = "DOORMAN_HEADER_TIMEOUT_SECONDS", default_value = "10", value_parser = parse_positive_seconds)]
    pub header_timeout: Duration,

    /// A request body not received within this many seconds is answered 408
    /// `request_timeout`.
    #[arg(long = "body-timeout-seconds", env = "DOORMAN_BODY_TIMEOUT_SECONDS", default_value = "10", value_parser = parse_positive_seconds)]
    pub body_timeout: Duration,

    /// Idle keep-alive HTTP connections are closed after this many seconds.
    #[arg(long = "idle-timeout-seconds", env = "DOORMAN_IDLE_TIMEOUT_SECONDS", default_value = "60", value_parser = parse_positive_seconds)]
    pub idle_timeout: Duration,

    /// Concurrent HTTP connections from one client IP; further ones are closed at once.
    #[arg(long, env = "DOORMAN_MAX_CONNECTIONS_PER_IP", default_value_t = 256, value_parser = parse_positive_count)]
    pub max_connections_per_ip: usize,

    /// No request waits longer than this for the database before it answers 503
    /// `database_unavailable`.
    #[arg(long = "db-timeout-seconds", env = "DOORMAN_DB_TIMEOUT_SECONDS", default_value = "3", value_parser = parse_positive_seconds)]
    pub db_timeout: Duration,

    /// Peers (IPs or CIDRs, comma-separated) whose `X-Forwarded-For`/`Forwarded`
    /// headers are believed.
    #[arg(
        long,
        env = "DOORMAN_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_network_item
    )]
    pub trusted_proxies: Vec<Network>,

    /// On SIGTERM: for up to this many seconds `/readyz` answers 503, new sockets
    /// are refused and open sockets are closed with 1001 spread over the window; it
    /// ends sooner once no socket is left and no request has arrived for 0.5 s. Then
    /// in-flight requests finish and the server exits.
    #[arg(long = "drain-seconds", env = "DOORMAN_DRAIN_SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub drain: Duration,

    /// Where to serve Prometheus metrics (`GET /metrics`), on a listener of its own;
    /// empty: no metrics.
    #[arg(long, env = "DOORMAN_METRICS_BIND")]
    pub metrics_bind: Option<std::net::SocketAddr>,

    /// Ended sessions, spent refresh tokens, relayed room messages and account
    /// activity older than this many days (fractions allowed) are deleted.
    #[arg(long = "retention-days", env = "DOORMAN_RETENTION_DAYS", default_value = "30", value_parser = parse_days)]
    pub retention: Duration,

    /// A file holding 32 random bytes (base64): when set, private signing keys are
    /// stored encrypted with it (plain ones are encrypted at start-up).
    #[arg(long, env = "DOORMAN_KEY_ENCRYPTION_KEY_FILE")]
    pub key_encryption_key_file: Option<std::path::PathBuf>,

    /// The SMTP server that sends verification and password-reset links:
    /// `smtp://host:port` (plain; add `?tls=required` for STARTTLS) or
    /// `smtps://user:password@host[:port]` (implicit TLS). Empty: messages go to
    /// the development outbox (`DOORMAN_MAIL_DIR`) instead.
    #[arg(long, env = "DOORMAN_SMTP_URL", value_parser = parse_smtp_url)]
    pub smtp_url: Option<SmtpUrl>,

    /// The sender of doorman's messages (`name@example.org` or `Name
    /// <name@example.org>`). Default: `doorman <noreply@HOST>`, HOST the public
    /// URL's host (`localhost` for an IP address).
    #[arg(long, env = "DOORMAN_MAIL_FROM")]
    pub mail_from: Option<String>,

    /// The development outbox: without `DOORMAN_SMTP_URL`, each message is written
    /// here as one `.eml` file (readable by the server's user only) instead of
    /// being sent. Relative to the working directory.
    #[arg(long, env = "DOORMAN_MAIL_DIR", default_value = "doorman-mail")]
    pub mail_dir: std::path::PathBuf,

    /// `true`: a user whose email address is not verified cannot log in (403
    /// `email_unverified`, and a new verification link is mailed) nor refresh a
    /// session opened before.
    #[arg(
        long,
        env = "DOORMAN_REQUIRE_VERIFIED_EMAIL",
        default_value = "false",
        action = clap::ArgAction::Set,
        value_parser = parse_bool
    )]
    pub require_verified_email: bool,

    /// Messages (verification and password-reset links) one address may be sent
    /// per hour, asked for from anywhere (burst the same).
    #[arg(long, env = "DOORMAN_MAIL_PER_ADDRESS_PER_HOUR", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub mail_per_address_per_hour: u32,

    /// `text` or `json`.
    #[arg(long, env = "DOORMAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// doorman's subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the OpenAPI spec to standard output.
    Openapi,
    /// Print the AsyncAPI document of the WebSocket (`asyncapi.json`) to standard output.
    Asyncapi,
    /// Manage the access-token signing keys (same `DATABASE_URL` as the server).
    Keys {
        /// What to do with the keys.
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Administer accounts (same `DATABASE_URL` as the server): the only way to
    /// grant the first admin role; list, show, block, unblock and delete users as
    /// `/api/admin/*` does (revoking single sessions and reading the audit log are
    /// API-only).
    Users {
        /// What to do.
        #[command(subcommand)]
        action: UsersCommand,
    },
}

/// The `doorman users` subcommands. A user is named by email or id. Every change
/// is written to the audit log with actor `cli`; on PostgreSQL, running instances
/// close the user's sockets within a second.
#[derive(Debug, Clone, Subcommand)]
pub enum UsersCommand {
    /// List users: id, email, display name, admin, blocked, created.
    List {
        /// Only those whose email or display name contains this (any case).
        #[arg(long)]
        query: Option<String>,
        /// At most this many (1 to 10000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10000))]
        limit: u64,
    },
    /// Show one user and their active sessions.
    Show {
        /// Email or user id.
        user: String,
    },
    /// Block a user: login refused, every session ended, sockets closed.
    Block {
        /// Email or user id.
        user: String,
        /// Why (kept with the block and in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Lift a block.
    Unblock {
        /// Email or user id.
        user: String,
    },
    /// Delete a user and everything of theirs (sessions, rooms they own,
    /// memberships, history they sent, activity).
    Delete {
        /// Email or user id.
        user: String,
    },
    /// Grant the admin role (`/api/admin/*`); the way to make the first admin.
    GrantAdmin {
        /// Email or user id.
        user: String,
    },
    /// Revoke the admin role; it takes effect on the user's next request.
    RevokeAdmin {
        /// Email or user id.
        user: String,
    },
}

/// The `doorman keys` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// List every key: id, created, retired, encrypted, and which one signs.
    List,
    /// Create a new key; it signs from now on, on every instance (within about a
    /// second), while the older ones still verify.
    Rotate,
    /// Retire a key: every instance refuses its tokens within about a second and
    /// the JWKS drops it.
    Retire {
        /// The key id (`kid`), as `doorman keys list` shows it.
        // A kid is base64url: one in 64 starts with `-`, which is still the kid.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// The key leaked: also revoke every session (every user signs in again).
        /// Sockets close with 4403 and refresh tokens are refused on every instance
        /// within about two seconds.
        #[arg(long)]
        revoke_sessions: bool,
    },
}

/// How log lines are written: `Text`, human-readable lines, or `Json`, one JSON
/// object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// clap turns variant docs into `--help` text (and switches it to its long layout).
#[allow(missing_docs)]
pub enum LogFormat {
    Text,
    Json,
}

/// The public URL, reduced to its origin: lower-case `http(s)://host[:port]`, the
/// default port left out, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// The origin, e.g. `https://auth.example.org`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, normalised like
/// [`PublicUrl`] (an empty list item is allowed and means nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(Option<String>);

/// An SMTP URL (`smtp://…` or `smtps://…` with a host); it may carry a password,
/// so its `Debug` shows only scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(String);

impl SmtpUrl {
    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(u) => write!(
                f,
                "SmtpUrl({}://{})",
                u.scheme(),
                u.host_str().unwrap_or("")
            ),
            Err(_) => f.write_str("SmtpUrl(…)"),
        }
    }
}

/// One trusted-proxy network (an empty list item is allowed and means nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network(Option<IpNet>);

impl Config {
    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.as_str().to_owned(),
            None => format!("http://{}", self.bind),
        }
    }

    /// The configured extra origins.
    pub fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .iter()
            .filter_map(|o| o.0.clone())
            .collect()
    }

    /// The password-hashing threads: the setting, else half the cores (at least
    /// one), leaving the other half to answer requests while a login storm hashes.
    pub fn hash_threads(&self) -> usize {
        match self.hash_threads {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        }
    }

    /// The sender of doorman's messages: the setting, else `doorman
    /// <noreply@HOST>` with the public URL's host (`localhost` for an IP).
    pub fn mail_from(&self) -> String {
        if let Some(from) = self.mail_from.as_deref().filter(|f| !f.trim().is_empty()) {
            return from.trim().to_owned();
        }
        let host = url::Url::parse(&self.public_url())
            .ok()
            .and_then(|u| match u.host() {
                Some(url::Host::Domain(d)) => Some(d.to_owned()),
                _ => None,
            })
            .unwrap_or_else(|| "localhost".to_owned());
        format!("doorman <noreply@{host}>")
    }

    /// The trusted proxies as networks; a bare IP is a /32 or /128.
    pub fn trusted_proxies(&self) -> Vec<IpNet> {
        self.trusted_proxies.iter().filter_map(|n| n.0).collect()
    }

    /// The configuration from the environment alone (`DOORMAN_*`, `DATABASE_URL`),
    /// with the server's defaults: what a host app embedding doorman reads. A bad
    /// value is refused with the same one line the server prints.
    pub fn from_env() -> Result<Self, ConfigError> {
        <Self as clap::Parser>::try_parse_from(["doorman"])
            .map_err(|e| ConfigError(Self::explain(&e)))
    }

    /// The one-line message for a configuration that did not parse: which setting
    /// (its environment variable and flag), the value and what is wrong with it.
    pub fn explain(err: &clap::Error) -> String {
        let text = err.to_string();
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid configuration")
            .trim_start_matches("error: ")
            .to_owned();
        // "the following required arguments were not provided:" names them on the
        // lines after it.
        let first = if first.ends_with(':') {
            let named: Vec<&str> = text
                .lines()
                .skip_while(|l| !l.ends_with(':'))
                .skip(1)
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .collect();
            format!("{first} {}", named.join(", "))
        } else {
            first
        };
        // Name the environment variable too: operators set those, not flags.
        let command = <Self as clap::CommandFactory>::command();
        for arg in command.get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            if !first.contains(&format!("'--{long} ")) && !first.contains(&format!("'--{long}'")) {
                continue;
            }
            let mut line = first.clone();
            // A database or SMTP URL may carry a password: never echo it.
            if (env == "DATABASE_URL" || env == "DOORMAN_SMTP_URL")
                && let Some(clap::error::ContextValue::String(value)) =
                    err.get(clap::error::ContextKind::InvalidValue)
            {
                line = line.replace(&format!("'{value}'"), "'…'");
            }
            return format!("{} (--{long}): {line}", env.to_string_lossy());
        }
        first
    }
}

impl std::str::FromStr for PublicUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_public_url(s)
    }
}

impl std::str::FromStr for SmtpUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_smtp_url(s)
    }
}

impl std::str::FromStr for Origin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_origin_item(s)
    }
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_network_item(s)
    }
}

/// The longest duration any setting takes: ten years. Longer ones overflow dates
/// and clocks (a session expiring after the year 9999) and are typos anyway.
const MAX_SECONDS: f64 = 10.0 * 365.0 * 24.0 * 3600.0;
/// The longest refresh grace window: past a few minutes, reuse detection is off.
const MAX_GRACE_SECONDS: f64 = 300.0;

/// A number of seconds, fractions allowed (`0.2`), zero allowed.
fn parse_seconds(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let n: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds (e.g. `10` or `0.5`)"))?;
    // f64 parses `inf`, `NaN` and `1e400`; none of them is a duration.
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{s}` is not a number of seconds ≥ 0"));
    }
    if n > MAX_SECONDS {
        return Err(format!("`{s}` seconds is more than ten years"));
    }
    Duration::try_from_secs_f64(n).map_err(|_| format!("`{s}` seconds is too long"))
}

/// A number of days (fractions allowed), at least a second and at most ten years.
fn parse_days(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let days: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of days (e.g. `30` or `0.5`)"))?;
    if !days.is_finite() || days * 86_400.0 < 1.0 {
        return Err(format!(
            "`{s}` is not a number of days of at least one second"
        ));
    }
    parse_seconds(&(days * 86_400.0).to_string())
}

/// The refresh grace window: a few minutes at most.
fn parse_grace_seconds(raw: &str) -> Result<Duration, String> {
    let d = parse_seconds(raw)?;
    if d.as_secs_f64() > MAX_GRACE_SECONDS {
        return Err(format!(
            "`{}` seconds would turn refresh-token reuse detection off; at most {MAX_GRACE_SECONDS}",
            raw.trim()
        ));
    }
    Ok(d)
}

/// Like [`parse_seconds`], but zero is refused: a zero lifetime, timeout or interval
/// makes the server useless or spins it.
fn parse_positive_seconds(raw: &str) -> Result<Duration, String> {
    let d = parse_seconds(raw)?;
    if d < Duration::from_millis(1) {
        return Err(format!("`{}` must be at least 0.001 seconds", raw.trim()));
    }
    Ok(d)
}

fn parse_positive_count(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{}` is not a whole number ≥ 1", raw.trim())),
    }
}

fn parse_message_bytes(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (128..=16 * 1024 * 1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{}` is not a byte count from 128 to 16777216",
            raw.trim()
        )),
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case).
fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

/// An SMTP URL: `smtp://` or `smtps://` and a host. Never echoed: it may carry a
/// password.
fn parse_smtp_url(raw: &str) -> Result<SmtpUrl, String> {
    let s = raw.trim();
    let url = url::Url::parse(s)
        .map_err(|_| "must be smtp://host:port or smtps://user:password@host".to_owned())?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err("must start with `smtp://` or `smtps://`".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("names no host".into());
    }
    Ok(SmtpUrl(s.to_owned()))
}

fn parse_database_url(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let scheme = s.split_once("://").map(|(scheme, _)| scheme);
    match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("sqlite" | "postgres" | "postgresql") => Ok(s.to_owned()),
        // Never echo the URL: it may carry a password.
        _ => Err("must start with `sqlite://`, `postgres://` or `postgresql://`".into()),
    }
}

/// An http(s) origin: scheme and host, an optional port, nothing else (a path of
/// `/` is tolerated). `what` names the kind of value in the message.
fn parse_origin_url(raw: &str, what: &str) -> Result<String, String> {
    let s = raw.trim();
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not {what}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{s}` is not {what}: the scheme must be http or https"
        ));
    }
    if url.host().is_none() {
        return Err(format!("`{s}` is not {what}: it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{s}` is not {what}: it carries credentials"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{s}` is not {what}: only scheme, host and port are allowed (doorman is served at the root)"
        ));
    }
    // The serialisation browsers use in `Origin`: lower case, default port dropped.
    Ok(url.origin().ascii_serialization())
}

fn parse_public_url(raw: &str) -> Result<PublicUrl, String> {
    parse_origin_url(raw, "an http(s) URL").map(PublicUrl)
}

fn parse_origin_item(raw: &str) -> Result<Origin, String> {
    if raw.trim().is_empty() {
        return Ok(Origin(None));
    }
    parse_origin_url(raw, "an origin").map(|o| Origin(Some(o)))
}

fn parse_network_item(raw: &str) -> Result<Network, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(Network(None));
    }
    let net = s
        .parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))?;
    // Trusting every address (or half of them) lets any client name its own IP and
    // walk past every per-IP limit; no proxy fleet spans more than a /8 or a /16.
    let widest = match net {
        IpNet::V4(_) => 8,
        IpNet::V6(_) => 16,
    };
    if net.prefix_len() < widest {
        return Err(format!(
            "`{s}` trusts too many addresses (wider than /{widest}); name the proxies"
        ));
    }
    Ok(Network(Some(net)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_kid_that_starts_with_a_hyphen_is_still_a_kid() {
        let config = Config::try_parse_from(["doorman", "keys", "retire", "-5Xq_abc"])
            .expect("a kid starting with '-' parses");
        match config.command {
            Some(Command::Keys {
                action: KeysCommand::Retire { kid, .. },
            }) => assert_eq!(kid, "-5Xq_abc"),
            _ => panic!("not keys retire"),
        }
    }

    #[test]
    fn revoke_sessions_is_a_flag_before_or_after_the_kid() {
        for args in [
            ["doorman", "keys", "retire", "-5Xq_abc", "--revoke-sessions"],
            ["doorman", "keys", "retire", "--revoke-sessions", "-5Xq_abc"],
        ] {
            let config = Config::try_parse_from(args).expect("parses");
            match config.command {
                Some(Command::Keys {
                    action:
                        KeysCommand::Retire {
                            kid,
                            revoke_sessions,
                        },
                }) => assert_eq!((kid.as_str(), revoke_sessions), ("-5Xq_abc", true)),
                _ => panic!("not keys retire"),
            }
        }
    }

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let mut all = vec!["doorman"];
        all.extend_from_slice(args);
        Config::try_parse_from(all)
    }

    #[test]
    fn seconds_accept_fractions_and_refuse_nonsense() {
        assert_eq!(parse_seconds("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_seconds(" 10 "), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        for bad in [
            "", "-1", "10s", "inf", "NaN", "1e400", "0x10", "1e12", "1e19",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad:?}");
        }
        assert!(parse_seconds("315360000").is_ok());
        assert!(parse_grace_seconds("300").is_ok());
        assert!(parse_grace_seconds("1e15").is_err());
        assert!(parse_positive_seconds("0").is_err());
    }

    #[test]
    fn an_uppercase_https_public_url_is_https() {
        let c = parse(&["--public-url", "HTTPS://Auth.Example.ORG:443/"]).unwrap();
        assert_eq!(c.public_url(), "https://auth.example.org");
        let c = parse(&["--public-url", "http://[::1]:8080"]).unwrap();
        assert_eq!(c.public_url(), "http://[::1]:8080");
    }

    #[test]
    fn public_urls_with_paths_or_other_schemes_are_refused() {
        for bad in [
            "auth.example.org",
            "ftp://example.org",
            "https://example.org/auth",
            "https://user:pw@example.org",
            "https://example.org/?a=b",
            "https://",
        ] {
            assert!(parse(&["--public-url", bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn origins_are_normalised_and_checked() {
        let c = parse(&[
            "--allowed-origins",
            "HTTPS://App.Example.org:443, http://localhost:3000,",
        ])
        .unwrap();
        assert_eq!(
            c.allowed_origins(),
            ["https://app.example.org", "http://localhost:3000"]
        );
        assert!(parse(&["--allowed-origins", "*"]).is_err());
        assert!(parse(&["--allowed-origins", "null"]).is_err());
    }

    #[test]
    fn trusted_proxies_must_be_ips_or_networks() {
        let c = parse(&["--trusted-proxies", "10.0.0.0/8, 192.0.2.1,"]).unwrap();
        assert_eq!(c.trusted_proxies().len(), 2);
        assert!(parse(&["--trusted-proxies", "10.0.0.0/33"]).is_err());
        assert!(parse(&["--trusted-proxies", "proxy.local"]).is_err());
        assert!(parse(&["--trusted-proxies", "0.0.0.0/0"]).is_err());
        assert!(parse(&["--trusted-proxies", "::/0"]).is_err());
        assert!(parse(&["--trusted-proxies", "0.0.0.0/1,128.0.0.0/1"]).is_err());
        assert!(parse(&["--trusted-proxies", "::/1"]).is_err());
        assert!(parse(&["--trusted-proxies", "10.0.0.0/8, fd00::/16"]).is_ok());
    }

    #[test]
    fn a_bad_value_is_explained_in_one_line_naming_the_variable() {
        let err = parse(&["--access-ttl-seconds", "ten"]).unwrap_err();
        let line = Config::explain(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("DOORMAN_ACCESS_TTL_SECONDS (--access-ttl-seconds):"),
            "{line}"
        );
        assert!(line.contains("ten"), "{line}");
    }

    #[test]
    fn smtp_urls_need_smtp_or_smtps_and_a_host_and_are_never_echoed() {
        let c = parse(&["--smtp-url", "smtps://mailer:hunter2@mail.example.org"]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(parse(&["--smtp-url", "smtp://127.0.0.1:2525"]).is_ok());
        let err = parse(&["--smtp-url", "http://mailer:hunter2@mail.example.org"]).unwrap_err();
        let line = Config::explain(&err);
        assert!(line.starts_with("DOORMAN_SMTP_URL"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
        assert!(parse(&["--smtp-url", "smtp://"]).is_err());
    }

    #[test]
    fn the_default_sender_is_noreply_at_the_public_host() {
        let c = parse(&["--public-url", "https://auth.example.org"]).unwrap();
        assert_eq!(c.mail_from(), "doorman <noreply@auth.example.org>");
        let c = parse(&["--bind", "127.0.0.1:8080"]).unwrap();
        assert_eq!(c.mail_from(), "doorman <noreply@localhost>");
        let c = parse(&["--mail-from", "Ann <ann@example.org>"]).unwrap();
        assert_eq!(c.mail_from(), "Ann <ann@example.org>");
    }

    #[test]
    fn require_verified_email_reads_true_and_false() {
        for (raw, want) in [
            ("true", true),
            ("FALSE", false),
            ("1", true),
            ("off", false),
        ] {
            let c = parse(&["--require-verified-email", raw]).unwrap();
            assert_eq!(c.require_verified_email, want, "{raw}");
        }
        assert!(parse(&["--require-verified-email", "maybe"]).is_err());
        assert!(!parse(&[]).unwrap().require_verified_email);
    }

    #[test]
    fn database_urls_need_a_known_scheme_and_are_never_echoed() {
        let err = parse(&["--database-url", "mysql://root:hunter2@db/x"]).unwrap_err();
        let line = Config::explain(&err);
        assert!(line.starts_with("DATABASE_URL"), "{line}");
        // clap quotes the value it refused; the password must not reach a terminal log.
        assert!(!line.contains("hunter2"), "{line}");
    }
}
