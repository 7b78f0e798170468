//! The web map's files (web-map/dist): precompressed copies, and how long a browser may keep each.
//!
//! Our own files keep their names across releases, so a browser asks each time whether its copy
//! is current (`no-cache`: a 304 without a body when it is) and a new release never runs beside
//! half an old one. The vendor files (MapLibre, Terra Draw) are asked for with their npm version
//! in the URL (`?v=6.17.0`, written by web-map/build.mjs, which also writes
//! `vendor/versions.json`): a URL whose version is the one served names bytes that never change,
//! so it is `immutable` for a year. That is what lets MapLibre's worker, which the page preloads
//! but a worker cannot take from the page's preload cache, come from the HTTP cache without a
//! round trip: 150 ms on a phone network (bench/web.sh). Offline and repeat visits are the
//! service worker's (sw.js), which does not depend on these headers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::services::ServeDir;

const REVALIDATE: &str = "no-cache";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The web map's directory as a service: brotli or gzip copies when the client takes them
/// (build.mjs writes both: MapLibre's main file is 1.1 MB of JS, 242 KB in brotli, 296 KB
/// gzipped), as-is otherwise; unknown paths go to `not_found`.
pub fn serve_dir<S>(dir: &Path, not_found: S) -> ServeDir<tower_http::set_status::SetStatus<S>> {
    ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .precompressed_br()
        .precompressed_gzip()
        .not_found_service(not_found)
}

/// The vendor packages' versions as build.mjs wrote them (`{"maplibre-gl": "6.17.0", …}`);
/// empty when the file is absent (API-only tests), which makes every file `no-cache`.
#[derive(Debug, Default, Clone)]
pub struct VendorVersions(Arc<HashMap<String, String>>);

impl VendorVersions {
    pub fn read(web_dir: &Path) -> VendorVersions {
        let path = web_dir.join("vendor/versions.json");
        let versions = std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        VendorVersions(Arc::new(versions.unwrap_or_default()))
    }

    /// `Cache-Control` for a file at `path?query`.
    fn cache_control(&self, path: &str, query: Option<&str>) -> &'static str {
        let Some(package) = path.strip_prefix("/vendor/").and_then(|rest| rest.split_once('/')).map(|(p, _)| p) else {
            return REVALIDATE;
        };
        let asked = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("v="));
        match (asked, self.0.get(package)) {
            (Some(asked), Some(served)) if asked == served => IMMUTABLE,
            _ => REVALIDATE,
        }
    }
}

/// Middleware around the files: set `Cache-Control` unless the response has one.
pub async fn cache_control(State(versions): State<VendorVersions>, request: Request, next: Next) -> Response<Body> {
    let value = versions.cache_control(request.uri().path(), request.uri().query());
    let mut response = next.run(request).await;
    if response.status().is_success() || response.status() == axum::http::StatusCode::NOT_MODIFIED {
        response.headers_mut().entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions() -> VendorVersions {
        VendorVersions(Arc::new(HashMap::from([("maplibre-gl".to_string(), "6.17.0".to_string())])))
    }

    #[test]
    fn only_a_vendor_file_asked_for_with_its_served_version_is_immutable() {
        let v = versions();
        assert_eq!(v.cache_control("/vendor/maplibre-gl/maplibre-gl-worker.mjs", Some("v=6.17.0")), IMMUTABLE);
        assert_eq!(v.cache_control("/vendor/maplibre-gl/maplibre-gl.mjs", Some("a=1&v=6.17.0")), IMMUTABLE);
        // Another version (a page from before an upgrade), none, or our own files: ask each time.
        assert_eq!(v.cache_control("/vendor/maplibre-gl/maplibre-gl.mjs", Some("v=6.16.0")), REVALIDATE);
        assert_eq!(v.cache_control("/vendor/maplibre-gl/maplibre-gl.mjs", None), REVALIDATE);
        assert_eq!(v.cache_control("/vendor/terra-draw/terra-draw.modern.js", Some("v=6.17.0")), REVALIDATE);
        assert_eq!(v.cache_control("/app.js", Some("v=6.17.0")), REVALIDATE);
        assert_eq!(VendorVersions::default().cache_control("/vendor/maplibre-gl/x.mjs", Some("v=6.17.0")), REVALIDATE);
    }
}
