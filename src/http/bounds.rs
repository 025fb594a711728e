//! Bounds on what a request may carry, checked before any handler runs: headers
//! (431), bodies, chunked ones included (413), and the time a body may take to
//! arrive (408).

use std::time::Duration;

use bytes::Bytes;
use poem::{
    Body, Request,
    http::{Method, header},
};

use crate::http::error::Error;

/// Largest single `Cookie` or `Authorization` header.
pub const MAX_CREDENTIAL_HEADER: usize = 8 * 1024;
/// Largest total size of all headers.
pub const MAX_HEADERS: usize = 32 * 1024;
/// Largest request body. poem's `SizeLimit` only reads `Content-Length`; this also
/// bounds chunked bodies by reading at most this much.
pub const MAX_BODY: usize = 64 * 1024;

/// 431 when a credential header or the headers as a whole are too large.
pub fn check_headers(req: &Request) -> Result<(), Error> {
    let mut total = 0;
    for (name, value) in req.headers() {
        let len = name.as_str().len() + value.len();
        total += len;
        // Names against names: a standard header's is a tag, compared at once,
        // where a comparison with text goes byte by byte, ignoring case.
        let credential = name == header::COOKIE || name == header::AUTHORIZATION;
        if (credential && value.len() > MAX_CREDENTIAL_HEADER) || total > MAX_HEADERS {
            return Err(Error::HeadersTooLarge);
        }
    }
    Ok(())
}

/// Reads the body up front, refusing it with 413 past [`MAX_BODY`] and with 408
/// when it has not all arrived within `timeout`, and puts the bytes back for the
/// handler. Returns them too (shared, not copied), for an error to explain a body
/// the handler refuses (`crate::http::error::attach`); `None` for GET, HEAD and
/// OPTIONS, which are not read.
pub async fn limit_body(req: &mut Request, timeout: Duration) -> Result<Option<Bytes>, Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(None);
    }
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(Error::PayloadTooLarge);
    }
    // The deadline covers the whole body, so a client trickling a byte at a time
    // cannot hold the request (and its connection) open.
    let bytes = tokio::time::timeout(timeout, req.take_body().into_bytes_limit(MAX_BODY))
        .await
        .map_err(|_| Error::RequestTimeout)?
        .map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => Error::PayloadTooLarge,
            other => Error::BadRequest(format!("cannot read the request body: {other}")),
        })?;
    req.set_body(Body::from_bytes(bytes.clone()));
    Ok(Some(bytes))
}
