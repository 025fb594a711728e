//! The WebSocket door, `GET /ws`: the same credentials as the HTTP API, resolved by
//! the same function, and sockets bound to their session.
//!
//! Before the upgrade, in order: per-IP handshake limit (429), Origin rule for
//! cookies (403), credential resolution (401 if present and invalid). A handshake
//! without credentials upgrades into a pending state that must send `auth`.

pub mod asyncapi;
mod connection;
mod link;
pub mod protocol;
pub mod socket;

use poem::{
    IntoResponse, Request, handler,
    web::{Data, websocket::WebSocket},
};

use crate::sockets::Binding;
pub use crate::sockets::{Refused, Registry};
pub use socket::{SessionSocket, SocketClosed, SocketUpgrade};

use crate::{
    Doorman,
    auth::{Identity, SessionEnds},
    http::error::Error,
};

/// Put before [`route`]: hyper upgrades HTTP/1.1 connections only, and poem's
/// `WebSocket` extractor answers any other version's handshake with a 500 before
/// the route runs. It is the client's mistake: 400.
pub async fn require_http_11(req: Request) -> poem::Result<Request> {
    http_11(&req)?;
    Ok(req)
}

/// 400 for a handshake that is not HTTP/1.1 (see [`require_http_11`]).
pub(crate) fn http_11(req: &Request) -> Result<(), Error> {
    if req.version() == poem::http::Version::HTTP_11 {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "a WebSocket handshake needs HTTP/1.1".into(),
        ))
    }
}

/// The rules before any upgrade, doorman's `/ws` and a host's socket alike: the
/// per-IP handshake limit (429), then the credential (Bearer, or the cookie from an
/// absent or allowed Origin; present and invalid: 401). `None` for a handshake
/// without a credential. With the identity, the mark of session ends read before
/// its check (see `link::Link::admit`).
pub(crate) async fn check_handshake(
    req: &Request,
    doorman: &Doorman,
) -> Result<Option<(Identity, SessionEnds)>, Error> {
    doorman.limits.ws_handshake.check(&doorman.limit_key(req))?;
    let ends = doorman.auth.session_ends();
    let identity = crate::extract::maybe_identity(req, doorman).await?;
    Ok(identity.map(|id| (id, ends)))
}

/// A socket the registry would not take: 503 while draining, 429 over the user's
/// socket cap.
impl From<Refused> for Error {
    fn from(e: Refused) -> Self {
        match e {
            Refused::ShuttingDown => Error::ShuttingDown,
            Refused::TooManySockets => Error::TooManySockets,
        }
    }
}

/// `GET /ws` through poem's router (`HEAD`; `GET` is recognised before the router
/// and served by `serve`): counts handshakes by outcome.
#[handler]
pub async fn route(
    req: &Request,
    ws: WebSocket,
    state: Data<&Doorman>,
) -> Result<impl IntoResponse, Error> {
    counted(handshake(req, ws, &state).await)
}

/// `GET /ws`, recognised before the router (`crate::front::hot`): what the router
/// would run for it — [`require_http_11`], then [`route`] with its extractor.
#[cfg(feature = "server")]
pub(crate) async fn serve(req: Request, state: &Doorman) -> poem::Result<poem::Response> {
    use poem::FromRequest;
    let req = require_http_11(req).await?;
    let (req, mut body) = req.split();
    let ws = WebSocket::from_request(&req, &mut body).await?;
    counted(handshake(&req, ws, state).await)
        .map(IntoResponse::into_response)
        .map_err(poem::Error::from)
}

/// Counts a handshake by outcome (`upgraded`, or the refusal's status). The
/// upgrade's label is a literal: without a recorder, counting it then costs
/// nothing (a computed label is allocated first).
fn counted<T>(result: Result<T, Error>) -> Result<T, Error> {
    match &result {
        Ok(_) => {
            metrics::counter!("doorman_ws_handshakes_total", "outcome" => "upgraded").increment(1);
        }
        Err(e) => {
            metrics::counter!("doorman_ws_handshakes_total", "outcome" => e.status().as_str().to_owned())
                .increment(1);
        }
    }
    result
}

async fn handshake(
    req: &Request,
    ws: WebSocket,
    ctx: &Doorman,
) -> Result<impl IntoResponse + use<>, Error> {
    let identity = check_handshake(req, ctx).await?;
    // The socket's queue, made here: a socket authenticated at its handshake is
    // bound to its session now, its user's cap checked in the same step.
    let (outbox, inbox) = connection::outbox();
    let bound = identity
        .as_ref()
        .map(|(id, _)| Binding::of(id, Some(outbox.clone())));
    let (registration, close_rx) = ctx.registry.register(bound)?;
    let ctx = ctx.clone();
    // An authenticated socket writes at once (its `welcome`, or a close;
    // `connection::Conn::authenticated` waits for nothing from the client first),
    // so its `101` may wait for that write and leave with it.
    let close_note = req
        .remote_addr()
        .as_socket_addr()
        .and_then(|peer| ctx.ws.upgrades.mark(*peer, identity.is_some()));
    // Boxed: poem spawns the callback's future as the socket's task, and tokio
    // moves a task's whole future at spawn and at each change of its stage; the
    // socket's future is kilobytes, a box is a pointer.
    Ok(ws.config(ctx.ws.config).on_upgrade(move |socket| {
        Box::pin(connection::run(
            socket,
            identity,
            ctx,
            registration,
            close_rx,
            close_note,
            (outbox, inbox),
        ))
    }))
}
