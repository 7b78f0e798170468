//! Accounts: argon2id password hashing and creating users from the command line and the seed.

use anyhow::{Context, bail};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sqlx::PgPool;

use crate::config::Role;

/// Shortest password we accept: enough to resist online guessing behind the login throttle.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Hash a password as an argon2id PHC string (random salt, the crate's recommended parameters).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
}

/// Check a password against a stored PHC string; a malformed hash is simply "no".
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

pub struct NewAccount<'a> {
    pub name: &'a str,
    pub role: Role,
    pub password: &'a str,
    pub part_time_grid_worker: bool,
    pub grid_codes: &'a [String],
}

/// Create the account, or reset role and password of an existing one; assign grids by code.
pub async fn upsert(pool: &PgPool, new: &NewAccount<'_>) -> anyhow::Result<i64> {
    if new.password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    if new.part_time_grid_worker && new.role != Role::Rider {
        bail!("--part-time-grid-worker applies to riders only");
    }
    let hash = hash_password(new.password)?;
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        r"insert into account (name, role, password_hash, part_time_grid_worker)
          values ($1, $2, $3, $4)
          on conflict on constraint account_name_key do update
             set role = excluded.role, password_hash = excluded.password_hash,
                 part_time_grid_worker = excluded.part_time_grid_worker, disabled = false
          returning id",
    )
    .bind(new.name)
    .bind(new.role.as_str())
    .bind(&hash)
    .bind(new.part_time_grid_worker)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match e.as_database_error().and_then(|d| d.constraint()) {
        Some("account_name_format") => {
            anyhow::anyhow!("the name may use letters, digits and _ . @ - only (2 to 64 characters)")
        }
        _ => anyhow::Error::from(e).context("saving the account failed"),
    })?;
    for code in new.grid_codes {
        let grid: Option<i64> =
            sqlx::query_scalar("select id from grid where code = $1").bind(code).fetch_optional(&mut *tx).await?;
        let Some(grid_id) = grid else { bail!("no grid with code {code}") };
        sqlx::query("insert into grid_assignment (account_id, grid_id) values ($1, $2) on conflict do nothing")
            .bind(id)
            .bind(grid_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await.context("saving the account failed")?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = hash_password("correct horse battery").expect("hashing works");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("wrong horse battery", &phc));
        assert!(!verify_password("anything", "not a phc string"));
    }
}
