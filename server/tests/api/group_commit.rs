//! Group commit (`reports/commit.rs`): reports that arrive together share one statement, and
//! each still gets exactly what it would have got alone — its grid, workers, its own history row,
//! idempotent resends and conflicts — and one bad report in a batch fails alone.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{SubsecRound, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{Reply, send_to};
use crate::reports::{report_body, small_city, user};
use gridmap_server::config::Role;
use gridmap_server::http::AppState;
use gridmap_server::reports::commit::{GroupCommit, Row, insert_one};

async fn post(state: &AppState, token: Option<&str>, key: &str, body: &Value) -> Reply {
    let mut request =
        Request::post("/api/reports").header(header::CONTENT_TYPE, "application/json").header("Idempotency-Key", key);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    send_to(state, request.body(Body::from(body.to_string())).expect("request")).await
}

/// 60 reports at once through one server state: covered, edge, nearest and unassigned points,
/// anonymous and logged in, resends racing their originals, and one key sent with two payloads.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn concurrent_reports_share_statements_and_each_gets_its_own_answer(pool: PgPool) {
    small_city(&pool).await;
    // Three riders: one token would meet the per-token write limit (40 at once).
    let mut riders = Vec::new();
    for name in ["rider-li", "rider-wu", "rider-zh"] {
        riders.push((name, user(&pool, name, Role::Rider, &[]).await));
    }
    user(&pool, "worker-w", Role::GridWorker, &["G-W"]).await;
    let state = AppState::new(pool.clone());
    // (lon, lat, grid_id, assignment)
    let spots = [
        (118.175, 36.175, Some(1), "covers"),
        (118.185, 36.175, Some(2), "covers"),
        (118.18, 36.175, Some(1), "covers"), // the shared edge: the lower id
        (118.1911, 36.175, Some(2), "nearest"),
        (118.1934, 36.175, None, "unassigned"),
    ];
    let mut sends = Vec::new(); // (key, (name, token), body, spot)
    for i in 0..50usize {
        let spot = spots[i % spots.len()];
        let category = ["exposed_garbage", "streetlight", "manhole_cover"][i % 3];
        let anonymous = category == "exposed_garbage" && i % 2 == 0;
        let token = (!anonymous).then(|| riders[i % 3].clone());
        let body = report_body(category, spot.0, spot.1 + i as f64 * 1e-5);
        let key = Uuid::new_v4().to_string();
        if i % 6 == 0 {
            sends.push((key.clone(), token.clone(), body.clone(), spot));
        }
        sends.push((key, token, body, spot));
    }
    let contested = Uuid::new_v4().to_string();
    for lon in [118.176, 118.177] {
        sends.push((contested.clone(), Some(riders[0].clone()), report_body("streetlight", lon, 36.176), spots[0]));
    }
    let replies = futures::future::join_all(
        sends.iter().map(|(key, token, body, _)| post(&state, token.as_ref().map(|t| t.1.as_str()), key, body)),
    )
    .await;

    let mut by_key: std::collections::HashMap<&str, Vec<&Reply>> = std::collections::HashMap::new();
    for ((key, token, _, spot), reply) in sends.iter().zip(&replies) {
        if key == &contested {
            continue;
        }
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
        let report = reply.json();
        assert_eq!(report["grid_id"], json!(spot.2), "{report}");
        assert_eq!(report["assignment"], spot.3, "{report}");
        let workers = report["assigned_workers"].as_array().expect("workers").len();
        assert_eq!(workers, usize::from(spot.2 == Some(1)), "grid 1 has its worker, the others none: {report}");
        let id = report["id"].as_i64().expect("id");
        let (stored, reporter, actor): (String, Option<String>, String) = sqlx::query_as(
            "select r.response::text, a.name, e.actor from report r left join account a on a.id = r.reporter_id
               join report_event e on e.report_id = r.id where r.id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("stored row with its one history row");
        assert_eq!(stored.as_bytes(), reply.body.as_slice(), "the 201 body is the stored response");
        assert_eq!(actor, token.as_ref().map_or("anonymous", |t| t.0));
        assert_eq!(reporter.as_deref(), token.as_ref().map(|t| t.0));
        by_key.entry(key.as_str()).or_default().push(reply);
    }
    for (key, replies) in &by_key {
        assert!(replies.windows(2).all(|w| w[0].body == w[1].body), "a resend of {key} gets the original body");
    }
    let contested: Vec<StatusCode> =
        sends.iter().zip(&replies).filter(|((k, ..), _)| *k == contested).map(|(_, r)| r.status).collect();
    let mut contested_sorted = contested.clone();
    contested_sorted.sort();
    assert_eq!(contested_sorted, [StatusCode::CREATED, StatusCode::CONFLICT], "one key, two payloads: {contested:?}");

    let rows = crate::common::count(&pool, "report").await;
    assert_eq!(rows, by_key.len() as i64 + 1, "one row per key");
    assert_eq!(crate::common::count(&pool, "report_event").await, rows, "one history row per report");
    let (statements, reports) = state.reports.commit.counts();
    assert_eq!(reports, sends.len() as u64, "every send reached the committer");
    assert!(statements < reports, "reports that arrived together shared statements ({statements} for {reports})");
}

fn row(category: &str, lon: f64) -> Row {
    Row {
        category: category.into(),
        description: "路灯不亮".into(),
        lon,
        lat: 36.175,
        input_lon: lon,
        input_lat: 36.175,
        crs: "wgs84",
        accuracy_m: Some(5.0),
        location_suspect: false,
        grid_id: Some(1),
        method: gridmap_server::reports::status::AssignmentMethod::Covers,
        subdistrict_id: None,
        reporter_id: None,
        key: Some(Uuid::new_v4()),
        hash: vec![7; 32],
        photo_count: 0,
        created_at: Utc::now().trunc_subsecs(6),
        partial: json!({"status": "submitted", "version": 1}),
        duplicates: Vec::new(),
        actor: "anonymous".into(),
        // No index: PostgreSQL assigns the row again (migration 0012), to the same grid here.
        index_generation: None,
    }
}

/// A batch that cannot be stored (here: one unknown category) is retried report by report, so
/// only the bad one fails; and a batched row is stored exactly as a lone one.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_failing_batch_is_retried_one_by_one_and_batched_rows_match_lone_ones(pool: PgPool) {
    small_city(&pool).await;
    user(&pool, "worker-w", Role::GridWorker, &["G-W"]).await;
    let alone = row("streetlight", 118.175);
    let (alone_id, _, alone_body) = insert_one(&pool, &alone).await.expect("insert").expect("stored");

    let commit = GroupCommit::default();
    let mut rows: Vec<Row> = (0..10).map(|i| row("streetlight", 118.171 + f64::from(i) * 1e-3)).collect();
    rows[4].category = "no_such_category".into();
    let mut twin = alone.clone();
    twin.key = Some(Uuid::new_v4());
    rows.push(twin);
    // All eleven are queued before the committer first runs (one test thread), so they go out
    // as one statement, which the unknown category fails.
    let results = futures::future::join_all(rows.iter().map(|r| commit.insert(&pool, r.clone()))).await;
    for (i, result) in results.iter().enumerate() {
        if i == 4 {
            let err = result.as_ref().expect_err("the unknown category fails");
            let code = err.as_database_error().and_then(sqlx::error::DatabaseError::code).map(|c| c.to_string());
            assert_eq!(code.as_deref(), Some("23503"), "a foreign key violation: {err}");
        } else {
            assert!(matches!(result, Ok(Some(_))), "report {i} is stored despite its neighbour: {result:?}");
        }
    }
    assert_eq!(crate::common::count(&pool, "report").await, 11);
    assert_eq!(commit.counts(), (11, 11), "after the failed batch, eleven statements of one report");

    // Eleven good rows: one statement. The twin's stored answer equals the lone row's but for the id.
    let commit = GroupCommit::default();
    let mut rows: Vec<Row> = (0..10).map(|i| row("manhole_cover", 118.171 + f64::from(i) * 1e-3)).collect();
    let mut twin = alone.clone();
    twin.key = Some(Uuid::new_v4());
    rows.push(twin);
    let results = futures::future::join_all(rows.iter().map(|r| commit.insert(&pool, r.clone()))).await;
    assert_eq!(commit.counts(), (1, 11), "one statement for the batch");
    let (twin_id, twin_grid, twin_body) = results[10].as_ref().expect("ok").clone().expect("stored");
    assert_eq!(twin_grid, Some(1));
    let mut batched: Value = serde_json::from_str(&twin_body).expect("json");
    let mut lone: Value = serde_json::from_str(&alone_body).expect("json");
    assert_eq!(batched["id"], twin_id);
    assert_eq!(lone["id"], alone_id);
    batched["id"] = json!(0);
    lone["id"] = json!(0);
    assert_eq!(batched, lone, "the batched row's answer is the lone row's");
    assert_eq!(lone["assigned_workers"].as_array().map(Vec::len), Some(1));
    let events: i64 = sqlx::query_scalar("select count(*) from report_event where report_id = $1")
        .bind(twin_id)
        .fetch_one(&pool)
        .await
        .expect("events");
    assert_eq!(events, 1);
    // A resend of a stored key in a batch comes back as `None` (the caller replays it).
    let again = futures::future::join_all([
        commit.insert(&pool, alone.clone()),
        commit.insert(&pool, row("streetlight", 118.172)),
    ])
    .await;
    assert!(matches!(again[0], Ok(None)), "{:?}", again[0]);
    assert!(matches!(again[1], Ok(Some(_))), "{:?}", again[1]);
}

/// A report table analyzed while empty (a new deployment, or `vacuum analyze` after importing
/// the map) leaves PostgreSQL planning intake's statements for an empty table until autovacuum
/// comes by, a minute or more later. After its first thousand reports the committer sees that
/// the statistics lag behind what it wrote and analyzes the report tables itself.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_thousand_reports_into_tables_analyzed_empty_bring_their_statistics_up_to_date(pool: PgPool) {
    small_city(&pool).await;
    sqlx::query("analyze report, report_event").execute(&pool).await.expect("analyze while empty");
    let believed = || async {
        sqlx::query_scalar::<_, f32>("select reltuples from pg_class where oid = 'report'::regclass")
            .fetch_one(&pool)
            .await
            .expect("reltuples")
    };
    assert!(believed().await.abs() < f32::EPSILON, "analyzed empty: PostgreSQL believes 0 rows");
    let commit = GroupCommit::default();
    for round in 0..25 {
        let rows = (0..40).map(|i| row("streetlight", 118.171 + f64::from(round * 40 + i) * 1e-5));
        let stored = futures::future::join_all(rows.map(|r| commit.insert(&pool, r))).await;
        assert!(stored.iter().all(|s| matches!(s, Ok(Some(_)))), "every row stored");
    }
    assert_eq!(commit.counts().1, 1_000);
    // The analysis runs beside intake, not in a sender's way: wait for it.
    for _ in 0..250 {
        if commit.analyzed() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(commit.analyzed(), 1, "the committer analyzed the report tables");
    assert!(believed().await >= 1_000.0, "PostgreSQL now believes {} rows", believed().await);
    let history: f32 = sqlx::query_scalar("select reltuples from pg_class where oid = 'report_event'::regclass")
        .fetch_one(&pool)
        .await
        .expect("reltuples");
    assert!(history >= 1_000.0, "the history table too: {history}");
}
