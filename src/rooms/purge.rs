//! What a deleted account leaves in the rooms' tables: the private rooms it owns
//! (their members, history and position go with them), its memberships elsewhere,
//! and the messages it sent that history still keeps, in every room.

use entity::{room, room_history, room_log, room_member};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};

use super::RoomName;
use crate::auth::UserId;

/// Deletes the account's rows in `conn` (the deletion's transaction); returns the
/// rooms that went, whose subscribers elsewhere must be told.
pub async fn purge_user(conn: &impl ConnectionTrait, user: UserId) -> Result<Vec<RoomName>, DbErr> {
    let owned: Vec<String> = room::Entity::find()
        .select_only()
        .column(room::Column::Name)
        .filter(room::Column::OwnerId.eq(user.0))
        .into_tuple()
        .all(conn)
        .await?;
    for chunk in owned.chunks(500) {
        let names = || chunk.iter().cloned();
        room_member::Entity::delete_many()
            .filter(room_member::Column::Room.is_in(names()))
            .exec(conn)
            .await?;
        room_history::Entity::delete_many()
            .filter(room_history::Column::Room.is_in(names()))
            .exec(conn)
            .await?;
        room_log::Entity::delete_many()
            .filter(room_log::Column::Room.is_in(names()))
            .exec(conn)
            .await?;
        room::Entity::delete_many()
            .filter(room::Column::Name.is_in(names()))
            .exec(conn)
            .await?;
    }
    room_member::Entity::delete_many()
        .filter(room_member::Column::UserId.eq(user.0))
        .exec(conn)
        .await?;
    room_history::Entity::delete_many()
        .filter(room_history::Column::Sender.eq(user.0))
        .exec(conn)
        .await?;
    Ok(owned
        .iter()
        .filter_map(|name| RoomName::parse(name).ok())
        .collect())
}
