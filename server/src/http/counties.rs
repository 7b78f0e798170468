//! `GET /api/counties`: the counties this database holds (public), for clients that pick or
//! filter by county (`/api/stats?county=`, OGC grids `?county=`).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiResult;
use super::extract::Json;
use crate::counties::{self, CountySummary};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_counties))
}

/// Every county by code, with its subdistrict and grid counts, households and boundary extent.
#[utoipa::path(get, path = "/api/counties", tag = "grids",
    responses((status = 200, description = "Every county, by code", body = [CountySummary])))]
pub(crate) async fn list_counties(State(state): State<AppState>) -> ApiResult<Json<Vec<CountySummary>>> {
    Ok(Json(counties::list(&state.pool).await?))
}
