use sea_orm_migration::prelude::*;

/// Second factors and step-up: the assurance of every session (`aal`, `amr`,
/// `auth_at`), rooms that require a second factor, TOTP factors with their
/// recovery codes, passkeys, and the pending steps of a sign-in or a ceremony
/// (`auth_challenges`: the second login step, passkey ceremonies).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time. Sessions
        // opened before this migration were password logins: aal1, `pwd`, and
        // `auth_at` null (read as the session's creation).
        let session_columns = [
            ColumnDef::new(Sessions::Aal)
                .small_integer()
                .not_null()
                .default(1)
                .to_owned(),
            ColumnDef::new(Sessions::Amr)
                .string()
                .not_null()
                .default("pwd")
                .to_owned(),
            ColumnDef::new(Sessions::AuthAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ];
        for mut column in session_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Rooms::Table)
                    .add_column(
                        ColumnDef::new(Rooms::RequireAal2)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TotpFactors::Table)
                    .col(
                        ColumnDef::new(TotpFactors::UserId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(TotpFactors::Secret).string().not_null())
                    .col(
                        ColumnDef::new(TotpFactors::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TotpFactors::ConfirmedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(TotpFactors::LastStep).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_totp_factors_user")
                            .from(TotpFactors::Table, TotpFactors::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(
                        ColumnDef::new(RecoveryCodes::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RecoveryCodes::UserId).uuid().not_null())
                    .col(ColumnDef::new(RecoveryCodes::CodeHash).string().not_null())
                    .col(
                        ColumnDef::new(RecoveryCodes::UsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_recovery_codes_user")
                            .from(RecoveryCodes::Table, RecoveryCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recovery_codes_user")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .col(ColumnDef::new(Passkeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Passkeys::UserId).uuid().not_null())
                    .col(ColumnDef::new(Passkeys::Name).string().not_null())
                    .col(
                        ColumnDef::new(Passkeys::CredId)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Passkeys::Credential).text().not_null())
                    .col(
                        ColumnDef::new(Passkeys::Counter)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Passkeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Passkeys::LastUsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_passkeys_user")
                            .from(Passkeys::Table, Passkeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_passkeys_user")
                    .table(Passkeys::Table)
                    .col(Passkeys::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthChallenges::Table)
                    .col(
                        ColumnDef::new(AuthChallenges::TokenHash)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuthChallenges::Purpose).string().not_null())
                    .col(ColumnDef::new(AuthChallenges::UserId).uuid().null())
                    .col(ColumnDef::new(AuthChallenges::SessionId).uuid().null())
                    .col(ColumnDef::new(AuthChallenges::State).text().null())
                    .col(
                        ColumnDef::new(AuthChallenges::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_auth_challenges_user")
                            .from(AuthChallenges::Table, AuthChallenges::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_challenges_expires")
                    .table(AuthChallenges::Table)
                    .col(AuthChallenges::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuthChallenges::Table.into_iden(),
            Passkeys::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpFactors::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Rooms::Table)
                    .drop_column(Rooms::RequireAal2)
                    .to_owned(),
            )
            .await?;
        for column in [Sessions::AuthAt, Sessions::Amr, Sessions::Aal] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Aal,
    Amr,
    AuthAt,
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    RequireAal2,
}

#[derive(DeriveIden)]
enum TotpFactors {
    Table,
    UserId,
    Secret,
    CreatedAt,
    ConfirmedAt,
    LastStep,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    Name,
    CredId,
    Credential,
    Counter,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum AuthChallenges {
    Table,
    TokenHash,
    Purpose,
    UserId,
    SessionId,
    State,
    ExpiresAt,
}
