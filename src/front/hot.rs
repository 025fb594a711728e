//! doorman's own server's hot routes. The hottest requests, `GET /healthz`, `GET /api/me` and `GET /ws`, recognised
//! by the request scope before poem's router ([`Hot`]), and `/healthz` and
//! `/api/me` also as plain poem routes in front of the OpenAPI service, for the
//! methods the scope leaves to the router.
//!
//! Why: poem-openapi dispatches every operation through a nested router, a cookie
//! jar parsed from every request, a query-string parse, an `OperationId` layer and
//! a boxed future per layer, each layer moving the whole request once more. Measured
//! with callgrind (docs/benchmarks.md) that machinery cost more than everything
//! doorman itself does for a request. These routes run the operations' own code
//! (`api::meta::healthz`, `api::sessions::me`) under the same request scope,
//! with the same resolver and error map: same status, headers and bytes, the same
//! `HEAD` and `405` handling (poem's `RouteMethod`, as poem-openapi uses), the same
//! operation id on metrics. (`/healthz`'s body is a constant, served as one.) The
//! OpenAPI operations stay, and are what the spec documents; `tests/it/hot_routes.rs`
//! holds the doors to the same answers.

use poem::{
    IntoResponse, Request, Response, Route, get, handler,
    http::{HeaderValue, Method, header},
};
use poem_openapi::{
    OperationId,
    payload::{Json, Payload},
};

use crate::api::{models::Health, sessions};
use crate::{
    Doorman,
    http::{error::Error, scope::HotRoutes},
};

/// `routes` with the hot operations added (before the OpenAPI service is nested,
/// so that these exact paths match here first). [`Hot::of`] recognises the same
/// requests before the router sees them; the routes stay for the requests it
/// leaves to the router.
pub(crate) fn add(routes: Route) -> Route {
    routes.at("/healthz", get(healthz)).at("/api/me", get(me))
}

/// One of the hottest requests, recognised by the request scope before poem's
/// router: `GET` or `HEAD` of `/healthz` or `/api/me`, `GET /ws`.
///
/// Why: poem's router matches the path in its radix tree, records the pattern in
/// the request's and the response's extensions (a map allocated and hashed for
/// each), then dispatches through a method router and two boxed endpoints, each
/// moving the request once more; measured with callgrind, more than a thousand
/// instructions a request for routes whose path is one string comparison.
/// What the router would do for these requests is done here the same way: `HEAD`
/// as poem's `RouteMethod` answers it (the `GET` with the method set to `GET`,
/// then without its body), the same handlers, the same errors. Every other
/// method (`405` with `Allow`, `OPTIONS`) and `HEAD /ws` go through the router as
/// before; `tests/it/hot_routes.rs` holds both doors to the same answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hot {
    Healthz,
    Me,
    Ws,
}

/// The one table of hot routes: the path, whether a `HEAD` is served here too,
/// and the OpenAPI operation it serves (its `operationId`; `/ws` is documented by
/// asyncapi.json instead). A unit test holds every entry to the spec.
const ROUTES: &[(Hot, &str, bool, Option<&str>)] = &[
    (Hot::Healthz, "/healthz", true, Some("healthz")),
    (Hot::Me, "/api/me", true, Some("me")),
    (Hot::Ws, "/ws", false, None),
];

impl Hot {
    /// The hot operation `req` asks for, if it is one.
    pub(crate) fn of(req: &Request) -> Option<Self> {
        let get = match *req.method() {
            Method::GET => true,
            Method::HEAD => false,
            _ => return None,
        };
        let path = req.uri().path();
        ROUTES
            .iter()
            .find(|(_, p, head, _)| *p == path && (get || *head))
            .map(|(hot, ..)| *hot)
    }

    /// The operation id this route serves (its metrics label), from the table.
    fn operation(self) -> &'static str {
        ROUTES
            .iter()
            .find(|(hot, ..)| *hot == self)
            .and_then(|(.., op)| *op)
            .unwrap_or("ws")
    }

    /// Whether the operation may wait for the database (it then runs within the
    /// request's database budget).
    pub(crate) fn uses_database(self) -> bool {
        !matches!(self, Self::Healthz)
    }

    /// Serves `req`, which [`Self::of`] recognised as `self`.
    pub(crate) async fn serve(self, state: &Doorman, mut req: Request) -> poem::Result<Response> {
        // poem's `RouteMethod` answers a `HEAD` to a `GET`-only route so.
        let head = *req.method() == Method::HEAD;
        if head {
            req.set_method(Method::GET);
        }
        let mut resp = match self {
            Self::Healthz => healthz_response(state.metrics),
            // Boxed: the operation's future (the credential check, and the database
            // queries of a cache miss) is large, and an unboxed one would be moved
            // with every request's future whatever its route.
            Self::Me => Box::pin(me_response(state, &req)).await?,
            Self::Ws => return crate::ws::serve(req, state).await,
        };
        if head {
            resp.set_body(());
        }
        Ok(resp)
    }
}

/// doorman's hot routes, served with its state.
pub(crate) struct ServerHot(pub Doorman);

impl HotRoutes for ServerHot {
    type Route = Hot;

    fn recognise(&self, req: &Request) -> Option<Hot> {
        Hot::of(req)
    }

    fn uses_database(&self, route: Hot) -> bool {
        route.uses_database()
    }

    fn serve(
        &self,
        route: Hot,
        req: Request,
    ) -> impl Future<Output = poem::Result<Response>> + Send {
        route.serve(&self.0, req)
    }
}

/// What `meta::healthz` writes, always: liveness is a constant (a test holds the
/// two together), so the hot route serves the bytes without building them.
const HEALTHZ: &[u8] = br#"{"status":"ok"}"#;

#[handler]
fn healthz(req: &Request) -> Response {
    healthz_response(metrics_on(req))
}

fn healthz_response(metrics: bool) -> Response {
    let mut resp = Response::builder()
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static(<Json<Health> as Payload>::CONTENT_TYPE),
        )
        .body(HEALTHZ);
    if metrics {
        resp.set_data(OperationId(Hot::Healthz.operation()));
    }
    resp
}

#[handler]
async fn me(req: &Request) -> poem::Result<Response> {
    let Some(state) = req.data::<Doorman>() else {
        return Err(Error::internal("the request scope did not attach its data").into());
    };
    me_response(state, req).await
}

async fn me_response(state: &Doorman, req: &Request) -> poem::Result<Response> {
    let result = match crate::extract::identity(req, state).await {
        Ok(identity) => sessions::me(state, identity)
            .await
            .map(IntoResponse::into_response)
            .map_err(poem::Error::from),
        Err(e) => Err(e.into()),
    };
    if !state.metrics {
        return result;
    }
    let id = OperationId(Hot::Me.operation());
    match result {
        Ok(mut resp) => {
            resp.set_data(id);
            Ok(resp)
        }
        Err(mut err) => {
            err.set_data(id);
            Err(err)
        }
    }
}

fn metrics_on(req: &Request) -> bool {
    req.data::<Doorman>().is_some_and(|s| s.metrics)
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON;

    use super::{Hot, ROUTES};

    #[test]
    fn every_hot_route_serves_the_operation_the_spec_documents_there() {
        let spec: serde_json::Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        for (hot, path, _, op) in ROUTES {
            match op {
                Some(op) => assert_eq!(
                    spec["paths"][*path]["get"]["operationId"], *op,
                    "{hot:?} at {path}"
                ),
                // The socket is not an OpenAPI operation: asyncapi.json has it.
                None => assert!(spec["paths"][*path].is_null(), "{path}"),
            }
        }
        let ws = crate::ws::asyncapi::asyncapi_json();
        assert!(ws.contains("\"/ws\""), "asyncapi.json documents /ws");
        // Each variant has its row.
        for hot in [Hot::Healthz, Hot::Me, Hot::Ws] {
            assert_eq!(
                ROUTES.iter().filter(|(h, ..)| *h == hot).count(),
                1,
                "{hot:?}"
            );
        }
    }

    #[test]
    fn the_healthz_constant_is_what_the_operation_writes() {
        let theirs = serde_json::to_vec(&crate::api::meta::healthz().0.to_json()).unwrap();
        assert_eq!(super::HEALTHZ, theirs.as_slice());
    }
}
