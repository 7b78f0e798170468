//! QGIS, the planner's client, headless against the real binary on a seeded scratch database:
//! `tests/qgis/load_gridmap.py` loads the four OGC collections through QGIS's OAPIF provider,
//! applies `datetime` subsets (which QGIS turns into `datetime=` queries) and converts the tile
//! style with QGIS's own MapLibre style converter; this test compares what QGIS saw with SQL.
//!
//! Debian's QGIS (`python3-qgis qgis-providers`, 3.22 on Debian 12) runs with Debian's python3,
//! not another one on the PATH. Without it the test fails under `CI=true` and elsewhere prints
//! SKIPPED (`bash scripts/setup.sh test` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gridmap_e2e::{ScratchDb, Server, gridmap};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

fn qgis_present() -> bool {
    let ok = Path::new(PYTHON).exists()
        && Command::new(PYTHON)
            .args(["-c", "import qgis.core"])
            .env("QT_QPA_PLATFORM", "offscreen")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        gridmap_e2e::cannot_run(
            "QGIS's Python bindings are not installed (`apt-get install --no-install-recommends python3-qgis qgis-providers`, or scripts/setup.sh test)",
        );
    }
    ok
}

#[tokio::test]
async fn qgis_loads_every_collection_with_the_right_counts_sends_datetime_to_the_server_and_converts_the_style() {
    if !qgis_present() {
        return;
    }
    let db = ScratchDb::new(true).await;
    let out = gridmap(&db.url).args(["seed", "--demo"]).stdout(Stdio::null()).output().expect("seed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(&db, &[]).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("qgis/load_gridmap.py");
    let home = std::env::temp_dir().join(format!("gridmap-qgis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&home).expect("QGIS home");
    // The server is another process: blocking this test's thread while QGIS runs is harmless.
    let out = Command::new(PYTHON)
        .arg(&script)
        .arg(&server.base)
        .env("QT_QPA_PLATFORM", "offscreen")
        // QGIS writes its settings and caches under HOME: a scratch one per run.
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &home)
        .output()
        .expect("run QGIS");
    let _ = std::fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "QGIS script failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("QGIS printed no JSON ({e}): {stdout}"));
    eprintln!("QGIS {}: {}", seen["qgis"], seen);

    let pool = db.pool().await;
    for (collection, table) in
        [("grids", "grid"), ("buildings", "building"), ("stations", "station"), ("reports", "report")]
    {
        let expected: i64 =
            sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(&pool).await.expect("count");
        let layer = &seen["collections"][collection];
        assert_eq!(layer["valid"], true, "QGIS could not load {collection}: {seen}");
        assert_eq!(layer["count"].as_i64(), Some(expected), "{collection}: QGIS read {layer}, SQL has {expected}");
    }
    assert!(
        seen["collections"]["grids"]["fields"].as_array().is_some_and(|f| f.iter().any(|n| n == "code")),
        "grid attributes: {seen}"
    );
    let grids: i64 = sqlx::query_scalar("select count(*) from grid").fetch_one(&pool).await.expect("count");
    let future: i64 = sqlx::query_scalar("select count(*) from grid where updated_at > '2030-01-01T00:00:00Z'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(seen["datetime"]["after_2030"].as_i64(), Some(future), "a datetime subset in QGIS: {seen}");
    assert_eq!(seen["datetime"]["after_2000"].as_i64(), Some(grids), "{seen}");

    let tiles = &seen["tiles"];
    assert_eq!(tiles["valid"], true, "{tiles}");
    assert_eq!(tiles["converted"], true, "QGIS converts the style: {tiles}");
    let renderer = tiles["renderer_styles"].as_array().map_or(0, Vec::len);
    assert!(renderer >= 3, "QGIS keeps the style's layers: {tiles}");
    // The grid fill colours by balance class and the labels are what 3.22's converter reads:
    // it warns about every expression it drops.
    let dropped: Vec<&str> = tiles["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|w| w.contains("grid") && (w.contains("color") || w.contains("colour") || w.contains("text-field")))
        .collect();
    assert!(dropped.is_empty(), "QGIS dropped grid colours or labels: {dropped:#?}");
    assert!(
        tiles["labeling_styles"].as_array().is_some_and(|l| !l.is_empty()),
        "labels survive the conversion: {tiles}"
    );
}
