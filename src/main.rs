use std::process::ExitCode;

use clap::Parser;
use doorman::{Application, Config, config::Command};

fn main() -> ExitCode {
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            eprintln!("doorman: {}", Config::explain(&e));
            return ExitCode::from(2);
        }
    };
    match config.command {
        Some(Command::Openapi) => {
            print!("{}", doorman::api::spec_json());
            return ExitCode::SUCCESS;
        }
        Some(Command::Asyncapi) => {
            print!("{}", doorman::ws::asyncapi::asyncapi_json());
            return ExitCode::SUCCESS;
        }
        Some(Command::Serve | Command::Keys { .. } | Command::Users { .. }) | None => {}
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("doorman: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Keys { action }) = &config.command {
        return match runtime.block_on(doorman::app::manage_keys(&config, action)) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("doorman: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Users { action }) = &config.command {
        return match runtime.block_on(doorman::app::manage_users(&config, action)) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("doorman: {e}");
                ExitCode::FAILURE
            }
        };
    }
    doorman::init_logging(config.log_format);
    raise_open_file_limit();
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("doorman: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let public = config.public_url();
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, "listening");
    println!("doorman listening on http://{addr}");
    println!("  demo page:  {public}/");
    println!("  Swagger UI: {public}/docs");
    println!("  spec:       {public}/openapi.json");
    // The socket's own URL (ws:// or wss://), then where its protocol is described.
    let ws = public.replacen("http", "ws", 1);
    println!("  WebSocket:  {ws}/ws  (protocol: {public}/asyncapi.json)");
    app.run_until(doorman::shutdown_signal()).await?;
    Ok(())
}

/// Every connection holds a file descriptor, and a soft limit of 1024 (a common
/// default) lets four clients within their per-IP caps take them all: new
/// connections from anyone else would then be refused. Raise the soft limit to the
/// hard one, as servers do.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open file limit"),
    }
}
