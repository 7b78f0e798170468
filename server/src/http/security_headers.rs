//! Security headers on every response, in one layer (the outermost, so errors, 404s, 429s and
//! the static files get them too): a Content-Security-Policy, `X-Content-Type-Options: nosniff`
//! and `Referrer-Policy: no-referrer`.
//!
//! The policy allows what the web map loads and nothing else: everything from this origin, the
//! one inline script of `index.html` (the import map) by its SHA-256 hash, computed at start from
//! the file that is served — so an edited page cannot drift from its policy —, `data:`/`blob:`
//! images (MapLibre decodes sprites and raster tiles into blobs), and the basemap's origin when
//! `GRIDMAP_BASEMAP_URL` points elsewhere. MapLibre 5 starts its worker from a same-origin file
//! (`maplibre-gl-worker.mjs`), so no `blob:` worker is allowed. Nothing may frame the page
//! (`frame-ancestors 'none'`: clickjacking), no `<base>` may redirect relative URLs, no plugins.
//!
//! The same policy goes on every response, not only HTML: a worker's (the service worker's,
//! MapLibre's) policy is the one on its own script's response, and a JSON reply opened as a
//! page runs nothing under it either.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The headers, built once at start.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    policy: HeaderValue,
    /// Swagger UI (`/api/docs`, vendored by utoipa-swagger-ui) adds a `<style>` element while
    /// it runs, which no hash can name in advance: its pages alone also allow inline styles
    /// (styles run no code; scripts stay as strict as everywhere else).
    docs_policy: HeaderValue,
}

const DOCS_PREFIX: &str = "/api/docs";

impl SecurityHeaders {
    /// From the page that is served (`web_dir/index.html`, absent in API-only tests) and the
    /// basemap template, if any.
    pub fn new(index_html: Option<&str>, basemap_url: Option<&str>) -> Self {
        let hashes = index_html.map(inline_script_hashes).unwrap_or_default();
        let basemap = basemap_url.and_then(origin);
        // Every part is ASCII (base64 hashes, an origin parsed from a URL).
        let header =
            |p: String| HeaderValue::from_str(&p).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
        let policy = header(content_security_policy(hashes.clone(), basemap.clone(), "'self'"));
        let docs_policy = header(content_security_policy(hashes, basemap, "'self' 'unsafe-inline'"));
        Self { policy, docs_policy }
    }

    pub fn policy(&self) -> &str {
        self.policy.to_str().unwrap_or_default()
    }
}

fn content_security_policy(script_hashes: Vec<String>, basemap_origin: Option<String>, style_src: &str) -> String {
    let mut script_src = vec!["'self'".to_string()];
    script_src.extend(script_hashes.into_iter().map(|h| format!("'sha256-{h}'")));
    let extra = basemap_origin.map(|o| format!(" {o}")).unwrap_or_default();
    [
        "default-src 'self'".to_string(),
        format!("script-src {}", script_src.join(" ")),
        format!("style-src {style_src}"),
        format!("img-src 'self' data: blob:{extra}"),
        format!("connect-src 'self'{extra}"),
        "worker-src 'self'".to_string(),
        "object-src 'none'".to_string(),
        "base-uri 'none'".to_string(),
        "form-action 'self'".to_string(),
        "frame-ancestors 'none'".to_string(),
    ]
    .join("; ")
}

/// Base64 SHA-256 of each inline `<script>` (one without `src`) in the page, over the exact
/// text between its tags — what the browser hashes.
fn inline_script_hashes(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut hashes = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<script").map(|i| i + at) {
        let Some(tag_end) = lower[start..].find('>').map(|i| i + start) else { break };
        let Some(close) = lower[tag_end..].find("</script").map(|i| i + tag_end) else { break };
        let tag = &lower[start..tag_end];
        if !tag.split_ascii_whitespace().any(|attr| attr.starts_with("src=")) {
            let body = &html[tag_end + 1..close];
            hashes.push(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes())));
        }
        at = close;
    }
    hashes
}

/// `scheme://host[:port]` of an absolute http(s) URL template, or `None` (a relative or
/// same-origin basemap needs nothing added).
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    // `{s}` sub-domain templates become a wildcard, which CSP accepts for the left-most label.
    let host = host.replace("{s}", "*");
    let ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:*[]".contains(c));
    ok.then(|| format!("{}://{host}", scheme.to_ascii_lowercase()))
}

/// The middleware: adds the headers unless the response already chose its own.
pub async fn add(State(headers): State<Arc<SecurityHeaders>>, request: Request, next: Next) -> Response {
    let policy = if request.uri().path().starts_with(DOCS_PREFIX) { &headers.docs_policy } else { &headers.policy };
    let policy = policy.clone();
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: HeaderValue| {
        h.entry(name).or_insert(value);
    };
    set(h, header::CONTENT_SECURITY_POLICY, policy);
    set(h, header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    set(h, header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_the_inline_script_and_not_the_external_ones() {
        let html = "<script src=\"/hooks.js\"></script>\n<SCRIPT type=\"importmap\">{\"imports\":{}}</SCRIPT>\n<script type=\"module\" src=\"/app.js\"></script>";
        let hashes = inline_script_hashes(html);
        // printf '{"imports":{}}' | openssl dgst -sha256 -binary | base64
        assert_eq!(hashes, vec!["URrTy+Il/Nz0lHojVUx275hWqAWhkSF0VsHbUM4/6Hw=".to_string()]);
    }

    #[test]
    fn basemap_origins_are_scheme_and_host_only() {
        assert_eq!(origin("https://tiles.example.cn/{z}/{x}/{y}.png").as_deref(), Some("https://tiles.example.cn"));
        assert_eq!(
            origin("http://{s}.tile.example.org:8080/{z}/{x}/{y}.png").as_deref(),
            Some("http://*.tile.example.org:8080")
        );
        assert_eq!(origin("/basemap/{z}/{x}/{y}.png"), None);
        assert_eq!(origin("javascript://x"), None);
        assert_eq!(origin("https://evil.example; script-src *"), None);
    }

    #[test]
    fn the_policy_forbids_framing_plugins_and_base_and_allows_the_basemap() {
        let p = SecurityHeaders::new(Some("<script>x</script>"), Some("https://t.example/{z}/{x}/{y}.png"));
        let p = p.policy();
        for part in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "connect-src 'self' https://t.example",
            "img-src 'self' data: blob: https://t.example",
        ] {
            assert!(p.contains(part), "{part} missing from {p}");
        }
        assert!(!p.contains("unsafe-inline") && !p.contains("unsafe-eval"), "{p}");
        let docs = SecurityHeaders::new(None, None);
        let docs = docs.docs_policy.to_str().unwrap_or_default();
        assert!(docs.contains("style-src 'self' 'unsafe-inline'") && docs.contains("script-src 'self'"), "{docs}");
        assert!(!docs.contains("unsafe-eval"), "{docs}");
    }
}
