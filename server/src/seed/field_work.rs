//! The demo's door-knocking and sentiment log (issue 23 §2), synthetic and deterministic: in
//! the first county, one finished county-wide round (every household recorded) and one running
//! round in the community of `gw-0001`'s grid (about half its buildings visited), and dated
//! sentiment-log entries in that community's grids. Outcomes, times and texts follow from row
//! ids only, so the same seed gives the same rows. Every row: `source = 'synthetic-demo'`.

use sqlx::{Postgres, Transaction};

use super::SOURCE;

/// Synthetic log texts (what a worker might hear), with their tags.
const ENTRIES: &[(&str, &str)] = &[
    ("（合成演示）楼上楼下漏水纠纷，已约双方周末协商", "dispute"),
    ("（合成演示）居民咨询城乡居民医保缴费时间", "policy"),
    ("（合成演示）独居老人行动不便，需定期上门探望", "key_group_care"),
    ("（合成演示）小区路灯不亮，夜间出行不便", "livelihood"),
    ("（合成演示）楼道堆放杂物，存在消防隐患", "safety"),
    ("（合成演示）垃圾分类点清运不及时", "environment"),
    ("（合成演示）建议在小区增设电动车充电桩", "suggestion"),
];

/// Store the rounds, visits and log entries of the first county (a no-op without `gw-0001`).
pub async fn store(tx: &mut Transaction<'_, Postgres>, county_id: i64) -> anyhow::Result<()> {
    let community: Option<i64> = sqlx::query_scalar(
        r"select g.community_id from grid_assignment ga join account a on a.id = ga.account_id
            join grid g on g.id = ga.grid_id where a.name = 'gw-0001' order by g.id limit 1",
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(community) = community else { return Ok(()) };
    // The finished round: the whole county, autumn 2024, every household recorded.
    let finished: i64 = sqlx::query_scalar(
        r"insert into door_round (scope, county_id, name, starts_on, ends_on, opened_at, closed_at, source)
          values ('county', $1, '2024年第五轮敲门行动（合成演示）', '2024-09-01', '2024-11-30',
                  '2024-08-25 09:00+08', '2024-12-02 17:00+08', $2)
          returning id",
    )
    .bind(county_id)
    .bind(SOURCE)
    .fetch_one(&mut **tx)
    .await?;
    // One visit per building by the grid's first worker; outcome from the id: a tenth not at
    // home, a twenty-third refused, the rest at home.
    let visits = r"insert into door_visit (round_id, building_id, visitor_id, visited_at, households, outcome, source)
          select $1, b.id,
                 (select min(ga.account_id) from grid_assignment ga join account a on a.id = ga.account_id
                   where ga.grid_id = b.grid_id and a.role = 'grid_worker'),
                 $2::timestamptz + make_interval(days => (b.id % $3)::int, hours => (b.id % 9)::int),
                 b.households,
                 case when b.id % 23 = 0 then 'refused' when b.id % 10 = 0 then 'not_home' else 'at_home' end,
                 $4
            from door_round_grid rg join building b on b.grid_id = rg.grid_id and b.households > 0
           where rg.round_id = $1 and b.id % $5 = 0";
    sqlx::query(visits)
        .bind(finished)
        .bind("2024-09-01 09:00+08")
        .bind(80_i64)
        .bind(SOURCE)
        .bind(1_i64)
        .execute(&mut **tx)
        .await?;
    // The running round: gw-0001's community, spring 2025; buildings of even id visited.
    let running: i64 = sqlx::query_scalar(
        r"insert into door_round (scope, community_id, name, starts_on, ends_on, opened_at, source)
          values ('community', $1, '2025年第一轮敲门行动（合成演示）', '2025-03-01', '2025-12-31',
                  '2025-02-25 09:00+08', $2)
          returning id",
    )
    .bind(community)
    .bind(SOURCE)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(visits)
        .bind(running)
        .bind("2025-03-01 09:00+08")
        .bind(60_i64)
        .bind(SOURCE)
        .bind(2_i64)
        .execute(&mut **tx)
        .await?;
    // Log entries: three per grid of the community, by the grid's first worker, the text and
    // tag rotating with the grid id; the first at a building of the grid.
    sqlx::query(
        r"insert into sentiment_entry (grid_id, building_id, entry_date, body, tags, author_id, source)
          select g.id,
                 case when n = 1 then (select min(b.id) from building b where b.grid_id = g.id and b.households > 0) end,
                 date '2025-03-01' + ((g.id * 7 + n * 11) % 60)::int,
                 (array[$1, $2, $3, $4, $5, $6, $7])[1 + ((g.id + n) % 7)::int],
                 array[(array[$8, $9, $10, $11, $12, $13, $14])[1 + ((g.id + n) % 7)::int]],
                 (select min(ga.account_id) from grid_assignment ga join account a on a.id = ga.account_id
                   where ga.grid_id = g.id and a.role = 'grid_worker'),
                 $15
            from grid g cross join generate_series(1, 3) n
           where g.community_id = $16
           order by g.id, n",
    )
    .bind(ENTRIES[0].0)
    .bind(ENTRIES[1].0)
    .bind(ENTRIES[2].0)
    .bind(ENTRIES[3].0)
    .bind(ENTRIES[4].0)
    .bind(ENTRIES[5].0)
    .bind(ENTRIES[6].0)
    .bind(ENTRIES[0].1)
    .bind(ENTRIES[1].1)
    .bind(ENTRIES[2].1)
    .bind(ENTRIES[3].1)
    .bind(ENTRIES[4].1)
    .bind(ENTRIES[5].1)
    .bind(ENTRIES[6].1)
    .bind(SOURCE)
    .bind(community)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
