//! The demo's member registry for emergency mode (居住地报到党员, issue 24 §2), synthetic and
//! deterministic: [`MEMBERS`] registered party members (the county's own number) in the first
//! county, each living in a residential building with households (member n in building
//! `(n × 7919) mod count`), with synthetic names (`names::person`) and numbers (`102…`, no real
//! number has that prefix), skills and availability that follow from n, and squads of six per
//! grid (编队分组: 第一小队…, the first member of each its leader). The volunteers `vol-001` to
//! `vol-010` are the members living in `gw-0001`'s first grid, so the demo volunteer can check
//! in themselves. No episode is seeded: the demo starts in normal times. Every row: `source =
//! 'synthetic-demo'`.

use sqlx::{Postgres, Transaction};

use super::{SOURCE, names};

/// Registered party members in the first county (the county reports 2,933).
pub const MEMBERS: usize = 2_933;
/// Members per squad.
pub const SQUAD_SIZE: i64 = 6;

const SKILLS: [&[&str]; 8] = [
    &["medical"],
    &["driving"],
    &["logistics"],
    &["medical", "counselling"],
    &["repair"],
    &["it"],
    &["driving", "logistics"],
    &[],
];
const AVAILABILITY: [&str; 5] = ["anytime", "weekdays", "weekends", "evenings", "on_call"];
const SQUAD_NAMES: [&str; 10] = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"];

/// Store the members and squads of the first county (a no-op without residential buildings).
pub async fn store(tx: &mut Transaction<'_, Postgres>, county_id: i64) -> anyhow::Result<()> {
    let n: Vec<i64> = (1..=MEMBERS as i64).collect();
    let names: Vec<String> = (1..=MEMBERS).map(|i| names::person(i * 7 + 3)).collect();
    let phones: Vec<String> = (1..=MEMBERS).map(|i| format!("102{:08}", 30_000_000 + i)).collect();
    let skills: Vec<String> = (1..=MEMBERS).map(|i| SKILLS[i % SKILLS.len()].join(",")).collect();
    let availability: Vec<&str> = (1..=MEMBERS).map(|i| AVAILABILITY[(i / 3) % AVAILABILITY.len()]).collect();
    sqlx::query(
        r"with b as (
              select b.id, row_number() over (order by b.id) - 1 as k, count(*) over () as total
                from building b join grid g on g.id = b.grid_id join community c on c.id = g.community_id
                join subdistrict s on s.id = c.subdistrict_id
               where s.county_id = $1 and b.households > 0 and b.use in ('residential', 'mixed'))
          insert into party_member (name, phone, building_id, skills, availability, source)
          select t.name, t.phone, b.id, coalesce(string_to_array(nullif(t.skills, ''), ','), '{}'), t.availability, $7
            from unnest($2::int8[], $3::text[], $4::text[], $5::text[], $6::text[]) as t(n, name, phone, skills, availability)
            join b on b.k = (t.n * 7919) % b.total
           order by t.n",
    )
    .bind(county_id)
    .bind(&n)
    .bind(&names)
    .bind(&phones)
    .bind(&skills)
    .bind(&availability)
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    // Squads of six per grid, in member order; the first of each leads it.
    sqlx::query(
        r"with m as (
              select p.id, b.grid_id, (row_number() over (partition by b.grid_id order by p.id) - 1) / $1 as q
                from party_member p join building b on b.id = p.building_id
               where p.source = $2 and b.grid_id is not null),
          firsts as (select grid_id, q, min(id) as leader from m group by grid_id, q),
          s as (
              insert into squad (grid_id, name, leader_member_id, source)
              select grid_id, '第' || ($3::text[])[(1 + q % 10)::int] || '小队' || case when q >= 10 then (q / 10 + 1)::text else '' end,
                     leader, $2
                from firsts order by grid_id, q
              returning id, grid_id, leader_member_id)
          update party_member p set squad_id = s.id
            from m join firsts f on f.grid_id = m.grid_id and f.q = m.q join s on s.leader_member_id = f.leader
           where p.id = m.id",
    )
    .bind(SQUAD_SIZE)
    .bind(SOURCE)
    .bind(SQUAD_NAMES.to_vec())
    .execute(&mut **tx)
    .await?;
    // The demo volunteers who live in gw-0001's first grid are members with their own login.
    sqlx::query(
        r"with first_grid as (
              select min(ga.grid_id) as id from grid_assignment ga join account a on a.id = ga.account_id
               where a.name = 'gw-0001'),
          m as (select p.id, row_number() over (order by p.id) as k
                  from party_member p join building b on b.id = p.building_id, first_grid
                 where b.grid_id = first_grid.id and p.source = $1),
          v as (select a.id, row_number() over (order by a.name) as k from account a
                 where a.role = 'volunteer' and a.source = $1 and a.name <= 'vol-010')
          update party_member p set account_id = v.id from m join v on v.k = m.k where p.id = m.id",
    )
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
