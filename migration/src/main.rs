use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    hide_secrets_from_help();
    cli::run_cli(migration::Migrator).await;
}

/// sea-orm-migration's CLI declares `DATABASE_URL` without `hide_env_values`, so its
/// `--help` (and `up --help`, …) would print the URL, password included. Parse the
/// arguments first with the same definition, every environment value hidden: help,
/// version and usage errors are answered here; anything else parses the same way in
/// `run_cli` (only the help text differs).
fn hide_secrets_from_help() {
    use clap::CommandFactory;
    let command = cli::Cli::command()
        .mut_args(|arg| arg.hide_env_values(true))
        .mut_subcommands(|sub| sub.mut_args(|arg| arg.hide_env_values(true)));
    if let Err(e) = command.try_get_matches() {
        e.exit();
    }
}
