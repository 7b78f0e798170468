//! Planners' grid editing: overlap 422 with the neighbour list, clipping, history and revert,
//! split and merge, gaps and household balance — all through the router.

use axum::http::{StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::get;
use crate::ogc::{call, token};
use gridmap_server::api_keys::{self, Scope};
use gridmap_server::config::Role;
use gridmap_server::seed;

/// A grid away from the county edge, and its geometry grown by `metres`.
async fn inner_grid(pool: &PgPool, metres: f64) -> (i64, Value) {
    let (id, geometry): (i64, String) = sqlx::query_as(
        r"select g.id, ST_AsGeoJSON(ST_Buffer(g.geom::geography, $1)::geometry)
            from grid g, area c
           where c.kind = 'county' and ST_Within(ST_Buffer(g.geom::geography, 200)::geometry, c.geom)
             and (select count(*) from grid n where n.id <> g.id and ST_Relate(n.geom, g.geom, '****1****')) >= 3
           order by g.id limit 1",
    )
    .bind(metres)
    .fetch_one(pool)
    .await
    .expect("an inner grid");
    (id, serde_json::from_str(&geometry).expect("geojson"))
}

fn item(id: i64) -> String {
    format!("/ogc/collections/grids/items/{id}")
}

async fn version(pool: &PgPool, id: i64) -> i32 {
    sqlx::query_scalar("select version from grid where id = $1").bind(id).fetch_one(pool).await.expect("version")
}

async fn households_from_buildings(pool: &PgPool, id: i64) -> i64 {
    sqlx::query_scalar("select coalesce(sum(households), 0)::bigint from building where gridmap_grid_at(anchor) = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("sum")
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn overlapping_a_neighbour_is_422_listing_each_one_unless_clipped(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let planner = token(&pool, "planner-zhao", Role::Planner).await;
    let (id, grown) = inner_grid(&pool, 30.0).await;
    let patch = json!({"geometry": grown});
    let missing = call(&pool, "PATCH", &item(id), Some(&planner), None, Some(&patch)).await;
    assert_eq!(missing.status, StatusCode::PRECONDITION_REQUIRED);

    let refused = call(&pool, "PATCH", &item(id), Some(&planner), Some("\"1\""), Some(&patch)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", String::from_utf8_lossy(&refused.body));
    let neighbours = refused.json()["details"]["neighbours"].as_array().expect("neighbour list").clone();
    assert!(neighbours.len() >= 3, "{neighbours:?}");
    for n in &neighbours {
        assert!(n["overlap_m2"].as_f64().expect("area") > 1.0);
        assert!(n["code"].is_string() && n["id"].is_i64());
        // The overlap itself, so an editor can draw it on the map.
        assert!(matches!(n["overlap"]["type"].as_str(), Some("Polygon" | "MultiPolygon")), "{n}");
    }
    assert_eq!(version(&pool, id).await, 1, "nothing was written");

    let clipped = call(
        &pool,
        "PATCH",
        &format!("{}?clip=neighbours&reason=widen%20the%20square", item(id)),
        Some(&planner),
        Some("\"1\""),
        Some(&patch),
    )
    .await;
    assert_eq!(clipped.status, StatusCode::OK, "{}", String::from_utf8_lossy(&clipped.body));
    assert_eq!(clipped.headers[header::ETAG], "\"2\"");
    let body = clipped.json();
    assert_eq!(
        body["properties"]["households"].as_i64(),
        Some(households_from_buildings(&pool, id).await),
        "households recomputed and returned"
    );
    for n in &neighbours {
        let nid = n["id"].as_i64().expect("id");
        assert_eq!(version(&pool, nid).await, 2, "neighbour {nid} got a new version");
        let (author, reason): (String, Option<String>) =
            sqlx::query_as("select author, reason from grid_version where grid_id = $1 and version = 2")
                .bind(nid)
                .fetch_one(&pool)
                .await
                .expect("row");
        assert_eq!((author.as_str(), reason.as_deref()), ("planner-zhao", Some("widen the square")));
    }
    let overlap: f64 = sqlx::query_scalar(
        "select coalesce(max(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0) from grid a join grid b on a.id = $1 and b.id <> a.id and a.geom && b.geom",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("overlap");
    assert!(overlap < 1.0, "still overlapping by {overlap} m²");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn grid_edits_keep_history_and_revert_makes_a_new_version(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let planner = token(&pool, "planner-qian", Role::Planner).await;
    let (id, _) = inner_grid(&pool, 0.0).await;
    let original: String =
        sqlx::query_scalar("select name from grid where id = $1").bind(id).fetch_one(&pool).await.expect("name");
    let renamed = call(
        &pool,
        "PATCH",
        &format!("{}?reason=rename", item(id)),
        Some(&planner),
        Some("\"1\""),
        Some(&json!({"properties": {"name": "新名字"}})),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", String::from_utf8_lossy(&renamed.body));
    let stale =
        call(&pool, "PATCH", &item(id), Some(&planner), Some("\"1\""), Some(&json!({"properties": {"name": "again"}})))
            .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);

    let history = get(&pool, &format!("/api/grids/{id}/history")).await.json();
    let versions = history["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["author"], "规划人员", "the public history names the role, never the login name");
    assert_eq!(versions[1]["reason"], "rename");
    assert_eq!(versions[1]["name"], "新名字");
    assert!(versions[0]["geometry"]["coordinates"].is_array());

    let no_match =
        call(&pool, "POST", &format!("/api/grids/{id}/revert"), Some(&planner), None, Some(&json!({"version": 1})))
            .await;
    assert_eq!(no_match.status, StatusCode::PRECONDITION_REQUIRED);
    let reverted = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/revert"),
        Some(&planner),
        Some("\"2\""),
        Some(&json!({"version": 1})),
    )
    .await;
    assert_eq!(reverted.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reverted.body));
    assert_eq!(reverted.json()["grid"]["properties"]["name"], original);
    assert_eq!(version(&pool, id).await, 3);
    let history = get(&pool, &format!("/api/grids/{id}/history")).await.json();
    assert_eq!(history["versions"][2]["reason"], "revert to version 1");
    assert_eq!(get(&pool, "/api/grids/999999/history").await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn split_by_a_line_then_merge_back_keeps_households_and_codes(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let planner = token(&pool, "planner-sun", Role::Planner).await;
    let (id, _) = inner_grid(&pool, 0.0).await;
    let (code, households, x, y0, y1): (String, i32, f64, f64, f64) = sqlx::query_as(
        "select code, households, ST_X(ST_PointOnSurface(geom)), ST_YMin(geom) - 0.01, ST_YMax(geom) + 0.01 from grid where id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("grid");
    let line = json!({"type": "LineString", "coordinates": [[x, y0], [x, y1]]});
    let stale = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/split"),
        Some(&planner),
        Some("\"9\""),
        Some(&json!({"line": line})),
    )
    .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let miss = json!({"type": "LineString", "coordinates": [[x, y0], [x, y0 + 0.001]]});
    let refused = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/split"),
        Some(&planner),
        Some("\"1\""),
        Some(&json!({"line": miss})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The planner's preview: the parts and households the split would leave, nothing stored.
    let grid_count =
        || async { sqlx::query_scalar::<_, i64>("select count(*) from grid").fetch_one(&pool).await.expect("count") };
    let (count_before, history_before) =
        (grid_count().await, get(&pool, &format!("/api/grids/{id}/history")).await.body);
    let preview = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/split"),
        Some(&planner),
        Some("\"1\""),
        Some(&json!({"line": line, "reason": "too many households", "dry_run": true})),
    )
    .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", String::from_utf8_lossy(&preview.body));
    assert_eq!(preview.json()["dry_run"], true);
    let previewed: Vec<i64> = preview.json()["grids"]
        .as_array()
        .expect("grids")
        .iter()
        .map(|g| g["households"].as_i64().expect("households"))
        .collect();
    assert_eq!(previewed.iter().sum::<i64>(), i64::from(households));
    assert_eq!(grid_count().await, count_before, "a preview stores no grid");
    assert_eq!(get(&pool, &format!("/api/grids/{id}/history")).await.body, history_before, "nor a version");
    let stale_preview = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/split"),
        Some(&planner),
        Some("\"9\""),
        Some(&json!({"line": line, "dry_run": true})),
    )
    .await;
    assert_eq!(stale_preview.status, StatusCode::PRECONDITION_FAILED, "a preview checks the version too");

    let split = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/split"),
        Some(&planner),
        Some("\"1\""),
        Some(&json!({"line": line, "reason": "too many households"})),
    )
    .await;
    assert_eq!(split.status, StatusCode::OK, "{}", String::from_utf8_lossy(&split.body));
    assert_eq!(split.json()["dry_run"], false);
    let grids = split.json()["grids"].as_array().expect("grids").clone();
    let stored: Vec<i64> = grids.iter().map(|g| g["households"].as_i64().expect("households")).collect();
    assert_eq!(stored, previewed, "the split leaves what the preview showed");
    assert!(grids.len() >= 2);
    assert_eq!(grids[0]["id"].as_i64(), Some(id));
    assert_eq!(grids[0]["code"], code.as_str(), "the largest part keeps the code");
    assert_eq!(grids[1]["code"], format!("{code}-S1"));
    let total: i64 = grids.iter().map(|g| g["households"].as_i64().expect("households")).sum();
    assert_eq!(total, i64::from(households), "no household is lost or counted twice");

    let merge_body = json!({"grids": grids.iter().map(|g| json!({"id": g["id"], "version": g["version"]})).collect::<Vec<_>>(), "reason": "undo"});
    let mut stale_body = merge_body.clone();
    stale_body["grids"][0]["version"] = json!(1);
    assert_eq!(
        call(&pool, "POST", "/api/grids/merge", Some(&planner), None, Some(&stale_body)).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    let merged = call(&pool, "POST", "/api/grids/merge", Some(&planner), None, Some(&merge_body)).await;
    assert_eq!(merged.status, StatusCode::OK, "{}", String::from_utf8_lossy(&merged.body));
    let grid = merged.json()["grid"].clone();
    assert_eq!((grid["id"].as_i64(), grid["code"].as_str()), (Some(id), Some(code.as_str())));
    assert_eq!(grid["households"].as_i64(), Some(i64::from(households)));
    let left: i64 = sqlx::query_scalar("select count(*) from grid").fetch_one(&pool).await.expect("count");
    assert_eq!(left, 267);
    let deleted: i64 = sqlx::query_scalar("select count(*) from grid_version where op = 'delete' and reason = 'undo'")
        .fetch_one(&pool)
        .await
        .expect("rows");
    assert_eq!(deleted as usize, grids.len() - 1);
    let far: i64 = sqlx::query_scalar("select g.id from grid g, grid me where me.id = $1 and not ST_DWithin(g.geom, me.geom, 0.002) order by g.id limit 1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("a distant grid");
    let apart =
        json!({"grids": [{"id": far, "version": version(&pool, far).await}, {"id": id, "version": grid["version"]}]});
    let not_adjacent = call(&pool, "POST", "/api/grids/merge", Some(&planner), None, Some(&apart)).await;
    assert_eq!(
        not_adjacent.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        String::from_utf8_lossy(&not_adjacent.body)
    );
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn gaps_list_the_hole_a_deleted_grid_leaves(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let before = get(&pool, "/api/grids/gaps").await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.json()["numberReturned"], 0, "the demo city has no gaps");
    let planner = token(&pool, "planner-li", Role::Planner).await;
    let (id, _) = inner_grid(&pool, 0.0).await;
    let area: f64 = sqlx::query_scalar("select ST_Area(geom::geography) from grid where id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("area");
    assert_eq!(
        call(&pool, "DELETE", &item(id), Some(&planner), None, None).await.status,
        StatusCode::PRECONDITION_REQUIRED
    );
    assert_eq!(
        call(&pool, "DELETE", &item(id), Some(&planner), Some("\"1\""), None).await.status,
        StatusCode::NO_CONTENT
    );
    let gaps = get(&pool, "/api/grids/gaps").await.json();
    assert_eq!(gaps["numberReturned"], 1);
    let gap = gaps["features"][0]["properties"]["area_m2"].as_f64().expect("area");
    assert!((gap - area).abs() / area < 0.01, "gap {gap} m² vs grid {area} m²");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn balance_lists_grids_outside_the_range_with_their_neighbours(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let expected: i64 = sqlx::query_scalar("select count(*) from grid where households < 250 or households > 350")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert!(expected > 0);
    let body = get(&pool, "/api/grids/balance?min=250&max=350").await.json();
    assert_eq!(body["count"].as_i64(), Some(expected));
    for g in body["grids"].as_array().expect("grids") {
        let h = g["households"].as_i64().expect("households");
        assert!(!(250..=350).contains(&h));
        assert_eq!(g["status"], if h < 250 { "under" } else { "over" });
        assert!(
            !g["neighbours"].as_array().expect("neighbours").is_empty(),
            "every grid in a partition has neighbours"
        );
    }
    let default = get(&pool, "/api/grids/balance").await.json();
    assert_eq!((default["min"].as_i64(), default["max"].as_i64()), (Some(200), Some(400)));
    assert_eq!(get(&pool, "/api/grids/balance?min=500&max=100").await.status, StatusCode::BAD_REQUEST);
}

/// The planner's preview of a shape: the households it would hold and the holes it would open in
/// the urban area (what `/api/grids/gaps` would list after saving) — and nothing stored.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn preview_of_a_shrunk_grid_gives_its_households_and_the_gap_it_would_leave_storing_nothing(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let planner = token(&pool, "planner-sun", Role::Planner).await;
    let worker = token(&pool, "gw-preview", Role::GridWorker).await;
    // A grid shrunk by 30 m inwards.
    let (id, shrunk) = inner_grid(&pool, -30.0).await;
    let (households, version): (i32, i32) = sqlx::query_as("select households, version from grid where id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("grid");
    let gaps_before = get(&pool, "/api/grids/gaps").await.json()["numberReturned"].as_u64().expect("n");
    let preview = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/preview"),
        Some(&planner),
        None,
        Some(&json!({"geometry": shrunk})),
    )
    .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", String::from_utf8_lossy(&preview.body));
    let p = preview.json();
    let expected: i64 = sqlx::query_scalar(
        "select coalesce(sum(households), 0)::bigint from building where ST_Covers(ST_SetSRID(ST_GeomFromGeoJSON($1), 4326), ST_PointOnSurface(geom))",
    )
    .bind(shrunk.to_string())
    .fetch_one(&pool)
    .await
    .expect("households");
    assert_eq!(p["households"], expected);
    assert!(expected <= i64::from(households));
    let ring_area: f64 = sqlx::query_scalar(
        "select ST_Area(ST_Difference(g.geom, ST_SetSRID(ST_GeomFromGeoJSON($2), 4326))::geography) from grid g where g.id = $1",
    )
    .bind(id)
    .bind(shrunk.to_string())
    .fetch_one(&pool)
    .await
    .expect("area");
    let total = p["gaps"]["total_area_m2"].as_f64().expect("total");
    assert!(p["gaps"]["numberReturned"].as_u64().expect("n") >= 1, "{p}");
    assert!(
        total > 0.0 && total <= ring_area + 1.0,
        "the gap is what the grid gives up inside the town: {total} of {ring_area} m²"
    );
    // Nothing stored.
    let after: (i32, i32) = sqlx::query_as("select households, version from grid where id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("grid");
    assert_eq!(after, (households, version));
    assert_eq!(get(&pool, "/api/grids/gaps").await.json()["numberReturned"].as_u64(), Some(gaps_before));
    // The same shape unchanged opens no gap.
    let same: String = sqlx::query_scalar("select ST_AsGeoJSON(geom) from grid where id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("g");
    let same: Value = serde_json::from_str(&same).expect("json");
    let unchanged = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/preview"),
        Some(&planner),
        None,
        Some(&json!({"geometry": same})),
    )
    .await
    .json();
    assert_eq!(unchanged["gaps"]["numberReturned"], 0);
    assert_eq!(unchanged["households"], households);
    // Bad input: a clear 4xx, never a 5xx.
    let point = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/preview"),
        Some(&planner),
        None,
        Some(&json!({"geometry": {"type": "Point", "coordinates": [118.1, 36.1]}})),
    )
    .await;
    assert_eq!(point.status, StatusCode::BAD_REQUEST);
    assert_eq!(point.json()["field"], "geometry");
    let broken = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/preview"),
        Some(&planner),
        None,
        Some(&json!({"geometry": {"type": "Polygon", "coordinates": [[1, 2]]}})),
    )
    .await;
    assert!(broken.status.is_client_error(), "{}", broken.status);
    let missing =
        call(&pool, "POST", "/api/grids/999999/preview", Some(&planner), None, Some(&json!({"geometry": shrunk})))
            .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let worker = call(
        &pool,
        "POST",
        &format!("/api/grids/{id}/preview"),
        Some(&worker),
        None,
        Some(&json!({"geometry": shrunk})),
    )
    .await;
    assert_eq!(worker.status, StatusCode::FORBIDDEN);
}

/// A key for a desktop GIS, acting for the named account.
async fn desktop_key(pool: &PgPool, name: &str, account: &str, scopes: &[Scope]) -> String {
    api_keys::create(pool, name, api_keys::ActsFor::Name(account), scopes).await.expect("key").key
}

/// QGIS ≥ 3.32 edits OAPIF without If-Match: a PATCH with only the changed attributes, or a PUT
/// of the whole feature as it read it (its `version` included), with a static key from its
/// authentication configuration (qgsoapifprovider.cpp, changeAttributeValues /
/// changeGeometryValues). This is what docs/ogc.md promises such a client.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_desktop_gis_key_edits_grids_without_if_match_checked_by_the_version_it_sends_else_recorded_as_unchecked(
    pool: PgPool,
) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let planner = token(&pool, "planner-qgis", Role::Planner).await;
    let key = desktop_key(&pool, "qgis-planning-office", "planner-qgis", &[Scope::OgcEdit]).await;
    let (id, _) = inner_grid(&pool, 0.0).await;

    // A PATCH with only the changed attribute: written, and recorded as unchecked.
    let patched =
        call(&pool, "PATCH", &item(id), Some(&key), None, Some(&json!({"properties": {"name": "桌面改名"}}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", String::from_utf8_lossy(&patched.body));
    assert_eq!(version(&pool, id).await, 2);
    let history = get(&pool, &format!("/api/grids/{id}/history")).await.json();
    assert_eq!(history["versions"][1]["unchecked"], true, "{history}");
    assert_eq!(history["versions"][0]["unchecked"], false);
    assert_eq!(history["versions"][1]["author"], "规划人员", "the key's account by role, never a login or key name");
    assert!(!history.to_string().contains("qgis-planning-office"), "the key's name is private");
    let key_id: Option<i64> =
        sqlx::query_scalar("select api_key_id from grid_version where grid_id = $1 and version = 2")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert!(key_id.is_some(), "the key that wrote without a check is kept (privately)");

    // A PUT of the feature as read at version 2 — but a planner has since moved it to 3: 409.
    let read = get(&pool, &item(id)).await.json();
    let moved_on = call(
        &pool,
        "PATCH",
        &item(id),
        Some(&planner),
        Some("\"2\""),
        Some(&json!({"properties": {"name": "网页改名"}})),
    )
    .await;
    assert_eq!(moved_on.status, StatusCode::OK);
    let mut stale = read.clone();
    stale["properties"]["name"] = json!("桌面旧稿");
    let refused = call(&pool, "PUT", &item(id), Some(&key), None, Some(&stale)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", String::from_utf8_lossy(&refused.body));
    assert_eq!(version(&pool, id).await, 3, "nothing written");
    // Read again (version 3), then the PUT is checked and goes through, not marked unchecked.
    let mut fresh = get(&pool, &item(id)).await.json();
    fresh["properties"]["name"] = json!("桌面新稿");
    let put = call(&pool, "PUT", &item(id), Some(&key), None, Some(&fresh)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", String::from_utf8_lossy(&put.body));
    let history = get(&pool, &format!("/api/grids/{id}/history")).await.json();
    assert_eq!(history["versions"][3]["unchecked"], false, "{history}");
    assert_eq!(history["versions"][3]["name"], "桌面新稿");

    // If-Match, when a desktop client does send it, is the rule as for everyone.
    let stale_tag =
        call(&pool, "PATCH", &item(id), Some(&key), Some("\"1\""), Some(&json!({"properties": {"name": "x"}}))).await;
    assert_eq!(stale_tag.status, StatusCode::PRECONDITION_FAILED);
    // Everyone else still needs If-Match; a desktop key too for deletes, buildings and stations.
    let login =
        call(&pool, "PATCH", &item(id), Some(&planner), None, Some(&json!({"properties": {"name": "x"}}))).await;
    assert_eq!(login.status, StatusCode::PRECONDITION_REQUIRED);
    let delete = call(&pool, "DELETE", &item(id), Some(&key), None, None).await;
    assert_eq!(delete.status, StatusCode::PRECONDITION_REQUIRED);
    let _admin = token(&pool, "admin-qgis", Role::Admin).await;
    let admin_key = desktop_key(&pool, "qgis-admin-office", "admin-qgis", &[Scope::OgcEdit]).await;
    let building: i64 = sqlx::query_scalar("select min(id) from building").fetch_one(&pool).await.expect("building");
    let b = call(
        &pool,
        "PATCH",
        &format!("/ogc/collections/buildings/items/{building}"),
        Some(&admin_key),
        None,
        Some(&json!({"properties": {"name": "x"}})),
    )
    .await;
    assert_eq!(b.status, StatusCode::PRECONDITION_REQUIRED, "{}", String::from_utf8_lossy(&b.body));
    assert_eq!(version(&pool, id).await, 4, "none of these wrote");

    // A key without the scope, or of an account that may not edit grids, gets 401 / 403.
    let open311 = desktop_key(&pool, "fixmystreet", "planner-qgis", &[Scope::Open311]).await;
    let unscoped =
        call(&pool, "PATCH", &item(id), Some(&open311), None, Some(&json!({"properties": {"name": "x"}}))).await;
    assert_eq!(unscoped.status, StatusCode::UNAUTHORIZED);
    let _rider = token(&pool, "rider-qgis", Role::Rider).await;
    let rider_key = desktop_key(&pool, "rider-desktop", "rider-qgis", &[Scope::OgcEdit]).await;
    let forbidden =
        call(&pool, "PATCH", &item(id), Some(&rider_key), None, Some(&json!({"properties": {"name": "x"}}))).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let revoked = api_keys::revoke_by_name(&pool, "qgis-planning-office").await.expect("revoke");
    assert!(revoked.is_some());
    let after = call(&pool, "PATCH", &item(id), Some(&key), None, Some(&json!({"properties": {"name": "x"}}))).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "a revoked key writes nothing");
}
