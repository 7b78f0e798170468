//! The points ledger (积分, 微激励): append-only. An accepted report credits its reporter once
//! (the amount is the `report_accepted` rule of the reporter's earning group: `crate::points`);
//! cancelling it afterwards as a duplicate or invalid adds a reversal row. Balances are sums:
//! earnings, reversals, and the debits and refunds of the points market.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};

/// Credit the reporter of an accepted report (once per report), by the rule table.
pub async fn credit_accepted(conn: &mut PgConnection, report_id: i64) -> Result<(), sqlx::Error> {
    let reporter: Option<i64> = sqlx::query_scalar("select reporter_id from report where id = $1")
        .bind(report_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    if let Some(account) = reporter {
        crate::points::award(conn, account, "report_accepted", crate::points::SourceRef::report(report_id)).await?;
    }
    Ok(())
}

/// Reverse an earlier credit (once), when the report turns out a duplicate or invalid.
pub async fn reverse(conn: &mut PgConnection, report_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        r"insert into points_ledger (account_id, report_id, delta, reason, group_code, source_kind, source_id)
          select account_id, report_id, -delta, 'report_reversed', group_code, source_kind, source_id from points_ledger
           where report_id = $1 and reason = 'report_accepted'
          on conflict do nothing",
    )
    .bind(report_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub report_id: Option<i64>,
    /// The redemption a `redeemed` or `redemption_refunded` row belongs to.
    pub redemption_id: Option<i64>,
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
        "select report_id, redemption_id, delta, reason, created_at from points_ledger where account_id = $1 order by id desc limit 200",
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
                 -- Masked as Chinese public lists do (张**): migrations/functions/points.sql.
                 gridmap_points_public_name(a.display_name, a.role) as display_name,
                 sum(l.delta)::bigint as points
            from points_ledger l join account a on a.id = l.account_id
           where l.redemption_id is null -- spending points does not lower a place on the board
             and l.created_at >= make_timestamptz($1, $2, 1, 0, 0, 0, 'UTC')
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
