//! `/api/me` and `/api/sessions`: the caller, their devices and their activity.

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags,
    direct_json::DirectJson,
    models::{Activity, ChangePasswordRequest, Me, SessionInfo},
};
use crate::{
    Doorman,
    auth::{AuthError, Identity, SessionId},
    extract::Authenticated,
    http::error::{Error, Fail, error_set},
    state::AppState,
};

error_set!(ReadErrors: 401, 403, 503);
error_set!(RevokeOneErrors: 400, 401, 403, 404, 503);
error_set!(PasswordErrors: 400, 401, 403, 408, 409, 413, 415, 429, 503);

#[derive(ApiResponse)]
pub enum Revoked {
    /// Revoked; its sockets are closed with 4403.
    #[oai(status = 204)]
    NoContent,
}

/// `GET /api/me` for an authenticated caller: the OpenAPI operation and the hot
/// route (`super::hot`) both answer with this.
pub(crate) async fn me(state: &AppState, id: Identity) -> Result<DirectJson<Me>, Error> {
    // The session was active a moment ago, so its user exists (deleting a user
    // cascades to its sessions).
    let user = state
        .auth
        .user(id.user_id)
        .await?
        .ok_or(AuthError::SessionRevoked)?;
    Ok(DirectJson(Me {
        user: user.into(),
        session_id: id.session_id.0,
        auth_source: id.source.into(),
        aal: id.assurance.aal.into(),
        amr: id
            .assurance
            .amr
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        auth_at: id.assurance.auth_at,
    }))
}

/// The caller and their devices: `GET /api/me`, `/api/me/activity`,
/// `POST /api/me/password`, `GET|DELETE /api/sessions`, `DELETE /api/sessions/{id}`,
/// `DELETE /api/sessions/others` (tag `Sessions`).
pub struct SessionApi;

#[OpenApi(prefix_path = "/api", tag = "ApiTags::Sessions")]
impl SessionApi {
    /// Who am I
    ///
    /// The caller's account, session and where the credential came from.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<DirectJson<Me>, Fail<ReadErrors>> {
        // Served by `super::hot` in front of this operation; the same code.
        Ok(me(&state, auth.0).await?)
    }

    /// List my active sessions
    #[oai(path = "/sessions", method = "get", operation_id = "listSessions")]
    async fn list(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<Json<Vec<SessionInfo>>, Fail<ReadErrors>> {
        let id = auth.0;
        let sessions = state.auth.sessions(id.user_id).await?;
        Ok(Json(
            sessions
                .into_iter()
                .map(|s| {
                    let live = state.registry.live_sockets(s.id);
                    SessionInfo::new(s, id.session_id, live)
                })
                .collect(),
        ))
    }

    /// Revoke one of my sessions
    ///
    /// Answers 404 for a session that is not the caller's, whether it exists or not.
    /// Another session than the caller's own needs a recent authentication (403
    /// `step_up_required` otherwise; see `POST /api/auth/reauth`).
    #[oai(
        path = "/sessions/:id",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        id: Path<Uuid>,
    ) -> Result<Revoked, Fail<RevokeOneErrors>> {
        let caller = auth.0;
        // Ending another session is sensitive; ending one's own is a logout.
        if id.0 != caller.session_id.0 {
            state.auth.require_recent(&caller).await?;
        }
        let revoked = state
            .auth
            .revoke_session(SessionId(id.0), caller.user_id)
            .await?;
        if revoked {
            Ok(Revoked::NoContent)
        } else {
            Err(Error::NotFound.into())
        }
    }

    /// Revoke all my sessions (log out everywhere)
    ///
    /// Needs a recent authentication (403 `step_up_required` otherwise; see
    /// `POST /api/auth/reauth`).
    #[oai(
        path = "/sessions",
        method = "delete",
        operation_id = "revokeAllSessions"
    )]
    async fn revoke_all(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<Revoked, Fail<ReadErrors>> {
        state.auth.require_recent(&auth.0).await?;
        state.auth.revoke_all_sessions(auth.0.user_id).await?;
        Ok(Revoked::NoContent)
    }

    /// Log out my other devices
    ///
    /// Revokes every session of the caller except the current one; their sockets
    /// close with 4403 and the caller's other sockets get a `session_ended` notice.
    /// Needs a recent authentication (403 `step_up_required` otherwise; see
    /// `POST /api/auth/reauth`).
    #[oai(
        path = "/sessions/others",
        method = "delete",
        operation_id = "revokeOtherSessions"
    )]
    async fn revoke_others(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<Revoked, Fail<ReadErrors>> {
        state.auth.require_recent(&auth.0).await?;
        state.auth.revoke_other_sessions(&auth.0).await?;
        Ok(Revoked::NoContent)
    }

    /// Change my password
    ///
    /// Checks the current password (throttled like login), stores the new one and
    /// revokes every other session of the caller; the current session stays. Needs
    /// a recent authentication (403 `step_up_required` otherwise; see
    /// `POST /api/auth/reauth`). While a password-reset link mailed for the
    /// account is valid, 409 `reset_pending`: the link sets the password.
    #[oai(
        path = "/me/password",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        auth: Authenticated,
        body: Json<ChangePasswordRequest>,
    ) -> Result<Revoked, Fail<PasswordErrors>> {
        state.auth.require_recent(&auth.0).await?;
        // The same per-account failure budget as login: the session holder cannot
        // guess the password faster than a stranger at the login form.
        let attempt = state.guess_by(req, &auth.0).await?;
        let ChangePasswordRequest {
            current_password,
            new_password,
        } = body.0;
        let client = state.client_info(req);
        let result = state
            .auth
            .change_password(&auth.0, current_password.0, new_password.0, client)
            .await;
        attempt.finish(matches!(
            result,
            Err(crate::auth::Error::Auth(AuthError::InvalidCredentials))
        ));
        result?;
        Ok(Revoked::NoContent)
    }

    /// My account activity
    ///
    /// Logins, failed logins, sessions that ended, password changes and wrong
    /// current passwords given to a password change, newest first: the 100 newest
    /// events other than failed guesses, and the 20 newest failed guesses
    /// (`login_failed`, `password_change_failed`), so guessing cannot push a real
    /// login out of view.
    #[oai(path = "/me/activity", method = "get", operation_id = "activity")]
    async fn activity(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<Json<Activity>, Fail<ReadErrors>> {
        let events = state.auth.activity(auth.0.user_id).await?;
        Ok(Json(Activity {
            events: events.into_iter().map(Into::into).collect(),
        }))
    }
}
