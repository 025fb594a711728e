use sea_orm_migration::prelude::*;

/// Private rooms and their members, and the per-user activity log
/// (`GET /api/me/activity`).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Rooms::Table)
                    .col(
                        ColumnDef::new(Rooms::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Rooms::OwnerId).uuid().not_null())
                    .col(
                        ColumnDef::new(Rooms::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_rooms_owner")
                            .from(Rooms::Table, Rooms::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoomMembers::Table)
                    .col(ColumnDef::new(RoomMembers::Room).string().not_null())
                    .col(ColumnDef::new(RoomMembers::UserId).uuid().not_null())
                    .col(ColumnDef::new(RoomMembers::Role).string().not_null())
                    .col(
                        ColumnDef::new(RoomMembers::AddedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(RoomMembers::Room)
                            .col(RoomMembers::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_room_members_room")
                            .from(RoomMembers::Table, RoomMembers::Room)
                            .to(Rooms::Table, Rooms::Name)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_room_members_user")
                            .from(RoomMembers::Table, RoomMembers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_room_members_user_id")
                    .table(RoomMembers::Table)
                    .col(RoomMembers::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Activity::Table)
                    .col(ColumnDef::new(Activity::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Activity::UserId).uuid().not_null())
                    .col(ColumnDef::new(Activity::Kind).string().not_null())
                    .col(
                        ColumnDef::new(Activity::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Activity::Ip).string().null())
                    .col(ColumnDef::new(Activity::UserAgent).string().null())
                    .col(ColumnDef::new(Activity::SessionId).uuid().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_activity_user")
                            .from(Activity::Table, Activity::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_activity_user_at")
                    .table(Activity::Table)
                    .col(Activity::UserId)
                    .col(Activity::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Activity::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RoomMembers::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Rooms::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Name,
    OwnerId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RoomMembers {
    Table,
    Room,
    UserId,
    Role,
    AddedAt,
}

#[derive(DeriveIden)]
enum Activity {
    Table,
    Id,
    UserId,
    Kind,
    At,
    Ip,
    UserAgent,
    SessionId,
}
