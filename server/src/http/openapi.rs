//! `GET /api/openapi.json` (utoipa) and Swagger UI at `/api/docs` (vendored: no CDN).

use axum::Router;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;

/// Every error response: a stable machine-readable `code`, a human `message`, and the
/// offending `field` for validation errors.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// e.g. `invalid_field`, `conflict`, `precondition_failed`.
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginBody {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginReply {
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// `resident`, `rider`, `grid_worker`, `planner` or `admin`
    pub role: String,
}

/// Log in for a bearer token (implemented in `http::auth`).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = LoginReply), (status = 401, body = ErrorBody), (status = 400, body = ErrorBody)))]
#[allow(dead_code)]
fn login_doc() {}

/// Revoke the token sent (implemented in `http::auth`).
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses((status = 204, description = "Logged out"), (status = 401, body = ErrorBody)))]
#[allow(dead_code)]
fn logout_doc() {}

/// Documentation-only operations for routes whose handlers return JSON built elsewhere
/// (stations, grids, admin): same paths, statuses and error body as the handlers.
macro_rules! doc_op {
    ($name:ident, $method:ident, $path:literal, $tag:literal, $summary:literal, [$ok:literal => $okdesc:literal $(, $status:literal => $desc:literal)*]) => {
        #[doc = $summary]
        #[utoipa::path($method, path = $path, tag = $tag,
            responses((status = $ok, description = $okdesc, content_type = "application/json") $(, (status = $status, description = $desc, body = ErrorBody))*))]
        #[allow(dead_code)]
        fn $name() {}
    };
}

doc_op!(stations_doc, get, "/api/stations", "stations", "The 48 warm-\"new\" stations, or those matching `q`.", [200 => "stations (array)", 400 => "q too long"]);
doc_op!(stations_nearest_doc, get, "/api/stations/nearest", "stations", "Stations nearest to `lon`,`lat` (WGS84), with distance in metres; `limit` ≤ 50.", [200 => "stations by distance", 400 => "bad coordinates or limit"]);
doc_op!(station_doc, get, "/api/stations/{id}", "stations", "One station.", [200 => "the station", 404 => "no such station"]);
doc_op!(grid_at_doc, get, "/api/grids/at", "grids", "The grid covering `lon`,`lat` with its community and published workers.", [200 => "the grid", 400 => "bad coordinates", 404 => "in no grid"]);
doc_op!(grid_gaps_doc, get, "/api/grids/gaps", "grids", "Holes in the partition inside the urban area (GeoJSON).", [200 => "gaps", 400 => "bad parameters"]);
doc_op!(grid_balance_doc, get, "/api/grids/balance", "grids", "Grids outside the household band (default 200–400) with their neighbours.", [200 => "unbalanced grids", 400 => "bad band"]);
doc_op!(grid_history_doc, get, "/api/grids/{id}/history", "grids", "Every version of a grid: author, reason, time, geometry.", [200 => "versions", 404 => "no such grid"]);
doc_op!(grid_revert_doc, post, "/api/grids/{id}/revert", "grids", "Revert a grid to a version (planners; If-Match).", [200 => "the grid after revert", 401 => "login", 403 => "planners only", 412 => "stale If-Match", 422 => "overlaps"]);
doc_op!(grid_split_doc, post, "/api/grids/{id}/split", "grids", "Split a grid by a line (planners; If-Match).", [200 => "the two grids", 401 => "login", 403 => "planners only", 422 => "the line does not split it"]);
doc_op!(grid_merge_doc, post, "/api/grids/merge", "grids", "Merge adjacent grids (planners; each with its If-Match version).", [200 => "the merged grid", 401 => "login", 403 => "planners only", 412 => "stale version", 422 => "not adjacent"]);
doc_op!(admin_accounts_doc, get, "/api/admin/accounts", "admin", "Every account (admins).", [200 => "accounts", 401 => "login", 403 => "admins only"]);
doc_op!(admin_create_doc, post, "/api/admin/accounts", "admin", "Add an account: name, role, password, display name, phones, `grid_ids` (admins).", [201 => "created; Location", 400 => "invalid field", 409 => "name taken"]);
doc_op!(admin_account_doc, get, "/api/admin/accounts/{id}", "admin", "One account (admins).", [200 => "the account", 404 => "no such account"]);
doc_op!(admin_update_doc, patch, "/api/admin/accounts/{id}", "admin", "Disable/enable, change role, reset password, phones (admins); disabling revokes every login.", [200 => "the account", 400 => "invalid field", 404 => "no such account", 409 => "not on your own account"]);
doc_op!(admin_grids_doc, put, "/api/admin/accounts/{id}/grids", "admin", "The grids this worker works (replaces the list; admins).", [200 => "the account", 400 => "unknown grid", 404 => "no such account"]);
doc_op!(admin_revoke_doc, post, "/api/admin/accounts/{id}/revoke-tokens", "admin", "Log the account out everywhere (admins).", [200 => "number revoked", 404 => "no such account"]);

#[derive(OpenApi)]
#[openapi(
    info(title = "gridmap API", description = "Grid governance map service for Yiyuan county: mobile-probe reports, workflow, points."),
    paths(
        login_doc, logout_doc,
        super::reports::list_categories, super::reports::create_report, super::reports::create_reports_batch,
        super::reports::list_reports, super::reports::get_report, super::reports::create_transition,
        super::reports::hexbins, super::reports::stream,
        super::stats::get_stats, super::points::get_my_points, super::points::get_leaderboard,
        stations_doc, stations_nearest_doc, station_doc, grid_at_doc, grid_gaps_doc, grid_balance_doc,
        grid_history_doc, grid_revert_doc, grid_split_doc, grid_merge_doc,
        admin_accounts_doc, admin_create_doc, admin_account_doc, admin_update_doc, admin_grids_doc, admin_revoke_doc,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", ApiDoc::openapi()))
}
