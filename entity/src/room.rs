use sea_orm::entity::prelude::*;

/// A private room (`private:<name>`). Public rooms have no row: they exist by name.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rooms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub owner_id: Uuid,
    pub created_at: TimeDateTimeWithTimeZone,
    /// Only sessions at aal2 may enter.
    pub require_aal2: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::room_member::Entity")]
    RoomMember,
}

impl Related<super::room_member::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RoomMember.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
