//! API calls through one long-lived `AppState`, as one running `gridmap serve` answers them: each
//! write's effects (server/src/changes.rs) must reach the in-memory caches the next request reads
//! — cached tiles and in-memory tile layers, the grid index, the duplicate search, the resends —
//! with no fresh state per request and no change listener to make up for an effect left out.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gridmap_tiles::Bbox;
use gridmap_tiles::tile::{lonlat_to_mercator, tiles_in_bbox};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{Reply, send_to};
use crate::reports::{key, report_body, small_city, user};
use gridmap_server::config::Role;
use gridmap_server::http::AppState;

/// The point the reports go to: in the west grid, 200 m from the edge the grid edit moves.
const LON: f64 = 118.178;
const LAT: f64 = 36.175;

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some(b) => request.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    };
    send_to(state, request.expect("valid request")).await
}

async fn report(state: &AppState, rider: &str, key: &str) -> Reply {
    let body = report_body("manhole_cover", LON, LAT);
    call(state, "POST", "/api/reports", Some(rider), &[("Idempotency-Key", key)], Some(&body)).await
}

fn duplicates(created: &Value) -> Vec<i64> {
    created["possible_duplicates"].as_array().expect("duplicates").iter().filter_map(|d| d["id"].as_i64()).collect()
}

/// The tile at `z` holding the point, as `/tiles/{layers}/…` wants it.
fn tile_uri(layers: &str, z: u8) -> String {
    let (x, y) = lonlat_to_mercator(LON, LAT);
    let t = tiles_in_bbox(&Bbox::new(x, y, x, y), z).next().expect("one tile");
    format!("/tiles/{layers}/{}/{}/{}.mvt", t.z, t.x, t.y)
}

/// A tile's ETag and whether the cache answered it.
async fn tile(state: &AppState, uri: &str) -> (String, String) {
    let reply = call(state, "GET", uri, None, &[], None).await;
    assert!(reply.status.is_success(), "{uri}: {}", reply.status);
    let header = |name: &str| reply.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (header("etag"), header("x-tile-cache"))
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn one_server_follows_its_own_reports_steps_and_grid_edits(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let admin = user(&pool, "admin-wang", Role::Admin, &[]).await;
    let planner = user(&pool, "planner-zhao", Role::Planner, &[]).await;
    let state = AppState::new(pool.clone());
    let reports_tile = tile_uri("reports", 15);
    let grids_tile = tile_uri("grids", 15);
    let (empty, _) = tile(&state, &reports_tile).await;
    assert_eq!(tile(&state, &reports_tile).await.1, "hit");
    let (grids_before, _) = tile(&state, &grids_tile).await;
    assert_eq!(tile(&state, &grids_tile).await.1, "hit");

    // Intake: the report is drawn at once, and it is the next report's possible duplicate.
    let first_key = key();
    let first = report(&state, &rider, &first_key).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let first = first.json();
    assert_eq!(first["grid_id"], 1);
    let first_id = first["id"].as_i64().expect("id");
    let (drawn, cache) = tile(&state, &reports_tile).await;
    assert_eq!((cache.as_str(), drawn != empty), ("miss", true), "intake dropped the cached report tile");
    let second = report(&state, &rider, &key()).await.json();
    assert_eq!(duplicates(&second), [first_id]);
    // A resend is answered from this server's memory with the first answer.
    let resent = report(&state, &rider, &first_key).await;
    assert_eq!((resent.status, resent.json()["id"].as_i64()), (StatusCode::CREATED, Some(first_id)));
    assert_eq!(resent.headers["idempotent-replayed"], "true");

    // A workflow step: the cancelled report leaves the duplicate search and its tile changes.
    tile(&state, &reports_tile).await;
    let (before_step, _) = tile(&state, &reports_tile).await;
    let cancel = json!({"to": "cancelled", "reason": "invalid"});
    let step = call(
        &state,
        "POST",
        &format!("/api/reports/{first_id}/transitions"),
        Some(&admin),
        &[("If-Match", "\"1\"")],
        Some(&cancel),
    )
    .await;
    assert_eq!(step.status, StatusCode::OK, "{}", String::from_utf8_lossy(&step.body));
    let (after_step, cache) = tile(&state, &reports_tile).await;
    assert_eq!((cache.as_str(), after_step != before_step), ("miss", true), "the step dropped the cached report tile");
    let third = report(&state, &rider, &key()).await.json();
    assert_eq!(duplicates(&third), [second["id"].as_i64().expect("id")], "the cancelled report is not offered");

    // A grid edit through OGC: the border moves west of the point. The grids tile is redrawn
    // at once and the next report goes to the east grid by the grid index in memory.
    let edit = |west: f64, east: f64| json!({"geometry": {"type": "MultiPolygon", "coordinates": [[[[west, 36.17], [east, 36.17], [east, 36.18], [west, 36.18], [west, 36.17]]]]}});
    for (id, body) in [(1, edit(118.17, 118.177)), (2, edit(118.177, 118.19))] {
        let item = format!("/ogc/collections/grids/items/{id}");
        let etag = call(&state, "GET", &item, Some(&planner), &[], None).await.headers["etag"]
            .to_str()
            .expect("etag")
            .to_string();
        let patched = call(&state, "PATCH", &item, Some(&planner), &[("If-Match", &etag)], Some(&body)).await;
        assert_eq!(patched.status, StatusCode::OK, "grid {id}: {}", String::from_utf8_lossy(&patched.body));
    }
    let (grids_after, cache) = tile(&state, &grids_tile).await;
    assert_eq!((cache.as_str(), grids_after != grids_before), ("miss", true), "the edit dropped the cached grids tile");
    let moved = report(&state, &rider, &key()).await.json();
    assert_eq!(moved["grid_id"], 2, "{moved}");
    assert_eq!(moved["assignment"], "covers");
}
