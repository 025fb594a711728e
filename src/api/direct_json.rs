//! A JSON response written straight from its Rust value, for the hottest
//! operations (`/healthz`, `/api/me`).
//!
//! poem-openapi's `Json<T>` serialises through `ToJSON`: it first builds a
//! `serde_json::Value` tree (a `String` per field, a `BTreeMap` per object), then
//! writes that tree, escaping every string, and drops it. Measured with callgrind
//! (docs/benchmarks.md), that detour was a visible part of what `/api/me` cost beyond
//! poem itself. `DirectJson` documents exactly what `Json<T>` documents (same
//! status, content type and schema, so the spec does not change) and writes the
//! same bytes with [`WriteJson`]: keys in the order `ToJSON` gives them (sorted, as a
//! `BTreeMap` iterates), values formatted alike, and only the strings that can hold
//! anything (names, emails) go through serde_json's escaping; ids and times are
//! written as the fixed ASCII they are. The tests hold the bytes to poem-openapi's.

use super::models::{AalName, AuthSourceName, Health, Me};
use crate::json_text::{rfc3339, string, uuid};
use poem::{
    IntoResponse, Response,
    http::{HeaderValue, header},
};
use poem_openapi::{
    ApiResponse,
    payload::{Json, Payload},
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::{ToJSON, Type},
};

/// A `200` JSON body of type `T`, documented as poem-openapi's `Json<T>`.
pub struct DirectJson<T>(pub T);

/// A value that writes its own JSON: byte for byte what its `ToJSON` gives.
pub trait WriteJson {
    /// Appends the value's JSON to `out`; `None` if some field cannot be written
    /// (then `out` holds a fragment and the caller falls back to `ToJSON`).
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()>;
}

impl<T: WriteJson + ToJSON + Send> IntoResponse for DirectJson<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(256);
        if self.0.write_json(&mut body).is_none() {
            return Json(self.0).into_response();
        }
        Response::builder()
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static(<Json<T> as Payload>::CONTENT_TYPE),
            )
            .body(body)
    }
}

impl<T: Type + WriteJson + ToJSON + Send> ApiResponse for DirectJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: <Json<T> as Payload>::CONTENT_TYPE,
                    schema: <Json<T> as Payload>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl WriteJson for Health {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        out.extend_from_slice(br#"{"status":"#);
        string(out, &self.status)?;
        out.push(b'}');
        Some(())
    }
}

impl WriteJson for Me {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        let source: &[u8] = match self.auth_source {
            AuthSourceName::Bearer => b"bearer",
            AuthSourceName::Cookie => b"cookie",
            AuthSourceName::Message => b"message",
        };
        let aal: &[u8] = match self.aal {
            AalName::Aal1 => b"aal1",
            AalName::Aal2 => b"aal2",
        };
        out.extend_from_slice(br#"{"aal":""#);
        out.extend_from_slice(aal);
        out.extend_from_slice(br#"","amr":["#);
        for (i, m) in self.amr.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, m)?;
        }
        out.extend_from_slice(br#"],"auth_at":"#);
        rfc3339(out, &self.auth_at)?;
        out.extend_from_slice(br#","auth_source":""#);
        out.extend_from_slice(source);
        out.extend_from_slice(br#"","session_id":"#);
        uuid(out, &self.session_id);
        let user = &self.user;
        out.extend_from_slice(br#","user":{"created_at":"#);
        rfc3339(out, &user.created_at)?;
        out.extend_from_slice(br#","display_name":"#);
        string(out, &user.display_name)?;
        out.extend_from_slice(br#","email":"#);
        string(out, &user.email)?;
        out.extend_from_slice(br#","email_verified_at":"#);
        match &user.email_verified_at {
            Some(at) => rfc3339(out, at)?,
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","id":"#);
        uuid(out, &user.id);
        out.extend_from_slice(b"}}");
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::api::models::User;

    /// The body `Json<T>` would have written, and ours.
    fn both<T: ToJSON + WriteJson>(value: &T) -> (String, String) {
        let theirs = serde_json::to_string(&value.to_json()).unwrap();
        let mut ours = Vec::new();
        value.write_json(&mut ours).unwrap();
        (String::from_utf8(ours).unwrap(), theirs)
    }

    #[test]
    fn me_is_written_byte_for_byte_as_poem_openapi_writes_it() {
        for created_at in [
            datetime!(2026-11-27 15:54:20.126277384 UTC),
            datetime!(2026-11-27 15:54:20 UTC),
            datetime!(2026-11-27 15:54:20.1 +02:00),
            datetime!(0001-01-01 00:00:00.000000001 -23:59),
        ] {
            for auth_source in [
                AuthSourceName::Bearer,
                AuthSourceName::Cookie,
                AuthSourceName::Message,
            ] {
                for (email, display_name) in [
                    ("bench@example.org", "bench"),
                    (
                        "a+\"q\"@example.org",
                        "Ada \\ Lovelace \u{1F600}\n\t\u{7f}\u{0}</script>",
                    ),
                ] {
                    let me = Me {
                        user: User {
                            id: Uuid::now_v7(),
                            email: email.into(),
                            display_name: display_name.into(),
                            created_at,
                            email_verified_at: matches!(auth_source, AuthSourceName::Cookie)
                                .then_some(created_at),
                        },
                        session_id: Uuid::new_v4(),
                        auth_source,
                        aal: if matches!(auth_source, AuthSourceName::Cookie) {
                            AalName::Aal2
                        } else {
                            AalName::Aal1
                        },
                        amr: match auth_source {
                            AuthSourceName::Bearer => vec!["pwd".into()],
                            AuthSourceName::Cookie => vec!["pwd".into(), "otp".into()],
                            AuthSourceName::Message => vec![],
                        },
                        auth_at: created_at,
                    };
                    let (ours, theirs) = both(&me);
                    assert_eq!(ours, theirs);
                }
            }
        }
    }

    #[test]
    fn a_time_rfc_3339_cannot_write_falls_back_to_poem_openapis_bytes() {
        let me = Me {
            user: User {
                id: Uuid::nil(),
                email: "x@example.org".into(),
                display_name: "x".into(),
                // Offsets with seconds have no RFC 3339 form.
                created_at: datetime!(2026-11-27 15:54:20 +01:00:30),
                email_verified_at: None,
            },
            session_id: Uuid::nil(),
            auth_source: AuthSourceName::Bearer,
            aal: AalName::Aal1,
            amr: vec!["pwd".into()],
            auth_at: datetime!(2026-11-27 15:54:20 UTC),
        };
        assert!(me.write_json(&mut Vec::new()).is_none());
        let theirs = serde_json::to_vec(&me.to_json()).unwrap();
        let resp = DirectJson(me).into_response();
        let body = futures_util::FutureExt::now_or_never(resp.into_body().into_vec())
            .unwrap()
            .unwrap();
        assert_eq!(body, theirs);
    }

    #[test]
    fn health_is_written_byte_for_byte_as_poem_openapi_writes_it() {
        for status in ["ok", "database_unavailable", "\"quoted\""] {
            let (ours, theirs) = both(&Health {
                status: status.into(),
            });
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn the_response_is_json_with_poem_openapis_content_type() {
        let health = || Health {
            status: "ok".into(),
        };
        let resp = DirectJson(health()).into_response();
        let expected = Json(health()).into_response();
        assert_eq!(resp.status(), expected.status());
        assert_eq!(resp.content_type(), expected.content_type());
    }
}
