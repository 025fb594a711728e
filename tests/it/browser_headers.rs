//! The browser hardening headers on the demo page and Swagger UI (issue 10,
//! finding 11): a strict CSP whose hashes follow the HTML actually served.

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::helpers::spawn_app;

/// The text of every inline `<tag>` block (no `src`), found the way the HTML parser
/// reads raw-text elements: a `<script>` or `<style>` runs to the first `</script`
/// or `</style`, whatever it contains (Swagger UI's bundle has `<style>` strings).
fn inline_blocks(html: &str, tag: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut blocks = Vec::new();
    let mut rest = 0;
    loop {
        let next = ["<script", "<style"]
            .iter()
            .filter_map(|open| {
                let mut from = rest;
                while let Some(i) = lower[from..].find(open) {
                    let after = lower.as_bytes()[from + i + open.len()];
                    if after == b'>' || after.is_ascii_whitespace() {
                        return Some((from + i, &open[1..]));
                    }
                    from += i + 1;
                }
                None
            })
            .min();
        let Some((start, name)) = next else {
            return blocks;
        };
        let body = start + lower[start..].find('>').unwrap() + 1;
        let end = body + lower[body..].find(&format!("</{name}")).unwrap();
        if name == tag && !lower[start..body].contains(" src=") {
            blocks.push(html[body..end].replace("\r\n", "\n"));
        }
        rest = end;
    }
}

fn directive<'a>(csp: &'a str, name: &str) -> Vec<&'a str> {
    let found: Vec<_> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| d.split_whitespace().next() == Some(name))
        .collect();
    assert_eq!(found.len(), 1, "{name} once in {csp}");
    found[0].split_whitespace().skip(1).collect()
}

#[tokio::test]
async fn pages_carry_a_strict_csp_hashing_their_served_inline_blocks() {
    let app = spawn_app().await;
    for (path, min_scripts) in [("/", 1), ("/docs", 2), ("/docs/", 2)] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .unwrap_or_else(|| panic!("{path}: no {name}"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        let csp = header("content-security-policy");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(directive(&csp, "frame-ancestors"), ["'none'"], "{path}");
        assert_eq!(directive(&csp, "default-src"), ["'none'"], "{path}");
        assert_eq!(directive(&csp, "base-uri"), ["'none'"], "{path}");
        assert_eq!(directive(&csp, "connect-src"), ["'self'"], "{path}");
        assert!(!csp.contains("unsafe-"), "{path}: {csp}");

        let html = resp.text().await.unwrap();
        for (tag, directive_name) in [("script", "script-src"), ("style", "style-src")] {
            let blocks = inline_blocks(&html, tag);
            if tag == "script" {
                assert!(
                    blocks.len() >= min_scripts,
                    "{path}: {} scripts",
                    blocks.len()
                );
            }
            let mut expected: Vec<String> = blocks
                .iter()
                .map(|b| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(b))))
                .collect();
            let mut allowed: Vec<String> = directive(&csp, directive_name)
                .into_iter()
                .map(str::to_owned)
                .collect();
            // Exactly the served blocks: each one's hash, nothing else.
            expected.sort();
            allowed.sort();
            assert_eq!(allowed, expected, "{path}: {directive_name}");
        }
    }
}

#[tokio::test]
async fn every_response_is_nosniff_and_api_responses_carry_no_page_policy() {
    let app = spawn_app().await;
    for path in ["/healthz", "/openapi.json", "/api/me", "/no/such/route"] {
        let resp = app.get(path).await;
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.get("content-security-policy").is_none(), "{path}");
    }
}
