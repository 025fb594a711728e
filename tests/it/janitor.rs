//! The janitor deletes ended sessions, spent refresh tokens and old activity after
//! `DOORMAN_RETENTION_DAYS`, and leaves live sessions alone.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};

use crate::{client::Tokens, helpers::*};

async fn count(url: &str, sql: &str) -> i64 {
    let db = Database::connect(url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    db.close().await.ok();
    n
}

#[tokio::test]
async fn old_rows_go_and_live_sessions_stay() {
    let app = spawn_with(|c| c.retention = Duration::from_secs(2)).await;
    let email = app.new_user().await;
    let ended = app.login_tokens(&email).await;
    let live = app.login_tokens(&email).await;
    assert_eq!(app.logout(&ended).await.status(), StatusCode::NO_CONTENT);
    // The live session's first refresh token is spent by this rotation.
    let live = Tokens::from_response(app.refresh(&live.refresh).await).await;
    let sessions = "SELECT COUNT(*) AS n FROM sessions";
    let tokens = "SELECT COUNT(*) AS n FROM refresh_tokens";
    let activity = "SELECT COUNT(*) AS n FROM activity";
    assert_eq!(count(&app.database_url, sessions).await, 2);
    assert_eq!(count(&app.database_url, tokens).await, 3);
    assert!(count(&app.database_url, activity).await >= 3);

    // Past the retention, the next pass (every second at this retention) runs.
    // (Ids are stored as blobs on SQLite: select the ended one by its revocation.)
    let ended_row = "SELECT COUNT(*) AS n FROM sessions WHERE revoked_at IS NOT NULL";
    assert_eq!(count(&app.database_url, ended_row).await, 1);
    poll_until(
        Duration::from_secs(6),
        async || count(&app.database_url, ended_row).await,
        |n| *n == 0,
    )
    .await;
    poll_until(
        Duration::from_secs(3),
        async || {
            (
                count(&app.database_url, sessions).await,
                count(&app.database_url, tokens).await,
                count(&app.database_url, activity).await,
            )
        },
        // The live session and its unspent token stay; the ended session, its
        // token, the spent token and the old activity are gone.
        |n| *n == (1, 1, 0),
    )
    .await;
    assert_eq!(app.me(&live).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(&live.refresh).await.status(), StatusCode::OK);
}
