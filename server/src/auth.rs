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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Resident,
    Rider,
    #[value(name = "grid_worker")]
    GridWorker,
    Planner,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "resident" => Self::Resident,
            "rider" => Self::Rider,
            "grid_worker" => Self::GridWorker,
            "planner" => Self::Planner,
            "admin" => Self::Admin,
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
    let verified = tokio::task::spawn_blocking(move || accounts::verify_password(&password, &phc))
        .await
        .unwrap_or(false);
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

/// The account behind a live token.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<Principal>, sqlx::Error> {
    let row: Option<(i64, String, String, bool, Vec<i64>)> = sqlx::query_as(
        r"select a.id, a.name, a.role, a.part_time_grid_worker,
                 array(select g.grid_id from grid_assignment g where g.account_id = a.id order by g.grid_id)
            from session_token t join account a on a.id = t.account_id
           where t.token_hash = $1 and t.revoked_at is null and t.expires_at > now() and not a.disabled",
    )
    .bind(digest(token))
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(account_id, name, role, part_time_grid_worker, grid_ids)| {
        Some(Principal { account_id, name, role: Role::parse(&role)?, part_time_grid_worker, grid_ids })
    }))
}

/// Revoke one token (logout).
pub async fn revoke(pool: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update session_token set revoked_at = now() where token_hash = $1 and revoked_at is null")
        .bind(digest(token))
        .execute(pool)
        .await?;
    Ok(())
}

/// Revoke every token of an account (admin action, disabling an account).
pub async fn revoke_all(pool: &PgPool, account_id: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("update session_token set revoked_at = now() where account_id = $1 and revoked_at is null")
        .bind(account_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
