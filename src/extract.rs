//! Identity on a host's routes: [`Authenticated`], [`RecentlyAuthenticated`] (a
//! step-up) and [`MaybeAuthenticated`] for poem-openapi operations (both security
//! schemes in the spec), and [`Identity`] itself as a plain poem extractor. All
//! resolve through the one
//! [`crate::auth::AuthSource`] with the same function ([`identity`]), so
//! precedence, the Origin rule for cookies and the errors are exactly those of
//! doorman's own endpoints and of its WebSocket handshake.
//!
//! They find the [`Doorman`] handle in the request's data: put your routes inside
//! [`Doorman::edge`] (or attach it with `.data(doorman.clone())`).

use std::ops::Deref;

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use crate::{Doorman, auth::Identity, http::error::Error};

/// The name of the http bearer scheme in the spec.
pub const BEARER_SCHEME: &str = "bearerAuth";
/// The name of the apiKey-in-cookie scheme in the spec.
pub const COOKIE_SCHEME: &str = "cookieAuth";

/// The caller of a request, or `None` when it presents no credential at all. A
/// credential that is present but invalid is an error, never `None`. The one
/// function behind every extractor here and doorman's own hot routes.
pub async fn maybe_identity(req: &Request, doorman: &Doorman) -> Result<Option<Identity>, Error> {
    doorman
        .auth_source
        .resolve_optional(req)
        .await
        .map_err(Error::from)
}

/// The caller of a request; `missing_credentials` (401) when it presents none.
pub async fn identity(req: &Request, doorman: &Doorman) -> Result<Identity, Error> {
    doorman.auth_source.resolve(req).await.map_err(Error::from)
}

/// The handle [`Doorman::edge`] (or `.data(doorman.clone())`) attached.
pub(crate) fn doorman_of(req: &Request) -> Result<&Doorman, Error> {
    req.data::<Doorman>().ok_or_else(|| {
        Error::internal("no Doorman in the request's data: wrap the routes with Doorman::edge")
    })
}

/// An authenticated caller, for poem-openapi operations: documents both security
/// schemes (`bearerAuth`, `cookieAuth`) on the operation, so Swagger UI's
/// "Authorize" and generated clients work with either. Refuses with doorman's
/// errors: 401 `missing_credentials` / `invalid_token` / `session_revoked` /
/// `session_expired` with `WWW-Authenticate`, 403 `origin_refused` for a cookie on
/// an unsafe method from a foreign Origin, 503 `database_unavailable`.
///
/// ```
/// use doorman::Authenticated;
/// use poem_openapi::{OpenApi, payload::PlainText};
///
/// struct Orders;
///
/// #[OpenApi]
/// impl Orders {
///     /// The caller's user id.
///     #[oai(path = "/api/orders", method = "get")]
///     async fn list(&self, auth: Authenticated) -> PlainText<String> {
///         PlainText(auth.user_id.to_string())
///     }
/// }
/// ```
pub struct Authenticated(pub Identity);

impl Deref for Authenticated {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0
    }
}

/// [`Authenticated`] for a sensitive operation: the caller's session also
/// authenticated (a login, or `POST /api/auth/reauth`) within
/// `DOORMAN_STEP_UP_SECONDS`; else 403 `step_up_required`, which a client answers by
/// re-authenticating and retrying. The session's assurance is
/// `identity.assurance` (`aal`, `amr`, `auth_at`) on either extractor.
///
/// ```
/// use doorman::RecentlyAuthenticated;
/// use poem_openapi::{OpenApi, payload::PlainText};
///
/// struct Orders;
///
/// #[OpenApi]
/// impl Orders {
///     /// Cancels every order of the caller.
///     #[oai(path = "/api/orders", method = "delete")]
///     async fn cancel_all(&self, auth: RecentlyAuthenticated) -> PlainText<String> {
///         PlainText(format!("cancelled for {}", auth.user_id))
///     }
/// }
/// ```
pub struct RecentlyAuthenticated(pub Identity);

impl Deref for RecentlyAuthenticated {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0
    }
}

/// Like [`Authenticated`], but a request without any credential is let through
/// as `None` (a present but invalid credential is still refused). Documents both
/// schemes, as the operation still reads them.
pub struct MaybeAuthenticated(pub Option<Identity>);

fn register_schemes(registry: &mut Registry) {
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

/// The security extractor `$ty`: both schemes documented, the value built by
/// `$make` from the request and the handle.
macro_rules! security_extractor {
    ($ty:ty, |$req:ident, $doorman:ident| $make:expr) => {
        impl<'a> ApiExtractor<'a> for $ty {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                register_schemes(registry);
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![BEARER_SCHEME, COOKIE_SCHEME]
            }

            async fn from_request(
                $req: &'a Request,
                _body: &mut RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                let $doorman = doorman_of($req)?;
                Ok($make)
            }
        }
    };
}

security_extractor!(Authenticated, |req, doorman| Authenticated(
    identity(req, doorman).await?
));
security_extractor!(RecentlyAuthenticated, |req, doorman| {
    let id = identity(req, doorman).await?;
    doorman
        .auth
        .require_recent(&id)
        .await
        .map_err(Error::from)?;
    RecentlyAuthenticated(id)
});
security_extractor!(MaybeAuthenticated, |req, doorman| MaybeAuthenticated(
    maybe_identity(req, doorman).await?
));

/// On plain poem handlers, the caller itself is the extractor (a type cannot be
/// both a poem extractor and a poem-openapi security scheme; use
/// [`Authenticated`] on OpenAPI operations so the spec documents the schemes).
/// Same resolution, same errors.
///
/// ```
/// use doorman::auth::Identity;
///
/// #[poem::handler]
/// fn whoami(id: Identity) -> String {
///     format!("{} via {}", id.user_id, id.source.as_str())
/// }
/// ```
impl<'a> FromRequest<'a> for Identity {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Ok(identity(req, doorman_of(req)?).await?)
    }
}
