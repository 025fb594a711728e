//! The OpenAPI face of the one resolver: a security extractor that documents both
//! schemes (http bearer and apiKey in cookie) on every operation that takes it, and
//! resolves through [`crate::auth::AuthSource`] so precedence and errors are
//! exactly the WebSocket route's.

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use std::sync::Arc;

use crate::auth::Identity;
use crate::http::error::Error;
use crate::state::AppState;

pub const BEARER_SCHEME: &str = "bearerAuth";
pub const COOKIE_SCHEME: &str = "cookieAuth";

/// An authenticated caller, for OpenAPI operations.
pub struct Authenticated(pub Identity);

impl<'a> ApiExtractor<'a> for Authenticated {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            BEARER_SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "An access token from `POST /api/auth/login` (token mode) in `Authorization: Bearer`.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
        registry.create_security_scheme(
            COOKIE_SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some(
                    "The HttpOnly access cookie set by `POST /api/auth/login` in cookie mode \
                     (named `__Host-doorman_access` when the server's public URL is https). \
                     Unsafe methods also need an allowed `Origin`.",
                ),
                name: Some("doorman_access"),
                key_in: Some("cookie"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BEARER_SCHEME, COOKIE_SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = req
            .data::<Arc<AppState>>()
            .ok_or_else(|| Error::internal("the state is not attached to the route"))?;
        let identity = state.auth_source.resolve(req).await.map_err(Error::from)?;
        Ok(Authenticated(identity))
    }
}
