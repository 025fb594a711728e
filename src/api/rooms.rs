//! `/api/rooms`: publish into the same rooms WebSocket clients subscribe to.

use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, OpenApi, param::Path, payload::Json};

use super::{
    ApiTags,
    models::{PublishRequest, Published},
    security::Authenticated,
};
use crate::{
    http::error::{Fail, error_set},
    rooms::RoomName,
    state::AppState,
};

error_set!(PublishErrors: 400, 401, 403, 408, 413, 415, 429, 503);

#[derive(ApiResponse)]
pub enum Accepted {
    /// Delivered to the room's current subscribers.
    #[oai(status = 202)]
    Accepted(Json<Published>),
}

pub struct RoomApi;

#[OpenApi(prefix_path = "/api/rooms", tag = "ApiTags::Rooms")]
impl RoomApi {
    /// Publish a message to a room
    ///
    /// Every WebSocket subscribed to the room receives a `message` frame whose
    /// `from` is the caller's user id. Room names: 1 to 64 of `A-Z a-z 0-9 _ - .`.
    /// Publishing shares one per-user budget with WebSocket `publish` frames
    /// (`DOORMAN_PUBLISH_PER_SECOND`, burst twice that); past it, 429.
    #[oai(path = "/:room/messages", method = "post", operation_id = "publish")]
    async fn publish(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: Authenticated,
        /// 1 to 64 of `A-Z a-z 0-9 _ - .`.
        #[oai(validator(pattern = r"^[A-Za-z0-9_.-]{1,64}$"))]
        room: Path<String>,
        body: Json<PublishRequest>,
    ) -> Result<Accepted, Fail<PublishErrors>> {
        let room = RoomName::parse(&room.0)?;
        state.limits.publish_ip.check(&state.limit_key(req))?;
        state.limits.publish.check(&auth.0.user_id)?;
        let delivered = state.rooms.publish(&room, auth.0.user_id, &body.0.body);
        Ok(Accepted::Accepted(Json(Published {
            delivered: delivered as u64,
        })))
    }
}
