//! Room history on SQLite (one instance): offsets given out here, messages
//! delivered at once and stored behind them, many to a transaction.
//!
//! Why: on SQLite a transaction per message (or per the few messages that queue
//! while one commits) cost seven to eight times the publish itself (bench row
//! `ws_publish_history`); here a message costs its place in memory and a share of a
//! transaction taken every [`FLUSH_AFTER`].
//!
//! What keeps it right:
//! - one task places, delivers and stores, in queue order: a room's offsets follow
//!   the order its messages were published, each given once;
//! - a position is read only after the task stored what it placed (`Job::Flush`),
//!   so replay finds every offset the position covers;
//! - a deleted room's place and unstored messages go with it (`Job::Forget`), so
//!   nothing of it is stored after its history was dropped;
//! - before the first message it places is delivered, the task marks the database
//!   unclean (`history_writer`, through the main connection, which syncs each
//!   commit); a stop that stored everything marks it clean. A start that finds it
//!   unclean (a crash: messages were delivered and never stored, and their offsets
//!   would be given again) gives every room a new epoch, so clients that had them
//!   are told `epoch_changed` and refetch;
//! - a flush that fails keeps its rows for the next (at most `QUEUE` of them; the
//!   oldest are dropped, and replay over their offsets answers `too_old`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use entity::room_log;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, Statement, Value};
use time::OffsetDateTime;
use tokio::{sync::mpsc, time::Instant};
use uuid::Uuid;

use super::{
    BATCH, Committed, Deliver, Inner, Job, Kept, Logged, Pending, QUEUE, RoomError, RoomName,
    forget, message_frame, new_epoch, senders_still_members, sweep, to_i64,
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
struct Place {
    epoch: Arc<str>,
    last: u64,
}

/// A message placed and delivered, not yet stored.
struct Row {
    room: RoomName,
    offset: u64,
    id: Uuid,
    from: UserId,
    body: String,
    sent_at: OffsetDateTime,
}

struct Writer {
    inner: Arc<Inner>,
    places: HashMap<RoomName, Place>,
    unwritten: Vec<Row>,
    /// When the unwritten rows are to be stored.
    due: Option<Instant>,
    /// Whether the database is marked unclean (messages may be placed and not
    /// stored).
    marked: bool,
}

/// The write task on SQLite.
pub(super) async fn run(inner: Arc<Inner>, mut rx: mpsc::Receiver<Job>, deliver: Deliver) {
    let mut w = Writer {
        inner,
        places: HashMap::new(),
        unwritten: Vec::new(),
        due: None,
        marked: false,
    };
    w.begin().await;
    let mut jobs = Vec::with_capacity(BATCH);
    loop {
        let due = w.due;
        tokio::select! {
            n = rx.recv_many(&mut jobs, BATCH) => {
                if n == 0 {
                    w.close().await;
                    return;
                }
                w.take(&mut jobs, &deliver).await;
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                w.flush().await;
            }
        }
    }
}

impl Writer {
    /// At start: a database left unclean gives every room a new epoch (see the
    /// module docs). Retried until the database answers.
    async fn begin(&mut self) {
        loop {
            match self.recover().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "room history could not read how the last run stopped; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    async fn recover(&self) -> Result<(), DbErr> {
        let db = &self.inner.db;
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

    /// Marks the database clean or unclean, through the main connection.
    async fn mark(&mut self, clean: bool) -> Result<(), DbErr> {
        self.inner.db.execute_raw(mark_statement(clean)).await?;
        self.marked = !clean;
        Ok(())
    }

    /// Carries out a batch of jobs in their order.
    async fn take(&mut self, jobs: &mut Vec<Job>, deliver: &Deliver) {
        let allowed = self.allowed(jobs).await;
        let mut allowed = allowed.into_iter();
        for job in jobs.drain(..) {
            match job {
                Job::Publish(p) => {
                    let verdict = allowed.next().unwrap_or(Err(RoomError::Busy));
                    let answer = match verdict {
                        Ok(()) => {
                            self.place(p.room.clone(), p.id, p.from, p.body, p.sent_at, deliver)
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    if let Some(reply) = p.reply {
                        let _ = reply.send(answer);
                    }
                }
                Job::Flush(tx) => {
                    self.flush().await;
                    let _ = tx.send(());
                }
                Job::Forget(room, tx) => {
                    self.places.remove(&room);
                    self.unwritten.retain(|r| r.room != room);
                    let _ = tx.send(forget(&self.inner.writer, &room).await);
                }
                Job::Sweep(tx) => {
                    self.flush().await;
                    let swept = sweep(&self.inner.writer, self.inner.settings.ttl).await;
                    // The sweep may have dropped positions of idle rooms: read them
                    // again when next used.
                    self.places.clear();
                    let _ = tx.send(swept);
                }
                Job::Close(tx) => {
                    self.close().await;
                    let _ = tx.send(());
                }
            }
        }
        if self.unwritten.len() >= BATCH {
            self.flush().await;
        } else if !self.unwritten.is_empty() && self.due.is_none() {
            self.due = Some(Instant::now() + FLUSH_AFTER);
        }
    }

    /// Whether each publish among `jobs` may go on: a private room's sender must
    /// still be a member, and have been since before the message was sent (asked
    /// once for the batch; see `senders_still_members`).
    async fn allowed(&self, jobs: &[Job]) -> Vec<Result<(), RoomError>> {
        let publishes: Vec<&Pending> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Publish(p) => Some(p),
                _ => None,
            })
            .collect();
        match senders_still_members(&self.inner.db, &publishes).await {
            Ok(members) => members
                .into_iter()
                .map(|ok| {
                    if ok {
                        Ok(())
                    } else {
                        Err(RoomError::Forbidden)
                    }
                })
                .collect(),
            Err(e) => {
                // Whether a private room's sender is still a member cannot be asked
                // now: their message is refused, not delivered unchecked.
                tracing::warn!(error = %e, "room membership could not be read for history; private rooms' messages refused");
                publishes
                    .iter()
                    .map(|p| {
                        if p.room.is_private() {
                            Err(RoomError::Busy)
                        } else {
                            Ok(())
                        }
                    })
                    .collect()
            }
        }
    }

    /// Gives a message its room's next offset, delivers it here and keeps it to be
    /// stored.
    async fn place(
        &mut self,
        room: RoomName,
        id: Uuid,
        from: UserId,
        body: String,
        sent_at: OffsetDateTime,
        deliver: &Deliver,
    ) -> Result<Committed, RoomError> {
        if !self.marked {
            self.mark(false).await.map_err(RoomError::db)?;
        }
        if !self.places.contains_key(&room) {
            let stored = room_log::Entity::find_by_id(room.as_str().to_owned())
                .one(&self.inner.writer)
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
            self.places.insert(room.clone(), place);
        }
        let Some(place) = self.places.get_mut(&room) else {
            return Err(RoomError::Busy);
        };
        let kept = Kept {
            offset: place.last + 1,
            id,
            from,
            body,
            sent_at,
        };
        let frame = message_frame(&room, Some(&place.epoch), &kept).ok_or(RoomError::Busy)?;
        place.last = kept.offset;
        let epoch = place.epoch.clone();
        let delivered = deliver(
            Logged {
                room: room.clone(),
                epoch: epoch.clone(),
                offset: kept.offset,
                frame: frame.into(),
            },
            true,
        );
        self.unwritten.push(Row {
            room,
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

    /// Stores the unwritten rows in one transaction: each room's position, the
    /// rows its size keeps, and the trim of what falls out.
    async fn flush(&mut self) {
        self.due = None;
        if self.unwritten.is_empty() {
            return;
        }
        let size = u64::from(self.inner.settings.size);
        let now = OffsetDateTime::now_utc();
        // Every room with unwritten rows, and its place.
        let mut rooms: Vec<(&RoomName, &Place)> = Vec::new();
        for row in &self.unwritten {
            if !rooms.iter().any(|(r, _)| *r == &row.room)
                && let Some(place) = self.places.get(&row.room)
            {
                rooms.push((&row.room, place));
            }
        }
        let mut statements = Vec::new();
        let mut values = Vec::with_capacity(rooms.len() * 4);
        for (room, place) in &rooms {
            values.extend([
                Value::from(room.as_str()),
                Value::from(&*place.epoch),
                Value::from(to_i64(place.last)),
                Value::from(now),
            ]);
        }
        statements.push(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            format!(
                "INSERT INTO room_logs (room, epoch, last_offset, updated_at) VALUES {} \
                 ON CONFLICT (room) DO UPDATE SET epoch = excluded.epoch, \
                 last_offset = excluded.last_offset, updated_at = excluded.updated_at",
                placeholders(rooms.len(), 4)
            ),
            values,
        ));
        // Only the rows each room's size keeps (a burst larger than it stores its
        // newest).
        let kept = |row: &&Row| {
            self.places
                .get(&row.room)
                .is_some_and(|p| row.offset + size > p.last)
        };
        let rows: Vec<&Row> = self.unwritten.iter().filter(kept).collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
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
            statements.push(Statement::from_sql_and_values(
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
        let trims: Vec<(&RoomName, u64)> = rooms
            .iter()
            .filter(|(_, p)| p.last > size)
            .map(|(r, p)| (*r, p.last - size))
            .collect();
        if !trims.is_empty() {
            let mut values = Vec::with_capacity(trims.len() * 2);
            for (room, below) in &trims {
                values.extend([Value::from(room.as_str()), Value::from(to_i64(*below))]);
            }
            let conditions = vec!["(room = ? AND seq <= ?)"; trims.len()].join(" OR ");
            statements.push(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                format!("DELETE FROM room_history WHERE {conditions}"),
                values,
            ));
        }
        let stored = self
            .inner
            .writer
            .write_transaction(async |txn| {
                for statement in statements {
                    txn.execute_raw(statement).await?;
                }
                Ok(())
            })
            .await;
        match stored {
            Ok(()) => self.unwritten.clear(),
            Err(e) => {
                let over = self.unwritten.len().saturating_sub(QUEUE);
                tracing::warn!(error = %e, messages = self.unwritten.len(), dropped = over, "room history could not be stored; retrying");
                self.unwritten.drain(..over);
                self.due = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }

    /// Stores what is placed and, if that left nothing unstored, marks the
    /// database clean.
    async fn close(&mut self) {
        self.flush().await;
        if self.marked
            && self.unwritten.is_empty()
            && let Err(e) = self.mark(true).await
        {
            tracing::warn!(error = %e, "room history could not note a clean stop; the next start gives rooms new epochs");
        }
    }
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
