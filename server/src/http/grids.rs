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

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::etag;
use super::extract::{Json, Path, Query, lon_lat};
use super::principal::Planner;
use crate::ogc::edit::Actor;
use crate::ogc::grid_ops::{self, GridSummary, HistoryEntry};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(grid_at))
        .routes(routes!(get_gaps))
        .routes(routes!(get_balance))
        .routes(routes!(merge_grids))
        .routes(routes!(get_history))
        .routes(routes!(revert_grid))
        .routes(routes!(split_grid))
        .routes(routes!(preview_grid))
}

/// The grid covering a point, as the public card shows it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct GridAt {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub community: Option<String>,
    pub subdistrict: Option<String>,
    pub households: i32,
    /// `[{"name": "…", "public_phone": null}]`, in assignment order.
    #[schema(value_type = Vec<PublicWorker>)]
    pub workers: serde_json::Value,
    /// The community's service centre (社区党群服务中心): where to turn when no worker's phone is
    /// published; null when the community has entered neither address nor phone.
    #[schema(value_type = Option<ServiceCentre>)]
    pub service_centre: Option<serde_json::Value>,
    /// GeoJSON MultiPolygon, so the map can outline the grid even without tiles.
    #[schema(value_type = Object)]
    pub geometry: serde_json::Value,
}

/// A community service centre's public contact (built in SQL by `grid_at`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceCentre {
    /// `<community>党群服务中心`.
    pub name: String,
    pub address: Option<String>,
    /// The centre's public service line.
    pub phone: Option<String>,
}

/// A grid worker as the county's public sign shows them (built in SQL by `grid_at`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicWorker {
    /// The display name, or `网格员` when none is set.
    pub name: String,
    /// Only where an admin has published one.
    pub public_phone: Option<String>,
}

/// `GET /api/grids/at?lon=&lat=`: the grid covering the WGS84 point, by the same rule as the
/// database's `gridmap_grid_at` (the lowest id wins on a shared edge or vertex); 404 when none.
#[utoipa::path(get, path = "/api/grids/at", tag = "grids",
    params(("lon" = f64, Query, description = "WGS84 longitude, -180..=180", minimum = -180.0, maximum = 180.0),
        ("lat" = f64, Query, description = "WGS84 latitude, -90..=90", minimum = -90.0, maximum = 90.0)),
    responses((status = 200, description = "The grid, its community and its published workers", body = GridAt),
        (status = 400, description = "A missing or out-of-range `lon` or `lat` (named in `field`)", body = ErrorBody),
        (status = 404, description = "No grid covers the point", body = ErrorBody)))]
pub(crate) async fn grid_at(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<GridAt>> {
    let (lon, lat) = lon_lat(&params)?;
    let grid: Option<GridAt> = sqlx::query_as(
        r"select g.id, g.code, g.name, c.name as community, s.name as subdistrict, g.households,
                 coalesce((select json_agg(json_build_object('name', coalesce(a.display_name, '网格员'),
                                                             'public_phone', a.public_phone)
                                           order by ga.created_at, a.id)
                             from grid_assignment ga join account a on a.id = ga.account_id
                            where ga.grid_id = g.id and a.role = 'grid_worker' and not a.disabled),
                          '[]'::json) as workers,
                 case when c.service_centre_address is not null or c.service_centre_phone is not null
                      then json_build_object('name', c.name || '党群服务中心', 'address', c.service_centre_address,
                                             'phone', c.service_centre_phone)
                 end as service_centre,
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

/// The body of `GET /api/grids/{id}/history`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GridHistory {
    pub grid_id: i64,
    /// Oldest first.
    pub versions: Vec<HistoryEntry>,
}

/// Every version of a grid: author, reason, time, area and geometry.
#[utoipa::path(get, path = "/api/grids/{id}/history", tag = "grids",
    params(("id" = i64, Path, description = "Grid id")),
    responses((status = 200, description = "The grid's versions, oldest first", body = GridHistory),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 404, description = "No such grid (it has no history)", body = ErrorBody)))]
pub(crate) async fn get_history(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Response> {
    let versions = grid_ops::history(&state.pool, id).await?;
    Ok(Json(GridHistory { grid_id: id, versions }).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevertGrid {
    /// The version to go back to (from the history).
    pub version: i32,
    /// Recorded in the history; default `revert to version <n>`.
    pub reason: Option<String>,
    /// Clip neighbouring grids the old outline overlaps instead of refusing (default false).
    #[serde(default)]
    pub clip_neighbours: bool,
}

/// The body of a revert: the grid as now stored, and what the checks did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevertResult {
    /// GeoJSON Feature: `id`, `geometry` (MultiPolygon) and `properties` `code`, `name`,
    /// `community_id`, `households`, `version`, `source`, `updated_at`.
    #[schema(value_type = Object)]
    pub grid: Value,
    /// e.g. a repaired geometry or clipped neighbours.
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewGrid {
    /// The shape being drawn: a GeoJSON Polygon or MultiPolygon in WGS84.
    #[schema(value_type = Object)]
    pub geometry: Value,
}

/// What an edit would leave, before it is saved.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GridPreview {
    /// The grid's households with this shape.
    pub households: i64,
    /// The holes in the urban area this shape would open (as `GET /api/grids/gaps` would list
    /// them after saving), each over 1 m².
    #[schema(value_type = GridGaps)]
    pub gaps: Value,
}

/// The consequences of a shape before saving it: households and the gaps it would leave.
/// Planners and admins; nothing is stored.
#[utoipa::path(post, path = "/api/grids/{id}/preview", tag = "grids", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Grid id")),
    request_body = PreviewGrid,
    responses((status = 200, description = "The households and gaps the shape would leave", body = GridPreview),
        (status = 400, description = "Invalid body or geometry", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 404, description = "No such grid", body = ErrorBody)))]
pub(crate) async fn preview_grid(
    State(state): State<AppState>,
    Planner(_planner): Planner,
    Path(id): Path<i64>,
    Json(body): Json<PreviewGrid>,
) -> ApiResult<Response> {
    let kind = body.geometry.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("Polygon" | "MultiPolygon")) {
        return Err(ApiError::field("geometry", "a GeoJSON Polygon or MultiPolygon"));
    }
    let preview = grid_ops::preview(&state.pool, id, &body.geometry, 1.0).await?;
    Ok(Json(preview).into_response())
}

/// Revert to a chosen version (If-Match: the grid's current ETag). Planners and admins.
#[utoipa::path(post, path = "/api/grids/{id}/revert", tag = "grids", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Grid id"), ("If-Match" = String, Header, description = "The grid's current ETag, from GET /ogc/collections/grids/items/{id}")),
    request_body = RevertGrid,
    responses((status = 200, description = "The grid after the revert; `ETag` is its new version", body = RevertResult,
            headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 404, description = "No such grid or version", body = ErrorBody),
        (status = 409, description = "A value already in use", body = ErrorBody),
        (status = 412, description = "Stale or unparsable If-Match", body = ErrorBody),
        (status = 422, description = "The old outline breaks the partition (overlaps, outside the county); see `details`", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
pub(crate) async fn revert_grid(
    State(state): State<AppState>,
    Planner(planner): Planner,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<RevertGrid>,
) -> ApiResult<Response> {
    let name = planner.name.as_str();
    let etag = etag::required_version(&headers, "send If-Match with the grid's ETag (GET it first)")?;
    let w = grid_ops::revert(
        &state.pool,
        id,
        etag,
        body.version,
        Actor { name, reason: body.reason.as_deref(), county_id: planner.county_id },
        body.clip_neighbours,
    )
    .await?;
    state.changes().map_changed(&w.changed).await;
    let grid: Value = serde_json::from_str(&w.feature).unwrap_or(Value::Null);
    Ok(etag::tagged(StatusCode::OK, w.etag, RevertResult { grid, warnings: w.warnings }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitGrid {
    /// GeoJSON LineString or MultiLineString that crosses the grid.
    #[schema(value_type = Object)]
    pub line: Value,
    /// Recorded in the history.
    pub reason: Option<String>,
    /// `true`: check the split and answer with the parts (households, area) it would leave,
    /// storing nothing — the planner's preview while drawing. The new parts' ids and codes in
    /// that answer are provisional.
    #[serde(default)]
    pub dry_run: bool,
}

/// The body of a split: the grids it left, by id (the original id keeps the largest part).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SplitResult {
    pub grids: Vec<GridSummary>,
    /// A preview (`dry_run`): nothing was stored.
    pub dry_run: bool,
}

/// Split by a line (If-Match: the grid's current ETag). Planners and admins.
#[utoipa::path(post, path = "/api/grids/{id}/split", tag = "grids", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Grid id"), ("If-Match" = String, Header, description = "The grid's current ETag, from GET /ogc/collections/grids/items/{id}")),
    request_body = SplitGrid,
    responses((status = 200, description = "The grids after the split: the original (largest part) and the new ones", body = SplitResult),
        (status = 400, description = "Invalid body; `line` is not a (Multi)LineString", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 404, description = "No such grid", body = ErrorBody),
        (status = 409, description = "A value already in use", body = ErrorBody),
        (status = 412, description = "Stale or unparsable If-Match", body = ErrorBody),
        (status = 422, description = "The line does not cut the grid in two or more parts; see `details`", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
pub(crate) async fn split_grid(
    State(state): State<AppState>,
    Planner(planner): Planner,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<SplitGrid>,
) -> ApiResult<Response> {
    let name = planner.name.as_str();
    let etag = etag::required_version(&headers, "send If-Match with the grid's ETag (GET it first)")?;
    let (grids, changed) = grid_ops::split(
        &state.pool,
        id,
        etag,
        &body.line,
        Actor { name, reason: body.reason.as_deref(), county_id: planner.county_id },
        body.dry_run,
    )
    .await?;
    if !body.dry_run {
        state.changes().map_changed(&changed).await;
    }
    Ok((StatusCode::OK, Json(SplitResult { grids, dry_run: body.dry_run })).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeItem {
    pub id: i64,
    /// The version (ETag) the planner saw.
    pub version: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeGrids {
    /// Two to 50 distinct, adjacent grids.
    pub grids: Vec<MergeItem>,
    /// Recorded in the history.
    pub reason: Option<String>,
}

/// The body of a merge: the grid kept (the lowest id) and the ids deleted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MergeResult {
    pub grid: GridSummary,
    pub removed: Vec<i64>,
}

/// Merge adjacent grids, each with the version the planner saw. Planners and admins.
#[utoipa::path(post, path = "/api/grids/merge", tag = "grids", security(("bearer" = [])),
    request_body = MergeGrids,
    responses((status = 200, description = "The merged grid (the lowest id, with its code and name) and the removed ids", body = MergeResult),
        (status = 400, description = "Invalid body; fewer than two or more than 50 distinct grids", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 404, description = "No such grid", body = ErrorBody),
        (status = 409, description = "A value already in use", body = ErrorBody),
        (status = 412, description = "A grid is not at the version given", body = ErrorBody),
        (status = 422, description = "The grids are not adjacent; see `details`", body = ErrorBody)))]
pub(crate) async fn merge_grids(
    State(state): State<AppState>,
    Planner(planner): Planner,
    Json(body): Json<MergeGrids>,
) -> ApiResult<Response> {
    let name = planner.name.as_str();
    let grids: Vec<(i64, i64)> = body.grids.iter().map(|g| (g.id, g.version)).collect();
    let (grid, changed) = grid_ops::merge(
        &state.pool,
        &grids,
        Actor { name, reason: body.reason.as_deref(), county_id: planner.county_id },
    )
    .await?;
    state.changes().map_changed(&changed).await;
    let removed = changed.grid_ids.iter().copied().filter(|id| *id != grid.id).collect();
    Ok(Json(MergeResult { grid, removed }).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GapsQuery {
    /// Smallest hole reported, m² (default 1).
    pub min_area: Option<f64>,
}

/// The body of `GET /api/grids/gaps` (built by `grid_ops::gaps`): a GeoJSON FeatureCollection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GridGaps {
    /// `FeatureCollection`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "numberReturned")]
    pub number_returned: usize,
    /// All the holes together, m².
    pub total_area_m2: f64,
    /// Largest first.
    pub features: Vec<GapFeature>,
}

/// One hole: a GeoJSON Feature with a Polygon geometry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GapFeature {
    /// `Feature`.
    #[serde(rename = "type")]
    pub kind: String,
    /// GeoJSON Polygon.
    #[schema(value_type = Object)]
    pub geometry: Value,
    pub properties: GapProperties,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GapProperties {
    /// The hole's area, m², to 0.1.
    pub area_m2: f64,
}

/// Holes in the partition: the parts of the urban area no grid covers.
#[utoipa::path(get, path = "/api/grids/gaps", tag = "grids", params(GapsQuery),
    responses((status = 200, description = "GeoJSON FeatureCollection of the holes", content_type = "application/geo+json", body = GridGaps),
        (status = 400, description = "`min_area` is negative or not a number; an unknown parameter", body = ErrorBody)))]
pub(crate) async fn get_gaps(State(state): State<AppState>, Query(q): Query<GapsQuery>) -> ApiResult<Response> {
    let min = q.min_area.unwrap_or(1.0);
    if !min.is_finite() || min < 0.0 {
        return Err(ApiError::field("min_area", "must be a number from 0"));
    }
    let body = grid_ops::gaps(&state.pool, min).await?;
    Ok(([(header::CONTENT_TYPE, "application/geo+json")], body.to_string()).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BalanceQuery {
    /// Fewest households a grid should have (default 200).
    pub min: Option<i32>,
    /// Most households a grid should have (default 400).
    pub max: Option<i32>,
}

/// The body of `GET /api/grids/balance` (built by `grid_ops::balance`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GridBalance {
    pub min: i32,
    pub max: i32,
    pub count: usize,
    /// By id.
    pub grids: Vec<UnbalancedGrid>,
}

/// A grid outside the household band.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnbalancedGrid {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub households: i32,
    /// `under` or `over` the band.
    pub status: String,
    /// The grids sharing an edge with it, by id.
    pub neighbours: Vec<GridNeighbour>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GridNeighbour {
    pub id: i64,
    pub code: String,
    pub households: i32,
}

/// Grids whose households fall outside the band, each with its edge-sharing neighbours.
#[utoipa::path(get, path = "/api/grids/balance", tag = "grids", params(BalanceQuery),
    responses((status = 200, description = "The band and the grids outside it", body = GridBalance),
        (status = 400, description = "`min` exceeds `max`; not an integer; an unknown parameter", body = ErrorBody)))]
pub(crate) async fn get_balance(State(state): State<AppState>, Query(q): Query<BalanceQuery>) -> ApiResult<Response> {
    let (min, max) = (q.min.unwrap_or(200), q.max.unwrap_or(400));
    if min > max {
        return Err(ApiError::field("min", "must not exceed max"));
    }
    Ok(Json(grid_ops::balance(&state.pool, min, max).await?).into_response())
}
