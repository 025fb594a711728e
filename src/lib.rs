//! doorman: one authentication for HTTP endpoints and WebSockets.
//!
//! - [`auth`]: the auth core (identity resolution, tokens, sessions, passwords); it
//!   knows neither the HTTP API nor the WebSocket route, and other poem apps can
//!   reuse it.
//! - [`api`]: the OpenAPI-documented HTTP endpoints.
//! - [`ws`]: the WebSocket route, its protocol and the registry of live sockets.
//! - [`conn_guard`]: per-connection guards (request-head deadline, per-IP cap).
//! - [`app`]: building and running the server from a [`config::Config`].

pub mod allow;
pub mod api;
pub mod app;
pub mod auth;
pub mod bounds;
pub mod client_ip;
pub mod cluster;
pub mod config;
pub mod conn_guard;
pub mod cors;
pub mod db;
pub mod error;
pub mod headers;
pub mod ratelimit;
pub mod rooms;
pub mod state;
pub mod ws;

pub use app::{Application, StartError};
pub use config::Config;
