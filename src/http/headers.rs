//! Browser hardening headers for the two HTML pages doorman serves: the demo page
//! (`/`) and Swagger UI (`/docs`).
//!
//! Why: both pages run script in our origin, where the HttpOnly cookies ride along
//! on every request. A Content-Security-Policy that allows only the exact inline
//! blocks we ship (by sha256) means an injected `<script>`, an injected `<base>`,
//! a form posting elsewhere or a connection to another host does nothing, and
//! `frame-ancestors 'none'` (with `X-Frame-Options: DENY` for browsers without CSP
//! Level 2) stops other sites from framing the pages to click-jack "Log out" or
//! "Authorize".
//!
//! The hashes are computed once, at start-up, from the same bytes that are served:
//! `demo.html` as compiled in, and poem-openapi's `swagger_ui_html()`, which is what
//! its `swagger_ui()` endpoint serves (the spec is embedded in an inline script, so
//! its hash changes with every API change; hard-coding it would rot).
//!
//! `Referrer-Policy: same-origin`: no URL of ours leaks to other sites, while our own
//! requests keep their `Referer`. `no-referrer` would also make browsers send
//! `Origin: null` on same-origin unsafe requests that are not CORS-mode fetches (e.g.
//! a form post), which the cookie CSRF check must then refuse; `same-origin` leaks
//! nothing more and keeps that check meaningful.
//!
//! `X-Content-Type-Options: nosniff` goes on every response: no JSON body of ours
//! should ever be sniffed into HTML or script.

// What only doorman's own server builds (its pages, its `Allow` table) is unused
// in a library build without the `server` feature.
#![cfg_attr(not(feature = "server"), allow(dead_code))]

use base64::{Engine, engine::general_purpose::STANDARD};
use poem::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

/// The headers of the HTML pages, built once.
#[derive(Debug, Clone)]
pub struct PageHeaders {
    demo: HeaderValue,
    docs: HeaderValue,
}

impl PageHeaders {
    /// `demo_html` and `docs_html` must be the exact text served at `/` and `/docs`.
    pub fn new(demo_html: &str, docs_html: &str) -> Self {
        let value = |html| {
            HeaderValue::from_str(&content_security_policy(html))
                .expect("a policy of ASCII tokens and base64 is a valid header value")
        };
        Self {
            demo: value(demo_html),
            docs: value(docs_html),
        }
    }

    /// Adds the headers that belong on a response to `path`.
    #[cfg(test)]
    pub fn apply(&self, path: &str, headers: &mut HeaderMap) {
        Self::apply_policy(self.policy_for(path), headers);
    }

    /// The page policy for a request path, if it is one of the pages: taken before
    /// the request is handed on, applied to its response by [`Self::apply_policy`].
    pub fn policy_for(&self, path: &str) -> Option<&HeaderValue> {
        match path {
            "/" => Some(&self.demo),
            "/docs" | "/docs/" => Some(&self.docs),
            _ => None,
        }
    }

    /// Adds the headers of every response, and the page's when it is one.
    pub fn apply_policy(policy: Option<&HeaderValue>, headers: &mut HeaderMap) {
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        let Some(csp) = policy else { return };
        headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
}

/// The policy for a page: nothing by default; its own inline scripts and styles by
/// hash; same-origin `fetch` and WebSocket (`'self'` covers `ws:`/`wss:` to the same
/// host and port in CSP Level 3 browsers); images from us and `data:` (Swagger UI's
/// icons are `data:` URIs in its CSS); no `<base>`, no form submissions, no framing.
pub fn content_security_policy(html: &str) -> String {
    let sources = |tag| {
        let hashes: Vec<String> = inline_blocks(html, tag)
            .into_iter()
            .map(|block| format!("'sha256-{}'", sha256_base64(block)))
            .collect();
        if hashes.is_empty() {
            "'none'".to_owned()
        } else {
            hashes.join(" ")
        }
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sources("script"),
        sources("style"),
    )
}

/// The text of each inline `<tag>…</tag>` block (`script` or `style`), skipping
/// `<script src=…>`. It walks the page the way the HTML parser does for these
/// elements: comments are skipped, and a `<script>`'s or `<style>`'s text runs to
/// the first `</script` or `</style`, so `"<style>"` inside a script is text. Not a
/// full tokenizer (no `>` inside attribute values): it suits pages we write, and
/// the integration and Chromium tests check the result against what browsers do.
pub fn inline_blocks<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let lower = html.to_ascii_lowercase();
    let mut blocks = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find('<') {
        let start = at + i;
        let rest = &lower[start + 1..];
        if rest.starts_with("!--") {
            let Some(end) = rest.find("-->") else { break };
            at = start + 1 + end + 3;
            continue;
        }
        let Some(name) = ["script", "style"].into_iter().find(|name| {
            rest.starts_with(name)
                && rest[name.len()..].starts_with(|c: char| c == '>' || c.is_ascii_whitespace())
        }) else {
            at = start + 1;
            continue;
        };
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let body = start + 1 + open_end + 1;
        let close = format!("</{name}");
        let Some(len) = lower[body..].find(&close) else {
            break;
        };
        let external = name == "script" && lower[start..body].contains("src=");
        if name == tag && !external {
            blocks.push(&html[body..body + len]);
        }
        at = body + len + close.len();
    }
    blocks
}

/// Base64 sha256 of a block as the browser hashes it: after the HTML parser has
/// turned CR LF and lone CR into LF.
fn sha256_base64(block: &str) -> String {
    let digest = if block.contains('\r') {
        Sha256::digest(block.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Sha256::digest(block)
    };
    STANDARD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_each_inline_block_and_skips_external_scripts() {
        let html = "<html><head><STYLE media=x>a{}</STYLE><script src=\"/x.js\"></script>\
                    <scripts></scripts><!-- <script>no()</script> --><script>one(\"<style>\")</script></head>\
                    <body><script type=\"module\">\r\ntwo()</script></body></html>";
        assert_eq!(inline_blocks(html, "style"), ["a{}"]);
        assert_eq!(
            inline_blocks(html, "script"),
            ["one(\"<style>\")", "\r\ntwo()"]
        );
        let csp = content_security_policy(html);
        assert!(csp.contains(&format!(
            "'sha256-{}'",
            STANDARD.encode(Sha256::digest("one(\"<style>\")"))
        )));
        assert!(csp.contains(&format!(
            "'sha256-{}'",
            STANDARD.encode(Sha256::digest("\ntwo()"))
        )));
        assert!(csp.starts_with("default-src 'none'; "));
        assert!(csp.ends_with("frame-ancestors 'none'"));
    }

    #[test]
    fn a_page_without_blocks_allows_none() {
        let csp = content_security_policy("<p>plain</p>");
        assert!(csp.contains("script-src 'none'; style-src 'none';"));
    }

    #[test]
    fn only_the_pages_get_a_policy_and_everything_is_nosniff() {
        let pages = PageHeaders::new("<script>a</script>", "<script>b</script>");
        for (path, framed) in [
            ("/", true),
            ("/docs", true),
            ("/docs/", true),
            ("/api/me", false),
        ] {
            let mut h = HeaderMap::new();
            pages.apply(path, &mut h);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(
                h.contains_key(header::CONTENT_SECURITY_POLICY),
                framed,
                "{path}"
            );
            assert_eq!(h.contains_key(header::X_FRAME_OPTIONS), framed, "{path}");
        }
        let mut h = HeaderMap::new();
        pages.apply("/", &mut h);
        assert_ne!(
            h[header::CONTENT_SECURITY_POLICY],
            PageHeaders::new("<script>b</script>", "").demo
        );
    }
}
