//! Administration of accounts, as `/api/admin/*` and `doorman users …` both do it:
//! the auth core's part ([`crate::auth::admin`]), the rooms' part of a deletion,
//! an audit entry for every change, and telling live sockets everywhere.
//!
//! Inside the server a session's end goes onto the core's session bus, which this
//! instance's sockets follow and the cluster bridge relays. The CLI runs no
//! bridge: it collects the ends from a bus of its own and sends them (and the
//! rooms a deletion took away) as the bridge's own notes, so running instances on
//! PostgreSQL close the sockets within a second too. On SQLite there is one
//! instance, and its periodic re-check (`DOORMAN_SWEEP_SECONDS`) closes them.

use tokio::sync::broadcast;

// The command line is the server binary's (`app`), not the library's.
#[cfg(feature = "server")]
pub(crate) mod cli;

use crate::{
    auth::{
        Auth, Error, RevocationReason, SessionEvent, SessionId, UserId,
        admin::{Account, Admin},
        audit::{self, Action, Actor},
    },
    rooms::{self, RoomName, Rooms},
};

/// Where the effects of a change must reach besides the database.
enum Reach<'a> {
    /// The server: the core's bus and the room fan-out of this instance (both
    /// relayed to the others by the cluster bridge).
    Server { auth: &'a Auth, rooms: &'a Rooms },
    /// `doorman users …`: the ends published on this bus are announced.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    Cli {
        ends: std::sync::Mutex<broadcast::Receiver<SessionEvent>>,
    },
}

/// The admin operations, by one actor.
pub(crate) struct Operations<'a> {
    admin: Admin,
    actor: Actor,
    reach: Reach<'a>,
}

/// What an operation on a user can fail with besides the core's errors.
#[derive(Debug)]
pub(crate) enum Refused {
    /// No such user.
    NotFound,
    /// An admin may not block or delete their own account.
    OwnAccount,
    /// The core's error.
    Core(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::Core(e)
    }
}

impl From<sea_orm::DbErr> for Refused {
    fn from(e: sea_orm::DbErr) -> Self {
        Refused::Core(e.into())
    }
}

impl<'a> Operations<'a> {
    /// The server's, for the admin `actor`.
    pub fn server(auth: &'a Auth, rooms: &'a Rooms, actor: UserId) -> Self {
        Self {
            admin: auth.admin(),
            actor: Actor::User(actor),
            reach: Reach::Server { auth, rooms },
        }
    }

    /// The CLI's: `admin` publishes its session ends on the bus `ends` follows.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub fn cli(admin: Admin, ends: broadcast::Receiver<SessionEvent>) -> Self {
        Self {
            admin,
            actor: Actor::Cli,
            reach: Reach::Cli {
                ends: std::sync::Mutex::new(ends),
            },
        }
    }

    /// The core's part, for reads.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    fn not_self(&self, target: UserId) -> Result<(), Refused> {
        if self.actor == Actor::User(target) {
            return Err(Refused::OwnAccount);
        }
        Ok(())
    }

    async fn audit(
        &self,
        action: Action,
        target: UserId,
        detail: Option<String>,
    ) -> Result<(), Refused> {
        audit::record(self.admin.db(), self.actor, action, Some(target), detail).await?;
        Ok(())
    }

    /// The CLI announces what ended meanwhile; the server's bus did already.
    async fn tell(&self, rooms_gone: &[RoomName]) -> Result<(), Refused> {
        match &self.reach {
            Reach::Server { rooms, .. } => {
                for room in rooms_gone {
                    rooms.gone(room).await;
                }
            }
            Reach::Cli { ends } => {
                let mut ended = Vec::new();
                {
                    let mut ends = ends.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        match ends.try_recv() {
                            Ok(SessionEvent::Ended(r)) => {
                                ended.push((r.session_id, r.user_id, r.reason));
                            }
                            Ok(_) => {}
                            // Over a thousand sessions ended in one go: the ones
                            // missed here close at the instances' next re-check.
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                eprintln!(
                                    "doorman: {n} ended sessions not announced; their sockets \
                                     close at the servers' next re-check (DOORMAN_SWEEP_SECONDS)"
                                );
                            }
                            Err(_) => break,
                        }
                    }
                }
                crate::cluster::announce(self.admin.db(), &ended, rooms_gone).await?;
            }
        }
        Ok(())
    }

    /// Grants or revokes the admin role (the command line only).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub async fn set_admin(&self, target: UserId, admin: bool) -> Result<(), Refused> {
        if !self.admin.set_admin(target, admin).await? {
            return Err(Refused::NotFound);
        }
        let action = if admin {
            Action::GrantAdmin
        } else {
            Action::RevokeAdmin
        };
        self.audit(action, target, None).await
    }

    /// Blocks an account and ends its sessions (sockets: 4403 `account_blocked`);
    /// how many sessions ended.
    pub async fn block(&self, target: UserId, reason: &str) -> Result<u64, Refused> {
        self.not_self(target)?;
        let ended = self
            .admin
            .block(target, reason)
            .await?
            .ok_or(Refused::NotFound)?;
        self.tell(&[]).await?;
        self.audit(Action::Block, target, Some(reason.to_owned()))
            .await?;
        Ok(ended)
    }

    /// Lifts a block.
    pub async fn unblock(&self, target: UserId) -> Result<(), Refused> {
        if !self.admin.unblock(target).await? {
            return Err(Refused::NotFound);
        }
        self.audit(Action::Unblock, target, None).await
    }

    /// Ends one session of the user (sockets: 4403 `session_revoked`).
    pub async fn revoke_session(&self, target: UserId, session: SessionId) -> Result<(), Refused> {
        if !self.admin.revoke_session(target, session).await? {
            return Err(Refused::NotFound);
        }
        self.tell(&[]).await?;
        self.audit(Action::RevokeSession, target, Some(session.to_string()))
            .await
    }

    /// Ends every session of the user; how many.
    pub async fn revoke_sessions(&self, target: UserId) -> Result<u64, Refused> {
        if self.admin.account(target).await?.is_none() {
            return Err(Refused::NotFound);
        }
        let ended = self
            .admin
            .revoke_sessions(target, RevocationReason::Admin)
            .await?;
        self.tell(&[]).await?;
        self.audit(
            Action::RevokeSessions,
            target,
            Some(format!("{ended} sessions")),
        )
        .await?;
        Ok(ended)
    }

    /// Deletes the account and everything of theirs: its sessions end first (their
    /// sockets close with 4403 on every instance), then in one transaction the
    /// rooms it owns (every subscriber is taken out of them), its memberships, the
    /// messages it sent that history keeps, its refresh tokens, sessions, activity
    /// and the user row, with the audit entry.
    pub async fn delete(&self, target: UserId) -> Result<(), Refused> {
        self.not_self(target)?;
        if !self.admin.begin_delete(target).await? {
            return Err(Refused::NotFound);
        }
        let actor = self.actor;
        // What SQLite's history holds and has not stored yet is stored first, so
        // that the purge below finds (and deletes) the account's latest messages.
        if let Reach::Server { rooms, .. } = &self.reach {
            rooms.history().store_held().await;
        }
        let gone = self
            .admin
            .db()
            .transaction(async |txn| {
                let gone = rooms::purge_user(txn, target).await?;
                crate::auth::admin::delete_rows(txn, target).await?;
                let detail = format!("{} owned rooms deleted", gone.len());
                audit::record(txn, actor, Action::DeleteUser, Some(target), Some(detail)).await?;
                Ok(gone)
            })
            .await?;
        if let Reach::Server { auth, .. } = &self.reach {
            auth.forget_user(target);
        }
        self.tell(&gone).await
    }

    /// One account, or `NotFound`.
    pub async fn account(&self, target: UserId) -> Result<Account, Refused> {
        self.admin.account(target).await?.ok_or(Refused::NotFound)
    }
}
