//! Real OGC API – Features clients against the real binary on a seeded scratch database:
//! GDAL's OAPIF driver lists the collections, pages through all 267 grids and copies them to a
//! GeoPackage with their attributes; pushes a `-where` to the server as a CQL filter and copies
//! every building in at most 20 HTTP requests (counted on the wire with `CPL_CURL_VERBOSE`);
//! and an HTTP write round trip with stale and fresh ETags.
//! Skipped, saying so, where GDAL (`ogrinfo`) is not installed (scripts/setup.sh installs it).

use std::io::Write;
use std::process::{Command, Stdio};

use gridmap_e2e::{ScratchDb, Server, gridmap};

fn gdal_present() -> bool {
    let ok = Command::new("ogrinfo")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        gridmap_e2e::cannot_run("ogrinfo (GDAL) is not installed; `apt-get install gdal-bin` or scripts/setup.sh test");
    }
    ok
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("run GDAL");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed: {text}");
    text
}

async fn seeded_server() -> (ScratchDb, Server) {
    let db = ScratchDb::new(true).await;
    let out = gridmap(&db.url).args(["seed", "--demo"]).stdout(Stdio::null()).output().expect("seed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(&db, &[]).await;
    (db, server)
}

#[tokio::test]
async fn gdal_lists_collections_pages_all_grids_and_copies_them_to_geopackage() {
    if !gdal_present() {
        return;
    }
    let (_db, server) = seeded_server().await;
    let source = format!("OAPIF:{}", server.url("/ogc"));
    let listing = run(Command::new("ogrinfo").args(["-ro", source.as_str()]));
    for layer in ["grids", "buildings", "stations", "reports"] {
        assert!(listing.contains(layer), "ogrinfo lists {layer}: {listing}");
    }
    // 100 per page: three pages, followed through the `next` links.
    let all = run(Command::new("ogrinfo").args(["-ro", "-al", "-q", "-oo", "PAGE_SIZE=100", source.as_str(), "grids"]));
    assert_eq!(all.matches("OGRFeature(grids):").count(), 267, "every demo grid, once");
    assert!(all.contains("code (String) = LS-001"), "attributes come through");

    let gpkg = std::env::temp_dir().join(format!("gridmap-{}.gpkg", uuid::Uuid::new_v4()));
    run(Command::new("ogr2ogr").args(["-f", "GPKG"]).arg(&gpkg).args([
        source.as_str(),
        "grids",
        "-oo",
        "PAGE_SIZE=100",
    ]));
    let copied = run(Command::new("ogrinfo").args(["-ro", "-so"]).arg(&gpkg).arg("grids"));
    assert!(copied.contains("Feature Count: 267"), "{copied}");
    for field in ["code:", "name:", "households:", "version:"] {
        assert!(copied.contains(field), "field {field} in the GeoPackage: {copied}");
    }
    let households = run(Command::new("ogrinfo")
        .args(["-ro", "-q"])
        .arg(&gpkg)
        .args(["-sql", "select sum(households) as total from grids"]));
    assert!(!households.contains("total (Integer) = 0"), "{households}");
    let _ = std::fs::remove_file(&gpkg);
}

/// Runs a GDAL command with curl's verbose output on and returns its output and the request
/// lines it sent (`GET /ogc/collections?… HTTP/1.1`), as the server saw them.
fn run_counting_requests(command: &mut Command) -> (String, Vec<String>) {
    let text = run(command.env("CPL_CURL_VERBOSE", "YES"));
    let requests = text
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .filter(|l| l.starts_with("GET ") || l.starts_with("HEAD ") || l.starts_with("POST "))
        .map(str::to_string)
        .collect();
    (text, requests)
}

#[tokio::test]
async fn gdal_sends_a_where_clause_to_the_server_as_a_filter_and_copies_all_buildings_in_few_requests() {
    if !gdal_present() {
        return;
    }
    let (db, server) = seeded_server().await;
    let source = format!("OAPIF:{}", server.url("/ogc"));

    // GDAL 3.6 pushes a -where to the server only for properties that the API document lists as
    // query parameters of `/collections/{id}/items` (found relative to the landing page), and
    // as a CQL filter only when `filter-lang` offers `cql-text`; otherwise it downloads every
    // page and filters on the client.
    let (text, requests) = run_counting_requests(Command::new("ogrinfo").args([
        "-ro",
        "-al",
        "-q",
        source.as_str(),
        "grids",
        "-where",
        "code = 'NM-001'",
    ]));
    let filtered: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET /ogc/collections/grids/items?") && r.contains("filter="))
        .collect();
    assert!(!filtered.is_empty(), "GDAL sent no filter to the server: {requests:#?}");
    assert!(
        filtered.iter().all(|r| r.contains("filter=code%20%3D%20'NM-001'") && r.contains("filter-lang=cql-text")),
        "{filtered:#?}"
    );
    assert_eq!(text.matches("OGRFeature(grids):").count(), 1, "{text}");
    assert!(text.contains("code (String) = NM-001"), "{text}");

    // Every demo building, copied to a GeoPackage. GDAL 3.6 asks `limit=10` unless told a page
    // size (it does not read the maximum the API document declares; GDAL 3.8 does): 1,000 per
    // page, the server's maximum, keeps the copy to a few requests instead of ~1,400.
    let expected: i64 =
        sqlx::query_scalar("select count(*) from building").fetch_one(&db.pool().await).await.expect("count buildings");
    assert!(expected > 10_000, "the demo city has {expected} buildings");
    let gpkg = std::env::temp_dir().join(format!("gridmap-{}.gpkg", uuid::Uuid::new_v4()));
    let (_, requests) = run_counting_requests(Command::new("ogr2ogr").args(["-f", "GPKG"]).arg(&gpkg).args([
        source.as_str(),
        "buildings",
        "-oo",
        "PAGE_SIZE=1000",
    ]));
    let copied = run(Command::new("ogrinfo").args(["-ro", "-so"]).arg(&gpkg).arg("buildings"));
    let _ = std::fs::remove_file(&gpkg);
    assert!(copied.contains(&format!("Feature Count: {expected}")), "{copied}");
    eprintln!("ogr2ogr copied {expected} buildings in {} HTTP requests", requests.len());
    assert!(requests.len() <= 20, "{} requests: {requests:#?}", requests.len());
    assert!(requests.len() as i64 > expected / 1000, "the requests were counted: {requests:#?}");
}

#[tokio::test]
async fn write_round_trip_over_http_with_stale_and_fresh_etags() {
    let (db, server) = seeded_server().await;
    let mut child = gridmap(&db.url)
        .args(["user", "add", "--role", "planner", "--name", "planner-e2e", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    child.stdin.take().expect("stdin").write_all(b"a long enough secret\n").expect("write");
    assert!(child.wait().expect("wait").success());
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(server.url("/api/auth/login"))
        .json(&serde_json::json!({"name": "planner-e2e", "password": "a long enough secret"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["token"].as_str().expect("token").to_string();
    let page: serde_json::Value = client
        .get(server.url("/ogc/collections/grids/items?code=LS-001"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let id = page["features"][0]["id"].as_i64().expect("id");
    let item = server.url(&format!("/ogc/collections/grids/items/{id}"));
    let etag = client.get(&item).send().await.expect("get").headers()["etag"].to_str().expect("etag").to_string();
    let patch = |if_match: &str| {
        client
            .patch(&item)
            .bearer_auth(&token)
            .header("if-match", if_match)
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"properties":{"name":"历山第一网格（改）"}}"#)
            .send()
    };
    let fresh = patch(&etag).await.expect("patch");
    assert_eq!(fresh.status(), 200);
    let new_etag = fresh.headers()["etag"].to_str().expect("etag").to_string();
    assert_ne!(new_etag, etag);
    let stale = patch(&etag).await.expect("patch");
    assert_eq!(stale.status(), 412);
    let missing = client.delete(&item).bearer_auth(&token).send().await.expect("delete");
    assert_eq!(missing.status(), 428);
}
