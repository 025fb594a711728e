//! Integration tests: the real server on an ephemeral port, a fresh database per
//! test, real HTTP and WebSocket clients driven through one typed client
//! (`client.rs`). Set `DOORMAN_TEST_DATABASE_URL` to a PostgreSQL URL to run them on
//! PostgreSQL.

mod client;
mod helpers;
mod mailbox;

// The flow doorman exists for, end to end.
mod flagship;

// HTTP API, by feature.
mod accounts;
mod admin;
mod credentials;
mod devices;
mod health;
mod hot_routes;
mod login;
mod logout;
mod mail;
mod origins;
mod passkeys;
mod private_rooms;
mod refresh;
mod room_limits;
mod rooms;
mod second_factors;
mod sessions;

// WebSocket, by feature.
mod history;
mod presence;
mod ws_frames;
mod ws_handshake;
mod ws_lifecycle;
mod ws_limits;

// Hardening: what hostile or broken clients and environments cannot do.
mod architecture;
mod bounds;
mod browser_headers;
mod errors;
mod jwt;
mod overload;
mod slow_clients;
mod throttling;

// The real binary in its own process(es).
mod cluster;
mod configuration;
mod drain;
mod janitor;
mod keys;
mod logs;
mod memory;
mod metrics;
mod outage;
// The reference host app, examples/shop.rs, built on the library.
mod embedding;
mod shop;

// The committed OpenAPI document.
mod spec;
