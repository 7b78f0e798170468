//! `/api/leaders…`: red building leaders (红色楼长) — one term, renewing it (一年一聘),
//! replacing the leader, ending a term early; the coverage per grid and community (counts only);
//! and a leader's own buildings with their open reports. The rules live in `crate::leaders`;
//! a building's sign and assigning its first leader are `/api/buildings/{id}/…`.
//!
//! Writes take `If-Match` with the term's ETag (its version), like every edit here: a renewal
//! or replacement made from a stale view gets 412, one without the header 428.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::etag;
use super::extract::{Json, Path, Query};
use super::principal::{Auth, BuildingLeader, Planner};
use crate::auth::Role;
use crate::leaders::{self, CoverageReport, MyBuildings, NewLeader, Renewal, Term};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_coverage))
        .routes(routes!(get_my_buildings))
        .routes(routes!(get_term))
        .routes(routes!(renew_term))
        .routes(routes!(replace_leader))
        .routes(routes!(end_term))
}

const IF_MATCH: &str = "send If-Match with the term's ETag (GET /api/leaders/{id} first)";

/// `GET /api/leaders/coverage[?community_id=]`: buildings with households, and how many have a
/// current leader, per grid and community and in all (the county reports 100%). Counts only.
#[utoipa::path(get, path = "/api/leaders/coverage", tag = "leaders",
    params(("community_id" = Option<i64>, Query, description = "Only this community's grids")),
    responses((status = 200, description = "Coverage in all, per community and per grid, by id", body = CoverageReport),
        (status = 400, description = "`community_id` is not an integer", body = ErrorBody)))]
pub(crate) async fn get_coverage(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<CoverageReport>> {
    if let Some(unknown) = params.keys().find(|k| *k != "community_id") {
        return Err(ApiError::field(unknown.clone(), "unknown query parameter (known: community_id)"));
    }
    let community = params
        .get("community_id")
        .map(|c| {
            c.trim().parse::<i64>().map_err(|_| ApiError::field("community_id", "must be an integer community id"))
        })
        .transpose()?;
    Ok(Json(leaders::coverage(&state.pool, community).await?))
}

/// `GET /api/leaders/me`: the signed-in leader's current buildings with the open reports within
/// 100 m of each (public fields only). Building leaders only.
#[utoipa::path(get, path = "/api/leaders/me", tag = "leaders", security(("bearer" = [])),
    responses((status = 200, description = "The leader's buildings and their open reports", body = MyBuildings),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Building leaders only", body = ErrorBody)))]
pub(crate) async fn get_my_buildings(
    State(state): State<AppState>,
    BuildingLeader(me): BuildingLeader,
) -> ApiResult<Json<MyBuildings>> {
    Ok(Json(leaders::my_buildings(&state.pool, me.account_id).await?))
}

/// `GET /api/leaders/{id}`: one term with its ETag, for planners, admins and the grid workers of
/// its building's grid.
#[utoipa::path(get, path = "/api/leaders/{id}", tag = "leaders", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Term id")),
    responses((status = 200, description = "The term", body = Term, headers(("ETag" = String, description = "The term's version"))),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners, admins and the building's grid workers only", body = ErrorBody),
        (status = 404, description = "No such term", body = ErrorBody)))]
pub(crate) async fn get_term(State(state): State<AppState>, auth: Auth, Path(id): Path<i64>) -> ApiResult<Response> {
    let me = auth.require(&[Role::GridWorker, Role::Planner, Role::Admin])?;
    let term = leaders::term_by_id(&state.pool, id).await?;
    let grid = leaders::building_grid(&state.pool, term.building_id).await?;
    if me.role == Role::GridWorker && !grid.is_some_and(|g| me.works_grid(g)) {
        return Err(ApiError::Forbidden("only the grid workers of the building's grid see its leaders".into()));
    }
    if !leaders::in_county(&state.pool, term.building_id, me.county_id).await? {
        return Err(ApiError::not_found(format!("leader term {id}")));
    }
    Ok(etag::tagged(StatusCode::OK, term.version, term))
}

fn created(term: Term) -> Response {
    etag::created(&format!("/api/leaders/{}", term.id), term.version, term)
}

/// `POST /api/leaders/{id}/renew` → 201: the same leader's next term (一年一聘), from the day after
/// this one ends (today if it has run out). Planners and admins; `If-Match` required.
#[utoipa::path(post, path = "/api/leaders/{id}/renew", tag = "leaders", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Term id"), ("If-Match" = String, Header, description = "The term's ETag")),
    request_body = Renewal,
    responses((status = 201, description = "The new term", body = Term,
            headers(("Location" = String, description = "/api/leaders/{id}"), ("ETag" = String, description = "The new term's version"))),
        (status = 400, description = "Invalid field (named in `field`) or body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 404, description = "No such term", body = ErrorBody),
        (status = 409, description = "The term has ended or was renewed already", body = ErrorBody),
        (status = 412, description = "Stale or unparsable If-Match", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
pub(crate) async fn renew_term(
    State(state): State<AppState>,
    Planner(me): Planner,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<Renewal>,
) -> ApiResult<Response> {
    let version = etag::required_version(&headers, IF_MATCH)?;
    let term = leaders::renew(&state.pool, id, version, &body, &me.name, me.county_id).await?;
    state.changes().leaders_changed(term.building_id).await;
    Ok(created(term))
}

/// `POST /api/leaders/{id}/replace` → 201: end this leader's term (and any renewal of it) now and
/// start the successor's in the same building or unit. Planners and admins; `If-Match` required.
#[utoipa::path(post, path = "/api/leaders/{id}/replace", tag = "leaders", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Term id"), ("If-Match" = String, Header, description = "The term's ETag")),
    request_body = NewLeader,
    responses((status = 201, description = "The successor's term", body = Term,
            headers(("Location" = String, description = "/api/leaders/{id}"), ("ETag" = String, description = "The new term's version"))),
        (status = 400, description = "Invalid field (named in `field`) or body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 404, description = "No such term", body = ErrorBody),
        (status = 409, description = "The term has ended already", body = ErrorBody),
        (status = 412, description = "Stale or unparsable If-Match", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
pub(crate) async fn replace_leader(
    State(state): State<AppState>,
    Planner(me): Planner,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<NewLeader>,
) -> ApiResult<Response> {
    let version = etag::required_version(&headers, IF_MATCH)?;
    let term = leaders::replace(&state.pool, id, version, &body, &me.name, me.county_id).await?;
    state.changes().leaders_changed(term.building_id).await;
    Ok(created(term))
}

/// `POST /api/leaders/{id}/end`: end a term early without a successor (the leader stepped down);
/// the building then shows as a gap. Planners and admins; `If-Match` required.
#[utoipa::path(post, path = "/api/leaders/{id}/end", tag = "leaders", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Term id"), ("If-Match" = String, Header, description = "The term's ETag")),
    responses((status = 200, description = "The ended term", body = Term, headers(("ETag" = String, description = "Its new version"))),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 404, description = "No such term", body = ErrorBody),
        (status = 409, description = "The term has ended already", body = ErrorBody),
        (status = 412, description = "Stale or unparsable If-Match", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
pub(crate) async fn end_term(
    State(state): State<AppState>,
    Planner(me): Planner,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let version = etag::required_version(&headers, IF_MATCH)?;
    let term = leaders::end(&state.pool, id, version, me.county_id).await?;
    state.changes().leaders_changed(term.building_id).await;
    Ok(etag::tagged(StatusCode::OK, term.version, term))
}
