//! A host app's operation with doorman's extractor, and its floor: the cost of
//! doorman's auth on an operation of someone else's poem-openapi app.
//!
//! - default: `GET /api/orders` in the host's own `OpenApiService`, taking
//!   `doorman::Authenticated` and answering `{user_id, auth_source}`, served by
//!   `Doorman::serve` (the edge and the connection guard), configured from the
//!   environment like the server (`DOORMAN_BIND`, `DATABASE_URL`,
//!   `DOORMAN_PUBLIC_URL`); doorman's `MetaApi` for `/healthz`.
//! - `--bare`: the same app with only the extractor: doorman's handle attached
//!   with `.data()` (what the extractor needs), on poem's own server, without
//!   the edge and the guarded listener. The extractor's cost alone.
//! - `--floor`: the same operation and `/healthz` in the same poem-openapi, with no
//!   authentication and no edge, answering the same JSON (`--user-id`) on a plain
//!   poem server: what poem-openapi itself costs for that work.
//!
//! Usage: doorman-host [--bare | --floor --bind ADDR --user-id UUID]

use clap::Parser;
use doorman::{Authenticated, Config, Doorman, api::MetaApi};
use poem::{EndpointExt, Route, Server, listener::TcpListener};
use poem_openapi::{Object, OpenApi, OpenApiService, payload::Json};

#[derive(Parser)]
struct Args {
    /// Serve the floor: the same operation without doorman.
    #[arg(long)]
    floor: bool,
    /// Serve the operation with the extractor only (no edge, poem's listener).
    #[arg(long, conflicts_with = "floor")]
    bare: bool,
    /// The floor's address.
    #[arg(long, default_value = "127.0.0.1:18805")]
    bind: std::net::SocketAddr,
    /// The user id the floor answers with (doorman's bench user's).
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    user_id: String,
}

#[derive(Object)]
struct Caller {
    user_id: String,
    auth_source: String,
}

struct Orders;

#[OpenApi]
impl Orders {
    /// The caller.
    #[oai(path = "/api/orders", method = "get")]
    async fn orders(&self, auth: Authenticated) -> Json<Caller> {
        Json(Caller {
            user_id: auth.user_id.to_string(),
            auth_source: auth.source.as_str().to_owned(),
        })
    }
}

struct Floor(String);

#[OpenApi]
impl Floor {
    /// The caller, without asking.
    #[oai(path = "/api/orders", method = "get")]
    async fn orders(&self) -> Json<Caller> {
        Json(Caller {
            user_id: self.0.clone(),
            auth_source: "bearer".to_owned(),
        })
    }

    /// Liveness.
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> Json<serde_json::Value> {
        Json(serde_json::json!({"status": "ok"}))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.floor {
        let api = OpenApiService::new(Floor(args.user_id), "floor", "1");
        Server::new(TcpListener::bind(args.bind))
            .run(Route::new().nest("/", api))
            .await?;
        return Ok(());
    }
    // As a host would (examples/shop.rs): without a subscriber, every span falls
    // back to the `log` crate's checks.
    let config = Config::from_env()?;
    doorman::init_logging(config.log_format);
    let doorman = Doorman::builder(config).start().await?;
    let api = OpenApiService::new((Orders, MetaApi), "host", "1");
    if args.bare {
        let addr = doorman.config().bind;
        let app = Route::new().nest("/", api).data(doorman);
        Server::new(TcpListener::bind(addr)).run(app).await?;
        return Ok(());
    }
    doorman.serve(Route::new().nest("/", api)).await?;
    Ok(())
}
