//! Administration (issue 34): the admin role granted by `doorman users`, the
//! `/api/admin/*` operations, blocking and deleting a user everywhere, and the
//! audit log. The two-instance tests need PostgreSQL (ignored by default, like
//! `cluster.rs`).

use std::{
    process::Output,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};
use serde_json::{Value, json};

use crate::helpers::*;

/// How soon a block, a revocation or a deletion must close a socket.
const LIVE: Duration = Duration::from_secs(1);

/// Runs `doorman users ARGS` against `database_url`.
fn users_cli(database_url: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_doorman"))
        .arg("users")
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .expect("doorman users runs")
}

/// Runs `doorman users ARGS`, expects success, returns its output.
fn cli_ok(database_url: &str, args: &[&str]) -> String {
    let out = users_cli(database_url, args);
    assert!(
        out.status.success(),
        "doorman users {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn json_of(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn no_content(resp: reqwest::Response) {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// A user made admin by the CLI, logged in with tokens.
async fn admin_of(api: &ApiClient, database_url: &str) -> Tokens {
    let email = api.new_user().await;
    cli_ok(database_url, &["grant-admin", &email]);
    api.login_tokens(&email).await
}

/// A user: email and tokens.
async fn user_of(api: &ApiClient) -> (String, Tokens) {
    let email = api.new_user().await;
    let tokens = api.login_tokens(&email).await;
    (email, tokens)
}

/// Every `(method, path)` of the spec under `/api/admin`, its parameters filled
/// in: read from the committed spec, so a new admin path is covered too.
fn admin_paths(id: &str, sid: &str) -> Vec<(Method, String)> {
    let spec: Value =
        serde_json::from_str(include_str!("../../openapi.json")).expect("openapi.json");
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/admin") {
            continue;
        }
        let path = path.replace("{id}", id).replace("{sid}", sid);
        for method in item.as_object().expect("operations").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            out.push((method, path.clone()));
        }
    }
    out
}

/// The audit log's actions (newest first) as `who` reads them, every page.
async fn audit_actions(api: &ApiClient, who: &Tokens) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = json_of(api.admin_audit(who, cursor.as_deref(), Some(2)).await).await;
        events.extend(page["events"].as_array().expect("events").iter().cloned());
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return events,
        }
    }
}

/// Rows naming `user` in the tables an account leaves rows in.
async fn rows_of(database_url: &str, user: &str, sessions: &[&str]) -> Vec<(String, i64)> {
    let db = Database::connect(database_url).await.expect("database");
    let backend = db.get_database_backend();
    let p = |n: usize| match backend {
        DatabaseBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    let user = uuid::Uuid::parse_str(user).unwrap();
    let mut out = Vec::new();
    let queries = [
        (
            "users",
            format!("SELECT COUNT(*) AS n FROM users WHERE id = {}", p(1)),
        ),
        (
            "sessions",
            format!(
                "SELECT COUNT(*) AS n FROM sessions WHERE user_id = {}",
                p(1)
            ),
        ),
        (
            "activity",
            format!(
                "SELECT COUNT(*) AS n FROM activity WHERE user_id = {}",
                p(1)
            ),
        ),
        (
            "rooms",
            format!("SELECT COUNT(*) AS n FROM rooms WHERE owner_id = {}", p(1)),
        ),
        (
            "room_members",
            format!(
                "SELECT COUNT(*) AS n FROM room_members WHERE user_id = {}",
                p(1)
            ),
        ),
        (
            "room_history",
            format!(
                "SELECT COUNT(*) AS n FROM room_history WHERE sender = {}",
                p(1)
            ),
        ),
    ];
    for (table, sql) in queries {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(backend, &sql, [user.into()]))
            .await
            .expect("count")
            .expect("a row");
        out.push((table.to_owned(), row.try_get::<i64>("", "n").expect("n")));
    }
    for sid in sessions {
        let sid = uuid::Uuid::parse_str(sid).unwrap();
        let sql = format!(
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE session_id = {}",
            p(1)
        );
        let row = db
            .query_one_raw(Statement::from_sql_and_values(backend, &sql, [sid.into()]))
            .await
            .expect("count")
            .expect("a row");
        out.push((
            format!("refresh_tokens of {sid}"),
            row.try_get::<i64>("", "n").expect("n"),
        ));
    }
    db.close().await.ok();
    out
}

#[tokio::test]
async fn non_admins_get_403_and_strangers_401_on_every_admin_path() {
    let app = spawn_app().await;
    let user = app.user_with_tokens().await;
    let other = app.user_with_tokens().await;
    let paths = admin_paths(&other.user_id, &other.session_id);
    assert_eq!(paths.len(), 8, "{paths:?}");
    // A body that would be valid, so that nothing but the caller decides.
    let body = json!({"reason": "spam"});
    for (method, path) in paths {
        let resp = app.call(method.clone(), &path, &user).json(&body).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert_error(resp, 403, "forbidden").await;
        let resp = app.call(method.clone(), &path, Anonymous).json(&body).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_error(resp, 401, "missing_credentials").await;
    }
    // Nothing happened to the other user; nothing was audited.
    assert_eq!(app.me(&other).await.status(), StatusCode::OK);
    let admin = admin_of(&app, &app.database_url).await;
    assert_eq!(audit_actions(&app, &admin).await.len(), 1, "only the grant");
}

#[tokio::test]
async fn the_cli_grants_the_role_and_admins_search_users_a_page_at_a_time() {
    let app = spawn_app().await;
    let admin = admin_of(&app, &app.database_url).await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let mut ids = Vec::new();
    for i in 0..5 {
        let resp = app
            .register_json(&json!({
                "email": format!("p{i}-{marker}@example.org"),
                "password": PASSWORD,
            }))
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        ids.push(
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // One found by display name alone, in another case.
    let resp = app
        .register_json(&json!({
            "email": format!("q-{}@example.org", uuid::Uuid::new_v4().simple()),
            "password": PASSWORD,
            "display_name": format!("Named {}", marker.to_uppercase()),
        }))
        .await;
    ids.push(
        resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = json_of(
            app.admin_users(&admin, Some(&marker), cursor.as_deref(), Some(2))
                .await,
        )
        .await;
        pages += 1;
        for u in page["users"].as_array().unwrap() {
            assert_eq!(u["blocked"], false);
            assert_eq!(u["is_admin"], false);
            seen.push(u["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every match once, in registration order");

    // Without a query: everyone, the admin included and marked so.
    let all = json_of(app.admin_users(&admin, None, None, Some(100)).await).await;
    let listed = all["users"].as_array().unwrap();
    assert_eq!(listed.len(), 7);
    assert!(
        listed
            .iter()
            .any(|u| u["id"] == admin.user_id.as_str() && u["is_admin"] == true)
    );
    // LIKE's wildcards are text: `%` finds nobody.
    let none = json_of(app.admin_users(&admin, Some("%"), None, None).await).await;
    assert_eq!(none["users"], json!([]));
    assert_eq!(none["next"], Value::Null);
    // Bad input is a 400, never a 500.
    assert_error(
        app.admin_users(&admin, None, Some("nope"), None).await,
        400,
        "invalid_input",
    )
    .await;
    assert_error(
        app.admin_users(&admin, None, None, Some(0)).await,
        400,
        "invalid_input",
    )
    .await;
    assert_error(
        app.admin_users(&admin, Some(&"x".repeat(300)), None, None)
            .await,
        400,
        "invalid_input",
    )
    .await;
    assert_error(
        app.admin_user(&admin, "not-a-uuid").await,
        400,
        "invalid_input",
    )
    .await;
    assert_error(
        app.admin_user(&admin, &uuid::Uuid::new_v4().to_string())
            .await,
        404,
        "not_found",
    )
    .await;

    // The CLI lists the same people.
    let listed = cli_ok(&app.database_url, &["list", "--query", &marker]);
    assert_eq!(listed.lines().count(), 1 + 6, "{listed}");
    // Revoked, the role stops working on the next request.
    let me = app.me(&admin).await.json::<Value>().await.unwrap();
    cli_ok(
        &app.database_url,
        &["revoke-admin", me["user"]["email"].as_str().unwrap()],
    );
    assert_error(
        app.admin_users(&admin, None, None, None).await,
        403,
        "forbidden",
    )
    .await;
    // Unknown users are an error on the command line, not a panic.
    let out = users_cli(&app.database_url, &["grant-admin", "nobody@example.org"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));
}

#[tokio::test]
async fn a_blocked_user_cannot_sign_in_refresh_or_connect_and_their_sockets_close() {
    let app = spawn_app().await;
    let admin = admin_of(&app, &app.database_url).await;
    let (email, victim) = user_of(&app).await;
    let cookies = app.login_cookies(&email).await;
    let (mut ws, _) = app.ws_welcomed(&victim).await;
    let (mut ws_cookie, _) = app.ws_welcomed(cookies.access()).await;
    let bystander = app.user_with_tokens().await;
    let (mut other_ws, _) = app.ws_welcomed(&bystander).await;

    let started = Instant::now();
    no_content(app.admin_block(&admin, &victim.user_id, "spam").await).await;
    for ws in [&mut ws, &mut ws_cookie] {
        let (code, reason) = expect_close(ws, LIVE).await;
        assert_eq!((code, reason.as_str()), (4403, "account_blocked"));
    }
    assert!(started.elapsed() < LIVE, "{:?}", started.elapsed());
    assert_alive(&mut other_ws).await;

    // Login with the right password: 403; with a wrong one: the usual 401.
    assert_error(app.login(&email, PASSWORD).await, 403, "account_blocked").await;
    assert_error(
        app.login(&email, "wrong password!").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_error(app.refresh(&victim.refresh).await, 401, "session_revoked").await;
    assert_eq!(app.me(&victim).await.status(), StatusCode::FORBIDDEN);
    let refused = app
        .ws(&victim)
        .connect()
        .await
        .expect_err("handshake refused");
    assert_eq!(handshake_status(&refused), 403);
    assert_eq!(handshake_body(&refused)["error"], "account_blocked");

    let detail = json_of(app.admin_user(&admin, &victim.user_id).await).await;
    assert_eq!(detail["blocked"], true);
    assert_eq!(detail["user"]["blocked_reason"], "spam");
    assert_eq!(detail["sessions"], json!([]));
    // An admin cannot block or delete themselves.
    assert_error(
        app.admin_block(&admin, &admin.user_id, "oops").await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        app.admin_delete_user(&admin, &admin.user_id).await,
        403,
        "forbidden",
    )
    .await;
    // A reason is required.
    let resp = app
        .call(
            Method::PUT,
            &format!("/api/admin/users/{}/block", victim.user_id),
            &admin,
        )
        .json(&json!({}))
        .await;
    assert_error(resp, 400, "invalid_input").await;

    // Unblocked: the user signs in again.
    no_content(app.admin_unblock(&admin, &victim.user_id).await).await;
    let again = app.login_tokens(&email).await;
    app.ws_welcomed(&again).await;
    let detail = json_of(app.admin_user(&admin, &victim.user_id).await).await;
    assert_eq!(detail["blocked"], false);
    assert_eq!(detail["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn admins_revoke_one_session_or_all_and_their_sockets_close() {
    let app = spawn_app().await;
    let admin = admin_of(&app, &app.database_url).await;
    let (email, one) = user_of(&app).await;
    let two = app.login_tokens(&email).await;
    let (mut ws_one, _) = app.ws_welcomed(&one).await;
    let (mut ws_two, _) = app.ws_welcomed(&two).await;

    let detail = json_of(app.admin_user(&admin, &one.user_id).await).await;
    let sessions = detail["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s["live_sockets"] == 1), "{detail}");
    assert_eq!(detail["live_sockets"], 2);

    no_content(
        app.admin_revoke_session(&admin, &one.user_id, &one.session_id)
            .await,
    )
    .await;
    let (code, reason) = expect_close(&mut ws_one, LIVE).await;
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    // The user's other device hears why, and lives.
    let notice = next_json_within(&mut ws_two, LIVE).await;
    assert_eq!(notice["kind"], "session_ended", "{notice}");
    assert_eq!(notice["session_id"], one.session_id.as_str());
    assert_eq!(notice["reason"], "admin");
    assert_alive(&mut ws_two).await;
    // Again, or another user's session under this user: 404.
    assert_error(
        app.admin_revoke_session(&admin, &one.user_id, &one.session_id)
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.admin_revoke_session(&admin, &one.user_id, &admin.session_id)
            .await,
        404,
        "not_found",
    )
    .await;

    no_content(app.admin_revoke_sessions(&admin, &one.user_id).await).await;
    let (code, reason) = expect_close(&mut ws_two, LIVE).await;
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    assert_eq!(app.me(&two).await.status(), StatusCode::UNAUTHORIZED);
    // Not blocked: the user may sign in again.
    app.login_tokens(&email).await;
    assert_error(
        app.admin_revoke_sessions(&admin, &uuid::Uuid::new_v4().to_string())
            .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_user_leaves_nothing_of_theirs_and_closes_their_sockets() {
    let app = spawn_app().await;
    let admin = admin_of(&app, &app.database_url).await;
    let (email, victim) = user_of(&app).await;
    let second = app.login_tokens(&email).await;
    let friend = app.user_with_tokens().await;
    // A room they own with a member, a room of someone else's they belong to, a
    // message they sent that history keeps, a failed login in their activity.
    app.private_room(&victim, "private:victims", &[&friend])
        .await;
    app.private_room(&friend, "private:friends", &[&victim])
        .await;
    assert_eq!(
        app.publish(&victim, "lobby", "hello").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.login(&email, "wrong password!").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (mut ws, _) = app.ws_welcomed(&victim).await;
    let (mut friend_ws, _) = app.ws_welcomed(&friend).await;
    subscribe(&mut friend_ws, "private:victims").await;

    let before = rows_of(
        &app.database_url,
        &victim.user_id,
        &[&victim.session_id, &second.session_id],
    )
    .await;
    assert!(before.iter().all(|(_, n)| *n > 0), "{before:?}");

    no_content(app.admin_delete_user(&admin, &victim.user_id).await).await;
    let (code, reason) = expect_close(&mut ws, LIVE).await;
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    expect_removed_with_the_room(&mut friend_ws, "private:victims", LIVE).await;
    assert_alive(&mut friend_ws).await;

    let after = rows_of(
        &app.database_url,
        &victim.user_id,
        &[&victim.session_id, &second.session_id],
    )
    .await;
    assert!(after.iter().all(|(_, n)| *n == 0), "{after:?}");
    assert_error(
        app.login(&email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(app.me(&second).await.status(), StatusCode::UNAUTHORIZED);
    assert_error(
        app.admin_user(&admin, &victim.user_id).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.admin_delete_user(&admin, &victim.user_id).await,
        404,
        "not_found",
    )
    .await;
    // The friend's own room lives on, without the deleted member; the email is free.
    assert_eq!(
        app.members(&friend, "private:friends")
            .await
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn every_admin_action_from_the_api_or_the_cli_is_in_the_audit_log() {
    let app = spawn_app().await;
    let admin = admin_of(&app, &app.database_url).await;
    let (email, user) = user_of(&app).await;
    let url = &app.database_url;
    no_content(
        app.admin_revoke_session(&admin, &user.user_id, &user.session_id)
            .await,
    )
    .await;
    no_content(app.admin_revoke_sessions(&admin, &user.user_id).await).await;
    no_content(app.admin_block(&admin, &user.user_id, "abuse").await).await;
    no_content(app.admin_unblock(&admin, &user.user_id).await).await;
    cli_ok(url, &["block", &email, "--reason", "from the shell"]);
    cli_ok(url, &["unblock", &user.user_id]);
    cli_ok(url, &["grant-admin", &email]);
    cli_ok(url, &["revoke-admin", &email]);
    let shown = cli_ok(url, &["show", &email]);
    assert!(shown.contains(&user.user_id), "{shown}");
    no_content(app.admin_delete_user(&admin, &user.user_id).await).await;

    let events = audit_actions(&app, &admin).await;
    let got: Vec<(String, String)> = events
        .iter()
        .rev()
        .map(|e| {
            let actor = if e["actor_id"] == "cli" { "cli" } else { "api" };
            (actor.to_owned(), e["action"].as_str().unwrap().to_owned())
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("cli", "grant_admin"),
        ("api", "revoke_session"),
        ("api", "revoke_sessions"),
        ("api", "block"),
        ("api", "unblock"),
        ("cli", "block"),
        ("cli", "unblock"),
        ("cli", "grant_admin"),
        ("cli", "revoke_admin"),
        ("api", "delete_user"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(got, want);
    for e in &events[..events.len() - 1] {
        assert_eq!(e["target_id"], user.user_id.as_str(), "{e}");
        if e["actor_id"] != "cli" {
            assert_eq!(e["actor_id"], admin.user_id.as_str());
        }
        time::OffsetDateTime::parse(
            e["at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339");
    }
    let block = events
        .iter()
        .find(|e| e["action"] == "block" && e["actor_id"] != "cli")
        .unwrap();
    assert_eq!(block["detail"], "abuse");
    assert_error(
        app.admin_audit(&admin, Some("x"), None).await,
        400,
        "invalid_input",
    )
    .await;
}

#[tokio::test]
async fn the_cli_blocks_and_deletes_while_the_server_runs() {
    // A short sweep: on SQLite the CLI cannot reach the server's sockets, and the
    // server's periodic re-check closes them (on PostgreSQL, the notes do at once;
    // see the two-instance test).
    let app = spawn_with(|c| c.sweep = Duration::from_millis(300)).await;
    let url = &app.database_url;
    let (email, user) = user_of(&app).await;
    let (mut ws, _) = app.ws_welcomed(&user).await;
    let out = cli_ok(url, &["block", &email, "--reason", "spam"]);
    assert!(out.contains("ended 1 sessions"), "{out}");
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!((code, reason.as_str()), (4403, "account_blocked"));
    assert_error(app.login(&email, PASSWORD).await, 403, "account_blocked").await;
    let listed = cli_ok(url, &["list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&email) && l.contains("blocked")),
        "{listed}"
    );
    cli_ok(url, &["unblock", &email]);
    let again = app.login_tokens(&email).await;
    let (mut ws, _) = app.ws_welcomed(&again).await;
    cli_ok(url, &["delete", &email]);
    let (code, _) = expect_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(code, 4403);
    assert_error(
        app.login(&email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let out = users_cli(url, &["block", &email, "--reason", "x"]);
    assert!(!out.status.success());
    let out = users_cli(url, &["block", "not an email", "--reason", "x"]);
    assert!(!out.status.success());
}

/// Two real server processes on one PostgreSQL database.
struct Pair {
    a: ServerProcess,
    b: ServerProcess,
    db: PgDatabase,
    _dir: tempfile::TempDir,
}

async fn two_instances() -> Pair {
    let db = PgDatabase::create()
        .await
        .expect("two-instance tests need DOORMAN_TEST_DATABASE_URL=postgres://…");
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("DATABASE_URL", db.url.clone()),
        ("DOORMAN_LOGIN_PER_MINUTE", "10000".to_owned()),
        // Long: only the notes between instances can close sockets in time.
        ("DOORMAN_SWEEP_SECONDS", "30".to_owned()),
        ("DOORMAN_PUBLIC_URL", "http://doorman.test".to_owned()),
    ];
    let a = ServerProcess::start(&envs, &dir.path().join("a.log")).await;
    let b = ServerProcess::start(&envs, &dir.path().join("b.log")).await;
    Pair {
        a,
        b,
        db,
        _dir: dir,
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: DOORMAN_TEST_DATABASE_URL=postgres://… cargo test -- --include-ignored"]
async fn block_and_delete_close_sockets_on_every_instance_within_a_second() {
    let pair = two_instances().await;
    let (a, b) = (&pair.a, &pair.b);
    let admin = admin_of(a, &pair.db.url).await;

    // Blocked through A: the socket on B closes.
    let (email, user) = user_of(a).await;
    let (mut on_b, _) = b.ws_welcomed(&user).await;
    let started = Instant::now();
    no_content(a.admin_block(&admin, &user.user_id, "spam").await).await;
    let (code, reason) = expect_close(&mut on_b, LIVE).await;
    assert_eq!((code, reason.as_str()), (4403, "account_blocked"));
    eprintln!("block on A → close on B: {:?}", started.elapsed());
    assert_error(b.login(&email, PASSWORD).await, 403, "account_blocked").await;
    let refused = b.ws(&user).connect().await.expect_err("handshake refused");
    assert_eq!(handshake_status(&refused), 403);
    no_content(b.admin_unblock(&admin, &user.user_id).await).await;

    // B counts a socket on A in the user's detail.
    let again = b.login_tokens(&email).await;
    let (mut on_a, _) = a.ws_welcomed(&again).await;
    let counted = poll_until(
        Duration::from_secs(3),
        async || json_of(b.admin_user(&admin, &user.user_id).await).await["live_sockets"].clone(),
        |n| *n == 1,
    )
    .await;
    assert_eq!(counted, 1);

    // Deleted through B: the socket on A closes.
    let started = Instant::now();
    no_content(b.admin_delete_user(&admin, &user.user_id).await).await;
    let (code, reason) = expect_close(&mut on_a, LIVE).await;
    assert_eq!((code, reason.as_str()), (4403, "session_revoked"));
    eprintln!("delete on B → close on A: {:?}", started.elapsed());

    // The CLI, a third process, reaches both instances' sockets through the same notes.
    let (email, user) = user_of(a).await;
    let (mut on_a, _) = a.ws_welcomed(&user).await;
    let (mut on_b, _) = b.ws_welcomed(&user).await;
    let started = Instant::now();
    cli_ok(
        &pair.db.url,
        &["block", &email, "--reason", "from the shell"],
    );
    for ws in [&mut on_a, &mut on_b] {
        let (code, reason) = expect_close(ws, LIVE).await;
        assert_eq!((code, reason.as_str()), (4403, "account_blocked"));
    }
    eprintln!(
        "doorman users block → close on A and B: {:?}",
        started.elapsed()
    );
    cli_ok(&pair.db.url, &["unblock", &email]);
    let again = a.login_tokens(&email).await;
    let (mut on_b, _) = b.ws_welcomed(&again).await;
    cli_ok(&pair.db.url, &["delete", &email]);
    let (code, _) = expect_close(&mut on_b, LIVE).await;
    assert_eq!(code, 4403);
}

#[tokio::test]
async fn an_admins_cookie_changes_nothing_without_an_allowed_origin() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    cli_ok(&app.database_url, &["grant-admin", &email]);
    let cookies = app.login_cookies(&email).await;
    let (_, victim) = user_of(&app).await;
    // A page on another site cannot make the admin's browser block or delete.
    for origin in [None, Some("https://evil.example")] {
        let mut call = app.admin_block(cookies.access(), &victim.user_id, "csrf");
        if let Some(o) = origin {
            call = call.origin(o);
        }
        assert_error(call.await, 403, "origin_refused").await;
        let mut call = app.admin_delete_user(cookies.access(), &victim.user_id);
        if let Some(o) = origin {
            call = call.origin(o);
        }
        assert_error(call.await, 403, "origin_refused").await;
    }
    assert_eq!(app.me(&victim).await.status(), StatusCode::OK);
    // Reading needs no Origin; the admin's own page may change things.
    json_of(app.admin_user(cookies.access(), &victim.user_id).await).await;
    let call = app
        .admin_block(cookies.access(), &victim.user_id, "from the admin page")
        .origin(&app.origin());
    no_content(call.await).await;
    assert_eq!(app.me(&victim).await.status(), StatusCode::FORBIDDEN);
}
