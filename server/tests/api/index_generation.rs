//! A report is never assigned from grids a re-draw has replaced (migration 0012): an index
//! older than the grids gets the row assigned again by PostgreSQL, and a re-draw that is
//! committing holds intake back until it has, so neither can miss the other.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use sqlx::PgPool;

use crate::common::{Reply, send_to};
use crate::reports::{report_body, small_city, user};
use gridmap_server::config::Role;
use gridmap_server::http::AppState;

/// The border between G-W (id 1) and G-E (id 2) moves east from 118.18 to 118.188.
const MOVE_BORDER: &str = "update grid set geom = case code
    when 'G-W' then ST_Multi(ST_MakeEnvelope(118.17, 36.17, 118.188, 36.18, 4326))
    else ST_Multi(ST_MakeEnvelope(118.188, 36.17, 118.19, 36.18, 4326)) end";

async fn post(state: &AppState, token: &str, lon: f64) -> Reply {
    let request = Request::post("/api/reports")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .body(Body::from(report_body("manhole_cover", lon, 36.175).to_string()))
        .expect("request");
    send_to(state, request).await
}

async fn stored(pool: &PgPool, id: i64) -> (Option<i64>, String) {
    sqlx::query_as("select grid_id, assignment from report where id = $1").bind(id).fetch_one(pool).await.expect("row")
}

fn created(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

/// No listener runs here, so the server's index stays as it was first loaded: the database's
/// generation is what tells intake its copy is old.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_outdated_index_is_overruled_by_the_grids_in_the_database(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let state = AppState::new(pool.clone());
    let before = created(&post(&state, &rider, 118.185).await);
    assert_eq!(before["grid_id"], 2, "east of the old border");

    sqlx::query(MOVE_BORDER).execute(&pool).await.expect("redraw");
    let old_index = state.reports.index.get(&pool).await.expect("index");
    assert_eq!(old_index.lookup(118.185, 36.175), Some(2), "the server's copy still has the old border");
    let after = created(&post(&state, &rider, 118.185).await);
    assert_eq!((after["grid_id"].as_i64(), after["grid_code"].as_str()), (Some(1), Some("G-W")), "{after}");
    assert_eq!(after["assignment"], "covers");
    let id = after["id"].as_i64().expect("id");
    assert_eq!(stored(&pool, id).await, (Some(1), "covers".to_string()));

    // A grid deleted under the old index: the spot is now in no grid, ~90 m from G-W's new
    // border, so rule 2 gives it to G-W — never `covers` by a grid that no longer exists.
    sqlx::query("delete from grid where code = 'G-E'").execute(&pool).await.expect("delete");
    assert_eq!(old_index.lookup(118.189, 36.175), Some(2), "the server's copy still has G-E");
    let orphan = created(&post(&state, &rider, 118.189).await);
    assert_eq!((orphan["assignment"].as_str(), orphan["grid_id"].as_i64()), (Some("nearest"), Some(1)), "{orphan}");
    let id = orphan["id"].as_i64().expect("id");
    assert_eq!(stored(&pool, id).await, (Some(1), "nearest".to_string()));
}

/// A re-draw that has not committed yet holds the reports for its area back; once it commits
/// they land by the new grids, and the re-draw's own re-assignment has seen the earlier ones.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn intake_waits_for_a_redraw_in_flight_and_then_follows_it(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let state = AppState::new(pool.clone());
    created(&post(&state, &rider, 118.175).await); // loads the index

    let mut redraw = pool.begin().await.expect("begin");
    sqlx::query(MOVE_BORDER).execute(&mut *redraw).await.expect("redraw");
    let pending = tokio::spawn({
        let (state, rider) = (state.clone(), rider.clone());
        async move { post(&state, &rider, 118.185).await }
    });
    // The event to wait for: intake's session blocked on the lock the re-draw holds.
    let started = std::time::Instant::now();
    let blocked = "select exists (select 1 from pg_stat_activity
                                   where datname = current_database() and wait_event_type = 'Lock')";
    while !sqlx::query_scalar::<_, bool>(blocked).fetch_one(&pool).await.expect("pg_stat_activity") {
        assert!(!pending.is_finished(), "intake went ahead of the re-draw that holds the index lock");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "intake never reached the index lock");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!pending.is_finished(), "intake waits while the re-draw holds the index lock");
    redraw.commit().await.expect("commit");
    let report = created(&pending.await.expect("task"));
    assert_eq!(report["grid_id"], 1, "assigned by the committed re-draw: {report}");
    let id = report["id"].as_i64().expect("id");
    assert_eq!(stored(&pool, id).await, (Some(1), "covers".to_string()));
}

/// The statement refuses to assign again from a snapshot older than the generation it locked
/// (the server then retries with the lock taken first).
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_statement_whose_snapshot_missed_a_change_stops_with_gm001(pool: PgPool) {
    let current: i64 =
        sqlx::query_scalar("select gridmap_index_generation(null)").fetch_one(&pool).await.expect("generation");
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select gridmap_index_generation($1)").bind(current).fetch_one(&pool).await.ok(),
        Some(current)
    );
    let err = sqlx::query_scalar::<_, i64>("select gridmap_index_generation($1)")
        .bind(current - 1)
        .fetch_one(&pool)
        .await
        .expect_err("stale");
    assert_eq!(err.as_database_error().and_then(sqlx::error::DatabaseError::code).as_deref(), Some("GM001"));
    small_city(&pool).await;
    let after: i64 =
        sqlx::query_scalar("select gridmap_index_generation(null)").fetch_one(&pool).await.expect("generation");
    assert!(after > current, "grid, community and county writes bump the generation");
}
