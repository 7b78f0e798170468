//! `/api/auth/*`: log in for a bearer token, log out; and the extractors handlers use to know
//! who is asking (`Auth` when a login is required, `MaybeAuth` when it is optional).

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Json;
use super::openapi::ErrorBody;
use crate::auth::{self, Principal, Role};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/auth/login", post(login)).route("/api/auth/logout", post(logout))
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
            let grid_ids =
                state.tokens.authenticate(&state.pool, &l.token).await?.map(|p| p.grid_ids).unwrap_or_default();
            Ok(Json(LoginResponse { token: l.token, expires_at: l.expires_at, role: l.role, grid_ids }))
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

/// The raw bearer token of a request.
pub struct BearerToken(pub String);

/// The bearer token of a request, if it carries a well-formed one (the rate limiter's lookup;
/// a malformed header is the handler's 401 to give).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim().to_string())
}

fn bearer(parts: &Parts) -> Result<Option<String>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim().to_string()))
        }
        _ => Err(ApiError::Unauthorized("expected `Authorization: Bearer <token>`".into())),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        bearer(parts)?.map(Self).ok_or_else(|| ApiError::Unauthorized("login required".into()))
    }
}

/// A logged-in account; 401 JSON without a valid token.
pub struct Auth(pub Principal);

/// The account if a token was sent; a token that is sent but invalid is still a 401, so a
/// client with an expired login learns it instead of silently acting anonymously.
pub struct MaybeAuth(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Self(Some(principal.clone())));
        }
        let Some(token) = bearer(parts)? else { return Ok(Self(None)) };
        let principal = state
            .tokens
            .authenticate(&state.pool, &token)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the login has expired or was revoked; log in again".into()))?;
        parts.extensions.insert(principal.clone());
        Ok(Self(Some(principal)))
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        MaybeAuth::from_request_parts(parts, state)
            .await?
            .0
            .map(Self)
            .ok_or_else(|| ApiError::Unauthorized("login required".into()))
    }
}

impl Auth {
    /// 403 unless the account has one of these roles.
    pub fn require(&self, roles: &[Role]) -> Result<&Principal, ApiError> {
        if roles.contains(&self.0.role) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the role {}",
                roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ")
            )))
        }
    }
}

/// Role checks as extractors, so that they run before the body is read: a caller without the
/// role gets 403 whatever body they sent (not a 400 that tells them about the body's shape).
macro_rules! role_extractor {
    ($name:ident, $doc:literal, [$($role:expr),+]) => {
        #[doc = $doc]
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                let auth = Auth::from_request_parts(parts, state).await?;
                auth.require(&[$($role),+])?;
                Ok(Self(auth.0))
            }
        }
    };
}

role_extractor!(Admin, "An admin's login.", [Role::Admin]);
role_extractor!(Planner, "A planner's (or an admin's) login.", [Role::Planner, Role::Admin]);
