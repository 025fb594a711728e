//! doorman: one authentication for HTTP endpoints and WebSockets.
//!
//! - [`auth`]: the auth core: [`auth::AuthSource`] resolves identity, [`auth::Auth`]
//!   is the facade over accounts, sessions, tokens and passwords, [`auth::Error`]
//!   its own errors. It knows neither the HTTP API nor the WebSocket route, and
//!   other poem apps can reuse it.
//! - [`api`]: the OpenAPI-documented HTTP endpoints.
//! - [`ws`]: the WebSocket route, its protocol and the registry of live sockets.
//! - `http`: the HTTP edge (connection guards, request scope, CORS, bounds, the
//!   error map, client IPs).
//! - [`app`]: building and running the server from a [`config::Config`].

pub mod api;
pub mod app;
pub mod auth;
mod cluster;
pub mod config;
pub(crate) mod http;
pub mod janitor;
mod json_text;
mod memory;
mod ratelimit;
pub mod rooms;
mod state;
mod telemetry;
pub mod ws;

pub use app::{Application, StartError};
pub use config::Config;
