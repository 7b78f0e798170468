//! `/api/suggestions…`: the suggestion box (意见建议征集信箱) of every warm-"new" station and the
//! county's own (issue 23 §3; `crate::station_visits`). Riders (any logged-in account) drop a
//! suggestion; a station's host answers their box, planners the county's, admins any. The
//! writer is shown to admins only; everyone else reading a suggestion sees its text, status and
//! answer, never who wrote it.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Json, Path, Query};
use super::principal::{Answerer, Auth};
use crate::station_visits::{self, BoxFilter, NewAnswer, NewSuggestion, SuggestionView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_suggestions, create_suggestion)).routes(routes!(answer_suggestion))
}

/// `POST /api/suggestions` → 201: into a station's box (`station_id`) or the county's (none).
#[utoipa::path(post, path = "/api/suggestions", tag = "stations", security(("bearer" = [])),
    request_body = NewSuggestion,
    responses((status = 201, description = "In the box, status `open`", body = SuggestionView),
        (status = 400, description = "A blank or too long `body`, or a `station_id` that does not exist (named in `field`)", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody)))]
pub(crate) async fn create_suggestion(
    State(state): State<AppState>,
    Auth(me): Auth,
    Json(body): Json<NewSuggestion>,
) -> ApiResult<Response> {
    let created = station_visits::suggest(&state.pool, &me, &body).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /api/suggestions[?box=county|<station id>][&status=open|answered]`: newest first, at
/// most 500. Admins and planners read every box; a station's host reads their station's; anyone
/// else reads the suggestions they wrote (with the answers).
#[utoipa::path(get, path = "/api/suggestions", tag = "stations", security(("bearer" = [])),
    params(("box" = Option<String>, Query, description = "`county` (the county-wide box) or a station id; absent: every box the reader may see"),
        ("status" = Option<String>, Query, description = "`open` or `answered`")),
    responses((status = 200, description = "The suggestions; `author` for admins only", body = [SuggestionView]),
        (status = 400, description = "An unknown `box` or `status` (named in `field`)", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "A host asking for another station's box", body = ErrorBody)))]
pub(crate) async fn list_suggestions(
    State(state): State<AppState>,
    Auth(me): Auth,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<SuggestionView>>> {
    let mut filter = BoxFilter::All;
    let mut status = None;
    for (key, value) in &params {
        match key.as_str() {
            "box" => {
                filter = match value.as_str() {
                    "county" => BoxFilter::County,
                    id => {
                        BoxFilter::Station(id.parse().map_err(|_| ApiError::field("box", "`county` or a station id"))?)
                    }
                }
            }
            "status" => match value.as_str() {
                "open" | "answered" => status = Some(value.as_str()),
                _ => return Err(ApiError::field("status", "`open` or `answered`")),
            },
            other => {
                return Err(ApiError::field(other.to_string(), "unknown query parameter (use box, status)"));
            }
        }
    }
    Ok(Json(station_visits::list(&state.pool, &me, filter, status).await?))
}

/// `POST /api/suggestions/{id}/answer`: the host answers (status becomes `answered`; a second
/// answer replaces the first).
#[utoipa::path(post, path = "/api/suggestions/{id}/answer", tag = "stations", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Suggestion id")),
    request_body = NewAnswer,
    responses((status = 200, description = "The answered suggestion", body = SuggestionView),
        (status = 400, description = "A blank or too long `answer`", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not this box's host (a station's host, planners for the county's box) or an admin", body = ErrorBody),
        (status = 404, description = "No such suggestion", body = ErrorBody)))]
pub(crate) async fn answer_suggestion(
    State(state): State<AppState>,
    Answerer(me): Answerer,
    Path(id): Path<String>,
    Json(body): Json<NewAnswer>,
) -> ApiResult<Json<SuggestionView>> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found(format!("suggestion `{id}` (ids are integers)")))?;
    Ok(Json(station_visits::answer(&state.pool, &me, id, &body).await?))
}
