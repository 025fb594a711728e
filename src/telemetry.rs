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
