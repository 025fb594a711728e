use sea_orm::entity::prelude::*;

/// A room's position in its history: the epoch its offsets count in and the last
/// offset given out. Every instance takes offsets from this row, in the transaction
/// that stores the messages, so offsets are one sequence per room.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_logs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub room: String,
    pub epoch: String,
    pub last_offset: i64,
    pub updated_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
