//! `/api/grids/…`: the planners' grid operations that keep the partition whole — history and
//! revert, split and merge, gaps and household balance. (Single-grid geometry edits go through
//! `/ogc/collections/grids/items/{id}`, which runs the same validation.)

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::ogc::{after_commit, if_match};
use crate::auth::Role;
use crate::ogc::edit::Actor;
use crate::ogc::grid_ops;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/grids/gaps", get(get_gaps))
        .route("/api/grids/balance", get(get_balance))
        .route("/api/grids/merge", post(merge_grids))
        .route("/api/grids/{id}/history", get(get_history))
        .route("/api/grids/{id}/revert", post(revert_grid))
        .route("/api/grids/{id}/split", post(split_grid))
}

fn planner(auth: &Auth) -> ApiResult<&str> {
    Ok(&auth.require(&[Role::Planner, Role::Admin])?.name)
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
async fn revert_grid(State(state): State<AppState>, auth: Auth, headers: HeaderMap, Path(id): Path<i64>, Json(body): Json<RevertGrid>) -> ApiResult<Response> {
    let name = planner(&auth)?;
    let etag = if_match(&headers)?;
    let w = grid_ops::revert(&state.pool, id, etag, body.version, Actor { name, reason: body.reason.as_deref() }, body.clip_neighbours).await?;
    after_commit(&state, &w.changed);
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
async fn split_grid(State(state): State<AppState>, auth: Auth, headers: HeaderMap, Path(id): Path<i64>, Json(body): Json<SplitGrid>) -> ApiResult<Response> {
    let name = planner(&auth)?;
    let etag = if_match(&headers)?;
    let (grids, changed) = grid_ops::split(&state.pool, id, etag, &body.line, Actor { name, reason: body.reason.as_deref() }).await?;
    after_commit(&state, &changed);
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

async fn merge_grids(State(state): State<AppState>, auth: Auth, Json(body): Json<MergeGrids>) -> ApiResult<Response> {
    let name = planner(&auth)?;
    let grids: Vec<(i64, i64)> = body.grids.iter().map(|g| (g.id, g.version)).collect();
    let (grid, changed) = grid_ops::merge(&state.pool, &grids, Actor { name, reason: body.reason.as_deref() }).await?;
    after_commit(&state, &changed);
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
