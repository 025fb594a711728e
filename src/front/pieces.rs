//! The edge piece by piece: poem middlewares for a host that wants some of what
//! [`Doorman::edge`] does and not the rest (its own CORS, say, or its own error
//! pages). Each calls the same functions the edge calls; the edge remains the
//! cheaper choice for all of them at once (one endpoint, not a stack of layers).
//!
//! ```no_run
//! # async fn run(doorman: doorman::Doorman, app: poem::Route) {
//! use poem::EndpointExt;
//! let app = app
//!     .with(doorman.bounds())
//!     .with(doorman.security_headers())
//!     .with(doorman.errors())
//!     .data(doorman.clone()); // what the extractors need
//! # }
//! ```
//!
//! In any order: a piece that adds headers answers an error it sees on the way out
//! (so that the answer carries them) in doorman's JSON shape, with the request id
//! when [`Doorman::errors`] is applied outside it. Without [`Doorman::edge`] a host
//! loses the per-request database budget (each statement is still bounded by
//! `DOORMAN_DB_TIMEOUT_SECONDS`).

use std::{sync::Arc, time::Duration};

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response,
    http::{HeaderValue, header},
};
use tracing::Instrument;

use crate::{
    Doorman,
    auth::Auth,
    http::{
        bounds,
        client_ip::ClientIp,
        cors,
        error::{self, SpecFacts},
        headers::PageHeaders,
        scope::{RequestId, X_REQUEST_ID},
    },
};

impl Doorman {
    /// Header and body bounds: 431 past 8 KiB for one `Cookie` or `Authorization`
    /// header or 32 KiB for all, 413 past a 64 KiB body (chunked ones included),
    /// 408 for a body not all there within `DOORMAN_BODY_TIMEOUT_SECONDS`.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            body_timeout: self.config().body_timeout,
        }
    }

    /// CORS for `DOORMAN_ALLOWED_ORIGINS`, with credentials: a listed origin gets
    /// itself echoed back (never `*`) and its preflights answered; any other origin
    /// gets no CORS header at all. Every response varies by `Origin`.
    pub fn cors(&self) -> Cors {
        Cors {
            auth: self.auth.clone(),
            spec: super::api_facts(),
        }
    }

    /// A request id and the edge's span per request (id, method, path, client IP;
    /// never the query string or headers), `X-Request-Id` on every response, and
    /// every error in doorman's JSON shape: 5xx logged with their cause and answered
    /// with the id, parse errors never repeating a value they were sent.
    pub fn errors(&self) -> Errors {
        Errors {
            client_ip: self.client_ip.clone(),
            spec: super::api_facts(),
        }
    }

    /// `Cache-Control: no-store` on `/api/` (answers there carry credentials and
    /// personal data) and `X-Content-Type-Options: nosniff` everywhere.
    pub fn security_headers(&self) -> SecurityHeaders {
        SecurityHeaders {
            spec: super::api_facts(),
        }
    }
}

/// See [`Doorman::bounds`].
#[derive(Clone)]
pub struct Bounds {
    body_timeout: Duration,
}

/// See [`Doorman::cors`].
#[derive(Clone)]
pub struct Cors {
    auth: Arc<Auth>,
    spec: Arc<SpecFacts>,
}

/// See [`Doorman::errors`].
#[derive(Clone)]
pub struct Errors {
    client_ip: ClientIp,
    spec: Arc<SpecFacts>,
}

/// See [`Doorman::security_headers`].
#[derive(Clone)]
pub struct SecurityHeaders {
    spec: Arc<SpecFacts>,
}

/// The answer to `result` in doorman's shape: an error is rendered as the edge
/// renders it, with the id [`Doorman::errors`] gave the request, if it did.
fn answer(
    result: poem::Result<impl IntoResponse>,
    id: Option<RequestId>,
    spec: &SpecFacts,
) -> Response {
    match result {
        Ok(resp) => resp.into_response(),
        Err(err) => error::respond_to(err, id.as_ref().map(RequestId::as_str), spec),
    }
}

/// A piece of the edge around an endpoint: what `.with(piece)` makes.
pub struct Piece<P, E> {
    piece: P,
    inner: E,
}

macro_rules! middleware {
    ($($piece:ty),*) => {$(
        impl<E: Endpoint> Middleware<E> for $piece {
            type Output = Piece<$piece, E>;

            fn transform(&self, inner: E) -> Self::Output {
                Piece { piece: self.clone(), inner }
            }
        }
    )*};
}
middleware!(Bounds, Cors, Errors, SecurityHeaders);

impl<E: Endpoint> Endpoint for Piece<Bounds, E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        bounds::check_headers(&req)?;
        // Nothing to read for GET, HEAD and OPTIONS (`limit_body` says so itself).
        let body = bounds::limit_body(&mut req, self.piece.body_timeout).await?;
        let uri = req.uri().clone();
        self.inner
            .call(req)
            .await
            .map(IntoResponse::into_response)
            .map_err(|e| error::attach(e, uri, body))
    }
}

impl<E: Endpoint> Endpoint for Piece<Cors, E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let origin = cors::listed_origin(&req, self.piece.auth.origins());
        if let Some(resp) = cors::preflight(&req, origin.as_ref()) {
            return Ok(resp);
        }
        // Errors rendered here so that their answers carry the CORS headers too (a
        // browser hides an answer without them from the page).
        let id = req.data::<RequestId>().copied();
        let mut resp = answer(self.inner.call(req).await, id, &self.piece.spec);
        cors::decorate(&mut resp, origin.as_ref());
        Ok(resp)
    }
}

impl<E: Endpoint> Endpoint for Piece<Errors, E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let request_id = RequestId::next();
        let span = request_id.span(&req, &self.piece.client_ip);
        let mut req = req;
        req.extensions_mut().insert(request_id);
        let result = self.inner.call(req).instrument(span.clone()).await;
        let mut resp = span.in_scope(|| answer(result, Some(request_id), &self.piece.spec));
        resp.headers_mut()
            .insert(X_REQUEST_ID, request_id.header_value());
        Ok(resp)
    }
}

impl<E: Endpoint> Endpoint for Piece<SecurityHeaders, E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let private = req.uri().path().starts_with("/api/");
        let id = req.data::<RequestId>().copied();
        let mut resp = answer(self.inner.call(req).await, id, &self.piece.spec);
        let headers = resp.headers_mut();
        if private {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        PageHeaders::apply_policy(None, headers);
        Ok(resp)
    }
}
