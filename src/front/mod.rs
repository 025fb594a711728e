//! The front door, above the API groups and the sockets: the request scope around
//! a host's routes ([`Doorman::edge`], [`Doorman::serve`]) and around doorman's own
//! server, with its hot routes (`hot`, server only).

#[cfg(feature = "server")]
pub(crate) mod hot;
pub(crate) mod pieces;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use poem::Endpoint;

#[cfg(feature = "server")]
use crate::http::{allow::AllowedMethods, headers::PageHeaders};
use crate::{
    Doorman, GuardedAcceptor,
    http::{
        error::SpecFacts,
        scope::{RequestScope, ScopeSettings},
    },
};

/// What doorman's spec tells error messages: the names a parse error may repeat
/// (every other quoted value in one is replaced), and each operation's input
/// schemas, which name the field and rule a refused body breaks. Computed once.
fn api_facts() -> Arc<SpecFacts> {
    static FACTS: OnceLock<Arc<SpecFacts>> = OnceLock::new();
    FACTS
        .get_or_init(|| Arc::new(SpecFacts::from_spec(&crate::api::spec_json())))
        .clone()
}

impl Doorman {
    fn scope_settings(&self) -> ScopeSettings<Doorman> {
        ScopeSettings {
            data: self.clone(),
            auth: self.auth.clone(),
            client_ip: self.client_ip.clone(),
            metrics: self.metrics,
            body_timeout: self.config.body_timeout,
            spec: api_facts(),
            pages: None,
            allowed: None,
            traffic: self.registry.traffic().clone(),
        }
    }

    /// The HTTP edge around `endpoint`: a request id and a span per request (never
    /// the query string or headers), this handle attached for the extractors and
    /// doorman's API groups, header and body bounds with their deadlines, CORS for
    /// `DOORMAN_ALLOWED_ORIGINS`, every error as doorman's JSON shape (5xx logged
    /// with their cause, answered with the request id; parse errors never repeat a
    /// value), `Cache-Control: no-store` on `/api/`, `X-Content-Type-Options:
    /// nosniff`.
    pub fn edge<E: Endpoint>(&self, endpoint: E) -> impl Endpoint + use<E> {
        RequestScope::new(endpoint, self.scope_settings())
    }

    /// doorman's own server's scope: the edge, plus its pages' policies, `Allow`
    /// on 405s and its hot routes.
    #[cfg(feature = "server")]
    pub(crate) fn server_edge<E: Endpoint>(
        &self,
        endpoint: E,
        pages: PageHeaders,
        allowed: AllowedMethods,
    ) -> impl Endpoint + use<E> {
        let settings = ScopeSettings {
            pages: Some(pages),
            allowed: Some(allowed),
            ..self.scope_settings()
        };
        RequestScope::new(endpoint, settings).with_hot_routes(hot::ServerHot(self.clone()))
    }

    /// Serves `app` behind [`Doorman::edge`] on [`Doorman::listen`]'s listener until
    /// Ctrl-C or SIGTERM; then drains as doorman's server does (sockets closed with
    /// 1001 over `DOORMAN_DRAIN_SECONDS`, in-flight requests finished).
    pub async fn serve<E: Endpoint + 'static>(&self, app: E) -> std::io::Result<()> {
        let acceptor = self.listen().await?;
        if let Some(addr) = poem::listener::Acceptor::local_addr(&acceptor).first() {
            tracing::info!(addr = %addr, "listening");
        }
        serve_until(
            self.clone(),
            acceptor,
            self.edge(app),
            crate::shutdown_signal(),
        )
        .await
    }
}

/// Serves `app` on `acceptor` until `shutdown` completes; then drains (see
/// `Registry::drain`: `/readyz` 503 and new sockets refused at once, open sockets
/// closed with 1001 spread over `DOORMAN_DRAIN_SECONDS`, the listener answering
/// throughout), finishes in-flight requests and returns. doorman's server and
/// [`Doorman::serve`] alike.
pub(crate) async fn serve_until<E: Endpoint + 'static>(
    doorman: Doorman,
    acceptor: GuardedAcceptor,
    app: E,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain = doorman.config().drain;
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
    let server = poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
        app,
        async move {
            // A dropped sender (the task ended without sending: the
            // runtime is going away) stops too.
            let _ = stopped.await;
            tracing::info!("shutting down");
            doorman.drain(drain, Duration::from_secs(5)).await;
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
