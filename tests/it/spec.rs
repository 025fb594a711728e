//! The committed `openapi.json` is exactly what the code generates, and documents
//! both security schemes on every protected operation.

use serde_json::Value;

const REGENERATE: &str = "cargo run -q -- openapi > openapi.json";

#[test]
fn committed_openapi_json_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .unwrap_or_default();
    let generated = doorman::api::spec_json();
    assert!(
        committed == generated,
        "openapi.json is out of date with the code; regenerate it with `{REGENERATE}`"
    );
}

#[test]
fn every_protected_operation_offers_bearer_and_cookie() {
    let spec: Value = serde_json::from_str(&doorman::api::spec_json()).unwrap();
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["type"], "http");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["cookieAuth"]["type"], "apiKey");
    assert_eq!(schemes["cookieAuth"]["in"], "cookie");
    let public = ["register", "login", "refresh", "healthz", "readyz", "jwks"];
    let mut protected = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            if public.contains(&id) {
                continue;
            }
            protected += 1;
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} has no security"));
            let names: Vec<&str> = security
                .iter()
                .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
                .collect();
            assert_eq!(names, ["bearerAuth", "cookieAuth"], "{method} {path}");
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {path} documents 401"
            );
        }
    }
    assert_eq!(protected, 6);
}

#[test]
fn the_documented_message_limit_is_the_one_enforced() {
    let spec: Value = serde_json::from_str(&doorman::api::spec_json()).unwrap();
    let body = &spec["components"]["schemas"]["PublishRequest"]["properties"]["body"];
    assert_eq!(body["maxLength"], doorman::rooms::MAX_BODY_CHARS);
}

#[test]
fn no_all_of_member_is_a_bare_annotation() {
    fn walk(v: &Value, path: &str) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(members)) = map.get("allOf") {
                    for m in members {
                        assert!(
                            m.get("$ref").is_some() || m.get("type").is_some(),
                            "{path}: allOf member without $ref or type: {m}"
                        );
                    }
                }
                for (k, v) in map {
                    walk(v, &format!("{path}/{k}"));
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, path)),
            _ => {}
        }
    }
    walk(
        &serde_json::from_str(&doorman::api::spec_json()).unwrap(),
        "#",
    );
}

#[tokio::test]
async fn the_live_spec_is_the_committed_one() {
    let app = crate::helpers::spawn_app().await;
    let live = app.get("/openapi.json").await.text().await.unwrap();
    assert_eq!(live, doorman::api::spec_json());
}
