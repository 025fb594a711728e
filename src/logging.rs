//! Logging set up as the server does it, for a host app too.

use std::io::IsTerminal;

use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, LevelFilter, Targets},
    layer::SubscriberExt,
    util::SubscriberInitExt,
};

use crate::config::LogFormat;

/// Libraries that write message payloads (WebSocket frames, SQL with bound values)
/// at debug or trace: capped whatever `RUST_LOG` says, so no credential reaches a log.
/// The caps are a filter of their own, applied after `RUST_LOG`'s: a more specific
/// `RUST_LOG` directive (`tungstenite::protocol=trace`) cannot lift them.
const PAYLOAD_LOGGERS: &[(&str, LevelFilter)] = &[
    ("tungstenite", LevelFilter::INFO),
    ("tokio_tungstenite", LevelFilter::INFO),
    ("sqlx", LevelFilter::WARN),
    ("sea_orm", LevelFilter::INFO),
    // Ceremony states and browsers' answers (challenges, credentials) at debug.
    ("webauthn_rs", LevelFilter::INFO),
    ("webauthn_rs_core", LevelFilter::INFO),
    ("webauthn_rs_proto", LevelFilter::INFO),
];

/// Logging as doorman's server sets it up: `RUST_LOG` (default `info`) in `text` or
/// `json` (`DOORMAN_LOG_FORMAT`), with the libraries that write payloads at debug
/// (tungstenite, sqlx, sea-orm, webauthn-rs) capped, so no credential reaches a log whatever
/// `RUST_LOG` says. Call it once, first; a second call changes nothing.
pub fn init_logging(format: LogFormat) {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let caps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(PAYLOAD_LOGGERS.iter().copied());
    let filter = env.and(caps);
    let registry = tracing_subscriber::registry();
    let result = match format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_filter(filter))
            .try_init(),
        // Colours only on a terminal: in a file or a pipe the escape codes are noise.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_filter(filter),
            )
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("doorman: cannot set up logging: {e}");
    }
}
