//! Several instances on one PostgreSQL database: revocations and room messages
//! travel between them over LISTEN/NOTIFY, with no broker to operate.
//!
//! Each instance forwards its *local* revocations and room messages as
//! notifications and turns other instances' notifications into local events: a
//! remote revocation ends the session in this instance's cache and then goes onto
//! the same [`RevocationBus`] the socket registry follows, a remote room message
//! into [`Rooms::deliver`]. On
//! SQLite there is one instance and none of this runs.
//!
//! Missed notifications are not missed revocations: after the listening connection
//! drops, the instance reconnects with backoff and re-checks every live socket's
//! session against the database; the registry's periodic sweep (on every backend)
//! bounds how long any lost event can keep a revoked socket open.

use std::{sync::Arc, time::Duration};

use entity::room_message;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set,
    sqlx::{PgPool, postgres::PgListener},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use uuid::Uuid;

use crate::{
    auth::db::Db,
    auth::{Auth, RevocationBus, RevocationReason, SessionId, UserId},
    rooms::{Relayed, RoomName, Rooms},
    ws::Registry,
};

const REVOCATIONS: &str = "doorman_revocations";
const ROOMS: &str = "doorman_rooms";
/// NOTIFY payloads must stay under 8000 bytes; larger frames go through the table.
const INLINE_LIMIT: usize = 7000;
/// How long relayed rows stay in `room_messages`.
const ROW_TTL: time::Duration = time::Duration::minutes(5);

#[derive(Serialize, Deserialize)]
struct RevocationNote {
    /// The instance that revoked.
    o: Uuid,
    s: Uuid,
    u: Uuid,
    r: String,
}

#[derive(Serialize, Deserialize)]
struct RoomNote {
    o: Uuid,
    r: String,
    /// The frame itself, when small enough…
    #[serde(skip_serializing_if = "Option::is_none")]
    f: Option<String>,
    /// …or the `room_messages` row that holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
}

/// What the cluster bridge needs.
pub struct Bridge {
    pub db: Db,
    pub bus: RevocationBus,
    pub rooms: Rooms,
    pub registry: Registry,
    pub auth: Arc<Auth>,
    /// How often old relayed room messages are pruned.
    pub sweep_every: Duration,
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
        tokio::spawn(relay_rooms(self.db.clone(), pool.clone(), instance, rx));
        tokio::spawn(relay_revocations(pool.clone(), instance, self.bus.clone()));

        let this = Arc::new(self);
        tokio::spawn(listen(Arc::clone(&this), pool, instance));
        tokio::spawn(sweep(this));
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

/// Local revocations → NOTIFY. One task, so notifications leave in revocation order.
async fn relay_revocations(pool: PgPool, instance: Uuid, bus: RevocationBus) {
    let mut events = bus.subscribe();
    loop {
        match events.recv().await {
            Ok(event) if !event.remote => {
                let note = RevocationNote {
                    o: instance,
                    s: event.session_id.0,
                    u: event.user_id.0,
                    r: event.reason.as_str().to_owned(),
                };
                let payload = serde_json::to_string(&note).unwrap_or_default();
                if let Err(e) = notify(&pool, REVOCATIONS, &payload).await {
                    // Other instances' sweeps still close the sockets, later.
                    tracing::error!(error = %e, session_id = %event.session_id, "could not publish a revocation");
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => tracing::error!(missed = n, "revocations not relayed"),
            Err(RecvError::Closed) => break,
        }
    }
}

/// Local room messages → NOTIFY (inline, or through `room_messages` when large).
/// One task, so a publisher's messages keep their order.
async fn relay_rooms(db: Db, pool: PgPool, instance: Uuid, mut rx: mpsc::Receiver<Relayed>) {
    while let Some(Relayed { room, frame }) = rx.recv().await {
        let mut note = RoomNote {
            o: instance,
            r: room.as_str().to_owned(),
            f: Some(frame.to_string()),
            id: None,
        };
        let mut payload = serde_json::to_string(&note).unwrap_or_default();
        if payload.len() > INLINE_LIMIT {
            let id = Uuid::now_v7();
            let stored = room_message::ActiveModel {
                id: Set(id),
                room: Set(room.as_str().to_owned()),
                frame: Set(frame.to_string()),
                created_at: Set(OffsetDateTime::now_utc()),
            }
            .insert(&db)
            .await;
            if let Err(e) = stored {
                tracing::error!(error = %e, "could not store a room message for other instances");
                continue;
            }
            note.f = None;
            note.id = Some(id);
            payload = serde_json::to_string(&note).unwrap_or_default();
        }
        if let Err(e) = notify(&pool, ROOMS, &payload).await {
            tracing::error!(error = %e, "could not relay a room message");
        }
    }
}

/// NOTIFY → local events, reconnecting with backoff. After every reconnect the
/// live sockets are re-checked, since notifications sent meanwhile are lost.
async fn listen(bridge: Arc<Bridge>, pool: PgPool, instance: Uuid) {
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
        if let Err(e) = listener.listen_all([REVOCATIONS, ROOMS]).await {
            tracing::warn!(error = %e, "cluster listener cannot LISTEN; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(100);
        if connected_before {
            tracing::info!("cluster listener reconnected; re-checking live sockets");
            // Events sent meanwhile are lost: believe no cached session state.
            bridge.auth.forget_cached_sessions();
            // In its own task: notifications must keep flowing meanwhile, and the
            // re-check retries until the database answers it.
            let bridge = Arc::clone(&bridge);
            tokio::spawn(async move { bridge.registry.recheck_until_complete(&bridge.auth).await });
        }
        connected_before = true;
        // `try_recv` reports a lost connection as `None` instead of reconnecting
        // silently, so the re-check above always follows a gap.
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => handle(&bridge, instance, n.channel(), n.payload()).await,
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
    }
}

async fn handle(bridge: &Bridge, instance: Uuid, channel: &str, payload: &str) {
    match channel {
        REVOCATIONS => {
            let Ok(note) = serde_json::from_str::<RevocationNote>(payload) else {
                return;
            };
            if note.o == instance {
                return;
            }
            bridge.auth.revoked_elsewhere(
                SessionId(note.s),
                UserId(note.u),
                RevocationReason::parse(&note.r).unwrap_or(RevocationReason::Revoked),
            );
        }
        ROOMS => {
            let Ok(note) = serde_json::from_str::<RoomNote>(payload) else {
                return;
            };
            if note.o == instance {
                return;
            }
            let Ok(room) = RoomName::parse(&note.r) else {
                return;
            };
            let frame = match (note.f, note.id) {
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
        _ => {}
    }
}

/// Periodically drops old relayed rows (the registry's own sweep re-checks sockets).
async fn sweep(bridge: Arc<Bridge>) {
    let mut tick = tokio::time::interval(bridge.sweep_every);
    tick.tick().await;
    loop {
        tick.tick().await;
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
