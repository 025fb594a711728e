//! The HTTP edge: everything between the socket and an operation, in one place.
//!
//! - [`conn_guard`]: per-connection guards before HTTP is parsed (request-head
//!   deadline, connections per IP).
//! - [`RequestScope`]: per request — id and span, shared state, size bounds, CORS,
//!   the error map, `Cache-Control`, `Allow`, browser hardening headers.
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

use std::{cell::Cell, sync::Arc, time::Instant};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
};
use tracing::Instrument;

use crate::{api::hot::Hot, auth::db, state::AppState, ws::WsContext};
use allow::AllowedMethods;
use headers::PageHeaders;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The per-request scope around every route: gives each request an id and a span
/// (id, method, path, client IP — never the query string or headers, which may
/// carry credentials), attaches the shared state handlers reach through `Data`
/// (the resolver is in it; the socket context only on `/ws`),
/// bounds the request's size, answers CORS, maps errors to the JSON shape, marks
/// API responses `Cache-Control: no-store`, and adds the browser hardening headers
/// ([`PageHeaders`]).
///
/// One endpoint rather than a stack of poem middlewares (`.data()` and
/// `.around()`): each layer is a future that holds the whole request and the layers
/// within it, and every layer moves all of it once more per request. Measured with
/// callgrind (docs/benchmarks.md), that copying was most of what doorman's HTTP path
/// cost beyond poem itself.
///
/// The hottest requests ([`Hot`]) are recognised here and served without poem's
/// router (and without the shared state in their extensions: they are handed it).
pub(crate) struct RequestScope<E> {
    inner: E,
    state: Arc<AppState>,
    ws: Arc<WsContext>,
    allowed: AllowedMethods,
    pages: PageHeaders,
}

impl<E> RequestScope<E> {
    pub(crate) fn new(
        inner: E,
        state: Arc<AppState>,
        ws: Arc<WsContext>,
        allowed: AllowedMethods,
        pages: PageHeaders,
    ) -> Self {
        Self {
            inner,
            state,
            ws,
            allowed,
            pages,
        }
    }
}

impl<E: Endpoint> Endpoint for RequestScope<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        // A drain ends early only once requests stop arriving.
        self.state.sockets.note_request();
        let request_id = RequestId::next();
        let span = tracing::info_span!(
            "request",
            id = %request_id.as_str(),
            method = %req.method(),
            path = %req.uri().path(),
            ip = %self.state.ip(&req),
        );
        let path = req.uri().path();
        let private = path.starts_with("/api/");
        let policy = self.pages.policy_for(path);
        // Kept for the rare answer that needs the path afterwards (405's `Allow`):
        // cloning a `Uri` shares its bytes, it does not copy them.
        let uri = req.uri().clone();
        let measured = self.state.metrics.then(|| {
            (
                Instant::now(),
                crate::telemetry::method_label(req.method()),
                crate::telemetry::route_label(None, path),
            )
        });
        let origin = cors::listed_origin(&req, self.state.auth.origins());
        let mut operation = None;
        let mut resp = if let Some(resp) = cors::preflight(&req, origin.as_ref()) {
            resp
        } else {
            // The request's waits for the database share one budget (see `db`).
            let result = match Hot::of(&req) {
                Some(hot) if !hot.uses_database() => {
                    self.serve_hot(hot, req).instrument(span.clone()).await
                }
                Some(hot) => {
                    db::with_request_budget(self.serve_hot(hot, req))
                        .instrument(span.clone())
                        .await
                }
                None => {
                    req.extensions_mut().insert(self.state.clone());
                    db::with_request_budget(self.serve(req))
                        .instrument(span.clone())
                        .await
                }
            };
            match result {
                Ok(resp) => {
                    if measured.is_some() {
                        operation = resp.data::<poem_openapi::OperationId>().map(|op| op.0);
                    }
                    resp
                }
                Err(err) => {
                    operation = err.data::<poem_openapi::OperationId>().map(|op| op.0);
                    span.in_scope(|| error::respond_to(err, request_id.as_str()))
                }
            }
        };
        cors::decorate(&mut resp, origin.as_ref());
        let status = resp.status();
        span.in_scope(|| tracing::debug!(status = status.as_u16(), "response"));
        if let Some((started, method, route)) = measured {
            let route = operation.unwrap_or(route);
            metrics::counter!("doorman_http_requests_total", "route" => route, "method" => method, "status" => status.as_str().to_owned())
                .increment(1);
            metrics::histogram!("doorman_http_request_duration_seconds", "route" => route)
                .record(started.elapsed());
        }
        let headers = resp.headers_mut();
        headers.insert(X_REQUEST_ID, request_id.header_value());
        if private {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED
            && let Some(methods) = self.allowed.for_path(uri.path())
            && let Ok(v) = HeaderValue::from_str(methods)
        {
            headers.insert(header::ALLOW, v);
        }
        PageHeaders::apply_policy(policy, headers);
        Ok(resp)
    }
}

impl<E: Endpoint> RequestScope<E> {
    /// Bounds, then the route.
    async fn serve(&self, mut req: Request) -> poem::Result<Response> {
        bounds::check_headers(&req)?;
        if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            // Boxed: reading a body is the slow path, and its future (a timer and
            // the body stream) would otherwise enlarge every request's future.
            Box::pin(bounds::limit_body(&mut req, self.state.config.body_timeout)).await?;
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }

    /// Bounds, then the hot operation (a `GET` or `HEAD`: no body to bound).
    async fn serve_hot(&self, hot: Hot, req: Request) -> poem::Result<Response> {
        bounds::check_headers(&req)?;
        hot.serve(&self.state, &self.ws, req).await
    }
}

/// A request's id: 16 hex digits, in the `X-Request-Id` header and in every log
/// line of the request. Unique for the process's life without a system call per
/// request: each thread counts from a random start through a bijective mixer
/// (splitmix64), so ids never repeat within a thread and threads' sequences are
/// 2^64-wide random offsets of each other. Not a secret (the client is told it).
#[derive(Clone, Copy)]
struct RequestId([u8; 16]);

impl RequestId {
    fn next() -> Self {
        thread_local! {
            static NEXT: Cell<u64> = Cell::new(random_u64());
        }
        let n = NEXT.with(|next| {
            let n = next.get();
            next.set(n.wrapping_add(0x9E37_79B9_7F4A_7C15));
            n
        });
        let mut x = n;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0u8; 16];
        for (i, digit) in id.iter_mut().enumerate() {
            *digit = HEX[((x >> (60 - 4 * i)) & 0xf) as usize];
        }
        Self(id)
    }

    fn as_str(&self) -> &str {
        // Hex digits only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.0).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        // std's hash keys: seeded from the OS once, distinct per call.
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_sixteen_hex_digits_and_do_not_repeat() {
        let ids: std::collections::HashSet<[u8; 16]> =
            (0..10_000).map(|_| RequestId::next().0).collect();
        assert_eq!(ids.len(), 10_000);
        for id in &ids {
            assert!(id.iter().all(u8::is_ascii_hexdigit));
        }
        let id = RequestId::next();
        assert_eq!(id.header_value().to_str().unwrap(), id.as_str());
    }
}
