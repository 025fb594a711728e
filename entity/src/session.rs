use sea_orm::entity::prelude::*;

/// A login. Access tokens are accepted only while their session is active:
/// not revoked, before `expires_at` (absolute) and before `idle_expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(indexed)]
    pub user_id: Uuid,
    pub created_at: TimeDateTimeWithTimeZone,
    pub last_used_at: TimeDateTimeWithTimeZone,
    pub expires_at: TimeDateTimeWithTimeZone,
    pub idle_expires_at: TimeDateTimeWithTimeZone,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub revoked_at: Option<TimeDateTimeWithTimeZone>,
    pub revoked_reason: Option<String>,
    /// The authenticator assurance level: 1 (one factor) or 2 (two factors, or a
    /// passkey with user verification).
    pub aal: i16,
    /// How the session's user authenticated, comma-separated (`pwd`, `otp`,
    /// `recovery_code`, `webauthn`).
    pub amr: String,
    /// The last authentication (login or re-authentication); null for sessions
    /// opened before it was recorded, which read it as `created_at`.
    pub auth_at: Option<TimeDateTimeWithTimeZone>,
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
    #[sea_orm(has_many = "super::refresh_token::Entity")]
    RefreshToken,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::refresh_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshToken.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
