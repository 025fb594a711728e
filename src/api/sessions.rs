//! `/api/me` and `/api/sessions`: the caller and their sessions.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags,
    models::{Me, SessionInfo},
    security::Authenticated,
};
use crate::{
    auth::{AuthError, SessionId},
    http::error::{Error, Fail, error_set},
    state::AppState,
};

error_set!(ReadErrors: 401, 403, 503);
error_set!(RevokeOneErrors: 400, 401, 403, 404, 503);

#[derive(ApiResponse)]
pub enum Revoked {
    /// Revoked; its sockets are closed with 4403.
    #[oai(status = 204)]
    NoContent,
}

pub struct SessionApi;

#[OpenApi(prefix_path = "/api", tag = "ApiTags::Sessions")]
impl SessionApi {
    /// Who am I
    ///
    /// The caller's account, session and where the credential came from.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(
        &self,
        state: Data<&Arc<AppState>>,
        auth: Authenticated,
    ) -> Result<Json<Me>, Fail<ReadErrors>> {
        let id = auth.0;
        // The session was active a moment ago, so its user exists (deleting a user
        // cascades to its sessions).
        let user = state
            .auth
            .user(id.user_id)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        Ok(Json(Me {
            user: user.into(),
            session_id: id.session_id.0,
            auth_source: id.source.into(),
        }))
    }

    /// List my active sessions
    #[oai(path = "/sessions", method = "get", operation_id = "listSessions")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        auth: Authenticated,
    ) -> Result<Json<Vec<SessionInfo>>, Fail<ReadErrors>> {
        let id = auth.0;
        let sessions = state.auth.sessions(id.user_id).await?;
        Ok(Json(
            sessions
                .into_iter()
                .map(|s| SessionInfo::new(s, id.session_id))
                .collect(),
        ))
    }

    /// Revoke one of my sessions
    ///
    /// Answers 404 for a session that is not the caller's, whether it exists or not.
    #[oai(
        path = "/sessions/:id",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke(
        &self,
        state: Data<&Arc<AppState>>,
        auth: Authenticated,
        id: Path<Uuid>,
    ) -> Result<Revoked, Fail<RevokeOneErrors>> {
        let caller = auth.0;
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
    #[oai(
        path = "/sessions",
        method = "delete",
        operation_id = "revokeAllSessions"
    )]
    async fn revoke_all(
        &self,
        state: Data<&Arc<AppState>>,
        auth: Authenticated,
    ) -> Result<Revoked, Fail<ReadErrors>> {
        state.auth.revoke_all_sessions(auth.0.user_id).await?;
        Ok(Revoked::NoContent)
    }
}
