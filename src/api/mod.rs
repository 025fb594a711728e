//! The OpenAPI-documented HTTP API. Every protected operation takes
//! [`security::Authenticated`], which documents both security schemes.

mod auth;
mod meta;
pub mod models;
mod rooms;
pub mod security;
mod sessions;
pub mod text;

use poem_openapi::{OpenApiService, Tags};

#[derive(Tags)]
pub enum ApiTags {
    /// Accounts, login, token refresh and logout.
    Auth,
    /// The caller and their sessions.
    Sessions,
    /// Room messages, delivered to WebSocket subscribers.
    Rooms,
    /// Health and public keys.
    Meta,
}

pub type Apis = (
    auth::AuthApi,
    sessions::SessionApi,
    rooms::RoomApi,
    meta::MetaApi,
);

/// The OpenAPI service. Paths are absolute and the spec names no server, so the
/// committed `openapi.json` does not depend on where the server runs.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            sessions::SessionApi,
            rooms::RoomApi,
            meta::MetaApi,
        ),
        "doorman",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "One authentication for HTTP endpoints and WebSockets. Every protected operation \
         accepts an access token as `Authorization: Bearer` or as the HttpOnly access cookie. \
         The WebSocket at `GET /ws` uses the same credentials; see docs/websocket.md.",
    )
}

/// The spec as pretty JSON with a trailing newline: what `doorman openapi` prints
/// and `openapi.json` holds.
pub fn spec_json() -> String {
    let mut spec = service().spec();
    spec.push('\n');
    spec
}
