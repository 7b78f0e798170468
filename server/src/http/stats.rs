//! `GET /api/stats`: the published grid-event metrics — closure rate (结案率), on-time closure
//! rate (按期结案率), rework rate (返工率), median time to close — for a grid or a subdistrict.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use crate::reports::workflow::{self, Stats};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/stats", get(get_stats))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    pub grid: Option<i64>,
    pub subdistrict: Option<i64>,
    /// A county's code (e.g. `370323`): reports of its subdistricts.
    pub county: Option<String>,
    /// Reports created at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Reports created before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// Metrics over reports created in the period (rates are null when there is nothing to divide).
#[utoipa::path(get, path = "/api/stats", tag = "reports", params(StatsQuery),
    responses((status = 200, body = Stats),
        (status = 400, description = "A parameter does not parse, or `county` names no county", body = super::error::ErrorBody)))]
pub async fn get_stats(State(state): State<AppState>, Query(q): Query<StatsQuery>) -> ApiResult<Json<Stats>> {
    let county = match q.county.as_deref() {
        None => None,
        Some(code) => Some(
            crate::counties::id_by_code(&state.pool, code)
                .await?
                .ok_or_else(|| ApiError::field("county", format!("no county has the code {code:?}")))?,
        ),
    };
    Ok(Json(workflow::stats(&state.pool, q.grid, q.subdistrict, county, q.from, q.to).await?))
}
