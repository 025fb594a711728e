//! What the API's spec says about refused input, for error messages: the names a
//! parse error may repeat (`redact`), and each operation's body and parameter
//! schemas, against which a refused body is read to name its field and rule
//! (`crate::schema_check`).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use poem_openapi::error::{ParseParamError, ParsePathError, ParseRequestPayloadError};
use serde_json::Value;

use super::{Error, redact::known_names};
use crate::schema_check::Schemas;

/// What the request was, attached to the error of an operation that refused its
/// input (see [`attach`]): the operation is known by its id, and the path tells it
/// from a host's operation that happens to share the id.
#[derive(Clone)]
struct Refused {
    uri: poem::http::Uri,
    /// As read by the body bound.
    body: Option<Bytes>,
}

/// Attaches the request to `err` when it is a refused body or parameter, so that
/// [`SpecFacts::explain`] can read it; other errors pass untouched.
pub fn attach(mut err: poem::Error, uri: poem::http::Uri, body: Option<Bytes>) -> poem::Error {
    if err.is::<ParseRequestPayloadError>()
        || err.is::<ParseParamError>()
        || err.is::<ParsePathError>()
    {
        err.set_data(Refused { uri, body });
    }
    err
}

/// One operation's inputs, as its spec documents them (pointers into the spec).
#[derive(Default)]
struct Inputs {
    /// The path template, `/api/sessions/{id}`.
    path: String,
    body: Option<String>,
    params: HashMap<String, String>,
}

impl Inputs {
    /// The documented name of a path parameter: poem-openapi names them by their
    /// place in the path, `param0` for the first.
    fn path_param<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        let Some(place) = name
            .strip_prefix("param")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return Some(name);
        };
        self.path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .nth(place)
    }

    fn serves(&self, path: &str) -> bool {
        let mut template = self.path.split('/');
        let mut given = path.split('/');
        loop {
            match (template.next(), given.next()) {
                (None, None) => return true,
                (Some(t), Some(g)) if t == g || (t.starts_with('{') && !g.is_empty()) => {}
                _ => return false,
            }
        }
    }
}

/// The facts of one spec that error messages use; built once per process.
pub struct SpecFacts {
    pub(super) known_names: HashSet<String>,
    schemas: Schemas,
    /// By operation id.
    operations: HashMap<String, Inputs>,
}

impl SpecFacts {
    /// From an OpenAPI document (JSON).
    pub fn from_spec(spec: &str) -> Self {
        let doc: Value = serde_json::from_str(spec).unwrap_or_default();
        let mut operations = HashMap::new();
        for (path, methods) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in methods.as_object().into_iter().flatten() {
                let Some(id) = op["operationId"].as_str() else {
                    continue;
                };
                let base = format!("/paths/{}/{method}", escape(path));
                let mut inputs = Inputs {
                    path: path.clone(),
                    ..Inputs::default()
                };
                if op["requestBody"]["content"]["application/json"]["schema"].is_object() {
                    inputs.body = Some(format!(
                        "{base}/requestBody/content/application~1json/schema"
                    ));
                }
                for (i, param) in op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if let Some(name) = param["name"].as_str() {
                        inputs
                            .params
                            .insert(name.to_owned(), format!("{base}/parameters/{i}/schema"));
                    }
                }
                operations.insert(id.to_owned(), inputs);
            }
        }
        Self {
            known_names: known_names(spec),
            schemas: Schemas::new(doc),
            operations,
        }
    }

    /// `err` in plain words when it is a refused body or parameter of an operation
    /// this spec documents and the schema names what is wrong; `None` otherwise.
    pub(super) fn explain(&self, err: &poem::Error) -> Option<Error> {
        let operation = err.data::<poem_openapi::OperationId>()?.0;
        let refused = err.data::<Refused>()?;
        let inputs = self
            .operations
            .get(operation)
            .filter(|inputs| inputs.serves(refused.uri.path()))?;
        let doc = self.schemas.doc();
        if err.is::<ParseRequestPayloadError>() {
            let value: Value = match serde_json::from_slice(refused.body.as_deref()?) {
                Ok(value) => value,
                // serde_json's syntax errors give a position, never the text.
                Err(e) => {
                    return Some(Error::BadRequest(format!(
                        "the body is not valid JSON: {e}"
                    )));
                }
            };
            let schema = doc.pointer(inputs.body.as_deref()?)?;
            let problems = self.schemas.problems(schema, &value);
            return (!problems.is_empty()).then(|| Error::Invalid(problems.join("; ")));
        }
        let name = if let Some(e) = err.downcast_ref::<ParseParamError>() {
            e.name
        } else {
            inputs.path_param(err.downcast_ref::<ParsePathError>()?.name)?
        };
        let schema = doc.pointer(inputs.params.get(name)?)?;
        Some(Error::Invalid(format!(
            "{name}: must be {}",
            self.schemas.wanted(schema)
        )))
    }
}

/// A path as a JSON pointer token.
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}
