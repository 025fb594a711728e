//! The HTTP edge: everything between the socket and an operation, in one place. A
//! floor of leaves: it knows the auth core, never the API, the sockets or the state.
//!
//! - [`conn_guard`]: per-connection guards before HTTP is parsed (request-head
//!   deadline, connections per IP).
//! - [`scope`]: per request — id and span, attached data, size bounds, CORS, the
//!   error map, `Cache-Control`, `Allow`, browser hardening headers, hot routes.
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
pub(crate) mod scope;
