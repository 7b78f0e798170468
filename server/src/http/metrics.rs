//! `GET /metrics`: Prometheus text exposition (format 0.0.4) — tile cache hits and misses,
//! 304s, renders, invalidations and latency histograms; open reports held for the duplicate search.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(get_metrics))
}

async fn get_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.tiles.prometheus();
    if let Some(open) = state.reports.open.loaded_count() {
        text.push_str("# HELP gridmap_open_reports Open reports held in memory for the duplicate search.\n");
        text.push_str("# TYPE gridmap_open_reports gauge\n");
        let _ = writeln!(text, "gridmap_open_reports {open}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
