//! The `Allow` header of a 405 (RFC 9110 requires it): which methods each path
//! takes, read once from the OpenAPI spec plus the plain routes.

// What only doorman's own server builds (its pages, its `Allow` table) is unused
// in a library build without the `server` feature.
#![cfg_attr(not(feature = "server"), allow(dead_code))]

use std::collections::BTreeSet;

/// Path templates and the methods they take.
pub struct AllowedMethods {
    routes: Vec<(Vec<String>, String)>,
}

impl AllowedMethods {
    /// From the spec's `paths`, plus `extra` plain routes (path, methods).
    pub fn from_spec(spec: &str, extra: &[(&str, &str)]) -> Self {
        let mut routes = Vec::new();
        if let Ok(spec) = serde_json::from_str::<serde_json::Value>(spec)
            && let Some(paths) = spec["paths"].as_object()
        {
            for (path, item) in paths {
                let methods: BTreeSet<String> = item
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                let mut list: Vec<String> = methods.into_iter().collect();
                if list.iter().any(|m| m == "GET") {
                    list.push("HEAD".into());
                }
                routes.push((segments(path), list.join(", ")));
            }
        }
        for (path, methods) in extra {
            routes.push((segments(path), (*methods).to_owned()));
        }
        Self { routes }
    }

    /// The `Allow` value for a request path, if it is a known route.
    pub fn for_path(&self, path: &str) -> Option<&str> {
        let actual = segments(path);
        self.routes
            .iter()
            .find(|(template, _)| {
                template.len() == actual.len()
                    && template
                        .iter()
                        .zip(&actual)
                        .all(|(t, a)| t == a || (t.starts_with('{') && t.ends_with('}')))
            })
            .map(|(_, methods)| methods.as_str())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_any_segment_value() {
        let spec = r#"{"paths": {"/api/sessions/{id}": {"delete": {}}, "/api/sessions": {"get": {}, "delete": {}}}}"#;
        let allowed = AllowedMethods::from_spec(spec, &[("/ws", "GET")]);
        assert_eq!(allowed.for_path("/api/sessions/abc"), Some("DELETE"));
        assert_eq!(allowed.for_path("/api/sessions"), Some("DELETE, GET, HEAD"));
        assert_eq!(allowed.for_path("/ws"), Some("GET"));
        assert_eq!(allowed.for_path("/nope"), None);
    }
}
