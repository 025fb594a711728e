//! The HTTP edge: everything between the socket and an operation, in one place.
//!
//! - [`conn_guard`]: per-connection guards before HTTP is parsed (request-head
//!   deadline, connections per IP).
//! - [`request_scope`]: per request — id and span, size bounds, CORS, the error
//!   map, `Cache-Control`, `Allow`, browser hardening headers.
//! - [`error`]: the one error type of the HTTP API and WebSocket handshake, and the
//!   one mapping to status + JSON.
//! - [`client_ip`]: who the client is (socket peer, or behind trusted proxies).

pub(crate) mod allow;
pub(crate) mod bounds;
pub(crate) mod client_ip;
pub(crate) mod conn_guard;
pub(crate) mod cors;
pub(crate) mod error;
pub(crate) mod headers;

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use tracing::Instrument;

use crate::{auth::db, state::AppState};
use allow::AllowedMethods;
use headers::PageHeaders;

/// Gives each request an id and a span (id, method, path, client IP — never the
/// query string or headers, which may carry credentials), bounds its size, answers
/// CORS, maps errors to the JSON shape, marks API responses `Cache-Control:
/// no-store`, and adds the browser hardening headers ([`PageHeaders`]).
pub(crate) async fn request_scope<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    state: Arc<AppState>,
    allowed: Arc<AllowedMethods>,
    pages: Arc<PageHeaders>,
) -> poem::Result<Response> {
    let request_id = format!("{:016x}", rand_u64());
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        ip = %state.ip(&req),
    );
    let path = req.uri().path().to_owned();
    let private = path.starts_with("/api/");
    let measured = state.metrics.then(|| {
        (
            std::time::Instant::now(),
            crate::telemetry::method_label(req.method()),
        )
    });
    let mut operation = None;
    let origin = cors::listed_origin(&req, state.auth.origins());
    let mut resp = if let Some(resp) = cors::preflight(&req, origin.as_ref()) {
        resp
    } else {
        // The request's waits for the database share one budget (see `db`).
        let result = db::with_request_budget(async {
            bounds::check_headers(&req)?;
            let mut req = req;
            bounds::limit_body(&mut req, state.config.body_timeout).await?;
            ep.call(req).await.map(IntoResponse::into_response)
        })
        .instrument(span.clone())
        .await;
        match result {
            Ok(resp) => {
                operation = resp.data::<poem_openapi::OperationId>().map(|op| op.0);
                resp
            }
            Err(err) => {
                operation = err.data::<poem_openapi::OperationId>().map(|op| op.0);
                span.in_scope(|| error::respond_to(err, &request_id))
            }
        }
    };
    cors::decorate(&mut resp, origin.as_ref());
    let status = resp.status();
    span.in_scope(|| tracing::debug!(status = status.as_u16(), "response"));
    if let Some((started, method)) = measured {
        let route = crate::telemetry::route_label(operation, &path);
        metrics::counter!("doorman_http_requests_total", "route" => route, "method" => method, "status" => status.as_str().to_owned())
            .increment(1);
        metrics::histogram!("doorman_http_request_duration_seconds", "route" => route)
            .record(started.elapsed());
    }
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    if private {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = allowed.for_path(&path)
        && let Ok(v) = HeaderValue::from_str(methods)
    {
        headers.insert(header::ALLOW, v);
    }
    pages.apply(&path, headers);
    Ok(resp)
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}
