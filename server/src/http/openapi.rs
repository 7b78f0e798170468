//! `GET /api/openapi.json` (utoipa) and Swagger UI at `/api/docs` (vendored: no CDN).
//!
//! Each operation is documented on its handler, next to the code whose statuses and bodies it
//! describes; this file lists them and owns the shared error body.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;
use super::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(title = "gridmap API", description = "Grid governance map service for Yiyuan county: mobile-probe reports, workflow, points."),
    paths(
        super::auth::login, super::auth::logout,
        super::reports::list_categories, super::reports::create_report, super::reports::create_reports_batch,
        super::reports::list_reports, super::reports::get_report, super::reports::create_transition, super::reports::get_photo,
        super::reports::get_feedback_photo,
        super::reports::hexbins, super::reports::stream,
        super::stats::get_stats, super::points::get_my_points, super::points::get_leaderboard,
        super::stations::list_stations, super::stations::nearest_stations, super::stations::get_station,
        super::grids::grid_at, super::grids::get_gaps, super::grids::get_balance, super::grids::get_history,
        super::grids::revert_grid, super::grids::split_grid, super::grids::preview_grid, super::grids::merge_grids,
        super::counties::list_counties,
        super::admin::list_accounts, super::admin::create_account, super::admin::get_account,
        super::admin::update_account, super::admin::assign_grids, super::admin::revoke_tokens,
        super::api_keys::list_api_keys, super::api_keys::create_api_key, super::api_keys::revoke_api_key,
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
