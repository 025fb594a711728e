//! Several instances on one PostgreSQL database: session events, room messages,
//! removals from rooms, presence and live-socket counts travel between them as
//! *notes* over PostgreSQL's LISTEN/NOTIFY, with no broker to operate. This module
//! is the bridge (what a note says and what it does); [`notify`] only moves opaque
//! payloads on two channels (sessions, rooms) and reports when its receiving side
//! connects and disconnects.
//!
//! Each instance forwards its *local* events as notes and turns other
//! instances' notifications into local events: a remote revocation ends the session
//! in this instance's cache and then goes onto the same [`SessionBus`] the socket
//! registry follows; a remote login goes onto it as a notice; a remote room
//! message into [`Rooms::deliver`]; a remote removal into [`Rooms::remove_here`].
//! On SQLite there is one instance and none of this runs.
//!
//! Presence and socket counts are state, not events: every instance announces
//! itself every few seconds, answers a newcomer's `hello` with its whole state, and
//! an instance not heard from for [`PEER_TIMEOUT`] is taken as dead, its presence
//! and counts dropped (so `kill -9` leaves no ghost for longer than that).
//!
//! Missed notes are not missed revocations: after the receiving side of the bus
//! was disconnected (or dropped notes), the instance forgets its cached session
//! state and re-checks every live socket's session against the database; the
//! registry's periodic sweep (on every backend) bounds how long any lost event can
//! keep a revoked socket open.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use entity::room_message;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use time::OffsetDateTime;
use tokio::{
    sync::{
        broadcast::error::{RecvError, TryRecvError},
        mpsc,
    },
    time::Instant,
};
use uuid::Uuid;

mod notify;
mod parts;
mod wire;

use wire::{Read, RoomKind, RoomNote, SessionKind, SessionNote};

use crate::{
    auth::db::Db,
    auth::{
        AssuranceChange, Auth, FactorChange, Opening, RevocationReason, SessionBus, SessionEvent,
        SessionId, UserId,
    },
    rooms::{Relayed, RoomName, Rooms},
    sockets::Registry,
};

/// Room frames larger than the inline limit (less this much for the note around
/// them) travel in pieces, several notes each within that limit.
const NOTE_OVERHEAD: usize = 300;
/// Notes sent in one go at most (one statement on NOTIFY).
const BATCH: usize = 256;
/// How long rows stay in `room_messages`, which only instances of releases before
/// [`wire::RoomKind::Part`] still write (during a rolling upgrade).
const ROW_TTL: time::Duration = time::Duration::minutes(5);
/// How often an instance says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// An instance not heard from for this long is dead: its presence and socket
/// counts are dropped.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often changed socket counts are announced (coalesced: one note per tick).
const COUNTS_EVERY: Duration = Duration::from_millis(200);
/// State entries per notification, to stay under the payload limit.
const CHUNK: usize = 40;

/// Which stream a note travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Sessions,
    Rooms,
}

/// What the receiving side of the transport reports, in order.
enum Incoming {
    /// Connected; after a [`Incoming::Disconnected`], notes sent meanwhile are lost.
    Connected,
    /// The connection dropped; the transport reconnects by itself.
    Disconnected,
    /// A note, as sent.
    Note(Channel, String),
}

/// What the cluster bridge needs.
pub struct Bridge {
    pub db: Db,
    pub bus: SessionBus,
    pub rooms: Rooms,
    pub registry: Registry,
    pub auth: Arc<Auth>,
    /// How often rows of relayed room messages (written by a previous release)
    /// are pruned.
    pub sweep_every: Duration,
}

/// The bridge at work: who it is and which peers it has heard from.
struct Running {
    bridge: Bridge,
    transport: notify::PgNotify,
    instance: Uuid,
    /// Peers by when last heard from.
    peers: Mutex<HashMap<Uuid, Instant>>,
    /// Large messages from peers, piece by piece.
    parts: Mutex<parts::Joiner>,
    /// Asks the sender task to announce this instance's whole state.
    announce: mpsc::Sender<Control>,
}

/// What the room sender task is asked to send besides room events.
enum Control {
    Hello,
    State,
}

impl Bridge {
    /// Starts the relay, listener and sweep tasks when the database is PostgreSQL;
    /// does nothing otherwise.
    pub fn start(self) {
        if self.db.connection().get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return;
        }
        let instance = Uuid::new_v4();
        let pool = self.db.connection().get_postgres_connection_pool().clone();
        tracing::info!(%instance, "cluster events over PostgreSQL LISTEN/NOTIFY");
        let (incoming, received) = mpsc::channel(8192);
        let transport = notify::PgNotify::start(pool, incoming);

        let (tx, rx) = mpsc::channel(4096);
        self.rooms.set_relay(tx);
        // Stored messages travel in the transaction that stores them (see
        // `rooms::history`); their notes count on from a high start, apart from the
        // relay task's, so that no two notes of this instance are alike.
        let logged_seq = std::sync::atomic::AtomicU64::new(1 << 62);
        self.rooms.history().set_notifier(Box::new(move |batch| {
            let budget = notify::INLINE_LIMIT - NOTE_OVERHEAD;
            let payloads: Vec<String> = batch
                .iter()
                .map(|logged| {
                    let n = logged_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let inline = parts::inline_len(&logged.frame) <= budget;
                    let kind = RoomKind::Logged {
                        r: logged.room.as_str().to_owned(),
                        s: logged.offset,
                        e: logged.epoch.to_string(),
                        f: inline.then(|| logged.frame.to_string()),
                    };
                    RoomNote::new(instance, n, kind).encode()
                })
                .collect();
            (!payloads.is_empty()).then(|| notify::rooms_statement(payloads))
        }));
        self.registry.track_count_changes();
        let (announce, control) = mpsc::channel(16);
        let running = Arc::new(Running {
            bridge: self,
            transport,
            instance,
            peers: Mutex::default(),
            parts: Mutex::default(),
            announce,
        });
        tokio::spawn(relay_sessions(Arc::clone(&running)));
        tokio::spawn(relay_rooms(Arc::clone(&running), rx, control));
        tokio::spawn(listen(Arc::clone(&running), received));
        tokio::spawn(sweep(running));
    }
}

/// Tells the running instances, from a process that runs no bridge (`doorman
/// users …`), of sessions that ended and rooms that went: the same notes an
/// instance sends, from a sender no instance knows. Nothing on SQLite (one
/// instance, whose periodic re-check of its sockets' sessions then closes them).
pub(crate) async fn announce(
    db: &Db,
    ended: &[(SessionId, UserId, RevocationReason)],
    rooms_gone: &[RoomName],
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    if db.connection().get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    let sender = Uuid::new_v4();
    let sessions: Vec<String> = ended
        .iter()
        .map(|(s, u, r)| {
            let kind = SessionKind::Ended {
                s: s.0,
                u: u.0,
                r: r.as_str().to_owned(),
            };
            SessionNote::new(sender, kind).encode()
        })
        .collect();
    let rooms: Vec<String> = rooms_gone
        .iter()
        .zip(1..)
        .map(|(room, n)| {
            let kind = RoomKind::Removed {
                r: room.as_str().to_owned(),
                u: None,
            };
            RoomNote::new(sender, n, kind).encode()
        })
        .collect();
    for (channel, payloads) in [(Channel::Sessions, sessions), (Channel::Rooms, rooms)] {
        for batch in payloads.chunks(BATCH) {
            db.connection()
                .execute_raw(notify::statement(channel, batch.to_vec()))
                .await?;
        }
    }
    Ok(())
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

/// Local session events → NOTIFY. One task, so notes leave in order; what
/// queued up meanwhile leaves in one go.
async fn relay_sessions(running: Arc<Running>) {
    let mut events = running.bridge.bus.subscribe();
    // A retired key is seen by every instance itself: nothing to relay.
    let note = |event: &SessionEvent| {
        let kind = match event {
            SessionEvent::KeyRetired(_) => return None,
            SessionEvent::Ended(r) => SessionKind::Ended {
                s: r.session_id.0,
                u: r.user_id.0,
                r: r.reason.as_str().to_owned(),
            },
            SessionEvent::Opened(o) => SessionKind::Opened {
                s: o.session_id.0,
                u: o.user_id.0,
                ip: o.ip.clone(),
                ua: o.user_agent.clone(),
                at: unix_ms(o.at),
            },
            SessionEvent::Assurance(a) => SessionKind::Assurance {
                u: a.user_id.0,
                c: a.changed.iter().map(|s| s.0).collect(),
                l: a.lowered.iter().map(|s| s.0).collect(),
                f: a.factor.map(FactorChange::encode),
            },
        };
        Some(SessionNote::new(running.instance, kind).encode())
    };
    let lagged = |n| tracing::error!(missed = n, "session events not relayed");
    loop {
        let mut batch = match events.recv().await {
            Ok(event) if !event.remote() => match note(&event) {
                Some(note) => vec![note],
                None => continue,
            },
            Ok(_) => continue,
            Err(RecvError::Lagged(n)) => {
                lagged(n);
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        while batch.len() < BATCH {
            match events.try_recv() {
                Ok(event) if !event.remote() => batch.extend(note(&event)),
                Ok(_) => {}
                Err(TryRecvError::Lagged(n)) => lagged(n),
                Err(_) => break,
            }
        }
        if let Err(e) = running.transport.send(Channel::Sessions, batch).await {
            // For an end, other instances' sweeps still close the sockets, later.
            tracing::error!(error = %e, "could not publish a session event");
        }
    }
}

/// Local room events, counts, heartbeats and state → NOTIFY. One task, so an
/// instance's notes keep their order (a state snapshot never overtakes a change);
/// whatever queued up meanwhile leaves in one go.
async fn relay_rooms(
    running: Arc<Running>,
    mut rx: mpsc::Receiver<Relayed>,
    mut control: mpsc::Receiver<Control>,
) {
    let mut counts = tokio::time::interval(COUNTS_EVERY);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut seq = 0u64;
    let mut note = |kind: RoomKind| {
        seq += 1;
        RoomNote::new(running.instance, seq, kind).encode()
    };
    loop {
        let mut batch = vec![];
        tokio::select! {
            biased;
            Some(what) = rx.recv() => {
                batch.extend(room_kinds(what).into_iter().map(&mut note));
                while batch.len() < BATCH {
                    let Ok(what) = rx.try_recv() else { break };
                    batch.extend(room_kinds(what).into_iter().map(&mut note));
                }
            }
            Some(c) = control.recv() => match c {
                Control::Hello => batch.push(note(RoomKind::Hello)),
                Control::State => batch.extend(state_chunks(&running.bridge).into_iter().map(&mut note)),
            },
            _ = counts.tick() => {
                let changed = running.bridge.registry.take_changed_counts();
                for c in changed.chunks(CHUNK * 3) {
                    let c = c.iter().map(|(s, n)| (s.0, *n)).collect();
                    batch.push(note(RoomKind::Counts { c }));
                }
            }
            _ = heartbeat.tick() => batch.push(note(RoomKind::Heartbeat)),
            else => break,
        }
        // A whole state (or a burst of large messages' pieces) can be longer than a
        // batch; it still leaves in order.
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(BATCH));
            if let Err(e) = running.transport.send(Channel::Rooms, batch).await {
                tracing::error!(error = %e, "could not relay a room event");
            }
            batch = rest;
        }
    }
}

/// The notes for a local room event. A message frame too large for one note is
/// cut into pieces that leave one after another (never into a table: what a user
/// publishes must not stay in the database, and a row written for every large
/// message grew it at the publish rate, whether or not anyone elsewhere listened).
fn room_kinds(what: Relayed) -> Vec<RoomKind> {
    let budget = notify::INLINE_LIMIT - NOTE_OVERHEAD;
    vec![match what {
        Relayed::Message { room, frame } => {
            let r = room.as_str();
            if parts::inline_len(&frame) <= budget {
                RoomKind::Message {
                    r: r.to_owned(),
                    f: Some(frame.to_string()),
                    id: None,
                }
            } else {
                let Some(pieces) = parts::split(&frame, budget) else {
                    // Not with bodies of at most MAX_BODY_CHARS.
                    tracing::error!(
                        bytes = frame.len(),
                        "a room message too large to relay was not sent to other instances"
                    );
                    return vec![];
                };
                let (id, of) = (Uuid::now_v7(), pieces.len() as u8);
                return pieces
                    .into_iter()
                    .zip(0..)
                    .map(|(f, p)| RoomKind::Part {
                        r: r.to_owned(),
                        id,
                        p,
                        of,
                        f: f.to_owned(),
                    })
                    .collect();
            }
        }
        Relayed::Removed { room, user } => RoomKind::Removed {
            r: room.as_str().to_owned(),
            u: user.map(|u| u.0),
        },
        Relayed::Presence { room, user, since } => RoomKind::Presence {
            r: room.as_str().to_owned(),
            u: user.0,
            t: since.map(unix_ms),
        },
    }]
}

/// This instance's whole presence and socket counts, as notes small enough to send.
fn state_chunks(bridge: &Bridge) -> Vec<RoomKind> {
    let held: Vec<(String, Uuid, i64)> = bridge
        .rooms
        .held_here()
        .into_iter()
        .map(|(r, u, t)| (r.as_str().to_owned(), u.0, unix_ms(t)))
        .collect();
    let counts: Vec<(Uuid, usize)> = bridge
        .registry
        .counts_here()
        .into_iter()
        .map(|(s, n)| (s.0, n))
        .collect();
    let mut out = vec![];
    let mut held = held.chunks(CHUNK);
    let mut counts = counts.chunks(CHUNK * 3);
    loop {
        let (p, c) = (held.next(), counts.next());
        if p.is_none() && c.is_none() && !out.is_empty() {
            break;
        }
        out.push(RoomKind::State {
            first: out.is_empty(),
            p: p.map(<[_]>::to_vec).unwrap_or_default(),
            c: c.map(<[_]>::to_vec).unwrap_or_default(),
        });
    }
    out
}

/// NOTIFY → local events. After every gap (a reconnect) the cached session state is forgotten and the live
/// sockets are re-checked, since notes sent meanwhile are lost, and every instance
/// is asked for its state again.
async fn listen(running: Arc<Running>, mut received: mpsc::Receiver<Incoming>) {
    let mut connected_before = false;
    while let Some(incoming) = received.recv().await {
        match incoming {
            Incoming::Note(channel, payload) => handle(&running, channel, &payload).await,
            Incoming::Connected => {
                metrics::gauge!("doorman_cluster_listener_connected").set(1.0);
                if connected_before {
                    metrics::counter!("doorman_cluster_reconnects_total").increment(1);
                    tracing::info!("cluster listener reconnected; re-checking live sockets");
                    after_gap(&running);
                }
                connected_before = true;
                // Pieces of a message may have been lost meanwhile.
                running
                    .parts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                // Others may have missed this instance's changes, and it theirs.
                let _ = running.announce.try_send(Control::State);
                let _ = running.announce.try_send(Control::Hello);
            }
            Incoming::Disconnected => {
                tracing::warn!("cluster listener connection lost; reconnecting");
                metrics::gauge!("doorman_cluster_listener_connected").set(0.0);
            }
        }
    }
}

/// Notes were lost: believe no cached session state, and re-check every live
/// socket's session (in its own task: notes must keep flowing meanwhile, and the
/// re-check retries until the database answers it).
fn after_gap(running: &Arc<Running>) {
    running.bridge.auth.forget_cached_sessions();
    let running = Arc::clone(running);
    tokio::spawn(async move {
        let bridge = &running.bridge;
        bridge.registry.recheck_until_complete(&bridge.auth).await
    });
}

async fn handle(running: &Running, channel: Channel, payload: &str) {
    let bridge = &running.bridge;
    match channel {
        Channel::Sessions => {
            let Read::Note(note) = SessionNote::read(payload) else {
                return;
            };
            if note.o == running.instance {
                return;
            }
            match note.event {
                SessionKind::Ended { s, u, r } => bridge.auth.revoked_elsewhere(
                    SessionId(s),
                    UserId(u),
                    RevocationReason::parse(&r).unwrap_or(RevocationReason::Revoked),
                ),
                SessionKind::Opened { s, u, ip, ua, at } => bridge.auth.opened_elsewhere(Opening {
                    session_id: SessionId(s),
                    user_id: UserId(u),
                    ip,
                    user_agent: ua,
                    at: from_unix_ms(at),
                    remote: true,
                }),
                SessionKind::Assurance { u, c, l, f } => {
                    bridge.auth.assurance_changed_elsewhere(AssuranceChange {
                        user_id: UserId(u),
                        changed: c.into_iter().map(SessionId).collect(),
                        lowered: l.into_iter().map(SessionId).collect(),
                        factor: f.as_deref().and_then(FactorChange::decode),
                        remote: true,
                    })
                }
            }
        }
        Channel::Rooms => {
            let Read::Note(note) = RoomNote::read(payload) else {
                return;
            };
            let from = note.o;
            if from == running.instance {
                // A stored message: this instance delivers its own as every other
                // does, from the notification, in the room's offset order.
                if let RoomKind::Logged { .. } = note.kind {
                    handle_room_note(running, from, note.kind).await;
                }
                return;
            }
            running
                .peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(from, Instant::now());
            handle_room_note(running, from, note.kind).await;
        }
    }
}

async fn handle_room_note(running: &Running, from: Uuid, kind: RoomKind) {
    let bridge = &running.bridge;
    let room = |r: &str| RoomName::parse(r).ok();
    match kind {
        RoomKind::Message { r, f, id } => {
            let Some(room) = room(&r) else { return };
            let frame = match (f, id) {
                (Some(frame), _) => frame,
                // An instance of the release before pieces (a rolling upgrade).
                (None, Some(id)) => {
                    match room_message::Entity::find_by_id(id).one(&bridge.db).await {
                        Ok(Some(row)) => row.frame,
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not load a relayed room message");
                            return;
                        }
                    }
                }
                (None, None) => return,
            };
            bridge.rooms.deliver(&room, &frame.into());
        }
        RoomKind::Part { r, id, p, of, f } => {
            let whole = running.parts.lock().unwrap_or_else(|e| e.into_inner()).add(
                from,
                parts::Piece {
                    room: r,
                    id,
                    p,
                    of,
                    f,
                },
            );
            if let Some((r, frame)) = whole
                && let Some(room) = room(&r)
            {
                bridge.rooms.deliver(&room, &frame.into());
            }
        }
        RoomKind::Logged { r, s, e, f } => {
            let Some(room) = room(&r) else { return };
            let frame = match f {
                Some(frame) => frame,
                None => match bridge.rooms.history().at(&room, s).await {
                    Ok(Some(kept)) => match crate::rooms::message_frame(&room, Some(&e), &kept) {
                        Some(frame) => frame,
                        None => return,
                    },
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not load a stored room message");
                        return;
                    }
                },
            };
            bridge.rooms.deliver_logged(crate::rooms::Logged {
                room,
                epoch: e.into(),
                offset: s,
                frame: frame.into(),
            });
        }
        RoomKind::Removed { r, u } => {
            if let Some(room) = room(&r) {
                bridge.rooms.remove_here(&room, u.map(UserId));
            }
        }
        RoomKind::Presence { r, u, t } => {
            if let Some(room) = room(&r) {
                bridge
                    .rooms
                    .presence_elsewhere(from, &room, UserId(u), t.map(from_unix_ms));
            }
        }
        RoomKind::Counts { c } => {
            let c: Vec<(SessionId, usize)> =
                c.into_iter().map(|(s, n)| (SessionId(s), n)).collect();
            bridge.registry.counts_elsewhere(from, &c, false);
        }
        RoomKind::State { first, p, c } => {
            let held: Vec<_> = p
                .into_iter()
                .filter_map(|(r, u, t)| Some((room(&r)?, UserId(u), from_unix_ms(t))))
                .collect();
            let c: Vec<(SessionId, usize)> =
                c.into_iter().map(|(s, n)| (SessionId(s), n)).collect();
            if first {
                bridge.rooms.replace_holder(from, held);
            } else {
                for (room, user, since) in held {
                    bridge
                        .rooms
                        .presence_elsewhere(from, &room, user, Some(since));
                }
            }
            bridge.registry.counts_elsewhere(from, &c, first);
        }
        RoomKind::Hello => {
            let _ = running.announce.try_send(Control::State);
        }
        RoomKind::Heartbeat => {}
    }
}

/// Periodically drops peers not heard from and old rows of relayed messages (left
/// by instances of a previous release; the registry's own sweep re-checks sockets).
async fn sweep(running: Arc<Running>) {
    let bridge = &running.bridge;
    let mut prune = tokio::time::interval(bridge.sweep_every);
    let mut peers = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = peers.tick() => {
                let dead: Vec<Uuid> = {
                    let mut peers = running.peers.lock().unwrap_or_else(|e| e.into_inner());
                    let dead = peers
                        .iter()
                        .filter(|(_, seen)| seen.elapsed() > PEER_TIMEOUT)
                        .map(|(id, _)| *id)
                        .collect::<Vec<_>>();
                    for id in &dead {
                        peers.remove(id);
                    }
                    dead
                };
                running.parts.lock().unwrap_or_else(|e| e.into_inner()).forget_all(&dead);
                for id in dead {
                    tracing::warn!(instance = %id, "instance not heard from; dropping its presence");
                    bridge.rooms.replace_holder(id, Vec::new());
                    bridge.registry.counts_elsewhere(id, &[], true);
                }
            }
            _ = prune.tick() => {
                let cutoff = OffsetDateTime::now_utc() - ROW_TTL;
                if let Err(e) = room_message::Entity::delete_many()
                    .filter(room_message::Column::CreatedAt.lt(cutoff))
                    .exec(&bridge.db)
                    .await
                {
                    tracing::warn!(error = %e, "could not prune relayed room messages");
                }
            }
        }
    }
}
