//! doorman's `/ws` protocol on a socket bound to its session ([`Link`]): the
//! `welcome`, pings, rooms, publishing and the notices and room messages doorman
//! queues for the socket.

use std::{collections::HashMap, sync::Arc};

use futures_util::FutureExt;
use poem::web::websocket::{Message, WebSocketStream};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::{
    link::{Event, Link, log_unavailable},
    protocol::{ClientFrame, Close, FrameError, ServerFrame, UnsubscribedReason},
};
use crate::{
    Doorman,
    auth::{Error, Identity, SessionEnds, assurance::Aal},
    http::conn_guard::CloseNote,
    rooms::{
        Admission, MAX_BODY_CHARS, Outgoing, RecoveryFailure, Removal, RoomError, RoomName, Since,
    },
    sockets::Registration,
};

/// How many frames may wait for a slow reader before room messages to it drop.
const OUTBOX_CAPACITY: usize = 64;
/// Rooms one socket may be subscribed to at once.
pub const MAX_ROOMS_PER_SOCKET: usize = 64;

/// The queue a socket's room messages and notices wait in, made at its handshake.
pub fn outbox() -> (mpsc::Sender<Outgoing>, mpsc::Receiver<Outgoing>) {
    mpsc::channel(OUTBOX_CAPACITY)
}

/// Runs a socket to its end. `identity` is `None` for a socket that must send an
/// `auth` frame first; with it (a socket `registration` already bound to its
/// session), the mark of session ends read before its check. `close_note`: from
/// the route's upgrade mark. `queue`: from [`outbox`], its sender the one the
/// registration holds.
///
/// Not an `async fn`: the socket's state is built here and moved into the future
/// once, where an `async fn` would keep its arguments' slots beside it for the
/// socket's whole life (the future is most of an idle socket's memory).
pub fn run(
    socket: WebSocketStream,
    identity: Option<(Identity, SessionEnds)>,
    ctx: Doorman,
    registration: Registration,
    close_rx: oneshot::Receiver<Close>,
    close_note: Option<CloseNote>,
    (outbox, inbox): (mpsc::Sender<Outgoing>, mpsc::Receiver<Outgoing>),
) -> impl Future<Output = ()> + Send {
    let span = tracing::info_span!("ws", conn = registration.id);
    let mut conn = Conn {
        link: Link::new(socket, ctx, registration, close_rx, close_note),
        outbox,
        inbox,
        rooms: HashMap::new(),
    };
    async move { conn.drive(identity).await }.instrument(span)
}

struct Conn {
    link: Link,
    outbox: mpsc::Sender<Outgoing>,
    inbox: mpsc::Receiver<Outgoing>,
    /// The rooms the socket is in, each with the last offset it was sent (history
    /// on): a stored message at or below it was sent already (replayed at the
    /// subscription, or from before it) and is dropped.
    rooms: HashMap<RoomName, Seam>,
}

/// Where a subscription's stream of a room stands.
#[derive(Default)]
struct Seam {
    epoch: Option<Arc<str>>,
    /// Stored messages at or below it are not sent (sent already, or from before
    /// the subscription).
    offset: u64,
    /// The last offset actually sent on this socket (live or replayed), if any.
    sent: Option<u64>,
}

enum Step {
    Continue,
    Close(Close),
}

impl Conn {
    async fn drive(&mut self, identity: Option<(Identity, SessionEnds)>) {
        let close = match identity {
            Some((identity, ends)) => self.authenticated(identity, ends).await,
            None => match self.link.pending(Some(&self.outbox)).await {
                Ok((identity, ends)) => self.authenticated(identity, ends).await,
                Err(close) => close,
            },
        };
        for room in self.rooms.keys() {
            self.link
                .ctx
                .rooms
                .unsubscribe(room, self.link.registration.id);
        }
        self.link.finish(close).await;
    }

    /// Writes `welcome` (or ends with a close) before it reads anything: for a
    /// socket authenticated at the handshake, the `101` is held until that first
    /// write (`crate::http::conn_guard::UpgradeMarks::mark`).
    async fn authenticated(&mut self, identity: Identity, ends: SessionEnds) -> Close {
        if let Err(close) = self.link.admit(&identity, ends).await {
            return close;
        }
        let heartbeat = self.link.ctx.ws.heartbeat;
        if self
            .send(ServerFrame::welcome_text(&identity, heartbeat.as_secs()))
            .await
            .is_err()
        {
            return Close::NORMAL;
        }
        let mut beat = self.link.beat(&identity);
        loop {
            let step = match self.link.next(&mut beat, &mut self.inbox).await {
                Event::End(close) => return close,
                Event::Queued(out) => {
                    let text = match out {
                        Outgoing::Frame(text) => text.to_string(),
                        Outgoing::Logged(logged) => {
                            let Some(seam) = self.rooms.get_mut(&logged.room) else {
                                continue;
                            };
                            // Same epoch and not past the seam: sent already. A
                            // new epoch (the room's history was reset) starts over.
                            if seam.epoch.as_deref() == Some(&*logged.epoch)
                                && logged.offset <= seam.offset
                            {
                                continue;
                            }
                            seam.epoch = Some(logged.epoch.clone());
                            seam.offset = logged.offset;
                            seam.sent = Some(logged.offset);
                            logged.frame.to_string()
                        }
                        Outgoing::Removed(room, why) => {
                            if self.rooms.remove(&room).is_none() {
                                continue;
                            }
                            ServerFrame::Unsubscribed {
                                room: room.as_str(),
                                reason: Some(match why {
                                    Removal::Removed => UnsubscribedReason::Removed,
                                    Removal::MfaRequired => UnsubscribedReason::MfaRequired,
                                }),
                            }
                            .to_text()
                        }
                    };
                    self.reply(text).await
                }
                Event::Frame(Message::Text(text)) => match ClientFrame::parse(&text) {
                    // Pings, the most frequent frame, answered inline.
                    Ok(ClientFrame::Ping { id }) => {
                        self.reply(ServerFrame::pong_text(id.as_ref())).await
                    }
                    // Boxed: the socket's future lives as long as the socket,
                    // and inline it would be as large as the largest room
                    // operation's database await.
                    Ok(frame) => Box::pin(self.on_frame(&identity, frame)).await,
                    Err(message) => self.error(FrameError::BadRequest, &message).await,
                },
                Event::Frame(_) => {
                    self.error(FrameError::BadRequest, "frames are JSON text")
                        .await
                }
            };
            if let Step::Close(close) = step {
                return close;
            }
        }
    }

    async fn on_frame(&mut self, identity: &Identity, frame: ClientFrame) -> Step {
        let reply = match frame {
            ClientFrame::Auth { .. } => {
                return self
                    .error(
                        FrameError::AlreadyAuthenticated,
                        "this socket is already authenticated",
                    )
                    .await;
            }
            ClientFrame::Ping { id } => ServerFrame::pong_text(id.as_ref()),
            ClientFrame::Whoami => {
                // The session's assurance as it is now, not at the handshake: a
                // step-up or a removed factor since shows (outside attack, issue 35).
                let mut now = identity.clone();
                if let Ok(assurance) =
                    Box::pin(self.link.ctx.auth.current_assurance(identity.session_id)).await
                {
                    now.assurance = assurance;
                }
                ServerFrame::identity(&now).to_text()
            }
            ClientFrame::Subscribe { room, since } => {
                let name = match RoomName::parse(&room) {
                    Ok(name) => name,
                    Err(e) => return self.room_error(e).await,
                };
                if !self.rooms.contains_key(&name) && self.rooms.len() >= MAX_ROOMS_PER_SOCKET {
                    return self
                        .error(
                            FrameError::TooManyRooms,
                            "a socket may join at most 64 rooms",
                        )
                        .await;
                }
                let admission = match Box::pin(admit(&self.link.ctx, identity, &name)).await {
                    Ok(admission) => admission,
                    Err(e) => return self.room_error(e).await,
                };
                let present = self.link.ctx.rooms.subscribe(
                    &name,
                    self.link.registration.id,
                    (identity.user_id, identity.session_id),
                    admission,
                    self.outbox.clone(),
                );
                // A removal (or a drop to aal1) between the check and the
                // subscription found no socket to take out; the membership row is
                // gone (the session's level written) before it is announced, so
                // asking again now leaves no gap.
                if name.is_private()
                    && let Err(e) = Box::pin(admit(&self.link.ctx, identity, &name)).await
                {
                    self.link
                        .ctx
                        .rooms
                        .unsubscribe(&name, self.link.registration.id);
                    self.rooms.remove(&name);
                    return self.room_error(e).await;
                }
                return Box::pin(self.subscribed(identity, name, &room, present, since)).await;
            }
            ClientFrame::Unsubscribe { room } => match RoomName::parse(&room) {
                Ok(name) => {
                    self.link
                        .ctx
                        .rooms
                        .unsubscribe(&name, self.link.registration.id);
                    self.rooms.remove(&name);
                    ServerFrame::Unsubscribed {
                        room: &room,
                        reason: None,
                    }
                    .to_text()
                }
                Err(e) => return self.room_error(e).await,
            },
            ClientFrame::Publish { room, body } => {
                let name = match RoomName::parse(&room) {
                    Ok(name) => name,
                    Err(e) => return self.room_error(e).await,
                };
                if body.is_empty() || body.chars().count() > MAX_BODY_CHARS {
                    return self
                        .error(
                            FrameError::InvalidMessage,
                            "body must be 1 to 4096 characters",
                        )
                        .await;
                }
                // A subscribed socket was admitted already: no session or room
                // lookup per publish (the hot path).
                if !self.link.ctx.rooms.holds(&name, self.link.registration.id)
                    && let Err(e) = Box::pin(admit(&self.link.ctx, identity, &name)).await
                {
                    return self.room_error(e).await;
                }
                // One budget with HTTP publishes; the socket lives.
                if self
                    .link
                    .ctx
                    .limits
                    .publish
                    .check(&identity.user_id)
                    .is_err()
                {
                    return self
                        .error(FrameError::RateLimited, "publishing too fast; slow down")
                        .await;
                }
                if let Err(e) = self
                    .link
                    .ctx
                    .rooms
                    .publish(&name, identity.user_id, &body)
                    .await
                {
                    return self.room_error(e).await;
                }
                return Step::Continue;
            }
        };
        self.reply(reply).await
    }

    /// Answers a subscription the registry holds now: its `subscribed` frame and,
    /// with `since` and history on, what the client missed, in order. The room's
    /// position is read after the socket was registered for live messages, and
    /// the seam set to it: a live message at or below it is in the replay or came
    /// before the subscription, one above it follows.
    async fn subscribed(
        &mut self,
        identity: &Identity,
        name: RoomName,
        room: &str,
        present: Vec<crate::auth::UserId>,
        since: Option<Since>,
    ) -> Step {
        let present = present.into_iter().map(|u| u.0).collect();
        let rooms = &self.link.ctx.rooms;
        let history = rooms.history();
        if !history.is_on() {
            self.rooms.insert(name, Seam::default());
            let recovered = since.as_ref().map(|_| false);
            let reason = since.as_ref().map(|_| RecoveryFailure::HistoryOff);
            let frame = ServerFrame::Subscribed {
                room,
                present,
                offset: None,
                epoch: None,
                recovered,
                reason,
            };
            return self.reply(frame.to_text()).await;
        }
        // Already in the room on this socket: what it was sent stays sent (a
        // repeated `subscribe` changes nothing, and a replay starts after it).
        let before: Option<(Arc<str>, Option<u64>)> = self
            .rooms
            .get(&name)
            .and_then(|seam| Some((seam.epoch.clone()?, seam.sent)));
        // The last offset this socket was sent in the room's current epoch.
        let sent_in = |epoch: &str| match &before {
            Some((e, sent)) if **e == *epoch => *sent,
            _ => None,
        };
        let since = since.map(|since| match sent_in(&since.epoch) {
            Some(sent) if sent > since.offset => Since {
                offset: sent,
                epoch: since.epoch,
            },
            _ => since,
        });
        let looked_up = async {
            let position = history.position(&name).await?;
            let missed = match &since {
                Some(since) => {
                    let aal = aal_now(&self.link.ctx, identity, &name).await?;
                    let readable = rooms.reads_since(&name, identity.user_id, aal).await?;
                    Some(history.missed(&name, since, &position, readable).await?)
                }
                None => None,
            };
            Ok::<_, RoomError>((position, missed))
        };
        let (position, missed) = match looked_up.await {
            Ok(found) => found,
            Err(e) => {
                rooms.unsubscribe(&name, self.link.registration.id);
                self.rooms.remove(&name);
                return self.room_error(e).await;
            }
        };
        let (recovered, reason, replay) = match missed {
            None => (None, None, Vec::new()),
            Some(Ok(kept)) => (Some(true), None, kept),
            Some(Err(why)) => (Some(false), Some(why), Vec::new()),
        };
        let epoch: Arc<str> = position.epoch.as_str().into();
        // A repeated plain `subscribe` keeps the seam where it is: the messages
        // queued for the socket still go out. Otherwise the seam is the room's
        // position (what is replayed, and what came before, is not sent live).
        let repeated = since.is_none() && before.as_ref().is_some_and(|(e, _)| *e == epoch);
        if !repeated {
            let sent = replay.last().map(|m| m.offset).or(sent_in(&epoch));
            self.rooms.insert(
                name.clone(),
                Seam {
                    epoch: Some(epoch.clone()),
                    offset: position.offset.max(sent.unwrap_or(0)),
                    sent,
                },
            );
        }
        let frame = ServerFrame::Subscribed {
            room,
            present,
            offset: Some(position.offset),
            epoch: Some(&position.epoch),
            recovered,
            reason,
        };
        if let Step::Close(close) = self.reply(frame.to_text()).await {
            return Step::Close(close);
        }
        for kept in &replay {
            let Some(text) = crate::rooms::message_frame(&name, Some(&epoch), kept) else {
                continue;
            };
            if let Step::Close(close) = self.reply(text).await {
                return Step::Close(close);
            }
        }
        Step::Continue
    }

    /// Sends a reply; a failed write ends the socket.
    fn reply(&mut self, text: String) -> impl Future<Output = Step> + '_ {
        self.send(text).map(|sent| match sent {
            Ok(()) => Step::Continue,
            Err(()) => Step::Close(Close::NORMAL),
        })
    }

    /// A refused room operation: answered with an `error` frame, the socket lives.
    async fn room_error(&mut self, e: RoomError) -> Step {
        let code = match &e {
            RoomError::InvalidName => FrameError::InvalidRoom,
            RoomError::HistoryBudget | RoomError::Busy => FrameError::RateLimited,
            RoomError::Core(core) => {
                log_unavailable(core);
                if matches!(core, Error::DatabaseUnavailable(_)) {
                    FrameError::DatabaseUnavailable
                } else {
                    FrameError::InternalError
                }
            }
            _ => FrameError::Forbidden,
        };
        let message = match code {
            FrameError::InternalError => "internal error".to_owned(),
            FrameError::DatabaseUnavailable => {
                "the database is unavailable; retry shortly".to_owned()
            }
            _ => e.to_string(),
        };
        self.error(code, &message).await
    }

    fn error(&mut self, code: FrameError, message: &str) -> impl Future<Output = Step> + '_ {
        self.reply(ServerFrame::Error { code, message }.to_text())
    }

    fn send(&mut self, text: String) -> impl Future<Output = Result<(), ()>> + '_ {
        self.link.send_message(Message::Text(text))
    }
}

/// Whether a socket of `identity` may enter `name`: the one check, at the level
/// the socket's session has now.
async fn admit(
    ctx: &Doorman,
    identity: &Identity,
    name: &RoomName,
) -> Result<Admission, RoomError> {
    let aal = aal_now(ctx, identity, name).await?;
    ctx.rooms.may_enter(name, identity.user_id, aal).await
}

/// The socket's session's level now (a step-up after the handshake counts), read
/// only for a private room: a public room asks no level.
async fn aal_now(ctx: &Doorman, identity: &Identity, name: &RoomName) -> Result<Aal, RoomError> {
    if !name.is_private() {
        return Ok(identity.assurance.aal);
    }
    Ok(ctx.auth.current_assurance(identity.session_id).await?.aal)
}
