//! The one state every door reaches, built once by [`crate::Doorman`]'s builder:
//! the auth core, the resolver, limits, rooms, the live sockets and the socket
//! settings. Handlers reach it through the [`crate::Doorman`] handle.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use poem::{Request, web::websocket::WebSocketConfig};

use crate::{
    account_mail::AccountMail,
    auth::{Auth, AuthError, AuthSource, ClientInfo, Identity},
    config::Config,
    http::error::Error,
    http::{client_ip::ClientIp, conn_guard::UpgradeMarks},
    ratelimit::{Limits, LoginAttempt},
    rooms::Rooms,
    sockets::Registry,
};

/// Shared server state. Reached through [`crate::Doorman`] (it derefs to this);
/// not nameable outside the crate.
pub struct AppState {
    pub config: Config,
    pub auth: Arc<Auth>,
    /// The one resolver of identity (see [`AuthSource`]), for every door.
    pub auth_source: AuthSource,
    pub limits: Arc<Limits>,
    pub client_ip: ClientIp,
    pub rooms: Rooms,
    /// The live sockets of this instance (doorman's `/ws` and the host's own).
    pub registry: Registry,
    /// What every socket needs beyond the above.
    pub ws: SocketSettings,
    /// Whether metrics are recorded (`DOORMAN_METRICS_BIND` is set).
    pub metrics: bool,
    /// The links that go out by mail (verification, password reset).
    pub(crate) account_mail: AccountMail,
}

/// The settings of every socket, doorman's `/ws` and a host's own alike.
pub struct SocketSettings {
    /// Where a route says which connection becomes a WebSocket (its bytes are then
    /// read within a budget).
    pub upgrades: UpgradeMarks,
    pub auth_timeout: Duration,
    pub heartbeat: Duration,
    pub messages_per_second: NonZeroU32,
    pub config: WebSocketConfig,
    /// The clock of every socket's message limiter, made once: making one
    /// (`quanta::Clock::new`) asks the CPU for its features with `cpuid`, which a
    /// virtual machine traps, and that was a fifth of a handshake's CPU time.
    pub clock: governor::clock::DefaultClock,
}

impl SocketSettings {
    /// tungstenite's defaults allow 64 MiB messages and reserve large buffers per
    /// socket; idle sockets must be cheap, so everything is sized deliberately.
    pub fn socket_config(max_message: usize) -> WebSocketConfig {
        WebSocketConfig::default()
            // The one buffer an idle socket holds (1 KiB of its ~6). Frames larger
            // than it are still taken (tungstenite reserves a frame's length from
            // its header), in reads of at most this size.
            .read_buffer_size(1024)
            .write_buffer_size(0)
            .max_write_buffer_size(max_message.saturating_mul(2).max(64 * 1024))
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message))
    }
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

    /// A guess by a signed-in caller (a current password, a TOTP or recovery code):
    /// the per-IP login limit, then a failure cell of the caller's account, taken as
    /// at the login form, so a session holder guesses no faster than a stranger.
    /// Finish the attempt with whether the guess was wrong.
    pub(crate) async fn guess_by(
        &self,
        req: &Request,
        who: &Identity,
    ) -> Result<LoginAttempt<'_>, Error> {
        let ip_key = self.limit_key(req);
        self.limits.login.check(&ip_key)?;
        let user = self
            .auth
            .user(who.user_id)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        Ok(self
            .limits
            .login_failures
            .begin(&user.email, ip_key, None)?)
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
