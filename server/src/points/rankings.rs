//! Yearly 最美 rankings per earning group, from the ledger: what each account **earned** in the
//! county's calendar year (UTC+8) in that group — credits less reversals; spending does not
//! lower a ranking. A ledger row from before the groups (migration 0036) counts in the group
//! of its account's role. Names are masked (张**): the list is public.

use serde::Serialize;
use sqlx::PgPool;

use super::{Group, PointsError};

/// One place of a ranking.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RankingRow {
    pub rank: i64,
    /// The display name masked after its first character (张**), or the group's neutral label.
    pub display_name: String,
    pub points: i64,
}

/// The body of `GET /api/points/rankings`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ranking {
    pub year: i32,
    pub group: Group,
    pub rows: Vec<RankingRow>,
}

/// The county's current year (UTC+8).
pub async fn current_year(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("select extract(year from gridmap_county_today())::int").fetch_one(pool).await
}

/// The top `limit` of `group` in `year`.
pub async fn ranking(pool: &PgPool, year: i32, group: &str, limit: i64) -> Result<Ranking, PointsError> {
    let found: Option<Group> = sqlx::query_as("select code, name_zh, name_en, roles from points_group where code = $1")
        .bind(group)
        .fetch_optional(pool)
        .await?;
    let Some(group) = found else {
        let known = super::group_codes(pool).await?.join(", ");
        return Err(super::field("group", format!("one of {known}")));
    };
    let rows = sqlx::query_as(
        r"select rank() over (order by sum(l.delta) desc)::bigint as rank,
                 gridmap_points_public_name(a.display_name, a.role) as display_name,
                 sum(l.delta)::bigint as points
            from points_ledger l join account a on a.id = l.account_id
           where coalesce(l.group_code, gridmap_points_group_of(a.role)) = $1
             and l.redemption_id is null
             and l.created_at >= make_timestamptz($2, 1, 1, 0, 0, 0, 'Asia/Shanghai')
             and l.created_at < make_timestamptz($2 + 1, 1, 1, 0, 0, 0, 'Asia/Shanghai')
           group by a.id, a.display_name, a.role
          having sum(l.delta) > 0
           order by points desc, a.id
           limit $3",
    )
    .bind(&group.code)
    .bind(year)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(Ranking { year, group, rows })
}
