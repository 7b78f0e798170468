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

#[derive(OpenApi)]
#[openapi(
    info(title = "gridmap API", description = "Grid governance map service for Yiyuan county: mobile-probe reports, workflow, points."),
    paths(
        login_doc, logout_doc,
        super::reports::list_categories, super::reports::create_report, super::reports::create_reports_batch,
        super::reports::list_reports, super::reports::get_report, super::reports::create_transition,
        super::reports::hexbins, super::reports::stream,
        super::stats::get_stats, super::points::get_my_points, super::points::get_leaderboard,
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
