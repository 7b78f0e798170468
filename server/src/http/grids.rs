//! `/api/grids…`: "which grid am I in" for residents (`GET /api/grids/at`), and the planners'
//! grid operations that keep the partition whole — history and revert, split and merge, gaps and
//! household balance. (Single-grid geometry edits go through `/ogc/collections/grids/items/{id}`,
//! which runs the same validation.)
//!
//! What is public about a grid at a point: its id, code, name, community, subdistrict, household
//! count, its outline (the same data the tiles publish), and its grid workers (网格员) as the
//! county's public sign shows them — display name and, only where an admin has set one, the
//! published `public_phone`. A worker's private `phone`, login name and the part-time riders
//! assigned to the grid are never returned.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::Planner;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::ogc::{after_commit, if_match};
use super::stations::lon_lat;
use crate::ogc::edit::Actor;
use crate::ogc::grid_ops;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/grids/at", get(grid_at))
        .route("/api/grids/gaps", get(get_gaps))
        .route("/api/grids/balance", get(get_balance))
        .route("/api/grids/merge", post(merge_grids))
        .route("/api/grids/{id}/history", get(get_history))
        .route("/api/grids/{id}/revert", post(revert_grid))
        .route("/api/grids/{id}/split", post(split_grid))
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

async fn get_history(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Response> {
    let entries = grid_ops::history(&state.pool, id).await?;
    Ok(Json(json!({"grid_id": id, "versions": entries})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevertGrid {
    pub version: i32,
    pub reason: Option<String>,
    #[serde(default)]
    pub clip_neighbours: bool,
}

/// Revert to a chosen version (If-Match: the grid's current ETag).
async fn revert_grid(State(state): State<AppState>, Planner(planner): Planner, headers: HeaderMap, Path(id): Path<i64>, Json(body): Json<RevertGrid>) -> ApiResult<Response> {
    let name = planner.name.as_str();
    let etag = if_match(&headers)?;
    let w = grid_ops::revert(&state.pool, id, etag, body.version, Actor { name, reason: body.reason.as_deref() }, body.clip_neighbours).await?;
    after_commit(&state, &w.changed).await;
    let feature: Value = serde_json::from_str(&w.feature).unwrap_or(Value::Null);
    Ok(([(header::ETAG, format!("\"{}\"", w.etag))], Json(json!({"grid": feature, "warnings": w.warnings}))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitGrid {
    /// GeoJSON LineString or MultiLineString that crosses the grid.
    pub line: Value,
    pub reason: Option<String>,
}

/// Split by a line (If-Match: the grid's current ETag).
async fn split_grid(State(state): State<AppState>, Planner(planner): Planner, headers: HeaderMap, Path(id): Path<i64>, Json(body): Json<SplitGrid>) -> ApiResult<Response> {
    let name = planner.name.as_str();
    let etag = if_match(&headers)?;
    let (grids, changed) = grid_ops::split(&state.pool, id, etag, &body.line, Actor { name, reason: body.reason.as_deref() }).await?;
    after_commit(&state, &changed).await;
    Ok((StatusCode::OK, Json(json!({"grids": grids}))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeItem {
    pub id: i64,
    /// The version (ETag) the planner saw.
    pub version: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeGrids {
    pub grids: Vec<MergeItem>,
    pub reason: Option<String>,
}

async fn merge_grids(State(state): State<AppState>, Planner(planner): Planner, Json(body): Json<MergeGrids>) -> ApiResult<Response> {
    let name = planner.name.as_str();
    let grids: Vec<(i64, i64)> = body.grids.iter().map(|g| (g.id, g.version)).collect();
    let (grid, changed) = grid_ops::merge(&state.pool, &grids, Actor { name, reason: body.reason.as_deref() }).await?;
    after_commit(&state, &changed).await;
    Ok(Json(json!({"grid": grid, "removed": changed.grid_ids.iter().filter(|id| **id != grid.id).collect::<Vec<_>>()})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapsQuery {
    /// Smallest hole reported, m² (default 1).
    pub min_area: Option<f64>,
}

async fn get_gaps(State(state): State<AppState>, Query(q): Query<GapsQuery>) -> ApiResult<Response> {
    let min = q.min_area.unwrap_or(1.0);
    if !min.is_finite() || min < 0.0 {
        return Err(ApiError::field("min_area", "must be a number from 0"));
    }
    let body = grid_ops::gaps(&state.pool, min).await?;
    Ok(([(header::CONTENT_TYPE, "application/geo+json")], body.to_string()).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceQuery {
    /// Fewest households a grid should have (default 200).
    pub min: Option<i32>,
    /// Most households a grid should have (default 400).
    pub max: Option<i32>,
}

async fn get_balance(State(state): State<AppState>, Query(q): Query<BalanceQuery>) -> ApiResult<Response> {
    let (min, max) = (q.min.unwrap_or(200), q.max.unwrap_or(400));
    if min > max {
        return Err(ApiError::field("min", "must not exceed max"));
    }
    Ok(Json(grid_ops::balance(&state.pool, min, max).await?).into_response())
}
