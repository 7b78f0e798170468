//! The demo's micro-wishes (微心愿, issue 24 §1), synthetic and deterministic: in the first
//! county, 120 volunteers (`vol-001`…, synthetic names) and [`WISHES`] wishes over the past two
//! years at buildings with households (the county reports 1,800+ with more than 98% claimed and
//! completed). Wishes older than a month are confirmed or completed but for every 173rd, which
//! could not be done, and every 211th, withdrawn before anyone claimed it; the last month's are
//! mixed — open, claimed, completed, confirmed — so the board and the map have something to
//! show. Every wish is entered by its grid's first worker on the resident's behalf (a synthetic
//! name and number), and has its history. Buildings, states and times follow from the wish's
//! number only (times counted back from the moment of seeding). Every row: `source =
//! 'synthetic-demo'`, texts labelled （合成演示）.

use sqlx::{Postgres, Transaction};

use super::{SOURCE, names};

/// Wishes in the first county.
pub const WISHES: i64 = 1_820;
/// The demo resident's login: their home is the first building with households of `gw-0001`'s
/// first grid, and one wish of theirs, completed by `vol-001`, waits for their confirmation.
pub const DEMO_RESIDENT: &str = "resident-0001";
/// Volunteers in the first county.
pub const VOLUNTEERS: usize = 120;

/// Synthetic wish texts with their categories.
const TEXTS: [(&str, &str); 10] = [
    ("（合成演示）家里楼道灯坏了，想请人帮忙换个灯泡", "repair"),
    ("（合成演示）腿脚不便，周四想请人陪同去县医院复查", "medical_trip"),
    ("（合成演示）想请人帮忙在手机上办理医保缴费", "errands"),
    ("（合成演示）独居老人，希望有人周末来陪着聊聊天", "companionship"),
    ("（合成演示）米面油太重，想请人帮忙从超市搬上楼", "daily_help"),
    ("（合成演示）水龙头一直滴水，想请人帮忙修一下", "repair"),
    ("（合成演示）孩子放学没人接，想请志愿者帮忙接一次", "daily_help"),
    ("（合成演示）想请人帮忙读一读社区通知并填个表", "errands"),
    ("（合成演示）想请人陪同去银行办理存折业务", "medical_trip"),
    ("（合成演示）阳台晾衣架坏了，希望有人帮忙看看", "other"),
];

/// Store the volunteers and wishes of the first county (a no-op without buildings there).
pub async fn store(tx: &mut Transaction<'_, Postgres>, county_id: i64) -> anyhow::Result<()> {
    sqlx::query(
        r"insert into account (name, display_name, role, phone, source)
          select l, d, 'volunteer', p, $4 from unnest($1::text[], $2::text[], $3::text[]) as t(l, d, p)",
    )
    .bind((1..=VOLUNTEERS).map(|i| format!("vol-{i:03}")).collect::<Vec<_>>())
    .bind((1..=VOLUNTEERS).map(|i| names::person(i * 13 + 5)).collect::<Vec<_>>())
    .bind((1..=VOLUNTEERS).map(|i| format!("100{:08}", 70_000_000 + i)).collect::<Vec<_>>())
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    let volunteers: Vec<i64> =
        sqlx::query_scalar("select id from account where role = 'volunteer' and source = $1 order by id")
            .bind(SOURCE)
            .fetch_all(&mut **tx)
            .await?;
    // The resident names and numbers a worker recorded (private).
    let residents: Vec<String> = (0..97).map(|i| names::person(i * 11 + 2)).collect();
    // One row per wish: n (1 = oldest), its age in hours, building, state.
    sqlx::query(
        r"with b as (
              select b.id, row_number() over (order by b.id) - 1 as k, count(*) over () as total
                from building b join grid g on g.id = b.grid_id join community c on c.id = g.community_id
                join subdistrict s on s.id = c.subdistrict_id
               where s.county_id = $1 and b.households > 0),
          n as (
              select n, ($2 - n) * 9 + n % 7 + 2 as age_hours from generate_series(1, $2::int) n),
          w as (
              select n.n, n.age_hours, b.id as building_id,
                     now() - make_interval(hours => n.age_hours::int) as created_at,
                     case when n.age_hours > 720 then
                              case when n.n % 211 = 0 then 'withdrawn' when n.n % 173 = 0 then 'failed'
                                   when n.n % 5 = 0 then 'completed' else 'confirmed' end
                          else (array['published', 'claimed', 'completed', 'confirmed'])[1 + n.n % 4] end as state
                from n join b on b.k = (n.n * 7919) % b.total),
          -- Hours from publishing to the claim, the completion and the confirmation: a day or two
          -- for older wishes, a share of the age for the last few days' (never in the future).
          t as (
              select w.*, least(1 + w.n % 30, w.age_hours * 0.2) as claim_h,
                     least(3 + w.n % 30 + w.n % 48, w.age_hours * 0.5) as done_h,
                     least(15 + w.n % 30 + w.n % 48, w.age_hours * 0.8) as confirm_h
                from w)
          insert into wish (building_id, category, body, desired_on, state, resident_name, resident_phone, entered_by,
                            claimant_id, first_claimed_at, claimed_at, completed_at, confirmed_at, ended_at, end_reason,
                            created_at, updated_at, source)
          select w.building_id, ($4::text[])[1 + w.n % 10], ($3::text[])[1 + w.n % 10],
                 (w.created_at + interval '3 days')::date, w.state,
                 ($5::text[])[1 + w.n % 97], '100' || lpad((80000000 + w.n)::text, 8, '0'),
                 (select min(ga.account_id) from grid_assignment ga join account a on a.id = ga.account_id
                   where ga.grid_id = (select grid_id from building where id = w.building_id) and a.role = 'grid_worker'),
                 case when w.state not in ('published', 'withdrawn') then ($6::bigint[])[1 + w.n % cardinality($6::bigint[])] end,
                 case when w.state not in ('published', 'withdrawn') then w.created_at + interval '1 hour' * w.claim_h end,
                 case when w.state not in ('published', 'withdrawn') then w.created_at + interval '1 hour' * w.claim_h end,
                 case when w.state in ('completed', 'confirmed') then w.created_at + interval '1 hour' * w.done_h end,
                 case when w.state = 'confirmed' then w.created_at + interval '1 hour' * w.confirm_h end,
                 case when w.state = 'withdrawn' then w.created_at + interval '1 hour' * w.claim_h
                      when w.state = 'failed' then w.created_at + interval '1 hour' * w.done_h end,
                 case when w.state = 'withdrawn' then '（合成演示）家人已帮忙解决'
                      when w.state = 'failed' then '（合成演示）所需配件停产，已转交物业处理' end,
                 w.created_at, w.created_at, $7
            from t w order by w.n",
    )
    .bind(county_id)
    .bind(i32::try_from(WISHES).expect("a small constant"))
    .bind(TEXTS.iter().map(|t| t.0).collect::<Vec<_>>())
    .bind(TEXTS.iter().map(|t| t.1).collect::<Vec<_>>())
    .bind(&residents)
    .bind(&volunteers)
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    // The history: published, then claimed, completed, confirmed, or the end, as the times say.
    sqlx::query(
        r"insert into wish_event (wish_id, from_state, to_state, actor_id, actor, reason, at)
          select w.id, e.from_state, e.to_state, e.actor_id, a.name, e.reason, e.at
            from wish w
            cross join lateral (values
                (null, 'published', w.entered_by, null, w.created_at),
                ('published', 'claimed', w.claimant_id, null, w.first_claimed_at),
                ('claimed', 'completed', w.claimant_id, null, w.completed_at),
                ('completed', 'confirmed', w.entered_by, null, w.confirmed_at),
                (case when w.state = 'failed' then 'claimed' else 'published' end, w.state,
                 case when w.state = 'failed' then w.claimant_id else w.entered_by end, w.end_reason, w.ended_at)
            ) as e(from_state, to_state, actor_id, reason, at)
            left join account a on a.id = e.actor_id
           where w.source = $1 and e.at is not null
           order by w.id, e.at",
    )
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    demo_resident(tx).await
}

/// [`DEMO_RESIDENT`], at home in the first building of `gw-0001`'s first grid, with one wish
/// `vol-001` completed (their confirmation is the demo's last step).
async fn demo_resident(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<()> {
    let home: Option<i64> = sqlx::query_scalar(
        r"select b.id from grid_assignment ga join account a on a.id = ga.account_id
            join building b on b.grid_id = ga.grid_id
           where a.name = 'gw-0001' and b.households > 0 order by ga.grid_id, b.id limit 1",
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(home) = home else { return Ok(()) };
    let resident: i64 = sqlx::query_scalar(
        r"insert into account (name, display_name, role, phone, building_id, source)
          values ($1, '演示居民', 'resident', '10080000000', $2, $3) returning id",
    )
    .bind(DEMO_RESIDENT)
    .bind(home)
    .bind(SOURCE)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        r"with v as (select id, name from account where name = 'vol-001'),
          w as (
            insert into wish (building_id, category, body, desired_on, state, resident_id, entered_by, claimant_id,
                              first_claimed_at, claimed_at, completed_at, created_at, source)
            select $1, 'repair', '（合成演示）卫生间灯不亮了，想请人帮忙换个灯泡', gridmap_county_today(), 'completed', $2, $2, v.id,
                   now() - interval '20 hours', now() - interval '20 hours', now() - interval '2 hours',
                   now() - interval '26 hours', $3
              from v returning id, created_at, first_claimed_at, completed_at, claimant_id)
          insert into wish_event (wish_id, from_state, to_state, actor_id, actor, at)
          select w.id, null, 'published', $2, $4, w.created_at from w
          union all select w.id, 'published', 'claimed', v.id, v.name, w.first_claimed_at from w, v
          union all select w.id, 'claimed', 'completed', v.id, v.name, w.completed_at from w, v",
    )
    .bind(home)
    .bind(resident)
    .bind(SOURCE)
    .bind(DEMO_RESIDENT)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
