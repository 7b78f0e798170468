//! The duplicate search in memory (`reports/open_reports.rs`): it answers what the same search in
//! PostGIS answers (`SQL_SEARCH`), and it follows this server's intake and transitions at once and
//! other writers' SQL through NOTIFY.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{Reply, send_to};
use crate::reports::{report_body, small_city, user};
use gridmap_server::config::Role;
use gridmap_server::http::AppState;
use gridmap_server::reports::open_reports::OpenReports;

/// The reference: the nearest 20 open reports of the category (EPSG:3857 order; Web Mercator is
/// conformal, so over a few hundred metres its distance order is the true one), then those within
/// the radius, measured geodesically and rounded to whole metres.
const SQL_SEARCH: &str = "
    select coalesce(jsonb_agg(d order by d.distance_m, d.id), '[]'::jsonb)
      from (select c.id, c.status, c.created_at,
                   round(ST_Distance(c.geom::geography, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography))::integer
                       as distance_m
              from (select r.id, r.status, r.created_at, r.geom
                      from report r
                     where r.category = $1 and r.status not in ('cancelled', 'closed')
                     order by r.geom_3857 <-> ST_Transform(ST_SetSRID(ST_MakePoint($2, $3), 4326), 3857)
                     limit 20) c
             where ST_DWithin(c.geom::geography, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, $4)) d";

/// 1,500 reports of three categories in every status, packed into 1.2 km (dozens within any
/// radius); 600 searches compared with the SQL search: same ids, order, statuses and metres.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn in_memory_duplicates_match_the_sql_search(pool: PgPool) {
    small_city(&pool).await;
    sqlx::query(
        "insert into report (category, geom, input_lon, input_lat, input_crs, assignment, status, created_at)
         select (array['exposed_garbage', 'manhole_cover', 'streetlight'])[1 + (i % 3)],
                ST_SetSRID(ST_MakePoint(118.169 + random() * 0.013, 36.169 + random() * 0.011), 4326),
                0, 0, 'wgs84', 'covers',
                (array['submitted', 'accepted', 'dispatched', 'closed', 'cancelled', 'rework'])[1 + (i % 6)],
                now() - i * interval '1 minute'
           from generate_series(1, 1500) i",
    )
    .execute(&pool)
    .await
    .expect("reports");
    let open = OpenReports::default();
    assert_eq!(open.reload(&pool).await.expect("load"), 1000, "closed and cancelled stay out");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut offered = 0;
    for n in 0..600 {
        let category = ["exposed_garbage", "manhole_cover", "streetlight"][n % 3];
        let radius = [250.0, 100.0, 30.0][n / 3 % 3];
        let (lon, lat) = (rng.random_range(118.166..118.185), rng.random_range(36.166..36.183));
        let memory = serde_json::to_value(open.search(category, lon, lat, radius)).expect("json");
        let sql: Value = sqlx::query_scalar(SQL_SEARCH)
            .bind(category)
            .bind(lon)
            .bind(lat)
            .bind(radius)
            .fetch_one(&pool)
            .await
            .expect("sql search");
        let key = |list: &Value| -> Vec<(i64, String, i64)> {
            list.as_array()
                .expect("array")
                .iter()
                .map(|d| {
                    (
                        d["id"].as_i64().expect("id"),
                        d["status"].as_str().expect("status").to_string(),
                        d["distance_m"].as_i64().expect("m"),
                    )
                })
                .collect()
        };
        assert_eq!(key(&memory), key(&sql), "{category} within {radius} m of ({lon}, {lat})");
        offered += key(&memory).len();
    }
    assert!(offered > 2000, "the searches found duplicates to compare ({offered})");
}

async fn post(state: &AppState, token: &str, lon: f64, lat: f64) -> Value {
    let request = Request::post("/api/reports")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .body(Body::from(report_body("exposed_garbage", lon, lat).to_string()))
        .expect("request");
    let reply = send_to(state, request).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

fn ids(report: &Value) -> Vec<i64> {
    report["possible_duplicates"].as_array().expect("array").iter().map(|d| d["id"].as_i64().expect("id")).collect()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One long-lived server state, as in production: a new report is offered to the next one at
/// once, a cancelled one no longer, and a report closed or added by plain SQL follows within
/// moments (the listener hears the report trigger's NOTIFY and reloads).
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn duplicates_follow_intake_transitions_and_other_writers(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &["G-W"]).await;
    let worker = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let state = AppState::new(pool.clone());
    gridmap_server::reports::spawn_grid_listener(pool.clone(), state.reports.clone());
    let open = state.reports.open.clone();
    wait_for("the first load", || open.loaded_count().is_some()).await;

    let a = post(&state, &rider, 118.175, 36.175).await;
    let b = post(&state, &rider, 118.1755, 36.175).await;
    let a_id = a["id"].as_i64().expect("id");
    let b_id = b["id"].as_i64().expect("id");
    assert_eq!(ids(&b), vec![a_id], "a report is offered to the next one at once");

    let current =
        send_to(&state, Request::get(format!("/api/reports/{a_id}")).body(Body::empty()).expect("request")).await;
    let tag = current.headers[header::ETAG].to_str().expect("etag").to_string();
    let cancel = Request::post(format!("/api/reports/{a_id}/transitions"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {worker}"))
        .header(header::IF_MATCH, tag)
        .body(Body::from(json!({"to": "cancelled", "reason": "invalid"}).to_string()))
        .expect("request");
    let reply: Reply = send_to(&state, cancel).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let c = post(&state, &rider, 118.1752, 36.1751).await;
    let c_id = c["id"].as_i64().expect("id");
    assert_eq!(ids(&c), vec![b_id], "the cancelled report is no longer offered");
    let metrics = send_to(&state, Request::get("/metrics").body(Body::empty()).expect("request")).await;
    assert!(String::from_utf8_lossy(&metrics.body).contains("gridmap_open_reports 2\n"), "B and C are open");

    // Another writer (this pool's sessions are not the server's: the trigger announces them).
    sqlx::query("update report set status = 'closed' where id = $1").bind(b_id).execute(&pool).await.expect("close");
    let external: i64 = sqlx::query_scalar(
        "insert into report (category, geom, input_lon, input_lat, input_crs, assignment)
         values ('exposed_garbage', ST_SetSRID(ST_MakePoint(118.1753, 36.1752), 4326), 0, 0, 'wgs84', 'covers') returning id",
    )
    .fetch_one(&pool)
    .await
    .expect("insert");
    wait_for("the SQL writes to reach the duplicate search", || {
        let found: Vec<i64> = open.search("exposed_garbage", 118.1754, 36.1751, 250.0).iter().map(|d| d.id).collect();
        found.contains(&external) && !found.contains(&b_id) && found.contains(&c_id)
    })
    .await;
}

/// The "open" statuses live once in Rust (`ReportStatus::is_open`) and once in SQL
/// (`gridmap_report_is_open`): the two agree on every status and on text that is no status.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn open_statuses_agree_in_rust_and_sql(pool: PgPool) {
    use gridmap_server::reports::status::ReportStatus;
    for status in ReportStatus::ALL {
        let in_sql: bool = sqlx::query_scalar("select gridmap_report_is_open($1)")
            .bind(status.as_str())
            .fetch_one(&pool)
            .await
            .expect("ask SQL");
        assert_eq!(in_sql, status.is_open(), "{status}");
        assert_eq!(gridmap_server::reports::open_reports::is_open(status.as_str()), status.is_open(), "{status}");
    }
    let unknown: bool =
        sqlx::query_scalar("select gridmap_report_is_open('lost')").fetch_one(&pool).await.expect("ask SQL");
    assert_eq!(unknown, gridmap_server::reports::open_reports::is_open("lost"), "text that is no status");
}
