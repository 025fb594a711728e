use sea_orm_migration::prelude::*;

/// Whether the history writer of a SQLite server stopped with everything it had
/// placed stored (issue 33). On SQLite a room's offsets are given out in memory and
/// its messages stored a few milliseconds later; a server that stopped without
/// storing them (a crash) leaves the row unclean, and the next start gives every
/// room a new epoch, so no client takes offsets given twice for the same messages.
/// One row (`id` 1); unused on PostgreSQL, where offsets are taken in the
/// transaction that stores the messages.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(HistoryWriter::Table)
                    .col(
                        ColumnDef::new(HistoryWriter::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(HistoryWriter::Clean).boolean().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(HistoryWriter::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum HistoryWriter {
    Table,
    Id,
    Clean,
}
