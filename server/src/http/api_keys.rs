//! `/api/admin/api-keys`: static per-client API keys (see `crate::api_keys`) — an admin issues
//! one per integration (a `FixMyStreet` instance, a planner's desktop GIS), sees when each was
//! last used, and revokes it. The key is in the creation response only. Admins only.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path};
use super::principal::Admin;
use crate::api_keys::{self, ActsFor, ApiKeyView, CreatedKey, KeyError, Scope};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_api_keys, create_api_key)).routes(routes!(revoke_api_key))
}

/// A new key: its name, the account it acts for (default: an account of its own), its scopes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// The client's name, e.g. `fixmystreet-zibo` (2–64 letters, digits, `_ . @ -`).
    pub name: String,
    /// An existing account the key acts for; absent: a new resident account named like the key,
    /// which cannot log in.
    pub account_id: Option<i64>,
    /// Default `["open311"]`.
    pub scopes: Option<Vec<Scope>>,
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::BadName => ApiError::field("name", err.to_string()),
            KeyError::NoScope => ApiError::field("scopes", err.to_string()),
            KeyError::NoAccount(_) => ApiError::field("account_id", err.to_string()),
            KeyError::NameTaken(_) | KeyError::AccountNameTaken(_) => ApiError::Conflict(err.to_string()),
            KeyError::Database(e) => e.into(),
        }
    }
}

/// `GET /api/admin/api-keys`: every key, newest first (never the secret).
#[utoipa::path(get, path = "/api/admin/api-keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Every key, newest first", body = [ApiKeyView]),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody)))]
pub(crate) async fn list_api_keys(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Vec<ApiKeyView>>> {
    Ok(Json(api_keys::list(&state.pool).await?))
}

/// `POST /api/admin/api-keys` → 201 with the key, shown this once.
#[utoipa::path(post, path = "/api/admin/api-keys", tag = "admin", security(("bearer" = [])),
    request_body = NewApiKey,
    responses((status = 201, description = "Created; `key` is shown only now", body = CreatedKey),
        (status = 400, description = "Invalid field (named in `field`) or body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 409, description = "A key with this name exists, or a person's account has the name", body = ErrorBody)))]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    _: Admin,
    Json(body): Json<NewApiKey>,
) -> ApiResult<Response> {
    let acts_for = body.account_id.map_or(ActsFor::Own, ActsFor::Id);
    let scopes = body.scopes.unwrap_or_else(|| vec![Scope::Open311]);
    let created = api_keys::create(&state.pool, &body.name, acts_for, &scopes).await?;
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    // The only response that carries the secret: no cache may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /api/admin/api-keys/{id}/revoke`: the key stops working on the next request.
#[utoipa::path(post, path = "/api/admin/api-keys/{id}/revoke", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, description = "Revoked (the first revocation time is kept)", body = ApiKeyView),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody)))]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<ApiKeyView>> {
    api_keys::revoke(&state.pool, id).await?.map(Json).ok_or_else(|| ApiError::not_found(format!("api key {id}")))
}
