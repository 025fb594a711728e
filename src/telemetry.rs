//! Prometheus metrics on a listener of their own (`DOORMAN_METRICS_BIND`, off by
//! default, never the public port). Code anywhere records through the `metrics`
//! facade, which does nothing until [`install`] sets the process's recorder (the
//! facade is process-wide by design); labels are bounded: route templates and
//! operation ids, status codes, error codes, reasons — never paths, ids or IPs.
//! docs/operations.md lists every metric with the alerts to set on it.

//!
//! The exporter is part of the `server` feature; without it, setting
//! `DOORMAN_METRICS_BIND` stops the start with a message saying so.

use std::sync::Arc;

/// The gauges that are read rather than counted, set before each scrape by the
/// code that owns what they read.
#[derive(Clone)]
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub struct Gauges(pub Arc<dyn Fn() + Send + Sync>);

#[cfg(feature = "server")]
pub use exporter::{install, serve};

/// Describes every family and registers its series at 0 (for labelled families,
/// those whose label values are known in advance), so that each is in the first
/// scrape: an alert or a ratio on a family that has not happened yet sees 0, not
/// nothing. docs/operations.md lists the same families; `metrics::every_family_*`
/// checks the first scrape against it.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
fn describe() {
    use metrics::{
        counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
    };

    crate::auth::outcomes::register();

    describe_counter!(
        "doorman_http_requests_total",
        "HTTP requests, WebSocket handshakes included, by route, method and status"
    );
    describe_histogram!(
        "doorman_http_request_duration_seconds",
        "time in the server from the request head to the response head, by route"
    );
    // Routes, methods and statuses are open-ended: the readiness probe's series
    // stands for the family.
    counter!("doorman_http_requests_total", "route" => "readyz", "method" => "GET", "status" => "200").increment(0);
    let _ = histogram!("doorman_http_request_duration_seconds", "route" => "readyz");

    describe_counter!(
        "doorman_ws_handshakes_total",
        "WebSocket handshakes, by outcome (upgraded or the refusal's status)"
    );
    counter!("doorman_ws_handshakes_total", "outcome" => "upgraded").increment(0);
    describe_gauge!(
        "doorman_ws_sockets_open",
        "open sockets on this instance, pending ones included"
    );
    gauge!("doorman_ws_sockets_open").set(0.0);

    describe_counter!(
        "doorman_revocations_total",
        "sessions ended early by this instance, by reason"
    );
    for reason in crate::auth::RevocationReason::ALL {
        if reason != crate::auth::RevocationReason::Expired {
            counter!("doorman_revocations_total", "reason" => reason.as_str()).increment(0);
        }
    }
    describe_histogram!(
        "doorman_revocation_close_seconds",
        "from learning of a revocation to the session's sockets being told to close"
    );
    let _ = histogram!("doorman_revocation_close_seconds");

    describe_counter!("doorman_rate_limited_total", "refusals by limit");
    for limit in crate::ratelimit::LIMIT_NAMES {
        counter!("doorman_rate_limited_total", "limit" => *limit).increment(0);
    }

    describe_gauge!(
        "doorman_password_hashes_running",
        "Argon2 hashes running on the hashing threads"
    );
    gauge!("doorman_password_hashes_running").set(0.0);
    describe_gauge!(
        "doorman_password_hashes_queued",
        "Argon2 hashes waiting for a hashing thread"
    );
    gauge!("doorman_password_hashes_queued").set(0.0);
    describe_gauge!(
        "doorman_db_pool_connections",
        "the database pool's open connections"
    );
    gauge!("doorman_db_pool_connections").set(0.0);
    describe_gauge!(
        "doorman_db_pool_in_use",
        "the database pool's connections serving a statement"
    );
    gauge!("doorman_db_pool_in_use").set(0.0);
    describe_gauge!(
        "doorman_db_queries_in_flight",
        "statements waiting for a connection or running"
    );
    gauge!("doorman_db_queries_in_flight").increment(0.0);

    describe_counter!(
        "doorman_cluster_reconnects_total",
        "LISTEN reconnections (PostgreSQL only)"
    );
    counter!("doorman_cluster_reconnects_total").increment(0);
    describe_gauge!(
        "doorman_cluster_listener_connected",
        "1 while the PostgreSQL LISTEN connection is up (set by the listener, PostgreSQL only)"
    );

    describe_counter!(
        "doorman_cache_lookups_total",
        "lookups of the two caches on the hot path, by cache and result"
    );
    for cache in ["sessions", "verified_tokens"] {
        for result in ["hit", "miss"] {
            counter!("doorman_cache_lookups_total", "cache" => cache, "result" => result)
                .increment(0);
        }
    }

    describe_counter!(
        "doorman_janitor_deleted_total",
        "rows the janitor deleted, by table"
    );
    for table in crate::janitor::TABLES {
        counter!("doorman_janitor_deleted_total", "table" => *table).increment(0);
    }

    describe_counter!(
        "doorman_mail_total",
        "messages by kind and outcome (sent, failed after every retry, refused: queue full)"
    );
    for kind in crate::mail::KINDS {
        for outcome in crate::mail::OUTCOMES {
            counter!("doorman_mail_total", "kind" => *kind, "outcome" => *outcome).increment(0);
        }
    }
}

#[cfg(feature = "server")]
mod exporter {
    use std::time::Duration;

    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
    use poem::{
        EndpointExt, IntoResponse, Route, Server, get, handler, listener::TcpAcceptor, web::Data,
    };

    use super::Gauges;

    /// Buckets for request and close latencies, in seconds.
    const LATENCY_BUCKETS: &[f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];

    /// Installs the Prometheus recorder (once per process); later calls get the same
    /// handle.
    pub fn install() -> Result<PrometheusHandle, String> {
        static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
        if let Some(handle) = HANDLE.get() {
            return Ok(handle.clone());
        }
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .map_err(|e| e.to_string())?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
        let _ = HANDLE.set(handle.clone());
        super::describe();
        // Histograms and idle series need periodic upkeep.
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(handle)
    }

    /// Serves `GET /metrics` on `listener` until the process ends.
    pub async fn serve(
        listener: TcpAcceptor,
        handle: PrometheusHandle,
        gauges: Gauges,
    ) -> std::io::Result<()> {
        let app = Route::new()
            .at("/metrics", get(scrape))
            .data(handle)
            .data(gauges);
        Server::new_with_acceptor(listener).run(app).await
    }

    /// The text exposition, with the gauges that are read rather than counted
    /// refreshed first.
    #[handler]
    fn scrape(handle: Data<&PrometheusHandle>, gauges: Data<&Gauges>) -> impl IntoResponse {
        (gauges.0.0)();
        handle
            .render()
            .with_content_type("text/plain; version=0.0.4; charset=utf-8")
    }
}

/// Without the `server` feature there is no exporter.
#[cfg(not(feature = "server"))]
pub fn install() -> Result<std::convert::Infallible, String> {
    Err("DOORMAN_METRICS_BIND needs doorman's `server` feature (the Prometheus exporter)".into())
}

#[cfg(not(feature = "server"))]
pub async fn serve(
    _: poem::listener::TcpAcceptor,
    never: std::convert::Infallible,
    _: Gauges,
) -> std::io::Result<()> {
    match never {}
}
