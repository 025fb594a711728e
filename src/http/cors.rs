//! CORS with an explicit allow-list (`DOORMAN_ALLOWED_ORIGINS`) and credentials. A
//! listed origin gets its own origin echoed back with `Access-Control-Allow-Credentials`;
//! any other origin gets no CORS headers at all, preflight included. Never `*`.
//!
//! Same-origin requests need no CORS; the Origin rule for cookie credentials is
//! enforced separately, in `auth::origin`, whatever CORS says.

use poem::{
    Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};

use crate::auth::origin::OriginPolicy;

const ALLOW_METHODS: &str = "GET, POST, DELETE";
const ALLOW_HEADERS: &str = "authorization, content-type";
const EXPOSE_HEADERS: &str = "retry-after, www-authenticate, x-request-id";

/// The request's `Origin` if it is on the allow-list.
pub fn listed_origin(req: &Request, policy: &OriginPolicy) -> Option<HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?;
    policy
        .is_listed(origin.to_str().ok()?)
        .then(|| origin.clone())
}

/// The answer to a preflight from a listed origin; `None` for anything else.
pub fn preflight(req: &Request, origin: Option<&HeaderValue>) -> Option<Response> {
    let origin = origin?;
    if req.method() != Method::OPTIONS
        || !req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let mut resp = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS)
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS)
        .header(header::ACCESS_CONTROL_MAX_AGE, "600")
        .finish();
    decorate(&mut resp, Some(origin));
    Some(resp)
}

/// Adds the CORS headers for a listed origin; every response varies by Origin.
pub fn decorate(resp: &mut Response, origin: Option<&HeaderValue>) {
    let headers = resp.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
}
