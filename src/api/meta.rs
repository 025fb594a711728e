//! Liveness, readiness and the public signing keys.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, OpenApi,
    payload::{Html, Json},
};

use super::{
    ApiTags,
    direct_json::DirectJson,
    models::{Health, Jwk, Jwks},
};
use crate::Doorman;

#[derive(ApiResponse)]
pub enum Readiness {
    /// Ready: the database answers.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// Not ready: draining (`status` is `shutting_down`), the database does not
    /// answer within `DOORMAN_DB_TIMEOUT_SECONDS` (`database_unavailable`), or this
    /// instance has no signing key it can use (`signing_key_unavailable`: every key it
    /// could decrypt was retired while it runs without
    /// `DOORMAN_KEY_ENCRYPTION_KEY_FILE`; it cannot log anyone in until restarted
    /// with the file).
    #[oai(status = 503)]
    NotReady(Json<Health>),
}

/// Where `demo.html` takes the realtime SDK's bundle (an HTML comment, so the file
/// alone is still a well-formed page).
const SDK_MARK: &str =
    "<!-- doorman-realtime.js: the server inlines the SDK bundle (clients/realtime) here -->";

/// The realtime SDK for browsers (`clients/realtime`, built by its pinned esbuild;
/// CI checks that it is current).
const SDK_BUNDLE: &str = include_str!("../../clients/realtime/bundle/doorman-realtime.js");

/// The demo page, exactly as served at `/` (its CSP hashes are computed from it):
/// `demo.html` with the SDK inlined as one more script block, so the page needs no
/// other request and the policy still allows only these exact scripts.
pub fn demo_html() -> &'static str {
    static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        include_str!("../demo.html").replacen(
            SDK_MARK,
            &format!("<script>\n{SDK_BUNDLE}</script>"),
            1,
        )
    });
    &PAGE
}

/// `GET /healthz`: the OpenAPI operation and the hot route (`super::hot`) both
/// answer with this.
pub(crate) fn healthz() -> DirectJson<Health> {
    DirectJson(Health {
        status: "ok".to_owned(),
    })
}

/// Health and keys: `GET /healthz`, `GET /readyz` (503 while draining or without
/// the database), `GET /.well-known/jwks.json` (tag `Meta`).
pub struct MetaApi;

#[OpenApi(tag = "ApiTags::Meta")]
impl MetaApi {
    /// The demo page (not part of the documented API).
    #[oai(path = "/", method = "get", hidden)]
    async fn demo_page(&self) -> Html<&'static str> {
        Html(demo_html())
    }

    /// Liveness
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> DirectJson<Health> {
        // Served by `super::hot` in front of this operation, as the constant this
        // writes.
        healthz()
    }

    /// Readiness (includes the database)
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&Doorman>) -> Readiness {
        // A draining server tells its load balancer to stop sending at once.
        if state.registry.is_draining() {
            return Readiness::NotReady(Json(Health {
                status: "shutting_down".to_owned(),
            }));
        }
        // An instance that cannot sign answers every login and refresh with 500:
        // its load balancer should send them elsewhere.
        if !state.auth.can_sign() {
            return Readiness::NotReady(Json(Health {
                status: "signing_key_unavailable".to_owned(),
            }));
        }
        match state.auth.ready().await {
            Ok(()) => Readiness::Ready(Json(Health {
                status: "ok".to_owned(),
            })),
            Err(e) => {
                // sqlx's message names the failure, never the URL.
                tracing::warn!(error = %e, "readiness: database unreachable");
                Readiness::NotReady(Json(Health {
                    status: "database_unavailable".to_owned(),
                }))
            }
        }
    }

    /// Public keys that verify access tokens (JWK Set)
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: Data<&Doorman>) -> Json<Jwks> {
        Json(Jwks {
            keys: state
                .auth
                .public_keys()
                .into_iter()
                .map(|k| Jwk {
                    kty: "OKP".to_owned(),
                    crv: "Ed25519".to_owned(),
                    alg: k.alg.to_owned(),
                    use_: "sig".to_owned(),
                    kid: k.kid,
                    x: k.x,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::headers::inline_blocks;

    #[test]
    fn the_demo_page_inlines_the_sdk_before_its_own_script() {
        assert!(include_str!("../demo.html").contains(SDK_MARK));
        let page = demo_html();
        assert!(!page.contains(SDK_MARK));
        let scripts = inline_blocks(page, "script");
        assert_eq!(scripts.len(), 2, "the SDK and the page's own script");
        assert!(scripts[0].contains("var DoormanRealtime"));
        assert!(scripts[1].contains("new DoormanRealtime.RealtimeClient"));
    }
}
