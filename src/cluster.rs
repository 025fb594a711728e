//! Several instances on one PostgreSQL database: session events, room messages,
//! removals from rooms, presence and live-socket counts travel between them over
//! LISTEN/NOTIFY, with no broker to operate.
//!
//! Each instance forwards its *local* events as notifications and turns other
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
//! Missed notifications are not missed revocations: after the listening connection
//! drops, the instance reconnects with backoff and re-checks every live socket's
//! session against the database; the registry's periodic sweep (on every backend)
//! bounds how long any lost event can keep a revoked socket open.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use entity::room_message;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set,
    sqlx::{PgPool, postgres::PgListener},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::{
    sync::{broadcast::error::RecvError, mpsc},
    time::Instant,
};
use uuid::Uuid;

use crate::{
    auth::db::Db,
    auth::{Auth, Opening, RevocationReason, SessionBus, SessionEvent, SessionId, UserId},
    rooms::{Relayed, RoomName, Rooms},
    ws::Registry,
};

const SESSIONS: &str = "doorman_sessions";
const ROOMS: &str = "doorman_rooms";
/// NOTIFY payloads must stay under 8000 bytes; larger frames go through the table.
const INLINE_LIMIT: usize = 7000;
/// How long relayed rows stay in `room_messages`.
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

/// A session event on its way between instances.
#[derive(Serialize, Deserialize)]
struct SessionNote {
    /// The instance it happened on.
    o: Uuid,
    #[serde(flatten)]
    event: SessionKind,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "k")]
enum SessionKind {
    /// A session ended.
    #[serde(rename = "end")]
    Ended { s: Uuid, u: Uuid, r: String },
    /// A session opened.
    #[serde(rename = "open")]
    Opened {
        s: Uuid,
        u: Uuid,
        ip: Option<String>,
        ua: Option<String>,
        /// Unix milliseconds.
        at: i64,
    },
}

/// A room event or a piece of shared state on its way between instances.
#[derive(Serialize, Deserialize)]
struct RoomNote {
    o: Uuid,
    #[serde(flatten)]
    kind: RoomKind,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "k")]
enum RoomKind {
    /// A message: the frame itself when small enough, or the `room_messages` row
    /// that holds it.
    #[serde(rename = "msg")]
    Message {
        r: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        f: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Uuid>,
    },
    /// `u` (everyone, without) was taken out of room `r`.
    #[serde(rename = "rm")]
    Removed { r: String, u: Option<Uuid> },
    /// The sender now holds `u` in `r` since `t` (unix ms), or (without `t`) not.
    #[serde(rename = "pr")]
    Presence { r: String, u: Uuid, t: Option<i64> },
    /// Live-socket counts per session on the sender, absolute.
    #[serde(rename = "sc")]
    Counts { c: Vec<(Uuid, usize)> },
    /// The sender's whole state, in chunks; the first replaces what was known.
    #[serde(rename = "st")]
    State {
        first: bool,
        p: Vec<(String, Uuid, i64)>,
        c: Vec<(Uuid, usize)>,
    },
    /// A newcomer (or a reconnected instance) asks everyone for their state.
    #[serde(rename = "hi")]
    Hello,
    /// Still alive.
    #[serde(rename = "hb")]
    Heartbeat,
}

/// What the cluster bridge needs.
pub struct Bridge {
    pub db: Db,
    pub bus: SessionBus,
    pub rooms: Rooms,
    pub registry: Registry,
    pub auth: Arc<Auth>,
    /// How often old relayed room messages are pruned.
    pub sweep_every: Duration,
}

/// The bridge at work: who it is and which peers it has heard from.
struct Running {
    bridge: Bridge,
    instance: Uuid,
    /// Peers by when last heard from.
    peers: Mutex<HashMap<Uuid, Instant>>,
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

        let (tx, rx) = mpsc::channel(4096);
        self.rooms.set_relay(tx);
        self.registry.track_count_changes();
        let (announce, control) = mpsc::channel(16);
        tokio::spawn(relay_sessions(pool.clone(), instance, self.bus.clone()));
        let running = Arc::new(Running {
            bridge: self,
            instance,
            peers: Mutex::default(),
            announce,
        });
        tokio::spawn(relay_rooms(Arc::clone(&running), pool.clone(), rx, control));
        tokio::spawn(listen(Arc::clone(&running), pool));
        tokio::spawn(sweep(running));
    }
}

async fn notify(pool: &PgPool, channel: &str, payload: &str) -> Result<(), sea_orm::sqlx::Error> {
    sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await
        .map(|_| ())
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

/// Local session events → NOTIFY. One task, so notifications leave in order.
async fn relay_sessions(pool: PgPool, instance: Uuid, bus: SessionBus) {
    let mut events = bus.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(event) if !event.remote() => event,
            Ok(_) => continue,
            Err(RecvError::Lagged(n)) => {
                tracing::error!(missed = n, "session events not relayed");
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        let kind = match &event {
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
        };
        let payload = serde_json::to_string(&SessionNote {
            o: instance,
            event: kind,
        })
        .unwrap_or_default();
        if let Err(e) = notify(&pool, SESSIONS, &payload).await {
            // For an end, other instances' sweeps still close the sockets, later.
            tracing::error!(error = %e, "could not publish a session event");
        }
    }
}

/// Local room events, counts, heartbeats and state → NOTIFY. One task, so an
/// instance's notes keep their order (a state snapshot never overtakes a change).
async fn relay_rooms(
    running: Arc<Running>,
    pool: PgPool,
    mut rx: mpsc::Receiver<Relayed>,
    mut control: mpsc::Receiver<Control>,
) {
    let mut counts = tokio::time::interval(COUNTS_EVERY);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let send = async |kind: RoomKind| {
        let payload = serde_json::to_string(&RoomNote {
            o: running.instance,
            kind,
        })
        .unwrap_or_default();
        if let Err(e) = notify(&pool, ROOMS, &payload).await {
            tracing::error!(error = %e, "could not relay a room event");
        }
    };
    loop {
        tokio::select! {
            biased;
            Some(what) = rx.recv() => {
                if let Some(kind) = room_kind(&running.bridge.db, what).await {
                    send(kind).await;
                }
            }
            Some(c) = control.recv() => match c {
                Control::Hello => send(RoomKind::Hello).await,
                Control::State => {
                    for kind in state_chunks(&running.bridge) {
                        send(kind).await;
                    }
                }
            },
            _ = counts.tick() => {
                let changed = running.bridge.registry.take_changed_counts();
                for c in changed.chunks(CHUNK * 3) {
                    let c = c.iter().map(|(s, n)| (s.0, *n)).collect();
                    send(RoomKind::Counts { c }).await;
                }
            }
            _ = heartbeat.tick() => send(RoomKind::Heartbeat).await,
            else => break,
        }
    }
}

/// The note for a local room event (a large message goes into the table first).
async fn room_kind(db: &Db, what: Relayed) -> Option<RoomKind> {
    Some(match what {
        Relayed::Message { room, frame } => {
            if frame.len() + 200 <= INLINE_LIMIT {
                RoomKind::Message {
                    r: room.as_str().to_owned(),
                    f: Some(frame.to_string()),
                    id: None,
                }
            } else {
                let id = Uuid::now_v7();
                let stored = room_message::ActiveModel {
                    id: Set(id),
                    room: Set(room.as_str().to_owned()),
                    frame: Set(frame.to_string()),
                    created_at: Set(OffsetDateTime::now_utc()),
                }
                .insert(db)
                .await;
                if let Err(e) = stored {
                    tracing::error!(error = %e, "could not store a room message for other instances");
                    return None;
                }
                RoomKind::Message {
                    r: room.as_str().to_owned(),
                    f: None,
                    id: Some(id),
                }
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
    })
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

/// NOTIFY → local events, reconnecting with backoff. After every reconnect the
/// live sockets are re-checked, since notifications sent meanwhile are lost, and
/// every instance is asked for its state again.
async fn listen(running: Arc<Running>, pool: PgPool) {
    let bridge = &running.bridge;
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, ?backoff, "cluster listener cannot connect; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen_all([SESSIONS, ROOMS]).await {
            tracing::warn!(error = %e, "cluster listener cannot LISTEN; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(100);
        metrics::gauge!("doorman_cluster_listener_connected").set(1.0);
        if connected_before {
            metrics::counter!("doorman_cluster_reconnects_total").increment(1);
            tracing::info!("cluster listener reconnected; re-checking live sockets");
            // Events sent meanwhile are lost: believe no cached session state.
            bridge.auth.forget_cached_sessions();
            // In its own task: notifications must keep flowing meanwhile, and the
            // re-check retries until the database answers it.
            let running = Arc::clone(&running);
            tokio::spawn(async move {
                let bridge = &running.bridge;
                bridge.registry.recheck_until_complete(&bridge.auth).await
            });
        }
        connected_before = true;
        // Others may have missed this instance's changes, and it theirs.
        let _ = running.announce.try_send(Control::State);
        let _ = running.announce.try_send(Control::Hello);
        // `try_recv` reports a lost connection as `None` instead of reconnecting
        // silently, so the re-check above always follows a gap.
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => handle(&running, n.channel(), n.payload()).await,
                Ok(None) => {
                    tracing::warn!("cluster listener connection lost; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster listener failed; reconnecting");
                    break;
                }
            }
        }
        metrics::gauge!("doorman_cluster_listener_connected").set(0.0);
    }
}

async fn handle(running: &Running, channel: &str, payload: &str) {
    let bridge = &running.bridge;
    match channel {
        SESSIONS => {
            let Ok(note) = serde_json::from_str::<SessionNote>(payload) else {
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
            }
        }
        ROOMS => {
            let Ok(note) = serde_json::from_str::<RoomNote>(payload) else {
                return;
            };
            let from = note.o;
            if from == running.instance {
                return;
            }
            running
                .peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(from, Instant::now());
            handle_room_note(running, from, note.kind).await;
        }
        _ => {}
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

/// Periodically drops old relayed rows and peers not heard from (the registry's
/// own sweep re-checks sockets).
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
