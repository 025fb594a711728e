use sea_orm::entity::prelude::*;

/// A pending step of a sign-in or a ceremony, single-use and short-lived: the
/// second login step (`mfa_login`, its token the `mfa_token`), a passkey
/// registration or sign-in. Only the SHA-256 of its token is stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_challenges")]
pub struct Model {
    /// Hex SHA-256 of the token the client holds.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub purpose: String,
    pub user_id: Option<Uuid>,
    /// The session the step is bound to, when it runs inside one.
    pub session_id: Option<Uuid>,
    /// What the next step needs (JSON), when anything.
    pub state: Option<String>,
    pub expires_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
