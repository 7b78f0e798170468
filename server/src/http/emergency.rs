//! `/api/emergency…`: emergency mode (平急融合, "一键启动", issue 24 §2) — switching an area into
//! emergency mode and back (admins, `If-Match` on the end), the public list of episodes with
//! counts per grid, a grid's volunteers, check-ins and tasks for its workers, a member's own
//! episode, the history, and the member registry and squads for staff. The rules are in
//! `crate::emergency`; each change is announced on the live feed (`event: emergency`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::etag;
use super::extract::{Json, Path, Query, county_param, typed_body};
use super::principal::{Auth, MaybeAuth};
use crate::emergency::{
    self, Area, CheckIn, CheckInView, EmergencyError, EndEpisode, EpisodeView, EventView, GridView, MemberView, Mine,
    NewMember, NewSquad, NewTask, Notice, SquadView, StartEpisode, TaskView,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_episodes, start_episode))
        .routes(routes!(get_my_episodes))
        .routes(routes!(list_areas))
        .routes(routes!(list_members, create_member))
        .routes(routes!(list_squads, create_squad))
        .routes(routes!(get_episode))
        .routes(routes!(end_episode))
        .routes(routes!(get_episode_history))
        .routes(routes!(create_checkin))
        .routes(routes!(get_episode_grid))
        .routes(routes!(create_task))
        .routes(routes!(finish_task))
}

impl From<EmergencyError> for ApiError {
    fn from(err: EmergencyError) -> Self {
        match err {
            EmergencyError::NotFound(what) => ApiError::not_found(what),
            EmergencyError::Field { field, message, reason } => ApiError::field(field, message).with_reason(reason),
            EmergencyError::Forbidden { message, reason } => ApiError::Forbidden(message).with_reason(reason),
            EmergencyError::Unprocessable { field, message, reason } => ApiError::Unprocessable {
                message: format!("{field}: {message}"),
                details: serde_json::json!({ "field": field }),
            }
            .with_reason(reason),
            e @ EmergencyError::VersionRequired => {
                ApiError::PreconditionRequired(e.to_string()).with_reason("version_required")
            }
            e @ EmergencyError::Stale { .. } => {
                ApiError::PreconditionFailed(e.to_string()).with_reason("stale_version")
            }
            EmergencyError::Conflict { reason, message } => ApiError::Conflict(message).with_reason(reason),
            EmergencyError::Database(e) => ApiError::Database(e),
        }
    }
}

/// After a committed change: the emergency tiles and the live feed (`crate::changes`).
async fn announce(state: &AppState, notice: &Notice) {
    state.changes().emergency_changed(notice).await;
}

/// Query string of `GET /api/emergency`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListEpisodesQuery {
    /// `true`: active episodes only; `false`: ended ones only; absent: all.
    pub active: Option<bool>,
    /// A county's code (e.g. `370323`).
    pub county: Option<String>,
}

/// `GET /api/emergency`: the episodes, newest first — area, reason, times and counts (public;
/// who started or ended one only to staff).
#[utoipa::path(get, path = "/api/emergency", tag = "emergency", params(ListEpisodesQuery),
    responses((status = 200, description = "Episodes as the viewer may see them", body = [EpisodeView]),
        (status = 400, description = "A parameter does not parse, or `county` names no county", body = ErrorBody)))]
pub async fn list_episodes(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Query(q): Query<ListEpisodesQuery>,
) -> ApiResult<Json<Vec<EpisodeView>>> {
    let county = county_param(&state.pool, q.county.as_deref()).await?;
    let filter = emergency::ListFilter { active: q.active, county };
    Ok(Json(emergency::list(&state.pool, filter, viewer.as_ref()).await?))
}

/// `POST /api/emergency` → 201: switch a county, subdistrict or community into emergency mode
/// ("一键启动"). Every registered member living there is mobilised as a volunteer of their
/// residence grid, and every grid of the area gets its task list, in one transaction. Admins
/// only (a county-scoped admin in their county).
#[utoipa::path(post, path = "/api/emergency", tag = "emergency", request_body = StartEpisode, security(("bearer" = [])),
    responses((status = 201, description = "Started", body = EpisodeView,
            headers(("Location" = String, description = "/api/emergency/{id}"), ("ETag" = String, description = "Its version"))),
        (status = 400, description = "Invalid field (`field`, `reason`) or body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not an admin (`role_cannot_act`), or another county's (`not_your_county`)", body = ErrorBody),
        (status = 409, description = "The area is in emergency mode already (`episode_active`) or overlaps an area that is (`episode_overlaps`)", body = ErrorBody),
        (status = 422, description = "No such area (`no_such_area`)", body = ErrorBody)))]
pub async fn start_episode(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    emergency::must_be_admin(&actor)?;
    let body: StartEpisode = typed_body(&body)?;
    let (view, notice) = emergency::start(&state.pool, &actor, &body).await?;
    announce(&state, &notice).await;
    Ok(etag::created(&format!("/api/emergency/{}", view.id), view.version, view))
}

/// `GET /api/emergency/{id}`: one episode with its counts per grid (public), with its ETag.
#[utoipa::path(get, path = "/api/emergency/{id}", tag = "emergency", params(("id" = i64, Path, description = "Episode id")),
    responses((status = 200, description = "The episode", body = EpisodeView, headers(("ETag" = String, description = "Its version"))),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 404, description = "No such episode", body = ErrorBody)))]
pub async fn get_episode(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let view = emergency::get(&state.pool, id, viewer.as_ref()).await?;
    Ok(etag::tagged(StatusCode::OK, view.version, view))
}

/// `POST /api/emergency/{id}/end`: end an episode with a reason; every member is released
/// (back to normal) in the same transaction. Admins; `If-Match` with the episode's ETag.
#[utoipa::path(post, path = "/api/emergency/{id}/end", tag = "emergency", request_body = EndEpisode,
    params(("id" = i64, Path, description = "Episode id"), ("If-Match" = String, Header, description = "The episode's ETag")),
    security(("bearer" = [])),
    responses((status = 200, description = "Ended", body = EpisodeView, headers(("ETag" = String, description = "Its new version"))),
        (status = 400, description = "Reason missing or too long", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not an admin, or another county's", body = ErrorBody),
        (status = 404, description = "No such episode", body = ErrorBody),
        (status = 409, description = "Ended already (`episode_ended`)", body = ErrorBody),
        (status = 412, description = "Stale If-Match", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
pub async fn end_episode(
    State(state): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    emergency::must_be_admin(&actor)?;
    let body: EndEpisode = typed_body(&body)?;
    let if_match = etag::if_match_version(&headers)?;
    let (view, notice) = emergency::end(&state.pool, id, &actor, if_match, &body).await?;
    announce(&state, &notice).await;
    Ok(etag::tagged(StatusCode::OK, view.version, view))
}

/// Query string of `GET /api/emergency/{id}/history`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only this member's rows.
    pub member: Option<i64>,
}

/// `GET /api/emergency/{id}/history`: every state change of the episode, oldest first —
/// started, mobilised, checked in, tasks added and done, ended, released (planners and admins).
#[utoipa::path(get, path = "/api/emergency/{id}/history", tag = "emergency", params(("id" = i64, Path, description = "Episode id"), HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The history", body = [EventView]),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not a planner or admin of its county", body = ErrorBody),
        (status = 404, description = "No such episode", body = ErrorBody)))]
pub async fn get_episode_history(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<EventView>>> {
    if !matches!(actor.role, crate::auth::Role::Admin | crate::auth::Role::Planner) {
        return Err(ApiError::Forbidden("an episode's history is for planners and admins".into())
            .with_reason("role_cannot_act"));
    }
    Ok(Json(emergency::history(&state.pool, id, &actor, q.member).await?))
}

/// `POST /api/emergency/{id}/checkins` → 201: a member checks in with their residence grid
/// (`{}`), or a grid worker (an admin) records a member's check-in (`{"member_id": …}`). Once
/// per member and episode; a member with a login earns `emergency_checkin` once per episode.
#[utoipa::path(post, path = "/api/emergency/{id}/checkins", tag = "emergency", request_body = CheckIn,
    params(("id" = i64, Path, description = "Episode id")), security(("bearer" = [])),
    responses((status = 201, description = "Checked in", body = CheckInView),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not a registered member (`not_a_member`), or not the member's grid (`not_your_grid`)", body = ErrorBody),
        (status = 404, description = "No such episode", body = ErrorBody),
        (status = 409, description = "Checked in already (`already_checked_in`) or the episode ended (`episode_ended`)", body = ErrorBody),
        (status = 422, description = "The member was not mobilised by this episode (`not_mobilised`)", body = ErrorBody)))]
pub async fn create_checkin(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    let body: CheckIn = typed_body(&body)?;
    let (view, notice) = emergency::check_in(&state.pool, id, &actor, &body).await?;
    announce(&state, &notice).await;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /api/emergency/{id}/grids/{grid}`: a grid in an episode — its volunteers with their
/// check-ins (names, phones, skills: private), its tasks and its coverage. The grid's workers,
/// planners and admins.
#[utoipa::path(get, path = "/api/emergency/{id}/grids/{grid}", tag = "emergency",
    params(("id" = i64, Path, description = "Episode id"), ("grid" = i64, Path, description = "Grid id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The grid in the episode", body = GridView),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not the grid's worker, a planner or an admin", body = ErrorBody),
        (status = 404, description = "No such episode, or the grid is not in it", body = ErrorBody)))]
pub async fn get_episode_grid(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, grid)): Path<(i64, i64)>,
) -> ApiResult<Json<GridView>> {
    Ok(Json(emergency::grid(&state.pool, id, grid, &actor).await?))
}

/// `POST /api/emergency/{id}/grids/{grid}/tasks` → 201: add a task to a grid's list (its
/// workers, admins; while the episode is active).
#[utoipa::path(post, path = "/api/emergency/{id}/grids/{grid}/tasks", tag = "emergency", request_body = NewTask,
    params(("id" = i64, Path, description = "Episode id"), ("grid" = i64, Path, description = "Grid id")),
    security(("bearer" = [])),
    responses((status = 201, description = "Added", body = TaskView),
        (status = 400, description = "Title missing or too long", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not the grid's worker or an admin", body = ErrorBody),
        (status = 404, description = "No such episode, or the grid is not in it", body = ErrorBody),
        (status = 409, description = "The episode ended (`episode_ended`)", body = ErrorBody)))]
pub async fn create_task(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, grid)): Path<(i64, i64)>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    if !matches!(actor.role, crate::auth::Role::Admin | crate::auth::Role::GridWorker) {
        return Err(ApiError::Forbidden("the grid's workers and admins edit its task list".into())
            .with_reason("role_cannot_act"));
    }
    let body: NewTask = typed_body(&body)?;
    let (task, notice) = emergency::add_task(&state.pool, id, grid, &actor, &body).await?;
    announce(&state, &notice).await;
    Ok((StatusCode::CREATED, Json(task)).into_response())
}

/// `POST /api/emergency/{id}/tasks/{task}/done`: mark a task done (its grid's workers, admins).
#[utoipa::path(post, path = "/api/emergency/{id}/tasks/{task}/done", tag = "emergency",
    params(("id" = i64, Path, description = "Episode id"), ("task" = i64, Path, description = "Task id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Done", body = TaskView),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not the grid's worker or an admin", body = ErrorBody),
        (status = 404, description = "No such episode or task", body = ErrorBody),
        (status = 409, description = "Done already (`task_done`) or the episode ended (`episode_ended`)", body = ErrorBody)))]
pub async fn finish_task(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, task)): Path<(i64, i64)>,
) -> ApiResult<Json<TaskView>> {
    let (task, notice) = emergency::finish_task(&state.pool, id, task, &actor).await?;
    announce(&state, &notice).await;
    Ok(Json(task))
}

/// `GET /api/emergency/mine`: the signed-in member's active episodes — their grid, their
/// check-in and the grid's task list (empty for a login that is no registered member).
#[utoipa::path(get, path = "/api/emergency/mine", tag = "emergency", security(("bearer" = [])),
    responses((status = 200, description = "The viewer's episodes", body = Mine),
        (status = 401, description = "Login required", body = ErrorBody)))]
pub async fn get_my_episodes(State(state): State<AppState>, Auth(me): Auth) -> ApiResult<Json<Mine>> {
    Ok(Json(emergency::mine(&state.pool, &me).await?))
}

/// Query string of the registry and squads.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GridQuery {
    /// One grid (a grid worker: one of theirs; default: all of theirs).
    pub grid: Option<i64>,
}

/// `GET /api/emergency/members`: the registry of members (居住地报到党员) with their residence
/// grid, skills, availability and squad (grid workers: their grids; planners and admins: their
/// county or all).
#[utoipa::path(get, path = "/api/emergency/members", tag = "emergency", params(GridQuery), security(("bearer" = [])),
    responses((status = 200, description = "Members", body = [MemberView]),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not staff, or another grid", body = ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<GridQuery>,
) -> ApiResult<Json<Vec<MemberView>>> {
    Ok(Json(emergency::members(&state.pool, &actor, q.grid).await?))
}

/// `POST /api/emergency/members` → 201: register a member at their residence building
/// (planners and admins; a grid worker for a building of their grid).
#[utoipa::path(post, path = "/api/emergency/members", tag = "emergency", request_body = NewMember, security(("bearer" = [])),
    responses((status = 201, description = "Registered", body = MemberView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not staff, or another grid's building", body = ErrorBody),
        (status = 409, description = "The login is another member's (`account_linked`)", body = ErrorBody),
        (status = 422, description = "No such building or account", body = ErrorBody)))]
pub async fn create_member(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    emergency::must_be_staff(&actor)?;
    let body: NewMember = typed_body(&body)?;
    let member = emergency::add_member(&state.pool, &actor, &body).await?;
    Ok((StatusCode::CREATED, Json(member)).into_response())
}

/// `GET /api/emergency/squads`: squads (编队分组) per grid with their leader and members.
#[utoipa::path(get, path = "/api/emergency/squads", tag = "emergency", params(GridQuery), security(("bearer" = [])),
    responses((status = 200, description = "Squads", body = [SquadView]),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not staff, or another grid", body = ErrorBody)))]
pub async fn list_squads(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<GridQuery>,
) -> ApiResult<Json<Vec<SquadView>>> {
    Ok(Json(emergency::squads(&state.pool, &actor, q.grid).await?))
}

/// `POST /api/emergency/squads` → 201: form a squad of a grid's members with a leader.
#[utoipa::path(post, path = "/api/emergency/squads", tag = "emergency", request_body = NewSquad, security(("bearer" = [])),
    responses((status = 201, description = "Formed", body = SquadView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not staff, or another grid", body = ErrorBody),
        (status = 409, description = "The grid has a squad of that name (`squad_exists`)", body = ErrorBody),
        (status = 422, description = "No such grid, or a member lives elsewhere", body = ErrorBody)))]
pub async fn create_squad(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    emergency::must_be_staff(&actor)?;
    let body: NewSquad = typed_body(&body)?;
    let squad = emergency::add_squad(&state.pool, &actor, &body).await?;
    Ok((StatusCode::CREATED, Json(squad)).into_response())
}

/// `GET /api/emergency/areas`: every county, subdistrict and community (kind, id, name,
/// parent), each with the active episode covering it — the admin's picker (public).
#[utoipa::path(get, path = "/api/emergency/areas", tag = "emergency",
    responses((status = 200, description = "Areas, counties first", body = [Area])))]
pub async fn list_areas(State(state): State<AppState>) -> ApiResult<Json<Vec<Area>>> {
    Ok(Json(emergency::areas(&state.pool).await?))
}
