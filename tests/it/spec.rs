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
    let public = [
        "register",
        "login",
        "refresh",
        "healthz",
        "readyz",
        "jwks",
        "verifyEmail",
        "requestPasswordReset",
        "confirmPasswordReset",
        "loginMfa",
        "startPasskeyLogin",
        "finishPasskeyLogin",
    ];
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
    assert_eq!(protected, 35);
}

#[test]
fn the_documented_message_limit_is_the_one_enforced() {
    let spec: Value = serde_json::from_str(&doorman::api::spec_json()).unwrap();
    let body = &spec["components"]["schemas"]["PublishRequest"]["properties"]["body"];
    assert_eq!(body["maxLength"], doorman::ws::protocol::MAX_BODY_CHARS);
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

/// One rule per input: the patterns and lengths the spec documents for a field
/// accept exactly what the server's own parser accepts, over a corpus of edge cases.
#[test]
fn the_schema_rules_and_the_servers_checks_agree() {
    let spec: Value = serde_json::from_str(&doorman::api::spec_json()).unwrap();
    let fields = &spec["components"]["schemas"]["RegisterRequest"]["properties"];
    let schema_accepts = |field: &str, value: &str| {
        let rules = &fields[field];
        let chars = value.chars().count() as u64;
        let pattern_ok = rules["pattern"].as_str().is_none_or(|p| {
            regex::Regex::new(p)
                .unwrap_or_else(|e| panic!("{field} pattern: {e}"))
                .is_match(value)
        });
        pattern_ok
            && rules["maxLength"].as_u64().is_none_or(|max| chars <= max)
            && rules["minLength"].as_u64().is_none_or(|min| chars >= min)
    };
    let long_local = "a".repeat(240);
    let emails = [
        "ann@example.org".to_owned(),
        " Ann@Example.ORG ".to_owned(),
        "a@b.co".into(),
        "é@ü.de".into(),
        "a@b".into(),
        "a b@c.de".into(),
        "a@@b.de".into(),
        "@b.de".into(),
        "a@.de".into(),
        "a@b.".into(),
        "a@b.c.".into(),
        "a@b.c.d".into(),
        "a\u{85}@b.de".into(),
        "a@b.d\u{7f}e".into(),
        "a\t@b.de".into(),
        "".into(),
        "   ".into(),
        format!("{long_local}@example.org"),
        format!("{long_local}@example.orgx"),
        format!("  {long_local}@example.or  "),
    ];
    for email in &emails {
        assert_eq!(
            schema_accepts("email", email),
            doorman::auth::Email::parse(email).is_ok(),
            "email {email:?}: the spec and the server disagree"
        );
    }
    let passwords = [
        "1234567",
        "12345678",
        "ééééééé",
        "éééééééé",
        " spaces ",
        "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([
        "x".repeat(128),
        "x".repeat(129),
        "é".repeat(128),
        "é".repeat(129),
    ]);
    for password in passwords {
        assert_eq!(
            schema_accepts("password", &password),
            doorman::auth::Password::parse(password.clone()).is_ok(),
            "password of {} chars: the spec and the server disagree",
            password.chars().count()
        );
    }
    let names = [
        "Ann", " Ann ", "", " ", "\t", "a\nb", "a\u{85}b", "a\u{7f}", "ü", "名前",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([
        "x".repeat(64),
        "x".repeat(65),
        format!(" {} ", "x".repeat(63)),
    ]);
    for name in names {
        assert_eq!(
            schema_accepts("display_name", &name),
            doorman::auth::DisplayName::parse(&name).is_ok(),
            "display name {name:?}: the spec and the server disagree"
        );
    }
}

const REGENERATE_ASYNCAPI: &str = "cargo run -q -- asyncapi > asyncapi.json";

#[test]
fn committed_asyncapi_json_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/asyncapi.json"))
        .unwrap_or_default();
    assert!(
        committed == doorman::ws::asyncapi::asyncapi_json(),
        "asyncapi.json is out of date with the frame types; regenerate it with `{REGENERATE_ASYNCAPI}`"
    );
}

#[tokio::test]
async fn the_live_asyncapi_document_is_the_committed_one_served_as_json() {
    let app = crate::helpers::spawn_app().await;
    let resp = app.get("/asyncapi.json").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let live = resp.text().await.unwrap();
    assert_eq!(live, doorman::ws::asyncapi::asyncapi_json());
    let doc: Value = serde_json::from_str(&live).unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"]["socket"]["address"], "/ws");
}

#[test]
fn every_json_body_in_the_spec_is_plain_application_json() {
    let spec: Value = serde_json::from_str(&doorman::api::spec_json()).unwrap();
    let mut bodies = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let contents = op["requestBody"]["content"].as_object().into_iter().chain(
                op["responses"]
                    .as_object()
                    .unwrap()
                    .values()
                    .filter_map(|r| r["content"].as_object()),
            );
            for content in contents {
                for media in content.keys() {
                    bodies += 1;
                    assert!(
                        media == "application/json",
                        "{method} {path}: media type {media}"
                    );
                }
            }
        }
    }
    assert!(bodies > 100, "only {bodies} bodies");
}

/// Descriptions reach Swagger UI, generated clients' docstrings and their
/// Markdown: they are written for them, not for rustdoc. A doc comment's
/// intra-doc link (``[`TokenPair`]``) or a Rust path (`crate::…`) reads as noise
/// there (issue 32 found one in the generated Python client).
#[test]
fn descriptions_are_plain_markdown_without_rust_doc_syntax() {
    fn walk(v: &Value, path: &str, found: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if let ("description" | "summary", Value::String(text)) = (k.as_str(), v) {
                        let rust_link = text.match_indices("[`").any(|(i, _)| {
                            text[i..]
                                .find("`]")
                                .is_some_and(|end| !text[i + end + 2..].starts_with('('))
                        });
                        if rust_link || text.contains("crate::") || text.contains("Self::") {
                            found.push(format!("{path}/{k}: {text}"));
                        }
                    }
                    walk(v, &format!("{path}/{k}"), found);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), found);
                }
            }
            _ => {}
        }
    }
    for (name, doc) in [
        ("openapi.json", doorman::api::spec_json()),
        (
            "asyncapi.json",
            doorman::ws::asyncapi::asyncapi_json().to_owned(),
        ),
    ] {
        let mut found = Vec::new();
        walk(&serde_json::from_str(&doc).unwrap(), "", &mut found);
        assert!(found.is_empty(), "{name}: {found:#?}");
    }
}
