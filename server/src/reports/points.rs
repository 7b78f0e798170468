//! The points ledger (积分, 微激励): append-only. An accepted report credits its reporter once;
//! cancelling it afterwards as a duplicate or invalid adds a reversal row. Balances are sums.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::POINTS_PER_ACCEPTED_REPORT;

/// Credit the reporter of an accepted report (once per report).
pub async fn credit_accepted(conn: &mut PgConnection, report_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        r"insert into points_ledger (account_id, report_id, delta, reason)
          select reporter_id, id, $2, 'report_accepted' from report where id = $1 and reporter_id is not null
          on conflict on constraint points_ledger_once do nothing",
    )
    .bind(report_id)
    .bind(POINTS_PER_ACCEPTED_REPORT)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reverse an earlier credit (once), when the report turns out a duplicate or invalid.
pub async fn reverse(conn: &mut PgConnection, report_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        r"insert into points_ledger (account_id, report_id, delta, reason)
          select account_id, report_id, -delta, 'report_reversed' from points_ledger
           where report_id = $1 and reason = 'report_accepted'
          on conflict on constraint points_ledger_once do nothing",
    )
    .bind(report_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub report_id: Option<i64>,
    pub delta: i32,
    pub reason: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Balance {
    pub balance: i64,
    pub entries: Vec<LedgerEntry>,
}

pub async fn balance(pool: &PgPool, account_id: i64) -> Result<Balance, sqlx::Error> {
    let entries: Vec<LedgerEntry> = sqlx::query_as(
        "select report_id, delta, reason, created_at from points_ledger where account_id = $1 order by id desc limit 200",
    )
    .bind(account_id)
    .fetch_all(pool)
    .await?;
    let balance: i64 =
        sqlx::query_scalar("select coalesce(sum(delta), 0)::bigint from points_ledger where account_id = $1")
            .bind(account_id)
            .fetch_one(pool)
            .await?;
    Ok(Balance { balance, entries })
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LeaderboardRow {
    pub rank: i64,
    /// The display name (or login name) masked after its first character: 张**.
    pub display_name: String,
    pub points: i64,
}

/// The month's leaderboard (UTC month of the ledger rows), top `limit`, names masked.
pub async fn leaderboard(pool: &PgPool, year: i32, month: u32, limit: i64) -> Result<Vec<LeaderboardRow>, sqlx::Error> {
    sqlx::query_as(
        r"select rank() over (order by sum(l.delta) desc)::bigint as rank,
                 -- Masked as Chinese public lists do (张**): the board is public, and a full
                 -- name (or a login name) would tie a rider to the reports near their route.
                 -- Without a display name, the role's neutral label (a login name is never public).
                 coalesce(left(a.display_name, 1) || repeat('*', greatest(char_length(a.display_name) - 1, 1)),
                          case a.role when 'rider' then '骑手' when 'grid_worker' then '网格员' else '居民' end)
                     as display_name,
                 sum(l.delta)::bigint as points
            from points_ledger l join account a on a.id = l.account_id
           where l.created_at >= make_timestamptz($1, $2, 1, 0, 0, 0, 'UTC')
             and l.created_at < make_timestamptz($1, $2, 1, 0, 0, 0, 'UTC') + interval '1 month'
           group by a.id, a.display_name, a.role
          having sum(l.delta) <> 0
           order by points desc, a.id
           limit $3",
    )
    .bind(year)
    .bind(month as i32)
    .bind(limit)
    .fetch_all(pool)
    .await
}
