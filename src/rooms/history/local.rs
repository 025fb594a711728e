//! Room history on SQLite (one instance): offsets given out in memory, messages
//! delivered at once by the task that publishes them and stored behind, many to a
//! transaction.
//!
//! Why: on SQLite a transaction per message (or per the few that queue while one
//! commits) cost seven to eight times the publish itself (bench row
//! `ws_publish_history`), and a hop through a write task per message still cost
//! 1.6 times. Here a public room's message costs a lock, its place and a share of a
//! transaction taken every [`FLUSH_AFTER`]. A private room's messages still go
//! through the write task, which asks once per batch whether their senders are
//! still members, then place them the same way.
//!
//! What keeps it right:
//! - a message is placed and delivered under one lock: a room's offsets are given
//!   once each and delivered in their order;
//! - a position is read only after what was placed is stored ([`Local::flush`]),
//!   so replay finds every offset the position covers;
//! - a deleted room's place and unstored messages go with it, after any flush
//!   under way ([`Local::forget`]), so nothing of it is stored after its history
//!   was dropped;
//! - before the first message is placed the database is marked unclean
//!   (`history_writer`, through the main connection, which syncs each commit); a
//!   stop that stored everything marks it clean. A start that finds it unclean (a
//!   crash: messages were delivered and never stored, and their offsets would be
//!   given again) gives every room a new epoch, so clients that had them are told
//!   `epoch_changed` and refetch. Nothing is placed before that check;
//! - a flush that fails keeps its rows for the next (at most `QUEUE` of them; the
//!   oldest are dropped, and replay over their offsets answers `too_old`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::Duration,
};

use entity::room_log;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, Statement, Value};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use super::{
    Committed, Deliver, Inner, Kept, Logged, Pending, QUEUE, RoomError, RoomName, forget,
    message_frame, new_epoch, sweep, to_i64,
};
use crate::auth::UserId;

/// How long a placed message waits to be stored (with others): under load a
/// transaction then carries hundreds of messages.
const FLUSH_AFTER: Duration = Duration::from_millis(10);
/// Retry after a failed flush.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Rows one `INSERT` carries at most (six values each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 512;

/// A room's epoch and the last offset given out in it.
#[derive(Clone)]
struct Place {
    epoch: Arc<str>,
    last: u64,
}

/// A message placed and delivered, not yet stored.
struct Row {
    room: RoomName,
    offset: u64,
    id: uuid::Uuid,
    from: UserId,
    body: String,
    sent_at: OffsetDateTime,
}

#[derive(Default)]
struct State {
    places: HashMap<RoomName, Place>,
    unwritten: Vec<Row>,
    /// Whether the database is marked unclean (messages may be placed and not
    /// stored).
    marked: bool,
    /// Counts forgets and sweeps: a place read from the database before one is not
    /// kept after it.
    generation: u64,
}

/// The SQLite history's places and unstored rows.
pub(super) struct Local {
    state: Mutex<State>,
    /// Held while rows are being stored: a flush waits for the one under way, a
    /// forget for any that may still write the room's rows.
    storing: tokio::sync::Mutex<()>,
    /// Wakes the flush task when rows start waiting.
    due: Notify,
    /// Set once the last run's end was checked (see the module docs).
    ready: watch::Sender<bool>,
    deliver: OnceLock<Deliver>,
}

impl Local {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::default(),
            storing: tokio::sync::Mutex::new(()),
            due: Notify::new(),
            ready: watch::Sender::new(false),
            deliver: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the flush task (which first checks how the last run ended);
    /// `deliver` hands placed messages to this instance's subscribers.
    pub(super) fn start(inner: &Arc<Inner>, deliver: Deliver) {
        let Some(local) = &inner.local else { return };
        if local.deliver.set(deliver).is_err() {
            return;
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let Some(local) = &inner.local else { return };
            local.begin(&inner).await;
            loop {
                local.due.notified().await;
                tokio::time::sleep(FLUSH_AFTER).await;
                if !local.flush(&inner).await {
                    tokio::time::sleep(RETRY_AFTER).await;
                    local.due.notify_one();
                }
            }
        });
    }

    /// At start: a database left unclean gives every room a new epoch. Retried
    /// until the database answers; nothing is placed before.
    async fn begin(&self, inner: &Inner) {
        while let Err(e) = recover(inner).await {
            tracing::warn!(error = %e, "room history could not read how the last run stopped; retrying");
            tokio::time::sleep(RETRY_AFTER).await;
        }
        self.ready.send_replace(true);
    }

    /// Gives a message its room's next offset, delivers it here and keeps it to be
    /// stored. Whether its sender may publish there was asked before.
    pub(super) async fn publish(&self, inner: &Inner, p: Pending) -> Result<Committed, RoomError> {
        if !*self.ready.borrow() {
            let mut ready = self.ready.subscribe();
            let _ = ready.wait_for(|r| *r).await;
        }
        if !self.lock().marked {
            inner
                .db
                .execute_raw(mark_statement(false))
                .await
                .map_err(RoomError::db)?;
            self.lock().marked = true;
        }
        let deliver = self.deliver.get().ok_or(RoomError::Busy)?;
        // A room seen for the first time (or again after a sweep): its place is read
        // outside the lock, and kept unless a forget or sweep came in between.
        for _ in 0..3 {
            let generation = {
                let mut state = self.lock();
                if state.places.contains_key(&p.room) {
                    return self.place(&mut state, p, deliver);
                }
                state.generation
            };
            let stored = room_log::Entity::find_by_id(p.room.as_str().to_owned())
                .one(&inner.writer)
                .await
                .map_err(RoomError::db)?;
            let place = match stored {
                Some(r) => Place {
                    epoch: r.epoch.into(),
                    last: r.last_offset.max(0) as u64,
                },
                None => Place {
                    epoch: new_epoch().into(),
                    last: 0,
                },
            };
            let mut state = self.lock();
            if state.generation == generation {
                state.places.entry(p.room.clone()).or_insert(place);
            }
        }
        Err(RoomError::Busy)
    }

    /// [`Local::publish`] under the lock, the room's place known.
    fn place(
        &self,
        state: &mut State,
        p: Pending,
        deliver: &Deliver,
    ) -> Result<Committed, RoomError> {
        let place = state.places.get_mut(&p.room).ok_or(RoomError::Busy)?;
        let kept = Kept {
            offset: place.last + 1,
            id: p.id,
            from: p.from,
            body: p.body,
            sent_at: p.sent_at,
        };
        let frame = message_frame(&p.room, Some(&place.epoch), &kept).ok_or(RoomError::Busy)?;
        place.last = kept.offset;
        let epoch = place.epoch.clone();
        // Delivered under the lock: a room's messages reach sockets in offset order.
        let delivered = deliver(
            Logged {
                room: p.room.clone(),
                epoch: epoch.clone(),
                offset: kept.offset,
                frame: frame.into(),
            },
            true,
        );
        if state.unwritten.is_empty() {
            self.due.notify_one();
        }
        if state.unwritten.len() >= QUEUE {
            // Storing has failed for a while: the oldest go (replay over them
            // answers too_old).
            state.unwritten.drain(..QUEUE / 4);
        }
        state.unwritten.push(Row {
            room: p.room,
            offset: kept.offset,
            id: kept.id,
            from: kept.from,
            body: kept.body,
            sent_at: kept.sent_at,
        });
        Ok(Committed {
            epoch: epoch.to_string(),
            offset: kept.offset,
            delivered,
        })
    }

    /// Stores what is placed and not stored yet, after any flush under way;
    /// whether it was stored.
    pub(super) async fn flush(&self, inner: &Inner) -> bool {
        let _storing = self.storing.lock().await;
        self.flush_held(inner).await
    }

    /// [`Local::flush`] with `storing` held: the rows in one transaction, each
    /// room's position, and the trim of what falls out of its size.
    async fn flush_held(&self, inner: &Inner) -> bool {
        let (rows, places) = {
            let mut state = self.lock();
            if state.unwritten.is_empty() {
                return true;
            }
            let rows = std::mem::take(&mut state.unwritten);
            let mut places: Vec<(RoomName, Place)> = Vec::new();
            for row in &rows {
                if !places.iter().any(|(r, _)| r == &row.room)
                    && let Some(place) = state.places.get(&row.room)
                {
                    places.push((row.room.clone(), place.clone()));
                }
            }
            (rows, places)
        };
        let statements = statements(&rows, &places, u64::from(inner.settings.size));
        let stored = inner
            .writer
            .write_transaction(async |txn| {
                for statement in statements {
                    txn.execute_raw(statement).await?;
                }
                Ok(())
            })
            .await;
        match stored {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, messages = rows.len(), "room history could not be stored; retrying");
                let mut state = self.lock();
                // Back in front of what was placed meanwhile, in offset order; a
                // room forgotten meanwhile keeps none.
                let later = std::mem::take(&mut state.unwritten);
                let mut rows: Vec<Row> = rows
                    .into_iter()
                    .filter(|r| state.places.contains_key(&r.room))
                    .collect();
                rows.extend(later);
                let over = rows.len().saturating_sub(QUEUE);
                rows.drain(..over);
                state.unwritten = rows;
                false
            }
        }
    }

    /// Drops a deleted room's place and its messages, stored or not.
    pub(super) async fn forget(&self, inner: &Inner, room: &RoomName) -> Result<(), DbErr> {
        let _storing = self.storing.lock().await;
        {
            let mut state = self.lock();
            state.places.remove(room);
            state.unwritten.retain(|r| &r.room != room);
            state.generation += 1;
        }
        forget(&inner.writer, room).await
    }

    /// Drops what has outlived the TTL (after storing what is held), and the
    /// places read so far: a sweep may drop idle rooms' positions.
    pub(super) async fn sweep(&self, inner: &Inner) -> Result<u64, DbErr> {
        let _storing = self.storing.lock().await;
        self.flush_held(inner).await;
        let swept = sweep(&inner.writer, inner.settings.ttl).await;
        let mut state = self.lock();
        // Only rooms with nothing waiting: their places are read again when used.
        let waiting: Vec<RoomName> = state.unwritten.iter().map(|r| r.room.clone()).collect();
        state.places.retain(|room, _| waiting.contains(room));
        state.generation += 1;
        swept
    }

    /// Stores what is held and, if nothing is left unstored, marks the database
    /// clean: the server is stopping.
    pub(super) async fn close(&self, inner: &Inner) {
        let _storing = self.storing.lock().await;
        self.flush_held(inner).await;
        let clean = {
            let state = self.lock();
            state.marked && state.unwritten.is_empty()
        };
        if !clean {
            return;
        }
        match inner.db.execute_raw(mark_statement(true)).await {
            Ok(_) => self.lock().marked = false,
            Err(e) => {
                tracing::warn!(error = %e, "room history could not note a clean stop; the next start gives rooms new epochs");
            }
        }
    }
}

/// The statements that store `rows`: each room's position from `places`, the rows
/// its size keeps (a burst larger than it stores its newest), and the trim.
fn statements(rows: &[Row], places: &[(RoomName, Place)], size: u64) -> Vec<Statement> {
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    if places.is_empty() {
        return out;
    }
    let mut values = Vec::with_capacity(places.len() * 4);
    for (room, place) in places {
        values.extend([
            Value::from(room.as_str()),
            Value::from(&*place.epoch),
            Value::from(to_i64(place.last)),
            Value::from(now),
        ]);
    }
    out.push(Statement::from_sql_and_values(
        DatabaseBackend::Sqlite,
        format!(
            "INSERT INTO room_logs (room, epoch, last_offset, updated_at) VALUES {} \
             ON CONFLICT (room) DO UPDATE SET epoch = excluded.epoch, \
             last_offset = excluded.last_offset, updated_at = excluded.updated_at",
            placeholders(places.len(), 4)
        ),
        values,
    ));
    let last = |room: &RoomName| places.iter().find(|(r, _)| r == room).map(|(_, p)| p.last);
    let kept: Vec<&Row> = rows
        .iter()
        .filter(|row| last(&row.room).is_some_and(|l| row.offset + size > l))
        .collect();
    for chunk in kept.chunks(ROWS_PER_INSERT) {
        let mut values = Vec::with_capacity(chunk.len() * 6);
        for row in chunk {
            values.extend([
                Value::from(row.room.as_str()),
                Value::from(to_i64(row.offset)),
                Value::from(row.id),
                Value::from(row.from.0),
                Value::from(row.body.as_str()),
                Value::from(row.sent_at),
            ]);
        }
        out.push(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            format!(
                "INSERT INTO room_history (room, seq, id, sender, body, sent_at) VALUES {} \
                 ON CONFLICT (room, seq) DO UPDATE SET id = excluded.id, \
                 sender = excluded.sender, body = excluded.body, sent_at = excluded.sent_at",
                placeholders(chunk.len(), 6)
            ),
            values,
        ));
    }
    let trims: Vec<(&RoomName, u64)> = places
        .iter()
        .filter(|(_, p)| p.last > size)
        .map(|(r, p)| (r, p.last - size))
        .collect();
    if !trims.is_empty() {
        let mut values = Vec::with_capacity(trims.len() * 2);
        for (room, below) in &trims {
            values.extend([Value::from(room.as_str()), Value::from(to_i64(*below))]);
        }
        let conditions = vec!["(room = ? AND seq <= ?)"; trims.len()].join(" OR ");
        out.push(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            format!("DELETE FROM room_history WHERE {conditions}"),
            values,
        ));
    }
    out
}

/// Reads how the last run ended; after a crash every room gets a new epoch.
async fn recover(inner: &Inner) -> Result<(), DbErr> {
    let db = &inner.db;
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT clean FROM history_writer WHERE id = 1",
        ))
        .await?;
    let clean = match row {
        Some(row) => row.try_get::<bool>("", "clean")?,
        None => true,
    };
    if clean {
        return Ok(());
    }
    tracing::warn!(
        "the last run stopped before storing all of its room history; every room starts a new epoch (clients refetch)"
    );
    db.write_transaction(async |txn| {
        txn.execute_unprepared("UPDATE room_logs SET epoch = lower(hex(randomblob(6)))")
            .await?;
        txn.execute_raw(mark_statement(true)).await?;
        Ok(())
    })
    .await
}

/// `(?, ?, …), (…)`: `rows` groups of `columns` placeholders.
fn placeholders(rows: usize, columns: usize) -> String {
    let group = format!("({})", vec!["?"; columns].join(", "));
    vec![group; rows].join(", ")
}

fn mark_statement(clean: bool) -> Statement {
    Statement::from_sql_and_values(
        DatabaseBackend::Sqlite,
        "INSERT INTO history_writer (id, clean) VALUES (1, ?) \
         ON CONFLICT (id) DO UPDATE SET clean = excluded.clean",
        [Value::from(clean)],
    )
}
