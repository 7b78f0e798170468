//! Static per-client API keys (`api_key` table, migration 0022): what an integration — a
//! `FixMyStreet` instance forwarding reports over Open311, a desktop GIS — keeps in its
//! configuration for months, where a login token lasts a week. A key acts for one account,
//! only within its scopes; the database keeps its SHA-256, the client sees it once.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::auth::{Principal, Role};

/// Every key starts with this, so a server (and a secret scanner) tells it from a login token.
pub const PREFIX: &str = "gmk_";

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `POST /open311/v2/requests.{json,xml}` as `api_key`.
    Open311,
    /// OGC API Features writes (Part 4) as `Authorization: Bearer`, for a desktop GIS.
    #[value(name = "ogc_edit")]
    OgcEdit,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open311 => "open311",
            Self::OgcEdit => "ogc_edit",
        }
    }
}

/// A key as an admin sees it: never the key, never its hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: i64,
    /// The client's name, e.g. `fixmystreet-zibo`.
    pub name: String,
    /// The account the key acts for (its role and grids decide what the key may do).
    pub account_id: i64,
    pub account_name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new key: the view plus the key itself, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The secret; only its hash is kept, so it cannot be shown again.
    pub key: String,
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("name: 2 to 64 letters, digits or _ . @ -")]
    BadName,
    #[error("scopes: at least one of open311, ogc_edit")]
    NoScope,
    #[error("a key named `{0}` exists (revoke it, or choose another name)")]
    NameTaken(String),
    #[error("account `{0}` does not exist")]
    NoAccount(String),
    #[error(
        "an account named `{0}` exists and is not a key's own account; name that account explicitly to let the key act for it"
    )]
    AccountNameTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Which account a new key acts for.
pub enum ActsFor<'a> {
    /// An existing account, by id (admin API) …
    Id(i64),
    /// … or by login name (CLI).
    Name(&'a str),
    /// A new account of its own, named like the key, role resident, no password: an Open311
    /// integration files reports as a resident would, and nothing else.
    Own,
}

fn digest(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

fn valid_name(name: &str) -> bool {
    (2..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
}

const VIEW: &str = r"
select k.id, k.name, k.account_id, a.name as account_name, k.scopes, k.created_at, k.last_used_at, k.revoked_at
  from api_key k join account a on a.id = k.account_id";

/// Make a key; the returned `key` is the only time the secret exists outside the client.
pub async fn create(
    pool: &PgPool,
    name: &str,
    acts_for: ActsFor<'_>,
    scopes: &[Scope],
) -> Result<CreatedKey, KeyError> {
    if !valid_name(name) {
        return Err(KeyError::BadName);
    }
    if scopes.is_empty() {
        return Err(KeyError::NoScope);
    }
    let mut tx = pool.begin().await?;
    let account_id: i64 = match acts_for {
        ActsFor::Id(id) => sqlx::query_scalar("select id from account where id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| KeyError::NoAccount(id.to_string()))?,
        ActsFor::Name(login) => sqlx::query_scalar("select id from account where name = $1")
            .bind(login)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| KeyError::NoAccount(login.to_string()))?,
        ActsFor::Own => {
            // Never attach a key silently to a person's account that happens to share the name:
            // `gridmap apikey add demo-admin` must not mint an admin key.
            let existing: Option<(i64, String)> = sqlx::query_as("select id, source from account where name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            match existing {
                Some((id, source)) if source == "api_key" => id,
                Some(_) => return Err(KeyError::AccountNameTaken(name.to_string())),
                None => {
                    sqlx::query_scalar(
                        "insert into account (name, role, source) values ($1, $2, 'api_key') returning id",
                    )
                    .bind(name)
                    .bind(Role::Resident.as_str())
                    .fetch_one(&mut *tx)
                    .await?
                }
            }
        }
    };
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{PREFIX}{}", hex::encode(bytes));
    let mut scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    scope_names.sort_unstable();
    scope_names.dedup();
    let inserted: Option<i64> = sqlx::query_scalar(
        r"insert into api_key (name, account_id, key_hash, scopes) values ($1, $2, $3, $4)
          on conflict on constraint api_key_name_key do nothing returning id",
    )
    .bind(name)
    .bind(account_id)
    .bind(digest(&key))
    .bind(&scope_names)
    .fetch_optional(&mut *tx)
    .await?;
    let id = inserted.ok_or_else(|| KeyError::NameTaken(name.to_string()))?;
    let view = sqlx::query_as(&format!("{VIEW} where k.id = $1")).bind(id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(CreatedKey { view, key })
}

/// Every key, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<ApiKeyView>, sqlx::Error> {
    sqlx::query_as(&format!("{VIEW} order by k.id desc")).fetch_all(pool).await
}

/// Revoke a key by id (idempotent: the first revocation time is kept). `None`: no such key.
pub async fn revoke(pool: &PgPool, id: i64) -> Result<Option<ApiKeyView>, sqlx::Error> {
    sqlx::query("update api_key set revoked_at = coalesce(revoked_at, now()) where id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    sqlx::query_as(&format!("{VIEW} where k.id = $1")).bind(id).fetch_optional(pool).await
}

/// Revoke a key by name (the CLI's handle).
pub async fn revoke_by_name(pool: &PgPool, name: &str) -> Result<Option<ApiKeyView>, sqlx::Error> {
    let id: Option<i64> =
        sqlx::query_scalar("select id from api_key where name = $1").bind(name).fetch_optional(pool).await?;
    match id {
        Some(id) => revoke(pool, id).await,
        None => Ok(None),
    }
}

/// Whether this credential looks like an API key (and not a login token).
pub fn is_api_key(credential: &str) -> bool {
    credential.starts_with(PREFIX)
}

/// The account a live key acts for, if the key has `scope`; notes the use (at most once a
/// minute, so a busy integration does not write a row per request).
pub async fn authenticate(pool: &PgPool, key: &str, scope: Scope) -> Result<Option<Principal>, sqlx::Error> {
    Ok(authenticate_key(pool, key, scope).await?.map(|(_, principal)| principal))
}

/// The account a live key acts for, whatever its scopes, without noting a use: whom the rate
/// limiter charges for a request made with the key (`http::limits`), so that a client cannot
/// gain budget by switching keys or addresses.
pub async fn account_of(pool: &PgPool, key: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        r"select k.account_id from api_key k join account a on a.id = k.account_id
           where k.key_hash = $1 and k.revoked_at is null and not a.disabled",
    )
    .bind(digest(key))
    .fetch_optional(pool)
    .await
}

/// [`authenticate`], with the key's id (recorded with a desktop GIS's unchecked grid writes).
pub async fn authenticate_key(pool: &PgPool, key: &str, scope: Scope) -> Result<Option<(i64, Principal)>, sqlx::Error> {
    type Row = (i64, i64, String, String, bool, Vec<i64>, Option<i64>);
    let row: Option<Row> = sqlx::query_as(
        r"select k.id, a.id, a.name, a.role, a.part_time_grid_worker,
                 array(select g.grid_id from grid_assignment g where g.account_id = a.id order by g.grid_id),
                 a.county_id
            from api_key k join account a on a.id = k.account_id
           where k.key_hash = $1 and k.revoked_at is null and $2 = any(k.scopes) and not a.disabled",
    )
    .bind(digest(key))
    .bind(scope.as_str())
    .fetch_optional(pool)
    .await?;
    let Some((key_id, account_id, name, role, part_time_grid_worker, grid_ids, county_id)) = row else {
        return Ok(None);
    };
    sqlx::query(
        "update api_key set last_used_at = now() where id = $1 and (last_used_at is null or last_used_at < now() - interval '1 minute')",
    )
    .bind(key_id)
    .execute(pool)
    .await?;
    Ok(Role::parse(&role)
        .map(|role| (key_id, Principal { account_id, name, role, part_time_grid_worker, grid_ids, county_id })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_names_follow_the_account_name_rule() {
        assert!(super::valid_name("fixmystreet-zibo"));
        assert!(super::valid_name("qgis.planner@county"));
        assert!(!super::valid_name("x"));
        assert!(!super::valid_name("has space"));
        assert!(!super::valid_name(&"a".repeat(65)));
    }
}
