//! Integration tests: the real server on an ephemeral port, a fresh database per
//! test, real HTTP and WebSocket clients. Set `DOORMAN_TEST_DATABASE_URL` to a
//! PostgreSQL URL to run them on PostgreSQL.

mod helpers;

mod cluster;
mod hardening;
mod http_api;
mod jwt;
mod logs;
mod outage;
mod spec;
mod websocket;
