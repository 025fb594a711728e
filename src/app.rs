//! Building and running the server: `main` and the tests start it the same way.

use std::{future::Future, net::SocketAddr};

use poem::{
    Endpoint, EndpointExt, IntoResponse, Route, get,
    listener::{Acceptor, Listener, TcpListener},
};

use crate::{
    Doorman, api,
    config::Config,
    doorman::{StartError, connect_cli},
    http::{allow::AllowedMethods, conn_guard::GuardedAcceptor, headers::PageHeaders},
    sockets::Registry,
    ws,
};

/// A built server, bound to its port, not yet serving. Composed from the public
/// face: a [`Doorman`], its connection guard and edge, doorman's API groups and
/// `/ws`, plus the hot routes.
pub struct Application {
    acceptor: GuardedAcceptor,
    addr: SocketAddr,
    doorman: Doorman,
}

impl Application {
    /// Binds the listener, then starts [`Doorman`] (database and migrations,
    /// signing key, background tasks).
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        // Bind first: with port 0 the real port is part of the default public URL.
        let listener = TcpListener::bind(config.bind).into_acceptor().await?;
        let addr = listener
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| StartError::Config("listener has no socket address".into()))?;
        config.bind = addr;
        let doorman = Doorman::builder(config).start().await?;
        Ok(Self {
            acceptor: doorman.guard(listener),
            addr,
            doorman,
        })
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registry of live sockets.
    pub fn registry(&self) -> &Registry {
        self.doorman.sockets()
    }

    /// Serves until `shutdown` completes; then drains (see [`Registry::drain`]:
    /// `/readyz` 503 and new sockets refused at once, open sockets closed with 1001
    /// spread over `DOORMAN_DRAIN_SECONDS`, the listener answering throughout),
    /// finishes in-flight requests and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = routes(self.doorman.clone());
        crate::front::serve_until(self.doorman, self.acceptor, app, shutdown).await
    }
}

/// Every route of the server.
pub fn routes(doorman: Doorman) -> impl Endpoint {
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
    let routes = crate::front::hot::add(Route::new())
        // The socket context only where sockets are opened: a request's data are
        // allocated and hashed one by one.
        .at("/ws", get(ws::route.before(ws::require_http_11)))
        .nest("/docs", docs)
        .at("/openapi.json", get(openapi_json))
        .at("/asyncapi.json", get(asyncapi_json))
        .nest("/", api);
    // Attaches the state to every request.
    doorman.server_edge(routes, pages, allowed)
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

/// `doorman users …`: administers accounts in the server's database; returns what
/// to print.
pub async fn manage_users(
    config: &Config,
    action: &crate::config::UsersCommand,
) -> Result<String, Box<dyn std::error::Error>> {
    existing_sqlite_file(config)?;
    let db = connect_cli(config).await?;
    crate::admin::cli::run(config, db, action).await
}

/// The command line works on the server's database: on SQLite its file must exist
/// (the server's URL may create one, `mode=rwc`, and a command run from another
/// directory would otherwise work on a new, empty database and find no one).
fn existing_sqlite_file(config: &Config) -> Result<(), String> {
    let url = config.database_url.as_str();
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(());
    };
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") || std::path::Path::new(path).exists() {
        return Ok(());
    }
    Err(format!(
        "no database at {path} (DATABASE_URL); run the command in the server's directory \
         or set DATABASE_URL to the server's database"
    ))
}

/// `doorman keys …`: lists, rotates or retires signing keys in the server's
/// database; returns what to print.
pub async fn manage_keys(
    config: &Config,
    action: &crate::config::KeysCommand,
) -> Result<String, Box<dyn std::error::Error>> {
    existing_sqlite_file(config)?;
    use crate::{
        auth::keys::{KeyCipher, KeyStore},
        config::KeysCommand,
    };
    let db = connect_cli(config).await?;
    let cipher = config
        .key_encryption_key_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(KeyCipher::from_file)
        .transpose()?;
    let store = KeyStore::new(db, cipher);
    // Changing keys needs the key-encryption key the servers use: decrypting every
    // active key first refuses a missing or wrong one before anything is written
    // (a new key in plain text, or one sealed with another key, would leave the
    // instances holding the right key-encryption key unable to sign with it).
    if !matches!(action, KeysCommand::List) {
        store.active_opened().await?;
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
        KeysCommand::Retire {
            kid,
            revoke_sessions,
        } => {
            let revoked = store.retire(kid, *revoke_sessions).await?;
            if *revoke_sessions {
                format!("retired {kid}; revoked {revoked} sessions\n")
            } else {
                format!("retired {kid}\n")
            }
        }
    })
}
