//! `/healthz` (the process is up) and `/readyz` (the database answers, the schema is current and
//! the instance is not draining), and the drain itself: after SIGTERM `/readyz` answers 503 at
//! once so the load balancer stops sending new work, every other request is still served for
//! `GRIDMAP_DRAIN_SECONDS` (what the balancer already sent or queued), with `Connection: close`
//! so that no kept-alive connection outlives the drain; then the server stops accepting,
//! ends the live-feed streams, lets in-flight requests finish and exits 0.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::routes::plain_routes;
use crate::db;

pub fn router() -> OpenApiRouter<AppState> {
    plain_routes!(OpenApiRouter::new(), "/healthz" => get(healthz), "/readyz" => get(readyz))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// How long readiness waits for the database: a load balancer polling `/readyz` must get a
/// quick "no" while PostgreSQL is away, not wait out the pool's acquire timeout.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the process is in its life: serving, draining (SIGTERM received), stopping.
#[derive(Debug)]
pub struct Lifecycle {
    draining: AtomicBool,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self { draining: AtomicBool::new(false), stopping: tokio::sync::watch::Sender::new(false) }
    }
}

impl Lifecycle {
    /// SIGTERM: `/readyz` answers 503 from now on; requests are still served.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The drain is over: long-lived responses (the live feed) end so shutdown can finish.
    pub fn stop(&self) {
        self.start_draining();
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Lifecycle::stop`] has been called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut stopping = self.stopping.subscribe();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    }
}

/// While draining, every response asks the client (the load balancer) to close the connection,
/// so it opens its next one to another instance instead of reusing this one.
pub async fn close_while_draining(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if state.lifecycle.is_draining() {
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.lifecycle.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "draining" })));
    }
    let checked = tokio::time::timeout(READY_TIMEOUT, db::migrations_applied(&state.pool))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
    match checked {
        Ok(true) => (StatusCode::OK, Json(json!({ "status": "ready", "database": "ok", "migrations": "applied" }))),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "database": "ok", "migrations": "pending" })),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "database": "unreachable", "migrations": "unknown" })),
            )
        }
    }
}
