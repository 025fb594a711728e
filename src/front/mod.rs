//! The front door, above the API groups and the sockets: the request scope around
//! a host's routes ([`Doorman::edge`], [`Doorman::serve`]) and around doorman's own
//! server, with its hot routes (`hot`, server only).

#[cfg(feature = "server")]
pub(crate) mod hot;

use std::{
    collections::HashSet,
    sync::{Arc, OnceLock},
    time::Duration,
};

use poem::Endpoint;

#[cfg(feature = "server")]
use crate::http::{allow::AllowedMethods, headers::PageHeaders};
use crate::{
    Doorman,
    http::{
        error::known_names,
        scope::{RequestScope, ScopeSettings},
    },
};

/// The names the API defines, which a parse error may repeat: every other quoted
/// value in one is replaced (`crate::http::error::known_names`). Computed once, from
/// doorman's spec.
fn api_names() -> Arc<HashSet<String>> {
    static NAMES: OnceLock<Arc<HashSet<String>>> = OnceLock::new();
    NAMES
        .get_or_init(|| Arc::new(known_names(&crate::api::spec_json())))
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
            known_names: api_names(),
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
        let doorman = self.clone();
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                self.edge(app),
                async move {
                    crate::shutdown_signal().await;
                    tracing::info!("shutting down");
                    let window = doorman.config().drain;
                    doorman.drain(window, Duration::from_secs(5)).await;
                },
                Some(Duration::from_secs(10)),
            )
            .await
    }
}
