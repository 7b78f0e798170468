//! Many counties in one database (migration 0028): county-scoped planners edit only their
//! county's grids, county admins manage only their county's accounts. This is the county column
//! of the authorization table: every grid-writing and account route, as a planner or admin of
//! the county the target is in and of another county.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::count;
use crate::ogc::{call, token};
use gridmap_server::config::Role;

/// Yiyuan (grids 1 and 2 from `small_city`) and a second county S002 with grids 3 and 4, two
/// 0.01° squares sharing the edge lon = 119.0; returns the two county ids.
pub async fn two_counties(pool: &PgPool) -> (i64, i64) {
    crate::reports::small_city(pool).await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "insert into county (code, name) values ('370323', '沂源县'), ('S002', '演示县002') returning id",
    )
    .fetch_all(pool)
    .await
    .expect("counties");
    let (a, b) = (ids[0], ids[1]);
    sqlx::query("update subdistrict set county_id = $1").bind(a).execute(pool).await.expect("sd");
    sqlx::query("update area set county_id = $1").bind(a).execute(pool).await.expect("area");
    sqlx::query(
        r"with s as (insert into subdistrict (county_id, code, name) values ($1, 'S002-LS', '历山街道') returning id),
               c as (insert into community (subdistrict_id, code, name) select id, 'S002-C1', '测试社区' from s returning id)
          insert into grid (id, code, name, community_id, geom) overriding system value
          select 3, 'S002-W', '西网格', c.id, ST_Multi(ST_MakeEnvelope(118.99, 36.17, 119.0, 36.18, 4326)) from c
          union all
          select 4, 'S002-E', '东网格', c.id, ST_Multi(ST_MakeEnvelope(119.0, 36.17, 119.01, 36.18, 4326)) from c",
    )
    .bind(b)
    .execute(pool)
    .await
    .expect("second county");
    sqlx::query(
        "insert into area (county_id, kind, name, geom, source) values ($1, 'county', '演示县002', ST_Multi(ST_MakeEnvelope(118.9, 36.1, 119.1, 36.3, 4326)), 'test')",
    )
    .bind(b)
    .execute(pool)
    .await
    .expect("boundary");
    (a, b)
}

async fn scoped(pool: &PgPool, name: &str, role: Role, county: Option<i64>) -> String {
    let t = token(pool, name, role).await;
    sqlx::query("update account set county_id = $2 where name = $1")
        .bind(name)
        .bind(county)
        .execute(pool)
        .await
        .expect("scope");
    t
}

fn merge_body() -> Value {
    json!({"grids": [{"id": 3, "version": 1}, {"id": 4, "version": 1}], "reason": "one grid"})
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_county_planner_edits_only_their_countys_grids(pool: PgPool) {
    let (a, b) = two_counties(&pool).await;
    let yiyuan = scoped(&pool, "planner-yiyuan", Role::Planner, Some(a)).await;
    let other = scoped(&pool, "planner-s002", Role::Planner, Some(b)).await;
    let rename = json!({"properties": {"name": "改名网格"}});

    // Another county's grids: refused, whichever route the edit takes, and nothing changes.
    let r = call(&pool, "PATCH", "/ogc/collections/grids/items/3", Some(&yiyuan), Some("\"1\""), Some(&rename)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "forbidden");
    let r = call(&pool, "POST", "/api/grids/merge", Some(&yiyuan), None, Some(&merge_body())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&r.body));
    let r = call(&pool, "DELETE", "/ogc/collections/grids/items/4", Some(&yiyuan), Some("\"1\""), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&r.body));
    // Moving a grid into their own county's community is an edit of another county's grid too.
    let community_a: i64 =
        sqlx::query_scalar("select id from community where code = 'C1'").fetch_one(&pool).await.expect("community");
    let steal = json!({"properties": {"community_id": community_a}});
    let r = call(&pool, "PATCH", "/ogc/collections/grids/items/3", Some(&yiyuan), Some("\"1\""), Some(&steal)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&pool, "grid").await, 4);
    let names: Vec<String> =
        sqlx::query_scalar("select name from grid order by id").fetch_all(&pool).await.expect("names");
    assert_eq!(names, ["西网格", "东网格", "西网格", "东网格"]);
    // And the other way round: S002's planner cannot touch Yiyuan's grid.
    let r = call(&pool, "PATCH", "/ogc/collections/grids/items/1", Some(&other), Some("\"1\""), Some(&rename)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Their own county's grids: as before.
    let r = call(&pool, "PATCH", "/ogc/collections/grids/items/1", Some(&yiyuan), Some("\"1\""), Some(&rename)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let r = call(&pool, "POST", "/api/grids/merge", Some(&other), None, Some(&merge_body())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(count(&pool, "grid").await, 3);

    // An unscoped planner still edits every county.
    let province = scoped(&pool, "planner-province", Role::Planner, None).await;
    let r = call(&pool, "PATCH", "/ogc/collections/grids/items/2", Some(&province), Some("\"1\""), Some(&rename)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
}

async fn account_id(pool: &PgPool, name: &str) -> i64 {
    sqlx::query_scalar("select id from account where name = $1").bind(name).fetch_one(pool).await.expect("account")
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_county_admin_manages_only_their_countys_accounts(pool: PgPool) {
    let (a, b) = two_counties(&pool).await;
    let admin = scoped(&pool, "admin-yiyuan", Role::Admin, Some(a)).await;
    scoped(&pool, "worker-yiyuan", Role::GridWorker, Some(a)).await;
    scoped(&pool, "worker-s002", Role::GridWorker, Some(b)).await;
    scoped(&pool, "planner-province", Role::Planner, None).await;
    let (mine, theirs) = (account_id(&pool, "worker-yiyuan").await, account_id(&pool, "worker-s002").await);

    let listed = call(&pool, "GET", "/api/admin/accounts", Some(&admin), None, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let names: Vec<String> = listed.json().as_array().expect("list").iter().map(|a| a["name"].to_string()).collect();
    assert_eq!(names, ["\"admin-yiyuan\"", "\"worker-yiyuan\""]);

    // Another county's account does not exist for them, whatever they try.
    let other = format!("/api/admin/accounts/{theirs}");
    assert_eq!(call(&pool, "GET", &other, Some(&admin), None, None).await.status, StatusCode::NOT_FOUND);
    let r = call(&pool, "PATCH", &other, Some(&admin), None, Some(&json!({"disabled": true}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&pool, "PUT", &format!("{other}/grids"), Some(&admin), None, Some(&json!({"grid_ids": [1]}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&pool, "POST", &format!("{other}/revoke-tokens"), Some(&admin), None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let disabled: bool = sqlx::query_scalar("select disabled from account where id = $1")
        .bind(theirs)
        .fetch_one(&pool)
        .await
        .expect("disabled");
    assert!(!disabled);

    // What they create is their county's; naming another county is refused and stores nothing.
    let new = json!({"name": "new-worker", "role": "grid_worker", "password": "a-long-password-1"});
    let r = call(&pool, "POST", "/api/admin/accounts", Some(&admin), None, Some(&new)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["county_id"].as_i64(), Some(a));
    let mut elsewhere = new.clone();
    elsewhere["name"] = json!("elsewhere-worker");
    elsewhere["county_id"] = json!(b);
    let r = call(&pool, "POST", "/api/admin/accounts", Some(&admin), None, Some(&elsewhere)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&r.body));
    let stored: i64 = sqlx::query_scalar("select count(*) from account where name = 'elsewhere-worker'")
        .fetch_one(&pool)
        .await
        .expect("n");
    assert_eq!(stored, 0);

    // Their own worker works only their county's grids.
    let r = call(
        &pool,
        "PUT",
        &format!("/api/admin/accounts/{mine}/grids"),
        Some(&admin),
        None,
        Some(&json!({"grid_ids": [3]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["field"], "grid_ids");
    let r = call(
        &pool,
        "PUT",
        &format!("/api/admin/accounts/{mine}/grids"),
        Some(&admin),
        None,
        Some(&json!({"grid_ids": [1, 2]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["grid_ids"], json!([1, 2]));

    // An unscoped admin manages every county's accounts, and may place one in a county.
    let province = scoped(&pool, "admin-province", Role::Admin, None).await;
    let listed = call(&pool, "GET", "/api/admin/accounts", Some(&province), None, None).await;
    assert_eq!(listed.json().as_array().expect("list").len() as i64, count(&pool, "account").await);
    let r = call(&pool, "PATCH", &other, Some(&province), None, Some(&json!({"county_id": a}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["county_id"].as_i64(), Some(a));
    let r = call(&pool, "PATCH", &other, Some(&province), None, Some(&json!({"county_id": 999_999}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "county_id");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn counties_are_listed_and_filter_grids_and_stats(pool: PgPool) {
    let (a, _) = two_counties(&pool).await;
    let listed = call(&pool, "GET", "/api/counties", None, None, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    let codes: Vec<&str> = listed.as_array().expect("list").iter().map(|c| c["code"].as_str().expect("code")).collect();
    assert_eq!(codes, ["370323", "S002"]);
    assert_eq!(listed[1]["grids"], 2);
    assert_eq!(listed[1]["bbox"], json!([118.9, 36.1, 119.1, 36.3]));

    let items = call(&pool, "GET", "/ogc/collections/grids/items?county=S002", None, None, None).await;
    assert_eq!(items.status, StatusCode::OK, "{}", String::from_utf8_lossy(&items.body));
    let ids: Vec<i64> =
        items.json()["features"].as_array().expect("features").iter().map(|f| f["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, [3, 4]);
    assert_eq!(items.json()["features"][0]["properties"]["county"], "S002");

    // One report in each county; the county filter counts its own.
    sqlx::query(
        r"insert into report (category, geom, input_lon, input_lat, input_crs, grid_id, subdistrict_id, assignment)
          select 'exposed_garbage', ST_PointOnSurface(g.geom), 0, 0, 'wgs84', g.id, c.subdistrict_id, 'covers'
            from grid g join community c on c.id = g.community_id where g.id in (1, 3)",
    )
    .execute(&pool)
    .await
    .expect("reports");
    for (county, expected) in [("370323", 1), ("S002", 1)] {
        let stats = call(&pool, "GET", &format!("/api/stats?county={county}"), None, None, None).await;
        assert_eq!(stats.status, StatusCode::OK, "{}", String::from_utf8_lossy(&stats.body));
        assert_eq!(stats.json()["reports"], expected, "{county}");
    }
    let all = call(&pool, "GET", "/api/stats", None, None, None).await;
    assert_eq!(all.json()["reports"], 2);
    let unknown = call(&pool, "GET", "/api/stats?county=NOPE", None, None, None).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["field"], "county");
    let _ = a;
}

async fn items(pool: &PgPool, collection: &str, query: &str) -> crate::common::Reply {
    call(pool, "GET", &format!("/ogc/collections/{collection}/items?{query}"), None, None, None).await
}

/// Ids of an OGC items page, checking that each feature's `county` property is `county`.
fn ids_in(reply: &crate::common::Reply, county: Option<&str>) -> Vec<i64> {
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let body = reply.json();
    let features = body["features"].as_array().expect("features");
    assert_eq!(body["numberMatched"].as_u64(), Some(features.len() as u64), "{body}");
    for f in features {
        assert_eq!(f["properties"]["county"].as_str(), county, "{f}");
    }
    features.iter().map(|f| f["id"].as_i64().expect("id")).collect()
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn buildings_stations_and_reports_have_a_county_property_that_filters_like_grids(pool: PgPool) {
    two_counties(&pool).await;
    // Per county one building (in grid 1, resp. 3), one station and one report (in grid 2, resp.
    // 4); and a station outside every county boundary, which belongs to none.
    let buildings: Vec<i64> = sqlx::query_scalar(
        r"insert into building (geom, households)
          select ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(x, 36.175), 4326), 0.0005, 2)), 30
            from unnest(array[118.175, 118.995]) x returning id",
    )
    .fetch_all(&pool)
    .await
    .expect("buildings");
    let stations: Vec<i64> = sqlx::query_scalar(
        r"insert into station (name, geom) select n, ST_SetSRID(ST_MakePoint(x, 36.176), 4326)
            from unnest(array['沂源驿站', '演示驿站', '远方驿站'], array[118.176, 118.996, 100.0]) as t(n, x)
          returning id",
    )
    .fetch_all(&pool)
    .await
    .expect("stations");
    let reports: Vec<i64> = sqlx::query_scalar(
        r"insert into report (category, geom, input_lon, input_lat, input_crs, grid_id, subdistrict_id, assignment)
          select 'exposed_garbage', ST_PointOnSurface(g.geom), 0, 0, 'wgs84', g.id, c.subdistrict_id, 'covers'
            from grid g join community c on c.id = g.community_id where g.id in (2, 4) order by g.id returning id",
    )
    .fetch_all(&pool)
    .await
    .expect("reports");
    let grids: Vec<i64> =
        sqlx::query_scalar("select grid_id from building order by id").fetch_all(&pool).await.expect("grid ids");
    assert_eq!(grids, [1, 3], "the buildings lie in one grid of each county");

    for (collection, ids) in [("buildings", &buildings), ("stations", &stations), ("reports", &reports)] {
        let queryables =
            call(&pool, "GET", &format!("/ogc/collections/{collection}/queryables"), None, None, None).await;
        assert_eq!(queryables.json()["properties"]["county"]["type"], "string", "{collection}");
        for (code, expected) in [("370323", ids[0]), ("S002", ids[1])] {
            // The equality parameter, CQL2 text and CQL2 JSON, and the one feature, all agree.
            assert_eq!(
                ids_in(&items(&pool, collection, &format!("county={code}")).await, Some(code)),
                [expected],
                "{collection} {code}"
            );
            let text = format!("filter=county%20%3D%20%27{code}%27");
            assert_eq!(
                ids_in(&items(&pool, collection, &text).await, Some(code)),
                [expected],
                "{collection} {code} cql2-text"
            );
            let json = format!(
                "filter-lang=cql2-json&filter=%7B%22op%22%3A%22%3D%22%2C%22args%22%3A%5B%7B%22property%22%3A%22county%22%7D%2C%22{code}%22%5D%7D"
            );
            assert_eq!(
                ids_in(&items(&pool, collection, &json).await, Some(code)),
                [expected],
                "{collection} {code} cql2-json"
            );
            let one =
                call(&pool, "GET", &format!("/ogc/collections/{collection}/items/{expected}"), None, None, None).await;
            assert_eq!(one.json()["properties"]["county"], code, "{collection}");
        }
        // Combined with other terms, and asked for alone with `properties`.
        let either =
            items(&pool, collection, "filter=county%20IN%20(%27S002%27%2C%27370323%27)%20AND%20id%20%3E%200").await;
        assert_eq!(either.json()["numberMatched"], 2, "{collection}");
        let only = items(&pool, collection, "county=S002&properties=county").await;
        assert_eq!(only.json()["features"][0]["properties"], json!({"county": "S002"}), "{collection}");
        // A code no county has matches nothing, as any other property value does.
        let unknown = items(&pool, collection, "county=NOPE").await;
        assert_eq!(ids_in(&unknown, None), Vec::<i64>::new(), "{collection}");
    }
    // Outside every boundary: no county, found by `county IS NULL`.
    let nowhere =
        call(&pool, "GET", "/ogc/collections/stations/items?filter=county%20IS%20NULL", None, None, None).await;
    assert_eq!(ids_in(&nowhere, None), [stations[2]]);
    // Derived, like the grids' county: a write that names it changes nothing there.
    let admin = crate::ogc::token(&pool, "admin-any", Role::Admin).await;
    let uri = format!("/ogc/collections/stations/items/{}", stations[0]);
    let read = call(&pool, "GET", &uri, None, None, None).await;
    let etag = read.headers[axum::http::header::ETAG].to_str().expect("etag").to_string();
    let moved = json!({"properties": {"county": "S002", "notice": "开放"}});
    let r = call(&pool, "PATCH", &uri, Some(&admin), Some(&etag), Some(&moved)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["properties"]["county"], "370323");
    assert_eq!(r.json()["properties"]["notice"], "开放");
}
