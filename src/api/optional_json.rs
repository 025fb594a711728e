//! A JSON request body that may be left out entirely.
//!
//! Cookie-mode refresh is what a page's `fetch("/api/auth/refresh", {method:
//! "POST", credentials: "include"})` sends: no body and no `Content-Type`.
//! poem-openapi's `Json` refuses that with 415 before the handler runs, so this
//! payload documents the same JSON schema (marked not required) and reads an
//! absent or empty body as `null`.

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    error::{ContentTypeError, ParseRequestPayloadError},
    payload::{Json, Payload},
    registry::{MetaMediaType, MetaRequest, Registry},
    types::{ParseFromJSON, Type},
};
use serde_json::Value;

/// A JSON body of type `T`, where no body at all counts as JSON `null`.
pub struct OptionalJson<T>(pub T);

impl<'a, T: ParseFromJSON + Type + Send> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<T> as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Json<T> as Payload>::CONTENT_TYPE,
                schema: <Json<T> as Payload>::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bytes = body.take()?.into_vec().await?;
        let value = match request.content_type() {
            // A declared type must be JSON, even when the body is empty.
            Some(ct) if !<Json<T> as Payload>::check_content_type(ct) => {
                return Err(ContentTypeError::NotSupported {
                    content_type: ct.to_owned(),
                }
                .into());
            }
            _ if bytes.is_empty() => Value::Null,
            Some(_) => serde_json::from_slice(&bytes).map_err(|e| ParseRequestPayloadError {
                reason: e.to_string(),
            })?,
            // Bytes without a declared type: say which header is missing.
            None => return Err(ContentTypeError::ExpectContentType.into()),
        };
        T::parse_from_json(Some(value))
            .map(OptionalJson)
            .map_err(|e| {
                ParseRequestPayloadError {
                    reason: e.into_message(),
                }
                .into()
            })
    }
}
