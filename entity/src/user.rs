use sea_orm::entity::prelude::*;

/// An account. `email` is stored normalised, so the unique index is the uniqueness rule.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub email: String,
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub created_at: TimeDateTimeWithTimeZone,
    /// May use `/api/admin/*`; granted only by `doorman users grant-admin`.
    pub is_admin: bool,
    /// Set while the account is blocked: no login, no session.
    pub blocked_at: Option<TimeDateTimeWithTimeZone>,
    /// What the admin who blocked it wrote.
    pub blocked_reason: Option<String>,
    /// When the user opened a verification link (or a password-reset link, which
    /// proves the same); `None` until then.
    pub email_verified_at: Option<TimeDateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
