use sea_orm::entity::prelude::*;

/// A message kept in its room's history, at its offset (`seq`), for recovery and
/// `GET /api/rooms/{room}/messages`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub room: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub id: Uuid,
    pub sender: Uuid,
    pub body: String,
    pub sent_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
