//! `/api/rooms`: private rooms and their members, presence, and publishing into
//! the same rooms WebSocket clients subscribe to. Every operation on a room asks
//! the same check as the WebSocket route ([`crate::rooms::Rooms::may_enter`]).

use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    models::{
        CreateRoomRequest, HistoryMessage, HistoryPage, Presence, PresentUser, PublishRequest,
        Published, Room, RoomMember,
    },
    room_names::{PrivateRoomParam, RoomParam},
};
use crate::{
    Doorman,
    auth::{UserId, assurance::Aal},
    extract::Authenticated,
    http::error::{Fail, error_set},
    rooms::RoomName,
};

error_set!(PublishErrors: 400, 401, 403, 408, 413, 415, 429, 503);
error_set!(CreateErrors: 400, 401, 403, 408, 409, 413, 415, 429, 503);
error_set!(ListErrors: 400, 401, 403, 503);
error_set!(RoomErrors: 400, 401, 403, 503);
error_set!(MemberErrors: 400, 401, 403, 404, 409, 503);

/// A page's size when the request names none, and the largest it may name.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 500;

/// A page of a list: the items in the body, and the next page (if any) in a
/// `Link` header (RFC 8288), `<…?limit=N&after=CURSOR>; rel="next"`.
#[derive(ApiResponse)]
pub enum Listed<T: poem_openapi::types::ToJSON + Send + Sync> {
    /// One page. A `Link` header with `rel="next"` says where the next one is;
    /// without it this is the last.
    #[oai(status = 200)]
    Page(
        Json<Vec<T>>,
        /// `<PATH?limit=N&after=CURSOR>; rel="next"` while more follow. The cursor
        /// is the last item's room name (rooms) or user id (members).
        #[oai(header = "Link")]
        Option<String>,
    ),
}

/// The `Link` header of the page after `cursor`.
fn next_link(path: &str, limit: u32, cursor: Option<impl std::fmt::Display>) -> Option<String> {
    cursor.map(|c| format!("<{path}?limit={limit}&after={c}>; rel=\"next\""))
}

/// Room refusals at the edge: one `forbidden` for every "not yours" case.
impl From<crate::rooms::RoomError> for crate::http::error::Error {
    fn from(e: crate::rooms::RoomError) -> Self {
        use crate::{http::error::Error, rooms::RoomError as R};
        match e {
            R::InvalidName | R::NotPrivate | R::OwnerCannotLeave => Error::Invalid(e.to_string()),
            R::TooManyRooms | R::TooManyMemberships | R::RoomFull => {
                Error::LimitReached(e.to_string())
            }
            R::Forbidden => Error::Forbidden("not allowed in this room"),
            R::SecondFactorRequired => Error::Forbidden(
                "this room requires a session with a second factor (aal2): sign in with TOTP or a passkey, or re-authenticate with one",
            ),
            R::Exists => Error::RoomExists,
            R::UnknownUser | R::Gone => Error::NotFound,
            R::HistoryBudget => Error::RateLimited {
                retry_after_secs: 60,
            },
            R::Busy => Error::Overloaded {
                retry_after_secs: 1,
            },
            R::Core(e) => e.into(),
        }
    }
}

#[derive(ApiResponse)]
pub enum Accepted {
    /// Delivered to the room's current subscribers.
    #[oai(status = 202)]
    Accepted(Json<Published>),
}

#[derive(ApiResponse)]
pub enum Created {
    /// The room is yours; you are its owner and first member.
    #[oai(status = 201)]
    Created(Json<Room>),
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done. Sockets that lost access get `unsubscribed` with reason `removed`.
    #[oai(status = 204)]
    NoContent,
}

/// Rooms over HTTP: `/api/rooms…` (create, list, delete, members, presence,
/// publish) for doorman's `/ws` protocol (tag `Rooms`).
pub struct RoomApi;

#[OpenApi(prefix_path = "/api", tag = "ApiTags::Rooms")]
impl RoomApi {
    /// Create a private room
    ///
    /// The name must start with `private:`. The caller becomes its owner and first
    /// member; only members may subscribe, publish, and read its members and presence.
    /// At most `DOORMAN_ROOM_CREATE_PER_MINUTE` creations a minute per user (429 with
    /// `Retry-After` past it); 409 `limit_reached` when the caller owns
    /// `DOORMAN_MAX_ROOMS_PER_USER` rooms or belongs to
    /// `DOORMAN_MAX_MEMBERSHIPS_PER_USER`. `require_aal2: true` makes a room only
    /// sessions at aal2 may enter (a second factor or a passkey); creating one needs
    /// an aal2 session (403 `forbidden` otherwise).
    #[oai(path = "/rooms", method = "post", operation_id = "createRoom")]
    async fn create(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        body: Json<CreateRoomRequest>,
    ) -> Result<Created, Fail<CreateErrors>> {
        let room = RoomName::parse(&body.0.name.0)?;
        // Its creator would be refused it at once: say so instead of making it.
        let require_aal2 = body.0.require_aal2.unwrap_or(false);
        if require_aal2 && auth.0.assurance.aal < Aal::Aal2 {
            return Err(crate::rooms::RoomError::SecondFactorRequired.into());
        }
        state.limits.room_create.check(&auth.0.user_id)?;
        let created = state
            .rooms
            .create(&room, auth.0.user_id, require_aal2)
            .await?;
        Ok(Created::Created(Json(created.into())))
    }

    /// List my private rooms
    ///
    /// The private rooms the caller owns or is a member of, by name, a page at a
    /// time: `limit` (1 to 500, default 100) after the room `after`. The `Link`
    /// header (`rel="next"`) gives the next page's URL while there is one.
    #[oai(path = "/rooms", method = "get", operation_id = "listRooms")]
    async fn list(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        /// Rooms per page, 1 to 500 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// The cursor: the last room of the previous page (from its `Link` header).
        after: Query<Option<RoomParam>>,
    ) -> Result<Listed<Room>, Fail<ListErrors>> {
        let limit = limit.0.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let after = after.0.map(|r| RoomName::parse(&r.0)).transpose()?;
        let page = state
            .rooms
            .rooms_of(auth.0.user_id, after.as_ref(), limit as usize)
            .await?;
        Ok(Listed::Page(
            Json(page.items.into_iter().map(Room::from).collect()),
            next_link("/api/rooms", limit, page.next),
        ))
    }

    /// Delete a private room
    ///
    /// Owner only, with a recent authentication (403 `step_up_required` otherwise;
    /// see `POST /api/auth/reauth`). Every subscriber, on every instance, gets
    /// `unsubscribed` with reason `removed`.
    #[oai(path = "/rooms/:room", method = "delete", operation_id = "deleteRoom")]
    async fn delete(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        /// `private:` and 1 to 64 of `A-Z a-z 0-9 _ - .`; any other name is 400
        /// `invalid_input`.
        room: Path<PrivateRoomParam>,
    ) -> Result<Done, Fail<RoomErrors>> {
        let room = RoomName::parse(&room.0.0)?;
        // Who may, before how recently: a non-owner is told no, not asked to
        // re-authenticate first.
        state.rooms.require_owner(&room, auth.0.user_id).await?;
        state.auth.require_recent(&auth.0).await?;
        state.rooms.delete(&room, auth.0.user_id).await?;
        Ok(Done::NoContent)
    }

    /// List a private room's members
    ///
    /// Members only; the owner first, then the others by user id, a page at a
    /// time: `limit` (1 to 500, default 100) after the member `after`. The `Link`
    /// header (`rel="next"`) gives the next page's URL while there is one.
    #[oai(
        path = "/rooms/:room/members",
        method = "get",
        operation_id = "listMembers"
    )]
    async fn members(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        /// `private:` and 1 to 64 of `A-Z a-z 0-9 _ - .`; any other name is 400
        /// `invalid_input`.
        room: Path<PrivateRoomParam>,
        /// Members per page, 1 to 500 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// The cursor: the last member's user id on the previous page (from its
        /// `Link` header).
        after: Query<Option<Uuid>>,
    ) -> Result<Listed<RoomMember>, Fail<RoomErrors>> {
        let room = RoomName::parse(&room.0.0)?;
        let limit = limit.0.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let page = state
            .rooms
            .members(&room, auth.0.user_id, after.0, limit as usize)
            .await?;
        let path = format!("/api/rooms/{}/members", room.as_str());
        Ok(Listed::Page(
            Json(page.items.into_iter().map(RoomMember::from).collect()),
            next_link(&path, limit, page.next),
        ))
    }

    /// Add a member
    ///
    /// Owner only; adding a member twice changes nothing. 404 for an unknown user,
    /// and for a room deleted while the member was being added. 409
    /// `limit_reached` when the room has `DOORMAN_MAX_ROOM_MEMBERS` members, or the
    /// user belongs to `DOORMAN_MAX_MEMBERSHIPS_PER_USER` rooms.
    #[oai(
        path = "/rooms/:room/members/:user_id",
        method = "put",
        operation_id = "addMember"
    )]
    async fn add_member(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        /// `private:` and 1 to 64 of `A-Z a-z 0-9 _ - .`; any other name is 400
        /// `invalid_input`.
        room: Path<PrivateRoomParam>,
        user_id: Path<Uuid>,
    ) -> Result<Done, Fail<MemberErrors>> {
        let room = RoomName::parse(&room.0.0)?;
        state
            .rooms
            .add_member(&room, UserId(user_id.0), auth.0.user_id)
            .await?;
        Ok(Done::NoContent)
    }

    /// Remove a member, or leave
    ///
    /// The owner removes any member; a member removes themselves. The removed
    /// user's sockets are taken out of the room on every instance within a second
    /// (`unsubscribed`, reason `removed`) and stay open. The owner cannot leave
    /// (delete the room instead).
    #[oai(
        path = "/rooms/:room/members/:user_id",
        method = "delete",
        operation_id = "removeMember"
    )]
    async fn remove_member(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        /// `private:` and 1 to 64 of `A-Z a-z 0-9 _ - .`; any other name is 400
        /// `invalid_input`.
        room: Path<PrivateRoomParam>,
        user_id: Path<Uuid>,
    ) -> Result<Done, Fail<RoomErrors>> {
        let room = RoomName::parse(&room.0.0)?;
        state
            .rooms
            .remove_member(&room, UserId(user_id.0), auth.0.user_id)
            .await?;
        Ok(Done::NoContent)
    }

    /// Who is in a room
    ///
    /// The users with at least one socket subscribed, on any instance, and since
    /// when. For whoever may subscribe: anyone signed in for a public room,
    /// members for a private one.
    #[oai(
        path = "/rooms/:room/presence",
        method = "get",
        operation_id = "roomPresence"
    )]
    async fn presence(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        /// A public name (1 to 64 of `A-Z a-z 0-9 _ - .`) or `private:` and one; any
        /// other name is 400 `invalid_input`.
        room: Path<RoomParam>,
    ) -> Result<Json<Presence>, Fail<RoomErrors>> {
        let name = RoomName::parse(&room.0.0)?;
        state
            .rooms
            .may_enter(&name, auth.0.user_id, auth.0.assurance.aal)
            .await?;
        let users = state
            .rooms
            .present(&name)
            .into_iter()
            .map(|(user, since)| PresentUser {
                user_id: user.0,
                since,
            })
            .collect();
        Ok(Json(Presence {
            room: room.0.0,
            users,
        }))
    }

    /// Read a room's history
    ///
    /// The messages the room still keeps (`DOORMAN_HISTORY_SIZE` per room, for
    /// `DOORMAN_HISTORY_TTL_SECONDS`), oldest first: those after the offset
    /// `after` and before the offset `before`, at most `limit` (1 to 100, default
    /// 50). `next`, when more follow, is the `after` of the next page. Anyone
    /// signed in for a public room; for a private room its members, and only the
    /// messages sent since their membership began. Empty, with an empty `epoch`,
    /// when the server keeps no history.
    #[oai(
        path = "/rooms/:room/messages",
        method = "get",
        operation_id = "roomHistory"
    )]
    async fn history(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        /// A public name (1 to 64 of `A-Z a-z 0-9 _ - .`) or `private:` and one; any
        /// other name is 400 `invalid_input`.
        room: Path<RoomParam>,
        /// Only messages after this offset (default 0: from the oldest kept).
        after: Query<Option<u64>>,
        /// Only messages before this offset.
        before: Query<Option<u64>>,
        /// Messages per page, 1 to 100 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<HistoryPage>, Fail<ListErrors>> {
        let room = RoomName::parse(&room.0.0)?;
        // The check `may_enter` makes, and since when the caller may read: one
        // question (a private room's non-member is `forbidden`).
        let readable = state
            .rooms
            .reads_since(&room, auth.0.user_id, auth.0.assurance.aal)
            .await?;
        let limit = u64::from(limit.0.unwrap_or(50).clamp(1, 100));
        // `next`: after the last message read, shown or not (a private room's
        // messages from before the reader's membership are read and left out).
        let (position, kept, next) = state
            .rooms
            .history()
            .page(&room, after.0.unwrap_or(0), before.0, limit, readable)
            .await?;
        Ok(Json(HistoryPage {
            room: room.as_str().to_owned(),
            epoch: position.epoch.clone(),
            messages: kept
                .into_iter()
                .map(|m| HistoryMessage {
                    id: m.id,
                    room: room.as_str().to_owned(),
                    from: m.from.0,
                    body: m.body,
                    sent_at: m.sent_at,
                    offset: m.offset,
                    epoch: position.epoch.clone(),
                })
                .collect(),
            next,
        }))
    }

    /// Publish a message to a room
    ///
    /// Every WebSocket subscribed to the room receives a `message` frame whose
    /// `from` is the caller's user id. Private rooms: members only.
    /// Publishing shares one per-user budget with WebSocket `publish` frames
    /// (`DOORMAN_PUBLISH_PER_SECOND`, burst twice that); past it, 429.
    #[oai(
        path = "/rooms/:room/messages",
        method = "post",
        operation_id = "publish"
    )]
    async fn publish(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        auth: Authenticated,
        /// A public name (1 to 64 of `A-Z a-z 0-9 _ - .`) or `private:` and one; any
        /// other name is 400 `invalid_input`.
        room: Path<RoomParam>,
        body: Json<PublishRequest>,
    ) -> Result<Accepted, Fail<PublishErrors>> {
        let room = RoomName::parse(&room.0.0)?;
        state.limits.publish_ip.check(&state.limit_key(req))?;
        state
            .rooms
            .may_enter(&room, auth.0.user_id, auth.0.assurance.aal)
            .await?;
        state.limits.publish.check(&auth.0.user_id)?;
        let committed = state
            .rooms
            .publish_and_wait(&room, auth.0.user_id, &body.0.body)
            .await?;
        let history = state.rooms.history().is_on() && committed.offset > 0;
        Ok(Accepted::Accepted(Json(Published {
            delivered: committed.delivered as u64,
            offset: history.then_some(committed.offset),
            epoch: history.then_some(committed.epoch),
        })))
    }
}
