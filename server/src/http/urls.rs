//! Absolute URLs in responses — tile URLs in TileJSON and the style, OGC API links, Open311
//! discovery — come from one function, [`PublicUrls::base`], so no handler reflects a header of
//! its own choosing.
//!
//! A response that carries the request's `Host` or `X-Forwarded-Host` can be cached by a proxy
//! or CDN and served to everyone (cache poisoning: every map then loads tiles from the
//! attacker's host). So: when `GRIDMAP_PUBLIC_URL` is set, it is the only base; otherwise
//! `X-Forwarded-Proto`/`X-Forwarded-Host` count only when the TCP peer is a trusted proxy
//! (`GRIDMAP_TRUSTED_PROXIES`, the same rule as the client address in `http::limits`), and any
//! other request gets `http://{Host}` — the name the client itself addressed — provided it is a
//! plain host name or address with an optional port; anything else gives relative URLs.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::AppState;

/// The URLs this deployment is reached at (from `gridmap serve`'s flags).
#[derive(Debug, Clone, Default)]
pub struct PublicUrls {
    /// `GRIDMAP_PUBLIC_URL` without a trailing slash, e.g. `https://grid.yiyuan.gov.cn`.
    pub public_url: Option<String>,
    /// `GRIDMAP_BASEMAP_URL`: a raster XYZ template drawn under the data in the style.
    pub basemap_url: Option<String>,
}

impl PublicUrls {
    pub fn new(public_url: Option<&str>, basemap_url: Option<&str>) -> Self {
        let public_url = public_url.map(|u| u.trim().trim_end_matches('/').to_string()).filter(|u| !u.is_empty());
        Self { public_url, basemap_url: basemap_url.map(str::to_string).filter(|u| !u.is_empty()) }
    }

    /// `scheme://host[:port]` (or a configured path prefix) with no trailing slash, or `""`
    /// (relative URLs) when the request names no usable host. See the module header.
    pub fn base(&self, parts: &Parts, from_trusted_proxy: bool) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let (forwarded_host, forwarded_proto) = if from_trusted_proxy {
            // A proxy appends to a client's list: the right-most entry is the proxy's own.
            let last = |name| header(&parts.headers, name).and_then(|v| v.rsplit(',').next()).map(str::trim);
            (last("x-forwarded-host"), last("x-forwarded-proto"))
        } else {
            (None, None)
        };
        // HTTP/2 carries the host as the `:authority` pseudo-header, which lands in the URI.
        let host = forwarded_host
            .or_else(|| header(&parts.headers, header::HOST.as_str()))
            .or_else(|| parts.uri.authority().map(axum::http::uri::Authority::as_str))
            .filter(|h| is_plain_host(h));
        let proto = match forwarded_proto {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        host.map_or_else(String::new, |h| format!("{proto}://{h}"))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// A host name, IPv4 address or bracketed IPv6 address, with an optional port: no user info,
/// path, query or spaces that would turn a URL built from it into another one.
fn is_plain_host(host: &str) -> bool {
    host.len() <= 255
        && !host.starts_with(['.', '-', ':'])
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// The base URL of absolute links in a response, for handlers: `BaseUrl(base)`.
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(state.urls.base(parts, state.limits.from_trusted_proxy(&parts.extensions))))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().uri("/tiles/style.json");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy_and_the_public_url_wins() {
        let forwarded =
            parts(&[("host", "10.0.0.5:8080"), ("x-forwarded-host", "evil.example"), ("x-forwarded-proto", "https")]);
        let urls = PublicUrls::default();
        assert_eq!(
            urls.base(&forwarded, false),
            "http://10.0.0.5:8080",
            "an untrusted peer's X-Forwarded-* is ignored"
        );
        assert_eq!(urls.base(&forwarded, true), "https://evil.example", "a trusted proxy's is believed");
        let configured = PublicUrls::new(Some("https://grid.example.cn/"), None);
        assert_eq!(configured.base(&forwarded, true), "https://grid.example.cn");
        assert_eq!(configured.base(&parts(&[]), false), "https://grid.example.cn");
    }

    #[test]
    fn a_host_that_is_not_a_plain_host_gives_relative_urls() {
        let urls = PublicUrls::default();
        assert_eq!(urls.base(&parts(&[("host", "maps.example.org:8080")]), false), "http://maps.example.org:8080");
        assert_eq!(urls.base(&parts(&[("host", "[::1]:8080")]), false), "http://[::1]:8080");
        for bad in ["evil.example/x?", "a@evil.example", "evil.example#", "a b", "-x"] {
            assert_eq!(urls.base(&parts(&[("host", bad)]), false), "", "{bad}");
        }
        assert_eq!(urls.base(&parts(&[]), false), "", "no host at all");
    }
}
