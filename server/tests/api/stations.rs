//! The resident endpoints of the web map: stations (list, search, one, nearest by KNN) and
//! "which grid am I in" — public fields only, bad input named in a 400 JSON error.

use axum::http::StatusCode;
use sqlx::PgPool;

use crate::common::get;

async fn station(pool: &PgPool, name: &str, address: &str, lon: f64, lat: f64, services: &[&str]) -> i64 {
    sqlx::query_scalar(
        r"insert into station (name, address, geom, opening_hours, services, host_org, phone)
          values ($1, $2, ST_SetSRID(ST_MakePoint($3, $4), 4326), 'Mo-Su 08:00-20:00', $5, '沂源县总工会', '0533-0300001')
          returning id",
    )
    .bind(name)
    .bind(address)
    .bind(lon)
    .bind(lat)
    .bind(services.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())
    .fetch_one(pool)
    .await
    .expect("insert station")
}

async fn three_stations(pool: &PgPool) -> [i64; 3] {
    [
        station(
            pool,
            "暖“新”驿站·鲁山路1号站",
            "沂源县历山街道鲁山路10号",
            118.170,
            36.180,
            &["rest", "water", "charging"],
        )
        .await,
        station(pool, "暖“新”驿站·胜利路2号站", "沂源县南麻街道胜利路47号", 118.180, 36.180, &["rest", "microwave"])
            .await,
        station(pool, "暖“新”驿站·振兴路3号站", "沂源县历山街道振兴路84号", 118.200, 36.180, &["toilet"]).await,
    ]
}

fn assert_field_error(reply: &crate::common::Reply, field: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&reply.body));
    let body = reply.json();
    assert_eq!(body["code"], "invalid_field");
    assert_eq!(body["field"], field, "{body}");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn station_list_has_public_fields_and_search_matches_name_address_and_services(pool: PgPool) {
    let ids = three_stations(&pool).await;
    let all = get(&pool, "/api/stations").await;
    assert_eq!(all.status, StatusCode::OK);
    let body = all.json();
    assert_eq!(body["count"], 3);
    let first = &body["stations"][0];
    assert_eq!(first["id"], ids[0]);
    assert_eq!(first["services"], serde_json::json!(["rest", "water", "charging"]));
    assert_eq!(first["opening_hours"], "Mo-Su 08:00-20:00");
    assert!((first["lon"].as_f64().expect("lon") - 118.17).abs() < 1e-9);
    let mut keys: Vec<_> = first.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    // The host's notice and the busy-ness hint (issue 23 §3) are public; who visited and how many are not.
    assert_eq!(
        keys,
        ["address", "busyness", "host_org", "id", "lat", "lon", "name", "notice", "opening_hours", "phone", "services"]
    );

    for (q, expected) in [
        ("胜利", vec![ids[1]]),
        ("历山街道", vec![ids[0], ids[2]]),
        ("MICROWAVE", vec![ids[1]]),
        ("%", vec![]),
        ("  ", ids.to_vec()),
    ] {
        let reply = get(&pool, &format!("/api/stations?q={}", urlencode(q))).await;
        assert_eq!(reply.status, StatusCode::OK);
        let found: Vec<i64> =
            reply.json()["stations"].as_array().expect("array").iter().map(|s| s["id"].as_i64().expect("id")).collect();
        assert_eq!(found, expected, "q={q:?}");
    }
    assert_field_error(&get(&pool, &format!("/api/stations?q={}", "x".repeat(101))).await, "q");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn one_station_by_id_404_when_absent_and_400_for_a_bad_id(pool: PgPool) {
    let ids = three_stations(&pool).await;
    let one = get(&pool, &format!("/api/stations/{}", ids[2])).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["address"], "沂源县历山街道振兴路84号");
    let missing = get(&pool, "/api/stations/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["code"], "not_found");
    assert_field_error(&get(&pool, "/api/stations/abc").await, "id");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn nearest_stations_come_in_distance_order_with_metres(pool: PgPool) {
    let ids = three_stations(&pool).await;
    // 118.185 lies between the second (500 m east-west at this latitude ≈ 449 m) and the third.
    let reply = get(&pool, "/api/stations/nearest?lon=118.185&lat=36.18&limit=2").await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    let stations = body["stations"].as_array().expect("array");
    assert_eq!(stations.len(), 2);
    assert_eq!(stations[0]["id"], ids[1]);
    assert_eq!(stations[1]["id"], ids[0]);
    let d0 = stations[0]["distance_m"].as_f64().expect("distance");
    let d1 = stations[1]["distance_m"].as_f64().expect("distance");
    // 0.005° of longitude at 36.18° N on the WGS84 ellipsoid is about 450 m.
    assert!((d0 - 450.0).abs() < 5.0, "{d0}");
    assert!((d1 - 3.0 * d0).abs() < 5.0, "{d1}");
    assert_eq!(body["from"]["lon"], 118.185);

    // Default limit is 5 (here: all three), still in order.
    let all = get(&pool, "/api/stations/nearest?lon=118.199&lat=36.181").await.json();
    let order: Vec<i64> =
        all["stations"].as_array().expect("array").iter().map(|s| s["id"].as_i64().expect("id")).collect();
    assert_eq!(order, [ids[2], ids[1], ids[0]]);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn point_endpoints_name_the_bad_field(pool: PgPool) {
    for path in ["/api/stations/nearest", "/api/grids/at"] {
        assert_field_error(&get(&pool, &format!("{path}?lat=36.18")).await, "lon");
        assert_field_error(&get(&pool, &format!("{path}?lon=NaN&lat=36.18")).await, "lon");
        assert_field_error(&get(&pool, &format!("{path}?lon=181&lat=36.18")).await, "lon");
        assert_field_error(&get(&pool, &format!("{path}?lon=118.1&lat=-90.5")).await, "lat");
        assert_field_error(&get(&pool, &format!("{path}?lon=118.1&lat=north")).await, "lat");
    }
    assert_field_error(&get(&pool, "/api/stations/nearest?lon=118.1&lat=36.1&limit=51").await, "limit");
    assert_field_error(&get(&pool, "/api/stations/nearest?lon=118.1&lat=36.1&limit=0").await, "limit");
    assert_field_error(&get(&pool, "/api/stations/nearest?lon=118.1&lat=36.1&limit=2.5").await, "limit");
    assert_eq!(get(&pool, "/api/stations/nearest?lon=118.1&lat=36.1&limit=50").await.status, StatusCode::OK);
}

async fn grid_square(pool: &PgPool, code: &str, community: Option<i64>, x0: f64, x1: f64) -> i64 {
    sqlx::query_scalar(
        "insert into grid (code, name, community_id, geom) values ($1, $1 || '网格', $2, ST_Multi(ST_MakeEnvelope($3, 36.17, $4, 36.18, 4326))) returning id",
    )
    .bind(code)
    .bind(community)
    .bind(x0)
    .bind(x1)
    .fetch_one(pool)
    .await
    .expect("insert grid")
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn grid_at_shows_the_public_card_without_private_phones(pool: PgPool) {
    let sub: i64 = sqlx::query_scalar("insert into subdistrict (code, name) values ('LS', '历山街道') returning id")
        .fetch_one(&pool)
        .await
        .expect("subdistrict");
    let com: i64 = sqlx::query_scalar(
        "insert into community (subdistrict_id, code, name) values ($1, 'LS-01', '城北社区') returning id",
    )
    .bind(sub)
    .fetch_one(&pool)
    .await
    .expect("community");
    let grid = grid_square(&pool, "LS-01-001", Some(com), 118.15, 118.16).await;
    sqlx::query("insert into building (geom, households) values (ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(118.155, 36.175), 4326), 0.0001, 2)), 120)")
        .execute(&pool)
        .await
        .expect("building");
    for (login, display, role, phone, public_phone) in [
        ("gw-a", "王伟", "grid_worker", "10050000001", Some("0533-3210001")),
        ("gw-b", "李芳", "grid_worker", "10050000002", None),
        ("rider-a", "张强", "rider", "10060000001", None),
    ] {
        sqlx::query(
            r"with a as (insert into account (name, display_name, role, phone, public_phone, part_time_grid_worker)
                         values ($1, $2, $3, $4, $5, $3 = 'rider') returning id)
              insert into grid_assignment (account_id, grid_id) select id, $6 from a",
        )
        .bind(login)
        .bind(display)
        .bind(role)
        .bind(phone)
        .bind(public_phone)
        .bind(grid)
        .execute(&pool)
        .await
        .expect("worker");
    }

    let reply = get(&pool, "/api/grids/at?lon=118.155&lat=36.175").await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["id"], grid);
    assert_eq!(body["code"], "LS-01-001");
    assert_eq!(body["name"], "LS-01-001网格");
    assert_eq!(body["community"], "城北社区");
    assert_eq!(body["subdistrict"], "历山街道");
    assert_eq!(body["households"], 120);
    assert_eq!(
        body["workers"],
        serde_json::json!([{"name": "王伟", "public_phone": "0533-3210001"}, {"name": "李芳", "public_phone": null}])
    );
    assert_eq!(body["geometry"]["type"], "MultiPolygon");
    let text = String::from_utf8_lossy(&reply.body);
    for private in ["10050000001", "10050000002", "10060000001", "张强", "gw-a", "rider-a"] {
        assert!(!text.contains(private), "{private} leaked: {text}");
    }
    // No service centre entered yet: none shown.
    assert_eq!(body["service_centre"], serde_json::Value::Null);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn grid_at_names_the_community_service_centre_and_its_constraints_refuse_junk(pool: PgPool) {
    let sub: i64 = sqlx::query_scalar("insert into subdistrict (code, name) values ('LS', '历山街道') returning id")
        .fetch_one(&pool)
        .await
        .expect("subdistrict");
    let com: i64 = sqlx::query_scalar(
        "insert into community (subdistrict_id, code, name, service_centre_address, service_centre_phone)
         values ($1, 'LS-01', '城北社区', '沂源县历山街道城北社区党群服务中心', '0533-3200100') returning id",
    )
    .bind(sub)
    .fetch_one(&pool)
    .await
    .expect("community");
    grid_square(&pool, "LS-01-001", Some(com), 118.15, 118.16).await;
    let body = get(&pool, "/api/grids/at?lon=118.155&lat=36.175").await.json();
    assert_eq!(
        body["service_centre"],
        serde_json::json!({"name": "城北社区党群服务中心", "address": "沂源县历山街道城北社区党群服务中心", "phone": "0533-3200100"})
    );
    assert_eq!(body["workers"], serde_json::json!([]));
    for (address, phone) in [(Some("  "), None), (None, Some("call me")), (None, Some(""))] {
        let refused =
            sqlx::query("update community set service_centre_address = $2, service_centre_phone = $3 where id = $1")
                .bind(com)
                .bind(address)
                .bind(phone)
                .execute(&pool)
                .await;
        assert!(refused.is_err(), "{address:?} {phone:?} stored");
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn grid_at_on_a_shared_edge_gives_the_lower_id_and_404_outside(pool: PgPool) {
    let west = grid_square(&pool, "E-001", None, 118.15, 118.16).await;
    let east = grid_square(&pool, "E-002", None, 118.16, 118.17).await;
    assert!(west < east);
    let edge = get(&pool, "/api/grids/at?lon=118.16&lat=36.175").await;
    assert_eq!(edge.status, StatusCode::OK);
    assert_eq!(edge.json()["id"], west);
    let expected: i64 = sqlx::query_scalar("select gridmap_grid_at(ST_SetSRID(ST_MakePoint(118.16, 36.175), 4326))")
        .fetch_one(&pool)
        .await
        .expect("db rule");
    assert_eq!(expected, west);
    assert_eq!(get(&pool, "/api/grids/at?lon=118.165&lat=36.175").await.json()["id"], east);
    let body = get(&pool, "/api/grids/at?lon=118.165&lat=36.175").await.json();
    assert_eq!(body["community"], serde_json::Value::Null);
    assert_eq!(body["workers"], serde_json::json!([]));

    let outside = get(&pool, "/api/grids/at?lon=118.3&lat=36.3").await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
    assert_eq!(outside.json()["code"], "not_found");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn demo_city_nearest_agrees_with_a_full_scan(pool: PgPool) {
    gridmap_server::seed::seed_demo(&pool, 1).await.expect("seed");
    assert_eq!(get(&pool, "/api/stations").await.json()["count"], 48);
    // A handful of points across the city: KNN plus re-ranking must equal sorting all 48.
    for (lon, lat) in [(118.17, 36.18), (118.15, 36.16), (118.19, 36.2), (118.16, 36.19)] {
        let body = get(&pool, &format!("/api/stations/nearest?lon={lon}&lat={lat}&limit=10")).await.json();
        let got: Vec<i64> =
            body["stations"].as_array().expect("array").iter().map(|s| s["id"].as_i64().expect("id")).collect();
        let want: Vec<i64> = sqlx::query_scalar(
            "select id from station order by ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography), id limit 10",
        )
        .bind(lon)
        .bind(lat)
        .fetch_all(&pool)
        .await
        .expect("scan");
        assert_eq!(got, want, "at {lon},{lat}");
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
