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
        super::stations::check_in, super::stations::station_visits, super::stations::county_visits, super::stations::station_qr,
        super::suggestions::create_suggestion, super::suggestions::list_suggestions, super::suggestions::answer_suggestion,
        super::grids::grid_at, super::grids::get_gaps, super::grids::get_balance, super::grids::get_history,
        super::grids::revert_grid, super::grids::split_grid, super::grids::preview_grid, super::grids::merge_grids,
        super::counties::list_counties,
        super::admin::list_accounts, super::admin::create_account, super::admin::get_account,
        super::admin::update_account, super::admin::assign_grids, super::admin::revoke_tokens,
        super::buildings::get_leader_sign, super::buildings::list_building_leaders, super::buildings::assign_leader,
        super::leaders::get_coverage, super::leaders::get_my_buildings, super::leaders::get_term,
        super::leaders::renew_term, super::leaders::replace_leader, super::leaders::end_term,
        super::api_keys::list_api_keys, super::api_keys::create_api_key, super::api_keys::revoke_api_key,
        super::rounds::list_rounds, super::rounds::open_round, super::rounds::get_round,
        super::rounds::list_round_buildings, super::rounds::list_visits, super::rounds::record_visit,
        super::rounds::close_round,
        super::sentiment::list_tags, super::sentiment::list_entries, super::sentiment::create_entry,
        super::sentiment::entry_to_report,
        super::points::get_rules, super::points::get_rule, super::points::update_rule, super::points::get_rankings, super::points::list_items, super::points::get_item,
        super::points::create_item, super::points::update_item, super::points::redeem, super::points::list_redemptions,
        super::points::get_redemption, super::points::hand_over, super::points::cancel_redemption,
        super::wishes::list_wish_categories, super::wishes::list_wishes, super::wishes::create_wish,
        super::wishes::list_my_wishes, super::wishes::get_wish, super::wishes::create_wish_transition,
        super::wishes::get_wish_stats, super::wishes::get_open_counts, super::wishes::attach_wish_photo,
        super::wishes::get_wish_photo,
        super::emergency::list_episodes, super::emergency::start_episode, super::emergency::get_episode,
        super::emergency::end_episode, super::emergency::get_episode_history, super::emergency::create_checkin,
        super::emergency::get_episode_grid, super::emergency::create_task, super::emergency::finish_task,
        super::emergency::get_my_episodes, super::emergency::list_members, super::emergency::create_member,
        super::emergency::list_squads, super::emergency::create_squad, super::emergency::list_areas,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth, &CommonResponses),
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

/// The statuses that the shared layers give, on every operation where they can occur, so the
/// document says what the server does (a schema fuzzer, bench/schemathesis.sh, checks every
/// status it meets against it): 400 for a parameter or body that does not parse
/// (`extract.rs`), 413/415 for a body too large or of another type (`input.rs`), 401 where a
/// login is asked for, 429 on the rate-limited classes (`limits::classify`, the one rule), and
/// 503 when the database is away or a statement times out (`error.rs`).
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::Operation;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                    )
                    .build(),
            )
        };
        let add = |op: &mut Operation, status: &str, description: &str| {
            op.responses.responses.entry(status.to_string()).or_insert_with(|| error(description));
        };
        for (path, item) in &mut openapi.paths.paths {
            // A concrete path of the template for the limiter's rule (`{id}` → `0`).
            let concrete =
                path.split('/').map(|s| if s.starts_with('{') { "0" } else { s }).collect::<Vec<_>>().join("/");
            let methods = [
                (axum::http::Method::GET, item.get.as_mut()),
                (axum::http::Method::POST, item.post.as_mut()),
                (axum::http::Method::PUT, item.put.as_mut()),
                (axum::http::Method::PATCH, item.patch.as_mut()),
                (axum::http::Method::DELETE, item.delete.as_mut()),
            ];
            for (method, op) in methods {
                let Some(op) = op else { continue };
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some() {
                    add(op, "400", "a parameter or the body does not parse or breaks a rule; `field` names it");
                }
                if op.request_body.is_some() {
                    add(op, "413", "the body is larger than this operation accepts");
                    add(op, "415", "the body is not of a content type this operation accepts");
                }
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add(op, "401", "no login, or one that has expired or was revoked");
                }
                if super::limits::classify(&method, &concrete) != super::limits::Class::Other {
                    add(
                        op,
                        "429",
                        "over the rate limit for this account or address; `Retry-After` says when to try again",
                    );
                }
                add(
                    op,
                    "503",
                    "the database is unavailable or the statement took too long; `Retry-After` says when to try again",
                );
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", ApiDoc::openapi()))
}
