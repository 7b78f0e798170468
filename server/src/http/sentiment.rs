//! `/api/sentiment*`: the people's-sentiment log (民情日志, issue 23 §2) — private to the grid's
//! workers, planners and admins; an entry turns into a report in one action. The rules are in
//! `crate::sentiment`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Json, Path, Query};
use super::principal::FieldWork;
use crate::sentiment::{self, CreateEntry, EntryFilter, EntryToReport, EntryView, TAGS, Tag};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_entries, create_entry))
        .routes(routes!(list_tags))
        .routes(routes!(entry_to_report))
}

/// Query string of `GET /api/sentiment`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListEntriesQuery {
    pub grid: Option<i64>,
    pub building: Option<i64>,
    /// The entry a report was made from.
    pub report: Option<i64>,
}

/// The fixed tags of the log.
#[utoipa::path(get, path = "/api/sentiment/tags", tag = "field work", security(("bearer" = [])),
    responses((status = 200, body = [Tag]),
        (status = 403, description = "Not a grid worker, planner or admin", body = super::error::ErrorBody)))]
pub async fn list_tags(_caller: FieldWork) -> Json<&'static [Tag]> {
    Json(TAGS)
}

/// Entries of the caller's grids (planners, admins: all), newest first.
#[utoipa::path(get, path = "/api/sentiment", tag = "field work", params(ListEntriesQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [EntryView]),
        (status = 403, description = "Not a grid worker, planner or admin; or not your grid", body = super::error::ErrorBody)))]
pub async fn list_entries(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Query(q): Query<ListEntriesQuery>,
) -> ApiResult<Json<Vec<EntryView>>> {
    let filter = EntryFilter { grid: q.grid, building: q.building, report: q.report };
    Ok(Json(sentiment::list(&state.pool, &principal, &filter).await?))
}

/// Write an entry for a grid or building of the caller's.
#[utoipa::path(post, path = "/api/sentiment", tag = "field work", request_body = CreateEntry,
    security(("bearer" = [])),
    responses((status = 201, body = EntryView),
        (status = 403, description = "Not your grid", body = super::error::ErrorBody),
        (status = 422, description = "No such grid or building", body = super::error::ErrorBody)))]
pub async fn create_entry(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Json(body): Json<CreateEntry>,
) -> ApiResult<Response> {
    let entry = sentiment::create(&state.pool, &principal, &body).await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

/// The 201 body of turning an entry into a report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryReport {
    /// The entry, now with its `report_id`.
    pub entry: EntryView,
    /// The report's intake body (as `POST /api/reports` answers).
    #[schema(value_type = Object)]
    pub report: Value,
}

/// Turn an entry into a report (report intake; location from its building or grid).
#[utoipa::path(post, path = "/api/sentiment/{id}/report", tag = "field work", request_body = EntryToReport,
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 201, body = EntryReport,
            headers(("Location" = String, description = "/api/reports/{id}"))),
        (status = 403, description = "Not your grid", body = super::error::ErrorBody),
        (status = 404, description = "No such entry", body = super::error::ErrorBody),
        (status = 409, description = "Already turned into a report (`already_reported`)", body = super::error::ErrorBody)))]
pub async fn entry_to_report(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Path(id): Path<i64>,
    Json(body): Json<EntryToReport>,
) -> ApiResult<Response> {
    let done = sentiment::to_report(&state.changes(), &principal, id, &body).await?;
    let location = format!("/api/reports/{}", done.report_id);
    let mut response =
        (StatusCode::CREATED, Json(EntryReport { entry: done.entry, report: done.report })).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}
