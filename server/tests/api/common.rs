//! Shared helpers: send a request through the router, read JSON back, find the shared data.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gridmap_server::http::{AppState, app};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

pub struct Reply {
    pub status: StatusCode,
    #[allow(dead_code)]
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub async fn send(pool: &PgPool, request: Request<Body>) -> Reply {
    send_to(&AppState::new(pool.clone()), request).await
}

/// Send through a given state: requests that must share the token cache (as they do in one
/// running server) use one state.
pub async fn send_to(state: &AppState, request: Request<Body>) -> Reply {
    let response = app(state.clone()).oneshot(request).await.expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body collects").to_bytes().to_vec();
    Reply { status, headers, body }
}

pub async fn get(pool: &PgPool, uri: &str) -> Reply {
    send(pool, Request::get(uri).body(Body::empty()).expect("valid request")).await
}

#[allow(dead_code)]
pub async fn send_json(pool: &PgPool, method: &str, uri: &str, body: &serde_json::Value) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("valid request");
    send(pool, request).await
}

/// `../shared/data` next to the project, when this machine has it (CI does; a user's clone may not).
pub fn shared_data(relative: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data").join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {} is not on this machine (it ships with CI, not with a clone)", path.display());
        None
    }
}

pub async fn count(pool: &PgPool, table: &str) -> i64 {
    // Table names here come from the tests themselves, never from input.
    sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(pool).await.expect("count query")
}
