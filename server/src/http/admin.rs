//! `/api/admin/*`: what a county's system administrator does with accounts — add riders, grid
//! workers and planners, disable and re-enable them, reset passwords, assign workers to grids,
//! revoke logins. Admins only. Disabling an account revokes every token it holds at once, so a
//! lost phone or a departed worker stops working on the next request, not when the token expires.
//!
//! A county-scoped admin (`account.county_id`, migration 0028) manages only their county's
//! accounts: others do not exist for them (404, never listed), what they create belongs to their
//! county, and the grids they assign must be their county's.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::error::{ApiError, ApiResult, on_constraint};
use super::extract::{Json, Path};
use super::principal::Admin;
use crate::accounts;
use crate::auth::{self, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, update_account))
        .routes(routes!(assign_grids))
        .routes(routes!(revoke_tokens))
}

/// An account as an admin sees it (never the password hash).
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AccountView {
    pub id: i64,
    pub name: String,
    pub display_name: Option<String>,
    #[schema(value_type = Role)]
    pub role: String,
    /// The private phone (never published).
    pub phone: Option<String>,
    /// The number the grid's public sign shows.
    pub public_phone: Option<String>,
    pub part_time_grid_worker: bool,
    pub disabled: bool,
    /// Has a password and is not disabled.
    pub can_log_in: bool,
    /// The grids this account works, by id.
    pub grid_ids: Vec<i64>,
    /// The county whose admins manage this account; for a planner or admin, the county they are
    /// scoped to (null: every county).
    pub county_id: Option<i64>,
    /// The station a `station_host` keeps.
    pub station_id: Option<i64>,
    /// A `resident`'s home building: the building their own micro-wishes are for.
    pub building_id: Option<i64>,
    /// Unrevoked, unexpired logins.
    pub active_tokens: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const ACCOUNT_SELECT: &str = r"
select a.id, a.name, a.display_name, a.role, a.phone, a.public_phone, a.part_time_grid_worker, a.disabled,
       a.password_hash is not null and not a.disabled as can_log_in,
       array(select g.grid_id from grid_assignment g where g.account_id = a.id order by g.grid_id) as grid_ids,
       a.county_id, a.station_id, a.building_id,
       (select count(*) from session_token t where t.account_id = a.id and t.revoked_at is null and t.expires_at > now()) as active_tokens,
       a.created_at, a.updated_at
  from account a";

/// `GET /api/admin/accounts`: every account the admin manages (a county admin: their county's), by id.
#[utoipa::path(get, path = "/api/admin/accounts", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Every account the admin manages, by id", body = [AccountView]),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody)))]
pub(crate) async fn list_accounts(
    State(state): State<AppState>,
    Admin(me): Admin,
) -> ApiResult<Json<Vec<AccountView>>> {
    let rows = sqlx::query_as(&format!("{ACCOUNT_SELECT} where $1::bigint is null or a.county_id = $1 order by a.id"))
        .bind(me.county_id)
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(rows))
}

/// One account, if the admin manages it (`scope`: a county admin's county).
async fn load(pool: &sqlx::PgPool, id: i64, scope: Option<i64>) -> ApiResult<AccountView> {
    sqlx::query_as(&format!("{ACCOUNT_SELECT} where a.id = $1 and ($2::bigint is null or a.county_id = $2)"))
        .bind(id)
        .bind(scope)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("account {id}")))
}

/// 404 unless the account exists and the admin manages it (a county admin cannot tell another
/// county's accounts from missing ones).
async fn managed(pool: &sqlx::PgPool, id: i64, scope: Option<i64>) -> ApiResult<()> {
    let found: bool = sqlx::query_scalar(
        "select exists(select 1 from account where id = $1 and ($2::bigint is null or county_id = $2))",
    )
    .bind(id)
    .bind(scope)
    .fetch_one(pool)
    .await?;
    if found { Ok(()) } else { Err(ApiError::not_found(format!("account {id}"))) }
}

/// The county a new or changed account gets: a county admin's own (asking for another is
/// refused); an unscoped admin's choice, which must exist.
async fn county_for(pool: &sqlx::PgPool, me: &auth::Principal, asked: Option<i64>) -> ApiResult<Option<i64>> {
    match (me.county_id, asked) {
        (Some(mine), Some(other)) if other != mine => {
            Err(ApiError::Forbidden("a county admin manages only accounts of their own county".into()))
        }
        (Some(mine), _) => Ok(Some(mine)),
        (None, None) => Ok(None),
        (None, Some(c)) => {
            let exists: bool =
                sqlx::query_scalar("select exists(select 1 from county where id = $1)").bind(c).fetch_one(pool).await?;
            if exists { Ok(Some(c)) } else { Err(ApiError::field("county_id", "names a county that does not exist")) }
        }
    }
}

/// One account.
#[utoipa::path(get, path = "/api/admin/accounts/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    responses((status = 200, description = "The account", body = AccountView),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody)))]
pub(crate) async fn get_account(
    State(state): State<AppState>,
    Admin(me): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<AccountView>> {
    Ok(Json(load(&state.pool, id, me.county_id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountBody {
    /// Login name: letters, digits and `_ . @ -`, 2 to 64 characters.
    pub name: String,
    pub role: Role,
    /// 10 characters to 1 KiB, at least 3 different characters, not a common password, not the name (`accounts::check_password`).
    pub password: String,
    /// At most 64 characters.
    pub display_name: Option<String>,
    /// Private; at most 32 characters.
    pub phone: Option<String>,
    /// Published on the grid's sign; at most 32 characters.
    pub public_phone: Option<String>,
    /// Riders only (default false).
    #[serde(default)]
    pub part_time_grid_worker: bool,
    /// At most 50 existing grids (default none); of the account's county when it has one.
    #[serde(default)]
    pub grid_ids: Vec<i64>,
    /// The account's county (a planner or admin is scoped to it). A county admin's accounts
    /// always get the admin's county; leaving it out of an unscoped admin's request: none.
    pub county_id: Option<i64>,
    /// The station a `station_host` keeps (hosts only).
    pub station_id: Option<i64>,
    /// A `resident`'s home building (residents only).
    pub building_id: Option<i64>,
}

/// Check a new password and hash it off the async threads (argon2 takes tens of milliseconds).
async fn hashed(password: String, name: &str) -> ApiResult<String> {
    accounts::check_password(&password, name).map_err(|why| ApiError::field("password", why))?;
    Ok(tokio::task::spawn_blocking(move || accounts::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))??)
}

fn check_text(field: &str, value: Option<&str>, max_chars: usize) -> ApiResult<()> {
    if let Some(v) = value
        && (v.chars().count() > max_chars || v.chars().any(char::is_control))
    {
        return Err(ApiError::field(field, format!("at most {max_chars} characters, no control characters")));
    }
    Ok(())
}

fn account_constraint(constraint: &str) -> Option<ApiError> {
    match constraint {
        "account_name_key" => Some(ApiError::Conflict("an account with this name exists".into())),
        "account_name_format" => Some(ApiError::field("name", "letters, digits and _ . @ - only, 2 to 64 characters")),
        "account_part_time_only_riders" => Some(ApiError::field("part_time_grid_worker", "applies to riders only")),
        "grid_assignment_grid_fkey" => Some(ApiError::field("grid_ids", "names a grid that does not exist")),
        "account_station_fkey" => Some(ApiError::field("station_id", "names a station that does not exist")),
        "account_station_only_hosts" => Some(ApiError::field("station_id", "applies to station hosts only")),
        "account_building_fkey" => Some(ApiError::field("building_id", "names a building that does not exist")),
        "account_building_only_residents" => Some(ApiError::field("building_id", "applies to residents only")),
        _ => None,
    }
}

/// `POST /api/admin/accounts` → 201 + Location.
#[utoipa::path(post, path = "/api/admin/accounts", tag = "admin", security(("bearer" = [])),
    request_body = NewAccountBody,
    responses((status = 201, description = "Created", body = AccountView,
            headers(("Location" = String, description = "/api/admin/accounts/{id}"))),
        (status = 400, description = "Invalid field (named in `field`) or body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 409, description = "An account with this name exists", body = ErrorBody)))]
pub(crate) async fn create_account(
    State(state): State<AppState>,
    Admin(me): Admin,
    Json(body): Json<NewAccountBody>,
) -> ApiResult<Response> {
    check_text("display_name", body.display_name.as_deref(), 64)?;
    check_text("phone", body.phone.as_deref(), 32)?;
    check_text("public_phone", body.public_phone.as_deref(), 32)?;
    let county = county_for(&state.pool, &me, body.county_id).await?;
    let hash = hashed(body.password.clone(), &body.name).await?;
    let mut tx = state.pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        r"insert into account (name, role, password_hash, display_name, phone, public_phone, part_time_grid_worker, county_id, station_id, building_id)
          values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning id",
    )
    .bind(&body.name)
    .bind(body.role.as_str())
    .bind(&hash)
    .bind(&body.display_name)
    .bind(&body.phone)
    .bind(&body.public_phone)
    .bind(body.part_time_grid_worker)
    .bind(county)
    .bind(body.station_id)
    .bind(body.building_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| on_constraint(e, account_constraint))?;
    replace_grids(&mut tx, id, &body.grid_ids).await?;
    tx.commit().await?;
    let view = load(&state.pool, id, me.county_id).await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/api/admin/accounts/{id}"))], Json(view)).into_response())
}

/// Which grids an account works: replaced as a whole, in one transaction. An account with a
/// county works only grids of that county.
async fn replace_grids(tx: &mut sqlx::PgConnection, id: i64, grid_ids: &[i64]) -> ApiResult<()> {
    if grid_ids.len() > 50 {
        return Err(ApiError::field("grid_ids", "at most 50 grids per account"));
    }
    let foreign: Option<i64> = sqlx::query_scalar(
        r"select g.id from account a, grid g
           where a.id = $1 and a.county_id is not null and g.id = any($2::bigint[])
             and gridmap_grid_county(g.id) is distinct from a.county_id
           order by g.id limit 1",
    )
    .bind(id)
    .bind(grid_ids)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(grid) = foreign {
        return Err(ApiError::field("grid_ids", format!("grid {grid} is not in the account's county")));
    }
    sqlx::query("delete from grid_assignment where account_id = $1").bind(id).execute(&mut *tx).await?;
    sqlx::query(
        "insert into grid_assignment (account_id, grid_id) select $1, unnest($2::bigint[]) on conflict do nothing",
    )
    .bind(id)
    .bind(grid_ids)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_constraint(e, account_constraint))?;
    Ok(())
}

/// `PATCH /api/admin/accounts/{id}`: any of these; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// `true` also revokes every login.
    pub disabled: Option<bool>,
    /// A new role also revokes every login.
    pub role: Option<Role>,
    /// A new password (as for a new account) also revokes every login.
    pub password: Option<String>,
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub public_phone: Option<String>,
    pub part_time_grid_worker: Option<bool>,
    /// Move the account to another county (unscoped admins only; a county admin may only name
    /// their own).
    pub county_id: Option<i64>,
    /// The station a `station_host` keeps; a role other than `station_host` clears it.
    pub station_id: Option<i64>,
    /// A `resident`'s home building; a role other than `resident` clears it.
    pub building_id: Option<i64>,
}

/// Disable or enable, change role, reset the password, set names and phones. Disabling, a new
/// role or a new password revokes every login of the account.
#[utoipa::path(patch, path = "/api/admin/accounts/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    request_body = AccountPatch,
    responses((status = 200, description = "The account after the change", body = AccountView),
        (status = 400, description = "Invalid field (named in `field`) or body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "An admin cannot disable or demote their own account", body = ErrorBody)))]
pub(crate) async fn update_account(
    State(state): State<AppState>,
    Admin(me): Admin,
    Path(id): Path<i64>,
    Json(patch): Json<AccountPatch>,
) -> ApiResult<Json<AccountView>> {
    if id == me.account_id && (patch.disabled == Some(true) || patch.role.is_some_and(|r| r != Role::Admin)) {
        // The last admin locking themselves out would need a database shell to undo.
        return Err(ApiError::Conflict("an admin cannot disable or demote their own account".into()));
    }
    check_text("display_name", patch.display_name.as_deref(), 64)?;
    check_text("phone", patch.phone.as_deref(), 32)?;
    check_text("public_phone", patch.public_phone.as_deref(), 32)?;
    managed(&state.pool, id, me.county_id).await?;
    let county = match patch.county_id {
        Some(asked) => county_for(&state.pool, &me, Some(asked)).await?,
        None => None,
    };
    let hash = match patch.password.clone() {
        Some(password) => Some(hashed(password, "").await?),
        None => None,
    };
    let mut tx = state.pool.begin().await?;
    let updated = sqlx::query(
        r"update account set
              disabled = coalesce($2, disabled),
              role = coalesce($3, role),
              password_hash = coalesce($4, password_hash),
              display_name = coalesce($5, display_name),
              phone = coalesce($6, phone),
              public_phone = coalesce($7, public_phone),
              part_time_grid_worker = coalesce($8, part_time_grid_worker),
              county_id = coalesce($9, county_id),
              station_id = case when coalesce($3, role) = 'station_host' or $10::bigint is not null
                                then coalesce($10, station_id) end,
              building_id = case when coalesce($3, role) = 'resident' or $11::bigint is not null
                                 then coalesce($11, building_id) end
          where id = $1",
    )
    .bind(id)
    .bind(patch.disabled)
    .bind(patch.role.map(Role::as_str))
    .bind(hash)
    .bind(&patch.display_name)
    .bind(&patch.phone)
    .bind(&patch.public_phone)
    .bind(patch.part_time_grid_worker)
    .bind(county)
    .bind(patch.station_id)
    .bind(patch.building_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_constraint(e, account_constraint))?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found(format!("account {id}")));
    }
    // A disabled account, a new role or a new password ends every open login.
    if patch.disabled == Some(true) || patch.role.is_some() || patch.password.is_some() {
        sqlx::query("update session_token set revoked_at = now() where account_id = $1 and revoked_at is null")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    // Role, grids-worker flag or disabled may have changed: cached logins must be looked up again.
    state.tokens.invalidate_all();
    Ok(Json(load(&state.pool, id, me.county_id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GridsBody {
    /// The whole new list (at most 50); empty for accounts that work no grid.
    pub grid_ids: Vec<i64>,
}

/// `PUT /api/admin/accounts/{id}/grids` with `{"grid_ids": [...]}`: the grids this account
/// works from now on. The change applies to open logins at once (the token cache is dropped).
#[utoipa::path(put, path = "/api/admin/accounts/{id}/grids", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    request_body = GridsBody,
    responses((status = 200, description = "The account with its new grids", body = AccountView),
        (status = 400, description = "An unknown grid, too many, or an account that works no grids (`field`: grid_ids)", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody)))]
pub(crate) async fn assign_grids(
    State(state): State<AppState>,
    Admin(me): Admin,
    Path(id): Path<i64>,
    Json(body): Json<GridsBody>,
) -> ApiResult<Json<AccountView>> {
    let role: Option<String> =
        sqlx::query_scalar("select role from account where id = $1 and ($2::bigint is null or county_id = $2)")
            .bind(id)
            .bind(me.county_id)
            .fetch_optional(&state.pool)
            .await?;
    match role.as_deref() {
        None => return Err(ApiError::not_found(format!("account {id}"))),
        Some("grid_worker" | "rider") => {}
        Some(other) if !body.grid_ids.is_empty() => {
            return Err(ApiError::field("grid_ids", format!("only grid workers and riders work grids, not a {other}")));
        }
        Some(_) => {}
    }
    let mut tx = state.pool.begin().await?;
    replace_grids(&mut tx, id, &body.grid_ids).await?;
    tx.commit().await?;
    // Open logins carry their grids: the next request must see the new ones.
    state.tokens.invalidate_all();
    Ok(Json(load(&state.pool, id, me.county_id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// How many open logins were revoked.
    pub revoked: u64,
}

/// `POST /api/admin/accounts/{id}/revoke-tokens`: log the account out everywhere.
#[utoipa::path(post, path = "/api/admin/accounts/{id}/revoke-tokens", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    responses((status = 200, description = "How many logins were revoked", body = Revoked),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody)))]
pub(crate) async fn revoke_tokens(
    State(state): State<AppState>,
    Admin(me): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<Revoked>> {
    managed(&state.pool, id, me.county_id).await?;
    Ok(Json(Revoked { revoked: auth::revoke_all(&state.pool, &state.tokens, id).await? }))
}
