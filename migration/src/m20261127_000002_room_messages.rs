use sea_orm_migration::prelude::*;

/// Room messages too large for a PostgreSQL NOTIFY payload (8000 bytes) travel
/// between instances through this table; the notification carries only the id.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoomMessages::Table)
                    .col(
                        ColumnDef::new(RoomMessages::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RoomMessages::Room).string().not_null())
                    .col(ColumnDef::new(RoomMessages::Frame).text().not_null())
                    .col(
                        ColumnDef::new(RoomMessages::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_room_messages_created_at")
                    .table(RoomMessages::Table)
                    .col(RoomMessages::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RoomMessages::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RoomMessages {
    Table,
    Id,
    Room,
    Frame,
    CreatedAt,
}
