//! Rooms: named fan-out groups of sockets, who may enter them, and who is in them.
//!
//! - `name`: public (`lobby`) and private (`private:team`) names.
//! - `membership`: the private rooms' owners and members, and
//!   [`Rooms::may_enter`], the one check WebSocket and HTTP both ask.
//! - `presence`: who is present, across tabs and instances.
//!
//! This module subscribes sockets, delivers messages, takes removed members' sockets
//! out of a room (authorization follows membership live) and announces presence.
//! Other instances hear of all of it through the cluster bridge ([`Relayed`]).

mod history;
mod membership;
mod name;
mod presence;
mod purge;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use history::{Committed, HistorySettings, Logged, RecoveryFailure, Since, message_frame};
pub use membership::{Admission, Member, Page, Role, RoomCaps, RoomInfo};
pub use name::{ANY_ROOM, PRIVATE_ROOM, RoomName};
pub use presence::Transition;
pub use purge::purge_user;

use crate::auth::{SessionId, UserId, assurance::Aal, db::Db};
use history::History;
use membership::Membership;
use presence::{Holder, PresenceView};

/// The longest message body, in characters, over HTTP and WebSocket alike (the
/// spec's `maxLength` of `PublishRequest.body`).
pub const MAX_BODY_CHARS: usize = 4096;

/// One socket's id, unique within an instance.
pub type ConnId = u64;

/// What a socket's task is handed to send or act on.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A serialised frame, shared by every recipient.
    Frame(Arc<str>),
    /// A room message with its place in the room (history on): the socket drops it
    /// when it has it already (replayed at its subscription).
    Logged(Arc<Logged>),
    /// The socket was taken out of this room; it says so to its client with
    /// `unsubscribed` and the reason.
    Removed(RoomName, Removal),
}

/// Why a socket was taken out of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Its user was removed, or the room deleted.
    Removed,
    /// Its session dropped to aal1 in a room that requires aal2.
    MfaRequired,
}

/// A socket's queue of outgoing frames.
pub type Outbox = mpsc::Sender<Outgoing>;

/// Why a room operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("room must be 1 to 64 characters of A-Z a-z 0-9 _ - ., optionally after private:")]
    InvalidName,
    /// Public rooms have no owner and no members: only `private:` rooms are created,
    /// deleted and managed.
    #[error("public rooms have no owner or members; only private: rooms do")]
    NotPrivate,
    /// Not a member, not the owner, or an unclaimed private name: one answer for all.
    #[error("not allowed in this room")]
    Forbidden,
    /// A member whose session is at aal1, in a room that requires aal2: said only
    /// to members (a stranger gets `Forbidden` first).
    #[error(
        "this room requires a session with a second factor (aal2): sign in with TOTP or a passkey, or re-authenticate with one"
    )]
    SecondFactorRequired,
    #[error("a room with this name already exists")]
    Exists,
    #[error("no such user")]
    UnknownUser,
    /// The user added more to history lately than `DOORMAN_HISTORY_BYTES_PER_USER`
    /// allows per history TTL.
    #[error("you have published too much lately; wait before publishing again")]
    HistoryBudget,
    /// Too many messages wait to be stored.
    #[error("the server is busy; retry shortly")]
    Busy,
    /// The room was deleted while the caller, its owner a moment before, was
    /// changing it (a member added as the room went).
    #[error("the room was deleted")]
    Gone,
    #[error("the owner cannot leave a room; delete it instead")]
    OwnerCannotLeave,
    /// The caller owns `DOORMAN_MAX_ROOMS_PER_USER` rooms already.
    #[error("you own as many rooms as one user may; delete one first")]
    TooManyRooms,
    /// The user belongs to `DOORMAN_MAX_MEMBERSHIPS_PER_USER` rooms already.
    #[error("this user belongs to as many rooms as one user may")]
    TooManyMemberships,
    /// The room has `DOORMAN_MAX_ROOM_MEMBERS` members already.
    #[error("this room has as many members as a room may")]
    RoomFull,
    #[error(transparent)]
    Core(#[from] crate::auth::Error),
}

impl RoomError {
    fn db(e: sea_orm::DbErr) -> Self {
        RoomError::Core(e.into())
    }
}

/// The frames rooms send to their subscribers (the rest of the protocol is
/// `ws::protocol`; `asyncapi.json` is generated from both).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RoomFrame<'a> {
    /// A message published in a room the socket is subscribed to.
    Message {
        /// Unique per message (UUIDv7, time-ordered): a client that reconnects may
        /// use it to drop a message it has already seen.
        id: Uuid,
        room: &'a str,
        /// The sender's user id, stamped by the server from the sender's identity.
        from: UserId,
        body: &'a str,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "String", extend("format" = "date-time"))]
        sent_at: OffsetDateTime,
        /// The message's place in the room: 1, 2, 3, … within `epoch`. Keep the
        /// last one and pass it as `since` when subscribing again to get what you
        /// missed. Absent when the server keeps no history.
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// What `offset` counts in: a new epoch means the room's history was lost
        /// or reset (offsets start again at 1).
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a str>,
    },
    /// A user's first socket joined the room, or their last socket left it (counted
    /// across tabs and instances). Coalesced per room in 250 ms windows: net changes
    /// only, up to 250 ms late; apply them as set operations.
    Presence {
        room: &'a str,
        user_id: UserId,
        event: Transition,
    },
}

/// What this instance tells the others (PostgreSQL only).
#[derive(Debug)]
pub enum Relayed {
    /// A published message, serialised.
    Message { room: RoomName, frame: Arc<str> },
    /// `user` (or, with `None`, everyone) was taken out of `room`.
    Removed {
        room: RoomName,
        user: Option<UserId>,
    },
    /// This instance now holds `user` in `room` (since then), or no longer does.
    Presence {
        room: RoomName,
        user: UserId,
        since: Option<OffsetDateTime>,
    },
}

struct Subscriber {
    user: UserId,
    session: SessionId,
    outbox: Outbox,
}

#[derive(Default)]
struct Tables {
    subs: HashMap<RoomName, HashMap<ConnId, Subscriber>>,
    /// The rooms subscribed here that require aal2, as their admission said.
    aal2: std::collections::HashSet<RoomName>,
    presence: PresenceView,
    /// Rooms whose presence window is open (see [`PRESENCE_WINDOW`]), with the
    /// changes that wait for its end.
    windows: HashMap<RoomName, Vec<(UserId, Transition)>>,
}

/// Presence frames in one room go out at most once per window: the first change
/// at once, those that follow within the window together at its end, as net
/// changes (a join and a leave of one user in between cancel). So however fast a
/// user's sockets flip subscribe and unsubscribe (sixteen of them made hundreds of
/// frames a second, past any publish budget), each subscriber hears of that user at
/// most once a window, and real messages are not crowded out of its queue.
const PRESENCE_WINDOW: std::time::Duration = std::time::Duration::from_millis(250);

/// The rooms of this instance; cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    tables: Arc<Mutex<Tables>>,
    membership: Membership,
    history: History,
    /// Where changes go to reach other instances (PostgreSQL only).
    relay: Arc<OnceLock<mpsc::Sender<Relayed>>>,
}

impl Rooms {
    /// `history_writer`: a connection of its own for storing history (SQLite), or
    /// `None` to store through `db`.
    pub fn new(
        db: Db,
        caps: RoomCaps,
        history: HistorySettings,
        history_writer: Option<Db>,
    ) -> Self {
        Self {
            tables: Arc::default(),
            membership: Membership::new(db.clone(), caps),
            history: History::new(db, history_writer, history),
            relay: Arc::default(),
        }
    }

    /// Starts the history's write task and its sweep of expired messages (with
    /// history on; needs a runtime).
    pub fn start(&self) {
        if !self.history.is_on() {
            return;
        }
        let history = self.history.clone();
        let every = (history.settings().ttl / 4).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(60),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = history.sweep().await {
                    tracing::warn!(error = %e, "room history sweep failed; retrying later");
                }
            }
        });
        let here = self.clone();
        let live = self.clone();
        self.history.start(
            Arc::new(move |logged, now| {
                if now {
                    here.deliver_logged(logged)
                } else {
                    here.subscribers_here(&logged.room)
                }
            }),
            Arc::new(move |room, frame| live.send_live(room, frame.clone())),
        );
    }

    /// The history: positions, replay, pages.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Since when `user` (at `aal`) may read `room`'s history (`None`: all of it);
    /// see `Membership::admit`.
    pub async fn reads_since(
        &self,
        room: &RoomName,
        user: UserId,
        aal: Aal,
    ) -> Result<Option<OffsetDateTime>, RoomError> {
        Ok(self.membership.admit(room, user, aal).await?.since)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends every local change to `relay` too, for other instances.
    pub fn set_relay(&self, relay: mpsc::Sender<Relayed>) {
        let _ = self.relay.set(relay);
    }

    fn relay(&self, what: Relayed) {
        if let Some(relay) = self.relay.get()
            && relay.try_send(what).is_err()
        {
            tracing::warn!("relay queue full; a room event was not sent to other instances");
        }
    }

    /// The one check: whether `user`, whose session is at `aal`, may subscribe to,
    /// publish to and read `room`.
    pub async fn may_enter(
        &self,
        room: &RoomName,
        user: UserId,
        aal: Aal,
    ) -> Result<Admission, RoomError> {
        self.membership.admit(room, user, aal).await
    }

    /// Whether a socket may publish to a private room without asking again: it is
    /// subscribed to it, so it was checked when it subscribed, and a removal (or a
    /// drop to aal1 in a room that requires aal2) takes it out of the room here
    /// before this instance acts on anything else (on another instance, within the
    /// notification's delay). Otherwise the socket's publish asks
    /// [`Rooms::may_enter`].
    pub fn holds(&self, room: &RoomName, conn: ConnId) -> bool {
        room.is_private()
            && self
                .lock()
                .subs
                .get(room)
                .is_some_and(|subs| subs.contains_key(&conn))
    }

    /// Tells `room`'s subscribers that `user` joined or left: at once if the room's
    /// presence window is closed (and opens it), else at the window's end, netted
    /// against the changes already waiting.
    fn announce(&self, t: &mut Tables, room: &RoomName, user: UserId, change: Transition) {
        if let Some(waiting) = t.windows.get_mut(room) {
            // Changes of one user alternate: one waiting for this user is the
            // opposite of this one, and the two cancel.
            match waiting.iter().position(|(u, _)| *u == user) {
                Some(i) => {
                    waiting.remove(i);
                }
                None => waiting.push((user, change)),
            }
            return;
        }
        deliver_presence(t, room, user, change);
        // Outside a runtime (a unit test) every change goes out at once.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            t.windows.insert(room.clone(), Vec::new());
            runtime.spawn(close_window(Arc::downgrade(&self.tables), room.clone()));
        }
    }

    /// Subscribes a socket; returns who is present now (the subscriber included).
    /// Call [`Rooms::may_enter`] first, and again after this returns: a removal in
    /// between found no socket to take out, and the second check closes that gap.
    pub fn subscribe(
        &self,
        room: &RoomName,
        conn: ConnId,
        who: (UserId, SessionId),
        admission: Admission,
        outbox: Outbox,
    ) -> Vec<UserId> {
        let (user, session) = who;
        let now = OffsetDateTime::now_utc();
        let mut t = self.lock();
        let subs = t.subs.get(room);
        if !subs.is_some_and(|subs| subs.contains_key(&conn)) {
            let first_here = !subs.is_some_and(|subs| subs.values().any(|s| s.user == user));
            if first_here {
                // Told before the new socket is in: it sees itself in `present`.
                if t.presence.add(room, user, None, now) == Some(Transition::Join) {
                    self.announce(&mut t, room, user, Transition::Join);
                }
                self.relay(Relayed::Presence {
                    room: room.clone(),
                    user,
                    since: Some(now),
                });
            }
            t.subs.entry(room.clone()).or_default().insert(
                conn,
                Subscriber {
                    user,
                    session,
                    outbox,
                },
            );
            if admission.aal2 {
                t.aal2.insert(room.clone());
            }
        }
        t.presence
            .present(room)
            .into_iter()
            .map(|(u, _)| u)
            .collect()
    }

    /// Unsubscribes a socket; `false` if it was not subscribed.
    pub fn unsubscribe(&self, room: &RoomName, conn: ConnId) -> bool {
        let mut t = self.lock();
        let Some(sub) = t.subs.get_mut(room).and_then(|subs| subs.remove(&conn)) else {
            return false;
        };
        self.after_leaving(&mut t, room, sub.user);
        true
    }

    /// Presence bookkeeping once one of `user`'s sockets left `room` here.
    fn after_leaving(&self, t: &mut Tables, room: &RoomName, user: UserId) {
        let still_here = t
            .subs
            .get(room)
            .is_some_and(|subs| subs.values().any(|s| s.user == user));
        if t.subs.get(room).is_some_and(HashMap::is_empty) {
            t.subs.remove(room);
            t.aal2.remove(room);
        }
        if still_here {
            return;
        }
        if t.presence.remove(room, user, None) == Some(Transition::Leave) {
            self.announce(t, room, user, Transition::Leave);
        }
        self.relay(Relayed::Presence {
            room: room.clone(),
            user,
            since: None,
        });
    }

    /// Takes `user`'s sockets (every socket, with `None`) out of `room` on this
    /// instance and tells each of them. The subscription ends here, at once; the
    /// socket's own bookkeeping follows when it reads the notice.
    pub fn remove_here(&self, room: &RoomName, user: Option<UserId>) {
        let mut t = self.lock();
        self.take_out(&mut t, room, Removal::Removed, |s| {
            user.is_none_or(|u| s.user == u)
        });
    }

    /// Takes the sockets of `sessions` (which dropped to aal1) out of every room
    /// here that requires aal2, telling each (`mfa_required`). Every instance does
    /// this when it hears of the drop.
    pub fn lowered(&self, sessions: &[SessionId]) {
        if sessions.is_empty() {
            return;
        }
        let mut t = self.lock();
        let rooms: Vec<RoomName> = t.aal2.iter().cloned().collect();
        for room in rooms {
            self.take_out(&mut t, &room, Removal::MfaRequired, |s| {
                sessions.contains(&s.session)
            });
        }
    }

    /// Follows the session events: sessions that dropped to aal1 (here or, relayed,
    /// on another instance) leave the rooms that require aal2. If the listener
    /// falls behind, every such subscription's session is asked again.
    pub fn spawn_assurance_listener(&self, auth: Arc<crate::auth::Auth>) {
        use tokio::sync::broadcast::error::RecvError;
        let rooms = self.clone();
        let mut events = auth.session_events();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(crate::auth::SessionEvent::Assurance(change)) => {
                        rooms.lowered(&change.lowered);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        let sessions: Vec<SessionId> = {
                            let t = rooms.lock();
                            let mut s: Vec<SessionId> = t
                                .aal2
                                .iter()
                                .filter_map(|r| t.subs.get(r))
                                .flat_map(|subs| subs.values().map(|s| s.session))
                                .collect();
                            s.sort_by_key(|s| s.0);
                            s.dedup();
                            s
                        };
                        let mut lowered = Vec::new();
                        for s in sessions {
                            // An ended session's sockets close anyway; an outage
                            // keeps them (only a known drop takes one out).
                            if let Ok(a) = auth.current_assurance(s).await
                                && a.aal < Aal::Aal2
                            {
                                lowered.push(s);
                            }
                        }
                        rooms.lowered(&lowered);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    /// Takes the subscribers of `room` that `which` picks out of it, telling each.
    fn take_out(
        &self,
        t: &mut Tables,
        room: &RoomName,
        why: Removal,
        which: impl Fn(&Subscriber) -> bool,
    ) {
        let Some(subs) = t.subs.get_mut(room) else {
            return;
        };
        let taken: Vec<(ConnId, Subscriber)> = subs.extract_if(|_, s| which(s)).collect();
        let mut users: Vec<UserId> = Vec::new();
        for (_, sub) in taken {
            // A socket whose queue is full stopped reading: it is out of the room
            // all the same and only misses the notice.
            let _ = sub.outbox.try_send(Outgoing::Removed(room.clone(), why));
            if !users.contains(&sub.user) {
                users.push(sub.user);
            }
        }
        for u in users {
            self.after_leaving(t, room, u);
        }
    }

    /// Publishes a `message` frame to the room's subscribers here and on every
    /// other instance: at once without history, after it is stored with history
    /// (see `history`). Check [`Rooms::may_enter`] first.
    pub async fn publish(
        &self,
        room: &RoomName,
        from: UserId,
        body: &str,
    ) -> Result<(), RoomError> {
        if self.history.is_on() {
            self.history.publish(room, from, body, false).await?;
        } else {
            self.publish_live(room, from, body);
        }
        Ok(())
    }

    /// [`Rooms::publish`], waiting until the message is stored (with history on):
    /// its place, and how many sockets here got it.
    pub async fn publish_and_wait(
        &self,
        room: &RoomName,
        from: UserId,
        body: &str,
    ) -> Result<Committed, RoomError> {
        if !self.history.is_on() {
            let delivered = self.publish_live(room, from, body);
            return Ok(Committed {
                epoch: String::new(),
                offset: 0,
                delivered,
            });
        }
        self.history
            .publish(room, from, body, true)
            .await?
            .ok_or(RoomError::Busy)
    }

    /// Delivers a message without history: here and, through the relay, on every
    /// other instance. Returns how many sockets here got it.
    fn publish_live(&self, room: &RoomName, from: UserId, body: &str) -> usize {
        let frame = RoomFrame::Message {
            id: Uuid::now_v7(),
            room: room.as_str(),
            from,
            body,
            sent_at: OffsetDateTime::now_utc(),
            offset: None,
            epoch: None,
        };
        let Ok(text) = serde_json::to_string(&frame) else {
            return 0;
        };
        self.send_live(room, text.into())
    }

    /// Delivers `frame` here and, through the relay, on every other instance;
    /// returns how many sockets here got it.
    fn send_live(&self, room: &RoomName, frame: Arc<str>) -> usize {
        let delivered = self.deliver(room, &frame);
        self.relay(Relayed::Message {
            room: room.clone(),
            frame,
        });
        delivered
    }

    /// Delivers a serialised frame to this instance's subscribers; returns how many
    /// got it. A subscriber whose queue is full (it stopped reading) misses the
    /// message rather than slowing everyone else down.
    pub fn deliver(&self, room: &RoomName, frame: &Arc<str>) -> usize {
        deliver(&self.lock(), room, frame)
    }

    /// Delivers a stored message (with its place) to this instance's subscribers;
    /// returns how many got it.
    pub fn deliver_logged(&self, logged: Logged) -> usize {
        let t = self.lock();
        let Some(subs) = t.subs.get(&logged.room) else {
            return 0;
        };
        let logged = Arc::new(logged);
        subs.values()
            .filter(|s| s.outbox.try_send(Outgoing::Logged(logged.clone())).is_ok())
            .count()
    }

    /// How many sockets here are subscribed to `room`.
    pub fn subscribers_here(&self, room: &RoomName) -> usize {
        self.lock().subs.get(room).map_or(0, HashMap::len)
    }

    /// Who is present in a room, with since when.
    pub fn present(&self, room: &RoomName) -> Vec<(UserId, OffsetDateTime)> {
        self.lock().presence.present(room)
    }

    /// Another instance now holds `user` in `room`, or (with `since` `None`) no
    /// longer does.
    pub fn presence_elsewhere(
        &self,
        instance: Uuid,
        room: &RoomName,
        user: UserId,
        since: Option<OffsetDateTime>,
    ) {
        let mut t = self.lock();
        let change = match since {
            Some(since) => t.presence.add(room, user, Some(instance), since),
            None => t.presence.remove(room, user, Some(instance)),
        };
        if let Some(change) = change {
            self.announce(&mut t, room, user, change);
        }
    }

    /// Replaces what another instance holds with `held` (its full state), or with
    /// nothing when it died: users nobody holds any more leave, new ones join.
    pub fn replace_holder(&self, instance: Uuid, held: Vec<(RoomName, UserId, OffsetDateTime)>) {
        let holder: Holder = Some(instance);
        let mut t = self.lock();
        let left = t.presence.drop_holder(holder);
        let mut joined = Vec::new();
        for (room, user, since) in held {
            if t.presence.add(&room, user, holder, since) == Some(Transition::Join) {
                joined.push((room, user));
            }
        }
        for (room, user) in &left {
            // Dropped and added back: no change anyone should hear of.
            if let Some(i) = joined.iter().position(|j| j == &(room.clone(), *user)) {
                joined.swap_remove(i);
            } else {
                self.announce(&mut t, room, *user, Transition::Leave);
            }
        }
        for (room, user) in joined {
            self.announce(&mut t, &room, user, Transition::Join);
        }
    }

    /// What this instance holds, for another instance that asks.
    pub fn held_here(&self) -> Vec<(RoomName, UserId, OffsetDateTime)> {
        self.lock().presence.held_by(None)
    }

    /// Creates a private room owned by `owner`.
    pub async fn create(
        &self,
        room: &RoomName,
        owner: UserId,
        require_aal2: bool,
    ) -> Result<RoomInfo, RoomError> {
        self.membership.create(room, owner, require_aal2).await
    }

    /// The private rooms `user` owns or belongs to, by name: a page of at most
    /// `limit` after the name `after`.
    pub async fn rooms_of(
        &self,
        user: UserId,
        after: Option<&RoomName>,
        limit: usize,
    ) -> Result<Page<RoomInfo, String>, RoomError> {
        self.membership.rooms_of(user, after, limit).await
    }

    /// The members of a private room, for its members: a page of at most `limit`
    /// after the member `after` (the owner first).
    pub async fn members(
        &self,
        room: &RoomName,
        by: UserId,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Page<Member, Uuid>, RoomError> {
        self.membership.members(room, by, after, limit).await
    }

    /// Adds a member (owner only).
    pub async fn add_member(
        &self,
        room: &RoomName,
        user: UserId,
        by: UserId,
    ) -> Result<(), RoomError> {
        self.membership.add(room, user, by).await
    }

    /// Removes a member (owner, or the member leaving); their sockets are taken out
    /// of the room on every instance.
    pub async fn remove_member(
        &self,
        room: &RoomName,
        user: UserId,
        by: UserId,
    ) -> Result<(), RoomError> {
        self.membership.remove(room, user, by).await?;
        // The row is gone before anyone hears of it, so a subscribe racing this
        // fails its second check.
        self.remove_here(room, Some(user));
        self.relay(Relayed::Removed {
            room: room.clone(),
            user: Some(user),
        });
        Ok(())
    }

    /// A room whose rows are gone (deleted by its owner, or with its owner's
    /// account): every subscriber is taken out of it, here and on every other
    /// instance. A room created later under this name shows none of it: its
    /// history goes now (with what SQLite's history held of it), and a message
    /// still on its way is dropped when stored (its sender is no member of a room
    /// by that name).
    pub async fn gone(&self, room: &RoomName) {
        self.remove_here(room, None);
        if let Err(e) = self.history.forget(room).await {
            tracing::warn!(error = %e, "a deleted room's history was not dropped; it expires with its TTL");
        }
        self.relay(Relayed::Removed {
            room: room.clone(),
            user: None,
        });
    }

    /// `Forbidden` unless `user` owns the private `room` (`NotPrivate` for a public
    /// one): what deleting it asks first.
    pub async fn require_owner(&self, room: &RoomName, user: UserId) -> Result<(), RoomError> {
        self.membership.require_owner(room, user).await
    }

    /// Deletes a private room (owner only); every subscriber is taken out of it on
    /// every instance.
    pub async fn delete(&self, room: &RoomName, by: UserId) -> Result<(), RoomError> {
        self.membership.delete(room, by).await?;
        self.gone(room).await;
        Ok(())
    }
}

fn deliver(t: &Tables, room: &RoomName, frame: &Arc<str>) -> usize {
    t.subs.get(room).map_or(0, |subs| {
        subs.values()
            .filter(|s| s.outbox.try_send(Outgoing::Frame(frame.clone())).is_ok())
            .count()
    })
}

/// Sends a presence frame to the room's subscribers but `user`'s own sockets: a
/// socket of theirs in the room subscribed after the change and saw it in its
/// `present` (at once this changes nothing: a join or a leave finds none of the
/// user's sockets in the room here).
fn deliver_presence(t: &Tables, room: &RoomName, user: UserId, change: Transition) {
    let frame = RoomFrame::Presence {
        room: room.as_str(),
        user_id: user,
        event: change,
    };
    let Ok(text) = serde_json::to_string(&frame) else {
        return;
    };
    let frame: Arc<str> = text.into();
    if let Some(subs) = t.subs.get(room) {
        for s in subs.values().filter(|s| s.user != user) {
            let _ = s.outbox.try_send(Outgoing::Frame(frame.clone()));
        }
    }
}

/// Ends `room`'s presence window when it is due: sends the net changes that
/// waited, which opens the next window, or closes it when none did.
async fn close_window(tables: std::sync::Weak<Mutex<Tables>>, room: RoomName) {
    loop {
        tokio::time::sleep(PRESENCE_WINDOW).await;
        let Some(tables) = tables.upgrade() else {
            return;
        };
        let mut t = tables.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = match t.windows.get_mut(&room) {
            Some(waiting) if !waiting.is_empty() => std::mem::take(waiting),
            _ => {
                t.windows.remove(&room);
                return;
            }
        };
        for (user, change) in waiting {
            deliver_presence(&t, &room, user, change);
        }
    }
}
