//! A shop on doorman: doorman's sign-in beside the shop's own operations and socket,
//! one authentication for all (docs/embedding.md). Configured like the server.
use doorman::{
    Authenticated, Config, Doorman, RecentlyAuthenticated,
    api::{AuthApi, FactorApi, SessionApi},
    error::{AuthFailures, BodyAuthFailures, Fail},
    ws::SocketUpgrade,
};
use poem::{IntoResponse, Route, get, handler, web::websocket::Message};
use poem_openapi::{ApiResponse, Object, OpenApi, OpenApiService, payload::Json};
use serde_json::{Value, json};

/// A new order.
#[derive(Object)]
struct Order {
    item: String,
}

#[derive(ApiResponse)]
enum Placed {
    /// The order, stamped with the caller.
    #[oai(status = 201)]
    Created(Json<Value>),
}

struct Shop;

#[OpenApi]
impl Shop {
    /// Who is asking, with which credential (`bearer` or `cookie`), and how
    /// strongly they signed in (`aal1`, or `aal2` after a second factor or a passkey).
    #[oai(path = "/api/orders", method = "get")]
    async fn orders(&self, auth: Authenticated) -> Result<Json<Value>, Fail<AuthFailures>> {
        Ok(Json(json!({
            "user_id": auth.user_id,
            "auth_source": auth.source,
            "aal": auth.assurance.aal,
        })))
    }

    /// Cancels every order: a sensitive operation, so it needs a recent
    /// authentication (else 403 `step_up_required`; `POST /api/auth/reauth`, retry).
    #[oai(path = "/api/orders", method = "delete")]
    async fn cancel_all(
        &self,
        auth: RecentlyAuthenticated,
    ) -> Result<Json<Value>, Fail<AuthFailures>> {
        Ok(Json(json!({"cancelled_for": auth.user_id})))
    }

    /// Places an order. With the cookie, only from an allowed Origin (else 403).
    #[oai(path = "/api/orders", method = "post")]
    async fn place(
        &self,
        auth: Authenticated,
        order: Json<Order>,
    ) -> Result<Placed, Fail<BodyAuthFailures>> {
        let order = json!({"item": order.0.item, "user_id": auth.user_id});
        Ok(Placed::Created(Json(order)))
    }
}

/// The shop's own socket, closed with 4403 when the session ends on any instance.
#[handler]
fn feed(upgrade: SocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(|mut socket| async move {
        let id = socket.identity();
        let mut out = json!({"type": "hello", "user_id": id.user_id, "auth_source": id.source});
        // Echoes text; anything else ends the loop, and the dropped socket closes.
        while socket.send(Message::Text(out.to_string())).await.is_ok() {
            let Some(Message::Text(body)) = socket.recv().await else {
                break;
            };
            out = json!({"type": "echo", "body": body});
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    doorman::init_logging(config.log_format); // RUST_LOG, payload loggers capped
    let doorman = Doorman::builder(config).start().await?;
    let api = OpenApiService::new((AuthApi, SessionApi, FactorApi, Shop), "shop", "1.0");
    let app = Route::new()
        .at("/feed", get(feed))
        .at("/openapi.json", api.spec_endpoint())
        .nest("/docs", api.swagger_ui())
        .nest("/", api);
    Ok(doorman.serve(app).await?)
}
