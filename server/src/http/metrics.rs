//! `GET /metrics`: Prometheus text exposition (format 0.0.4) — tile cache hits and misses,
//! 304s, renders, invalidations and latency histograms; open reports held for the duplicate search;
//! intake statements and the reports they stored (group commit), resends answered from memory,
//! assignments left to PostGIS.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::routes::plain_routes;

pub fn router() -> OpenApiRouter<AppState> {
    plain_routes!(OpenApiRouter::new(), "/metrics" => get(get_metrics))
}

async fn get_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.tiles.prometheus();
    if let Some(open) = state.reports.open.loaded_count() {
        text.push_str("# HELP gridmap_open_reports Open reports held in memory for the duplicate search.\n");
        text.push_str("# TYPE gridmap_open_reports gauge\n");
        let _ = writeln!(text, "gridmap_open_reports {open}");
    }
    let (statements, reports) = state.reports.commit.counts();
    text.push_str("# HELP gridmap_intake_statements_total Statements that stored reports without photos (one per batch that arrived together).\n");
    text.push_str("# TYPE gridmap_intake_statements_total counter\n");
    let _ = writeln!(text, "gridmap_intake_statements_total {statements}");
    text.push_str(
        "# HELP gridmap_intake_reports_total Reports written by those statements (resends of a stored key included).\n",
    );
    text.push_str("# TYPE gridmap_intake_reports_total counter\n");
    let _ = writeln!(text, "gridmap_intake_reports_total {reports}");
    text.push_str("# HELP gridmap_intake_tables_analyzed_total Times this instance analyzed the report tables because PostgreSQL's statistics lagged behind its writes (reports/commit.rs).\n");
    text.push_str("# TYPE gridmap_intake_tables_analyzed_total counter\n");
    let _ = writeln!(text, "gridmap_intake_tables_analyzed_total {}", state.reports.commit.analyzed());
    text.push_str("# HELP gridmap_feed_reads_total Reads of the report history by this instance's live feed, at most one per 20 ms however many reports it wrote (reports/feed.rs).\n");
    text.push_str("# TYPE gridmap_feed_reads_total counter\n");
    let _ = writeln!(text, "gridmap_feed_reads_total {}", state.reports.feed.reads());
    text.push_str("# HELP gridmap_intake_resends_from_memory_total Resends of a recently stored key answered without the database.\n");
    text.push_str("# TYPE gridmap_intake_resends_from_memory_total counter\n");
    let _ = writeln!(text, "gridmap_intake_resends_from_memory_total {}", state.reports.resends.hits());
    text.push_str("# HELP gridmap_assignments_in_sql_total Points in no grid whose assignment was left to PostGIS (near 150 m, the county margin or a tie).\n");
    text.push_str("# TYPE gridmap_assignments_in_sql_total counter\n");
    let _ = writeln!(text, "gridmap_assignments_in_sql_total {}", state.reports.assignments_in_sql());
    text.push_str("# HELP gridmap_grid_index_loaded Whether intake's grid index is built (1; built in the background at start-up) or not yet (0).\n");
    text.push_str("# TYPE gridmap_grid_index_loaded gauge\n");
    let _ = writeln!(text, "gridmap_grid_index_loaded {}", u8::from(state.reports.index.is_loaded()));
    text.push_str("# HELP gridmap_instances gridmap instances connected to this database, this one included; each grants 1/N of every rate limit.\n");
    text.push_str("# TYPE gridmap_instances gauge\n");
    let _ = writeln!(text, "gridmap_instances {}", state.limits.instances());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
