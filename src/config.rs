//! The one configuration struct: command-line flags with `DOORMAN_*` environment
//! fallbacks, parsed once in `main` and passed down.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

/// doorman: one authentication for HTTP endpoints and WebSockets.
#[derive(Debug, Clone, Parser)]
#[command(name = "doorman", version, about)]
pub struct Config {
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
        default_value = "sqlite://doorman.db?mode=rwc"
    )]
    pub database_url: String,

    /// The URL users reach (default `http://` + the bind address). An https URL turns
    /// on `Secure` cookies with the `__Host-` prefix.
    #[arg(long, env = "DOORMAN_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Extra origins (comma-separated, exact `scheme://host[:port]`) allowed for cookie
    /// credentials and CORS.
    #[arg(
        long,
        env = "DOORMAN_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub allowed_origins: Vec<String>,

    /// Per-IP WebSocket handshakes per second.
    #[arg(long, env = "DOORMAN_WS_HANDSHAKE_PER_SECOND", default_value_t = 20)]
    pub ws_handshake_per_second: u32,

    /// Per-IP WebSocket handshake burst.
    #[arg(long, env = "DOORMAN_WS_HANDSHAKE_BURST", default_value_t = 40)]
    pub ws_handshake_burst: u32,

    /// Per-IP login attempts per minute (register and refresh share the same rate).
    #[arg(long, env = "DOORMAN_LOGIN_PER_MINUTE", default_value_t = 10)]
    pub login_per_minute: u32,

    /// Access-token lifetime in seconds.
    #[arg(long, env = "DOORMAN_ACCESS_TTL_SECONDS", default_value_t = 900)]
    pub access_ttl_seconds: u64,

    /// Absolute session lifetime in seconds (default 30 days).
    #[arg(long, env = "DOORMAN_SESSION_TTL_SECONDS", default_value_t = 30 * 24 * 3600)]
    pub session_ttl_seconds: u64,

    /// A session unused for this many seconds expires (default 7 days).
    #[arg(long, env = "DOORMAN_SESSION_IDLE_SECONDS", default_value_t = 7 * 24 * 3600)]
    pub session_idle_seconds: u64,

    /// Window in which a just-used refresh token may be presented again by a concurrent
    /// request without counting as reuse.
    #[arg(
        long,
        env = "DOORMAN_REFRESH_REUSE_GRACE_SECONDS",
        default_value_t = 10
    )]
    pub refresh_reuse_grace_seconds: u64,

    /// How long a credential-less socket may wait before its `auth` frame.
    #[arg(long, env = "DOORMAN_WS_AUTH_TIMEOUT_SECONDS", default_value_t = 10)]
    pub ws_auth_timeout_seconds: u64,

    /// Largest WebSocket message in bytes; a larger one closes the socket with 1009.
    #[arg(long, env = "DOORMAN_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,

    /// Messages per second one socket may send (burst twice that) before 4429.
    #[arg(long, env = "DOORMAN_WS_MESSAGES_PER_SECOND", default_value_t = 50)]
    pub ws_messages_per_second: u32,

    /// Open sockets one user may hold at once.
    #[arg(long, env = "DOORMAN_WS_MAX_SOCKETS_PER_USER", default_value_t = 32)]
    pub ws_max_sockets_per_user: usize,

    /// Seconds between server heartbeat pings; a peer silent for three of them is closed.
    #[arg(long, env = "DOORMAN_WS_HEARTBEAT_SECONDS", default_value_t = 30)]
    pub ws_heartbeat_seconds: u64,

    /// How often every live socket's session is re-checked against the database: the
    /// bound on how long a lost revocation event (PostgreSQL) can keep a socket open,
    /// and how soon a socket closes after its session's idle expiry.
    #[arg(long, env = "DOORMAN_SWEEP_SECONDS", default_value_t = 30)]
    pub sweep_seconds: u64,

    /// Peers (IPs or CIDRs, comma-separated) whose `X-Forwarded-For`/`Forwarded`
    /// headers are believed.
    #[arg(
        long,
        env = "DOORMAN_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,

    /// `text` or `json`.
    #[arg(long, env = "DOORMAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the OpenAPI spec to standard output.
    Openapi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind),
        }
    }

    /// Whether users reach the server over https (turns on `Secure` cookies).
    pub fn is_https(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    /// The configured extra origins, trimmed, without empties.
    pub fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect()
    }

    /// The trusted proxies as networks; a bare IP is a /32 or /128.
    pub fn trusted_proxies(&self) -> Result<Vec<IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("DOORMAN_TRUSTED_PROXIES: `{s}` is not an IP or CIDR"))
            })
            .collect()
    }

    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_ttl_seconds)
    }
}
