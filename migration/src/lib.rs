//! doorman's schema migrations. The binary is the standard sea-orm migration CLI
//! (`cargo run -p migration -- up | down | status | fresh`); the server applies
//! pending migrations itself at start with [`Migrator::up`].

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_tables;
mod m20261127_000002_room_messages;
mod m20261127_000003_refresh_successor;
mod m20261127_000004_rooms_and_activity;
mod m20261206_000005_room_history;
mod m20261207_000006_email_tokens;
mod m20261207_000007_admin;
mod m20261207_000008_history_writer;
mod m20261207_000009_second_factors;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_tables::Migration),
            Box::new(m20261127_000002_room_messages::Migration),
            Box::new(m20261127_000003_refresh_successor::Migration),
            Box::new(m20261127_000004_rooms_and_activity::Migration),
            Box::new(m20261206_000005_room_history::Migration),
            Box::new(m20261207_000006_email_tokens::Migration),
            Box::new(m20261207_000007_admin::Migration),
            Box::new(m20261207_000008_history_writer::Migration),
            Box::new(m20261207_000009_second_factors::Migration),
        ]
    }
}
