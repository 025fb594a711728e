use sea_orm::entity::prelude::*;

/// A room message relayed between instances through the database, because it is too
/// large for a NOTIFY payload, as releases before issue 31 did (now such a message
/// travels as several notifications and nothing is stored). Still read and pruned
/// during a rolling upgrade from such a release; rows are deleted after a few minutes.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub room: String,
    /// The serialised `message` frame, delivered as is.
    pub frame: String,
    pub created_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
