//! `/api/buildings/{id}/…`: a building's red building leaders (红色楼长) — the public sign, the
//! terms as the people who manage them see them, and assigning a leader (一楼一长). The rules
//! live in `crate::leaders`; renewing, replacing and ending a term are `/api/leaders/{id}/…`.

use axum::extract::State;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::etag;
use super::extract::{Json, Path};
use super::principal::{Auth, Planner};
use crate::auth::Role;
use crate::leaders::{self, BuildingLeaders, BuildingSign, NewLeader, Term};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_leader_sign)).routes(routes!(list_building_leaders, assign_leader))
}

/// `GET /api/buildings/{id}/leader-sign`: the sign in the stairwell — the current leaders' names
/// and published numbers, how they were chosen and their terms. Public; never a private number
/// or a login.
#[utoipa::path(get, path = "/api/buildings/{id}/leader-sign", tag = "leaders",
    params(("id" = i64, Path, description = "Building id")),
    responses((status = 200, description = "The building's current leaders as the public sign shows them", body = BuildingSign),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 404, description = "No such building", body = ErrorBody)))]
pub(crate) async fn get_leader_sign(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<BuildingSign>> {
    Ok(Json(leaders::sign(&state.pool, id).await?))
}

/// `GET /api/buildings/{id}/leaders`: every term of the building, newest first, with the private
/// fields — for planners, admins and the grid workers of the building's grid.
#[utoipa::path(get, path = "/api/buildings/{id}/leaders", tag = "leaders", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Building id")),
    responses((status = 200, description = "The building's leader state and terms, newest first", body = BuildingLeaders),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners, admins and the building's grid workers only", body = ErrorBody),
        (status = 404, description = "No such building", body = ErrorBody)))]
pub(crate) async fn list_building_leaders(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<BuildingLeaders>> {
    let me = auth.require(&[Role::GridWorker, Role::Planner, Role::Admin])?;
    let grid = leaders::building_grid(&state.pool, id).await?;
    if me.role == Role::GridWorker && !grid.is_some_and(|g| me.works_grid(g)) {
        return Err(ApiError::Forbidden("only the grid workers of the building's grid see its leaders".into()));
    }
    if matches!(me.role, Role::Planner | Role::Admin) && !leaders::in_county(&state.pool, id, me.county_id).await? {
        return Err(ApiError::not_found(format!("building {id}")));
    }
    Ok(Json(leaders::building_leaders(&state.pool, id).await?))
}

/// `POST /api/buildings/{id}/leaders` → 201 + Location: assign a leader to a building (or one of
/// its units) that has none for the term. Planners and admins.
#[utoipa::path(post, path = "/api/buildings/{id}/leaders", tag = "leaders", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Building id")),
    request_body = NewLeader,
    responses((status = 201, description = "The new term", body = Term,
            headers(("Location" = String, description = "/api/leaders/{id}"), ("ETag" = String, description = "The term's version"))),
        (status = 400, description = "Invalid field (named in `field`) or body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 404, description = "No such building (in the planner's county)", body = ErrorBody),
        (status = 409, description = "The building or unit has a leader for that time: renew or replace", body = ErrorBody)))]
pub(crate) async fn assign_leader(
    State(state): State<AppState>,
    Planner(me): Planner,
    Path(id): Path<i64>,
    Json(body): Json<NewLeader>,
) -> ApiResult<Response> {
    let term = leaders::assign(&state.pool, id, &body, &me.name, me.county_id).await?;
    state.changes().leaders_changed(term.building_id).await;
    Ok(etag::created(&format!("/api/leaders/{}", term.id), term.version, term))
}
