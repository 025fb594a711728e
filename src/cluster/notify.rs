//! The transport: PostgreSQL LISTEN/NOTIFY on the shared database, channels
//! `doorman_sessions` and `doorman_rooms`. Nothing to operate beside the database.

use sea_orm::sqlx::{PgPool, postgres::PgListener};
use std::time::Duration;
use tokio::sync::mpsc;

use super::{Channel, Incoming};

const SESSIONS: &str = "doorman_sessions";
const ROOMS: &str = "doorman_rooms";
/// NOTIFY payloads must stay under 8000 bytes (PostgreSQL's default page size).
const MAX_PAYLOAD: usize = 8000;
/// Larger room frames go through the table.
pub(super) const INLINE_LIMIT: usize = 7000;

/// The statement that sends `payloads` on the rooms channel, in their order, from
/// within whatever transaction runs it (delivered at its commit).
pub(super) fn rooms_statement(payloads: Vec<String>) -> sea_orm::Statement {
    statement(Channel::Rooms, payloads)
}

/// The statement that sends `payloads` on `channel`, in their order.
pub(super) fn statement(channel: Channel, payloads: Vec<String>) -> sea_orm::Statement {
    // One JSON array of the payloads, unpacked in the database: one statement, no
    // array type to bind.
    let payloads = serde_json::to_string(&payloads).unwrap_or_else(|_| "[]".to_owned());
    sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT pg_notify($1, p) FROM json_array_elements_text($2::json) WITH ORDINALITY AS t(p, i) ORDER BY i",
        [
            sea_orm::Value::from(name(channel)),
            sea_orm::Value::from(payloads),
        ],
    )
}

fn name(channel: Channel) -> &'static str {
    match channel {
        Channel::Sessions => SESSIONS,
        Channel::Rooms => ROOMS,
    }
}

pub(super) struct PgNotify {
    pool: PgPool,
}

impl PgNotify {
    /// The sending side on `pool`, and the listener task feeding `to`.
    pub(super) fn start(pool: PgPool, to: mpsc::Sender<Incoming>) -> Self {
        tokio::spawn(listen(pool.clone(), to));
        Self { pool }
    }

    /// One statement, so one round trip, however many payloads. PostgreSQL
    /// delivers a transaction's notifications in the order they were sent; the
    /// `ORDER BY` makes that the order of `payloads` (a volatile function such as
    /// `pg_notify` in the select list is evaluated after the sort). Identical
    /// payloads within one transaction would be delivered once: the bridge makes
    /// every room note unique.
    pub(super) async fn send(
        &self,
        channel: Channel,
        mut payloads: Vec<String>,
    ) -> Result<(), String> {
        // One payload over the limit would fail the whole statement: it alone is
        // dropped (and logged), as it alone would have failed on its own.
        payloads.retain(|p| {
            let fits = p.len() < MAX_PAYLOAD;
            if !fits {
                tracing::error!(
                    bytes = p.len(),
                    "a cluster note too large for NOTIFY was dropped"
                );
            }
            fits
        });
        if payloads.is_empty() {
            return Ok(());
        }
        let query = if payloads.len() == 1 {
            sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
                .bind(name(channel))
                .bind(payloads.into_iter().next())
        } else {
            sea_orm::sqlx::query(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, i) ORDER BY i",
            )
            .bind(name(channel))
            .bind(payloads)
        };
        query
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// NOTIFY → `to`, reconnecting with backoff (100 ms doubling to 5 s). Every
/// (re)connection is reported as [`Incoming::Connected`] once LISTEN is in place,
/// every loss as [`Incoming::Disconnected`].
async fn listen(pool: PgPool, to: mpsc::Sender<Incoming>) {
    let mut backoff = Duration::from_millis(100);
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
        if to.send(Incoming::Connected).await.is_err() {
            return;
        }
        // `try_recv` reports a lost connection as `None` instead of reconnecting
        // silently, so the bridge always hears of a gap.
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let channel = match n.channel() {
                        SESSIONS => Channel::Sessions,
                        ROOMS => Channel::Rooms,
                        _ => continue,
                    };
                    let payload = n.payload().to_owned();
                    if to.send(Incoming::Note(channel, payload)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster listener failed");
                    break;
                }
            }
        }
        if to.send(Incoming::Disconnected).await.is_err() {
            return;
        }
    }
}
