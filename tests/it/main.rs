//! Integration tests: the real server on an ephemeral port, a fresh database per
//! test, real HTTP and WebSocket clients. Set `DOORMAN_TEST_DATABASE_URL` to a
//! PostgreSQL URL to run them on PostgreSQL.

mod helpers;

mod browser_headers;
mod cluster;
mod hardening;
mod hostile;
mod http_api;
mod jwt;
mod logs;
mod outage;
mod overload;
mod slow_clients;
mod spec;
mod websocket;
