//! The live feed follows reports that move to another grid when grids are re-drawn — by any
//! writer (here plain SQL, as an import or QGIS would): both the grid left and the grid entered
//! hear of it.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

use crate::reports::{report_body, small_city, user};
use gridmap_server::config::Role;
use gridmap_server::http::{AppState, app};

/// Open the feed as this token's holder (a grid worker gets the grids they work).
async fn subscribe(state: &AppState, token: &str) -> Body {
    let request = Request::get("/api/reports/stream")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let response = app(state.clone()).oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body()
}

/// The next `report` event's data, skipping keep-alive comments.
async fn next_event(body: &mut Body) -> Value {
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10 s")
            .expect("a frame")
            .expect("an ok frame");
        let text = String::from_utf8(frame.into_data().expect("data").to_vec()).expect("utf8");
        if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
            assert!(text.contains("event: report"), "{text}");
            return serde_json::from_str(data).expect("json data");
        }
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_report_moved_by_a_grid_redraw_reaches_the_worker_of_each_grid(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let west = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let east = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let state = AppState::new(pool.clone());
    gridmap_server::reports::spawn_grid_listener(pool.clone(), state.reports.clone());
    let mut west_feed = subscribe(&state, &west).await;
    let mut east_feed = subscribe(&state, &east).await;

    let request = Request::post("/api/reports")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {rider}"))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .body(Body::from(report_body("manhole_cover", 118.185, 36.175).to_string()))
        .expect("request");
    let created = app(state.clone()).oneshot(request).await.expect("response");
    assert_eq!(created.status(), StatusCode::CREATED);
    let first = next_event(&mut east_feed).await;
    assert_eq!((first["kind"].as_str(), first["grid_id"].as_i64()), (Some("created"), Some(2)));
    let id = first["id"].as_i64().expect("id");

    // The border moves east past the report: G-W (id 1) now covers it.
    sqlx::query(
        "update grid set geom = case code
             when 'G-W' then ST_Multi(ST_MakeEnvelope(118.17, 36.17, 118.188, 36.18, 4326))
             else ST_Multi(ST_MakeEnvelope(118.188, 36.17, 118.19, 36.18, 4326)) end",
    )
    .execute(&pool)
    .await
    .expect("redraw");
    for feed in [&mut west_feed, &mut east_feed] {
        let moved = next_event(feed).await;
        assert_eq!(moved["kind"], "reassign", "{moved}");
        assert_eq!(moved["id"].as_i64(), Some(id));
        assert_eq!(moved["grid_id"].as_i64(), Some(1), "the grid entered");
        assert_eq!(moved["previous_grid_id"].as_i64(), Some(2), "the grid left");
        assert_eq!(moved["version"].as_i64(), Some(2));
        assert_eq!(moved["status"], "submitted");
        assert!(!moved.to_string().contains("rider-li"), "no reporter identity");
    }
    let stored: i32 =
        sqlx::query_scalar("select version from report where id = $1").bind(id).fetch_one(&pool).await.expect("v");
    assert_eq!(stored, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn reports_reach_the_feed_in_order_and_a_storm_of_commits_costs_one_history_read_per_20_ms(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let east = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let mut state = AppState::new(pool.clone());
    // One rider sends them all: lift the per-token write limit (a burst of 40) for this test.
    let many = governor::Quota::per_second(std::num::NonZeroU32::new(1000).expect("non-zero"))
        .allow_burst(std::num::NonZeroU32::new(1000).expect("non-zero"));
    state.limits = gridmap_server::http::limits::Limits::with_quotas(many, many);
    let mut feed = subscribe(&state, &east).await;
    let mut ids = Vec::new();
    // Each report is its own commit: before READ_EVERY the follower read the history after
    // every one of them.
    for n in 0..150 {
        let request = Request::post("/api/reports")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {rider}"))
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .body(Body::from(report_body("manhole_cover", 118.181 + f64::from(n) * 0.00005, 36.175).to_string()))
            .expect("request");
        let created = app(state.clone()).oneshot(request).await.expect("response");
        assert_eq!(created.status(), StatusCode::CREATED);
        let body: Value =
            serde_json::from_slice(&created.into_body().collect().await.expect("body").to_bytes()).expect("json");
        ids.push(body["id"].as_i64().expect("id"));
    }
    let mut heard = Vec::new();
    while heard.len() < ids.len() {
        let event = next_event(&mut feed).await;
        assert_eq!(event["kind"], "created", "{event}");
        heard.push(event["id"].as_i64().expect("id"));
    }
    assert_eq!(heard, ids, "every report, once, in the order written");

    // Woken after every commit (here a write announced each millisecond for 300 ms, faster than
    // this debug build commits), the follower still reads the history once per READ_EVERY.
    let every = gridmap_server::reports::feed::READ_EVERY;
    let reads_before = state.reports.feed.reads();
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(300) {
        state.reports.feed.wrote(*ids.last().expect("an id"));
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let reads = state.reports.feed.reads() - reads_before;
    let allowed = elapsed.as_millis() / every.as_millis() + 2;
    assert!(
        u128::from(reads) <= allowed,
        "{reads} reads of the history in {elapsed:?} of wakes: at most one per {every:?} ({allowed})"
    );
    assert!(reads >= 5, "{reads} reads in {elapsed:?}: the follower reads while woken");
}
