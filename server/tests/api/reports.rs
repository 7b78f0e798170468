//! Mobile-probe reports: intake, idempotency, validation, GCJ-02, assignment (edge rule,
//! nearest, unassigned), batch, duplicates, workflow, points, stats, hexbins, SSE, photos.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{Reply, get, send};
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;
use gridmap_server::reports::gcj02;

/// Two 0.01° squares sharing the edge lon = 118.18 (grid 1 west, grid 2 east), in one
/// community of one subdistrict, plus the real county boundary.
pub async fn small_city(pool: &PgPool) {
    sqlx::query(
        r"insert into area (kind, name, geom, source)
          select 'county', '沂源县', ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(f -> 'geometry'), 4326)), 'test'
            from jsonb_array_elements($1::jsonb -> 'features') f",
    )
    .bind(gridmap_server::seed::COUNTY_GEOJSON)
    .execute(pool)
    .await
    .expect("county");
    sqlx::query("insert into subdistrict (code, name) values ('LS', '历山街道')").execute(pool).await.expect("sd");
    sqlx::query("insert into community (subdistrict_id, code, name) select id, 'C1', '测试社区' from subdistrict")
        .execute(pool)
        .await
        .expect("community");
    sqlx::query(
        r"insert into grid (id, code, name, community_id, geom) overriding system value
          select 1, 'G-W', '西网格', c.id, ST_Multi(ST_MakeEnvelope(118.17, 36.17, 118.18, 36.18, 4326)) from community c
          union all
          select 2, 'G-E', '东网格', c.id, ST_Multi(ST_MakeEnvelope(118.18, 36.17, 118.19, 36.18, 4326)) from community c",
    )
    .execute(pool)
    .await
    .expect("grids");
}

pub async fn user(pool: &PgPool, name: &str, role: Role, grids: &[&str]) -> String {
    let password = format!("{name}-password-123");
    let grid_codes: Vec<String> = grids.iter().map(|g| (*g).to_string()).collect();
    upsert(
        pool,
        &NewAccount {
            name,
            role,
            password: &password,
            part_time_grid_worker: role == Role::Rider,
            grid_codes: &grid_codes,
        },
    )
    .await
    .expect("create account");
    crate::auth::login(pool, name, &password).await
}

pub fn report_body(category: &str, lon: f64, lat: f64) -> Value {
    json!({"category": category, "description": "井盖缺失 near the school gate",
           "location": {"lon": lon, "lat": lat, "crs": "wgs84", "accuracy_m": 8.0}})
}

pub async fn post_report(pool: &PgPool, token: Option<&str>, key: Option<&str>, body: &Value) -> Reply {
    let mut request = Request::post("/api/reports").header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    send(pool, request.body(Body::from(body.to_string())).expect("request")).await
}

pub fn key() -> String {
    Uuid::new_v4().to_string()
}

async fn reports_count(pool: &PgPool) -> i64 {
    crate::common::count(pool, "report").await
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn categories_are_grouped_bilingual_with_sla_and_radius(pool: PgPool) {
    let reply = get(&pool, "/api/report-categories").await;
    assert_eq!(reply.status, StatusCode::OK);
    let list = reply.json();
    let list = list.as_array().expect("array");
    assert!(list.len() >= 10);
    let manhole = list.iter().find(|c| c["code"] == "manhole_cover").expect("manhole_cover");
    assert_eq!(manhole["kind"], "facility");
    assert_eq!(manhole["group_zh"], "公用设施");
    assert!(manhole["name_en"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(manhole["sla_hours"].as_i64().is_some_and(|h| h > 0));
    assert!(manhole["duplicate_radius_m"].as_i64().is_some());
    for group in
        ["市容环境", "宣传广告", "施工管理", "突发事件", "街面秩序", "公用设施", "道路交通", "园林绿化", "房屋土地"]
    {
        assert!(list.iter().any(|c| c["group_zh"] == group), "group {group}");
    }
    assert!(list.iter().any(|c| c["anonymous_allowed"] == false));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn report_lands_in_the_covering_grid_with_its_workers_and_no_reporter_identity(pool: PgPool) {
    small_city(&pool).await;
    user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let rider = user(&pool, "rider-li", Role::Rider, &["G-W"]).await;
    let k = key();
    let reply = post_report(&pool, Some(&rider), Some(&k), &report_body("manhole_cover", 118.185, 36.175)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    let body = reply.json();
    assert_eq!(body["status"], "submitted");
    assert_eq!(body["grid_id"], 2);
    assert_eq!(body["grid_code"], "G-E");
    assert_eq!(body["grid_name"], "东网格");
    assert_eq!(body["assignment"], "covers");
    assert_eq!(
        body["assigned_workers"],
        json!([{"display_name": "网格员"}]),
        "no display name: the neutral label, never the login name"
    );
    assert_eq!(body["possible_duplicates"], json!([]));
    assert_eq!(body["location_suspect"], false);
    assert!(body["id"].as_i64().is_some());
    let text = String::from_utf8_lossy(&reply.body);
    assert!(!text.contains("rider-li"), "the reporter is never in the response: {text}");
    assert_eq!(reports_count(&pool).await, 1);
    let history: i64 = sqlx::query_scalar("select count(*) from report_event").fetch_one(&pool).await.expect("count");
    assert_eq!(history, 1, "the submission is the first history row");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn resend_with_the_same_key_returns_the_original_response_and_stores_once(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let k = key();
    let body = report_body("exposed_garbage", 118.175, 36.175);
    let first = post_report(&pool, Some(&rider), Some(&k), &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Same payload with keys in another order and other whitespace: still the same payload.
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{ "location": {{"accuracy_m": 8.0, "crs": "wgs84", "lat": 36.175, "lon": 118.175}}, "description": {}, "category": "exposed_garbage" }}"#,
        body["description"]
    ))
    .expect("json");
    let second = post_report(&pool, Some(&rider), Some(&k), &reordered).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body, first.body, "byte-identical original response");
    assert_eq!(reports_count(&pool).await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn same_key_with_a_different_payload_is_409(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let k = key();
    assert_eq!(
        post_report(&pool, Some(&rider), Some(&k), &report_body("exposed_garbage", 118.175, 36.175)).await.status,
        StatusCode::CREATED
    );
    let other = post_report(&pool, Some(&rider), Some(&k), &report_body("exposed_garbage", 118.176, 36.175)).await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.json()["code"], "conflict");
    // Another account replaying someone's key and payload is a different payload too.
    let other_rider = user(&pool, "rider-wu", Role::Rider, &[]).await;
    let stolen =
        post_report(&pool, Some(&other_rider), Some(&k), &report_body("exposed_garbage", 118.175, 36.175)).await;
    assert_eq!(stolen.status, StatusCode::CONFLICT);
    assert_eq!(reports_count(&pool).await, 1);
}

/// One running server answers a resend of a key it stored from memory (resends.rs): the same
/// bytes for the same payload, 409 for another payload or another account, nothing stored —
/// and a server that never saw the key (a restart) answers the same from the database.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn resends_answered_from_memory_match_the_database(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let other_rider = user(&pool, "rider-wu", Role::Rider, &[]).await;
    let server = gridmap_server::http::AppState::new(pool.clone());
    let post = |state: gridmap_server::http::AppState, token: String, key: String, body: Value| async move {
        let request = Request::post("/api/reports")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("Idempotency-Key", key)
            .body(Body::from(body.to_string()))
            .expect("request");
        crate::common::send_to(&state, request).await
    };
    let k = key();
    let body = report_body("exposed_garbage", 118.175, 36.175);
    let first = post(server.clone(), rider.clone(), k.clone(), body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = post(server.clone(), rider.clone(), k.clone(), body.clone()).await;
    let moved = post(server.clone(), rider.clone(), k.clone(), report_body("exposed_garbage", 118.176, 36.175)).await;
    let stolen = post(server.clone(), other_rider.clone(), k.clone(), body.clone()).await;
    assert_eq!(server.reports.resends.hits(), 3, "all three resends were answered from memory");
    assert_eq!((again.status, &again.body), (StatusCode::CREATED, &first.body), "byte-identical original response");
    assert_eq!((moved.status, stolen.status), (StatusCode::CONFLICT, StatusCode::CONFLICT));
    // A restarted server holds nothing: the database gives the same three answers.
    let restarted = gridmap_server::http::AppState::new(pool.clone());
    let again_db = post(restarted.clone(), rider.clone(), k.clone(), body.clone()).await;
    assert_eq!(restarted.reports.resends.hits(), 0);
    assert_eq!((again_db.status, &again_db.body), (StatusCode::CREATED, &first.body));
    let moved_db =
        post(restarted.clone(), rider.clone(), k.clone(), report_body("exposed_garbage", 118.176, 36.175)).await;
    assert_eq!(moved_db.status, StatusCode::CONFLICT);
    assert_eq!(reports_count(&pool).await, 1);
    let history: i64 = sqlx::query_scalar("select count(*) from report_event").fetch_one(&pool).await.expect("count");
    assert_eq!(history, 1, "resends add no history");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_input_names_the_field_and_stores_nothing(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let good = report_body("manhole_cover", 118.175, 36.175);
    let with = |path: &[&str], value: Value| {
        let mut b = good.clone();
        let mut target = &mut b;
        for p in &path[..path.len() - 1] {
            target = &mut target[*p];
        }
        target[path[path.len() - 1]] = value;
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&["location", "lon"], json!("NaN")), "location.lon"),
        (with(&["location", "lon"], json!(181.0)), "location.lon"),
        (with(&["location", "lat"], json!(-91.0)), "location.lat"),
        (with(&["location", "lat"], Value::Null), "location.lat"),
        (with(&["location", "lon"], json!(9.5)), "location"),
        (with(&["location", "accuracy_m"], json!(150.0)), "location.accuracy_m"),
        (with(&["location", "accuracy_m"], json!(-1.0)), "location.accuracy_m"),
        (with(&["location", "crs"], json!("bd09")), "location.crs"),
        (with(&["category"], json!("ufo_sighting")), "category"),
        (with(&["description"], json!("长".repeat(2001))), "description"),
        (json!({"category": "manhole_cover"}), "location"),
        (json!({"location": {"lon": 118.175, "lat": 36.175}}), "category"),
        (with(&["category"], json!(7)), "category"),
        (with(&["description"], json!(["a"])), "description"),
        (with(&["location"], json!("118.175,36.175")), "location"),
        (with(&["location", "accuracy_m"], json!("5")), "location.accuracy_m"),
        (with(&["colour"], json!("red")), "colour"),
        (with(&["location", "alt"], json!(12.5)), "location.alt"),
        (json!(["manhole_cover"]), "body"),
    ];
    for (body, field) in cases {
        let reply = post_report(&pool, Some(&rider), Some(&key()), &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["field"], field, "{}", String::from_utf8_lossy(&reply.body));
    }
    // Exactly 2,000 characters is fine (the limit is inclusive).
    let ok = post_report(&pool, Some(&rider), Some(&key()), &with(&["description"], json!("长".repeat(2000)))).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    sqlx::query("delete from report_event").execute(&pool).await.ok();
    sqlx::query("delete from report").execute(&pool).await.expect("clean");

    let missing_key = post_report(&pool, Some(&rider), None, &good).await;
    assert_eq!(missing_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing_key.json()["field"], "Idempotency-Key");
    let bad_key = post_report(&pool, Some(&rider), Some("not-a-uuid"), &good).await;
    assert_eq!(bad_key.json()["field"], "Idempotency-Key");
    let text = Request::post("/api/reports")
        .header(header::CONTENT_TYPE, "text/plain")
        .header("Idempotency-Key", key())
        .body(Body::from(good.to_string()))
        .expect("request");
    let reply = send(&pool, text).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.json()["code"], "unsupported_media_type");
    let broken = Request::post("/api/reports")
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key())
        .body(Body::from(r#"{"category": "manhole_cover", "location": {"lon": NaN"#))
        .expect("request");
    assert_eq!(send(&pool, broken).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(reports_count(&pool).await, 0, "nothing stored");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn mock_location_accuracy_zero_is_accepted_but_flagged(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let mut body = report_body("manhole_cover", 118.175, 36.175);
    body["location"]["accuracy_m"] = json!(0);
    let reply = post_report(&pool, Some(&rider), Some(&key()), &body).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json()["location_suspect"], true);
    let flagged: bool = sqlx::query_scalar("select location_suspect from report").fetch_one(&pool).await.expect("row");
    assert!(flagged);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn gcj02_point_lands_in_the_same_grid_as_its_true_wgs84_position(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    // True position: in the west grid, 300 m from the shared edge. GCJ-02 moves it ~500 m.
    let (lon, lat) = (118.1765, 36.175);
    let (g_lon, g_lat) = gcj02::wgs84_to_gcj02(lon, lat);
    assert!(g_lon > 118.18, "taken as WGS84, the GCJ-02 point would fall in the east grid or beyond");
    let raw = post_report(
        &pool,
        Some(&rider),
        Some(&key()),
        &json!({"category": "manhole_cover",
        "location": {"lon": g_lon, "lat": g_lat, "crs": "wgs84", "accuracy_m": 5}}),
    )
    .await;
    assert_ne!(raw.json()["grid_id"], 1, "the trap: without conversion it misses the west grid");
    let converted = post_report(
        &pool,
        Some(&rider),
        Some(&key()),
        &json!({"category": "manhole_cover",
        "location": {"lon": g_lon, "lat": g_lat, "crs": "gcj02", "accuracy_m": 5}}),
    )
    .await;
    assert_eq!(converted.status, StatusCode::CREATED);
    let body = converted.json();
    assert_eq!(body["grid_id"], 1);
    let stored_lon = body["location"]["lon"].as_f64().expect("lon");
    let stored_lat = body["location"]["lat"].as_f64().expect("lat");
    assert!((stored_lon - lon).abs() < 1e-7 && (stored_lat - lat).abs() < 1e-7, "sub-metre: {stored_lon},{stored_lat}");
    assert_eq!(body["input_location"]["crs"], "gcj02");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn report_on_a_grid_edge_goes_to_the_lower_grid_id(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    for (lon, lat) in [(118.18, 36.175), (118.18, 36.17), (118.18, 36.18)] {
        let reply = post_report(&pool, Some(&rider), Some(&key()), &report_body("streetlight", lon, lat)).await;
        assert_eq!(reply.json()["grid_id"], 1, "({lon}, {lat}) on the shared edge/vertex");
    }
    let sql: Option<i64> = sqlx::query_scalar("select gridmap_grid_at(ST_SetSRID(ST_MakePoint(118.18, 36.175), 4326))")
        .fetch_one(&pool)
        .await
        .expect("sql");
    assert_eq!(sql, Some(1));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn point_in_no_grid_goes_to_the_nearest_within_150m_else_the_subdistrict_queue(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    // ~100 m east of the east grid (0.0011° of longitude at 36.17° ≈ 99 m).
    let near = post_report(&pool, Some(&rider), Some(&key()), &report_body("streetlight", 118.1911, 36.175)).await;
    assert_eq!(near.status, StatusCode::CREATED);
    assert_eq!(near.json()["grid_id"], 2);
    assert_eq!(near.json()["assignment"], "nearest");
    // ~300 m east: no grid; queued for the subdistrict of the nearest grid.
    let far = post_report(&pool, Some(&rider), Some(&key()), &report_body("streetlight", 118.1934, 36.175)).await;
    assert_eq!(far.status, StatusCode::CREATED);
    let far = far.json();
    assert_eq!(far["grid_id"], Value::Null);
    assert_eq!(far["assignment"], "unassigned");
    let subdistrict: i64 = sqlx::query_scalar("select id from subdistrict").fetch_one(&pool).await.expect("sd");
    assert_eq!(far["subdistrict_id"], subdistrict);
    let queue = get(&pool, "/api/reports?grid=none").await.json();
    assert_eq!(queue["total"], 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn anonymous_reports_only_for_categories_that_allow_them(pool: PgPool) {
    small_city(&pool).await;
    let ok = post_report(&pool, None, Some(&key()), &report_body("exposed_garbage", 118.175, 36.175)).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let refused = post_report(&pool, None, Some(&key()), &report_body("illegal_construction", 118.175, 36.175)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reports_count(&pool).await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn batch_items_each_get_their_own_key_and_result(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let (k1, k2) = (key(), key());
    let mut a = report_body("manhole_cover", 118.175, 36.175);
    a["idempotency_key"] = json!(k1);
    let mut b = report_body("streetlight", 118.185, 36.175);
    b["idempotency_key"] = json!(k2);
    let mut bad = report_body("streetlight", 118.185, 36.175);
    bad["location"]["accuracy_m"] = json!(500);
    bad["idempotency_key"] = json!(key());
    let mut conflicting = report_body("manhole_cover", 118.1751, 36.175);
    conflicting["idempotency_key"] = json!(k1);
    let batch = json!({"items": [a, b, bad, a, conflicting]});
    let request = Request::post("/api/reports/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {rider}"))
        .body(Body::from(batch.to_string()))
        .expect("request");
    let reply = send(&pool, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let results = reply.json();
    let statuses: Vec<i64> =
        results.as_array().expect("array").iter().map(|r| r["status"].as_i64().expect("status")).collect();
    assert_eq!(statuses, [201, 201, 400, 201, 409]);
    assert_eq!(results[0]["report"], results[3]["report"], "the resend gets the original body");
    assert_eq!(results[1]["report"]["grid_id"], 2);
    assert_eq!(results[2]["error"]["field"], "location.accuracy_m");
    assert_eq!(reports_count(&pool).await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn open_reports_of_the_same_category_nearby_are_possible_duplicates(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let first =
        post_report(&pool, Some(&rider), Some(&key()), &report_body("exposed_garbage", 118.175, 36.175)).await.json();
    // 100 m away, same category (radius 250 m): a possible duplicate.
    let second =
        post_report(&pool, Some(&rider), Some(&key()), &report_body("exposed_garbage", 118.1761, 36.175)).await.json();
    let dups = second["possible_duplicates"].as_array().expect("array");
    assert_eq!(dups.len(), 1);
    assert_eq!(dups[0]["id"], first["id"]);
    assert!((90..=110).contains(&dups[0]["distance_m"].as_i64().expect("distance")));
    // Other category, or too far (~315 m from the first): not offered.
    let other =
        post_report(&pool, Some(&rider), Some(&key()), &report_body("streetlight", 118.1751, 36.175)).await.json();
    assert_eq!(other["possible_duplicates"], json!([]));
    let far =
        post_report(&pool, Some(&rider), Some(&key()), &report_body("exposed_garbage", 118.1785, 36.175)).await.json();
    assert_eq!(far["possible_duplicates"].as_array().expect("array").len(), 1, "only the second is within 250 m");
}

pub async fn transition(pool: &PgPool, token: &str, id: i64, if_match: Option<&str>, body: &Value) -> Reply {
    let mut request = Request::post(format!("/api/reports/{id}/transitions"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(tag) = if_match {
        request = request.header(header::IF_MATCH, tag);
    }
    send(pool, request.body(Body::from(body.to_string())).expect("request")).await
}

async fn step(pool: &PgPool, token: &str, id: i64, to: &str) -> Value {
    let current = get(pool, &format!("/api/reports/{id}")).await;
    let tag = current.headers[header::ETAG].to_str().expect("etag").to_string();
    let reply = transition(pool, token, id, Some(&tag), &json!({"to": to, "note": format!("step {to}")})).await;
    assert_eq!(reply.status, StatusCode::OK, "{to}: {}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn workflow_runs_with_if_match_roles_four_eyes_history_and_stats(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &["G-W"]).await;
    let worker = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let colleague = user(&pool, "gw-west-2", Role::GridWorker, &["G-W"]).await;
    let stranger = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let created =
        post_report(&pool, Some(&rider), Some(&key()), &report_body("manhole_cover", 118.175, 36.175)).await.json();
    let id = created["id"].as_i64().expect("id");

    let body = json!({"to": "accepted"});
    assert_eq!(transition(&pool, &worker, id, None, &body).await.status, StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(transition(&pool, &worker, id, Some("\"7\""), &body).await.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(transition(&pool, &stranger, id, Some("\"1\""), &body).await.status, StatusCode::FORBIDDEN);
    assert_eq!(transition(&pool, &rider, id, Some("\"1\""), &body).await.status, StatusCode::FORBIDDEN);
    let skip = transition(&pool, &worker, id, Some("\"1\""), &json!({"to": "closed"})).await;
    assert_eq!(skip.status, StatusCode::CONFLICT, "cannot skip steps");

    step(&pool, &worker, id, "accepted").await;
    let dispatched = step(&pool, &worker, id, "dispatched").await;
    assert!(dispatched["due_at"].is_string(), "the SLA clock starts at dispatch");
    step(&pool, &worker, id, "handling").await;
    step(&pool, &worker, id, "feedback").await;
    // Four-eyes: the worker who gave feedback cannot verify it.
    let current = get(&pool, &format!("/api/reports/{id}")).await;
    let tag = current.headers[header::ETAG].to_str().expect("etag").to_string();
    assert_eq!(
        transition(&pool, &worker, id, Some(&tag), &json!({"to": "verified"})).await.status,
        StatusCode::FORBIDDEN
    );
    let rework = step(&pool, &colleague, id, "rework").await;
    assert_eq!(rework["rework_count"], 1);
    step(&pool, &worker, id, "handling").await;
    step(&pool, &worker, id, "feedback").await;
    step(&pool, &colleague, id, "verified").await;
    let closed = step(&pool, &colleague, id, "closed").await;
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].is_string());
    let history = closed["history"].as_array().expect("history");
    let path: Vec<&str> = history.iter().map(|h| h["to_status"].as_str().expect("to")).collect();
    assert_eq!(
        path,
        [
            "submitted",
            "accepted",
            "dispatched",
            "handling",
            "feedback",
            "rework",
            "handling",
            "feedback",
            "verified",
            "closed"
        ]
    );
    assert_eq!(history[1]["actor"], "gw-west");
    assert_eq!(history[1]["note"], "step accepted");
    assert_eq!(closed["version"], 10);
    assert_eq!(closed["reporter"]["name"], "rider-li", "workers see the reporter");

    // The public never sees the reporter nor who acted.
    let public = get(&pool, &format!("/api/reports/{id}")).await;
    let text = String::from_utf8_lossy(&public.body);
    assert!(!text.contains("rider-li") && !text.contains("reporter"), "{text}");
    // History is append-only, even in plain SQL.
    assert!(sqlx::query("delete from report_event").execute(&pool).await.is_err());
    assert!(sqlx::query("update report_event set note = 'x'").execute(&pool).await.is_err());

    let stats = get(&pool, "/api/stats?grid=1").await.json();
    assert_eq!(stats["reports"], 1);
    assert_eq!(stats["closure_rate"], 1.0);
    assert_eq!(stats["on_time_closure_rate"], 1.0);
    assert_eq!(stats["rework_rate"], 1.0);
    assert!(stats["median_hours_to_close"].as_f64().is_some_and(|h| h >= 0.0));
    let other = get(&pool, "/api/stats?grid=2").await.json();
    assert_eq!(other["reports"], 0);
    assert_eq!(other["closure_rate"], Value::Null);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn accepted_reports_credit_points_and_a_duplicate_reverses_them(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let worker = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let a =
        post_report(&pool, Some(&rider), Some(&key()), &report_body("exposed_garbage", 118.175, 36.175)).await.json();
    let b =
        post_report(&pool, Some(&rider), Some(&key()), &report_body("exposed_garbage", 118.1751, 36.175)).await.json();
    let (a, b) = (a["id"].as_i64().expect("id"), b["id"].as_i64().expect("id"));
    step(&pool, &worker, a, "accepted").await;
    step(&pool, &worker, b, "accepted").await;
    let me = |token: String| {
        let pool = pool.clone();
        async move {
            let request = Request::get("/api/points/me")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request");
            send(&pool, request).await.json()
        }
    };
    assert_eq!(me(rider.clone()).await["balance"], 20);
    // Cancelling as duplicate needs duplicate_of, then reverses the credit.
    let current = get(&pool, &format!("/api/reports/{b}")).await;
    let tag = current.headers[header::ETAG].to_str().expect("etag").to_string();
    let missing = transition(&pool, &worker, b, Some(&tag), &json!({"to": "cancelled", "reason": "duplicate"})).await;
    assert_eq!(missing.json()["field"], "duplicate_of");
    let dup = transition(
        &pool,
        &worker,
        b,
        Some(&tag),
        &json!({"to": "cancelled", "reason": "duplicate", "duplicate_of": a}),
    )
    .await;
    assert_eq!(dup.status, StatusCode::OK);
    assert_eq!(dup.json()["duplicate_of"], a);
    let points = me(rider.clone()).await;
    assert_eq!(points["balance"], 10);
    assert_eq!(points["entries"].as_array().expect("entries").len(), 3, "append-only: credit, credit, reversal");
    let board = get(&pool, "/api/points/leaderboard").await.json();
    assert_eq!(
        board,
        json!([{"rank": 1, "display_name": "骑手", "points": 10}]),
        "the public board masks names; no login name, not even its first letter"
    );
    assert!(sqlx::query("update points_ledger set delta = 100").execute(&pool).await.is_err());
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn list_filters_by_grid_status_category_bbox_and_time_and_pages(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    for (cat, lon) in [("manhole_cover", 118.171), ("streetlight", 118.172), ("manhole_cover", 118.185)] {
        assert_eq!(
            post_report(&pool, Some(&rider), Some(&key()), &report_body(cat, lon, 36.175)).await.status,
            StatusCode::CREATED
        );
    }
    let total = |uri: &str| {
        let pool = pool.clone();
        let uri = uri.to_string();
        async move { get(&pool, &uri).await.json()["total"].as_i64().expect("total") }
    };
    assert_eq!(total("/api/reports").await, 3);
    assert_eq!(total("/api/reports?grid=1").await, 2);
    assert_eq!(total("/api/reports?category=manhole_cover").await, 2);
    assert_eq!(total("/api/reports?status=submitted,accepted").await, 3);
    assert_eq!(total("/api/reports?status=closed").await, 0);
    assert_eq!(total("/api/reports?bbox=118.17,36.17,118.1715,36.18").await, 1);
    assert_eq!(total("/api/reports?from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z").await, 0);
    let page = get(&pool, "/api/reports?limit=2").await.json();
    assert_eq!(page["items"].as_array().expect("items").len(), 2);
    assert_eq!(page["next"], "/api/reports?limit=2&offset=2");
    assert!(!page.to_string().contains("rider-li"));
    assert_eq!(get(&pool, "/api/reports?status=lost").await.json()["field"], "status");
    assert_eq!(get(&pool, "/api/reports?bbox=1,2,3").await.json()["field"], "bbox");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn hexbins_count_reports_per_h3_cell(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    for lon in [118.1750, 118.17501, 118.1850] {
        post_report(&pool, Some(&rider), Some(&key()), &report_body("manhole_cover", lon, 36.175)).await;
    }
    let reply = get(&pool, "/api/reports/hexbins?res=9").await;
    assert_eq!(reply.status, StatusCode::OK);
    let fc = reply.json();
    assert_eq!(fc["type"], "FeatureCollection");
    let mut counts: Vec<i64> = fc["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["properties"]["count"].as_i64().expect("count"))
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2]);
    assert_eq!(fc["features"][0]["geometry"]["type"], "Polygon");
    assert_eq!(get(&pool, "/api/reports/hexbins?res=12").await.json()["field"], "res");
    assert_eq!(get(&pool, "/api/reports/hexbins?res=9&category=streetlight").await.json()["features"], json!([]));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn grid_change_reassigns_open_reports_and_records_it(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let r = post_report(&pool, Some(&rider), Some(&key()), &report_body("manhole_cover", 118.178, 36.175)).await.json();
    assert_eq!(r["grid_id"], 1);
    // The west grid shrinks; the east grid takes its eastern strip.
    sqlx::query("update grid set geom = ST_Multi(ST_MakeEnvelope(118.17, 36.17, 118.177, 36.18, 4326)) where id = 1")
        .execute(&pool)
        .await
        .expect("shrink");
    sqlx::query("update grid set geom = ST_Multi(ST_MakeEnvelope(118.177, 36.17, 118.19, 36.18, 4326)) where id = 2")
        .execute(&pool)
        .await
        .expect("grow");
    let view = get(&pool, &format!("/api/reports/{}", r["id"])).await.json();
    assert_eq!(view["grid_id"], 2);
    let last = view["history"].as_array().expect("history").last().cloned().expect("row");
    assert_eq!(last["action"], "reassign");
    assert_eq!(last["grid_id"], 2);
    // Re-running the re-assignment is idempotent: nothing is left to move.
    let moved: i32 =
        sqlx::query_scalar("select gridmap_reassign_reports(ST_MakeEnvelope(118.17, 36.17, 118.19, 36.18, 4326))")
            .fetch_one(&pool)
            .await
            .expect("reassign");
    assert_eq!(moved, 0);
    // And a fresh index agrees with the new shapes.
    let state = gridmap_server::http::AppState::new(pool.clone());
    let index = state.reports.index.reload(&pool).await.expect("reload");
    assert_eq!(index.lookup(118.178, 36.175), Some(2));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn openapi_describes_every_api_route_and_docs_are_served(pool: PgPool) {
    let reply = get(&pool, "/api/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    // Every /api route of the router is documented, with its method; the plain routes
    // (health, tiles, OGC, Open311) are not in the document.
    let routes = gridmap_server::http::route_list();
    let api: Vec<_> = routes.iter().filter(|r| r.path.starts_with("/api/")).collect();
    assert!(api.len() >= 25, "the router lists {} /api routes", api.len());
    for route in &routes {
        let (method, path) = (route.method.as_str(), route.path.as_str());
        let in_doc = doc["paths"][path][method.to_lowercase()].is_object();
        assert_eq!(in_doc, route.documented, "{method} {path}: in the document as the router says");
        assert!(route.documented || !path.starts_with("/api/"), "{method} {path}: an /api route is documented");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["paths"]["/api/reports"]["post"]["responses"]["409"].is_object());
    let docs = get(&pool, "/api/docs/").await;
    assert_eq!(docs.status, StatusCode::OK);
    let html = String::from_utf8_lossy(&docs.body);
    assert!(html.contains("swagger"), "Swagger UI page");
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "vendored, no CDN");
}

/// The OpenAPI operations of `/api`, as (method, path, operation).
fn api_operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = Vec::new();
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/api/")) {
        for (method, op) in item.as_object().expect("path item") {
            ops.push((method.clone(), path.clone(), op.clone()));
        }
    }
    ops
}

/// Whether every media type of a `content` map has a schema (an SSE stream may give only the
/// schema of each event, OpenAPI 3.2's `itemSchema`).
fn every_media_type_has_a_schema(content: &Value) -> bool {
    content.as_object().is_some_and(|c| {
        !c.is_empty()
            && c.values().all(|m| m["schema"].as_object().is_some_and(|s| !s.is_empty()) || m["itemSchema"].is_object())
    })
}

/// What one operation fails to document: a 2xx body without a schema, a write without a
/// request body, a path parameter not in `parameters`, a 4xx without the error schema.
fn documentation_gaps(method: &str, path: &str, op: &Value) -> Vec<String> {
    // The writes that take no body: logout acts on the bearer token, the revocations, ending a
    // leader's term, closing a round and confirming a hand-over on the path.
    const BODYLESS: [(&str, &str); 7] = [
        ("post", "/api/auth/logout"),
        ("post", "/api/admin/accounts/{id}/revoke-tokens"),
        ("post", "/api/admin/api-keys/{id}/revoke"),
        ("post", "/api/leaders/{id}/end"),
        ("post", "/api/rounds/{id}/close"),
        ("post", "/api/points/redemptions/{id}/handover"),
        ("post", "/api/emergency/{id}/tasks/{task}/done"),
    ];
    let mut gaps = Vec::new();
    let responses = op["responses"].as_object().cloned().unwrap_or_default();
    for (status, response) in &responses {
        if status.starts_with('2') && status != "204" && !every_media_type_has_a_schema(&response["content"]) {
            gaps.push(format!("{method} {path}: {status} has no body schema"));
        }
        if status.starts_with('4')
            && response["content"]["application/json"]["schema"]["$ref"] != "#/components/schemas/ErrorBody"
        {
            gaps.push(format!("{method} {path}: {status} does not use ErrorBody"));
        }
    }
    let writes = matches!(method, "post" | "put" | "patch");
    if writes && !BODYLESS.contains(&(method, path)) && !every_media_type_has_a_schema(&op["requestBody"]["content"]) {
        gaps.push(format!("{method} {path}: no request body schema"));
    }
    let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
    for name in path.split('{').skip(1).filter_map(|rest| rest.split_once('}')).map(|(name, _)| name) {
        if !parameters.iter().any(|p| p["name"] == name && p["in"] == "path") {
            gaps.push(format!("{method} {path}: path parameter `{name}` undocumented"));
        }
    }
    gaps
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn openapi_operations_document_bodies_parameters_and_error_bodies(pool: PgPool) {
    let doc = get(&pool, "/api/openapi.json").await.json();
    let ops = api_operations(&doc);
    assert!(ops.len() >= 25, "{} /api operations", ops.len());
    let mut gaps: Vec<String> = ops.iter().flat_map(|(m, p, op)| documentation_gaps(m, p, op)).collect();
    // Query and header parameters cannot be read off the path: the ones handlers require.
    for (method, path, names) in [
        ("get", "/api/stations", &["q"][..]),
        ("get", "/api/stations/nearest", &["lon", "lat", "limit"]),
        ("get", "/api/grids/at", &["lon", "lat"]),
        ("get", "/api/grids/gaps", &["min_area"]),
        ("get", "/api/grids/balance", &["min", "max"]),
        ("post", "/api/grids/{id}/revert", &["If-Match"]),
        ("post", "/api/grids/{id}/split", &["If-Match"]),
        ("post", "/api/reports", &["Idempotency-Key"]),
        ("post", "/api/points/redemptions", &["Idempotency-Key"]),
        ("patch", "/api/points/catalogue/{id}", &["If-Match"]),
        ("get", "/api/points/rankings", &["group", "year"]),
    ] {
        let parameters = doc["paths"][path][method]["parameters"].as_array().cloned().unwrap_or_default();
        for name in names {
            if !parameters.iter().any(|p| p["name"] == *name) {
                gaps.push(format!("{method} {path}: parameter `{name}` undocumented"));
            }
        }
    }
    let intake = &doc["paths"]["/api/reports"]["post"]["requestBody"]["content"];
    if !intake["multipart/form-data"]["schema"].is_object() {
        gaps.push("post /api/reports: the multipart variant is undocumented".into());
    }
    if !doc["paths"]["/api/reports/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"].is_object() {
        gaps.push("get /api/reports/stream: not documented as text/event-stream".into());
    }
    if !doc["paths"]["/api/auth/login"]["post"]["responses"]["429"].is_object() {
        gaps.push("post /api/auth/login: the rate limit (429) is undocumented".into());
    }
    assert!(gaps.is_empty(), "{} gaps in /api/openapi.json:\n{}", gaps.len(), gaps.join("\n"));
}

/// The properties of a component schema, following `allOf` (a flattened struct) and `$ref`.
fn schema_properties(doc: &Value, schema: &Value) -> (Vec<String>, Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().expect("a $ref has a name");
        return schema_properties(doc, &doc["components"]["schemas"][name]);
    }
    let mut properties: Vec<String> =
        schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = schema_properties(doc, part);
        properties.extend(p);
        required.extend(r);
    }
    (properties, required)
}

/// A real body fits its documented schema: no undocumented keys, no missing required ones.
fn assert_fits(doc: &Value, schema: &str, body: &Value) {
    let (properties, required) = schema_properties(doc, &json!({"$ref": format!("#/components/schemas/{schema}")}));
    assert!(!properties.is_empty(), "schema {schema} is documented with properties");
    let keys: Vec<&String> = body.as_object().expect("an object body").keys().collect();
    let extra: Vec<_> = keys.iter().filter(|k| !properties.contains(k)).collect();
    let missing: Vec<_> = required.iter().filter(|r| !keys.contains(r)).collect();
    assert!(extra.is_empty() && missing.is_empty(), "{schema}: undocumented {extra:?}, missing {missing:?} in {body}");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn openapi_schemas_match_the_bodies_the_server_sends(pool: PgPool) {
    let doc = get(&pool, "/api/openapi.json").await.json();
    small_city(&pool).await;
    sqlx::query(
        "insert into station (name, geom, services) values ('驿站', 'SRID=4326;POINT(118.175 36.176)', '{water}')",
    )
    .execute(&pool)
    .await
    .expect("station");
    let rider = user(&pool, "rider-li", Role::Rider, &["G-W"]).await;
    let planner = user(&pool, "planner-wang", Role::Planner, &[]).await;
    let admin = user(&pool, "admin-zhao", Role::Admin, &[]).await;
    for _ in 0..2 {
        let created =
            post_report(&pool, Some(&rider), Some(&key()), &report_body("manhole_cover", 118.175, 36.175)).await;
        assert_eq!(created.status, StatusCode::CREATED);
        assert_fits(&doc, "CreatedReport", &created.json());
        assert_fits(&doc, "ReportPoint", &created.json()["input_location"]);
        if let Some(duplicate) = created.json()["possible_duplicates"].get(0) {
            assert_fits(&doc, "PossibleDuplicate", duplicate);
        }
    }
    let login = crate::common::send_json(
        &pool,
        "POST",
        "/api/auth/login",
        &json!({"name": "rider-li", "password": "rider-li-password-123"}),
    )
    .await;
    assert_fits(&doc, "LoginResponse", &login.json());
    assert_fits(&doc, "ErrorBody", &get(&pool, "/api/grids/at?lon=200&lat=36.175").await.json());
    let split = Request::post("/api/grids/1/split")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {planner}"))
        .header(header::IF_MATCH, "\"1\"")
        .body(Body::from(
            json!({"line": {"type": "LineString", "coordinates": [[118.0, 36.0], [118.01, 36.0]]}}).to_string(),
        ))
        .expect("request");
    let unprocessable = send(&pool, split).await;
    assert_eq!(unprocessable.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_fits(&doc, "ErrorBody", &unprocessable.json());
    assert_fits(&doc, "GridAt", &get(&pool, "/api/grids/at?lon=118.175&lat=36.175").await.json());
    let history = get(&pool, "/api/grids/1/history").await.json();
    assert_fits(&doc, "GridHistory", &history);
    assert_fits(&doc, "GridVersion", &history["versions"][0]);
    let balance = get(&pool, "/api/grids/balance").await.json();
    assert_fits(&doc, "GridBalance", &balance);
    assert_fits(&doc, "UnbalancedGrid", &balance["grids"][0]);
    assert_fits(&doc, "GridNeighbour", &balance["grids"][0]["neighbours"][0]);
    let nearest = get(&pool, "/api/stations/nearest?lon=118.175&lat=36.175").await.json();
    assert_fits(&doc, "NearestStations", &nearest);
    assert_fits(&doc, "NearStation", &nearest["stations"][0]);
    assert_fits(&doc, "StationList", &get(&pool, "/api/stations").await.json());
    assert_fits(&doc, "GridGaps", &get(&pool, "/api/grids/gaps").await.json());
    let merge = Request::post("/api/grids/merge")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {planner}"))
        .body(Body::from(json!({"grids": [{"id": 1, "version": 1}, {"id": 2, "version": 1}]}).to_string()))
        .expect("request");
    let merged = send(&pool, merge).await;
    assert_eq!(merged.status, StatusCode::OK, "{}", String::from_utf8_lossy(&merged.body));
    assert_fits(&doc, "MergeResult", &merged.json());
    assert_fits(&doc, "GridSummary", &merged.json()["grid"]);
    let as_admin = |request: axum::http::request::Builder| {
        request.header(header::AUTHORIZATION, format!("Bearer {admin}")).body(Body::empty()).expect("request")
    };
    let accounts = send(&pool, as_admin(Request::get("/api/admin/accounts"))).await.json();
    assert_fits(&doc, "AccountView", &accounts[0]);
    let revoked = send(&pool, as_admin(Request::post("/api/admin/accounts/1/revoke-tokens"))).await.json();
    assert_fits(&doc, "Revoked", &revoked);
}

fn multipart(parts: &[(&str, Option<&str>, &str, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "gridmap-test-boundary";
    let mut body = Vec::new();
    for (name, filename, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes()),
        }
        body.extend_from_slice(format!("Content-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn jpeg_with_gps_exif() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8];
    let exif = b"Exif\0\0GPSLatitude=36.18";
    b.extend_from_slice(&[0xFF, 0xE1]);
    b.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    b.extend_from_slice(exif);
    b.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x04, 0x01, 0x02, 0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22, 0xFF, 0xD9]);
    b
}

pub async fn post_multipart(pool: &PgPool, token: &str, parts: &[(&str, Option<&str>, &str, Vec<u8>)]) -> Reply {
    let (content_type, body) = multipart(parts);
    let request = Request::post("/api/reports")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("Idempotency-Key", key())
        .body(Body::from(body))
        .expect("request");
    send(pool, request).await
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn multipart_photos_are_checked_by_content_and_stored_without_exif(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let report = report_body("manhole_cover", 118.175, 36.175).to_string().into_bytes();
    let ok = post_multipart(
        &pool,
        &rider,
        &[
            ("report", None, "application/json", report.clone()),
            ("photo", Some("a.png"), "image/png", jpeg_with_gps_exif()),
        ],
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.json()["photo_count"], 1);
    let (media_type, bytes): (String, Vec<u8>) =
        sqlx::query_as("select media_type, bytes from report_photo").fetch_one(&pool).await.expect("photo");
    assert_eq!(media_type, "image/jpeg", "decided by content, not by the name or the declared type");
    assert!(!bytes.windows(11).any(|w| w == b"GPSLatitude"), "EXIF stripped");

    let fake = post_multipart(
        &pool,
        &rider,
        &[
            ("report", None, "application/json", report.clone()),
            ("photo", Some("x.jpg"), "image/jpeg", b"MZ this is an executable".to_vec()),
        ],
    )
    .await;
    assert_eq!(fake.status, StatusCode::BAD_REQUEST);
    assert_eq!(fake.json()["field"], "photo");
    let four: Vec<_> = std::iter::once(("report", None, "application/json", report.clone()))
        .chain((0..4).map(|_| ("photo", Some("p.jpg"), "image/jpeg", jpeg_with_gps_exif())))
        .collect();
    assert_eq!(post_multipart(&pool, &rider, &four).await.json()["field"], "photo");
    let mut big = jpeg_with_gps_exif();
    big.resize(5 * 1024 * 1024 + 10, 0);
    let too_big = post_multipart(
        &pool,
        &rider,
        &[("report", None, "application/json", report), ("photo", Some("big.jpg"), "image/jpeg", big)],
    )
    .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.json()["field"], "photo", "the 413 names the field");
    assert_eq!(reports_count(&pool).await, 1);
}

/// A stored photo is served — stripped, with its type — to the sender and the grid's worker,
/// and to nobody without a login or without a part in the report.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_reports_photo_is_served_to_its_handlers_and_sender_only(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let other_rider = user(&pool, "rider-wu", Role::Rider, &[]).await;
    let worker = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let east_worker = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let report = report_body("manhole_cover", 118.175, 36.175).to_string().into_bytes();
    let ok = post_multipart(
        &pool,
        &rider,
        &[("report", None, "application/json", report), ("photo", Some("a.jpg"), "image/jpeg", jpeg_with_gps_exif())],
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&ok.body));
    let id = ok.json()["id"].as_i64().expect("id");
    let stored: Vec<u8> = sqlx::query_scalar("select bytes from report_photo").fetch_one(&pool).await.expect("photo");
    let fetch = |token: Option<String>, n: i64| {
        let pool = pool.clone();
        async move {
            let mut request = Request::get(format!("/api/reports/{id}/photos/{n}"));
            if let Some(t) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            crate::common::send(&pool, request.body(Body::empty()).expect("request")).await
        }
    };
    for token in [&worker, &rider] {
        let photo = fetch(Some(token.clone()), 1).await;
        assert_eq!(photo.status, StatusCode::OK);
        assert_eq!(photo.headers[header::CONTENT_TYPE], "image/jpeg");
        assert!(photo.headers[header::CACHE_CONTROL].to_str().expect("ascii").starts_with("private"));
        assert_eq!(photo.body, stored, "the stripped copy");
        assert!(!photo.body.windows(11).any(|w| w == b"GPSLatitude"));
    }
    assert_eq!(fetch(None, 1).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fetch(Some(other_rider), 1).await.status, StatusCode::FORBIDDEN);
    assert_eq!(fetch(Some(east_worker), 1).await.status, StatusCode::FORBIDDEN);
    let missing = fetch(Some(worker.clone()), 2).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["code"], "not_found");
    assert_eq!(fetch(Some(worker), 0).await.status, StatusCode::NOT_FOUND);
}

/// A transition sent as multipart: the JSON in a part `transition`, photos in parts `photo`.
async fn transition_multipart(
    pool: &PgPool,
    token: &str,
    id: i64,
    if_match: &str,
    parts: &[(&str, Option<&str>, &str, Vec<u8>)],
) -> Reply {
    let (content_type, body) = multipart(parts);
    let request = Request::post(format!("/api/reports/{id}/transitions"))
        .header(header::CONTENT_TYPE, content_type)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::IF_MATCH, if_match)
        .body(Body::from(body))
        .expect("request");
    send(pool, request).await
}

/// The grid worker's "after" photo goes with the feedback step: checked by content, stripped of
/// EXIF like an intake photo, stored in the step's transaction and served to the same people as
/// the intake photos; photos with any other step, or a file that is no image, store nothing.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn feedback_carries_an_after_photo_stripped_and_shown_to_the_reports_handlers_and_sender(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let other_rider = user(&pool, "rider-wu", Role::Rider, &[]).await;
    let worker = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let east_worker = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let admin = user(&pool, "admin-zhao", Role::Admin, &[]).await;
    let id = post_report(&pool, Some(&rider), Some(&key()), &report_body("manhole_cover", 118.175, 36.175))
        .await
        .json()["id"]
        .as_i64()
        .expect("id");
    for to in ["accepted", "dispatched"] {
        step(&pool, &admin, id, to).await;
    }
    let photo_parts = |to: &str, photo: Vec<u8>| {
        vec![
            ("transition", None, "application/json", json!({"to": to, "note": "已修复"}).to_string().into_bytes()),
            ("photo", Some("after.jpg"), "image/jpeg", photo),
        ]
    };
    // A photo with a step other than feedback: refused, nothing stored, the version unchanged.
    let early = transition_multipart(&pool, &worker, id, "\"3\"", &photo_parts("handling", jpeg_with_gps_exif())).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&early.body));
    assert_eq!(early.json()["field"], "photo");
    assert_eq!(early.json()["reason"], "feedback_photo");
    step(&pool, &worker, id, "handling").await;
    let fake =
        transition_multipart(&pool, &worker, id, "\"4\"", &photo_parts("feedback", b"MZ an executable".to_vec())).await;
    assert_eq!(fake.status, StatusCode::BAD_REQUEST);
    assert_eq!(fake.json()["field"], "photo");
    let unknown = transition_multipart(
        &pool,
        &worker,
        id,
        "\"4\"",
        &[
            ("transition", None, "application/json", json!({"to": "feedback"}).to_string().into_bytes()),
            ("x", None, "text/plain", b"1".to_vec()),
        ],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["field"], "x");
    let missing = transition_multipart(
        &pool,
        &worker,
        id,
        "\"4\"",
        &[("photo", Some("a.jpg"), "image/jpeg", jpeg_with_gps_exif())],
    )
    .await;
    assert_eq!(missing.json()["field"], "transition");
    let photos: i64 = sqlx::query_scalar("select count(*) from report_photo").fetch_one(&pool).await.expect("count");
    assert_eq!(photos, 0, "nothing stored by a refused step");

    let done = transition_multipart(&pool, &worker, id, "\"4\"", &photo_parts("feedback", jpeg_with_gps_exif())).await;
    assert_eq!(done.status, StatusCode::OK, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.json()["status"], "feedback");
    assert_eq!(done.json()["feedback_photo_count"], 1);
    assert_eq!(done.json()["photo_count"], 0, "the intake photos are the rider's alone");
    let (stored, event_status): (Vec<u8>, String) = sqlx::query_as(
        "select p.bytes, e.to_status from report_photo p join report_event e on e.id = p.event_id where p.report_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("the photo belongs to the feedback step");
    assert_eq!(event_status, "feedback");
    assert!(!stored.windows(11).any(|w| w == b"GPSLatitude"), "EXIF stripped");

    let fetch = |token: Option<String>, path: String| {
        let pool = pool.clone();
        async move {
            let mut request = Request::get(path);
            if let Some(t) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            crate::common::send(&pool, request.body(Body::empty()).expect("request")).await
        }
    };
    let after = format!("/api/reports/{id}/feedback-photos/1");
    for token in [&worker, &rider, &admin] {
        let photo = fetch(Some(token.clone()), after.clone()).await;
        assert_eq!(photo.status, StatusCode::OK);
        assert_eq!(photo.headers[header::CONTENT_TYPE], "image/jpeg");
        assert!(photo.headers[header::CACHE_CONTROL].to_str().expect("ascii").starts_with("private"));
        assert_eq!(photo.body, stored);
    }
    assert_eq!(fetch(None, after.clone()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fetch(Some(other_rider), after.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(fetch(Some(east_worker), after).await.status, StatusCode::FORBIDDEN);
    for n in ["2", "0", "-1"] {
        let reply = fetch(Some(worker.clone()), format!("/api/reports/{id}/feedback-photos/{n}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "photo {n}");
    }
    let bad = fetch(Some(worker.clone()), format!("/api/reports/{id}/feedback-photos/x")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // The after photo is not an intake photo.
    assert_eq!(fetch(Some(worker), format!("/api/reports/{id}/photos/1")).await.status, StatusCode::NOT_FOUND);
    // Anonymous viewers see the count, never the picture.
    let public = get(&pool, &format!("/api/reports/{id}")).await.json();
    assert_eq!(public["feedback_photo_count"], 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn live_feed_streams_new_reports_of_the_workers_grid(pool: PgPool) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let worker = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let state = gridmap_server::http::AppState::new(pool.clone());
    let app = gridmap_server::http::app(state);
    let anonymous =
        app.clone().oneshot(Request::get("/api/reports/stream").body(Body::empty()).expect("req")).await.expect("resp");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .clone()
        .oneshot(
            Request::get("/api/reports/stream")
                .header(header::AUTHORIZATION, format!("Bearer {worker}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("resp");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    for (lon, k) in [(118.175, key()), (118.185, key())] {
        let request = Request::post("/api/reports")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {rider}"))
            .header("Idempotency-Key", k)
            .body(Body::from(report_body("manhole_cover", lon, 36.175).to_string()))
            .expect("req");
        assert_eq!(app.clone().oneshot(request).await.expect("resp").status(), StatusCode::CREATED);
    }
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("an event within 5 s")
        .expect("a frame")
        .expect("ok frame");
    let text = String::from_utf8(frame.into_data().expect("data").to_vec()).expect("utf8");
    assert!(text.contains("event: report"), "{text}");
    assert!(text.contains("\"grid_id\":2"), "only the worker's grid (the west report was filtered): {text}");
    assert!(!text.contains("rider-li"));
}

/// The nearest-first duplicate search (migration 0007) gives what the full search would: the 20
/// nearest open reports of the category within the radius, by geodesic distance — never closed
/// or cancelled ones, even when those are nearer.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn duplicates_are_the_20_nearest_open_reports_as_a_full_search_finds_them(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    // 60 reports on a spiral 5–300 m around the spot; the 6 nearest closed or cancelled.
    sqlx::query(
        "insert into report (category, geom, input_lon, input_lat, input_crs, assignment, status)
         select 'exposed_garbage',
                ST_Project(ST_SetSRID(ST_MakePoint(118.175, 36.175), 4326)::geography, i * 5.0, radians(i * 47))::geometry,
                0, 0, 'wgs84', 'covers', case when i <= 3 then 'closed' when i <= 6 then 'cancelled' else 'submitted' end
           from generate_series(1, 60) i",
    )
    .execute(&pool)
    .await
    .expect("reports");
    let reply =
        post_report(&pool, Some(&rider), Some(&key()), &report_body("exposed_garbage", 118.175, 36.175)).await.json();
    let got: Vec<i64> =
        reply["possible_duplicates"].as_array().expect("array").iter().map(|d| d["id"].as_i64().expect("id")).collect();
    let want: Vec<i64> = sqlx::query_scalar(
        "select id from report, (select ST_SetSRID(ST_MakePoint(118.175, 36.175), 4326)::geography g) p
          where category = 'exposed_garbage' and status not in ('cancelled', 'closed') and id <> $1
            and ST_DWithin(geom::geography, p.g, 250)
          order by ST_Distance(geom::geography, p.g), id limit 20",
    )
    .bind(reply["id"].as_i64().expect("id"))
    .fetch_all(&pool)
    .await
    .expect("reference");
    assert_eq!(want.len(), 20, "44 open reports lie within 250 m; 20 are offered");
    assert_eq!(got, want);
}
