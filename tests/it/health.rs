//! Liveness, readiness, the pages, and unknown routes.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn health_readiness_and_unknown_routes() {
    let app = spawn_app().await;
    for (path, resp) in [
        ("/healthz", app.healthz().await),
        ("/readyz", app.readyz().await),
    ] {
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }
    let resp = app.get("/no/such/route").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let demo = app.get("/").await;
    assert_eq!(demo.status(), StatusCode::OK);
    assert!(demo.text().await.unwrap().contains("/ws"));
}
