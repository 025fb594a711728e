//! Building and running the server: `main` and the tests start it the same way.

use std::{future::Future, net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

use migration::MigratorTrait;
use poem::{
    Endpoint, EndpointExt, IntoResponse, Route, Server, get,
    listener::{Acceptor, Listener, TcpListener},
};
use sea_orm::{ConnectOptions, Database};

use crate::{
    api,
    auth::db::Db,
    auth::{Auth, AuthSettings, AuthSource, SessionBus, SessionSettings},
    cluster,
    config::Config,
    http::{
        self,
        allow::AllowedMethods,
        client_ip::ClientIp,
        conn_guard::{GuardedAcceptor, ReadRate, UpgradeMarks},
        headers::PageHeaders,
    },
    ratelimit::Limits,
    rooms::Rooms,
    state::AppState,
    ws::{self, Registry, WsContext},
};

/// A built server, bound to its port, not yet serving.
pub struct Application {
    acceptor: GuardedAcceptor,
    addr: SocketAddr,
    state: Arc<AppState>,
    registry: Registry,
    ws: Arc<WsContext>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Init(#[from] crate::auth::Error),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

impl Application {
    /// Connects to the database, applies pending migrations, loads (or creates) the
    /// signing key and binds the listener.
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        // Bind first: with port 0 the real port is part of the default public URL.
        let upgrades = UpgradeMarks::default();
        let acceptor = GuardedAcceptor::new(
            TcpListener::bind(config.bind).into_acceptor().await?,
            config.header_timeout,
            config.idle_timeout,
            config.max_connections_per_ip,
            // Four largest messages a second, two at once: far above what the
            // per-socket message rate lets through in practice.
            ReadRate {
                per_second: (config.ws_max_message_bytes as u64).saturating_mul(4),
                burst: (config.ws_max_message_bytes as u64).saturating_mul(2),
            },
            upgrades.clone(),
        );
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| StartError::Config("listener has no socket address".into()))?;
        config.bind = addr;
        let trusted = config.trusted_proxies();
        let db = connect(&config).await?;
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
                    hash_concurrency: std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2),
                    key_encryption_key_file: config
                        .key_encryption_key_file
                        .clone()
                        .filter(|p| !p.as_os_str().is_empty()),
                },
                bus.clone(),
            )
            .await?,
        );

        auth.spawn_key_refresh(Duration::from_secs(1));
        crate::janitor::spawn(db.clone(), config.retention);
        let limits = Arc::new(Limits::new(&config));
        limits.spawn_sweeper(Duration::from_secs(60));
        let rooms = Rooms::new(db.clone());
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
        let ws = Arc::new(WsContext {
            auth: auth.clone(),
            auth_source: AuthSource::new(auth.clone()),
            registry: registry.clone(),
            rooms: rooms.clone(),
            limits: limits.clone(),
            upgrades,
            auth_timeout: config.ws_auth_timeout,
            heartbeat: config.ws_heartbeat,
            messages_per_second: NonZeroU32::new(config.ws_messages_per_second)
                .unwrap_or(NonZeroU32::MIN),
            config: WsContext::socket_config(config.ws_max_message_bytes),
            clock: governor::clock::DefaultClock::default(),
        });

        let metrics = config.metrics_bind;
        let state = Arc::new(AppState {
            config,
            auth_source: AuthSource::new(auth.clone()),
            auth,
            limits,
            client_ip: ClientIp::new(trusted),
            rooms,
            sockets: registry.clone(),
            metrics: metrics.is_some(),
        });
        crate::memory::spawn_trimmer(Arc::downgrade(&state));
        if let (Some(bind), Some(handle)) = (metrics, metrics_handle) {
            let listener = TcpListener::bind(bind).into_acceptor().await?;
            tracing::info!(%bind, "metrics at /metrics");
            tokio::spawn(crate::telemetry::serve(listener, handle, state.clone()));
        }
        Ok(Self {
            acceptor,
            addr,
            state,
            registry,
            ws,
        })
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registry of live sockets.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Serves until `shutdown` completes; then drains (see [`Registry::drain`]:
    /// `/readyz` 503 and new sockets refused at once, open sockets closed with 1001
    /// spread over `DOORMAN_DRAIN_SECONDS`, the listener answering throughout),
    /// finishes in-flight requests and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let registry = self.registry.clone();
        let drain = self.state.config.drain;
        let app = routes(self.state.clone(), self.ws.clone());
        // poem polls its shutdown future each time it accepts a connection, and
        // `shutdown` may be costly to poll (Ctrl-C and SIGTERM are two watch
        // channels behind a `select!`: about 900 instructions per connection).
        // It runs in a task of its own instead, and poem polls a oneshot.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(());
        });
        // The idle timeout is the acceptor's (see `conn_guard`), not poem's.
        let server = Server::new_with_acceptor(self.acceptor).run_with_graceful_shutdown(
            app,
            async move {
                // A dropped sender (the task ended without sending: the
                // runtime is going away) stops too.
                let _ = stopped.await;
                tracing::info!("shutting down");
                registry.drain(drain, Duration::from_secs(5)).await;
            },
            Some(Duration::from_secs(10)),
        );
        // On a worker thread, not the caller's (`main`'s `block_on`): each accepted
        // connection's task is then spawned into that worker's own queue, where a
        // spawn from outside the runtime goes through its shared queue and may
        // have to wake a worker first.
        match tokio::spawn(server).await {
            Ok(served) => served,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Every route of the server.
pub fn routes(state: Arc<AppState>, ws: Arc<WsContext>) -> impl Endpoint {
    let api = api::service();
    let docs = api.swagger_ui();
    // The same text `swagger_ui()` serves, so the policy hashes what browsers get.
    let pages = PageHeaders::new(api::demo_html(), &api.swagger_ui_html());
    let allowed = AllowedMethods::from_spec(
        &api.spec(),
        &[
            ("/ws", "GET, HEAD"),
            ("/openapi.json", "GET, HEAD"),
            ("/asyncapi.json", "GET, HEAD"),
            ("/docs", "GET, HEAD"),
        ],
    );
    let routes = api::hot::add(Route::new())
        // The socket context only where sockets are opened: a request's data are
        // allocated and hashed one by one.
        .at(
            "/ws",
            get(ws::route.before(ws::require_http_11)).data(ws.clone()),
        )
        .nest("/docs", docs)
        .at("/openapi.json", get(openapi_json))
        .at("/asyncapi.json", get(asyncapi_json))
        .nest("/", api);
    // Attaches the state to every request.
    http::RequestScope::new(routes, state, ws, allowed, pages)
}

/// The WebSocket's protocol document: the same text as the committed `asyncapi.json`.
#[poem::handler]
fn asyncapi_json() -> impl IntoResponse {
    ws::asyncapi::asyncapi_json().with_content_type("application/json")
}

/// The live spec: the same text as the committed `openapi.json`.
#[poem::handler]
fn openapi_json() -> impl IntoResponse {
    api::spec_json().with_content_type("application/json; charset=utf-8")
}

/// Connects to the database the way the server does and applies pending
/// migrations.
pub async fn connect(config: &Config) -> Result<Db, StartError> {
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
    let connection = Database::connect(options).await?;
    // Instances starting together on an empty database would each create the same
    // tables (PostgreSQL refuses the second `seaql_migrations`): one at a time.
    crate::auth::db::exclusive(&connection, async |txn| {
        migration::Migrator::up(txn, None).await
    })
    .await?;
    Ok(Db::new(connection, config.db_timeout))
}

/// `doorman keys …`: lists, rotates or retires signing keys in the server's
/// database; returns what to print.
pub async fn manage_keys(
    config: &Config,
    action: &crate::config::KeysCommand,
) -> Result<String, Box<dyn std::error::Error>> {
    use crate::{
        auth::keys::{KeyCipher, KeyStore},
        config::KeysCommand,
    };
    let db = connect(config).await?;
    let cipher = config
        .key_encryption_key_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(KeyCipher::from_file)
        .transpose()?;
    let store = KeyStore::new(db, cipher);
    // Changing keys needs the key-encryption key the servers use: decrypting every
    // active key first refuses a missing or wrong one before anything is written
    // (a new key in plain text, or one sealed with another key, would leave every
    // running instance unable to re-read its keys).
    if !matches!(action, KeysCommand::List) {
        store.active().await?;
    }
    Ok(match action {
        KeysCommand::List => {
            let keys = store.list().await?;
            let signing = keys
                .iter()
                .find(|k| k.retired_at.is_none())
                .map(|k| k.kid.clone());
            let mut out = String::from("kid\tcreated_at\tstatus\tat_rest\n");
            for k in keys {
                let status = match (&k.retired_at, Some(&k.kid) == signing.as_ref()) {
                    (Some(at), _) => format!("retired {at}"),
                    (None, true) => "signing".to_owned(),
                    (None, false) => "verifying".to_owned(),
                };
                let at_rest = if k.encrypted { "encrypted" } else { "plain" };
                out.push_str(&format!(
                    "{}\t{}\t{status}\t{at_rest}\n",
                    k.kid, k.created_at
                ));
            }
            out
        }
        KeysCommand::Rotate => {
            store.seal_plain_keys().await?;
            let kid = store.create().await?;
            format!("{kid}\n")
        }
        KeysCommand::Retire { kid } => {
            store.retire(kid).await?;
            format!("retired {kid}\n")
        }
    })
}
