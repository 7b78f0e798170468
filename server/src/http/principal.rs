//! Who is asking: the extractors handlers use (`Auth` when a login is required, `MaybeAuth`
//! when it is optional, `Admin` / `Planner` when a role is), and the bearer token itself.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::auth::{Principal, Role};

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

/// Field work (door-knocking rounds, the sentiment log): a planner's or admin's login, or one of
/// an account that works a grid (grid workers, part-time rider workers) — `crate::rounds::Reach`.
/// Checked before the body is read, like the role extractors.
pub struct FieldWork(pub Principal);

impl FromRequestParts<AppState> for FieldWork {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        crate::rounds::Reach::of(&auth.0).map_err(|e| ApiError::Forbidden(e.to_string()))?;
        Ok(Self(auth.0))
    }
}
role_extractor!(BuildingLeader, "A red building leader's login.", [Role::BuildingLeader]);
role_extractor!(RiderLogin, "A rider's login (a station check-in).", [Role::Rider]);
role_extractor!(
    Answerer,
    "A login that may answer suggestions: a station host, a planner or an admin.",
    [Role::StationHost, Role::Planner, Role::Admin]
);
