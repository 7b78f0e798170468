//! `gridmap import`: good files land whole, a bad feature rejects the whole file by index.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{count, shared_data};
use gridmap_server::config::ImportTarget;
use gridmap_server::import::{ImportError, ImportOptions, import_geojson};

fn options(target: ImportTarget, allow_outside_county: bool) -> ImportOptions {
    ImportOptions { allow_outside_county, ..ImportOptions::new(target, "test") }
}

fn square(x: f64, y: f64, d: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]})
}

fn collection(features: &[Value]) -> Vec<u8> {
    json!({"type": "FeatureCollection", "features": features}).to_string().into_bytes()
}

fn grid(code: &str, geometry: &Value) -> Value {
    json!({"type": "Feature", "properties": {"code": code, "name": format!("网格 {code}")}, "geometry": geometry})
}

async fn expect_rejected(pool: &PgPool, bytes: &[u8], target: ImportTarget, index: usize, reason: &str) {
    let before = (count(pool, "grid").await, count(pool, "building").await, count(pool, "station").await);
    match import_geojson(pool, bytes, &options(target, false)).await {
        Err(ImportError::Feature { index: i, reason: r }) => {
            assert_eq!(i, index, "wrong feature blamed: {r}");
            assert!(r.contains(reason), "reason {r:?} should mention {reason:?}");
        }
        other => panic!("expected feature {index} to be rejected, got {other:?}"),
    }
    let after = (count(pool, "grid").await, count(pool, "building").await, count(pool, "station").await);
    assert_eq!(before, after, "nothing may be stored");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn good_grid_file_is_imported_and_reimport_updates_by_code(pool: PgPool) {
    let bytes =
        collection(&[grid("IM-001", &square(118.15, 36.17, 0.01)), grid("IM-002", &square(118.16, 36.17, 0.01))]);
    let report = import_geojson(&pool, &bytes, &options(ImportTarget::Grids, false)).await.expect("import");
    assert_eq!((report.inserted, report.updated), (2, 0));
    let report = import_geojson(&pool, &bytes, &options(ImportTarget::Grids, false)).await.expect("re-import");
    assert_eq!((report.inserted, report.updated), (0, 2));
    assert_eq!(count(&pool, "grid").await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_self_intersecting_feature_rejects_the_whole_file(pool: PgPool) {
    let bowtie = json!({"type": "Polygon", "coordinates": [[[118.1, 36.1], [118.11, 36.11], [118.11, 36.1], [118.1, 36.11], [118.1, 36.1]]]});
    let bytes = collection(&[
        grid("IM-001", &square(118.15, 36.17, 0.01)),
        grid("IM-002", &square(118.16, 36.17, 0.01)),
        grid("IM-003", &bowtie),
    ]);
    expect_rejected(&pool, &bytes, ImportTarget::Grids, 2, "invalid geometry").await;
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn missing_property_wrong_type_empty_and_outside_are_named(pool: PgPool) {
    let no_name = json!({"type": "Feature", "properties": {"code": "IM-009"}, "geometry": square(118.15, 36.17, 0.01)});
    expect_rejected(
        &pool,
        &collection(&[grid("IM-001", &square(118.15, 36.17, 0.01)), no_name]),
        ImportTarget::Grids,
        1,
        "`name`",
    )
    .await;

    let point = json!({"type": "Point", "coordinates": [118.15, 36.17]});
    expect_rejected(&pool, &collection(&[grid("IM-001", &point)]), ImportTarget::Grids, 0, "not allowed").await;

    let empty = json!({"type": "MultiPolygon", "coordinates": []});
    expect_rejected(
        &pool,
        &collection(&[grid("IM-001", &square(118.15, 36.17, 0.01)), grid("IM-002", &empty)]),
        ImportTarget::Grids,
        1,
        "empty",
    )
    .await;

    let vaduz = grid("IM-001", &square(9.52, 47.14, 0.01));
    expect_rejected(&pool, &collection(&[vaduz]), ImportTarget::Grids, 0, "outside the county").await;

    let bad_households =
        json!({"type": "Feature", "properties": {"households": "many"}, "geometry": square(118.15, 36.17, 0.001)});
    expect_rejected(&pool, &collection(&[bad_households]), ImportTarget::Buildings, 0, "`households`").await;

    let station = json!({"type": "Feature", "properties": {"name": "驿站", "services": ["karaoke"]}, "geometry": {"type": "Point", "coordinates": [118.17, 36.18]}});
    expect_rejected(&pool, &collection(&[station]), ImportTarget::Stations, 0, "`services`").await;

    let duplicate =
        collection(&[grid("IM-001", &square(118.15, 36.17, 0.01)), grid("IM-001", &square(118.16, 36.17, 0.01))]);
    expect_rejected(&pool, &duplicate, ImportTarget::Grids, 1, "twice").await;
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn not_a_feature_collection_is_refused(pool: PgPool) {
    for bytes in [&b"not json"[..], br#"{"type":"Feature"}"#, br#"{"type":"FeatureCollection","features":[]}"#] {
        let result = import_geojson(&pool, bytes, &options(ImportTarget::Grids, false)).await;
        assert!(matches!(result, Err(ImportError::NotACollection(_))), "{result:?}");
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn stations_import_with_services(pool: PgPool) {
    let station = json!({"type": "Feature", "properties": {"name": "暖“新”驿站·测试", "services": ["rest", "water"], "opening_hours": "24/7"},
                         "geometry": {"type": "Point", "coordinates": [118.17, 36.18]}});
    import_geojson(&pool, &collection(&[station]), &options(ImportTarget::Stations, false)).await.expect("import");
    let services: Vec<String> =
        sqlx::query_scalar("select services from station").fetch_one(&pool).await.expect("services");
    assert_eq!(services, ["rest", "water"]);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn all_liechtenstein_osm_buildings_import(pool: PgPool) {
    let Some(path) = shared_data("osm-liechtenstein/buildings.geojson") else { return };
    let bytes = std::fs::read(path).expect("read");
    let outside = import_geojson(&pool, &bytes, &options(ImportTarget::Buildings, false)).await;
    assert!(matches!(outside, Err(ImportError::Feature { index: 0, .. })), "county check applies by default");
    let report = import_geojson(&pool, &bytes, &options(ImportTarget::Buildings, true)).await.expect("import");
    assert_eq!(report.inserted, 3_723);
    assert_eq!(count(&pool, "building").await, 3_723);
    let again = import_geojson(&pool, &bytes, &options(ImportTarget::Buildings, true)).await.expect("re-import");
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 3_723), "{again}");
    assert_eq!(count(&pool, "building").await, 3_723);
    let named: i64 =
        sqlx::query_scalar("select count(*) from building where name = 'Swarovski AG' and external_id = 'way/114'")
            .fetch_one(&pool)
            .await
            .expect("osm fields");
    assert_eq!(named, 1);
}

fn building(properties: Value, geometry: Value) -> Value {
    let mut feature = serde_json::Map::new();
    feature.insert("type".into(), "Feature".into());
    feature.insert("properties".into(), properties);
    feature.insert("geometry".into(), geometry);
    Value::Object(feature)
}

async fn households_and_changes(pool: &PgPool) -> (i64, i64, Vec<(i32, String)>) {
    let households: i64 =
        sqlx::query_scalar("select coalesce(sum(households), 0)::bigint from grid").fetch_one(pool).await.expect("sum");
    let max_change: i64 =
        sqlx::query_scalar("select coalesce(max(extract(epoch from updated_at) * 1000000), 0)::bigint from building")
            .fetch_one(pool)
            .await
            .expect("updated_at");
    let rows = sqlx::query_as("select households, coalesce(external_id, '') from building order by external_id")
        .fetch_all(pool)
        .await
        .expect("rows");
    (households, max_change, rows)
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn reimporting_the_same_buildings_changes_nothing_and_a_changed_file_updates_by_osm_id(pool: PgPool) {
    let grids = collection(&[grid("IM-001", &square(118.15, 36.17, 0.01))]);
    import_geojson(&pool, &grids, &options(ImportTarget::Grids, false)).await.expect("grid");
    let file = |levels: &str| {
        collection(&[
            building(
                json!({"osm_type": "way", "osm_id": 7, "building": "apartments", "households": 24, "building:levels": levels}),
                square(118.151, 36.171, 0.0003),
            ),
            building(json!({"osm_type": "relation", "osm_id": 7, "households": 12}), square(118.152, 36.172, 0.0003)),
            building(json!({"osm_way_id": 8, "households": 6}), square(118.153, 36.173, 0.0003)),
        ])
    };
    let first = import_geojson(&pool, &file("5"), &options(ImportTarget::Buildings, false)).await.expect("import");
    assert_eq!((first.inserted, first.updated, first.unchanged), (3, 0, 0), "{first}");
    let before = households_and_changes(&pool).await;
    assert_eq!(before.0, 42, "the grid counts its buildings' households");
    let ids: Vec<&str> = before.2.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, ["relation/7", "way/7", "way/8"], "OSM ids keep their type");

    let again = import_geojson(&pool, &file("5"), &options(ImportTarget::Buildings, false)).await.expect("re-import");
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 3), "{again}");
    assert_eq!(households_and_changes(&pool).await, before, "no row was written, the households are the same");

    let changed = import_geojson(&pool, &file("6"), &options(ImportTarget::Buildings, false)).await.expect("changed");
    assert_eq!((changed.inserted, changed.updated, changed.unchanged), (0, 1, 2), "{changed}");
    let floors: i32 = sqlx::query_scalar("select floors from building where external_id = 'way/7'")
        .fetch_one(&pool)
        .await
        .expect("floors");
    assert_eq!(floors, 6);
    assert_eq!(count(&pool, "building").await, 3);
    assert_eq!(households_and_changes(&pool).await.0, 42);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_id_property_names_the_external_id_and_a_repeated_id_is_refused(pool: PgPool) {
    let file = collection(&[
        building(json!({"ref": "B-1", "osm_id": 1, "households": 3}), square(118.151, 36.171, 0.0003)),
        building(json!({"ref": "B-2", "osm_id": 1, "households": 4}), square(118.152, 36.172, 0.0003)),
    ]);
    let by_ref = ImportOptions { id_property: Some("ref".into()), ..options(ImportTarget::Buildings, false) };
    let first = import_geojson(&pool, &file, &by_ref).await.expect("import");
    assert_eq!(first.inserted, 2);
    let again = import_geojson(&pool, &file, &by_ref).await.expect("re-import");
    assert_eq!((again.inserted, again.unchanged), (0, 2));
    // By the default id (osm_id), the same file names one building twice.
    expect_rejected(&pool, &file, ImportTarget::Buildings, 1, "appears twice").await;

    let station = |name: &str| {
        collection(&[json!({"type": "Feature", "properties": {"name": name, "osm_type": "node", "osm_id": 99},
                            "geometry": {"type": "Point", "coordinates": [118.17, 36.18]}})])
    };
    import_geojson(&pool, &station("驿站"), &options(ImportTarget::Stations, false)).await.expect("station");
    let again = import_geojson(&pool, &station("驿站"), &options(ImportTarget::Stations, false)).await.expect("again");
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 1));
    let renamed =
        import_geojson(&pool, &station("新驿站"), &options(ImportTarget::Stations, false)).await.expect("renamed");
    assert_eq!(renamed.updated, 1);
    assert_eq!(count(&pool, "station").await, 1);
}
