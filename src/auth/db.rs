//! The database handle every request path uses: sea-orm's pooled connection, with the
//! time a request may spend waiting for the database bounded by
//! `DOORMAN_DB_TIMEOUT_SECONDS`.
//!
//! What bounds what:
//! - the pool's `acquire_timeout` (set in [`crate::app`]) bounds waiting for a
//!   connection, including opening a new one to a database that refuses or does not
//!   answer: the caller gets `PoolTimedOut`;
//! - [`Db`] bounds every statement (acquire and execution together) by what is left
//!   of the request's budget: one request's waits for the database add up to at most
//!   the timeout, however many statements it runs. This is what catches a database
//!   that accepted the connection and then hangs (a dead host, a partition), which no
//!   server-side setting can;
//! - outside a request (socket re-checks, background writes) each statement gets the
//!   whole timeout.
//!
//! An exceeded bound is a connection-level [`DbErr`], so the one error mapping
//! answers it 503 `database_unavailable`.

use std::{
    cell::Cell,
    future::Future,
    time::{Duration, Instant},
};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait, prelude::async_trait::async_trait,
};

/// The advisory lock's key for what instances starting together must not do
/// twice at once (PostgreSQL): "doorstrt".
const STARTUP_LOCK_KEY: i64 = 0x646f_6f72_7374_7274;

/// Runs `work` in one transaction that no other instance's `exclusive` work on the
/// same database interleaves with: on PostgreSQL it first takes a transaction-level
/// advisory lock (waiting for the holder to commit), on SQLite it begins with
/// `BEGIN IMMEDIATE` (one writer at a time; the next waits up to the busy timeout).
/// What instances starting together on an empty database do once: the migrations,
/// and the first signing key. Unbounded: it runs at start, not in a request.
pub async fn exclusive<T>(
    conn: &DatabaseConnection,
    work: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, DbErr>,
) -> Result<T, DbErr> {
    let txn = conn.begin_with_options(immediate()).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [STARTUP_LOCK_KEY.into()],
        ))
        .await?;
    }
    let out = work(&txn).await?;
    txn.commit().await?;
    Ok(out)
}

/// A transaction that writes from its start: on SQLite `BEGIN IMMEDIATE` takes the
/// write lock at once (the next writer waits up to the busy timeout), where a
/// deferred one that read first fails to upgrade its lock. Nothing on PostgreSQL.
fn immediate() -> TransactionOptions {
    TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    }
}

tokio::task_local! {
    /// How long the current request has waited for the database so far.
    static WAITED: Cell<Duration>;
}

/// Runs `request` with its own database budget (see the module docs). A plain
/// function, not an `async fn`: that would hold `request` twice in its state (as
/// argument and inside the scope), and every request future would be moved
/// through both.
pub fn with_request_budget<F: Future>(request: F) -> impl Future<Output = F::Output> {
    WAITED.scope(Cell::new(Duration::ZERO), request)
}

/// A database connection whose every statement is bounded in time; cheap to clone.
#[derive(Clone)]
pub struct Db {
    conn: DatabaseConnection,
    timeout: Duration,
}

impl Db {
    /// Wraps `conn`; `timeout` bounds a request's waits for the database.
    pub fn new(conn: DatabaseConnection, timeout: Duration) -> Self {
        Self { conn, timeout }
    }

    /// The pool's open connections and how many of them are idle.
    pub fn pool_stats(&self) -> (u32, usize) {
        match self.conn.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        }
    }

    /// The unbounded connection, for what is not a request: migrations at start and
    /// the cluster listener, which waits for notifications on purpose.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Runs `work` in one transaction, committed when it returns `Ok`, rolled back
    /// otherwise. The statements run on the transaction, not through this wrapper,
    /// so the whole unit is bounded by the request's budget at once.
    ///
    /// Every transaction here writes, so on SQLite each begins `IMMEDIATE`: it takes
    /// the write lock at once and waits its turn (the busy timeout). A deferred one
    /// reads first and then fails to upgrade, at once and without waiting, when
    /// another connection wrote in between (in WAL mode, `SQLITE_BUSY_SNAPSHOT`),
    /// which the room history's writer makes frequent.
    pub async fn transaction<T>(
        &self,
        work: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        self.bounded(async {
            let txn = self.conn.begin_with_options(immediate()).await?;
            let out = work(&txn).await?;
            txn.commit().await?;
            Ok(out)
        })
        .await
    }

    /// [`Self::transaction`] for a read-then-write that must not interleave with
    /// another's: on SQLite it begins with `BEGIN IMMEDIATE` (one writer at a time,
    /// the next waits up to the busy timeout, where a deferred transaction would
    /// fail to upgrade its read lock); on PostgreSQL the work locks its rows itself
    /// (`SELECT … FOR UPDATE`).
    pub async fn write_transaction<T>(
        &self,
        work: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        self.bounded(async {
            let txn = self.conn.begin_with_options(immediate()).await?;
            let out = work(&txn).await?;
            txn.commit().await?;
            Ok(out)
        })
        .await
    }

    /// Checks that the database answers, within the bound.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.bounded(self.conn.ping()).await
    }

    async fn bounded<T>(&self, work: impl Future<Output = Result<T, DbErr>>) -> Result<T, DbErr> {
        let waited = WAITED.try_with(Cell::get).unwrap_or(Duration::ZERO);
        let budget = self.timeout.saturating_sub(waited);
        let started = Instant::now();
        // Statements in flight, waiting for a connection or running: less the pool's
        // connections in use, it is how many wait.
        // A guard: a request dropped mid-statement still counts down.
        struct InFlight(metrics::Gauge);
        impl Drop for InFlight {
            fn drop(&mut self) {
                self.0.decrement(1.0);
            }
        }
        let in_flight = InFlight(metrics::gauge!("doorman_db_queries_in_flight"));
        in_flight.0.increment(1.0);
        let result = tokio::time::timeout(budget, work).await;
        drop(in_flight);
        // Outside a request there is no budget to charge; that is fine.
        let _ = WAITED.try_with(|w| w.set(w.get() + started.elapsed()));
        result.unwrap_or_else(|_| {
            // Dropping the statement's future hands its connection back to sqlx,
            // which pings it before pooling it again and drops it if that fails.
            Err(DbErr::Conn(RuntimeErr::Internal(format!(
                "no answer from the database within the {budget:?} left of {:?}",
                self.timeout
            ))))
        })
    }
}

#[async_trait]
impl ConnectionTrait for Db {
    fn get_database_backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.bounded(self.conn.execute_raw(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.bounded(self.conn.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.bounded(self.conn.query_one_raw(stmt)).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.bounded(self.conn.query_all_raw(stmt)).await
    }
}

/// Whether a database error means the database could not be reached or used.
pub fn is_unavailable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        // No connection from the pool within the timeout, the pool closed, opening a
        // connection failed, or `Db`'s own bound ran out.
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            sqlx_unavailable(e)
        }
        _ => false,
    }
}

fn sqlx_unavailable(e: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::{
        Error as Sqlx, error::DatabaseError, postgres::PgDatabaseError, sqlite::SqliteError,
    };
    match e {
        // The connection broke mid-statement or could not be (re)established.
        Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::Protocol(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed => {
            true
        }
        Sqlx::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                return pg_unavailable(pg.code());
            }
            db.try_downcast_ref::<SqliteError>()
                .and_then(|e| e.code())
                .and_then(|code| code.parse().ok())
                .is_some_and(sqlite_unavailable)
        }
        _ => false,
    }
}

/// SQLite result codes (extended or primary) that mean "not now" rather than
/// "wrong": `SQLITE_BUSY` (5: still locked after the busy timeout), `SQLITE_IOERR`
/// (10), `SQLITE_FULL` (13: the disk is full) and `SQLITE_CANTOPEN` (14: a file it
/// needs, such as the rollback journal a write opens, cannot be opened; seen when
/// the process is out of file descriptors).
pub(crate) fn sqlite_unavailable(code: i32) -> bool {
    matches!(code & 0xff, 5 | 10 | 13 | 14)
}

/// PostgreSQL SQLSTATEs that mean "not now" rather than "wrong": class 08
/// (connection exception), 57P (admin or crash shutdown, cannot connect now, the
/// database dropped), 57014 (a statement cancelled, e.g. by `statement_timeout`) and
/// 53300 (too many connections).
pub(crate) fn pg_unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code == "57014" || code == "53300"
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Database;

    #[test]
    fn sqlite_codes_of_a_database_out_of_reach_are_unavailable_and_others_are_not() {
        // SQLITE_CANTOPEN, SQLITE_IOERR_WRITE (10 | 3 << 8), SQLITE_FULL, SQLITE_BUSY_TIMEOUT.
        for code in [14, 10 | (3 << 8), 13, 5 | (3 << 8)] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE (19 | 8 << 8), SQLITE_ERROR, SQLITE_CORRUPT, SQLITE_MISUSE.
        for code in [19 | (8 << 8), 1, 11, 21] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
    }

    /// A statement SQLite needs seconds for.
    const SLOW: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                        WHERE x < 50000000) SELECT count(*) FROM c";

    #[tokio::test]
    async fn a_statement_that_does_not_answer_is_cut_off_as_unavailable() {
        let conn = Database::connect("sqlite::memory:").await.unwrap();
        let db = Db::new(conn, Duration::from_millis(200));
        let started = Instant::now();
        let err = db.execute_unprepared(SLOW).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        assert!(is_unavailable(&err), "{err}");
        assert!(matches!(
            crate::auth::Error::from(err),
            crate::auth::Error::DatabaseUnavailable(_)
        ));
    }

    #[tokio::test]
    async fn a_request_shares_one_budget_across_statements() {
        let conn = Database::connect("sqlite::memory:").await.unwrap();
        let db = Db::new(conn, Duration::from_millis(200));
        // Outside a request every statement has the whole bound.
        db.execute_unprepared("SELECT 1").await.unwrap();
        with_request_budget(async {
            assert!(db.execute_unprepared(SLOW).await.is_err());
            // The budget is spent: the next statement is not waited for at all.
            let started = Instant::now();
            assert!(db.ping().await.is_err());
            assert!(started.elapsed() < Duration::from_millis(100));
        })
        .await;
    }
}
