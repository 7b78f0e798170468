//! Request hygiene that holds for every route, in one layer: a text input never carries a NUL
//! character, and a body that is not a photo upload is at most `JSON_BODY_LIMIT`.
//!
//! PostgreSQL refuses `\0` in text (error 22021), so a NUL that reached a query was a 500 —
//! after a batch had stored its valid items. Checking here, before any handler runs, covers
//! query strings (typed and raw), paths, JSON bodies (report intake, transitions, login, OGC
//! writes, admin) and form bodies (Open311) alike, and names the field. A report batch is the
//! one exception: it answers per item, so its items are checked by `reports::intake::validate`
//! (as are the single and multipart intake bodies, again).

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use crate::nul::nul_path;

use super::JSON_BODY_LIMIT;
use super::error::ApiError;

/// The batch route: its items are refused one by one, not as a whole.
const PER_ITEM_ROUTE: &str = "/api/reports/batch";

fn nul_error(field: impl Into<String>) -> ApiError {
    ApiError::field(field, "must not contain a NUL character (\\u0000)")
}

/// The first `key=value` pair of a form or query string with a NUL in its key or value.
fn nul_pair(encoded: &[u8]) -> Option<String> {
    form_urlencoded::parse(encoded)
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| if k.is_empty() || k.contains('\0') { "query".to_string() } else { k.into_owned() })
}

/// Middleware on the whole router (see the module header).
pub async fn check_inputs(request: Request, next: Next) -> Result<Response, ApiError> {
    let uri = request.uri();
    if uri.path().to_ascii_lowercase().contains("%00") {
        return Err(nul_error("path"));
    }
    if let Some(query) = uri.query()
        && let Some(field) = nul_pair(query.as_bytes())
    {
        return Err(nul_error(field));
    }
    let content_type =
        request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    // Photos come as multipart (their own, larger limit; the `report` part goes through
    // intake::validate); a request without a body has nothing to read.
    if content_type.starts_with("multipart/") || request.method() == axum::http::Method::GET {
        return Ok(next.run(request).await);
    }
    let per_item = request.uri().path() == PER_ITEM_ROUTE;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, JSON_BODY_LIMIT)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(format!("request body too large (at most {JSON_BODY_LIMIT} bytes)")))?;
    if content_type.contains("json") {
        // Only an escaped `\u0000` can put a NUL into a JSON string (a raw one is invalid JSON);
        // the parse is paid only when the escape is there.
        if !per_item
            && memchr_escape(&bytes)
            && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
            && let Some(field) = nul_path(&value)
        {
            return Err(nul_error(field));
        }
    } else if let Some(field) = nul_pair(&bytes) {
        return Err(nul_error(if field == "query" { "body".to_string() } else { field }));
    }
    Ok(next.run(Request::from_parts(parts, Body::from(bytes))).await)
}

fn memchr_escape(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w == b"\\u0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_a_query_or_form_pair_is_found_by_its_key() {
        assert_eq!(nul_pair(b"a=1&category=x%00").as_deref(), Some("category"));
        assert_eq!(nul_pair(b"a=1&b=2"), None);
    }
}
