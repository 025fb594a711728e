//! The public face: [`Doorman`], the handle a host app (and doorman's own server)
//! keeps, and its [`Builder`].

use std::{num::NonZeroU32, ops::Deref, sync::Arc, time::Duration};

use migration::MigratorTrait;
use poem::listener::{Listener, TcpListener};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::{
    account_mail::AccountMail,
    auth::{Auth, AuthSettings, AuthSource, SessionBus, SessionSettings, db::Db},
    cluster,
    config::Config,
    http::{
        client_ip::ClientIp,
        conn_guard::{GuardedAcceptor, ReadRate, UpgradeMarks},
    },
    mail::{MailSettings, Mailer},
    ratelimit::Limits,
    rooms::Rooms,
    sockets::Registry,
    state::{AppState, SocketSettings},
};

/// doorman, started: the database (migrated), the signing keys and their refresh,
/// the janitor, the session bus and, on PostgreSQL, the cluster bridge, the live
/// sockets and the rate limits. Cheap to clone; keep one in your app and attach it
/// to your routes with [`Doorman::edge`] (or `.data(doorman.clone())`), where
/// [`crate::Authenticated`], [`crate::ws::SocketUpgrade`] and doorman's own API
/// groups find it.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use doorman::{Config, Doorman};
/// // Every `DOORMAN_*` variable and `DATABASE_URL`, as the server reads them.
/// let doorman = Doorman::builder(Config::from_env()?).start().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Doorman {
    state: Arc<AppState>,
}

impl Deref for Doorman {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.state
    }
}

/// Why doorman could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is invalid or cannot be used; the text says which.
    #[error("configuration: {0}")]
    Config(String),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The auth core could not start (signing keys, the key-encryption key).
    #[error("{0}")]
    Init(#[from] crate::auth::Error),
    /// The listen address could not be bound.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// Builds a [`Doorman`] from a [`Config`]; see [`Doorman::builder`].
pub struct Builder {
    config: Config,
    connection: Option<DatabaseConnection>,
}

impl Builder {
    /// Use this database connection instead of connecting to `config.database_url`
    /// (doorman still applies its migrations to it).
    pub fn connection(mut self, connection: DatabaseConnection) -> Self {
        self.connection = Some(connection);
        self
    }

    /// Connects, applies pending migrations, loads the signing keys (creating the
    /// first one if there is none) and starts doorman's background tasks.
    pub async fn start(self) -> Result<Doorman, StartError> {
        let config = self.config;
        // A mail setting that cannot work stops the start before anything else.
        let mailer = Mailer::start(&MailSettings {
            smtp_url: config.smtp_url.as_ref().map(|u| u.as_str().to_owned()),
            outbox: config.mail_dir.clone(),
            from: config.mail_from(),
            public_url: config.public_url(),
        })
        .map_err(StartError::Config)?;
        let (db, history_writer) = match self.connection {
            Some(connection) => {
                migrate(&connection).await?;
                (Db::new(connection, config.db_timeout), None)
            }
            None => {
                let db = connect(&config).await?;
                (db, history_writer(&config).await?)
            }
        };
        // The recorder first: a metric set before it exists is lost (the cluster
        // bridge sets `doorman_cluster_listener_connected` once, when it connects).
        let metrics_handle = config
            .metrics_bind
            .map(|_| crate::telemetry::install())
            .transpose()
            .map_err(StartError::Config)?;

        let bus = SessionBus::new();
        let auth = Arc::new(
            Auth::new(
                db.clone(),
                AuthSettings {
                    public_url: config.public_url(),
                    allowed_origins: config.allowed_origins(),
                    access_ttl: config.access_ttl,
                    sessions: SessionSettings {
                        absolute: config.session_ttl,
                        idle: config.session_idle,
                        refresh_grace: config.refresh_reuse_grace,
                    },
                    hash_concurrency: config.hash_threads(),
                    key_encryption_key_file: config
                        .key_encryption_key_file
                        .clone()
                        .filter(|p| !p.as_os_str().is_empty()),
                    require_verified_email: config.require_verified_email,
                    step_up: config.step_up,
                },
                bus.clone(),
            )
            .await?,
        );

        // Sessions opened before verified addresses were required end now, not
        // at their next refresh (a socket never refreshes: outside attack).
        match auth.end_unverified_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                sessions = n,
                "DOORMAN_REQUIRE_VERIFIED_EMAIL: sessions of unverified users ended"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "sessions of unverified users could not be ended; they end at their next refresh")
            }
        }
        auth.spawn_key_refresh(Duration::from_secs(1));
        crate::janitor::spawn(db.clone(), config.retention);
        let limits = Arc::new(Limits::new(&config));
        limits.spawn_sweeper(Duration::from_secs(60));
        let rooms = Rooms::new(
            db.clone(),
            crate::rooms::RoomCaps {
                rooms_per_user: config.max_rooms_per_user,
                memberships_per_user: config.max_memberships_per_user,
                members_per_room: config.max_room_members,
            },
            crate::rooms::HistorySettings {
                size: config.history_size,
                ttl: config.history_ttl,
                bytes_per_user: config.history_bytes_per_user,
                writers: usize::from(config.history_writers),
            },
            history_writer,
        );
        rooms.start();
        rooms.spawn_assurance_listener(auth.clone());
        let registry = Registry::new(config.ws_max_sockets_per_user);
        registry.spawn_event_listener(auth.clone());
        registry.spawn_sweeper(auth.clone(), config.sweep);
        cluster::Bridge {
            db,
            bus,
            rooms: rooms.clone(),
            registry: registry.clone(),
            auth: auth.clone(),
            sweep_every: config.sweep,
        }
        .start();
        let ws = SocketSettings {
            upgrades: UpgradeMarks::default(),
            auth_timeout: config.ws_auth_timeout,
            heartbeat: config.ws_heartbeat,
            messages_per_second: NonZeroU32::new(config.ws_messages_per_second)
                .unwrap_or(NonZeroU32::MIN),
            config: SocketSettings::socket_config(config.ws_max_message_bytes),
            clock: governor::clock::DefaultClock::default(),
        };
        let account_mail = AccountMail::start(auth.clone(), mailer);
        let metrics = config.metrics_bind;
        let state = Arc::new(AppState {
            client_ip: ClientIp::new(config.trusted_proxies()),
            config,
            auth_source: AuthSource::new(auth.clone()),
            auth,
            limits,
            rooms,
            registry,
            ws,
            metrics: metrics.is_some(),
            account_mail,
        });
        crate::memory::spawn_trimmer(Arc::downgrade(&state));
        let doorman = Doorman { state };
        if let (Some(bind), Some(handle)) = (metrics, metrics_handle) {
            let listener = TcpListener::bind(bind).into_acceptor().await?;
            tracing::info!(%bind, "metrics at /metrics");
            // Weak: the listener must not keep doorman's state alive.
            let state = Arc::downgrade(&doorman.state);
            let gauges = crate::telemetry::Gauges(Arc::new(move || {
                let Some(state) = state.upgrade() else { return };
                metrics::gauge!("doorman_ws_sockets_open").set(state.registry.len() as f64);
                metrics::gauge!("doorman_password_hashes_queued")
                    .set(state.auth.password_hashes_queued() as f64);
                let (open, idle) = state.auth.pool_stats();
                metrics::gauge!("doorman_db_pool_connections").set(f64::from(open));
                metrics::gauge!("doorman_db_pool_in_use")
                    .set(open.saturating_sub(idle as u32) as f64);
            }));
            tokio::spawn(crate::telemetry::serve(listener, handle, gauges));
        }
        Ok(doorman)
    }
}

impl Doorman {
    /// A builder for doorman configured by `config` (see [`Config::from_env`]).
    pub fn builder(config: Config) -> Builder {
        Builder {
            config,
            connection: None,
        }
    }

    /// The configuration doorman was started with.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The one resolver of identity, for code that holds a [`poem::Request`] and
    /// wants the caller without an extractor.
    pub fn auth_source(&self) -> &AuthSource {
        &self.state.auth_source
    }

    /// The auth core: accounts, sessions, tokens, passwords.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.state.auth
    }

    /// The live sockets of this instance.
    pub fn sockets(&self) -> &Registry {
        &self.state.registry
    }

    /// A listener on `config.bind` behind doorman's connection guard: request heads
    /// must arrive within `DOORMAN_HEADER_TIMEOUT_SECONDS`, idle keep-alive
    /// connections close after `DOORMAN_IDLE_TIMEOUT_SECONDS`, one IP holds at most
    /// `DOORMAN_MAX_CONNECTIONS_PER_IP` connections, and an upgraded socket's bytes
    /// are read within a budget. Serve it with `poem::Server::new_with_acceptor`.
    pub async fn listen(&self) -> std::io::Result<GuardedAcceptor> {
        let acceptor = TcpListener::bind(self.config().bind)
            .into_acceptor()
            .await?;
        Ok(self.guard(acceptor))
    }

    /// `acceptor` behind doorman's connection guard (see [`Doorman::listen`]).
    pub(crate) fn guard(&self, acceptor: poem::listener::TcpAcceptor) -> GuardedAcceptor {
        let config = self.config();
        GuardedAcceptor::new(
            acceptor,
            config.header_timeout,
            config.idle_timeout,
            config.max_connections_per_ip,
            // Four largest messages a second, two at once: far above what the
            // per-socket message rate lets through in practice.
            ReadRate {
                per_second: (config.ws_max_message_bytes as u64).saturating_mul(4),
                burst: (config.ws_max_message_bytes as u64).saturating_mul(2),
            },
            self.state.ws.upgrades.clone(),
        )
    }

    /// Stops taking sockets and closes the open ones with 1001 spread over `window`
    /// (`DOORMAN_DRAIN_SECONDS` in the server), waiting at most `grace` more for
    /// them to finish.
    pub async fn drain(&self, window: Duration, grace: Duration) {
        self.state.registry.drain(window, grace).await;
        // What SQLite's history writer holds goes to disk before the process ends.
        self.state.rooms.history().close().await;
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Connects to the database the way the server does and applies pending
/// migrations.
pub(crate) async fn connect(config: &Config) -> Result<Db, StartError> {
    let connection = Database::connect(connect_options(config)).await?;
    migrate(&connection).await?;
    wal(&connection, config.db_timeout).await?;
    Ok(Db::new(connection, config.db_timeout))
}

/// [`connect`] for the command line (`doorman users`, `doorman keys`) beside a
/// running server on the same SQLite file: each statement waits up to 30 s for
/// the server's write to finish (SQLite's busy timeout; sqlx's default is 5 s, which
/// a busy server on a loaded machine can outlast), and so does the whole command.
/// The command line is run by a person, not in a request: waiting is the right
/// answer to a lock.
#[cfg(feature = "server")]
pub(crate) async fn connect_cli(config: &Config) -> Result<Db, StartError> {
    const PATIENCE: Duration = Duration::from_secs(30);
    let mut options = connect_options(config);
    options.map_sqlx_sqlite_opts(|o| o.busy_timeout(PATIENCE));
    let connection = Database::connect(options).await?;
    migrate(&connection).await?;
    wal(&connection, PATIENCE).await?;
    Ok(Db::new(connection, PATIENCE.max(config.db_timeout)))
}

/// The database's connection options, as every pool of the server opens it.
fn connect_options(config: &Config) -> ConnectOptions {
    let mut options = ConnectOptions::new(config.database_url.clone());
    // SQL logging would print bound values (hashes, user agents): keep it off.
    options.sqlx_logging(false);
    // Waiting for a pooled connection, and opening one to a database that refuses
    // or does not answer, ends after the database timeout (sqlx's default is 30 s):
    // the request answers 503 instead of queueing. (sea-orm hands both settings to
    // sqlx's one acquire bound, which covers connecting; they are set alike so
    // neither can be mistaken for being unbounded.) sqlx pings a pooled connection
    // before handing it out, so connections broken by an outage are replaced, not
    // reused, and the pool recovers by itself once the database is back. At start
    // the same bound applies: an unreachable database fails the start quickly.
    options
        .connect_timeout(config.db_timeout)
        .acquire_timeout(config.db_timeout)
        .test_before_acquire(true);
    options
}

/// Puts a SQLite database in WAL mode (it stays so: the mode is kept in the file).
/// A commit then appends to the log and syncs it once, where the rollback journal
/// syncs the journal and the database on every commit (measured: 155 µs of kernel
/// time per stored room message, issue 33), and readers no longer wait for a
/// writer. `synchronous` stays FULL: a committed session or refresh-token rotation
/// survives a power cut. Switching needs the database to itself: instances
/// starting together take turns, retrying while it is locked.
async fn wal(connection: &DatabaseConnection, within: Duration) -> Result<(), StartError> {
    use sea_orm::ConnectionTrait;
    if connection.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + within.max(Duration::from_secs(5));
    loop {
        match connection
            .execute_unprepared("PRAGMA journal_mode=WAL")
            .await
        {
            Ok(_) => return Ok(()),
            Err(e)
                if tokio::time::Instant::now() < deadline && e.to_string().contains("locked") =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// On SQLite, the one connection room history is written through: `synchronous =
/// NORMAL`, so a commit of stored messages appends to the WAL without waiting for
/// the disk (SQLite stays consistent through a power cut; the last batches committed
/// before it may be lost, and with them the room's offsets, which are then given
/// again). Every other write keeps FULL. `None` on PostgreSQL, where history shares
/// the pool.
async fn history_writer(config: &Config) -> Result<Option<Db>, StartError> {
    if !config.database_url.starts_with("sqlite:") || config.history_size == 0 {
        return Ok(None);
    }
    let mut options = connect_options(config);
    options.max_connections(1).min_connections(1);
    options
        .map_sqlx_sqlite_opts(|o| o.synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal));
    Ok(Some(Db::new(
        Database::connect(options).await?,
        config.db_timeout,
    )))
}

/// Applies pending migrations. Instances starting together on an empty database
/// would each create the same tables (PostgreSQL refuses the second
/// `seaql_migrations`): one at a time.
async fn migrate(connection: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    crate::auth::db::exclusive(connection, async |txn| {
        migration::Migrator::up(txn, None).await
    })
    .await
}
