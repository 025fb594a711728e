//! The session store's own suite, run on every database backend at hand (as Kratos
//! runs one store suite on every backend): SQLite always, PostgreSQL too when
//! `DOORMAN_TEST_DATABASE_URL` names a server to create a throw-away database on.

use std::time::Duration;

use entity::user;
use migration::MigratorTrait;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, Set};
use uuid::Uuid;

use super::{ClientInfo, SessionSettings, SessionStore};
use crate::auth::assurance::{Amr, Method};

fn pwd() -> Amr {
    Amr::of(Method::Pwd)
}
use crate::auth::{
    AuthError, Error, RevocationReason, SessionBus, SessionId, UserId, accounts::now, db::Db,
};

/// One backend for one test: the store, and what to drop afterwards.
struct Backend {
    name: &'static str,
    store: SessionStore,
    bus: SessionBus,
    _sqlite: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Backend {
    async fn cleanup(self) {
        if let Some((admin, name)) = self.postgres {
            drop(self.store);
            if let Ok(db) = Database::connect(&admin).await {
                let _ = db
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
    }
}

fn settings(idle: Duration, grace: Duration) -> SessionSettings {
    SessionSettings {
        absolute: Duration::from_secs(3600),
        idle,
        refresh_grace: grace,
    }
}

/// A fresh, migrated database on each backend at hand.
async fn backends(settings: SessionSettings) -> Vec<Backend> {
    let mut all = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/store.db?mode=rwc", dir.path().display());
    all.push(backend("sqlite", &url, settings.clone(), Some(dir), None).await);
    if let Ok(admin) = std::env::var("DOORMAN_TEST_DATABASE_URL") {
        let name = format!("doorman_store_{}", Uuid::new_v4().simple());
        let db = Database::connect(&admin).await.expect("PostgreSQL answers");
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a throw-away database");
        let url = format!("{}/{name}", admin.rsplit_once('/').expect("a URL").0);
        all.push(backend("postgres", &url, settings, None, Some((admin, name))).await);
    }
    all
}

async fn backend(
    name: &'static str,
    url: &str,
    settings: SessionSettings,
    sqlite: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
) -> Backend {
    let conn = Database::connect(url).await.expect("connect");
    migration::Migrator::up(&conn, None)
        .await
        .expect("migrations");
    let bus = SessionBus::new();
    Backend {
        name,
        store: SessionStore::new(Db::new(conn, Duration::from_secs(5)), settings, bus.clone()),
        bus,
        _sqlite: sqlite,
        postgres,
    }
}

/// A user row for sessions to belong to.
async fn user(store: &SessionStore) -> UserId {
    let id = Uuid::now_v7();
    user::ActiveModel {
        id: Set(id),
        email: Set(format!("{}@example.org", id.simple())),
        display_name: Set("test".into()),
        password_hash: Set("not a hash".into()),
        created_at: Set(now()),
        email_verified_at: Set(None),
        ..Default::default()
    }
    .insert(&store.db)
    .await
    .expect("insert a user");
    UserId(id)
}

fn ended<T>(result: Result<T, Error>) -> AuthError {
    match result {
        Err(Error::Auth(e)) => e,
        Err(other) => panic!("expected a credential error, got {other:?}"),
        Ok(_) => panic!("expected a credential error, got success"),
    }
}

#[tokio::test]
async fn an_open_session_is_active_until_revoked_and_its_end_is_announced() {
    for b in backends(settings(Duration::from_secs(60), Duration::from_secs(10))).await {
        let store = &b.store;
        let user = user(store).await;
        let opened = store
            .open(user, ClientInfo::default(), pwd())
            .await
            .unwrap();
        let id = SessionId(opened.session.id);
        assert!(store.active(id).await.is_ok(), "{}", b.name);
        assert!(store.check(id).await.is_ok(), "{}", b.name);

        let mut events = b.bus.subscribe();
        assert!(
            store
                .revoke(id, user, RevocationReason::Logout)
                .await
                .unwrap()
        );
        let event = events.try_recv().expect("the end is announced");
        let crate::auth::SessionEvent::Ended(event) = event else {
            panic!("a session end, not {event:?}");
        };
        assert_eq!(event.session_id, id);
        assert_eq!(ended(store.active(id).await), AuthError::SessionRevoked);
        assert_eq!(ended(store.check(id).await), AuthError::SessionRevoked);
        // Once only.
        assert!(
            !store
                .revoke(id, user, RevocationReason::Logout)
                .await
                .unwrap()
        );
        assert!(
            store.list_active(user).await.unwrap().is_empty(),
            "{}",
            b.name
        );
        b.cleanup().await;
    }
}

#[tokio::test]
async fn a_refresh_token_rotates_once_and_a_late_reuse_ends_the_session() {
    for b in backends(settings(
        Duration::from_secs(60),
        Duration::from_millis(300),
    ))
    .await
    {
        let store = &b.store;
        let user = user(store).await;
        let opened = store
            .open(user, ClientInfo::default(), pwd())
            .await
            .unwrap();
        let first = opened.refresh_token;
        let second = store.rotate(&first).await.unwrap().refresh_token;
        assert_ne!(first, second);
        // A concurrent re-presentation gets the same successor, not a second chain.
        let again = store.rotate(&first).await.unwrap().refresh_token;
        assert_eq!(again, second, "{}", b.name);

        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            ended(store.rotate(&first).await),
            AuthError::RefreshTokenReused
        );
        let id = SessionId(opened.session.id);
        assert_eq!(ended(store.check(id).await), AuthError::SessionRevoked);
        assert_eq!(
            ended(store.rotate(&second).await),
            AuthError::SessionRevoked,
            "{}",
            b.name
        );
        b.cleanup().await;
    }
}

#[tokio::test]
async fn a_user_revokes_only_their_own_sessions() {
    for b in backends(settings(Duration::from_secs(60), Duration::from_secs(10))).await {
        let store = &b.store;
        let (ann, bob) = (user(store).await, user(store).await);
        let anns = store.open(ann, ClientInfo::default(), pwd()).await.unwrap();
        let bobs = store.open(bob, ClientInfo::default(), pwd()).await.unwrap();
        let (anns, bobs) = (SessionId(anns.session.id), SessionId(bobs.session.id));
        let reason = RevocationReason::Revoked;
        assert!(!store.revoke_own(bobs, ann, reason).await.unwrap());
        assert!(
            !store
                .revoke_own(SessionId(Uuid::new_v4()), ann, reason)
                .await
                .unwrap()
        );
        assert!(store.check(bobs).await.is_ok(), "{}", b.name);
        assert!(store.revoke_own(anns, ann, reason).await.unwrap());
        assert_eq!(
            store
                .revoke_all(bob, None, RevocationReason::RevokedAll)
                .await
                .unwrap(),
            1
        );
        assert_eq!(ended(store.check(bobs).await), AuthError::SessionRevoked);
        b.cleanup().await;
    }
}

#[tokio::test]
async fn an_idle_session_expires_and_the_recheck_says_so() {
    for b in backends(settings(
        Duration::from_millis(300),
        Duration::from_secs(10),
    ))
    .await
    {
        let store = &b.store;
        let user = user(store).await;
        let opened = store
            .open(user, ClientInfo::default(), pwd())
            .await
            .unwrap();
        let id = SessionId(opened.session.id);
        assert_eq!(store.list_active(user).await.unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The re-check of live sockets reads the row and records no use.
        assert_eq!(ended(store.check(id).await), AuthError::SessionExpired);
        assert!(
            store.list_active(user).await.unwrap().is_empty(),
            "{}",
            b.name
        );
        assert_eq!(
            ended(store.rotate(&opened.refresh_token).await),
            AuthError::SessionExpired
        );
        b.cleanup().await;
    }
}
