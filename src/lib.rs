//! doorman: one authentication for HTTP endpoints and WebSockets.
//!
//! A host poem app needs four things, in order: one builder call ([`Doorman`]),
//! one extractor on an operation ([`Authenticated`]), one upgrade on a socket
//! route ([`ws::SocketUpgrade`]), and one line to mount doorman's own API
//! ([`api::AuthApi`], [`api::SessionApi`], … in the host's `OpenApiService`).
//! `examples/shop.rs` is the whole of it; `docs/embedding.md` walks through it.
//!
//! ```no_run
//! use doorman::{Authenticated, Config, Doorman, ws::SocketUpgrade};
//! use poem::{IntoResponse, Route, get, handler, web::websocket::Message};
//! use poem_openapi::{OpenApi, OpenApiService, payload::PlainText};
//!
//! struct Orders;
//!
//! #[OpenApi]
//! impl Orders {
//!     #[oai(path = "/api/orders", method = "get")]
//!     async fn list(&self, auth: Authenticated) -> PlainText<String> {
//!         PlainText(auth.user_id.to_string())
//!     }
//! }
//!
//! #[handler]
//! fn feed(upgrade: SocketUpgrade) -> impl IntoResponse {
//!     upgrade.on_upgrade(|mut socket| async move {
//!         while let Some(Message::Text(text)) = socket.recv().await {
//!             if socket.send(Message::Text(text)).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let doorman = Doorman::builder(Config::from_env()?).start().await?;
//! let api = OpenApiService::new(
//!     (doorman::api::AuthApi, doorman::api::SessionApi, Orders),
//!     "shop",
//!     "1.0",
//! );
//! let app = Route::new().at("/feed", get(feed)).nest("/", api);
//! // doorman's edge and connection guard around `app`, until Ctrl-C or SIGTERM.
//! doorman.serve(app).await?;
//! # Ok(()) }
//! ```
//!
//! The modules:
//! - [`auth`]: the auth core: [`auth::AuthSource`] resolves identity, [`auth::Auth`]
//!   is the facade over accounts, sessions, tokens and passwords. It knows neither
//!   the HTTP API nor the WebSocket route.
//! - [`extract`]: identity on a host's operations and handlers.
//! - [`error`]: the one error type and its JSON shape.
//! - [`api`]: doorman's OpenAPI-documented endpoint groups.
//! - [`ws`]: doorman's `/ws` protocol, and sockets bound to sessions for a host's
//!   own routes.
//! - [`app`]: doorman's own server, composed from the above.

#![warn(missing_docs)]

mod account_mail;
mod admin;
pub mod api;
#[cfg(feature = "server")]
pub mod app;
pub mod auth;
mod cluster;
pub mod config;
mod doorman;
pub mod extract;
mod front;
pub(crate) mod http;
mod janitor;
mod json_text;
mod logging;
mod mail;
mod memory;
mod ratelimit;
pub(crate) mod rooms;
mod schema_check;
pub(crate) mod sockets;
mod state;
mod telemetry;
pub mod ws;

/// Pure parsers of hostile bytes, for the fuzz targets in `fuzz/` (feature
/// `fuzzing`; not part of the API).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http::conn_guard::{HeadWatch, chunking_agrees};
}

/// The one error type of doorman's HTTP API and its WebSocket handshake, and the
/// one JSON shape every error answers with: `{"error": "<code>", "message": …}`.
/// A host's operations can return [`error::Error`] (or [`error::Fail`] with the
/// statuses they document) and get the same answers.
pub mod error {
    pub use crate::http::error::{
        AuthFailures, BodyAuthFailures, Error, ErrorBody, ErrorCode, ErrorSet, Fail,
    };
}

/// The HTTP edge piece by piece ([`Doorman::bounds`], [`Doorman::cors`],
/// [`Doorman::errors`], [`Doorman::security_headers`]), for a host that applies some
/// and not others; [`Doorman::edge`] applies them all at once, more cheaply.
pub mod edge {
    pub use crate::front::pieces::{Bounds, Cors, Errors, Piece, SecurityHeaders};
}

#[cfg(feature = "server")]
pub use app::Application;
pub use config::Config;
pub use doorman::{Builder, Doorman, StartError, shutdown_signal};
pub use extract::{Authenticated, MaybeAuthenticated, RecentlyAuthenticated};
pub use http::conn_guard::GuardedAcceptor;
pub use logging::init_logging;
