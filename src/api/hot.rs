//! The two hottest operations, `GET /healthz` and `GET /api/me`, served by plain
//! poem routes in front of the OpenAPI service.
//!
//! Why: poem-openapi dispatches every operation through a nested router, a cookie
//! jar parsed from every request, a query-string parse, an `OperationId` layer and
//! a boxed future per layer, each layer moving the whole request once more. Measured
//! with callgrind (docs/benchmarks.md) that machinery cost more than everything
//! doorman itself does for a request. These routes run the operations' own code
//! ([`super::meta::healthz`], [`super::sessions::me`]) under the same request scope,
//! with the same resolver and error map: same status, headers and bytes, the same
//! `HEAD` and `405` handling (poem's `RouteMethod`, as poem-openapi uses), the same
//! operation id on metrics. (`/healthz`'s body is a constant, served as one.) The OpenAPI operations stay, and are what the spec
//! documents; `tests/it/hot_routes.rs` holds the two doors to the same answers.

use std::sync::Arc;

use poem::{
    IntoResponse, Request, Response, Route, get, handler,
    http::{HeaderValue, header},
};
use poem_openapi::{
    OperationId,
    payload::{Json, Payload},
};

use super::{models::Health, sessions};
use crate::{http::error::Error, state::AppState};

/// `routes` with the hot operations added (before the OpenAPI service is nested,
/// so that these exact paths match here first).
pub fn add(routes: Route) -> Route {
    routes.at("/healthz", get(healthz)).at("/api/me", get(me))
}

/// What `meta::healthz` writes, always: liveness is a constant (a test holds the
/// two together), so the hot route serves the bytes without building them.
const HEALTHZ: &[u8] = br#"{"status":"ok"}"#;

#[handler]
fn healthz(req: &Request) -> Response {
    let mut resp = Response::builder()
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static(<Json<Health> as Payload>::CONTENT_TYPE),
        )
        .body(HEALTHZ);
    if metrics_on(req) {
        resp.set_data(OperationId("healthz"));
    }
    resp
}

#[handler]
async fn me(req: &Request) -> poem::Result<Response> {
    let Some(state) = req.data::<Arc<AppState>>() else {
        return Err(Error::internal("the request scope did not attach its data").into());
    };
    let result = match state.auth_source.resolve(req).await {
        Ok(identity) => sessions::me(state, identity)
            .await
            .map(IntoResponse::into_response)
            .map_err(poem::Error::from),
        Err(e) => Err(Error::from(e).into()),
    };
    if !state.metrics {
        return result;
    }
    let id = OperationId("me");
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
    req.data::<Arc<AppState>>().is_some_and(|s| s.metrics)
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON;

    #[test]
    fn the_healthz_constant_is_what_the_operation_writes() {
        let theirs = serde_json::to_vec(&super::super::meta::healthz().0.to_json()).unwrap();
        assert_eq!(super::HEALTHZ, theirs.as_slice());
    }
}
