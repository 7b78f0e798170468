//! Entity tags and the conditional request headers (RFC 9110 §8.8.3, §13.1.1, §13.1.2), for
//! every resource that has one: reports and OGC features (their version number, sent back in
//! `If-Match` to change them) and tiles (a digest of their content, revalidated with
//! `If-None-Match`).
//!
//! - `If-Match` uses the **strong** comparison: a weak tag (`W/"3"`) never matches. Writes here
//!   check the version in the same statement as the write, so `If-Match` must name one version:
//!   `*` and a tag that is not a version match nothing (412), as does a list naming several.
//! - `If-None-Match` uses the **weak** comparison (`W/` is ignored); `*` matches any current
//!   representation.
//!
//! A member without quotes (`If-Match: 3`) is read as if it had them: older clients sent that,
//! and it names the same version.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// A version no resource ever has: what a precondition that names no version compares as.
pub const NO_VERSION: i64 = -1;

/// `"value"`: the strong entity tag of `value` (a version or a digest).
pub fn strong(value: impl std::fmt::Display) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{value}\"")).expect("a number or a hex digest in quotes is a valid header value")
}

/// A JSON answer with its strong ETag (`tag`: the version a client sends back in `If-Match`,
/// or a digest).
pub fn tagged(status: StatusCode, tag: impl std::fmt::Display, body: impl serde::Serialize) -> Response {
    (status, [(header::ETAG, strong(tag))], axum::Json(body)).into_response()
}

/// [`tagged`] for a resource just made: 201 with its `Location` (a path or an absolute URL).
pub fn created(location: &str, tag: impl std::fmt::Display, body: impl serde::Serialize) -> Response {
    let mut response = tagged(StatusCode::CREATED, tag, body);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// One member of an entity-tag list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag<'a> {
    /// `*`.
    Any,
    /// `"opaque"` (strong) or `W/"opaque"` (weak); `opaque` without the quotes.
    Tag { weak: bool, opaque: &'a str },
}

/// Every member of every `name` header line, in order. A line that is not visible ASCII is a 400.
fn tags<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Vec<Tag<'h>>, ApiError> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let text = value.to_str().map_err(|_| ApiError::bad_request(format!("malformed {name}")))?;
        for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            out.push(if member == "*" {
                Tag::Any
            } else {
                let (weak, quoted) = member.strip_prefix("W/").map_or((false, member), |rest| (true, rest));
                let opaque = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(quoted);
                Tag::Tag { weak, opaque }
            });
        }
    }
    Ok(out)
}

/// `If-Match` (§13.1.1) on a resource whose ETag is its version: `None` without the header,
/// else the one version it names by a strong tag, or [`NO_VERSION`] when it names none (a weak
/// tag, `*`, a tag that is not a number, or several tags).
pub fn if_match_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    if !headers.contains_key(header::IF_MATCH) {
        return Ok(None);
    }
    let version = match tags(headers, &header::IF_MATCH)?.as_slice() {
        [Tag::Tag { weak: false, opaque }] => opaque.parse().unwrap_or(NO_VERSION),
        _ => NO_VERSION,
    };
    Ok(Some(version))
}

/// [`if_match_version`] for a write that cannot go without it: missing → 428 (`missing` says
/// what to send), a tag naming no version → 412.
pub fn required_version(headers: &HeaderMap, missing: &str) -> Result<i64, ApiError> {
    match if_match_version(headers)? {
        None => Err(ApiError::PreconditionRequired(missing.to_string())),
        Some(NO_VERSION) => {
            let sent = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).unwrap_or_default();
            Err(ApiError::PreconditionFailed(format!("If-Match {sent} does not match the current ETag")))
        }
        Some(version) => Ok(version),
    }
}

/// `If-None-Match` (§13.1.2): whether the client's copy is current, i.e. a listed tag names the
/// current representation by the weak comparison (`names_current` is given the opaque part;
/// weak and strong tags alike) or the list is `*`. A malformed header is treated as absent:
/// the client then simply gets the full answer.
pub fn none_match(headers: &HeaderMap, names_current: impl Fn(&str) -> bool) -> bool {
    tags(headers, &header::IF_NONE_MATCH).unwrap_or_default().into_iter().any(|tag| match tag {
        Tag::Any => true,
        Tag::Tag { opaque, .. } => names_current(opaque),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &HeaderName, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, HeaderValue::from_str(v).expect("test header"));
        }
        h
    }

    #[test]
    fn if_match_compares_strongly_so_a_weak_tag_names_no_version() {
        let version = |values: &[&str]| if_match_version(&headers(&header::IF_MATCH, values)).expect("well formed");
        assert_eq!(version(&[]), None, "no header: the caller decides (428)");
        assert_eq!(version(&["\"3\""]), Some(3));
        assert_eq!(version(&[" \"3\" "]), Some(3));
        assert_eq!(version(&["3"]), Some(3), "a bare version is read as quoted");
        assert_eq!(version(&["W/\"3\""]), Some(NO_VERSION), "RFC 9110 §13.1.1: strong comparison");
        assert_eq!(version(&["*"]), Some(NO_VERSION), "a write must name the version it read");
        assert_eq!(version(&["\"abc\""]), Some(NO_VERSION));
        assert_eq!(version(&["\"3\", \"4\""]), Some(NO_VERSION), "several versions: none of them checked alone");
        assert_eq!(version(&["\"3\"", "\"4\""]), Some(NO_VERSION), "several lines are one list");
        assert_eq!(version(&[""]), Some(NO_VERSION));
    }

    #[test]
    fn if_match_that_is_not_ascii_is_a_bad_request() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_bytes(b"\"\xff\"").expect("obs-text is a valid header value"));
        assert!(matches!(if_match_version(&h), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn if_none_match_compares_weakly_and_star_matches_anything() {
        let current = |values: &[&str]| none_match(&headers(&header::IF_NONE_MATCH, values), |tag| tag == "abc");
        assert!(!current(&[]));
        assert!(current(&["\"abc\""]));
        assert!(current(&["W/\"abc\""]), "RFC 9110 §13.1.2: weak comparison");
        assert!(current(&["\"x\", W/\"abc\""]));
        assert!(current(&["\"x\"", "\"abc\""]), "several lines are one list");
        assert!(current(&["*"]));
        assert!(!current(&["\"x\""]));
        assert!(!current(&["\"ab\""]));
    }

    #[test]
    fn a_tagged_answer_carries_its_etag_and_a_created_one_its_location() {
        let ok = tagged(StatusCode::OK, 3, serde_json::json!({"id": 1}));
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::ETAG], "\"3\"");
        assert_eq!(ok.headers()[header::CONTENT_TYPE], "application/json");
        let made = created("/api/wishes/1", 1, serde_json::json!({"id": 1}));
        assert_eq!(made.status(), StatusCode::CREATED);
        assert_eq!(made.headers()[header::LOCATION], "/api/wishes/1");
        assert_eq!(made.headers()[header::ETAG], "\"1\"");
    }

    #[test]
    fn strong_tags_are_quoted() {
        assert_eq!(strong(7), "\"7\"");
        assert_eq!(strong("d1g357"), "\"d1g357\"");
    }
}
