use sea_orm::entity::prelude::*;

/// One admin action (`/api/admin/*` or `doorman users …`): who (`actor_id`, a user
/// id or `cli`), what, on whom, when. Ids are UUIDv7, so they sort by time.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub actor_id: String,
    pub action: String,
    pub target_id: Option<Uuid>,
    pub at: TimeDateTimeWithTimeZone,
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
