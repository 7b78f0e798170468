//! Logins and bearer tokens. A token is 256 random bits, given to the client once; the database
//! keeps only its SHA-256, with an expiry, and a revocation time once logged out or revoked.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::accounts;

/// How long a login lasts: a rider's shift and the offline queue's retries fit comfortably.
pub const TOKEN_LIFETIME_HOURS: i64 = 24 * 7;

/// An account role (`account.role`), spelled the same in JSON, on the command line
/// (`--role grid_worker`; clap alone would say grid-worker) and in the database.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Resident,
    Rider,
    #[value(name = "grid_worker")]
    GridWorker,
    Planner,
    Admin,
    /// A red building leader (红色楼长): sees their buildings' open reports, reports like a rider.
    #[value(name = "building_leader")]
    BuildingLeader,
    /// The host of one warm-"new" station (`account.station_id`): keeps its card, sees its
    /// counts, answers its suggestions.
    #[value(name = "station_host")]
    StationHost,
    /// A merchant of the points market (积分超市): hands over what was redeemed at their shop
    /// (`points_item.merchant_id`) and confirms it.
    Merchant,
    /// A volunteer or registered party member (志愿者, 居住地报到党员): claims and fulfils
    /// residents' micro-wishes (`crate::wishes`).
    Volunteer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "resident" => Self::Resident,
            "rider" => Self::Rider,
            "grid_worker" => Self::GridWorker,
            "planner" => Self::Planner,
            "admin" => Self::Admin,
            "building_leader" => Self::BuildingLeader,
            "station_host" => Self::StationHost,
            "merchant" => Self::Merchant,
            "volunteer" => Self::Volunteer,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resident => "resident",
            Self::Rider => "rider",
            Self::GridWorker => "grid_worker",
            Self::Planner => "planner",
            Self::Admin => "admin",
            Self::BuildingLeader => "building_leader",
            Self::StationHost => "station_host",
            Self::Merchant => "merchant",
            Self::Volunteer => "volunteer",
        }
    }
}

/// Who is making a request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Principal {
    pub account_id: i64,
    pub name: String,
    pub role: Role,
    pub part_time_grid_worker: bool,
    /// Grids this account works (grid workers, part-time rider workers).
    pub grid_ids: Vec<i64>,
    /// The county this account belongs to; for a planner or admin, the county they are scoped
    /// to (`None`: every county).
    pub county_id: Option<i64>,
}

impl Principal {
    /// A grid worker (or a part-time rider worker) assigned to this grid.
    pub fn works_grid(&self, grid_id: i64) -> bool {
        self.grid_ids.contains(&grid_id)
    }
}

pub struct Login {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub role: Role,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A PHC string for a password nobody has, so that an unknown name costs the same argon2 time
/// as a wrong password (no user enumeration by timing).
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| accounts::hash_password("gridmap-no-such-account").expect("hashing a constant works"));

/// Check a name and password; on success issue a token. `None` means "invalid name or password"
/// whatever the reason (unknown, wrong, disabled, no password set).
pub async fn login(pool: &PgPool, name: &str, password: &str) -> Result<Option<Login>, sqlx::Error> {
    let row: Option<(i64, String, Option<String>, bool)> =
        sqlx::query_as("select id, role, password_hash, disabled from account where name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    let phc = row.as_ref().and_then(|r| r.2.clone()).unwrap_or_else(|| DUMMY_HASH.clone());
    let password = password.to_string();
    let verified =
        tokio::task::spawn_blocking(move || accounts::verify_password(&password, &phc)).await.unwrap_or(false);
    let Some((account_id, role, Some(_), false)) = row else { return Ok(None) };
    if !verified {
        return Ok(None);
    }
    let Some(role) = Role::parse(&role) else { return Ok(None) };
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let expires_at = Utc::now() + Duration::hours(TOKEN_LIFETIME_HOURS);
    sqlx::query("insert into session_token (account_id, token_hash, expires_at) values ($1, $2, $3)")
        .bind(account_id)
        .bind(digest(&token))
        .bind(expires_at)
        .execute(pool)
        .await?;
    Ok(Some(Login { token, expires_at, role }))
}

/// id, name, role, part-time grid worker, grids, token expiry, county.
type AccountRow = (i64, String, String, bool, Vec<i64>, DateTime<Utc>, Option<i64>);

/// The account behind a live token (always asks the database; see [`TokenCache`]).
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<Principal>, sqlx::Error> {
    Ok(lookup(pool, &digest(token)).await?.map(|(principal, _)| principal))
}

async fn lookup(pool: &PgPool, token_hash: &[u8]) -> Result<Option<(Principal, DateTime<Utc>)>, sqlx::Error> {
    let row: Option<AccountRow> = sqlx::query_as(
        r"select a.id, a.name, a.role, a.part_time_grid_worker,
                 array(select g.grid_id from grid_assignment g where g.account_id = a.id order by g.grid_id),
                 t.expires_at, a.county_id
            from session_token t join account a on a.id = t.account_id
           where t.token_hash = $1 and t.revoked_at is null and t.expires_at > now() and not a.disabled",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(account_id, name, role, part_time_grid_worker, grid_ids, expires_at, county_id)| {
        Some((
            Principal { account_id, name, role: Role::parse(&role)?, part_time_grid_worker, grid_ids, county_id },
            expires_at,
        ))
    }))
}

/// How long a token's account (role, grids, disabled) may be served from memory. Changes made
/// through this server take effect at once (they call [`TokenCache::invalidate_all`]); changes
/// made anywhere else — another instance, `gridmap user add`, psql — are announced by migration
/// 0025's triggers and take effect as soon as [`spawn_login_listener`] hears them; this is the
/// bound for a server that does not listen (tests that build the state by hand).
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Valid tokens seen recently, by SHA-256, so that a request needs no database round trip to
/// know who is asking. Only live tokens are kept (an unknown or revoked token asks the database
/// every time) and never past the token's own expiry.
///
/// Invalidation is by generation: a write that can end or change a login commits, then bumps
/// the generation; an entry is only used if it was looked up in the current generation. An
/// entry from a lookup that raced with the write (read before its commit, stored after the
/// bump) therefore carries the old generation and is never used.
pub struct TokenCache {
    entries: moka::sync::Cache<Vec<u8>, Cached>,
    generation: std::sync::atomic::AtomicU64,
    /// Set while the login listener is not connected: it may be missing a revocation, so every
    /// request asks the database until it listens again.
    deaf: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
struct Cached {
    principal: Principal,
    expires_at: DateTime<Utc>,
    generation: u64,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(TOKEN_CACHE_TTL)
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("entries", &self.entries.entry_count()).finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
            generation: std::sync::atomic::AtomicU64::new(0),
            deaf: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The account behind a live token, from memory when it was looked up recently.
    pub async fn authenticate(&self, pool: &PgPool, token: &str) -> Result<Option<Principal>, sqlx::Error> {
        use std::sync::atomic::Ordering;
        let key = digest(token);
        let generation = self.generation.load(Ordering::Acquire);
        if !self.deaf.load(Ordering::Acquire)
            && let Some(hit) = self.entries.get(&key)
            && hit.generation == generation
            && hit.expires_at > Utc::now()
        {
            return Ok(Some(hit.principal));
        }
        let found = lookup(pool, &key).await?;
        if let Some((principal, expires_at)) = &found {
            self.entries.insert(key, Cached { principal: principal.clone(), expires_at: *expires_at, generation });
        }
        Ok(found.map(|(principal, _)| principal))
    }

    /// Forget every cached login: call after committing anything that ends a login or changes
    /// an account's role, grids or disabled flag.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.entries.invalidate_all();
    }
}

/// Drop the token cache whenever any writer — another instance, the command line, plain SQL —
/// ends a login or changes an account (`NOTIFY gridmap_logins`, migration 0025). While not
/// listening the cache is not used at all, and it is cleared on every (re)connect, since a
/// revocation may have been missed meanwhile. Runs until the pool closes.
pub fn spawn_login_listener(pool: PgPool, tokens: std::sync::Arc<TokenCache>) {
    use std::sync::atomic::Ordering;
    tokens.deaf.store(true, Ordering::Release);
    tokio::spawn(async move {
        loop {
            let connected = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen("gridmap_logins").await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = match connected.await {
                Ok(l) => l,
                Err(err) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(%err, "login change listener cannot listen; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
            };
            tokens.invalidate_all();
            tokens.deaf.store(false, Ordering::Release);
            // try_recv, not recv: recv would reconnect silently and hide the gap.
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => {
                        while listener.next_buffered().is_some() {}
                        tokens.invalidate_all();
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(%err, "login change listener failed");
                        break;
                    }
                }
            }
            tokens.deaf.store(true, Ordering::Release);
            tracing::warn!("login change listener lost its connection; the token cache is off until it is back");
            if pool.is_closed() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
}

/// Revoke one token (logout).
pub async fn revoke(pool: &PgPool, tokens: &TokenCache, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update session_token set revoked_at = now() where token_hash = $1 and revoked_at is null")
        .bind(digest(token))
        .execute(pool)
        .await?;
    tokens.invalidate_all();
    Ok(())
}

/// Revoke every token of an account (admin action, disabling an account).
pub async fn revoke_all(pool: &PgPool, tokens: &TokenCache, account_id: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("update session_token set revoked_at = now() where account_id = $1 and revoked_at is null")
        .bind(account_id)
        .execute(pool)
        .await?;
    tokens.invalidate_all();
    Ok(done.rows_affected())
}
