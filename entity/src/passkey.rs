use sea_orm::entity::prelude::*;

/// A passkey (WebAuthn credential) of a user: a user has any number. `credential`
/// is webauthn-rs's `Passkey` as JSON (public key, counter, flags); `counter` is
/// its signature counter, kept beside it so a sign-in can raise it atomically
/// (a regression is refused).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(indexed)]
    pub user_id: Uuid,
    pub name: String,
    /// The credential id, base64url without padding; unique across all users.
    #[sea_orm(unique)]
    pub cred_id: String,
    pub credential: String,
    pub counter: i64,
    pub created_at: TimeDateTimeWithTimeZone,
    pub last_used_at: Option<TimeDateTimeWithTimeZone>,
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
