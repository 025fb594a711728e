use sea_orm::entity::prelude::*;

/// An access-token signing key, shared by every instance on the same database.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// The JWS algorithm, e.g. `EdDSA`.
    pub algorithm: String,
    /// PKCS#8 PEM of the private key.
    pub private_key: String,
    /// The public key as the JWK `x` member (base64url, no padding).
    pub public_key: String,
    pub created_at: TimeDateTimeWithTimeZone,
    pub retired_at: Option<TimeDateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
