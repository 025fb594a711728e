//! Room history: one sequence of offsets per room that every instance takes from,
//! the room's recent messages, and what a subscriber may replay.
//!
//! Publishing into a room while history is on (`DOORMAN_HISTORY_SIZE` > 0): the
//! message joins the queue of its room's write task (one of
//! `DOORMAN_HISTORY_WRITERS` on PostgreSQL, chosen by the room's name, so a room's messages keep their order
//! while other rooms' commit beside them), which takes what has queued (up to
//! [`BATCH`] messages: under load the batches grow, so a message costs one row and
//! a share of one transaction) and, in one transaction,
//! - takes each room's next offsets from its `room_logs` row (the upsert locks the
//!   row until commit, so instances are given a room's offsets, and commit them,
//!   one after another),
//! - stores the messages and trims each room to its size,
//! - on PostgreSQL, sends them as notifications: delivered at commit, in commit
//!   order, to every instance, this one included, so subscribers anywhere see a
//!   room's messages in offset order.
//!
//! If the write fails (the database is down), the messages still go out live,
//! without offsets, as they would with history off: realtime does not stop with
//! storage.
//!
//! On SQLite (one instance) offsets are given out in memory instead, and messages
//! delivered at once and stored a few milliseconds later, many to a transaction
//! (see [`local`]): a transaction per message would cost several times the publish
//! itself.
//!
//! Replay reads the room's position first and then its rows up to that position;
//! the subscriber was registered for live delivery before, and drops live messages
//! at or below the position (see `ws::connection`): no gap and no duplicate at the
//! seam. Who reads is checked by the caller (`Rooms::may_enter`); in a private room
//! only messages sent at or after the reader's membership began are replayed.

use std::{
    num::NonZeroU32,
    sync::{Arc, OnceLock},
    time::Duration,
};

use entity::{room_history, room_log, room_member};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use schemars::JsonSchema;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement, Value,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{RoomError, RoomFrame, RoomName};
use crate::auth::{UserId, db::Db};

mod local;

/// Messages one write transaction takes at most.
const BATCH: usize = 256;
/// Messages waiting to be written at most; past it a publish is refused (busy).
const QUEUE: usize = 8192;

/// `DOORMAN_HISTORY_SIZE`, `DOORMAN_HISTORY_TTL_SECONDS`,
/// `DOORMAN_HISTORY_BYTES_PER_USER`.
#[derive(Debug, Clone, Copy)]
pub struct HistorySettings {
    pub size: u32,
    pub ttl: Duration,
    pub bytes_per_user: u32,
    /// Write tasks on PostgreSQL (`DOORMAN_HISTORY_WRITERS`).
    pub writers: usize,
}

/// A message with its place in its room, as delivered to subscribers.
#[derive(Debug)]
pub struct Logged {
    pub room: RoomName,
    pub epoch: Arc<str>,
    pub offset: u64,
    /// The serialised `message` frame (with `offset` and `epoch`).
    pub frame: Arc<str>,
}

/// A room's position: its epoch and its last offset (`""` and 0 before its first
/// message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub offset: u64,
}

/// Where a client left off: `since` of a `subscribe` frame.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct Since {
    /// The offset of the last message the client has; 0 for "all the room still
    /// has, whatever its epoch".
    pub offset: u64,
    /// The epoch that offset counts in.
    pub epoch: String,
}

/// Why a subscription could not replay what the client missed: it should refetch
/// (`GET /api/rooms/{room}/messages`, or its own source of truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryFailure {
    /// Some of the missed messages have left the history (size or age), or were
    /// sent while the reader was not a member of the private room (so they are not
    /// theirs to replay).
    TooOld,
    /// The room's history was lost or reset since (a new epoch).
    EpochChanged,
    /// This server keeps no history (`DOORMAN_HISTORY_SIZE=0`).
    HistoryOff,
}

/// A message as history keeps it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub offset: u64,
    pub id: Uuid,
    pub from: UserId,
    pub body: String,
    pub sent_at: OffsetDateTime,
}

/// What a publish committed: the message's place, and how many sockets on this
/// instance it went to (on PostgreSQL, how many were subscribed here when it was
/// stored: delivery follows through the notification).
#[derive(Debug, Clone)]
pub struct Committed {
    pub epoch: String,
    pub offset: u64,
    pub delivered: usize,
}

/// Makes the notifications that carry a batch to every instance, in the batch's
/// transaction (the cluster bridge sets it on PostgreSQL).
pub type Notifier = Box<dyn Fn(&[Logged]) -> Option<Statement> + Send + Sync>;

/// Delivers a committed message to this instance's subscribers (with `true`; with
/// `false` it only counts them: delivery follows through the notification);
/// returns how many.
pub(super) type Deliver = Arc<dyn Fn(Logged, bool) -> usize + Send + Sync>;

/// Delivers a frame without an offset (the fallback when storing failed).
pub(super) type DeliverLive = Arc<dyn Fn(&RoomName, &Arc<str>) -> usize + Send + Sync>;

struct Pending {
    room: RoomName,
    id: Uuid,
    from: UserId,
    body: String,
    sent_at: OffsetDateTime,
    reply: Option<oneshot::Sender<Result<Committed, RoomError>>>,
}

/// The history of every room; cheap to clone.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// What batches are written through (see `crate::doorman::history_writer`).
    writer: Db,
    settings: HistorySettings,
    /// SQLite: offsets given out in memory, messages stored behind (see [`local`]).
    local: Option<local::Local>,
    /// Messages waiting for the write tasks, a queue per task: every one on
    /// PostgreSQL; on SQLite private rooms' (whose senders' membership the one task
    /// asks about per batch).
    queues: OnceLock<Vec<mpsc::Sender<Pending>>>,
    /// Bytes of bodies per user, replenished over the history TTL.
    budget: DefaultKeyedRateLimiter<UserId>,
    notifier: OnceLock<Notifier>,
}

impl History {
    pub fn new(db: Db, writer: Option<Db>, settings: HistorySettings) -> Self {
        let bytes = NonZeroU32::new(settings.bytes_per_user).unwrap_or(NonZeroU32::MIN);
        let per_byte = settings.ttl / bytes.get();
        let quota = Quota::with_period(per_byte.max(Duration::from_nanos(1)))
            .unwrap_or(Quota::per_second(bytes))
            .allow_burst(bytes);
        let local = (db.connection().get_database_backend() == DatabaseBackend::Sqlite)
            .then(local::Local::new);
        Self {
            inner: Arc::new(Inner {
                local,
                writer: writer.unwrap_or_else(|| db.clone()),
                db,
                settings,
                queues: OnceLock::new(),
                budget: RateLimiter::keyed(quota),
                notifier: OnceLock::new(),
            }),
        }
    }

    /// Whether rooms keep history (and messages carry offsets).
    pub fn is_on(&self) -> bool {
        self.inner.settings.size > 0
    }

    pub fn settings(&self) -> HistorySettings {
        self.inner.settings
    }

    /// On PostgreSQL: batches reach every instance through the notifications
    /// `notifier` makes, in their own transaction (see the module docs).
    pub fn set_notifier(&self, notifier: Notifier) {
        let _ = self.inner.notifier.set(notifier);
    }

    /// Starts the write task (once); `deliver` and `live` hand messages to this
    /// instance's subscribers.
    pub(super) fn start(&self, deliver: Deliver, live: DeliverLive) {
        // On PostgreSQL several write tasks, each with its own queue and transaction
        // in flight: several commits wait for the disk at once instead of one after
        // another (a commit is milliseconds, the statements in it far less).
        let writers = if self.inner.local.is_some() {
            1
        } else {
            self.inner.settings.writers.max(1)
        };
        let (txs, rxs): (Vec<_>, Vec<_>) =
            (0..writers).map(|_| mpsc::channel(QUEUE / writers)).unzip();
        if self.inner.queues.set(txs).is_ok() {
            for rx in rxs {
                if self.inner.local.is_some() {
                    local::Local::start(&self.inner, deliver.clone());
                    tokio::spawn(private_loop(self.inner.clone(), rx));
                } else {
                    let (deliver, live) = (deliver.clone(), live.clone());
                    tokio::spawn(write_loop(self.inner.clone(), rx, deliver, live));
                }
            }
        }
    }

    /// The queue of the write task that stores `room`'s messages.
    fn queue_of(&self, room: &RoomName) -> Option<&mpsc::Sender<Pending>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let queues = self.inner.queues.get()?;
        // A fixed hasher: the same room, the same task, for the process's life.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room.as_str());
        queues.get((hash % queues.len() as u64) as usize)
    }

    /// Publishes a message into its room's history: placed and delivered at once
    /// (SQLite, public rooms), or queued for the write task, which stores and then
    /// delivers it. With `wait`, or when placed at once, what was committed.
    /// Refused when `from` has added more than its byte budget to history lately,
    /// or when the queue is full.
    pub(super) async fn publish(
        &self,
        room: &RoomName,
        from: UserId,
        body: &str,
        wait: bool,
    ) -> Result<Option<Committed>, RoomError> {
        let bytes = NonZeroU32::new(u32::try_from(body.len()).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        match self.inner.budget.check_key_n(&from, bytes) {
            Ok(Ok(())) => {}
            _ => return Err(RoomError::HistoryBudget),
        }
        let mut pending = Pending {
            room: room.clone(),
            id: Uuid::now_v7(),
            from,
            body: body.to_owned(),
            sent_at: OffsetDateTime::now_utc(),
            reply: None,
        };
        if let Some(local) = &self.inner.local
            && !room.is_private()
        {
            return local.publish(&self.inner, pending).await.map(Some);
        }
        let queue = self.queue_of(room).ok_or(RoomError::Busy)?;
        let receiver = if wait {
            let (tx, rx) = oneshot::channel();
            pending.reply = Some(tx);
            Some(rx)
        } else {
            None
        };
        queue.try_send(pending).map_err(|_| RoomError::Busy)?;
        match receiver {
            Some(rx) => rx.await.map_err(|_| RoomError::Busy)?.map(Some),
            None => Ok(None),
        }
    }

    /// Stores what the write task has placed and not stored yet (SQLite; on
    /// PostgreSQL a message is stored before it is placed). Called before the
    /// server exits, after its sockets are closed.
    pub async fn close(&self) {
        if let Some(local) = &self.inner.local {
            local.close(&self.inner).await;
        }
    }

    /// Stores what is placed and not stored yet (SQLite; nothing to do on
    /// PostgreSQL, where a message is stored before it is placed).
    pub async fn store_held(&self) {
        if let Some(local) = &self.inner.local {
            local.flush(&self.inner).await;
        }
    }

    /// The room's position now. On SQLite what the write task holds is stored
    /// first, so that every message the position covers can be read.
    pub async fn position(&self, room: &RoomName) -> Result<Position, RoomError> {
        self.store_held().await;
        let row = room_log::Entity::find_by_id(room.as_str().to_owned())
            .one(&self.inner.db)
            .await
            .map_err(RoomError::db)?;
        Ok(row.map_or(
            Position {
                epoch: String::new(),
                offset: 0,
            },
            |r| Position {
                epoch: r.epoch,
                offset: r.last_offset.max(0) as u64,
            },
        ))
    }

    /// What a client that left off at `since` missed, up to `to` (the position read
    /// before): the messages in order, or why they cannot be replayed. `readable`:
    /// only messages sent at or after it (a private room's membership start).
    pub async fn missed(
        &self,
        room: &RoomName,
        since: &Since,
        to: &Position,
        readable: Option<OffsetDateTime>,
    ) -> Result<Result<Vec<Kept>, RecoveryFailure>, RoomError> {
        if !self.is_on() {
            return Ok(Err(RecoveryFailure::HistoryOff));
        }
        if since.offset != 0 && since.epoch != to.epoch {
            return Ok(Err(RecoveryFailure::EpochChanged));
        }
        // Past the room's position in its epoch: offsets the client was given are
        // no longer the room's (history lost without a new epoch, as a power cut
        // can do on SQLite); what it has may not be what the room has.
        if since.offset > to.offset {
            return Ok(Err(RecoveryFailure::EpochChanged));
        }
        if since.offset == to.offset {
            return Ok(Ok(Vec::new()));
        }
        let missed = to.offset - since.offset;
        let size = u64::from(self.inner.settings.size);
        // A room keeps at most `size` messages: more missed than that is too old.
        if since.offset != 0 && missed > size {
            return Ok(Err(RecoveryFailure::TooOld));
        }
        let rows = self
            .rows(room, since.offset, to.offset + 1, missed.min(size))
            .await?;
        // From offset 0 the client asked for what there is; otherwise every missed
        // offset must still be here, or something is lost in between.
        let complete = rows.len() as u64 == missed
            && rows.first().is_some_and(|m| m.offset == since.offset + 1)
            && rows.last().is_some_and(|m| m.offset == to.offset);
        if since.offset != 0 && !complete {
            return Ok(Err(RecoveryFailure::TooOld));
        }
        let read = rows.len();
        let rows = readable_only(rows, readable);
        // Some were sent before the reader's membership began (removed and added
        // again since `since`): they are not theirs to read, and a replay without
        // them is not everything they missed. The client refetches what it may read.
        if since.offset != 0 && rows.len() < read {
            return Ok(Err(RecoveryFailure::TooOld));
        }
        Ok(Ok(rows))
    }

    /// A page of the room's history: messages after `after` and before `before`
    /// (offsets, exclusive), at most `limit` read, oldest first, and, when more
    /// follow, the offset of the last one read (the next page's `after`; a private
    /// room's messages from before the reader's membership are read and left out,
    /// so a page may show fewer than it read).
    pub async fn page(
        &self,
        room: &RoomName,
        after: u64,
        before: Option<u64>,
        limit: u64,
        readable: Option<OffsetDateTime>,
    ) -> Result<(Position, Vec<Kept>, Option<u64>), RoomError> {
        let position = self.position(room).await?;
        if !self.is_on() {
            return Ok((position, Vec::new(), None));
        }
        let before = before.unwrap_or(u64::MAX).min(position.offset + 1);
        let mut rows = self.rows(room, after, before, limit + 1).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last().map(|m| m.offset)).flatten();
        Ok((position, readable_only(rows, readable), next))
    }

    /// Rows with `after < offset < before`, oldest first, at most `limit`.
    async fn rows(
        &self,
        room: &RoomName,
        after: u64,
        before: u64,
        limit: u64,
    ) -> Result<Vec<Kept>, RoomError> {
        let rows = room_history::Entity::find()
            .filter(room_history::Column::Room.eq(room.as_str()))
            .filter(room_history::Column::Seq.gt(to_i64(after)))
            .filter(room_history::Column::Seq.lt(to_i64(before)))
            .order_by_asc(room_history::Column::Seq)
            .limit(limit)
            .all(&self.inner.db)
            .await
            .map_err(RoomError::db)?;
        Ok(rows
            .into_iter()
            .map(|r| Kept {
                offset: r.seq.max(0) as u64,
                id: r.id,
                from: UserId(r.sender),
                body: r.body,
                sent_at: r.sent_at,
            })
            .collect())
    }

    /// The room's stored message at `offset` (a large one whose notification
    /// carried only its place).
    pub async fn at(&self, room: &RoomName, offset: u64) -> Result<Option<Kept>, RoomError> {
        Ok(self
            .rows(room, offset.saturating_sub(1), offset.saturating_add(1), 1)
            .await?
            .pop())
    }

    /// Drops what has outlived the TTL, and the positions of rooms that have had no
    /// message for that long and keep none (their next message starts a new epoch).
    /// Returns the rows deleted.
    pub async fn sweep(&self) -> Result<u64, DbErr> {
        if let Some(local) = &self.inner.local {
            return local.sweep(&self.inner).await;
        }
        sweep(&self.inner.db, self.inner.settings.ttl).await
    }

    /// Forgets a deleted room's history: a room created later under the same name
    /// starts afresh.
    pub async fn forget(&self, room: &RoomName) -> Result<(), DbErr> {
        if let Some(local) = &self.inner.local {
            return local.forget(&self.inner, room).await;
        }
        forget(&self.inner.db, room).await
    }
}

/// [`History::sweep`] on `db`.
async fn sweep(db: &Db, ttl: Duration) -> Result<u64, DbErr> {
    let cutoff = OffsetDateTime::now_utc() - ttl;
    let gone = room_history::Entity::delete_many()
        .filter(room_history::Column::SentAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected;
    let backend = db.connection().get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql(
            backend,
            "DELETE FROM room_logs WHERE updated_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM room_history h WHERE h.room = room_logs.room)",
        ),
        [Value::from(cutoff)],
    ))
    .await?;
    Ok(gone)
}

/// [`History::forget`] on `db`.
async fn forget(db: &Db, room: &RoomName) -> Result<(), DbErr> {
    room_history::Entity::delete_many()
        .filter(room_history::Column::Room.eq(room.as_str()))
        .exec(db)
        .await?;
    room_log::Entity::delete_by_id(room.as_str().to_owned())
        .exec(db)
        .await?;
    Ok(())
}

fn readable_only(rows: Vec<Kept>, readable: Option<OffsetDateTime>) -> Vec<Kept> {
    match readable {
        Some(since) => rows.into_iter().filter(|m| m.sent_at >= since).collect(),
        None => rows,
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `text` with PostgreSQL's numbered placeholders, as the backend wants them.
fn sql(backend: DatabaseBackend, text: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => text.to_owned(),
        // SQLite reads `?NNN` as the NNN-th value.
        _ => text.replace('$', "?"),
    }
}

/// A `message` frame with its place.
pub fn message_frame(room: &RoomName, epoch: Option<&str>, m: &Kept) -> Option<String> {
    serde_json::to_string(&RoomFrame::Message {
        id: m.id,
        room: room.as_str(),
        from: m.from,
        body: &m.body,
        sent_at: m.sent_at,
        offset: epoch.map(|_| m.offset),
        epoch,
    })
    .ok()
}

async fn write_loop(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Pending>,
    deliver: Deliver,
    live: DeliverLive,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        match write(&inner, &batch).await {
            Ok(logged) => {
                let here = inner.notifier.get().is_none();
                for (pending, logged) in batch.drain(..).zip(logged) {
                    let answer = match logged {
                        Some(logged) => {
                            let (epoch, offset) = (logged.epoch.to_string(), logged.offset);
                            // On PostgreSQL delivery follows through the notification.
                            let delivered = deliver(logged, here);
                            Ok(Committed {
                                epoch,
                                offset,
                                delivered,
                            })
                        }
                        // Its sender is no longer a member of the private room.
                        None => Err(RoomError::Forbidden),
                    };
                    if let Some(reply) = pending.reply {
                        let _ = reply.send(answer);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = batch.len(), "room history could not be written; public rooms' messages go out live, without offsets");
                for pending in batch.drain(..) {
                    // Whether a private room's sender is still a member cannot be
                    // asked now: its message is refused, not delivered unchecked.
                    if pending.room.is_private() {
                        if let Some(reply) = pending.reply {
                            let _ = reply.send(Err(RoomError::Busy));
                        }
                        continue;
                    }
                    let kept = Kept {
                        offset: 0,
                        id: pending.id,
                        from: pending.from,
                        body: pending.body,
                        sent_at: pending.sent_at,
                    };
                    let delivered = message_frame(&pending.room, None, &kept)
                        .map_or(0, |f| live(&pending.room, &f.into()));
                    if let Some(reply) = pending.reply {
                        let _ = reply.send(Ok(Committed {
                            epoch: String::new(),
                            offset: 0,
                            delivered,
                        }));
                    }
                }
            }
        }
    }
}

/// The write task on SQLite: private rooms' messages, whose senders must still be
/// members (asked once per batch), placed as public rooms' are (see [`local`]).
async fn private_loop(inner: Arc<Inner>, mut rx: mpsc::Receiver<Pending>) {
    let Some(local) = &inner.local else { return };
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let all: Vec<&Pending> = batch.iter().collect();
        let allowed = match senders_still_members(&inner.db, &all).await {
            Ok(allowed) => allowed.into_iter().map(Some).collect(),
            Err(e) => {
                // Whether they are still members cannot be asked now: their
                // messages are refused, not delivered unchecked.
                tracing::warn!(error = %e, messages = batch.len(), "room membership could not be read for history; private rooms' messages refused");
                vec![None; batch.len()]
            }
        };
        for (mut pending, allowed) in batch.drain(..).zip(allowed) {
            let reply = pending.reply.take();
            let answer = match allowed {
                Some(true) => local.publish(&inner, pending).await,
                Some(false) => Err(RoomError::Forbidden),
                None => Err(RoomError::Busy),
            };
            if let Some(reply) = reply {
                let _ = reply.send(answer);
            }
        }
    }
}

/// One transaction for `batch`: offsets, rows, trimming and (on PostgreSQL) the
/// notifications. Returns each message with its place, in the batch's order, or
/// `None` for one into a private room its sender no longer belongs to: it was
/// allowed when published, but the room may have been deleted (and a room of the
/// same name created by someone else) or the sender removed since, and nothing of
/// theirs may reach that room now.
async fn write(inner: &Inner, batch: &[Pending]) -> Result<Vec<Option<Logged>>, DbErr> {
    let (allowed, logged) = write_allowed(inner, batch).await?;
    let mut logged = logged.into_iter();
    Ok(allowed
        .into_iter()
        .map(|ok| if ok { logged.next() } else { None })
        .collect())
}

/// [`write`]'s transaction: which messages were allowed, and those, placed.
async fn write_allowed(
    inner: &Inner,
    batch: &[Pending],
) -> Result<(Vec<bool>, Vec<Logged>), DbErr> {
    let size = i64::from(inner.settings.size);
    let now = OffsetDateTime::now_utc();
    let notifier = inner.notifier.get();
    inner
        .writer
        .write_transaction(async |txn| {
            let backend = txn.get_database_backend();
            let all: Vec<&Pending> = batch.iter().collect();
            let allowed = senders_still_members(txn, &all).await?;
            let batch: Vec<&Pending> = batch
                .iter()
                .zip(&allowed)
                .filter_map(|(p, ok)| ok.then_some(p))
                .collect();
            // Nothing left to store (every sender lost the room): no statement.
            if batch.is_empty() {
                return Ok((allowed, Vec::new()));
            }
            // Each room with its messages in the batch, in name order: two
            // instances' batches lock shared rooms' rows in the same order, so they
            // wait for each other instead of deadlocking.
            let mut rooms: Vec<(&RoomName, i64)> = Vec::new();
            for p in &batch {
                match rooms.iter_mut().find(|(room, _)| *room == &p.room) {
                    Some((_, count)) => *count += 1,
                    None => rooms.push((&p.room, 1)),
                }
            }
            rooms.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            // Every room's next offsets in one statement: an upsert per room row,
            // each returning where the room now stands.
            let mut values = Vec::with_capacity(rooms.len() * 4);
            let mut rows_sql = Vec::with_capacity(rooms.len());
            for (i, (room, count)) in rooms.iter().enumerate() {
                let n = i * 4;
                rows_sql.push(format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
                values.extend([
                    Value::from(room.as_str()),
                    Value::from(new_epoch()),
                    Value::from(*count),
                    Value::from(now),
                ]);
            }
            let returned = txn
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    sql(
                        backend,
                        &format!(
                            "INSERT INTO room_logs (room, epoch, last_offset, updated_at) \
                             VALUES {} \
                             ON CONFLICT (room) DO UPDATE SET \
                             last_offset = room_logs.last_offset + excluded.last_offset, \
                             updated_at = excluded.updated_at \
                             RETURNING room, epoch, last_offset",
                            rows_sql.join(", ")
                        ),
                    ),
                    values,
                ))
                .await?;
            let mut places: Vec<(&RoomName, Arc<str>, u64)> = Vec::with_capacity(rooms.len());
            let mut trims = Vec::new();
            for row in returned {
                let name: String = row.try_get("", "room")?;
                let epoch: String = row.try_get("", "epoch")?;
                let last: i64 = row.try_get("", "last_offset")?;
                let Some(&(room, count)) = rooms.iter().find(|(r, _)| r.as_str() == name) else {
                    continue;
                };
                // The first offset of this batch in the room.
                places.push((room, epoch.into(), (last - count + 1).max(1) as u64));
                if last > size {
                    trims.push((room.as_str(), last - size));
                }
            }
            let mut logged = Vec::with_capacity(batch.len());
            let mut rows = Vec::with_capacity(batch.len());
            for p in &batch {
                let place = places
                    .iter_mut()
                    .find(|(room, _, _)| *room == &p.room)
                    .ok_or_else(|| DbErr::Custom("a room without a position".into()))?;
                let offset = place.2;
                place.2 += 1;
                let kept = Kept {
                    offset,
                    id: p.id,
                    from: p.from,
                    body: p.body.clone(),
                    sent_at: p.sent_at,
                };
                let frame = message_frame(&p.room, Some(&place.1), &kept)
                    .ok_or_else(|| DbErr::Custom("a message frame did not serialise".into()))?;
                rows.push(room_history::ActiveModel {
                    room: Set(p.room.as_str().to_owned()),
                    seq: Set(to_i64(offset)),
                    id: Set(p.id),
                    sender: Set(p.from.0),
                    body: Set(kept.body),
                    sent_at: Set(p.sent_at),
                });
                logged.push(Logged {
                    room: p.room.clone(),
                    epoch: place.1.clone(),
                    offset,
                    frame: frame.into(),
                });
            }
            if !rows.is_empty() {
                // A row left at an offset being given again (it cannot be, while a
                // room's offsets only grow; kept safe all the same) is replaced,
                // not a failure of the whole batch.
                room_history::Entity::insert_many(rows)
                    .on_conflict(
                        sea_orm::sea_query::OnConflict::columns([
                            room_history::Column::Room,
                            room_history::Column::Seq,
                        ])
                        .update_columns([
                            room_history::Column::Id,
                            room_history::Column::Sender,
                            room_history::Column::Body,
                            room_history::Column::SentAt,
                        ])
                        .to_owned(),
                    )
                    .exec(txn)
                    .await?;
            }
            // After the batch is in: what falls out of each room's size, in one
            // statement (a batch larger than the size keeps only its newest).
            if !trims.is_empty() {
                let mut values = Vec::with_capacity(trims.len() * 2);
                let mut conditions = Vec::with_capacity(trims.len());
                for (i, (room, below)) in trims.iter().enumerate() {
                    conditions.push(format!("(room = ${} AND seq <= ${})", 2 * i + 1, 2 * i + 2));
                    values.extend([Value::from(*room), Value::from(*below)]);
                }
                txn.execute_raw(Statement::from_sql_and_values(
                    backend,
                    sql(
                        backend,
                        &format!("DELETE FROM room_history WHERE {}", conditions.join(" OR ")),
                    ),
                    values,
                ))
                .await?;
            }

            if let Some(statement) = notifier.and_then(|n| n(&logged)) {
                txn.execute_raw(statement).await?;
            }
            Ok((allowed, logged))
        })
        .await
}

/// Whether each message's sender may still publish into its room, asked in the
/// batch's transaction: always in a public room; in a private room only while they
/// are a member, and a member since before the message was sent (a message sent to
/// a room that was then deleted, or while its sender was out of it, does not count
/// for a room of that name they belong to now). One query for the batch.
async fn senders_still_members(
    txn: &impl ConnectionTrait,
    batch: &[&Pending],
) -> Result<Vec<bool>, DbErr> {
    let private: Vec<&&Pending> = batch.iter().filter(|p| p.room.is_private()).collect();
    if private.is_empty() {
        return Ok(vec![true; batch.len()]);
    }
    let mut any = sea_orm::Condition::any();
    for p in &private {
        any = any.add(
            sea_orm::Condition::all()
                .add(room_member::Column::Room.eq(p.room.as_str()))
                .add(room_member::Column::UserId.eq(p.from.0)),
        );
    }
    let members = room_member::Entity::find().filter(any).all(txn).await?;
    Ok(batch
        .iter()
        .map(|p| {
            !p.room.is_private()
                || members.iter().any(|m| {
                    m.room == p.room.as_str() && m.user_id == p.from.0 && m.added_at <= p.sent_at
                })
        })
        .collect())
}

/// A new epoch: 12 hex digits, random.
fn new_epoch() -> String {
    let bytes = Uuid::new_v4().into_bytes();
    bytes[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sea_orm::Database;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::{History, HistorySettings, Pending, write};
    use crate::{
        auth::{UserId, db::Db},
        rooms::RoomName,
    };

    fn pending(room: &str) -> Pending {
        Pending {
            room: RoomName::parse(room).unwrap(),
            id: Uuid::now_v7(),
            from: UserId(Uuid::now_v7()),
            body: "hello".into(),
            sent_at: OffsetDateTime::now_utc(),
            reply: None,
        }
    }

    /// A batch whose every message is into a private room its sender does not belong
    /// to (deleted, or the sender removed, since it was published): nothing is stored
    /// and each is refused; it used to fail as a whole (an upsert of no rows) and go
    /// out live (outside attack, second round).
    #[tokio::test]
    async fn messages_of_senders_who_lost_the_room_are_refused_not_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/h.db?mode=rwc", dir.path().display());
        let conn = Database::connect(&url).await.unwrap();
        {
            use migration::MigratorTrait;
            migration::Migrator::up(&conn, None).await.unwrap();
        }
        let db = Db::new(conn, Duration::from_secs(5));
        let settings = HistorySettings {
            size: 10,
            ttl: Duration::from_secs(600),
            bytes_per_user: 1 << 20,
            writers: 1,
        };
        let history = History::new(db, None, settings);
        let alone = write(&history.inner, &[pending("private:gone")])
            .await
            .unwrap();
        assert!(alone[0].is_none());
        let mixed = write(
            &history.inner,
            &[
                pending("private:gone"),
                pending("lobby"),
                pending("private:gone"),
            ],
        )
        .await
        .unwrap();
        let placed: Vec<Option<u64>> = mixed.iter().map(|l| l.as_ref().map(|l| l.offset)).collect();
        assert_eq!(placed, [None, Some(1), None]);
    }
}
