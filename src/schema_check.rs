//! Refused input in plain words: which field breaks which rule ("password: at least
//! 8 characters"), found by reading the input against the schema the API documents
//! (openapi.json for request bodies and parameters, asyncapi.json for socket
//! frames).
//!
//! Only on the error path, and only to explain: the typed parsers (poem-openapi's,
//! serde's) decide what is accepted, and their own messages name library types
//! (`string_password`), lose the field (a missing one, a wrong type), or quote the
//! input. So this reads a subset of JSON Schema, the one the documents use: `type`,
//! `nullable`, `enum` and `const`, `minLength` / `maxLength` (in characters, as the
//! parsers count), `pattern` (explained by the field's own description: the
//! documents state each rule in words), `minimum` / `maximum` and the unsigned
//! formats, `required`, `properties`, `additionalProperties: false`, `items`,
//! `$ref` and `allOf`. A refusal it cannot explain gets a general sentence from
//! its caller. Never quotes a value: a password typed into the wrong field must not
//! come back in an error.

use serde_json::{Map, Value};

/// Problems one answer names at most.
const MAX_PROBLEMS: usize = 5;

/// A schema document (OpenAPI or AsyncAPI, as JSON), for resolving `$ref`s.
pub struct Schemas {
    doc: Value,
}

impl Schemas {
    pub fn new(doc: Value) -> Self {
        Self { doc }
    }

    /// The whole document.
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Every rule `value` breaks against `schema`, one "field: rule" each (just the
    /// rule for the top level), in the schema's order; empty when none is found.
    pub fn problems(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, "", &mut out);
        // A body can break a rule thousands of times; the answer names a few.
        if out.len() > MAX_PROBLEMS {
            let more = out.len() - MAX_PROBLEMS;
            out.truncate(MAX_PROBLEMS);
            out.push(format!("and {more} more"));
        }
        out
    }

    /// What `schema` wants, in words ("a string", "one of token, cookie"), for a
    /// parameter that did not parse (its value is not at hand, nor needed).
    pub fn wanted(&self, schema: &Value) -> String {
        let schema = self.resolve(schema);
        if let Some(options) = options(schema) {
            return one_of(&options);
        }
        let mut words = kind(schema).to_owned();
        if let Some(rule) = pattern_rule(schema) {
            words = format!("{words}: {rule}");
        }
        words
    }

    /// `schema` with its `$ref` (and a lone `allOf` around one, as poem-openapi
    /// writes a documented reference) followed.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..16 {
            if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
                match target
                    .strip_prefix('#')
                    .and_then(|pointer| self.doc.pointer(pointer))
                {
                    Some(found) => schema = found,
                    None => return schema,
                }
            } else if let Some([only]) = schema
                .get("allOf")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                && only.get("$ref").is_some()
            {
                schema = only;
            } else {
                return schema;
            }
        }
        schema
    }

    fn check(&self, outer: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        // `nullable` sits beside a documented reference, not inside its target;
        // JSON Schema's own form is `"type": ["object", "null"]`.
        let nullable = outer.get("nullable").and_then(Value::as_bool) == Some(true);
        let schema = self.resolve(outer);
        if value.is_null() {
            let (expected, null_ok) = type_of(schema);
            if !nullable && !null_ok && expected.is_some_and(|t| t != "null") {
                out.push(at(path, &format!("must be {}, not null", kind(schema))));
            }
            return;
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            for part in parts {
                self.check(part, value, path, out);
            }
        }
        if let Some(options) = options(schema) {
            if !options.iter().any(|o| o == value) {
                out.push(at(path, &one_of(&options)));
            }
            return;
        }
        let Some(expected) = type_of(schema).0 else {
            return;
        };
        let fits = match expected {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            _ => true,
        };
        if !fits {
            out.push(at(path, &format!("must be {}", kind(schema))));
            return;
        }
        match value {
            Value::String(s) => check_string(schema, s, path, out),
            Value::Number(n) => check_number(schema, n, path, out),
            Value::Object(fields) => self.check_object(schema, fields, path, out),
            Value::Array(items) => self.check_array(schema, items, path, out),
            _ => {}
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        fields: &Map<String, Value>,
        path: &str,
        out: &mut Vec<String>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    out.push(format!("{}: required", join(path, name)));
                }
            }
        }
        for (name, value) in fields {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => self.check(property, value, &join(path, name), out),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    // The name is the client's own text, and a key can be a secret
                    // pasted in the wrong place: it is never repeated.
                    let known = properties
                        .map(|p| p.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default();
                    let rule = format!("a field that is not one of {known}");
                    let said = at(path, &rule);
                    if !out.contains(&said) {
                        out.push(said);
                    }
                }
                None => {}
            }
        }
    }

    fn check_array(&self, schema: &Value, items: &[Value], path: &str, out: &mut Vec<String>) {
        let count = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            out.push(at(path, &format!("at least {min} items")));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            out.push(at(path, &format!("at most {max} items")));
        }
        if let Some(item) = schema.get("items") {
            for (i, value) in items.iter().enumerate() {
                self.check(item, value, &format!("{path}[{i}]"), out);
            }
        }
    }
}

fn check_string(schema: &Value, s: &str, path: &str, out: &mut Vec<String>) {
    let min = schema.get("minLength").and_then(Value::as_u64);
    let max = schema.get("maxLength").and_then(Value::as_u64);
    let chars = s.chars().count() as u64;
    match (min, max) {
        (Some(1), _) if chars == 0 => out.push(at(path, "must not be empty")),
        (Some(min), Some(max)) if chars < min || chars > max => {
            out.push(at(path, &format!("{min} to {max} characters")));
        }
        (Some(min), None) if chars < min => {
            out.push(at(path, &format!("at least {min} characters")));
        }
        (_, Some(max)) if chars > max => {
            out.push(at(path, &format!("at most {max} characters")));
        }
        _ => {
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && regex::Regex::new(pattern).is_ok_and(|re| !re.is_match(s))
            {
                let rule = pattern_rule(schema)
                    .unwrap_or_else(|| "does not have the documented form".to_owned());
                out.push(at(path, &rule));
            }
        }
    }
}

fn check_number(schema: &Value, n: &serde_json::Number, path: &str, out: &mut Vec<String>) {
    let (low, high) = bounds(schema);
    let below = low.is_some_and(|low| n.as_f64().is_some_and(|v| v < low));
    let above = high.is_some_and(|high| n.as_f64().is_some_and(|v| v > high));
    if below || above {
        out.push(at(path, &format!("must be {}", kind(schema))));
    }
}

/// The documented range of a number: `minimum` / `maximum`, or its format's.
fn bounds(schema: &Value) -> (Option<f64>, Option<f64>) {
    let format_bounds = match schema.get("format").and_then(Value::as_str) {
        Some("uint8") => (Some(0.0), Some(255.0)),
        Some("uint16") => (Some(0.0), Some(65_535.0)),
        Some("uint32") => (Some(0.0), Some(4_294_967_295.0)),
        Some("uint64") => (Some(0.0), None),
        Some("int32") => (Some(-2_147_483_648.0), Some(2_147_483_647.0)),
        _ => (None, None),
    };
    (
        schema
            .get("minimum")
            .and_then(Value::as_f64)
            .or(format_bounds.0),
        schema
            .get("maximum")
            .and_then(Value::as_f64)
            .or(format_bounds.1),
    )
}

/// A schema's type (the first besides `"null"` when it lists several) and whether
/// it admits null.
fn type_of(schema: &Value) -> (Option<&str>, bool) {
    match schema.get("type") {
        Some(Value::String(t)) => (Some(t.as_str()), t == "null"),
        Some(Value::Array(types)) => (
            types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null"),
            types.iter().any(|t| t == "null"),
        ),
        _ => (None, false),
    }
}

/// A schema's type in words, with its range or format where it has one.
fn kind(schema: &Value) -> String {
    let format = schema.get("format").and_then(Value::as_str);
    match type_of(schema).0 {
        Some("string") => match format {
            Some("uuid") => "a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6".to_owned(),
            Some("date-time") => "a date and time such as 2026-01-31T12:00:00Z".to_owned(),
            _ => "a string".to_owned(),
        },
        Some(t @ ("integer" | "number")) => {
            let what = if t == "integer" {
                "a whole number"
            } else {
                "a number"
            };
            match bounds(schema) {
                (Some(low), Some(high)) => format!("{what} from {low} to {high}"),
                (Some(low), None) => format!("{what} of at least {low}"),
                (None, Some(high)) => format!("{what} of at most {high}"),
                (None, None) => what.to_owned(),
            }
        }
        Some("boolean") => "true or false".to_owned(),
        Some("object") => "a JSON object".to_owned(),
        Some("array") => "a list".to_owned(),
        _ => "a valid value".to_owned(),
    }
}

/// The allowed values of an `enum`, a `const`, or a `oneOf` of `const`s.
fn options(schema: &Value) -> Option<Vec<Value>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Some(values.clone());
    }
    if let Some(value) = schema.get("const") {
        return Some(vec![value.clone()]);
    }
    let alternatives = schema.get("oneOf").and_then(Value::as_array)?;
    alternatives
        .iter()
        .map(|a| a.get("const").cloned())
        .collect()
}

fn one_of(options: &[Value]) -> String {
    let words: Vec<String> = options
        .iter()
        .map(|o| match o {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    match words.as_slice() {
        [only] => format!("must be {only}"),
        _ => format!("one of {}", words.join(", ")),
    }
}

/// The rule behind a `pattern`, in the words the document gives it: the first
/// clause of the field's description, without Markdown's backticks.
fn pattern_rule(schema: &Value) -> Option<String> {
    schema.get("pattern")?;
    let description = schema.get("description").and_then(Value::as_str)?;
    let text = description.replace('\n', " ").replace('`', "");
    let clause = text
        .split("; ")
        .next()
        .and_then(|c| c.split(". ").next())
        .unwrap_or_default()
        .trim_end_matches(['.', ',', ' ']);
    (!clause.is_empty()).then(|| clause.to_owned())
}

fn at(path: &str, rule: &str) -> String {
    if path.is_empty() {
        rule.to_owned()
    } else {
        format!("{path}: {rule}")
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Schemas;

    fn schemas() -> Schemas {
        Schemas::new(json!({"components": {"schemas": {
            "Mode": {"type": "string", "enum": ["token", "cookie"]},
            "Req": {
                "type": "object",
                "required": ["email", "password"],
                "additionalProperties": false,
                "properties": {
                    "email": {"type": "string", "maxLength": 254,
                              "pattern": "^[^@]+@[^@]+$",
                              "description": "`local@domain.tld`: one `@`; trimmed."},
                    "password": {"type": "string", "minLength": 8, "maxLength": 128},
                    "mode": {"allOf": [{"$ref": "#/components/schemas/Mode"}], "nullable": true},
                    "limit": {"type": "integer", "format": "uint32"},
                    "codes": {"type": "array", "maxItems": 2, "items": {"type": "string", "minLength": 1}}
                }
            }
        }}}))
    }

    fn problems(body: serde_json::Value) -> Vec<String> {
        let s = schemas();
        let schema = json!({"$ref": "#/components/schemas/Req"});
        s.problems(&schema, &body)
    }

    #[test]
    fn each_rule_in_plain_words() {
        assert_eq!(
            problems(json!({"email": "a@b.co", "password": "short"})),
            ["password: 8 to 128 characters"]
        );
        assert_eq!(
            problems(json!({"password": 5})),
            ["email: required", "password: must be a string"]
        );
        assert_eq!(
            problems(json!({"email": "nope", "password": "long enough", "mode": "weird"})),
            [
                "email: local@domain.tld: one @",
                "mode: one of token, cookie"
            ]
        );
        assert_eq!(
            problems(
                json!({"email": "a@b.co", "password": "long enough", "mode": null, "limit": -1})
            ),
            ["limit: must be a whole number from 0 to 4294967295"]
        );
        assert_eq!(
            problems(
                json!({"email": "a@b.co", "password": "long enough", "codes": ["", "x", "y"]})
            ),
            ["codes: at most 2 items", "codes[0]: must not be empty"]
        );
        assert_eq!(problems(json!([1])), ["must be a JSON object"]);
        assert_eq!(
            problems(json!({"email": null, "password": "long enough"})),
            ["email: must be a string, not null"]
        );
        assert!(problems(json!({"email": "a@b.co", "password": "long enough"})).is_empty());
    }

    #[test]
    fn nested_objects_and_type_lists_name_the_inner_field() {
        let s = Schemas::new(json!({}));
        let frame = json!({
            "type": "object",
            "required": ["room"],
            "properties": {
                "room": {"type": "string"},
                "since": {
                    "type": ["object", "null"],
                    "required": ["offset", "epoch"],
                    "properties": {
                        "offset": {"type": "integer", "format": "uint64", "minimum": 0},
                        "epoch": {"type": "string"}
                    }
                }
            }
        });
        let check = |v| s.problems(&frame, &v);
        assert_eq!(
            check(json!({"room": "a", "since": {"offset": 1}})),
            ["since.epoch: required"]
        );
        assert_eq!(
            check(json!({"room": "a", "since": {"offset": -1, "epoch": ""}})),
            ["since.offset: must be a whole number of at least 0"]
        );
        assert_eq!(
            check(json!({"room": "a", "since": {"offset": "1", "epoch": ""}})),
            ["since.offset: must be a whole number of at least 0"]
        );
        assert_eq!(
            check(json!({"room": "a", "since": 5})),
            ["since: must be a JSON object"]
        );
        assert!(check(json!({"room": "a", "since": null})).is_empty());
    }

    #[test]
    fn unknown_fields_are_never_named_and_many_problems_are_cut_short() {
        assert_eq!(
            problems(
                json!({"email": "a@b.co", "password": "long enough", "passwd": 1, "Tr0ub4dor-3": 2})
            ),
            ["a field that is not one of codes, email, limit, mode, password"]
        );
        let mut body: serde_json::Map<String, serde_json::Value> =
            (0..3000).map(|i| (format!("x{i}"), json!(1))).collect();
        body.insert("codes".into(), json!(vec![""; 10]));
        let said = problems(serde_json::Value::Object(body));
        assert_eq!(said.len(), 6, "{said:?}");
        assert_eq!(said[5], "and 9 more");
    }

    #[test]
    fn no_value_is_ever_repeated() {
        let secret = "correct horse battery staple";
        for body in [
            json!({"email": secret, "password": "x"}),
            json!({"email": "a@b.co", "password": secret, "mode": secret}),
            json!({"email": [secret], "password": {"p": secret}}),
        ] {
            for p in problems(body) {
                assert!(!p.contains("horse"), "{p}");
            }
        }
    }
}
