//! `GET /api/stats`: the published grid-event metrics — closure rate (结案率), on-time closure
//! rate (按期结案率), rework rate (返工率), median time to close — and the micro-wishes'
//! (`wishes`: published, claimed, completed, completion rate, median time to a claim) for a
//! grid, a community, a subdistrict or a county.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Json, Query, county_param};
use crate::reports::workflow::{self, Stats};
use crate::wishes::{self, WishStats};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_stats))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    pub grid: Option<i64>,
    /// A community: reports and wishes of its grids.
    pub community: Option<i64>,
    pub subdistrict: Option<i64>,
    /// A county's code (e.g. `370323`): reports of its subdistricts.
    pub county: Option<String>,
    /// Reports (and wishes) created at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Reports (and wishes) created before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// The reports' metrics, and the micro-wishes' in `wishes`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsBody {
    #[serde(flatten)]
    pub reports: Stats,
    /// Micro-wishes published in the period in the same area.
    pub wishes: WishStats,
    /// Emergency mode now (of the county, or all): registered members, squads, active
    /// episodes, members mobilised and checked in (docs/emergency.md). Counts only.
    pub emergency: crate::emergency::Summary,
}

/// Metrics over reports created in the period (rates are null when there is nothing to divide).
#[utoipa::path(get, path = "/api/stats", tag = "reports", params(StatsQuery),
    responses((status = 200, body = StatsBody),
        (status = 400, description = "A parameter does not parse, or `county` names no county", body = super::error::ErrorBody)))]
pub async fn get_stats(State(state): State<AppState>, Query(q): Query<StatsQuery>) -> ApiResult<Json<StatsBody>> {
    let county = county_param(&state.pool, q.county.as_deref()).await?;
    let reports = workflow::stats(&state.pool, q.grid, q.community, q.subdistrict, county, q.from, q.to).await?;
    let area = wishes::Area {
        grid: q.grid,
        community: q.community,
        subdistrict: q.subdistrict,
        county,
        from: q.from,
        to: q.to,
    };
    Ok(Json(StatsBody {
        reports,
        wishes: wishes::stats(&state.pool, &area).await?,
        emergency: crate::emergency::summary(&state.pool, county).await?,
    }))
}
