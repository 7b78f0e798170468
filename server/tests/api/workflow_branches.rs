//! Branches of the report workflow that the main path in `reports.rs` does not walk: parking
//! (挂账) and resuming, stats by subdistrict and period, the live feed's `grid`/`bbox` filters,
//! the monthly leaderboard, hexbins by period, the unassigned queue of a subdistrict, and the
//! points reversal of an `invalid` cancellation.

use std::collections::{BTreeMap, VecDeque};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

use crate::common::{Reply, get, send};
use crate::reports::{post_report, report_body, small_city, transition, user};
use gridmap_server::config::Role;

fn key() -> String {
    Uuid::new_v4().to_string()
}

/// Post a report as `token` and return its id (asserting it was stored).
async fn new_report(pool: &PgPool, token: &str, category: &str, lon: f64, lat: f64) -> i64 {
    let reply = post_report(pool, Some(token), Some(&key()), &report_body(category, lon, lat)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "({lon}, {lat}): {}", String::from_utf8_lossy(&reply.body));
    reply.json()["id"].as_i64().expect("id")
}

async fn etag(pool: &PgPool, id: i64) -> String {
    let current = get(pool, &format!("/api/reports/{id}")).await;
    current.headers[header::ETAG].to_str().expect("etag").to_string()
}

/// One transition with the current ETag, which must succeed.
async fn step(pool: &PgPool, token: &str, id: i64, body: &Value) -> Value {
    let tag = etag(pool, id).await;
    let reply = transition(pool, token, id, Some(&tag), body).await;
    assert_eq!(reply.status, StatusCode::OK, "{body}: {}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

async fn to(pool: &PgPool, token: &str, id: i64, status: &str) -> Value {
    step(pool, token, id, &json!({"to": status})).await
}

/// One transition with the current ETag, which must be refused with `status` and `code`.
async fn refused(pool: &PgPool, token: &str, id: i64, body: &Value, status: StatusCode, code: &str) -> Value {
    let tag = etag(pool, id).await;
    let reply = transition(pool, token, id, Some(&tag), body).await;
    assert_eq!(reply.status, status, "{body}: {}", String::from_utf8_lossy(&reply.body));
    let error = reply.json();
    assert_eq!(error["code"], code, "{error}");
    error
}

async fn get_as(pool: &PgPool, token: &str, uri: &str) -> Reply {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    send(pool, request).await
}

/// A second subdistrict (南麻街道) with one grid (id 3, `G-S`) well east of `small_city`'s two.
async fn second_subdistrict(pool: &PgPool) -> (i64, i64) {
    sqlx::query("insert into subdistrict (code, name) values ('NM', '南麻街道')").execute(pool).await.expect("sd");
    sqlx::query("insert into community (subdistrict_id, code, name) select id, 'C2', '南麻社区' from subdistrict where code = 'NM'")
        .execute(pool)
        .await
        .expect("community");
    sqlx::query(
        r"insert into grid (id, code, name, community_id, geom) overriding system value
          select 3, 'G-S', '南麻网格', c.id, ST_Multi(ST_MakeEnvelope(118.25, 36.17, 118.26, 36.18, 4326))
            from community c where c.code = 'C2'",
    )
    .execute(pool)
    .await
    .expect("grid");
    let id = |code: &'static str| async move {
        sqlx::query_scalar::<_, i64>("select id from subdistrict where code = $1")
            .bind(code)
            .fetch_one(pool)
            .await
            .expect("sd id")
    };
    (id("LS").await, id("NM").await)
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn dispatched_report_is_parked_and_resumed_by_its_grids_worker_only(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &["G-W"]).await;
    let worker = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let stranger = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let planner = user(&pool, "planner-zhao", Role::Planner, &[]).await;
    let admin = user(&pool, "admin-wang", Role::Admin, &[]).await;
    let id = new_report(&pool, &rider, "manhole_cover", 118.175, 36.175).await;

    // Parking comes after 立案: a submitted report cannot be parked.
    let early = refused(&pool, &worker, id, &json!({"to": "parked"}), StatusCode::CONFLICT, "conflict").await;
    assert_eq!(early["message"], "a report in status submitted cannot go to parked (allowed: accepted, cancelled)");
    to(&pool, &worker, id, "accepted").await;
    to(&pool, &worker, id, "dispatched").await;

    // Only the report's grid workers (and admins) park it; the others are refused whatever they send.
    for token in [&stranger, &rider, &planner] {
        refused(&pool, token, id, &json!({"to": "parked"}), StatusCode::FORBIDDEN, "forbidden").await;
    }
    let unchanged = get(&pool, &format!("/api/reports/{id}")).await.json();
    assert_eq!((&unchanged["status"], &unchanged["version"]), (&json!("dispatched"), &json!(3)));

    let parked = step(&pool, &worker, id, &json!({"to": "parked", "note": "等待产权单位确认"})).await;
    assert_eq!(parked["status"], "parked");
    assert_eq!(parked["version"], 4);
    let last = parked["history"].as_array().expect("history").last().cloned().expect("row");
    assert_eq!(
        last,
        json!({"action": "transition", "from_status": "dispatched", "to_status": "parked", "actor": "gw-west",
        "note": "等待产权单位确认", "grid_id": 1, "created_at": last["created_at"]})
    );
    assert!(last["created_at"].is_string());

    // Out of parked only to handling or cancelled, and again only by the grid's workers.
    let wrong = refused(&pool, &worker, id, &json!({"to": "feedback"}), StatusCode::CONFLICT, "conflict").await;
    assert_eq!(wrong["message"], "a report in status parked cannot go to feedback (allowed: handling, cancelled)");
    refused(&pool, &worker, id, &json!({"to": "dispatched"}), StatusCode::CONFLICT, "conflict").await;
    refused(&pool, &stranger, id, &json!({"to": "handling"}), StatusCode::FORBIDDEN, "forbidden").await;
    refused(&pool, &rider, id, &json!({"to": "handling"}), StatusCode::FORBIDDEN, "forbidden").await;
    let resumed = to(&pool, &worker, id, "handling").await;
    assert_eq!((&resumed["status"], &resumed["version"]), (&json!("handling"), &json!(5)));

    // Handling may be parked again; a parked report may be cancelled (with a reason).
    to(&pool, &worker, id, "parked").await;
    let cancel = json!({"to": "cancelled", "reason": "out_of_remit"});
    refused(&pool, &stranger, id, &cancel, StatusCode::FORBIDDEN, "forbidden").await;
    let no_reason =
        refused(&pool, &admin, id, &json!({"to": "cancelled"}), StatusCode::BAD_REQUEST, "invalid_field").await;
    assert_eq!(no_reason["field"], "reason");
    let cancelled = step(&pool, &admin, id, &cancel).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "out_of_remit");
    let history = cancelled["history"].as_array().expect("history");
    let path: Vec<(&str, &str)> =
        history.iter().map(|h| (h["to_status"].as_str().expect("to"), h["actor"].as_str().expect("actor"))).collect();
    assert_eq!(
        path,
        [
            ("submitted", "rider-li"),
            ("accepted", "gw-west"),
            ("dispatched", "gw-west"),
            ("parked", "gw-west"),
            ("handling", "gw-west"),
            ("parked", "gw-west"),
            ("cancelled", "admin-wang")
        ]
    );
    assert_eq!(history[6]["note"], "[out_of_remit]");
    // Cancelled is final: a parked-then-cancelled report does not come back.
    let final_ = refused(&pool, &admin, id, &json!({"to": "handling"}), StatusCode::CONFLICT, "conflict").await;
    assert_eq!(final_["message"], "a report in status cancelled cannot go to handling (allowed: none)");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn accepted_report_is_parked_by_an_admin_and_resumed_into_handling(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let worker = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let west = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let admin = user(&pool, "admin-wang", Role::Admin, &[]).await;
    let id = new_report(&pool, &rider, "streetlight", 118.185, 36.175).await;
    to(&pool, &worker, id, "accepted").await;
    refused(&pool, &west, id, &json!({"to": "parked"}), StatusCode::FORBIDDEN, "forbidden").await;
    let parked = to(&pool, &admin, id, "parked").await;
    assert_eq!((&parked["status"], &parked["version"]), (&json!("parked"), &json!(3)));
    // A stale ETag is refused before anything changes.
    let stale = transition(&pool, &worker, id, Some("\"2\""), &json!({"to": "handling"})).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let resumed = to(&pool, &worker, id, "handling").await;
    assert_eq!(resumed["status"], "handling");
    assert_eq!(resumed["dispatched_at"], Value::Null, "parked from accepted, never dispatched");
    let statuses: Vec<&str> =
        resumed["history"].as_array().expect("history").iter().map(|h| h["to_status"].as_str().expect("to")).collect();
    assert_eq!(statuses, ["submitted", "accepted", "parked", "handling"]);
}

/// Close a report: the worker handles and gives feedback, the colleague verifies (four-eyes);
/// with `rework`, the colleague sends it back once first.
async fn close(pool: &PgPool, worker: &str, colleague: &str, id: i64, rework: bool) {
    for status in ["accepted", "dispatched", "handling", "feedback"] {
        to(pool, worker, id, status).await;
    }
    if rework {
        to(pool, colleague, id, "rework").await;
        to(pool, worker, id, "handling").await;
        to(pool, worker, id, "feedback").await;
    }
    to(pool, colleague, id, "verified").await;
    assert_eq!(to(pool, colleague, id, "closed").await["status"], "closed");
}

/// Reports cannot be created in the past through HTTP, so the test moves their clocks in SQL.
async fn set_times(pool: &PgPool, id: i64, created: &str, due: Option<&str>, closed: Option<&str>) {
    sqlx::query(
        r"update report set created_at = $2::timestamptz, due_at = coalesce($3::timestamptz, due_at),
                            closed_at = coalesce($4::timestamptz, closed_at)
           where id = $1",
    )
    .bind(id)
    .bind(created)
    .bind(due)
    .bind(closed)
    .execute(pool)
    .await
    .expect("set times");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn stats_filter_by_subdistrict_and_period(pool: PgPool) {
    small_city(&pool).await;
    let (ls, nm) = second_subdistrict(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let west = user(&pool, "gw-west", Role::GridWorker, &["G-W", "G-E"]).await;
    let west2 = user(&pool, "gw-west-2", Role::GridWorker, &["G-W", "G-E"]).await;
    let south = user(&pool, "gw-south", Role::GridWorker, &["G-S"]).await;
    let south2 = user(&pool, "gw-south-2", Role::GridWorker, &["G-S"]).await;

    // 历山 (ls): a1 closed on time in 6 h (March), a2 open (created exactly at 1 April 00:00),
    // a3 cancelled (March). 南麻 (nm): b1 sent back once, closed late in 48 h (April).
    let a1 = new_report(&pool, &rider, "manhole_cover", 118.175, 36.175).await;
    let a2 = new_report(&pool, &rider, "streetlight", 118.176, 36.176).await;
    let a3 = new_report(&pool, &rider, "exposed_garbage", 118.185, 36.175).await;
    let b1 = new_report(&pool, &rider, "manhole_cover", 118.255, 36.175).await;
    close(&pool, &west, &west2, a1, false).await;
    close(&pool, &south, &south2, b1, true).await;
    step(&pool, &west, a3, &json!({"to": "cancelled", "reason": "invalid"})).await;
    for (id, sd) in [(a1, ls), (a2, ls), (a3, ls), (b1, nm)] {
        assert_eq!(get(&pool, &format!("/api/reports/{id}")).await.json()["subdistrict_id"], sd);
    }
    set_times(&pool, a1, "2024-03-10T08:00:00Z", Some("2024-03-11T00:00:00Z"), Some("2024-03-10T14:00:00Z")).await;
    set_times(&pool, a2, "2024-04-01T00:00:00Z", None, None).await;
    set_times(&pool, a3, "2024-03-12T00:00:00Z", None, None).await;
    set_times(&pool, b1, "2024-04-20T00:00:00Z", Some("2024-04-21T00:00:00Z"), Some("2024-04-22T00:00:00Z")).await;

    let stats = |query: String| {
        let pool = pool.clone();
        async move {
            let reply = get(&pool, &format!("/api/stats?{query}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", String::from_utf8_lossy(&reply.body));
            // The micro-wishes' metrics and the emergency totals ride along
            // (server/tests/api/wishes.rs and emergency.rs check them).
            let mut body = reply.json();
            for other in ["wishes", "emergency"] {
                let value = body.as_object_mut().expect("an object").remove(other);
                assert!(value.is_some_and(|w| w.is_object()), "{query}: a {other} object");
            }
            body
        }
    };
    let none = json!({"reports": 0, "cancelled": 0, "closed": 0, "closure_rate": null, "on_time_closure_rate": null,
        "rework_rate": null, "median_hours_to_close": null});
    assert_eq!(
        stats(String::new()).await,
        json!({"reports": 3, "cancelled": 1, "closed": 2, "closure_rate": 2.0 / 3.0,
        "on_time_closure_rate": 0.5, "rework_rate": 0.5, "median_hours_to_close": 27.0})
    );
    assert_eq!(
        stats(format!("subdistrict={ls}")).await,
        json!({"reports": 2, "cancelled": 1, "closed": 1,
        "closure_rate": 0.5, "on_time_closure_rate": 1.0, "rework_rate": 0.0, "median_hours_to_close": 6.0})
    );
    assert_eq!(
        stats(format!("subdistrict={nm}")).await,
        json!({"reports": 1, "cancelled": 0, "closed": 1,
        "closure_rate": 1.0, "on_time_closure_rate": 0.0, "rework_rate": 1.0, "median_hours_to_close": 48.0})
    );
    assert_eq!(stats(format!("subdistrict={}", nm + 100)).await, none);
    // `from` is inclusive, `to` exclusive: a2, created at 1 April 00:00, is April's.
    assert_eq!(
        stats("from=2024-03-01T00:00:00Z&to=2024-04-01T00:00:00Z".into()).await,
        json!({"reports": 1, "cancelled": 1,
        "closed": 1, "closure_rate": 1.0, "on_time_closure_rate": 1.0, "rework_rate": 0.0, "median_hours_to_close": 6.0})
    );
    assert_eq!(
        stats("from=2024-04-01T00:00:00Z".into()).await,
        json!({"reports": 2, "cancelled": 0, "closed": 1,
        "closure_rate": 0.5, "on_time_closure_rate": 0.0, "rework_rate": 1.0, "median_hours_to_close": 48.0})
    );
    assert_eq!(
        stats("to=2024-03-11T00:00:00Z".into()).await,
        json!({"reports": 1, "cancelled": 0, "closed": 1,
        "closure_rate": 1.0, "on_time_closure_rate": 1.0, "rework_rate": 0.0, "median_hours_to_close": 6.0})
    );
    // Both filters at once.
    assert_eq!(
        stats(format!("subdistrict={ls}&from=2024-04-01T00:00:00Z")).await,
        json!({"reports": 1, "cancelled": 0,
        "closed": 0, "closure_rate": 0.0, "on_time_closure_rate": null, "rework_rate": null, "median_hours_to_close": null})
    );
    assert_eq!(stats(format!("subdistrict={nm}&to=2024-04-01T00:00:00Z")).await, none);
    assert_eq!(stats("from=2024-05-01T00:00:00Z".into()).await, none);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn stats_with_a_bad_value_is_a_400_naming_the_field(pool: PgPool) {
    for (query, field) in [
        ("from=garbage", "from"),
        ("to=2024-13-01T00:00:00Z", "to"),
        ("subdistrict=ls", "subdistrict"),
        ("grid=1.5", "grid"),
    ] {
        let reply = get(&pool, &format!("/api/stats?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        let error = reply.json();
        assert_eq!(
            (error["code"].as_str(), error["field"].as_str()),
            (Some("invalid_field"), Some(field)),
            "{query}: {error}"
        );
        let message = error["message"].as_str().expect("message");
        assert!(message.contains(&format!("{field}:")), "{query}: the message names `{field}`: {message}");
    }
    let unknown = get(&pool, "/api/stats?district=1").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["field"], "district");
    assert!(unknown.json()["message"].as_str().expect("message").contains("district"));
}

/// Reads `event: report` frames off an SSE body (keep-alive comments skipped).
struct Feed {
    body: Body,
    pending: VecDeque<Value>,
}

impl Feed {
    async fn open(app: &axum::Router, token: &str, query: &str) -> Self {
        let request = Request::get(format!("/api/reports/stream{query}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("req");
        let response = app.clone().oneshot(request).await.expect("resp");
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        Self { body: response.into_body(), pending: VecDeque::new() }
    }

    async fn next(&mut self) -> Value {
        while self.pending.is_empty() {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(5), self.body.frame())
                .await
                .expect("an event within 5 s")
                .expect("a frame")
                .expect("ok frame");
            let Ok(data) = frame.into_data() else { continue };
            let text = String::from_utf8(data.to_vec()).expect("utf8");
            for event in text.split("\n\n").filter(|e| e.lines().any(|l| l == "event: report")) {
                let data = event.lines().find_map(|l| l.strip_prefix("data: ")).expect("a data line");
                self.pending.push_back(serde_json::from_str(data).expect("JSON data"));
            }
        }
        self.pending.pop_front().expect("not empty")
    }
}

async fn post_through(app: &axum::Router, token: &str, lon: f64, lat: f64) -> i64 {
    let request = Request::post("/api/reports")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("Idempotency-Key", key())
        .body(Body::from(report_body("manhole_cover", lon, lat).to_string()))
        .expect("req");
    let response = app.clone().oneshot(request).await.expect("resp");
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = response.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice::<Value>(&body).expect("json")["id"].as_i64().expect("id")
}

async fn transition_through(app: &axum::Router, token: &str, id: i64, version: i32, status: &str) {
    let request = Request::post(format!("/api/reports/{id}/transitions"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::IF_MATCH, format!("\"{version}\""))
        .body(Body::from(json!({"to": status}).to_string()))
        .expect("req");
    assert_eq!(app.clone().oneshot(request).await.expect("resp").status(), StatusCode::OK);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn live_feed_with_grid_sends_only_that_grids_reports(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let admin = user(&pool, "admin-wang", Role::Admin, &[]).await;
    let app = gridmap_server::http::app(gridmap_server::http::AppState::new(pool.clone()));
    let mut feed = Feed::open(&app, &admin, "?grid=2").await;
    // Each time the report outside the filter goes out first: had it passed, it would come first.
    let west = post_through(&app, &rider, 118.175, 36.175).await;
    let east = post_through(&app, &rider, 118.185, 36.175).await;
    let event = feed.next().await;
    assert_eq!(
        (&event["kind"], &event["id"], &event["grid_id"]),
        (&json!("created"), &json!(east), &json!(2)),
        "{event}"
    );
    transition_through(&app, &admin, west, 1, "accepted").await;
    transition_through(&app, &admin, east, 1, "accepted").await;
    let event = feed.next().await;
    assert_eq!(
        (&event["kind"], &event["id"], &event["status"], &event["version"]),
        (&json!("transition"), &json!(east), &json!("accepted"), &json!(2)),
        "{event}"
    );
    post_through(&app, &rider, 118.171, 36.171).await;
    let east2 = post_through(&app, &rider, 118.189, 36.179).await;
    assert_eq!(feed.next().await["id"], east2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn live_feed_with_bbox_sends_only_reports_inside_it(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let planner = user(&pool, "planner-zhao", Role::Planner, &[]).await;
    let east_worker = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let app = gridmap_server::http::app(gridmap_server::http::AppState::new(pool.clone()));
    let bad = app
        .clone()
        .oneshot(
            Request::get("/api/reports/stream?bbox=118.17,36.17,118.18")
                .header(header::AUTHORIZATION, format!("Bearer {planner}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("resp");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad = bad.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&bad).expect("json")["field"], "bbox");

    // A box around the north-west corner of the west grid.
    let bbox = "?bbox=118.17,36.175,118.176,36.18";
    let mut feed = Feed::open(&app, &planner, bbox).await;
    // An explicit box replaces a worker's default filter (the grids they work).
    let mut worker_feed = Feed::open(&app, &east_worker, bbox).await;
    post_through(&app, &rider, 118.185, 36.178).await; // east grid
    post_through(&app, &rider, 118.177, 36.178).await; // west grid, east of the box
    post_through(&app, &rider, 118.175, 36.172).await; // west grid, south of the box
    post_through(&app, &rider, 118.169, 36.178).await; // ~90 m west of the west grid and the box
    post_through(&app, &rider, 118.173, 36.181).await; // ~110 m north of the west grid and the box
    let inside = post_through(&app, &rider, 118.173, 36.178).await;
    for feed in [&mut feed, &mut worker_feed] {
        let event = feed.next().await;
        assert_eq!(
            (&event["id"], &event["grid_id"], &event["lon"], &event["lat"]),
            (&json!(inside), &json!(1), &json!(118.173), &json!(36.178)),
            "{event}"
        );
    }
    // The box's edge is inside.
    let edge = post_through(&app, &rider, 118.176, 36.18).await;
    assert_eq!(feed.next().await["id"], edge);
    assert_eq!(worker_feed.next().await["id"], edge);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn leaderboard_counts_each_credit_in_its_own_utc_month(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let worker = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let now = new_report(&pool, &rider, "exposed_garbage", 118.171, 36.175).await;
    let march = new_report(&pool, &rider, "streetlight", 118.173, 36.175).await;
    let april = new_report(&pool, &rider, "manhole_cover", 118.175, 36.175).await;
    to(&pool, &worker, now, "accepted").await;
    // Credits of earlier months cannot be made through HTTP: they are written as accepting
    // writes them, on either side of the 1 April 00:00 UTC boundary.
    for (id, at) in [(march, "2024-03-31T23:59:59Z"), (april, "2024-04-01T00:00:00Z")] {
        sqlx::query(
            r"insert into points_ledger (account_id, report_id, delta, reason, created_at)
              select reporter_id, id, 10, 'report_accepted', $2::timestamptz from report where id = $1",
        )
        .bind(id)
        .bind(at)
        .execute(&pool)
        .await
        .expect("backdated credit");
    }
    assert_eq!(get_as(&pool, &rider, "/api/points/me").await.json()["balance"], 30, "the balance counts every month");
    let board = |month: String| {
        let pool = pool.clone();
        async move {
            let reply = get(&pool, &format!("/api/points/leaderboard{month}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{month}");
            reply.json()
        }
    };
    let one = json!([{"rank": 1, "display_name": "骑手", "points": 10}]);
    let this_month = chrono::Utc::now().format("%Y-%m").to_string();
    assert_eq!(board(format!("?month={this_month}")).await, one, "only this month's credit");
    assert_eq!(board(String::new()).await, one, "the default is this month");
    assert_eq!(board("?month=2024-03".into()).await, one);
    assert_eq!(board("?month=2024-04".into()).await, one);
    assert_eq!(board("?month=2024-02".into()).await, json!([]));
    // A reversal in the credit's month cancels it out there, and leaves the rider off the board.
    sqlx::query(
        r"insert into points_ledger (account_id, report_id, delta, reason, created_at)
          select account_id, report_id, -delta, 'report_reversed', '2024-03-31T23:59:59Z' from points_ledger
           where report_id = $1",
    )
    .bind(march)
    .execute(&pool)
    .await
    .expect("reversal");
    assert_eq!(board("?month=2024-03".into()).await, json!([]));
    // The board is public: a display name shows its first character only, as Chinese public
    // lists do; the login name never.
    sqlx::query("update account set display_name = '王小明' where name = 'rider-li'")
        .execute(&pool)
        .await
        .expect("name");
    assert_eq!(board("?month=2024-04".into()).await, json!([{"rank": 1, "display_name": "王**", "points": 10}]));
    for bad in ["garbage", "2024-13", "2024-00", "1999-12", "2024", "2024-3x"] {
        let reply = get(&pool, &format!("/api/points/leaderboard?month={bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.json()["field"], "month", "{bad}");
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn hexbins_count_only_reports_created_in_the_period(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    // Two reports in one res-9 cell (one from March, one from April), one in another (April).
    let march = new_report(&pool, &rider, "manhole_cover", 118.1750, 36.175).await;
    let april = new_report(&pool, &rider, "manhole_cover", 118.17501, 36.175).await;
    let east = new_report(&pool, &rider, "manhole_cover", 118.1850, 36.175).await;
    for (id, at) in [(march, "2024-03-15T00:00:00Z"), (april, "2024-04-01T00:00:00Z"), (east, "2024-04-10T00:00:00Z")] {
        set_times(&pool, id, at, None, None).await;
    }
    let cells = |query: &'static str| {
        let pool = pool.clone();
        async move {
            let reply = get(&pool, &format!("/api/reports/hexbins?res=9{query}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{query}");
            reply.json()["features"]
                .as_array()
                .expect("features")
                .iter()
                .map(|f| {
                    (
                        f["properties"]["h3"].as_str().expect("h3").to_string(),
                        f["properties"]["count"].as_i64().expect("count"),
                    )
                })
                .collect::<BTreeMap<String, i64>>()
        }
    };
    let all = cells("").await;
    assert_eq!(all.len(), 2);
    let west_cell = all.iter().find(|(_, n)| **n == 2).map(|(h, _)| h.clone()).expect("the cell with two reports");
    let east_cell = all.keys().find(|h| **h != west_cell).cloned().expect("the other cell");
    assert_eq!(
        cells("&from=2024-04-01T00:00:00Z").await,
        BTreeMap::from([(west_cell.clone(), 1), (east_cell.clone(), 1)])
    );
    assert_eq!(cells("&to=2024-04-01T00:00:00Z").await, BTreeMap::from([(west_cell.clone(), 1)]));
    assert_eq!(cells("&from=2024-04-02T00:00:00Z&to=2024-05-01T00:00:00Z").await, BTreeMap::from([(east_cell, 1)]));
    assert_eq!(cells("&from=2024-03-01T00:00:00Z&to=2024-03-31T00:00:00Z").await, BTreeMap::from([(west_cell, 1)]));
    assert_eq!(cells("&from=2024-05-01T00:00:00Z").await, BTreeMap::new());
    let bad = get(&pool, "/api/reports/hexbins?from=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["message"].as_str().expect("message").contains("from:"));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn unassigned_queue_of_a_subdistrict_lists_only_its_unassigned_reports(pool: PgPool) {
    small_city(&pool).await;
    let (ls, nm) = second_subdistrict(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let east_worker = user(&pool, "gw-east", Role::GridWorker, &["G-E"]).await;
    let admin = user(&pool, "admin-wang", Role::Admin, &[]).await;
    let assigned = new_report(&pool, &rider, "streetlight", 118.175, 36.175).await;
    // ~300 m and ~360 m east of the east grid; ~300 m west of 南麻's grid.
    let ls_1 = new_report(&pool, &rider, "streetlight", 118.1934, 36.175).await;
    let ls_2 = new_report(&pool, &rider, "manhole_cover", 118.1940, 36.176).await;
    let nm_1 = new_report(&pool, &rider, "streetlight", 118.2466, 36.175).await;
    let nm_assigned = new_report(&pool, &rider, "streetlight", 118.255, 36.175).await;

    let page = |query: String| {
        let pool = pool.clone();
        async move {
            let reply = get(&pool, &format!("/api/reports?{query}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", String::from_utf8_lossy(&reply.body));
            reply.json()
        }
    };
    let ids = |page: &Value| -> Vec<i64> {
        page["items"].as_array().expect("items").iter().map(|r| r["id"].as_i64().expect("id")).collect()
    };
    let queue = page(format!("grid=none&subdistrict={ls}")).await;
    assert_eq!(queue["total"], 2);
    assert_eq!(ids(&queue), [ls_2, ls_1], "newest first");
    for item in queue["items"].as_array().expect("items") {
        assert_eq!(
            (&item["grid_id"], &item["assignment"], &item["subdistrict_id"]),
            (&Value::Null, &json!("unassigned"), &json!(ls))
        );
    }
    let queue = page(format!("grid=none&subdistrict={nm}")).await;
    assert_eq!((queue["total"].as_i64(), ids(&queue)), (Some(1), vec![nm_1]));
    assert_eq!(ids(&page("grid=none".into()).await), [nm_1, ls_2, ls_1], "every subdistrict's queue");
    assert_eq!(
        ids(&page(format!("subdistrict={ls}")).await),
        [ls_2, ls_1, assigned],
        "without grid=none: assigned too"
    );
    assert_eq!(ids(&page(format!("subdistrict={nm}")).await), [nm_assigned, nm_1]);
    assert_eq!(page(format!("grid=none&subdistrict={}", nm + 100)).await["total"], 0);
    // Paging keeps both filters.
    let first = page(format!("grid=none&subdistrict={ls}&limit=1")).await;
    assert_eq!(ids(&first), [ls_2]);
    assert_eq!(first["next"], format!("/api/reports?grid=none&subdistrict={ls}&limit=1&offset=1"));
    assert_eq!(ids(&page(format!("grid=none&subdistrict={ls}&limit=1&offset=1")).await), [ls_1]);
    assert_eq!(get(&pool, "/api/reports?grid=nowhere").await.json()["field"], "grid");

    // Unassigned reports are the admins' to handle: a grid worker of the subdistrict is refused.
    refused(&pool, &east_worker, ls_1, &json!({"to": "accepted"}), StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(to(&pool, &admin, ls_1, "accepted").await["status"], "accepted");
    let worker_view =
        get_as(&pool, &east_worker, &format!("/api/reports?grid=none&subdistrict={ls}&status=accepted")).await.json();
    assert_eq!(ids(&worker_view), [ls_1]);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn cancelling_an_accepted_report_as_invalid_reverses_its_credit(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let worker = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let kept = new_report(&pool, &rider, "exposed_garbage", 118.171, 36.175).await;
    let invalid = new_report(&pool, &rider, "streetlight", 118.175, 36.175).await;
    let out_of_remit = new_report(&pool, &rider, "manhole_cover", 118.178, 36.175).await;
    for id in [kept, invalid, out_of_remit] {
        to(&pool, &worker, id, "accepted").await;
    }
    assert_eq!(get_as(&pool, &rider, "/api/points/me").await.json()["balance"], 30);

    let cancelled =
        step(&pool, &worker, invalid, &json!({"to": "cancelled", "reason": "invalid", "note": "照片与位置不符"})).await;
    assert_eq!((&cancelled["status"], &cancelled["cancel_reason"]), (&json!("cancelled"), &json!("invalid")));
    assert_eq!(
        cancelled["history"].as_array().expect("history").last().expect("row")["note"],
        "[invalid] 照片与位置不符"
    );
    let me = get_as(&pool, &rider, "/api/points/me").await;
    assert_eq!(me.status, StatusCode::OK);
    let me = me.json();
    assert_eq!(me["balance"], 20);
    let entries: Vec<(i64, i64, &str)> = me["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["report_id"].as_i64().expect("id"),
                e["delta"].as_i64().expect("delta"),
                e["reason"].as_str().expect("reason"),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (invalid, -10, "report_reversed"),
            (out_of_remit, 10, "report_accepted"),
            (invalid, 10, "report_accepted"),
            (kept, 10, "report_accepted")
        ],
        "append-only: the credit stays, a reversal is added"
    );
    let ledger: Vec<(i64, i32, String)> =
        sqlx::query_as("select report_id, delta, reason from points_ledger where report_id = $1 order by id")
            .bind(invalid)
            .fetch_all(&pool)
            .await
            .expect("ledger");
    assert_eq!(ledger, [(invalid, 10, "report_accepted".to_string()), (invalid, -10, "report_reversed".to_string())]);

    // Out of remit is not the reporter's fault: the credit stays.
    step(&pool, &worker, out_of_remit, &json!({"to": "cancelled", "reason": "out_of_remit"})).await;
    let me = get_as(&pool, &rider, "/api/points/me").await.json();
    assert_eq!(me["balance"], 20);
    assert_eq!(me["entries"].as_array().expect("entries").len(), 4);
    let board = get(&pool, "/api/points/leaderboard").await.json();
    assert_eq!(board, json!([{"rank": 1, "display_name": "骑手", "points": 20}]));
}
