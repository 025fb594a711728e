//! The per-request scope: ids and spans, attached data, bounds, CORS, the error
//! map, `Cache-Control`, `Allow`, browser hardening headers, and the hot routes a
//! server serves before poem's router.

use std::{
    cell::Cell,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
};
use tracing::Instrument;

use super::{
    allow::AllowedMethods, bounds, client_ip::ClientIp, cors, error, headers::PageHeaders,
};
use crate::auth::{Auth, db};

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
/// The hottest requests of doorman's own server ([`HotRoutes`]) are recognised
/// here and served without poem's router (and without the shared state in their
/// extensions: they are handed it).
pub struct RequestScope<E, D, H = NoHotRoutes> {
    inner: E,
    settings: ScopeSettings<D>,
    hot: H,
}

/// What the scope needs to know, built once.
pub struct ScopeSettings<D> {
    /// Attached to every request routed through poem (its handlers' `Data`).
    pub data: D,
    /// The origin policy, for CORS.
    pub auth: Arc<Auth>,
    pub client_ip: ClientIp,
    /// Whether metrics are recorded.
    pub metrics: bool,
    /// `DOORMAN_BODY_TIMEOUT_SECONDS`.
    pub body_timeout: Duration,
    /// What error messages may say about refused input (see [`error::SpecFacts`]).
    pub spec: Arc<error::SpecFacts>,
    /// The HTML pages' policies, for a server that serves them.
    pub pages: Option<PageHeaders>,
    /// `Allow` on 405s, for a server that knows its routes.
    pub allowed: Option<AllowedMethods>,
    /// Requests during a drain (a drain ends early only once they stop).
    pub traffic: Traffic,
}

/// Whether requests still arrive during a drain: counted only once it began, so a
/// serving instance pays one uncontended load per request. The scope notes every
/// request; the socket registry's drain reads the count.
#[derive(Clone, Default)]
pub struct Traffic(Arc<DrainTraffic>);

#[derive(Default)]
struct DrainTraffic {
    draining: AtomicBool,
    requests: AtomicU64,
}

impl Traffic {
    /// Counts a request if a drain began (does nothing while the server serves).
    pub fn note(&self) {
        if self.0.draining.load(Ordering::Relaxed) {
            self.0.requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Starts counting; returns the count so far.
    pub fn start_counting(&self) -> u64 {
        self.0.draining.store(true, Ordering::Relaxed);
        self.count()
    }

    /// Requests counted since the drain began.
    pub fn count(&self) -> u64 {
        self.0.requests.load(Ordering::Relaxed)
    }
}

/// Requests a server serves before poem's router (doorman's `GET /healthz`,
/// `/api/me`, `/ws`), with the same answers its routes give.
pub trait HotRoutes: Send + Sync + 'static {
    /// Which hot request.
    type Route: Copy + Send;

    /// The hot request `req` asks for, if it is one.
    fn recognise(&self, req: &Request) -> Option<Self::Route>;

    /// Whether it may wait for the database (it then runs within the request's
    /// database budget).
    fn uses_database(&self, route: Self::Route) -> bool;

    /// Serves `req`, recognised as `route`.
    fn serve(
        &self,
        route: Self::Route,
        req: Request,
    ) -> impl Future<Output = poem::Result<Response>> + Send;
}

/// No hot routes: every request goes through poem's router.
pub struct NoHotRoutes;

impl HotRoutes for NoHotRoutes {
    type Route = std::convert::Infallible;

    fn recognise(&self, _: &Request) -> Option<Self::Route> {
        None
    }

    fn uses_database(&self, route: Self::Route) -> bool {
        match route {}
    }

    async fn serve(&self, route: Self::Route, _: Request) -> poem::Result<Response> {
        match route {}
    }
}

impl<E, D> RequestScope<E, D> {
    pub fn new(inner: E, settings: ScopeSettings<D>) -> Self {
        Self {
            inner,
            settings,
            hot: NoHotRoutes,
        }
    }
}

impl<E, D, H> RequestScope<E, D, H> {
    /// With `hot` served before the router.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub fn with_hot_routes<H2: HotRoutes>(self, hot: H2) -> RequestScope<E, D, H2> {
        RequestScope {
            inner: self.inner,
            settings: self.settings,
            hot,
        }
    }
}

impl<E: Endpoint, D: Clone + Send + Sync + 'static, H: HotRoutes> Endpoint
    for RequestScope<E, D, H>
{
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        self.settings.traffic.note();
        let request_id = RequestId::next();
        let span = request_id.span(&req, &self.settings.client_ip);
        let path = req.uri().path();
        let private = path.starts_with("/api/");
        let policy = self
            .settings
            .pages
            .as_ref()
            .and_then(|p| p.policy_for(path));
        // Kept for the rare answer that needs the path afterwards (405's `Allow`):
        // cloning a `Uri` shares its bytes, it does not copy them.
        let uri = req.uri().clone();
        let measured = self.settings.metrics.then(|| {
            (
                Instant::now(),
                method_label(req.method()),
                route_label(None, path),
            )
        });
        let origin = cors::listed_origin(&req, self.settings.auth.origins());
        let mut operation = None;
        let mut resp = if let Some(resp) = cors::preflight(&req, origin.as_ref()) {
            resp
        } else {
            // The request's waits for the database share one budget (see `db`).
            let result = match self.hot.recognise(&req) {
                Some(hot) if !self.hot.uses_database(hot) => {
                    self.serve_hot(hot, req).instrument(span.clone()).await
                }
                Some(hot) => {
                    db::with_request_budget(self.serve_hot(hot, req))
                        .instrument(span.clone())
                        .await
                }
                None => {
                    req.extensions_mut().insert(self.settings.data.clone());
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
                    span.in_scope(|| {
                        error::respond_to(err, Some(request_id.as_str()), &self.settings.spec)
                    })
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
            && let Some(methods) = self
                .settings
                .allowed
                .as_ref()
                .and_then(|a| a.for_path(uri.path()))
            && let Ok(v) = HeaderValue::from_str(methods)
        {
            headers.insert(header::ALLOW, v);
        }
        PageHeaders::apply_policy(policy, headers);
        Ok(resp)
    }
}

impl<E: Endpoint, D, H: HotRoutes> RequestScope<E, D, H> {
    /// Bounds, then the route.
    async fn serve(&self, mut req: Request) -> poem::Result<Response> {
        bounds::check_headers(&req)?;
        let body = if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            // Boxed: reading a body is the slow path, and its future (a timer and
            // the body stream) would otherwise enlarge every request's future.
            Box::pin(bounds::limit_body(&mut req, self.settings.body_timeout)).await?
        } else {
            None
        };
        // Shared, not copied: for an error that explains refused input.
        let uri = req.uri().clone();
        self.inner
            .call(req)
            .await
            .map(IntoResponse::into_response)
            .map_err(|e| error::attach(e, uri, body))
    }

    /// Bounds, then the hot operation (a `GET` or `HEAD`: no body to bound).
    async fn serve_hot(&self, hot: H::Route, req: Request) -> poem::Result<Response> {
        bounds::check_headers(&req)?;
        self.hot.serve(hot, req).await
    }
}

/// A request's id: 16 hex digits, in the `X-Request-Id` header and in every log
/// line of the request. Unique for the process's life without a system call per
/// request: each thread counts from a random start through a bijective mixer
/// (splitmix64), so ids never repeat within a thread and threads' sequences are
/// 2^64-wide random offsets of each other. Not a secret (the client is told it).
#[derive(Clone, Copy)]
pub(crate) struct RequestId([u8; 16]);

impl RequestId {
    pub(crate) fn next() -> Self {
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

    pub(crate) fn as_str(&self) -> &str {
        // Hex digits only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The request's span: this id, the method, the path and the client IP; never
    /// the query string or headers, which may carry credentials.
    pub(crate) fn span(&self, req: &Request, client_ip: &ClientIp) -> tracing::Span {
        tracing::info_span!(
            "request",
            id = %self.as_str(),
            method = %req.method(),
            path = %req.uri().path(),
            ip = %client_ip.of(req).unwrap_or(IpAddr::from([0, 0, 0, 0])),
        )
    }

    pub(crate) fn header_value(&self) -> HeaderValue {
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

/// The route label of a request: the operation id, or one of the few routes
/// outside the API; anything else is `other` (so unknown paths add no series).
fn route_label(operation: Option<&'static str>, path: &str) -> &'static str {
    if let Some(op) = operation {
        return op;
    }
    match path {
        "/ws" => "ws",
        "/openapi.json" => "openapi",
        "/" => "demo",
        p if p.starts_with("/docs") => "docs",
        _ => "other",
    }
}

/// A method as a static label.
fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
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
