//! `/api/grids…`. For now only `GET /api/grids/at`: "which grid am I in" for residents.
//!
//! What is public about a grid here: its id, code, name, community, subdistrict, household count,
//! its outline (the same data the tiles publish), and its grid workers (网格员) as the county's
//! public sign shows them — display name and, only where an admin has set one, the published
//! `public_phone`. A worker's private `phone`, login name and the part-time riders assigned to the
//! grid are never returned.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use super::stations::lon_lat;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/grids/at", get(grid_at))
}

/// The grid covering a point, as the public card shows it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct GridAt {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub community: Option<String>,
    pub subdistrict: Option<String>,
    pub households: i32,
    /// `[{"name": "…", "public_phone": null}]`, in assignment order.
    pub workers: serde_json::Value,
    /// GeoJSON MultiPolygon, so the map can outline the grid even without tiles.
    pub geometry: serde_json::Value,
}

/// `GET /api/grids/at?lon=&lat=`: the grid covering the WGS84 point, by the same rule as the
/// database's `gridmap_grid_at` (the lowest id wins on a shared edge or vertex); 404 when none.
async fn grid_at(State(state): State<AppState>, Query(params): Query<HashMap<String, String>>) -> ApiResult<Json<GridAt>> {
    let (lon, lat) = lon_lat(&params)?;
    let grid: Option<GridAt> = sqlx::query_as(
        r"select g.id, g.code, g.name, c.name as community, s.name as subdistrict, g.households,
                 coalesce((select json_agg(json_build_object('name', coalesce(a.display_name, '网格员'),
                                                             'public_phone', a.public_phone)
                                           order by ga.created_at, a.id)
                             from grid_assignment ga join account a on a.id = ga.account_id
                            where ga.grid_id = g.id and a.role = 'grid_worker' and not a.disabled),
                          '[]'::json) as workers,
                 ST_AsGeoJSON(g.geom, 6)::json as geometry
            from grid g
            left join community c on c.id = g.community_id
            left join subdistrict s on s.id = c.subdistrict_id
           where g.id = gridmap_grid_at(ST_SetSRID(ST_MakePoint($1, $2), 4326))",
    )
    .bind(lon)
    .bind(lat)
    .fetch_optional(&state.pool)
    .await?;
    grid.map(Json).ok_or_else(|| ApiError::not_found(format!("no grid covers lon {lon}, lat {lat}")))
}
