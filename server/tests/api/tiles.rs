//! Vector tiles: decoded with a real MVT decoder (geozero's prost `Tile`), checked against SQL
//! counts; HTTP semantics (JSON errors, 204, gzip/brotli, ETag/304); invalidation through the API
//! entry point and through plain SQL → trigger → NOTIFY; TileJSON, style and PMTiles export.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use geozero::mvt::{Message as _, Tile};
use gridmap_server::http::{AppState, app};
use gridmap_tiles::tile::{lonlat_to_mercator, tiles_in_bbox};
use gridmap_tiles::{Bbox, Layer, LayerSet, TileCoord};
use http_body_util::BodyExt;
use serde_json::json;
use sqlx::PgPool;
use tower::ServiceExt;

use crate::common::Reply;

pub(crate) async fn send(state: &AppState, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app(state.clone()).oneshot(request.body(Body::empty()).expect("request")).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
    Reply { status, headers, body }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

pub(crate) fn decode(reply: &Reply) -> Tile {
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let raw = if reply.headers.get(header::CONTENT_ENCODING).is_some_and(|v| v == "gzip") {
        gunzip(&reply.body)
    } else {
        reply.body.clone()
    };
    Tile::decode(raw.as_slice()).expect("a valid MVT")
}

pub(crate) fn layer<'a>(tile: &'a Tile, name: &str) -> &'a geozero::mvt::tile::Layer {
    tile.layers.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("no layer {name}"))
}

/// The properties of a feature as (key, value-as-string) pairs.
pub(crate) fn props(layer: &geozero::mvt::tile::Layer, feature: &geozero::mvt::tile::Feature) -> Vec<(String, String)> {
    feature
        .tags
        .chunks(2)
        .map(|kv| {
            let v = &layer.values[kv[1] as usize];
            let value = v
                .string_value
                .clone()
                .or(v.int_value.map(|i| i.to_string()))
                .or(v.sint_value.map(|i| i.to_string()))
                .or(v.uint_value.map(|i| i.to_string()))
                .or(v.double_value.map(|d| d.to_string()))
                .or(v.float_value.map(|d| d.to_string()))
                .or(v.bool_value.map(|b| b.to_string()))
                .unwrap_or_default();
            (layer.keys[kv[0] as usize].clone(), value)
        })
        .collect()
}

pub(crate) fn tile_at(lon: f64, lat: f64, z: u8) -> TileCoord {
    let (x, y) = lonlat_to_mercator(lon, lat);
    tiles_in_bbox(&Bbox::new(x, y, x, y), z).next().expect("one tile")
}

/// Two grids in one community (one with a worker), three buildings, a station and a road
/// around 118.165°E 36.1725°N, and one lone building far away at 118.30°E 36.30°N.
async fn fixture(pool: &PgPool) {
    sqlx::raw_sql(
        r"
insert into subdistrict (code, name) values ('LS', '历山街道');
insert into community (subdistrict_id, code, name) select id, 'LS-C1', '胜利社区' from subdistrict;
insert into grid (code, name, community_id, geom)
  select 'T-001', '胜利一网格', id, ST_Multi(ST_MakeEnvelope(118.160, 36.170, 118.165, 36.175, 4326)) from community;
insert into grid (code, name, community_id, geom)
  select 'T-002', '胜利二网格', id, ST_Multi(ST_MakeEnvelope(118.165, 36.170, 118.170, 36.175, 4326)) from community;
insert into building (geom, floors, households, use, leader_name, leader_phone) values
  (ST_Multi(ST_MakeEnvelope(118.1610, 36.1710, 118.1613, 36.1713, 4326)), 6, 120, 'residential', 'Secret Name', '13800000000'),
  (ST_Multi(ST_MakeEnvelope(118.1620, 36.1720, 118.1623, 36.1723, 4326)), 11, 180, 'residential', null, null),
  (ST_Multi(ST_MakeEnvelope(118.1660, 36.1710, 118.1663, 36.1713, 4326)), 3, 0, 'commercial', null, null),
  (ST_Multi(ST_MakeEnvelope(118.3000, 36.3000, 118.3003, 36.3003, 4326)), 2, 10, 'residential', null, null);
insert into station (name, geom, opening_hours, services, phone, host_org)
  values ('暖新驿站·胜利', ST_SetSRID(ST_MakePoint(118.1640, 36.1730), 4326), '08:00-20:00', '{rest,water,charging}', '0533-0000000', 'Host Org');
insert into road (name, class, geom) values ('胜利路', 'main', ST_Multi(ST_SetSRID(ST_MakeLine(ST_MakePoint(118.158, 36.172), ST_MakePoint(118.172, 36.172)), 4326)));
insert into account (name, role) values ('worker1', 'grid_worker');
insert into grid_assignment (account_id, grid_id) select a.id, g.id from account a, grid g where g.code = 'T-001';
",
    )
    .execute(pool)
    .await
    .expect("fixture");
}

async fn sql_count(pool: &PgPool, table: &str, t: TileCoord) -> i64 {
    // Table names come from the test itself. A feature is in a tile when its geometry (not
    // just its box) reaches the tile plus its 64-unit buffer.
    sqlx::query_scalar(&format!(
        "select count(*) from {table} where ST_Intersects(geom_3857, ST_TileEnvelope($1, $2, $3, margin => 64/4096.0))"
    ))
    .bind(i32::from(t.z))
    .bind(t.x as i32)
    .bind(t.y as i32)
    .fetch_one(pool)
    .await
    .expect("count")
}

pub(crate) fn uri(layers: &str, t: TileCoord) -> String {
    format!("/tiles/{layers}/{}/{}/{}.mvt", t.z, t.x, t.y)
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn tile_has_documented_layers_and_properties_and_counts_match_sql(pool: PgPool) {
    fixture(&pool).await;
    let state = AppState::new(pool.clone());
    let t = tile_at(118.165, 36.1725, 15);
    let reply = send(&state, &uri("grids,buildings,stations,roads", t), &[("accept-encoding", "gzip")]).await;
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/vnd.mapbox-vector-tile");
    let tile = decode(&reply);
    let names: BTreeSet<&str> = tile.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["buildings", "grid_labels", "grids", "roads", "stations"]),
        "the leader counts come in a layer of their own"
    );
    for l in &tile.layers {
        assert_eq!(l.extent, Some(4096));
        assert_eq!(l.version, 2);
    }
    assert_eq!(layer(&tile, "grids").features.len() as i64, sql_count(&pool, "grid", t).await);
    assert_eq!(layer(&tile, "buildings").features.len() as i64, sql_count(&pool, "building", t).await);
    assert_eq!(layer(&tile, "stations").features.len() as i64, sql_count(&pool, "station", t).await);
    assert_eq!(layer(&tile, "buildings").features.len(), 3);

    let grids = layer(&tile, "grids");
    let keys: BTreeSet<&str> = grids.keys.iter().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["balance", "balance_class", "code", "community", "households", "name", "workers"])
    );
    let first = grids
        .features
        .iter()
        .map(|f| props(grids, f))
        .find(|p| p.contains(&("code".into(), "T-001".into())))
        .expect("T-001");
    assert!(first.contains(&("community".into(), "胜利社区".into())));
    assert!(first.contains(&("households".into(), "300".into())));
    assert!(first.contains(&("balance".into(), "1".into())));
    assert!(first.contains(&("balance_class".into(), "on_target".into())));
    assert!(first.contains(&("workers".into(), "1".into())));
    // The other grid holds only the shop: no households, the emptiest class.
    let second = grids
        .features
        .iter()
        .map(|f| props(grids, f))
        .find(|p| p.contains(&("code".into(), "T-002".into())))
        .expect("T-002");
    assert!(second.contains(&("balance".into(), "0".into())), "{second:?}");
    assert!(second.contains(&("balance_class".into(), "far_under".into())), "{second:?}");
    let b = layer(&tile, "buildings");
    assert_eq!(
        b.keys.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["floors", "households", "use"])
    );
    let s = layer(&tile, "stations");
    assert_eq!(
        s.keys.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["name", "opening_hours", "services"])
    );
    assert!(props(s, &s.features[0]).contains(&("services".into(), "rest,water,charging".into())));
    // Feature ids are the rows' ids, and no private value ever reaches a tile.
    assert!(b.features.iter().all(|f| f.id.is_some()));
    let all_values = format!("{:?}", tile.layers.iter().map(|l| &l.values).collect::<Vec<_>>());
    for secret in ["Secret Name", "13800000000", "0533-0000000", "Host Org"] {
        assert!(!all_values.contains(secret), "{secret} leaked");
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn buildings_appear_only_from_z14_and_labels_from_z12(pool: PgPool) {
    fixture(&pool).await;
    let state = AppState::new(pool.clone());
    let z13 = decode(&send(&state, &uri("grids,buildings", tile_at(118.165, 36.1725, 13)), &[]).await);
    assert!(z13.layers.iter().all(|l| l.name != "buildings"));
    assert!(z13.layers.iter().any(|l| l.name == "grid_labels"));
    let z11 = decode(&send(&state, &uri("grids", tile_at(118.165, 36.1725, 11)), &[]).await);
    assert_eq!(z11.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["grids"]);
    let z14 = decode(&send(&state, &uri("buildings", tile_at(118.165, 36.1725, 14)), &[]).await);
    assert_eq!(layer(&z14, "buildings").features.len(), 3);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_tile_requests_get_json_errors_and_empty_tiles_204(pool: PgPool) {
    fixture(&pool).await;
    let state = AppState::new(pool.clone());
    for (path, status) in [
        ("/tiles/parcels/14/13570/6415.mvt", StatusCode::NOT_FOUND),
        ("/tiles/grids,parcels/14/13570/6415.mvt", StatusCode::NOT_FOUND),
        ("/tiles/grids/23/0/0.mvt", StatusCode::BAD_REQUEST),
        ("/tiles/grids/2/4/0.mvt", StatusCode::BAD_REQUEST),
        ("/tiles/grids/2/0/4.mvt", StatusCode::BAD_REQUEST),
        ("/tiles/grids/a/0/0.mvt", StatusCode::BAD_REQUEST),
        ("/tiles/grids/1/-1/0.mvt", StatusCode::BAD_REQUEST),
        ("/tiles/grids/1/0/0.png", StatusCode::NOT_FOUND),
        ("/tiles/parcels.json", StatusCode::NOT_FOUND),
    ] {
        let reply = send(&state, path, &[]).await;
        assert_eq!(reply.status, status, "{path}");
        assert!(reply.json()["code"].is_string(), "{path} answers a JSON error");
    }
    let empty = send(&state, "/tiles/grids,buildings/16/0/0.mvt", &[]).await;
    assert_eq!(empty.status, StatusCode::NO_CONTENT);
    assert!(empty.body.is_empty());
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn gzip_brotli_etag_and_if_none_match_304(pool: PgPool) {
    fixture(&pool).await;
    let state = AppState::new(pool.clone());
    let path = uri("grids,buildings", tile_at(118.165, 36.1725, 15));
    let gz = send(&state, &path, &[("accept-encoding", "gzip, br;q=0.5")]).await;
    assert_eq!(gz.headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gz.headers["x-tile-cache"], "miss");
    assert!(gz.headers[header::CACHE_CONTROL].to_str().expect("ascii").contains("must-revalidate"));
    assert_eq!(gz.headers[header::VARY], "accept-encoding");
    let etag = gz.headers[header::ETAG].to_str().expect("ascii").to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong ETag: {etag}");

    let plain = send(&state, &path, &[]).await;
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(plain.headers["x-tile-cache"], "hit");
    assert_eq!(gunzip(&gz.body), plain.body, "both encodings carry the same tile");

    // A browser's list: brotli preferred on a tie, its own strong ETag, the same tile inside.
    let br = send(&state, &path, &[("accept-encoding", "gzip, deflate, br, zstd")]).await;
    assert_eq!(br.headers[header::CONTENT_ENCODING], "br");
    assert_eq!(br.headers["x-tile-cache"], "hit");
    let br_etag = br.headers[header::ETAG].to_str().expect("ascii");
    assert!(br_etag.ends_with("-br\"") && br_etag != etag, "{br_etag}");
    let mut unbrotli = Vec::new();
    brotli::BrotliDecompress(&mut br.body.as_slice(), &mut unbrotli).expect("valid brotli");
    assert_eq!(unbrotli, plain.body, "brotli carries the same tile");

    let again = send(&state, &path, &[("accept-encoding", "gzip"), ("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.headers[header::ETAG].to_str().expect("ascii"), etag);
    let other = send(&state, &path, &[("accept-encoding", "gzip"), ("if-none-match", "\"0000\"")]).await;
    assert_eq!(other.status, StatusCode::OK);

    let metrics = send(&state, "/metrics", &[]).await;
    let text = String::from_utf8(metrics.body).expect("utf-8");
    assert!(text.contains("gridmap_tile_cache_hits_total 4\n"), "{text}");
    assert!(text.contains("gridmap_tile_cache_misses_total 1\n"), "{text}");
    assert!(text.contains("gridmap_tile_not_modified_total 1\n"), "{text}");
    assert!(text.contains("gridmap_tile_request_seconds_count 5\n"), "{text}");
}

/// Floors of building `id` as the tile at `t` shows it (None if absent).
async fn floors_in_tile(state: &AppState, t: TileCoord, id: u64) -> (Option<String>, String) {
    let reply = send(state, &uri("buildings", t), &[("accept-encoding", "gzip")]).await;
    let cache = reply.headers["x-tile-cache"].to_str().expect("ascii").to_string();
    if reply.status == StatusCode::NO_CONTENT {
        return (None, cache);
    }
    let tile = decode(&reply);
    let Some(b) = tile.layers.iter().find(|l| l.name == "buildings") else { return (None, cache) };
    let floors = b
        .features
        .iter()
        .find(|f| f.id == Some(id))
        .and_then(|f| props(b, f).into_iter().find(|(k, _)| k == "floors").map(|(_, v)| v));
    (floors, cache)
}

async fn building_id_at(pool: &PgPool, lon: f64, lat: f64) -> i64 {
    sqlx::query_scalar("select id from building where ST_Intersects(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))")
        .bind(lon)
        .bind(lat)
        .fetch_one(pool)
        .await
        .expect("building")
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn api_invalidation_shows_the_edit_at_once_and_keeps_other_tiles_cached(pool: PgPool) {
    fixture(&pool).await;
    let state = AppState::new(pool.clone());
    let here = tile_at(118.1611, 36.1711, 16);
    let far = tile_at(118.3001, 36.3001, 16);
    let id = building_id_at(&pool, 118.1611, 36.1711).await;
    assert_eq!(floors_in_tile(&state, here, id as u64).await, (Some("6".into()), "miss".into()));
    assert_eq!(floors_in_tile(&state, far, 0).await.1, "miss");
    assert_eq!(floors_in_tile(&state, here, id as u64).await.1, "hit");

    // What changes.rs does after an API write: the old and new extent, before the answer.
    sqlx::query("update building set floors = 9 where id = $1").bind(id).execute(&pool).await.expect("update");
    let dropped =
        state.tiles.changed(Layer::Buildings.into(), Bbox::from_lonlat(118.1610, 36.1710, 118.1613, 36.1713)).await;
    assert!(dropped >= 1);
    assert_eq!(floors_in_tile(&state, here, id as u64).await, (Some("9".into()), "miss".into()));
    assert_eq!(floors_in_tile(&state, far, 0).await.1, "hit", "an untouched tile stays cached");
    // A grid edit does not drop building-only tiles.
    state.tiles.changed(LayerSet::from(Layer::Grids), Bbox::from_lonlat(118.1610, 36.1710, 118.1613, 36.1713)).await;
    assert_eq!(floors_in_tile(&state, here, id as u64).await.1, "hit");
}

async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// A server state whose change listener is already listening (as `gridmap serve` runs it).
async fn listening_state(pool: &PgPool) -> (AppState, gridmap_tiles::ListenerHandle) {
    let state = AppState::new(pool.clone());
    let listener = gridmap_tiles::spawn_listener(state.tiles.clone(), pool.clone());
    let tiles = state.tiles.clone();
    wait_for(Duration::from_secs(10), || {
        let tiles = tiles.clone();
        async move { tiles.is_listening() }
    })
    .await;
    (state, listener)
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn plain_sql_edit_reaches_the_next_tile_within_a_second_via_notify(pool: PgPool) {
    fixture(&pool).await;
    let (state, listener) = listening_state(&pool).await;
    let here = tile_at(118.1611, 36.1711, 16);
    let far = tile_at(118.3001, 36.3001, 16);
    let id = building_id_at(&pool, 118.1611, 36.1711).await as u64;
    assert_eq!(floors_in_tile(&state, here, id).await.0, Some("6".into()));
    floors_in_tile(&state, far, 0).await;
    assert_eq!(floors_in_tile(&state, here, id).await.1, "hit");

    // An operator moves the building 2 km east by hand, behind the server's back.
    sqlx::query("update building set geom = ST_Translate(geom, 0.02, 0), floors = 7 where id = $1")
        .bind(id as i64)
        .execute(&pool)
        .await
        .expect("plain SQL");
    let moved_to = tile_at(118.1811, 36.1711, 16);
    let took = wait_for(Duration::from_secs(1), || {
        let state = state.clone();
        async move { floors_in_tile(&state, here, id).await.0.is_none() }
    })
    .await;
    assert!(took < Duration::from_secs(1), "fresh after {took:?}");
    assert_eq!(floors_in_tile(&state, moved_to, id).await.0, Some("7".into()));
    assert_eq!(floors_in_tile(&state, far, 0).await.1, "hit", "an untouched tile stays cached");

    // A new worker assignment changes a grid property: the grid tiles are dropped too.
    let g = tile_at(118.162, 36.172, 15);
    let workers = |state: AppState| async move {
        let tile = decode(&send(&state, &uri("grids", g), &[]).await);
        let grids = layer(&tile, "grids");
        let p = grids
            .features
            .iter()
            .map(|f| props(grids, f))
            .find(|p| p.contains(&("code".into(), "T-002".into())))
            .expect("T-002");
        p.into_iter().find(|(k, _)| k == "workers").map(|(_, v)| v).expect("workers")
    };
    assert_eq!(workers(state.clone()).await, "0");
    sqlx::query("insert into grid_assignment (account_id, grid_id) select a.id, g.id from account a, grid g where g.code = 'T-002'")
        .execute(&pool)
        .await
        .expect("assign");
    wait_for(Duration::from_secs(1), || {
        let state = state.clone();
        async move { workers(state).await == "1" }
    })
    .await;
    drop(listener);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn tilejson_and_style_are_valid_and_offline(pool: PgPool) {
    fixture(&pool).await;
    let state = AppState::new(pool.clone());
    let tj = send(&state, "/tiles/grids,buildings.json", &[("host", "maps.example.org:8080")]).await;
    assert_eq!(tj.status, StatusCode::OK);
    let tj = tj.json();
    assert_eq!(tj["tilejson"], "3.0.0");
    assert_eq!(tj["tiles"][0], "http://maps.example.org:8080/tiles/grids,buildings/{z}/{x}/{y}.mvt");
    assert_eq!((tj["minzoom"].as_u64(), tj["maxzoom"].as_u64()), (Some(0), Some(22)));
    let ids: Vec<&str> =
        tj["vector_layers"].as_array().expect("array").iter().map(|l| l["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["outlines", "grids", "grid_labels", "buildings"]);
    assert_eq!(tj["vector_layers"][0]["fields"]["balance_max"], "Number");
    assert_eq!(tj["vector_layers"][0]["fields"]["balance_class"], "String");
    assert_eq!(
        (tj["vector_layers"][0]["minzoom"].as_u64(), tj["vector_layers"][0]["maxzoom"].as_u64()),
        (Some(0), Some(9))
    );
    assert_eq!(tj["vector_layers"][1]["fields"]["balance"], "Number");
    assert_eq!(tj["vector_layers"][1]["fields"]["balance_class"], "String");
    let b = tj["bounds"].as_array().expect("bounds");
    assert!((b[0].as_f64().expect("w") - 118.16).abs() < 1e-6 && (b[2].as_f64().expect("e") - 118.3003).abs() < 1e-6);

    // Reports: where a report can be (the grids, the county, the reports), not the world — with
    // no report yet, and after one filed outside every grid; never below their first zoom.
    let bounds_of = |tj: &serde_json::Value| -> Vec<f64> {
        tj["bounds"].as_array().expect("bounds").iter().map(|v| v.as_f64().expect("number")).collect()
    };
    let near = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    let reports = send(&state, "/tiles/reports.json", &[("host", "maps.example.org")]).await.json();
    assert!(near(&bounds_of(&reports), &[118.16, 36.17, 118.17, 36.175]), "{}", reports["bounds"]);
    let center = reports["center"].as_array().expect("center");
    assert!((center[0].as_f64().expect("lon") - 118.165).abs() < 1e-6, "{center:?}");
    assert!((center[1].as_f64().expect("lat") - 36.1725).abs() < 1e-6, "{center:?}");
    assert_eq!(reports["minzoom"], 12);
    sqlx::query(
        "insert into report (category, geom, input_lon, input_lat, input_crs, grid_id, assignment, status)
         select 'streetlight', ST_SetSRID(ST_MakePoint(118.18, 36.18), 4326), 118.18, 36.18, 'wgs84', null, 'unassigned', 'submitted'",
    )
    .execute(&pool)
    .await
    .expect("a report outside the grids");
    let reports = send(&state, "/tiles/reports.json", &[("host", "maps.example.org")]).await.json();
    assert!(near(&bounds_of(&reports), &[118.16, 36.17, 118.18, 36.18]), "{}", reports["bounds"]);

    let style = send(&state, "/tiles/style.json", &[("host", "maps.example.org")]).await;
    assert_eq!(style.status, StatusCode::OK);
    let style = style.json();
    assert_eq!(style["version"], 8);
    assert!(style.get("glyphs").is_none() && style.get("sprite").is_none(), "no remote glyphs or sprites");
    let tiles_url = style["sources"]["gridmap"]["tiles"][0].as_str().expect("url");
    assert!(tiles_url.starts_with("http://maps.example.org/tiles/"), "{tiles_url}");
    let reports_url = style["sources"]["reports"]["tiles"][0].as_str().expect("reports url");
    assert_eq!(
        reports_url, "http://maps.example.org/tiles/reports/{z}/{x}/{y}.mvt",
        "reports churn in a source of their own"
    );
    assert!(!tiles_url.contains("reports"), "{tiles_url}");
    assert_eq!(style["sources"]["leaders"]["tiles"][0], "http://maps.example.org/tiles/leaders/{z}/{x}/{y}.mvt");
    assert!(!tiles_url.contains("leaders"), "{tiles_url}");
    let known: BTreeSet<&str> = [
        "outlines",
        "grids",
        "grid_labels",
        "coverage",
        "emergency",
        "leader_coverage",
        "buildings",
        "leader_gaps",
        "stations",
        "roads",
        "reports",
    ]
    .into();
    // QGIS 3.22's style converter: colours by `match` on balance_class, labels in text form.
    let by_id = |id: &str| style["layers"].as_array().expect("layers").iter().find(|l| l["id"] == id).cloned();
    let fill = by_id("grids-fill").expect("grids-fill");
    assert_eq!(fill["paint"]["fill-color"][0], "match");
    assert_eq!(fill["paint"]["fill-color"][1], json!(["get", "balance_class"]));
    assert_eq!(by_id("grid-labels").expect("labels")["layout"]["text-field"], "{name}\n{households} 户");
    let classes = style["metadata"]["gridmap:balance_classes"].as_array().expect("classes in the metadata");
    assert_eq!(classes.len(), 5);
    for l in style["layers"].as_array().expect("layers") {
        if let Some(source) = l["source"].as_str() {
            assert!(style["sources"].get(source).is_some(), "layer {} uses a missing source", l["id"]);
        }
        if let Some(sl) = l["source-layer"].as_str() {
            assert!(known.contains(sl), "unknown source-layer {sl}");
        }
        // Every URL in the style is ours: nothing to fetch from the internet.
        assert!(!l.to_string().contains("https://"));
    }
    let types: BTreeSet<&str> =
        style["layers"].as_array().expect("layers").iter().map(|l| l["type"].as_str().expect("type")).collect();
    assert!(types.is_superset(&["fill", "line", "symbol", "circle"].into()));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn export_tiles_writes_pmtiles_that_match_the_live_endpoint(pool: PgPool) {
    fixture(&pool).await;
    let dir = std::env::temp_dir().join(format!("gridmap-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join(format!("{}.pmtiles", uuid_like()));
    let args = gridmap_server::config::ExportTilesArgs {
        layers: "grids,buildings,stations".into(),
        minzoom: 10,
        maxzoom: 16,
        concurrency: 2,
        print_sql: None,
        out: out.clone(),
    };
    let report = gridmap_server::export::export_pmtiles(&pool, &args).await.expect("export");
    assert!(report.tiles > 7, "{report}");
    let reader = pmtiles::AsyncPmTilesReader::new_with_path(&out).await.expect("readable archive");
    let header = reader.get_header();
    assert_eq!((header.min_zoom, header.max_zoom), (10, 16));
    let state = AppState::new(pool.clone());
    for (lon, lat, z) in
        [(118.165, 36.1725, 10), (118.165, 36.1725, 14), (118.1611, 36.1711, 16), (118.3001, 36.3001, 16)]
    {
        let t = tile_at(lon, lat, z);
        let archived = reader
            .get_tile_decompressed(pmtiles::TileCoord::new(t.z, t.x, t.y).expect("coord"))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("{t} is in the archive"));
        let live = send(&state, &uri("grids,buildings,stations", t), &[]).await;
        assert_eq!(live.status, StatusCode::OK);
        let (a, l) = (Tile::decode(archived.as_ref()).expect("mvt"), Tile::decode(live.body.as_slice()).expect("mvt"));
        assert_eq!(a, l, "tile {t} differs between the archive and the live endpoint");
    }
    // Far from any data there is nothing in the archive.
    let nothing = reader.get_tile(pmtiles::TileCoord::new(16, 0, 0).expect("coord")).await.expect("read");
    assert!(nothing.is_none());
    let _ = std::fs::remove_file(&out);
}

fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos())
}

/// The whole demo city at every zoom up to 16: no tile above 500 KB, and building counts agree
/// with SQL at z14+ (fixture tiles elsewhere are compared exactly).
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn demo_city_tiles_stay_under_500_kb_and_match_sql_counts(pool: PgPool) {
    gridmap_server::seed::seed_demo(&pool, 1).await.expect("seed");
    let state = AppState::new(pool.clone());
    let (x0, y0, x1, y1): (f64, f64, f64, f64) = sqlx::query_as(
        "select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) from (select ST_Extent(geom_3857) e from grid) s",
    )
    .fetch_one(&pool)
    .await
    .expect("extent");
    let extent = Bbox::new(x0, y0, x1, y1);
    let mut largest = (0, String::new());
    let mut checked = 0;
    for z in 0..=16u8 {
        let tiles: Vec<TileCoord> = tiles_in_bbox(&extent, z).collect();
        // z15/16 have many tiles; every 7th keeps the test quick and still spreads across the city.
        let step = if z >= 15 { 7 } else { 1 };
        for t in tiles.into_iter().step_by(step) {
            let served = state.tiles.tile(LayerSet::ALL, t).await.expect("render");
            if served.tile.raw_len > largest.0 {
                largest = (served.tile.raw_len, t.to_string());
            }
            if z >= 14 && checked < 40 && !served.tile.is_empty() {
                let mvt = Tile::decode(served.tile.identity().expect("gunzip").as_slice()).expect("mvt");
                let n = mvt.layers.iter().find(|l| l.name == "buildings").map_or(0, |l| l.features.len()) as i64;
                // Every building whose anchor is inside the tile is drawn; none is drawn that does
                // not reach the tile plus buffer. (Between the two: a building that only grazes
                // the buffer collapses to nothing at 4096 units and ST_AsMVTGeom drops it.)
                let inside: i64 = sqlx::query_scalar(
                    "select count(*) from building where ST_Transform(anchor, 3857) && ST_Expand(ST_TileEnvelope($1, $2, $3), -1)",
                )
                .bind(i32::from(t.z))
                .bind(t.x as i32)
                .bind(t.y as i32)
                .fetch_one(&pool)
                .await
                .expect("count");
                let reaching = sql_count(&pool, "building", t).await;
                assert!(inside <= n && n <= reaching, "buildings in {t}: {inside} <= {n} <= {reaching}");
                checked += 1;
            }
        }
    }
    eprintln!("largest demo tile: {} bytes at {}", largest.0, largest.1);
    assert!(largest.0 < 500 * 1024, "tile {} is {} bytes", largest.1, largest.0);
    assert!(checked > 10);
}

/// The reports of the tile at `t` (id → properties), and whether it came from the cache.
async fn reports_in_tile(state: &AppState, t: TileCoord) -> (Vec<(u64, Vec<(String, String)>)>, String) {
    let reply = send(state, &uri("reports", t), &[("accept-encoding", "gzip")]).await;
    let cache = reply.headers["x-tile-cache"].to_str().expect("ascii").to_string();
    if reply.status == StatusCode::NO_CONTENT {
        return (Vec::new(), cache);
    }
    let tile = decode(&reply);
    let r = layer(&tile, "reports");
    (r.features.iter().map(|f| (f.id.expect("feature id"), props(r, f))).collect(), cache)
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_new_report_is_on_the_next_tile_with_public_fields_only(pool: PgPool) {
    crate::reports::small_city(&pool).await;
    let token = crate::reports::user(&pool, "rider-t", gridmap_server::config::Role::Rider, &[]).await;
    // No change listener runs here: what makes the tile fresh is the server's own, in-process
    // invalidation (its sessions skip the report NOTIFY, migration 0006).
    let state = AppState::new(pool.clone());
    let here = tile_at(118.175, 36.175, 16);
    let low = tile_at(118.175, 36.175, 11);
    assert_eq!(reports_in_tile(&state, here).await, (Vec::new(), "miss".into()));
    assert_eq!(reports_in_tile(&state, here).await.1, "hit");
    let base_low = send(&state, &uri("grids,stations,roads,reports", low), &[]).await;
    assert_eq!(base_low.status, StatusCode::OK);

    let mut body = crate::reports::report_body("manhole_cover", 118.175, 36.175);
    body["description"] = json!("SENTINEL-DESCRIPTION 门口井盖没了");
    let request = Request::post("/api/reports")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .body(Body::from(body.to_string()))
        .expect("request");
    let created = app(state.clone()).oneshot(request).await.expect("infallible");
    assert_eq!(created.status(), StatusCode::CREATED);
    let id: u64 = sqlx::query_scalar::<_, i64>("select id from report").fetch_one(&pool).await.expect("id") as u64;

    let (reports, cache) = reports_in_tile(&state, here).await;
    assert_eq!(cache, "miss", "the cached empty tile was dropped before the 201 went out");
    assert_eq!(reports.len(), 1);
    let (fid, props) = &reports[0];
    assert_eq!(*fid, id);
    let keys: BTreeSet<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, BTreeSet::from(["category", "created_at", "grid_id", "status"]));
    assert!(props.contains(&("category".into(), "manhole_cover".into())));
    assert!(props.contains(&("status".into(), "submitted".into())));
    assert!(props.contains(&("grid_id".into(), "1".into())));
    assert!(props.iter().all(|(_, v)| !v.contains("SENTINEL") && !v.contains("rider-t")));
    // Below z12 no tile draws reports, so the report left them cached.
    let again = send(&state, &uri("grids,stations,roads,reports", low), &[]).await;
    assert_eq!(again.headers["x-tile-cache"], "hit");

    // Cancelled reports leave the map.
    sqlx::query("update report set status = 'cancelled'").execute(&pool).await.expect("cancel");
    state.tiles.invalidate_all();
    assert!(reports_in_tile(&state, here).await.0.is_empty());
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn report_changes_by_plain_sql_are_announced_but_not_those_of_the_server(pool: PgPool) {
    crate::reports::small_city(&pool).await;
    sqlx::query(
        r"insert into report (category, geom, input_lon, input_lat, input_crs, grid_id, assignment)
          values ('streetlight', ST_SetSRID(ST_MakePoint(118.185, 36.175), 4326), 118.185, 36.175, 'wgs84', 2, 'covers')",
    )
    .execute(&pool)
    .await
    .expect("report");
    let (state, listener) = listening_state(&pool).await;
    let here = tile_at(118.185, 36.175, 15);
    let status = |state: AppState| async move {
        let (reports, _) = reports_in_tile(&state, here).await;
        reports.first().and_then(|(_, p)| p.iter().find(|(k, _)| k == "status").map(|(_, v)| v.clone()))
    };
    assert_eq!(status(state.clone()).await.as_deref(), Some("submitted"));
    assert_eq!(reports_in_tile(&state, here).await.1, "hit");

    // A session that says it is the server (db::Session::Server) stays silent: the tile keeps
    // its cached copy, because only the server's own handler would have dropped it.
    // Notifications arrive in commit order, so once a marker sent after the update has been
    // applied, a notification of the update would have been applied before it.
    let applied = || state.tiles.metrics.notifications.load(std::sync::atomic::Ordering::Relaxed);
    let before = applied();
    let mut conn = pool.acquire().await.expect("conn");
    sqlx::query("set gridmap.report_tiles = 'in_process'").execute(&mut *conn).await.expect("set");
    sqlx::query("update report set status = 'accepted'").execute(&mut *conn).await.expect("update");
    drop(conn);
    sqlx::query(r#"select pg_notify('gridmap_tiles', '{"table": "account", "boxes": []}')"#)
        .execute(&pool)
        .await
        .expect("marker");
    wait_for(Duration::from_secs(5), || async { applied() > before }).await;
    assert_eq!(applied(), before + 1, "the marker only: no NOTIFY from a server session");
    assert_eq!(status(state.clone()).await.as_deref(), Some("submitted"), "the cached tile stays");

    // An operator's psql session is announced like any tile table.
    let mut conn = pool.acquire().await.expect("conn");
    sqlx::query("reset gridmap.report_tiles").execute(&mut *conn).await.expect("reset");
    sqlx::query("update report set status = 'dispatched'").execute(&mut *conn).await.expect("update");
    drop(conn);
    wait_for(Duration::from_secs(1), || {
        let state = state.clone();
        async move { status(state).await.as_deref() == Some("dispatched") }
    })
    .await;
    drop(listener);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Each layer's features as id → properties (values as text), for comparing two tiles.
fn features_by_id(tile: &Tile) -> std::collections::BTreeMap<(String, u64), Vec<(String, String)>> {
    let mut out = std::collections::BTreeMap::new();
    for l in &tile.layers {
        for f in &l.features {
            let mut p = props(l, f);
            p.sort();
            out.insert((l.name.clone(), f.id.expect("every feature has an id")), p);
        }
    }
    out
}

/// The Rust encoder against PostGIS's own `ST_AsMVT` (the statement `LayerSet::sql` builds) on
/// the demo city, every layer, z0–z16 (outlines below z10): the same layers, the same properties for every feature
/// both draw, and the same features except where they only graze the 64-unit buffer (there
/// the two clippers may disagree on a sliver that snaps to nothing).
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn rust_encoded_tiles_match_postgis_st_asmvt(pool: PgPool) {
    gridmap_server::seed::seed_demo(&pool, 1).await.expect("seed");
    sqlx::query(
        "insert into report (category, geom, input_lon, input_lat, input_crs, grid_id, assignment, status)
         select 'streetlight', ST_PointOnSurface(geom), 0, 0, 'wgs84', id, 'covers', 'submitted' from grid",
    )
    .execute(&pool)
    .await
    .expect("reports");
    let state = AppState::new(pool.clone());
    let (x0, y0, x1, y1): (f64, f64, f64, f64) = sqlx::query_as(
        "select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) from (select ST_Extent(geom_3857) e from grid) s",
    )
    .fetch_one(&pool)
    .await
    .expect("extent");
    let (mut compared, mut features, mut grazing, mut our_bytes, mut their_bytes) = (0, 0, 0, 0, 0);
    for z in 0..=16u8 {
        let step = if z < 15 { 1 } else { [3, 9][usize::from(z - 15)] };
        // Below z10 the outlines only: there a whole street is a few tile units long, and the
        // two encoders disagree on which of those collapsed lines still count as a line.
        let layers = if z < gridmap_tiles::layer::GRIDS_MIN_ZOOM { Layer::Grids.into() } else { LayerSet::ALL };
        for t in tiles_in_bbox(&Bbox::new(x0, y0, x1, y1), z).step_by(step) {
            let ours = state.tiles.render_mvt(layers, t).await.expect("render");
            let theirs: Vec<u8> = sqlx::query_scalar(&layers.sql(t.z))
                .bind(i32::from(t.z))
                .bind(t.x as i32)
                .bind(t.y as i32)
                .fetch_one(&pool)
                .await
                .expect("ST_AsMVT");
            let (a, b) =
                (Tile::decode(ours.as_slice()).expect("ours"), Tile::decode(theirs.as_slice()).expect("theirs"));
            let names = |t: &Tile| t.layers.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
            let (fa, fb) = (features_by_id(&a), features_by_id(&b));
            for (key, p) in &fa {
                if let Some(q) = fb.get(key) {
                    assert_eq!(p, q, "{t} {key:?}: properties differ");
                }
            }
            let only: Vec<_> =
                fa.keys().filter(|k| !fb.contains_key(*k)).chain(fb.keys().filter(|k| !fa.contains_key(*k))).collect();
            grazing += only.len();
            assert!(only.len() <= 2, "{t}: features in one tile only: {only:?}");
            if only.is_empty() {
                assert_eq!(names(&a), names(&b), "{t}: layers differ");
            }
            features += fa.len();
            compared += 1;
            our_bytes += ours.len();
            their_bytes += theirs.len();
        }
    }
    eprintln!(
        "{compared} tiles, {features} features compared; {grazing} drawn by one encoder only; {our_bytes} vs {their_bytes} bytes"
    );
    assert!(compared > 40 && features > 10_000, "{compared} tiles, {features} features");
    assert!(grazing * 200 <= features, "{grazing} of {features} features differ");
    // Same content, no larger (within 1%: the clippers cut slivers in the buffer differently).
    assert!(our_bytes * 100 <= their_bytes * 101, "{our_bytes} vs {their_bytes} bytes");
}

/// The in-memory features follow every kind of change made behind the server's back: a delete,
/// an insert, and a bulk statement of more than 64 rows (announced as grouped boxes).
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn in_memory_features_follow_deletes_inserts_and_bulk_sql(pool: PgPool) {
    fixture(&pool).await;
    let (state, _listener) = listening_state(&pool).await;
    let here = tile_at(118.1611, 36.1711, 16);
    let id = building_id_at(&pool, 118.1611, 36.1711).await as u64;
    assert_eq!(floors_in_tile(&state, here, id).await.0, Some("6".into()));

    sqlx::query("delete from building where id = $1").bind(id as i64).execute(&pool).await.expect("delete");
    wait_for(Duration::from_secs(1), || {
        let state = state.clone();
        async move { floors_in_tile(&state, here, id).await.0.is_none() }
    })
    .await;

    // 100 new 10 m buildings in a row across several z16 tiles, in one statement.
    let new_ids: Vec<i64> = sqlx::query_scalar(
        "insert into building (geom, floors, households, use)
         select ST_Multi(ST_MakeEnvelope(118.17 + i * 0.0002, 36.18, 118.17 + i * 0.0002 + 0.0001, 36.1801, 4326)), 4, 8, 'residential'
           from generate_series(0, 99) i returning id",
    )
    .fetch_all(&pool)
    .await
    .expect("bulk insert");
    let last = tile_at(118.17 + 99.0 * 0.0002 + 0.00005, 36.18005, 16);
    let last_id = *new_ids.last().expect("ids") as u64;
    wait_for(Duration::from_secs(1), || {
        let state = state.clone();
        async move { floors_in_tile(&state, last, last_id).await.0.as_deref() == Some("4") }
    })
    .await;
    // Every new building is in memory, and each z16 tile's count matches SQL.
    let first = tile_at(118.17, 36.18005, 16);
    for t in [first, last] {
        let tile = decode(&send(&state, &uri("buildings", t), &[]).await);
        assert_eq!(layer(&tile, "buildings").features.len() as i64, sql_count(&pool, "building", t).await, "{t}");
    }
}

/// The county outline's properties in the z5 tile over (`lon`, `lat`): (grids, households).
async fn county_outline_in_tile(state: &AppState, lon: f64, lat: f64, code: &str) -> Option<(String, String)> {
    let tile = decode(&send(state, &uri("grids", tile_at(lon, lat, 5)), &[]).await);
    assert!(tile.layers.iter().all(|l| l.name != "grids"), "single grids are not drawn at z5");
    let outlines = layer(&tile, "outlines");
    outlines.features.iter().map(|f| props(outlines, f)).find(|p| p.contains(&("code".into(), code.into()))).map(|p| {
        let get = |k: &str| p.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
        (get("grids"), get("households"))
    })
}

/// Outlines that differ from the union of their grids (or whose grid count or households do
/// not add up), per level, computed here independently of the view the triggers use.
async fn outlines_off_their_grids(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "with g as (select g.geom, g.households, g.community_id, c.subdistrict_id, s.county_id
                      from grid g join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id),
              u as (select 'community' as level, community_id as key, ST_Union(geom) geom, count(*) n, sum(households) h from g group by 1, 2
                    union all select 'subdistrict', subdistrict_id, ST_Union(geom), count(*), sum(households) from g group by 1, 2
                    union all select 'county', county_id, ST_Union(geom), count(*), sum(households) from g group by 1, 2)
         select coalesce(u.level, o.level), coalesce(u.key, o.key)
           from u full join outline o on o.level = u.level and o.key = u.key
          where o.key is null or u.key is null or o.grids <> u.n or o.households <> u.h
             or ST_Area(ST_SymDifference(o.geom, u.geom)) > 1e-12",
    )
    .fetch_all(pool)
    .await
    .expect("outline check")
}

/// Issue 22: below z10 the grids layer draws generalised outlines (county → subdistrict →
/// community); on a two-county demo they equal the union of their grids at every level, carry
/// the right aggregates, and follow a grid edit made behind the server's back within a second.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn outlines_equal_the_union_of_their_grids_and_follow_an_edit_within_a_second(pool: PgPool) {
    gridmap_server::seed::seed_demo(&pool, 2).await.expect("seed");
    let levels: Vec<(String, i64)> = sqlx::query_as("select level, count(*) from outline group by 1 order by 1")
        .fetch_all(&pool)
        .await
        .expect("levels");
    assert_eq!(levels.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["community", "county", "subdistrict"]);
    assert!(levels.iter().any(|(l, n)| l == "county" && *n == 2), "{levels:?}");
    assert_eq!(outlines_off_their_grids(&pool).await, []);

    let (state, _listener) = listening_state(&pool).await;
    let (lon, lat, grids, households): (f64, f64, i64, i64) = sqlx::query_as(
        "select ST_X(ST_Centroid(ST_Collect(g.geom))), ST_Y(ST_Centroid(ST_Collect(g.geom))), count(*), sum(g.households)
           from grid g join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id
           join county k on k.id = s.county_id where k.code = '370323'",
    )
    .fetch_one(&pool)
    .await
    .expect("county");
    let before = county_outline_in_tile(&state, lon, lat, "370323").await;
    assert_eq!(before, Some((grids.to_string(), households.to_string())));
    // Every level has its own zoom: subdistricts at z7, communities at z9, grids from z10.
    for (z, expected) in [(7, "subdistrict"), (9, "community")] {
        let tile = decode(&send(&state, &uri("grids", tile_at(lon, lat, z)), &[]).await);
        let outlines = layer(&tile, "outlines");
        assert!(outlines.features.iter().all(|f| props(outlines, f).contains(&("level".into(), expected.into()))));
    }
    let z10 = decode(&send(&state, &uri("grids", tile_at(lon, lat, 10)), &[]).await);
    assert!(z10.layers.iter().any(|l| l.name == "grids") && z10.layers.iter().all(|l| l.name != "outlines"));

    // A new grid in Yiyuan, by plain SQL, 0.1° east of its grids (inside no other grid).
    sqlx::query(
        "insert into grid (code, name, community_id, geom)
         select 'OUTLINE-NEW', '新网格', min(c.id), ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint($1 + 0.1, $2), 4326), 0.003))
           from community c join subdistrict s on s.id = c.subdistrict_id join county k on k.id = s.county_id
          where k.code = '370323'",
    )
    .bind(lon)
    .bind(lat)
    .execute(&pool)
    .await
    .expect("new grid");
    let expected = Some(((grids + 1).to_string(), households.to_string()));
    wait_for(Duration::from_secs(1), || {
        let (state, expected) = (state.clone(), expected.clone());
        async move { county_outline_in_tile(&state, lon, lat, "370323").await == expected }
    })
    .await;
    assert_eq!(outlines_off_their_grids(&pool).await, []);
}
