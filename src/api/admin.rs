//! `/api/admin/*`: find users, see their sessions and live sockets, end sessions,
//! block, unblock and delete accounts, and read the audit log (tag `Admin`).
//!
//! Every operation takes the caller's credential like any other ([`Authenticated`]:
//! 401 without one; a cookie credential on an unsafe method needs an allowed
//! `Origin`, the CSRF rule) and then asks the database whether the caller holds the
//! admin role, on every request: 403 `forbidden` otherwise. The role is granted
//! only by `doorman users grant-admin`.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ApiTags, text::Text};
use crate::{
    Doorman,
    admin::{Operations, Refused},
    auth::{SessionId, UserId, admin::Account, audit},
    extract::Authenticated,
    http::error::{Error, Fail, error_set},
};

error_set!(AdminReadErrors: 400, 401, 403, 404, 503);
error_set!(AdminBodyErrors: 400, 401, 403, 404, 408, 413, 415, 503);

/// Users or audit entries per page when the request names no `limit`, and the most
/// it may name.
const DEFAULT_PAGE: u32 = 50;

/// An account as an admin sees it.
#[derive(Object)]
pub struct AdminUser {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub created_at: OffsetDateTime,
    /// Holds the admin role (granted by `doorman users grant-admin`).
    pub is_admin: bool,
    /// Blocked: no login (403 `account_blocked`), no session.
    pub blocked: bool,
    /// Since when, while blocked; `null` otherwise.
    #[oai(nullable)]
    pub blocked_at: Option<OffsetDateTime>,
    /// The reason the blocking admin gave, while blocked; `null` otherwise.
    #[oai(nullable)]
    pub blocked_reason: Option<String>,
    /// When the user proved the address (a verification or reset link); `null`
    /// until then.
    #[oai(nullable)]
    pub email_verified_at: Option<OffsetDateTime>,
}

impl From<Account> for AdminUser {
    fn from(a: Account) -> Self {
        Self {
            id: a.user.id.0,
            email: a.user.email,
            display_name: a.user.display_name,
            created_at: a.user.created_at,
            is_admin: a.is_admin,
            blocked: a.blocked_at.is_some(),
            blocked_at: a.blocked_at,
            blocked_reason: a.blocked_reason,
            email_verified_at: a.user.email_verified_at,
        }
    }
}

/// A page of users.
#[derive(Object)]
pub struct AdminUserPage {
    pub users: Vec<AdminUser>,
    /// The `cursor` of the next page; absent on the last.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<Uuid>,
}

/// One active session of a user.
#[derive(Object)]
pub struct AdminSession {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    /// The absolute expiry.
    pub expires_at: OffsetDateTime,
    /// The session expires here unless used before.
    pub idle_expires_at: OffsetDateTime,
    #[oai(nullable)]
    pub user_agent: Option<String>,
    #[oai(nullable)]
    pub ip: Option<String>,
    /// Open WebSockets of this session, on every instance (as this instance last
    /// heard from the others, at most a fraction of a second ago).
    pub live_sockets: u64,
}

/// A user, their active sessions and whether they are blocked.
#[derive(Object)]
pub struct AdminUserDetail {
    pub user: AdminUser,
    /// The user's active sessions, newest first.
    pub sessions: Vec<AdminSession>,
    /// Open WebSockets of all the user's sessions, on every instance.
    pub live_sockets: u64,
    /// Whether the account is blocked (as `user.blocked`).
    pub blocked: bool,
}

/// Why the account is blocked, for the audit log and other admins.
#[derive(Object)]
pub struct BlockRequest {
    /// 1 to 500 characters.
    #[oai(validator(min_length = 1, max_length = 500))]
    pub reason: Text,
}

/// One admin action.
#[derive(Object)]
pub struct AuditEvent {
    /// The admin's user id, or `cli` for `doorman users …`.
    pub actor_id: String,
    /// `grant_admin`, `revoke_admin`, `block`, `unblock`, `revoke_session`,
    /// `revoke_sessions` or `delete_user`.
    pub action: String,
    /// The user acted on.
    #[oai(nullable)]
    pub target_id: Option<Uuid>,
    pub at: OffsetDateTime,
    /// The block's reason, the revoked session, or what a deletion took.
    #[oai(nullable)]
    pub detail: Option<String>,
}

impl From<audit::Entry> for AuditEvent {
    fn from(e: audit::Entry) -> Self {
        Self {
            actor_id: e.actor_id,
            action: e.action,
            target_id: e.target_id,
            at: e.at,
            detail: e.detail,
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Object)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The `cursor` of the next (older) page; absent on the last.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<Uuid>,
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Self {
        match r {
            Refused::NotFound => Error::NotFound,
            Refused::OwnAccount => {
                Error::Forbidden("an admin cannot block or delete their own account")
            }
            Refused::Core(e) => e.into(),
        }
    }
}

/// The operations of the caller, when they hold the admin role; 403 otherwise.
async fn admin<'a>(state: &'a Doorman, auth: &Authenticated) -> Result<Operations<'a>, Error> {
    let caller = auth.0.user_id;
    if !state.auth.admin().is_admin(caller).await? {
        return Err(Error::Forbidden("admins only"));
    }
    Ok(Operations::server(&state.auth, &state.rooms, caller))
}

/// [`admin`] for an operation that changes something: it also needs a recent
/// authentication (403 `step_up_required` otherwise).
async fn admin_acting<'a>(
    state: &'a Doorman,
    auth: &Authenticated,
) -> Result<Operations<'a>, Error> {
    let ops = admin(state, auth).await?;
    state.auth.require_recent(&auth.0).await?;
    Ok(ops)
}

/// Administration: `/api/admin/*` (tag `Admin`), for holders of the admin role.
/// The operations that change something also need a recent authentication of the
/// admin's session (403 `step_up_required`; `POST /api/auth/reauth`).
pub struct AdminApi;

#[OpenApi(prefix_path = "/api/admin", tag = "ApiTags::Admin")]
impl AdminApi {
    /// Find users
    ///
    /// Users whose email or display name contains `query` (any case), in the order
    /// they registered, `limit` (1 to 100, default 50) at a time; `next` is the
    /// `cursor` of the next page.
    #[oai(path = "/users", method = "get", operation_id = "adminListUsers")]
    async fn users(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        /// A substring of the email or display name, at most 254 characters.
        #[oai(validator(max_length = 254))]
        query: Query<Option<String>>,
        /// The previous page's `next`.
        cursor: Query<Option<Uuid>>,
        /// Users per page, 1 to 100 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<AdminUserPage>, Fail<AdminReadErrors>> {
        let ops = admin(&state, &auth).await?;
        let limit = limit.0.unwrap_or(DEFAULT_PAGE).clamp(1, 100);
        let (users, next) = ops
            .admin()
            .search(query.0.as_deref(), cursor.0.map(UserId), u64::from(limit))
            .await?;
        Ok(Json(AdminUserPage {
            users: users.into_iter().map(AdminUser::from).collect(),
            next: next.map(|n| n.0),
        }))
    }

    /// One user
    ///
    /// The account, its active sessions with their live sockets on every instance,
    /// and whether it is blocked.
    #[oai(path = "/users/:id", method = "get", operation_id = "adminGetUser")]
    async fn user(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        id: Path<Uuid>,
    ) -> Result<Json<AdminUserDetail>, Fail<AdminReadErrors>> {
        let ops = admin(&state, &auth).await?;
        let target = UserId(id.0);
        let account = ops.account(target).await.map_err(Error::from)?;
        let sessions: Vec<AdminSession> = ops
            .admin()
            .sessions(target)
            .await?
            .into_iter()
            .map(|s| AdminSession {
                live_sockets: state.registry.live_sockets(s.id) as u64,
                id: s.id.0,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                idle_expires_at: s.idle_expires_at,
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect();
        let blocked = account.blocked_at.is_some();
        Ok(Json(AdminUserDetail {
            user: account.into(),
            live_sockets: sessions.iter().map(|s| s.live_sockets).sum(),
            sessions,
            blocked,
        }))
    }

    /// Revoke one session of a user
    ///
    /// Its sockets close with 4403 `session_revoked` on every instance. 404 when
    /// the session is not the user's or not active.
    ///
    /// Needs a recent authentication of the admin's session (403
    /// `step_up_required`; `POST /api/auth/reauth`).
    #[oai(
        path = "/users/:id/sessions/:sid",
        method = "delete",
        operation_id = "adminRevokeSession"
    )]
    async fn revoke_session(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        id: Path<Uuid>,
        sid: Path<Uuid>,
    ) -> Result<Done, Fail<AdminReadErrors>> {
        let ops = admin_acting(&state, &auth).await?;
        ops.revoke_session(UserId(id.0), SessionId(sid.0))
            .await
            .map_err(Error::from)?;
        Ok(Done::NoContent)
    }

    /// Revoke every session of a user
    ///
    /// Disconnects the user everywhere: every socket closes with 4403
    /// `session_revoked` on every instance. The user may sign in again.
    ///
    /// Needs a recent authentication of the admin's session (403
    /// `step_up_required`; `POST /api/auth/reauth`).
    #[oai(
        path = "/users/:id/sessions",
        method = "delete",
        operation_id = "adminRevokeSessions"
    )]
    async fn revoke_sessions(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        id: Path<Uuid>,
    ) -> Result<Done, Fail<AdminReadErrors>> {
        let ops = admin_acting(&state, &auth).await?;
        ops.revoke_sessions(UserId(id.0))
            .await
            .map_err(Error::from)?;
        Ok(Done::NoContent)
    }

    /// Block a user
    ///
    /// Login is refused with 403 `account_blocked` (after the password was
    /// checked), every session ends (refresh: 401; its access tokens and WebSocket
    /// handshakes: 403 `account_blocked`) and every socket closes with 4403
    /// `account_blocked` on every instance. Blocking a blocked user updates the
    /// reason. An admin cannot block their own account (403).
    ///
    /// Needs a recent authentication of the admin's session (403
    /// `step_up_required`; `POST /api/auth/reauth`).
    #[oai(
        path = "/users/:id/block",
        method = "put",
        operation_id = "adminBlockUser"
    )]
    async fn block(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        id: Path<Uuid>,
        body: Json<BlockRequest>,
    ) -> Result<Done, Fail<AdminBodyErrors>> {
        let ops = admin_acting(&state, &auth).await?;
        let reason = body.0.reason.0.trim();
        if reason.is_empty() || reason.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "reason: 1 to 500 characters without control characters".into(),
            )
            .into());
        }
        ops.block(UserId(id.0), reason).await.map_err(Error::from)?;
        Ok(Done::NoContent)
    }

    /// Unblock a user
    ///
    /// The user may sign in again; sessions the block ended stay ended.
    ///
    /// Needs a recent authentication of the admin's session (403
    /// `step_up_required`; `POST /api/auth/reauth`).
    #[oai(
        path = "/users/:id/block",
        method = "delete",
        operation_id = "adminUnblockUser"
    )]
    async fn unblock(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        id: Path<Uuid>,
    ) -> Result<Done, Fail<AdminReadErrors>> {
        let ops = admin_acting(&state, &auth).await?;
        ops.unblock(UserId(id.0)).await.map_err(Error::from)?;
        Ok(Done::NoContent)
    }

    /// Delete a user
    ///
    /// The account and everything of theirs: sessions and refresh tokens (every
    /// socket closes with 4403 `session_revoked` on every instance), the private
    /// rooms they own with their members and history (subscribers get
    /// `unsubscribed`, reason `removed`), their memberships, the messages they sent
    /// that history keeps, and their activity. The audit log keeps the deletion.
    /// An admin cannot delete their own account (403).
    ///
    /// Needs a recent authentication of the admin's session (403
    /// `step_up_required`; `POST /api/auth/reauth`).
    #[oai(
        path = "/users/:id",
        method = "delete",
        operation_id = "adminDeleteUser"
    )]
    async fn delete(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        id: Path<Uuid>,
    ) -> Result<Done, Fail<AdminReadErrors>> {
        let ops = admin_acting(&state, &auth).await?;
        ops.delete(UserId(id.0)).await.map_err(Error::from)?;
        Ok(Done::NoContent)
    }

    /// The audit log
    ///
    /// Every admin action (through this API or `doorman users …`), newest first,
    /// `limit` (1 to 100, default 50) at a time; `next` is the `cursor` of the next
    /// (older) page.
    #[oai(path = "/audit", method = "get", operation_id = "adminAudit")]
    async fn audit(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        /// The previous page's `next`.
        cursor: Query<Option<Uuid>>,
        /// Entries per page, 1 to 100 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<AuditPage>, Fail<AdminReadErrors>> {
        let ops = admin(&state, &auth).await?;
        let limit = limit.0.unwrap_or(DEFAULT_PAGE).clamp(1, 100);
        let (events, next) = audit::page(ops.admin().db(), cursor.0, u64::from(limit)).await?;
        Ok(Json(AuditPage {
            events: events.into_iter().map(AuditEvent::from).collect(),
            next,
        }))
    }
}
