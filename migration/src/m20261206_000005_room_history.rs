use sea_orm_migration::prelude::*;

/// Room history (issue 33): each room's position (`room_logs`: its epoch and last
/// offset, the sequence every instance takes offsets from) and its recent messages
/// (`room_history`), bounded by `DOORMAN_HISTORY_SIZE` per room and
/// `DOORMAN_HISTORY_TTL_SECONDS`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoomLogs::Table)
                    .col(
                        ColumnDef::new(RoomLogs::Room)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RoomLogs::Epoch).string().not_null())
                    .col(
                        ColumnDef::new(RoomLogs::LastOffset)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoomLogs::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoomHistory::Table)
                    .col(ColumnDef::new(RoomHistory::Room).string().not_null())
                    .col(ColumnDef::new(RoomHistory::Seq).big_integer().not_null())
                    .col(ColumnDef::new(RoomHistory::Id).uuid().not_null())
                    .col(ColumnDef::new(RoomHistory::Sender).uuid().not_null())
                    .col(ColumnDef::new(RoomHistory::Body).text().not_null())
                    .col(
                        ColumnDef::new(RoomHistory::SentAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().col(RoomHistory::Room).col(RoomHistory::Seq))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_room_history_sent_at")
                    .table(RoomHistory::Table)
                    .col(RoomHistory::SentAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RoomHistory::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RoomLogs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RoomLogs {
    Table,
    Room,
    Epoch,
    LastOffset,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RoomHistory {
    Table,
    Room,
    Seq,
    Id,
    Sender,
    Body,
    SentAt,
}
