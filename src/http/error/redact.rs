//! Keeping credentials out of error messages: poem's parse errors quote the input
//! they could not parse.

use std::collections::HashSet;

/// poem's parse errors quote what they could not parse, which may be a credential
/// someone put in the wrong field. Keep quoted names the API itself defines (its
/// types, fields, parameters and a few header names), replace any other quoted
/// text, and any value after "found", by `…`.
pub fn redact(message: &str, known: &HashSet<String>) -> String {
    let is_known = |quoted: &str| {
        known.contains(quoted)
            || known.contains(&quoted.to_ascii_lowercase())
            || is_primitive_type_name(quoted)
    };
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[start] as char;
        out.push_str(&rest[..=start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else {
            rest = after;
            out.push('…');
            break;
        };
        let quoted = &after[..end];
        out.push_str(if is_known(quoted) { quoted } else { "…" });
        out.push(quote);
        rest = &after[end + 1..];
    }
    if !rest.is_empty() && !out.ends_with('…') {
        out.push_str(rest);
    }
    // Unquoted values (numbers, serde's `found 123`) follow "found".
    if let Some(at) = out.find("found ") {
        let value = &out[at + "found ".len()..];
        if !value.starts_with(['"', '`']) {
            let end = if out.ends_with('.') { "." } else { "" };
            out.truncate(at + "found ".len());
            out.push('…');
            out.push_str(end);
        }
    }
    out
}

/// `string`, `integer`, `string_email`…: the names poem-openapi gives basic types.
fn is_primitive_type_name(s: &str) -> bool {
    let base = s.split('_').next().unwrap_or(s);
    matches!(
        base,
        "string" | "integer" | "number" | "boolean" | "object" | "array"
    ) && s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The names an API defines, from its spec (`spec`, OpenAPI JSON): schema names,
/// their properties, operation parameters, and the headers parse errors mention.
pub fn known_names(spec: &str) -> HashSet<String> {
    {
        let mut known: HashSet<String> = ["content-type", "content-length"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let spec: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        if let Some(schemas) = spec["components"]["schemas"].as_object() {
            for (name, schema) in schemas {
                known.insert(name.clone());
                if let Some(props) = schema["properties"].as_object() {
                    known.extend(props.keys().cloned());
                }
            }
        }
        if let Some(paths) = spec["paths"].as_object() {
            for op in paths
                .values()
                .filter_map(|p| p.as_object())
                .flat_map(|p| p.values())
            {
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if let Some(name) = param["name"].as_str() {
                        known.insert(name.to_owned());
                    }
                }
            }
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_identifiers_and_hides_values() {
        // The names a spec defines, as `known_names` reads them from it.
        let spec = r#"{"components": {"schemas": {"LoginMode": {"properties": {"email": {}}}}}}"#;
        let known = known_names(spec);
        let redact = |m: &str| redact(m, &known);
        assert_eq!(
            redact(r#"Expected input type "LoginMode", found "eyJhbGciOi.secret.sig"."#),
            r#"Expected input type "LoginMode", found "…"."#
        );
        // Short plain words are values too when the API does not define them.
        assert_eq!(
            redact(
                r#"failed to parse "LoginMode": Expected input type "LoginMode", found "Hunter2Secret99"."#
            ),
            r#"failed to parse "LoginMode": Expected input type "LoginMode", found "…"."#
        );
        assert_eq!(
            redact(r#"Expected input type "string", found 12345678."#),
            r#"Expected input type "string", found …."#
        );
        assert_eq!(redact("missing field `email`"), "missing field `email`");
        assert_eq!(
            redact("invalid type: integer `1234567890123`, expected a map"),
            "invalid type: integer `…`, expected a map"
        );
        assert_eq!(
            redact("the client request does not include the `Content-Type` header"),
            "the client request does not include the `Content-Type` header"
        );
        assert_eq!(redact("no quotes at all"), "no quotes at all");
        assert_eq!(redact(r#"unterminated "abc"#), r#"unterminated "…"#);
    }
}
