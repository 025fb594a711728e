//! A host's own WebSocket route with doorman's auth: [`SocketUpgrade`] applies
//! the handshake rules of doorman's `/ws` and hands the host a [`SessionSocket`],
//! bound to its session, on which the host reads and writes its own frames.
//!
//! What the host gets without writing it:
//! - before the upgrade: the per-IP handshake limit (429 + `Retry-After`), the
//!   credential from `Authorization: Bearer` or the access cookie (the cookie only
//!   from an allowed `Origin`, else 403), a present but invalid credential refused
//!   (401), the per-user socket cap (429), 503 while draining;
//! - optionally ([`SocketUpgrade::with_auth_frame`]) a credential-less socket that
//!   must send `{"type":"auth","token":"…"}` first (4408 after
//!   `DOORMAN_WS_AUTH_TIMEOUT_SECONDS`, 4400 for anything else, 4401 for a bad
//!   token);
//! - while open: closed with 4403 `session_revoked` when its session ends (logout,
//!   revocation, refresh-token reuse, on any instance) and `session_expired` at its
//!   expiry; heartbeats (pings every `DOORMAN_WS_HEARTBEAT_SECONDS`, closed after
//!   three silent intervals); at most `DOORMAN_WS_MESSAGES_PER_SECOND` frames a
//!   second (4429); frames over `DOORMAN_WS_MAX_MESSAGE_BYTES` (1009) and broken
//!   frames (1002, 1007) closed with their codes; 1001 on shutdown.
//!
//! doorman's own frames (`notice`) reach the socket only with
//! [`SocketUpgrade::with_notices`].

use poem::{
    FromRequest, IntoResponse, Request, RequestBody, Response,
    web::websocket::{Message, WebSocket},
};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{
    connection::outbox,
    link::{Beat, Event, Link},
};
use crate::{
    Doorman,
    auth::{Identity, SessionEnds},
    http::error::Error,
    rooms::Outgoing,
    sockets::Binding,
};

/// The extractor of a host's socket route: the handshake checked, the caller (if
/// it presented a credential) resolved. Answer the request with
/// [`SocketUpgrade::on_upgrade`].
///
/// ```
/// use doorman::ws::SocketUpgrade;
/// use poem::{IntoResponse, handler, web::websocket::Message};
///
/// #[handler]
/// fn echo(upgrade: SocketUpgrade) -> impl IntoResponse {
///     upgrade.on_upgrade(|mut socket| async move {
///         while let Some(frame) = socket.recv().await {
///             if socket.send(frame).await.is_err() {
///                 break;
///             }
///         }
///     })
/// }
/// ```
pub struct SocketUpgrade {
    ws: WebSocket,
    doorman: Doorman,
    identity: Option<(Identity, SessionEnds)>,
    peer: Option<std::net::SocketAddr>,
    auth_frame: bool,
    notices: bool,
}

impl<'a> FromRequest<'a> for SocketUpgrade {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        super::http_11(req)?;
        let doorman = crate::extract::doorman_of(req)?.clone();
        let ws = WebSocket::from_request(req, body).await?;
        let identity = super::check_handshake(req, &doorman).await?;
        Ok(Self {
            ws,
            identity,
            peer: req.remote_addr().as_socket_addr().copied(),
            doorman,
            auth_frame: false,
            notices: false,
        })
    }
}

impl SocketUpgrade {
    /// The caller, when the handshake carried a credential.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref().map(|(id, _)| id)
    }

    /// Accepts a handshake without credentials: the socket must then send
    /// `{"type":"auth","token":"<access token>"}` as its first frame (for a page on
    /// another origin, which can send neither header nor cookie). Without this, such
    /// a handshake is refused with 401 `missing_credentials`.
    pub fn with_auth_frame(mut self) -> Self {
        self.auth_frame = true;
        self
    }

    /// Writes doorman's `notice` frames (`new_session`, `session_ended` of the
    /// user's other sessions) to this socket, between the host's own frames.
    pub fn with_notices(mut self) -> Self {
        self.notices = true;
        self
    }

    /// Upgrades, and runs `serve` with the socket once it is bound to its session.
    /// Refused (401, 429, 503) with doorman's JSON error when the socket cannot be
    /// taken.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(SessionSocket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self.upgrade(serve) {
            Ok(resp) => resp,
            Err(e) => e.to_response(None),
        }
    }

    fn upgrade<F, Fut>(self, serve: F) -> Result<Response, Error>
    where
        F: FnOnce(SessionSocket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Self {
            ws,
            doorman,
            identity,
            peer,
            auth_frame,
            notices,
        } = self;
        if identity.is_none() && !auth_frame {
            return Err(Error::Auth(crate::auth::AuthError::MissingCredentials));
        }
        let (sender, inbox) = if notices {
            let (tx, rx) = outbox();
            (Some(tx), rx)
        } else {
            // A queue nobody sends to: it reads as closed, and costs nothing.
            (None, mpsc::channel(1).1)
        };
        let bound = identity
            .as_ref()
            .map(|(id, _)| Binding::of(id, sender.clone()));
        let (registration, close_rx) = doorman.registry.register(bound)?;
        // The host may wait for its client before writing: no frame follows the
        // `101` at once.
        let close_note = peer.and_then(|peer| doorman.ws.upgrades.mark(peer, false));
        let config = doorman.ws.config;
        let span = tracing::info_span!("socket", conn = registration.id);
        Ok(ws
            .config(config)
            .on_upgrade(move |stream| {
                Box::pin(
                    async move {
                        let mut link =
                            Link::new(stream, doorman, registration, close_rx, close_note);
                        let admitted = match identity {
                            Some(found) => Ok(found),
                            None => link.pending(sender.as_ref()).await,
                        };
                        let identity = match admitted {
                            Ok((identity, ends)) => match link.admit(&identity, ends).await {
                                Ok(()) => identity,
                                Err(close) => return link.finish(close).await,
                            },
                            Err(close) => return link.finish(close).await,
                        };
                        let beat = link.beat(&identity);
                        serve(SessionSocket {
                            link: Some(link),
                            identity,
                            beat,
                            inbox,
                            ended: false,
                        })
                        .await;
                    }
                    .instrument(span),
                )
            })
            .into_response())
    }
}

/// A host's WebSocket, bound to its session: read the client's frames with
/// [`SessionSocket::recv`], write with [`SessionSocket::send`]. doorman closes it
/// with the documented code when the session ends or expires, the client floods
/// or breaks the protocol, or the server drains; `recv` then answers `None`.
/// Dropping it closes it with 1000.
pub struct SessionSocket {
    link: Option<Link>,
    identity: Identity,
    beat: Beat,
    inbox: mpsc::Receiver<Outgoing>,
    ended: bool,
}

/// The socket is closed (by doorman, the peer, or a write that did not finish
/// within 10 seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the socket is closed")]
pub struct SocketClosed;

impl SessionSocket {
    /// Who is on the other end: user, session, and where the credential came from.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The next text or binary frame from the client; `None` once the socket has
    /// closed (doorman has then sent the close code, see the module docs). Pings
    /// and pongs are answered and counted here: keep calling `recv` for the
    /// heartbeat and the session's end to be noticed.
    pub async fn recv(&mut self) -> Option<Message> {
        if self.ended {
            return None;
        }
        let link = self.link.as_mut()?;
        loop {
            let close = match link.next(&mut self.beat, &mut self.inbox).await {
                Event::Frame(frame) => return Some(frame),
                Event::Queued(Outgoing::Frame(text)) => {
                    match link.send_message(Message::Text(text.to_string())).await {
                        Ok(()) => continue,
                        Err(()) => super::protocol::Close::NORMAL,
                    }
                }
                // A host socket is in no room.
                Event::Queued(Outgoing::Removed(..) | Outgoing::Logged(_)) => continue,
                Event::End(close) => close,
            };
            self.ended = true;
            link.finish(close).await;
            return None;
        }
    }

    /// Writes a frame (within 10 seconds, or the socket is given up on).
    pub async fn send(&mut self, frame: Message) -> Result<(), SocketClosed> {
        if self.ended {
            return Err(SocketClosed);
        }
        let link = self.link.as_mut().ok_or(SocketClosed)?;
        link.send_message(frame).await.map_err(|()| SocketClosed)
    }

    /// Closes the socket with 1000.
    pub async fn close(mut self) {
        if let Some(mut link) = self.link.take()
            && !self.ended
        {
            link.finish(super::protocol::Close::NORMAL).await;
        }
    }
}

impl Drop for SessionSocket {
    fn drop(&mut self) {
        if let Some(mut link) = self.link.take()
            && !self.ended
        {
            tokio::spawn(async move { link.finish(super::protocol::Close::NORMAL).await });
        }
    }
}
