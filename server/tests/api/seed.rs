//! The demo city's invariants, checked in PostGIS after `seed_demo`.

use sqlx::PgPool;

use crate::common::count;
use gridmap_server::seed;

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn demo_city_partitions_the_urban_area_into_267_balanced_grids(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");

    assert_eq!(count(&pool, "grid").await, 267);
    assert_eq!(count(&pool, "station").await, 48);
    assert!(count(&pool, "building").await >= 10_000);
    assert!(count(&pool, "subdistrict").await >= 2);
    let workers: i64 = sqlx::query_scalar("select count(distinct a.id) from account a join grid_assignment g on g.account_id = a.id where a.role = 'grid_worker'")
        .fetch_one(&pool)
        .await
        .expect("workers");
    assert!(workers >= 980, "{workers} assigned grid workers");
    let riders: i64 = sqlx::query_scalar("select count(*) from account where role = 'rider' and part_time_grid_worker")
        .fetch_one(&pool)
        .await
        .expect("riders");
    assert_eq!(riders, 51);
    let roles: Vec<String> =
        sqlx::query_scalar("select distinct role from account where password_hash is not null order by role")
            .fetch_all(&pool)
            .await
            .expect("logins");
    assert_eq!(
        roles,
        [
            "admin",
            "building_leader",
            "grid_worker",
            "merchant",
            "planner",
            "resident",
            "rider",
            "station_host",
            "volunteer"
        ]
    );

    // No two grids overlap by 1 m² or more.
    let overlaps: Vec<(String, String, f64)> = sqlx::query_as(
        r"select a.code, b.code, ST_Area(ST_Intersection(a.geom, b.geom)::geography)
            from grid a join grid b on a.id < b.id and a.geom && b.geom
           where ST_Area(ST_Intersection(a.geom, b.geom)::geography) >= 1.0",
    )
    .fetch_all(&pool)
    .await
    .expect("overlaps");
    assert!(overlaps.is_empty(), "overlapping grids: {overlaps:?}");

    // The grids cover the urban area: no gap of 1 m² or more.
    let (gap, urban_km2): (f64, f64) = sqlx::query_as(
        r"select ST_Area(ST_Difference(u.geom, (select ST_Union(geom) from grid))::geography),
                 ST_Area(u.geom::geography) / 1e6
            from area u where u.kind = 'urban'",
    )
    .fetch_one(&pool)
    .await
    .expect("gap");
    assert!(gap < 1.0, "uncovered urban area: {gap} m²");
    assert!(urban_km2 > 5.0, "urban area only {urban_km2} km²");

    // Inside the real county boundary.
    let inside: bool = sqlx::query_scalar(
        "select ST_Within(u.geom, c.geom) from area u, area c where u.kind = 'urban' and c.kind = 'county'",
    )
    .fetch_one(&pool)
    .await
    .expect("within");
    assert!(inside);

    // Every grid about 300 households (150–450), and the grid totals are the buildings' sum.
    let (min, max, grid_sum, building_sum, unassigned): (i32, i32, i64, i64, i64) = sqlx::query_as(
        r"select min(households), max(households), sum(households)::bigint,
                 (select sum(households)::bigint from building),
                 (select count(*) from building where grid_id is null)
            from grid",
    )
    .fetch_one(&pool)
    .await
    .expect("households");
    assert!(min >= 150 && max <= 450, "households per grid range {min}..{max}");
    assert_eq!(grid_sum, building_sum);
    assert_eq!(unassigned, 0);

    // Every station inside a grid; every feature labelled synthetic.
    let homeless: i64 = sqlx::query_scalar("select count(*) from station where gridmap_grid_at(geom) is null")
        .fetch_one(&pool)
        .await
        .expect("stations");
    assert_eq!(homeless, 0);
    let unlabelled: i64 = sqlx::query_scalar(
        r"select (select count(*) from grid where source <> 'synthetic-demo')
               + (select count(*) from building where source <> 'synthetic-demo')
               + (select count(*) from station where source <> 'synthetic-demo')",
    )
    .fetch_one(&pool)
    .await
    .expect("labels");
    assert_eq!(unlabelled, 0);

    // Seeding again changes nothing.
    let before = count(&pool, "building").await;
    seed::seed_demo(&pool, 1).await.expect("second seed is a no-op");
    assert_eq!(count(&pool, "building").await, before);
    assert_eq!(count(&pool, "grid").await, 267);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn demo_seed_refuses_a_database_with_real_grids(pool: PgPool) {
    sqlx::query("insert into grid (code, name, geom) values ('X-001', 'real', ST_Multi(ST_MakeEnvelope(118.1, 36.1, 118.11, 36.11, 4326)))")
        .execute(&pool)
        .await
        .expect("insert");
    let err = seed::seed_demo(&pool, 1).await.expect_err("must refuse");
    assert!(err.to_string().contains("real grids"), "{err}");
    assert_eq!(count(&pool, "building").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn scale_three_seeds_three_counties_each_partitioned_inside_its_own_boundary(pool: PgPool) {
    seed::seed_demo(&pool, 3).await.expect("seed");

    let counties: Vec<(String, i64, i64)> = sqlx::query_as(
        r"select c.code, count(distinct s.id), count(g.id)
            from county c join subdistrict s on s.county_id = c.id
            join community m on m.subdistrict_id = s.id join grid g on g.community_id = m.id
           group by c.code order by c.code",
    )
    .fetch_all(&pool)
    .await
    .expect("counties");
    assert_eq!(counties, [("370323".to_string(), 2, 267), ("S002".to_string(), 2, 267), ("S003".to_string(), 2, 267)]);
    assert_eq!(count(&pool, "station").await, 3 * 48);

    // Each county: urban area inside its own boundary, covered by its own grids without a gap.
    let per_county: Vec<(String, bool, f64, i32, i32)> = sqlx::query_as(
        r"select c.code, ST_Within(u.geom, b.geom),
                 ST_Area(ST_Difference(u.geom, (select ST_Union(g.geom) from grid g
                     join community m on m.id = g.community_id join subdistrict s on s.id = m.subdistrict_id
                    where s.county_id = c.id))::geography),
                 (select min(g.households) from grid g join community m on m.id = g.community_id
                    join subdistrict s on s.id = m.subdistrict_id where s.county_id = c.id),
                 (select max(g.households) from grid g join community m on m.id = g.community_id
                    join subdistrict s on s.id = m.subdistrict_id where s.county_id = c.id)
            from county c join area u on u.county_id = c.id and u.kind = 'urban'
            join area b on b.county_id = c.id and b.kind = 'county' order by c.code",
    )
    .fetch_all(&pool)
    .await
    .expect("per county");
    assert_eq!(per_county.len(), 3);
    for (code, within, gap, min, max) in per_county {
        assert!(within, "{code}: urban area outside its boundary");
        assert!(gap < 1.0, "{code}: uncovered urban area {gap} m²");
        assert!(min >= 150 && max <= 450, "{code}: households per grid {min}..{max}");
    }
    let overlapping: i64 = sqlx::query_scalar(
        "select count(*) from area a join area b on a.id < b.id and a.kind = 'county' and b.kind = 'county' and ST_Intersects(a.geom, b.geom)",
    )
    .fetch_one(&pool)
    .await
    .expect("boundaries");
    assert_eq!(overlapping, 0, "county boundaries overlap");
    // Every building in a grid of the county it was generated in (no copy spills over).
    let unassigned: i64 =
        sqlx::query_scalar("select count(*) from building where grid_id is null").fetch_one(&pool).await.expect("b");
    assert_eq!(unassigned, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_scale_beyond_one_hundred_counties_is_refused_and_nothing_is_stored(pool: PgPool) {
    let err = seed::seed_demo(&pool, 101).await.expect_err("refused");
    assert!(err.to_string().contains("from 1 to 100"), "{err}");
    assert_eq!(count(&pool, "county").await, 0);
}
