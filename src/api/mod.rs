//! The OpenAPI-documented HTTP API. Every protected operation takes
//! [`crate::Authenticated`], which documents both security schemes.

mod admin;
mod auth;
mod direct_json;
mod email;
mod factors;
pub(crate) mod meta;
pub(crate) mod models;
mod optional_json;
pub(crate) mod room_names;
mod rooms;
pub(crate) mod sessions;
pub(crate) mod text;

pub use admin::AdminApi;
pub use auth::AuthApi;
pub use email::EmailApi;
pub use factors::FactorApi;
pub use meta::{MetaApi, demo_html};
use poem_openapi::{OpenApiService, Tags};
pub use rooms::RoomApi;
pub use sessions::SessionApi;

/// The spec's tags, one per endpoint group.
#[derive(Tags)]
pub enum ApiTags {
    /// Accounts, login, token refresh and logout.
    Auth,
    /// The caller and their sessions.
    Sessions,
    /// Second factors (TOTP and its recovery codes). Re-authentication for the
    /// operations that need a recent one is `POST /api/auth/reauth`.
    Factors,
    /// Room messages, delivered to WebSocket subscribers.
    Rooms,
    /// Health and public keys.
    Meta,
    /// Administration, for holders of the admin role: users, their sessions,
    /// blocking, deletion and the audit log.
    Admin,
}

/// doorman's own endpoint groups, as one `OpenApiService` serves them.
pub type Apis = (
    auth::AuthApi,
    email::EmailApi,
    sessions::SessionApi,
    factors::FactorApi,
    rooms::RoomApi,
    meta::MetaApi,
    admin::AdminApi,
);

/// The OpenAPI service. Paths are absolute and the spec names no server, so the
/// committed `openapi.json` does not depend on where the server runs.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            email::EmailApi,
            sessions::SessionApi,
            factors::FactorApi,
            rooms::RoomApi,
            meta::MetaApi,
            admin::AdminApi,
        ),
        "doorman",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "One authentication for HTTP endpoints and WebSockets. Every protected operation \
         accepts an access token as `Authorization: Bearer` or as the HttpOnly access cookie. \
         The WebSocket at `GET /ws` uses the same credentials; its protocol (every frame, \
         the three ways to authenticate, every close code and what a client should do) is \
         the AsyncAPI document [/asyncapi.json](/asyncapi.json).",
    )
}

/// The spec as pretty JSON with a trailing newline: what `doorman openapi` prints,
/// `GET /openapi.json` serves and `openapi.json` holds.
pub fn spec_json() -> String {
    let raw = service().spec();
    let mut spec = match serde_json::from_str::<serde_json::Value>(&raw) {
        Ok(spec) => spec,
        // poem-openapi writes the JSON itself; should it ever not parse, serve it as is.
        Err(_) => return raw + "\n",
    };
    fold_annotation_members(&mut spec);
    plain_json_media_types(&mut spec);
    let mut out = serde_json::to_string_pretty(&spec).unwrap_or(raw);
    out.push('\n');
    out
}

/// poem-openapi names the media type of every JSON body `application/json;
/// charset=utf-8` (the header it sends). A media-type key with parameters is valid
/// OpenAPI, but tools match keys against `application/json` (or `*/json`) exactly:
/// openapi-typescript's helper types (`SuccessResponseJSON`, `RequestBodyJSON`) find
/// no body at all. JSON is UTF-8 by definition (RFC 8259), so the parameter says
/// nothing: document the bare media type; the server still sends the parameter.
fn plain_json_media_types(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(content)) = map.get_mut("content")
                && let Some(body) = content.remove("application/json; charset=utf-8")
            {
                content.insert("application/json".to_owned(), body);
            }
            map.values_mut().for_each(plain_json_media_types);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_json_media_types),
        _ => {}
    }
}

/// poem-openapi documents an annotated `$ref` field as `allOf: [{$ref}, {description,
/// nullable}]`. A member with neither `type` nor `$ref` is valid OpenAPI, but client
/// generators (openapi-python-client) drop the whole schema, and with it the
/// operation: move such annotations onto the parent.
fn fold_annotation_members(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(members)) = map.get_mut("allOf") {
                let structural = |m: &Value| {
                    ["$ref", "type", "allOf", "anyOf", "oneOf", "properties"]
                        .iter()
                        .any(|k| m.get(k).is_some())
                };
                let (keep, fold): (Vec<Value>, Vec<Value>) =
                    members.drain(..).partition(|m| structural(m));
                *members = keep;
                for member in fold {
                    if let Value::Object(annotations) = member {
                        for (k, v) in annotations {
                            map.entry(k).or_insert(v);
                        }
                    }
                }
            }
            for v in map.values_mut() {
                fold_annotation_members(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(fold_annotation_members),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_error_codes_are_exactly_the_enum() {
        let doc = include_str!("../../docs/behaviour.md");
        let start = doc
            .find("codes: `missing_credentials`")
            .expect("the code list");
        let list = &doc[start..];
        let list = &list[..list.find('.').expect("the list ends")];
        let documented: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
        let spec: serde_json::Value = serde_json::from_str(&super::spec_json()).unwrap();
        let enumerated: Vec<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode is an enum in the spec")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut a = documented.clone();
        let mut b = enumerated.clone();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "docs/behaviour.md and the ErrorCode enum differ");
    }
}
