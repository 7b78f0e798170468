//! `/api/rounds*`: door-knocking rounds (敲门行动, issue 23 §2) — open, list, one round with its
//! per-grid progress, its buildings, visits (recorded once per `Idempotency-Key`, as report
//! intake) and closing. The rules are in `crate::rounds`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{self, Json, Path, Query};
use super::principal::FieldWork;
use crate::rounds::{
    self, BuildingProgress, ListFilter, OpenRound, RecordVisit, RoundError, RoundView, VisitOutcome, VisitView,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rounds, open_round))
        .routes(routes!(get_round))
        .routes(routes!(list_round_buildings))
        .routes(routes!(list_visits, record_visit))
        .routes(routes!(close_round))
}

impl From<RoundError> for ApiError {
    fn from(err: RoundError) -> Self {
        match err {
            RoundError::NotFound(m) => ApiError::not_found(m),
            RoundError::Forbidden(m) => ApiError::Forbidden(m),
            RoundError::Field { field, message } => ApiError::field(field, message),
            RoundError::Unprocessable { field, message } => ApiError::Unprocessable {
                message: format!("{field}: {message}"),
                details: serde_json::json!({ "field": field }),
            },
            RoundError::Conflict { reason, message } => ApiError::Conflict(message).with_reason(reason),
            RoundError::Database(e) => ApiError::Database(e),
        }
    }
}

/// Query string of `GET /api/rounds`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListRoundsQuery {
    /// `running` or `closed`.
    pub status: Option<String>,
    /// Rounds covering this grid.
    pub grid: Option<i64>,
}

/// Query string of the buildings and visits of a round.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RoundGridQuery {
    /// One grid of the round.
    pub grid: Option<i64>,
}

/// Rounds covering the caller's grids (planners, admins: all), running first.
#[utoipa::path(get, path = "/api/rounds", tag = "field work", params(ListRoundsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [RoundView]),
        (status = 403, description = "Not a grid worker, planner or admin; or not your grid", body = super::error::ErrorBody)))]
pub async fn list_rounds(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Query(q): Query<ListRoundsQuery>,
) -> ApiResult<Json<Vec<RoundView>>> {
    let filter = ListFilter { status: q.status, grid: q.grid };
    Ok(Json(rounds::list(&state.pool, &principal, &filter).await?))
}

/// Open a round for a grid, community or county (planners, admins; a grid worker for their own grid).
#[utoipa::path(post, path = "/api/rounds", tag = "field work", request_body = OpenRound,
    security(("bearer" = [])),
    responses((status = 201, body = RoundView,
            headers(("Location" = String, description = "/api/rounds/{id}"))),
        (status = 403, description = "Not allowed to open a round there", body = super::error::ErrorBody),
        (status = 409, description = "A running round covers some of these grids (`reason`: round_overlap)", body = super::error::ErrorBody),
        (status = 422, description = "No such grid, community or county, or no buildings with households", body = super::error::ErrorBody)))]
pub async fn open_round(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Json(body): Json<OpenRound>,
) -> ApiResult<Response> {
    let round = rounds::open(&state.changes(), &principal, &body).await?;
    let location = format!("/api/rounds/{}", round.id);
    let mut response = (StatusCode::CREATED, Json(round)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// One round with per-grid progress (buildings and households).
#[utoipa::path(get, path = "/api/rounds/{id}", tag = "field work", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = RoundView),
        (status = 403, description = "The round covers none of your grids", body = super::error::ErrorBody),
        (status = 404, description = "No such round", body = super::error::ErrorBody)))]
pub async fn get_round(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Path(id): Path<i64>,
) -> ApiResult<Json<RoundView>> {
    Ok(Json(rounds::get(&state.pool, &principal, id).await?))
}

/// The round's buildings in the caller's grids with households recorded, not done first.
#[utoipa::path(get, path = "/api/rounds/{id}/buildings", tag = "field work",
    params(("id" = i64, Path), RoundGridQuery), security(("bearer" = [])),
    responses((status = 200, body = [BuildingProgress]),
        (status = 403, description = "Not your round or grid", body = super::error::ErrorBody),
        (status = 404, description = "No such round", body = super::error::ErrorBody)))]
pub async fn list_round_buildings(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Path(id): Path<i64>,
    Query(q): Query<RoundGridQuery>,
) -> ApiResult<Json<Vec<BuildingProgress>>> {
    Ok(Json(rounds::buildings(&state.pool, &principal, id, q.grid).await?))
}

/// The round's visits in the caller's grids, newest first (who visited and notes: private).
#[utoipa::path(get, path = "/api/rounds/{id}/visits", tag = "field work",
    params(("id" = i64, Path), RoundGridQuery), security(("bearer" = [])),
    responses((status = 200, body = [VisitView]),
        (status = 403, description = "Not your round or grid", body = super::error::ErrorBody),
        (status = 404, description = "No such round", body = super::error::ErrorBody)))]
pub async fn list_visits(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Path(id): Path<i64>,
    Query(q): Query<RoundGridQuery>,
) -> ApiResult<Json<Vec<VisitView>>> {
    Ok(Json(rounds::visits(&state.pool, &principal, id, q.grid).await?))
}

/// Record a visit to a building or unit (a worker of its grid), exactly once per key.
#[utoipa::path(post, path = "/api/rounds/{id}/visits", tag = "field work", request_body = RecordVisit,
    params(("id" = i64, Path),
        ("Idempotency-Key" = uuid::Uuid, Header, description = "A client-made UUID; a resend with the same payload gets the original response")),
    security(("bearer" = [])),
    responses((status = 201, description = "Stored (or the stored visit, for a resend)", body = VisitView,
            headers(("Idempotent-Replayed" = String, description = "`true` on a resend answered with the stored visit"))),
        (status = 403, description = "Not a worker of the building's grid", body = super::error::ErrorBody),
        (status = 404, description = "No such round", body = super::error::ErrorBody),
        (status = 409, description = "The round is closed (`round_closed`) or the key was used for another visit (`key_reused`)", body = super::error::ErrorBody),
        (status = 422, description = "No such building, or not in the round, or without households", body = super::error::ErrorBody)))]
pub async fn record_visit(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    // Who may record here is settled before the body's shape: a planner gets 403, not a 400.
    rounds::may_record(&state.pool, &principal, id).await?;
    let key = extract::idempotency_key(&headers)?;
    let body: RecordVisit = extract::typed_body(&body)?;
    let outcome = rounds::record_visit(&state.changes(), &principal, id, &body, key).await?;
    let (view, replayed) = match outcome {
        VisitOutcome::Created(v) => (v, false),
        VisitOutcome::Replayed(v) => (v, true),
    };
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Close a round: only when every household was recorded (else 409 naming what is missing).
#[utoipa::path(post, path = "/api/rounds/{id}/close", tag = "field work", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = RoundView),
        (status = 403, description = "Not allowed to close this round", body = super::error::ErrorBody),
        (status = 404, description = "No such round", body = super::error::ErrorBody),
        (status = 409, description = "Households still missing (`round_incomplete`, the message names them) or already closed (`round_closed`)", body = super::error::ErrorBody)))]
pub async fn close_round(
    State(state): State<AppState>,
    FieldWork(principal): FieldWork,
    Path(id): Path<i64>,
) -> ApiResult<Json<RoundView>> {
    Ok(Json(rounds::close(&state.changes(), &principal, id).await?))
}
