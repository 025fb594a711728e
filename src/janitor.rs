//! The janitor: deletes what is past `DOORMAN_RETENTION_DAYS` — ended sessions
//! (their refresh tokens go with them), spent refresh tokens, account activity and
//! rows of relayed room messages (only a previous release wrote them) — in batches, so no statement holds locks for
//! long. On PostgreSQL each batch takes a transaction-level advisory lock first: with
//! several instances, one works at a time and the others skip that round.

use std::time::Duration;

use entity::{activity, refresh_token, room_message, session};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter,
    QuerySelect, QueryTrait, Statement,
};
use time::OffsetDateTime;

use crate::auth::db::Db;

/// Rows deleted per statement.
const BATCH: u64 = 1000;
/// The advisory lock's key: "doorman janitor".
const LOCK_KEY: i64 = 0x646f_6f72_6a61_6e69;

/// The tables the janitor deletes from: the `table` label of
/// `doorman_janitor_deleted_total`.
pub const TABLES: &[&str] = &["sessions", "refresh_tokens", "room_messages", "activity"];

/// What one pass deleted, by table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub room_messages: u64,
    pub activity: u64,
}

/// Runs a pass now and then every `retention / 24` (between 1 s and 1 h).
pub fn spawn(db: Db, retention: Duration) {
    let every = (retention / 24).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match sweep(&db, retention).await {
                Ok(swept) if swept != Swept::default() => {
                    tracing::info!(?swept, "janitor deleted old rows");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "janitor pass failed; retrying later"),
            }
        }
    });
}

/// One pass: everything older than `retention`, batch by batch.
pub async fn sweep(db: &Db, retention: Duration) -> Result<Swept, DbErr> {
    let cutoff = OffsetDateTime::now_utc() - retention;
    // Sessions first: their refresh tokens go with them (ON DELETE CASCADE).
    let swept = Swept {
        sessions: batches(db, Table::Sessions, cutoff).await?,
        refresh_tokens: batches(db, Table::RefreshTokens, cutoff).await?,
        room_messages: batches(db, Table::RoomMessages, cutoff).await?,
        activity: batches(db, Table::Activity, cutoff).await?,
    };
    debug_assert_eq!(
        TABLES,
        ["sessions", "refresh_tokens", "room_messages", "activity"]
    );
    for (table, n) in [
        ("sessions", swept.sessions),
        ("refresh_tokens", swept.refresh_tokens),
        ("room_messages", swept.room_messages),
        ("activity", swept.activity),
    ] {
        metrics::counter!("doorman_janitor_deleted_total", "table" => table).increment(n);
    }
    Ok(swept)
}

#[derive(Debug, Clone, Copy)]
enum Table {
    Sessions,
    RefreshTokens,
    RoomMessages,
    Activity,
}

impl Table {
    /// Deletes up to [`BATCH`] rows older than `cutoff`.
    async fn delete_batch(
        self,
        txn: &sea_orm::DatabaseTransaction,
        cutoff: OffsetDateTime,
    ) -> Result<u64, DbErr> {
        match self {
            Table::Sessions => {
                let ended = Condition::any()
                    .add(session::Column::RevokedAt.lt(cutoff))
                    .add(session::Column::ExpiresAt.lt(cutoff))
                    .add(session::Column::IdleExpiresAt.lt(cutoff));
                delete_batch::<session::Entity, _>(txn, session::Column::Id, ended).await
            }
            Table::RefreshTokens => {
                let spent = Condition::any()
                    .add(refresh_token::Column::UsedAt.lt(cutoff))
                    .add(refresh_token::Column::ExpiresAt.lt(cutoff));
                delete_batch::<refresh_token::Entity, _>(txn, refresh_token::Column::Id, spent)
                    .await
            }
            Table::RoomMessages => {
                let old = Condition::all().add(room_message::Column::CreatedAt.lt(cutoff));
                delete_batch::<room_message::Entity, _>(txn, room_message::Column::Id, old).await
            }
            Table::Activity => {
                let old = Condition::all().add(activity::Column::At.lt(cutoff));
                delete_batch::<activity::Entity, _>(txn, activity::Column::Id, old).await
            }
        }
    }
}

/// Deletes batch after batch, each in its own transaction, until one deletes fewer
/// than [`BATCH`] rows or another instance holds the lock; returns the total.
async fn batches(db: &Db, table: Table, cutoff: OffsetDateTime) -> Result<u64, DbErr> {
    let postgres = db.connection().get_database_backend() == DatabaseBackend::Postgres;
    let mut total = 0;
    loop {
        let deleted = db
            .transaction(async |txn| {
                if postgres && !try_lock(txn).await? {
                    return Ok(None);
                }
                table.delete_batch(txn, cutoff).await.map(Some)
            })
            .await?;
        match deleted {
            Some(n) => {
                total += n;
                if n < BATCH {
                    return Ok(total);
                }
            }
            None => return Ok(total),
        }
    }
}

async fn try_lock(txn: &sea_orm::DatabaseTransaction) -> Result<bool, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1) AS locked",
            [LOCK_KEY.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<bool>("", "locked"))
        .transpose()?
        .unwrap_or(false))
}

/// Deletes up to [`BATCH`] rows of `E` matching `cond`, by primary key `id`.
async fn delete_batch<E, C>(
    txn: &sea_orm::DatabaseTransaction,
    id: C,
    cond: Condition,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    let ids = E::find()
        .select_only()
        .column(id)
        .filter(cond)
        .limit(BATCH)
        .into_query();
    let result = E::delete_many()
        .filter(id.in_subquery(ids))
        .exec(txn)
        .await?;
    Ok(result.rows_affected)
}
