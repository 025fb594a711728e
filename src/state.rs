//! What every handler can reach, built once at start.

use std::{net::IpAddr, sync::Arc};

use poem::Request;

use crate::{
    auth::{Auth, AuthSource, ClientInfo},
    config::Config,
    http::client_ip::ClientIp,
    ratelimit::Limits,
    rooms::Rooms,
    ws::Registry,
};

/// Shared server state, attached to routes with `.data(Arc<AppState>)`.
pub struct AppState {
    pub config: Config,
    pub auth: Arc<Auth>,
    /// The one resolver of identity (see [`AuthSource`]), for every door.
    pub auth_source: AuthSource,
    pub limits: Arc<Limits>,
    pub client_ip: ClientIp,
    pub rooms: Rooms,
    /// The live sockets, for their counts per session.
    pub sockets: Registry,
    /// Whether metrics are recorded (`DOORMAN_METRICS_BIND` is set).
    pub metrics: bool,
}

impl AppState {
    /// The key per-IP rate limits use (IPv6 by /64).
    pub fn limit_key(&self, req: &Request) -> IpAddr {
        crate::http::client_ip::limit_key(self.ip(req))
    }

    /// The client's IP for limits and logs (unspecified if the transport has none).
    pub fn ip(&self, req: &Request) -> IpAddr {
        self.client_ip.of(req).unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// Where a request comes from, for a new session and the activity log.
    pub fn client_info(&self, req: &Request) -> ClientInfo {
        ClientInfo {
            user_agent: req
                .headers()
                .get(poem::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            ip: Some(self.ip(req).to_string()),
        }
    }
}
