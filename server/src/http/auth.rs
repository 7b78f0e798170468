//! `/api/auth/*`: log in for a bearer token, log out. Who is asking, for every handler, is
//! `principal.rs`'s to say.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::extract::Json;
use super::principal::{Auth, BearerToken};
use crate::auth::{self, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(logout))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub role: Role,
    /// The grids this account works (grid workers and part-time rider workers), so a worker's
    /// view can open on its own grid; empty for everyone else.
    pub grid_ids: Vec<i64>,
    /// The station a station host keeps (hosts only), so the host's view opens on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub station_id: Option<i64>,
    /// The account's county (`GET /api/counties` ids): a county-scoped planner's or admin's
    /// scope, so the web map opens their county's statistics. Absent: every county.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub county_id: Option<i64>,
}

/// Log in for a bearer token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Invalid name or password (one answer for every cause)", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 429, description = "Too many attempts for this name or address; `Retry-After` says when to try again", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds")))))]
pub(crate) async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: axum::http::HeaderMap,
    Json(body): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    if body.name.len() > 64 || body.password.len() > 1024 {
        return Err(ApiError::Unauthorized("invalid name or password".into()));
    }
    let ip = state.limits.client_ip(&extensions, &headers);
    state.limits.check_login(&body.name, ip)?;
    let outcome = auth::login(&state.pool, &body.name, &body.password).await?;
    // Failures are what the throttle counts: a right password never locks anyone out.
    if outcome.is_some() {
        state.limits.login_succeeded(&body.name, ip);
    } else {
        state.limits.login_failed(&body.name, ip);
    }
    match outcome {
        Some(l) => {
            let principal = state.tokens.authenticate(&state.pool, &l.token).await?;
            let station_id = match &principal {
                Some(p) => crate::station_visits::hosted_station(&state.pool, p).await?,
                None => None,
            };
            let county_id = principal.as_ref().and_then(|p| p.county_id);
            let grid_ids = principal.map(|p| p.grid_ids).unwrap_or_default();
            Ok(Json(LoginResponse {
                token: l.token,
                expires_at: l.expires_at,
                role: l.role,
                grid_ids,
                station_id,
                county_id,
            }))
        }
        // One answer for unknown names, wrong passwords and disabled accounts: no enumeration.
        None => Err(ApiError::Unauthorized("invalid name or password".into())),
    }
}

/// Revoke the token sent.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Logged out"), (status = 401, description = "No valid login", body = ErrorBody)))]
pub(crate) async fn logout(State(state): State<AppState>, _: Auth, parts: BearerToken) -> ApiResult<StatusCode> {
    auth::revoke(&state.pool, &state.tokens, &parts.0).await?;
    Ok(StatusCode::NO_CONTENT)
}
