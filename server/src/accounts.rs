//! Accounts: argon2id password hashing and creating users from the command line and the seed.

use anyhow::{Context, bail};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sqlx::PgPool;

use crate::config::Role;

/// Shortest password we accept: enough to resist online guessing behind the login throttle.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password we hash (argon2 time grows with it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Fewest different characters: `aaaaaaaaaa` and `ababababab` are not passwords.
pub const MIN_DISTINCT_CHARS: usize = 3;

/// The most common passwords (server/data/README.md says where the list comes from).
static COMMON_PASSWORDS: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| include_str!("../data/common-passwords.txt").lines().collect());

/// The password policy, for the admin API and the CLI alike: 10 characters to 1 KiB, not blank,
/// at least three different characters, not on the common-password list (compared lower-cased
/// and trimmed, as the list is), and not the account name itself. `Err` says which rule failed.
pub fn check_password(password: &str, name: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("between {MIN_PASSWORD_CHARS} characters and 1 KiB"));
    }
    let folded = password.trim().to_lowercase();
    if folded.is_empty() {
        return Err("must not be blank".into());
    }
    let distinct: std::collections::HashSet<char> = folded.chars().collect();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Err(format!("needs at least {MIN_DISTINCT_CHARS} different characters"));
    }
    if COMMON_PASSWORDS.contains(folded.as_str()) {
        return Err("is one of the most common passwords; choose another".into());
    }
    if folded == name.trim().to_lowercase() {
        return Err("must not be the account name".into());
    }
    Ok(())
}

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
/// A changed role or password ends every login of the account (as the admin API does): a
/// reset password must lock out whoever knew the old one.
pub async fn upsert(pool: &PgPool, new: &NewAccount<'_>) -> anyhow::Result<i64> {
    if let Err(why) = check_password(new.password, new.name) {
        bail!("the password {why}");
    }
    if new.part_time_grid_worker && new.role != Role::Rider {
        bail!("--part-time-grid-worker applies to riders only");
    }
    let hash = hash_password(new.password)?;
    let mut tx = pool.begin().await?;
    let before: Option<(String, Option<String>)> =
        sqlx::query_as("select role, password_hash from account where name = $1 for update")
            .bind(new.name)
            .fetch_optional(&mut *tx)
            .await?;
    let id: i64 = sqlx::query_scalar(
        r"insert into account (name, role, password_hash, part_time_grid_worker)
          values ($1, $2, $3, $4)
          on conflict on constraint account_name_key do update
             set role = excluded.role, password_hash = excluded.password_hash,
                 part_time_grid_worker = excluded.part_time_grid_worker, disabled = false,
                 station_id = case when excluded.role = 'station_host' then account.station_id end,
                 building_id = case when excluded.role = 'resident' then account.building_id end
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
    if let Some((role, old_hash)) = before {
        let same_password = old_hash.is_some_and(|h| verify_password(new.password, &h));
        if role != new.role.as_str() || !same_password {
            sqlx::query("update session_token set revoked_at = now() where account_id = $1 and revoked_at is null")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
    }
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

/// Set the name public views show for an account (a grid card, a report's receipt); without
/// one they show a neutral label (网格员), never the login name.
pub async fn set_display_name(pool: &PgPool, id: i64, display_name: &str) -> anyhow::Result<()> {
    let display_name = display_name.trim();
    if display_name.is_empty() || display_name.chars().count() > 64 || display_name.chars().any(char::is_control) {
        bail!("the display name must be 1 to 64 characters, no control characters");
    }
    sqlx::query("update account set display_name = $2 where id = $1").bind(id).bind(display_name).execute(pool).await?;
    Ok(())
}

/// Link a `station_host` account to the one station it keeps (`gridmap user add --station`).
pub async fn set_station(pool: &PgPool, id: i64, station_id: i64) -> anyhow::Result<()> {
    let done =
        sqlx::query("update account set station_id = $2 where id = $1").bind(id).bind(station_id).execute(pool).await;
    match done {
        Ok(_) => Ok(()),
        Err(e) => match e.as_database_error().and_then(|d| d.constraint()) {
            Some("account_station_fkey") => bail!("there is no station {station_id}"),
            Some("account_station_only_hosts") => bail!("--station applies to --role station_host only"),
            _ => Err(e.into()),
        },
    }
}

/// Link a `resident` account to their home building (`gridmap user add --building`): the
/// building their own micro-wishes are for.
pub async fn set_building(pool: &PgPool, id: i64, building_id: i64) -> anyhow::Result<()> {
    let done =
        sqlx::query("update account set building_id = $2 where id = $1").bind(id).bind(building_id).execute(pool).await;
    match done {
        Ok(_) => Ok(()),
        Err(e) => match e.as_database_error().and_then(|d| d.constraint()) {
            Some("account_building_fkey") => bail!("there is no building {building_id}"),
            Some("account_building_only_residents") => bail!("--building applies to --role resident only"),
            _ => Err(e.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_policy_refuses_blank_repetitive_common_and_name_passwords() {
        for bad in ["          ", "aaaaaaaaaa", "ababababab", "qwertyuiop", "Password123", " 1234567890 ", "short"] {
            assert!(check_password(bad, "someone").is_err(), "{bad:?} is refused");
        }
        assert!(check_password("gw-li-zhang", "GW-LI-ZHANG").is_err(), "not the account name");
        assert!(check_password("Qx7!harbour-lamp", "someone").is_ok());
        assert!(COMMON_PASSWORDS.len() > 19_000, "the bundled list is loaded");
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = hash_password("correct horse battery").expect("hashing works");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("wrong horse battery", &phc));
        assert!(!verify_password("anything", "not a phc string"));
    }
}
