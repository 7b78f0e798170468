//! Abuse limits and the bad-input corpus. Every malformed, hostile or oversized request gets a
//! 4xx JSON error (never a 5xx, never a hang) and the database is byte-for-byte unchanged: each
//! table's rows are checksummed before and after every case.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use sqlx::PgPool;
use tower::ServiceExt;

use crate::common::{Reply, send};
use gridmap_server::config::Role;
use gridmap_server::http::{AppState, app};

/// Tables whose contents a bad request must not change (sessions are left out: the corpus logs
/// nobody in, and a login writes a token by design).
const TABLES: &[&str] = &[
    "grid",
    "grid_version",
    "building",
    "station",
    "report",
    "report_event",
    "report_photo",
    "points_ledger",
    "points_item",
    "points_redemption",
    "points_rule",
    "account",
    "grid_assignment",
    "area",
    "subdistrict",
    "community",
];

async fn checksum(pool: &PgPool) -> Vec<(String, String)> {
    let mut sums = Vec::new();
    for table in TABLES {
        // Table names come from the list above, never from input.
        let sum: String = sqlx::query_scalar(&format!(
            "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {table} t"
        ))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("checksum {table}: {e}"));
        sums.push(((*table).to_string(), sum));
    }
    sums
}

struct Case {
    name: &'static str,
    method: &'static str,
    uri: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    token: bool,
}

fn case(
    name: &'static str,
    method: &'static str,
    uri: impl Into<String>,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
) -> Case {
    Case { name, method, uri: uri.into(), content_type, body: body.into(), token: false }
}

fn as_planner(mut c: Case) -> Case {
    c.token = true;
    c
}

const JSON: Option<&str> = Some("application/json");
const GEOJSON: Option<&str> = Some("application/geo+json");
const INJECTION: &str = "'; drop table grid; --";

fn report(location: &serde_json::Value) -> String {
    json!({"category": "road_damage", "description": "x", "location": location}).to_string()
}

fn polygon_ring(n: usize, r: f64) -> Vec<[f64; 2]> {
    let mut ring: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            [118.17 + r * a.cos(), 36.175 + r * a.sin()]
        })
        .collect();
    ring.push(ring[0]);
    ring
}

fn feature(geometry: &serde_json::Value) -> String {
    json!({"type": "Feature", "geometry": geometry, "properties": {"code": "BAD-1", "name": "坏网格"}}).to_string()
}

fn corpus() -> Vec<Case> {
    let huge_ring = polygon_ring(1_000_000, 0.001);
    let multipart_fake = "--b\r\nContent-Disposition: form-data; name=\"report\"\r\nContent-Type: application/json\r\n\r\n{\"category\":\"road_damage\",\"description\":\"x\",\"location\":{\"lon\":118.175,\"lat\":36.175,\"crs\":\"wgs84\",\"accuracy_m\":5}}\r\n--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\nthis is not a jpeg at all\r\n--b--\r\n";
    vec![
        // Report intake.
        case("malformed JSON", "POST", "/api/reports", JSON, "{\"category\": "),
        case("wrong types", "POST", "/api/reports", JSON, r#"{"category": 7, "description": [], "location": "here"}"#),
        case("NaN literal", "POST", "/api/reports", JSON, r#"{"category":"road_damage","location":{"lon":NaN,"lat":36.1,"crs":"wgs84","accuracy_m":5}}"#),
        case("Infinity as number", "POST", "/api/reports", JSON, r#"{"category":"road_damage","location":{"lon":1e999,"lat":36.1,"crs":"wgs84","accuracy_m":5}}"#),
        case("longitude out of range", "POST", "/api/reports", JSON, report(&json!({"lon": 190.0, "lat": 36.1, "crs": "wgs84", "accuracy_m": 5}))),
        case("latitude out of range", "POST", "/api/reports", JSON, report(&json!({"lon": 118.1, "lat": -91.0, "crs": "wgs84", "accuracy_m": 5}))),
        case("outside the county", "POST", "/api/reports", JSON, report(&json!({"lon": 116.4, "lat": 39.9, "crs": "wgs84", "accuracy_m": 5}))),
        case("accuracy too poor", "POST", "/api/reports", JSON, report(&json!({"lon": 118.175, "lat": 36.175, "crs": "wgs84", "accuracy_m": 500}))),
        case("negative accuracy", "POST", "/api/reports", JSON, report(&json!({"lon": 118.175, "lat": 36.175, "crs": "wgs84", "accuracy_m": -1}))),
        case("unknown crs", "POST", "/api/reports", JSON, report(&json!({"lon": 118.175, "lat": 36.175, "crs": "EPSG:2385", "accuracy_m": 5}))),
        case("injection as category", "POST", "/api/reports", JSON,
            json!({"category": INJECTION, "description": "x", "location": {"lon": 118.175, "lat": 36.175, "crs": "wgs84", "accuracy_m": 5}}).to_string()),
        case("description too long", "POST", "/api/reports", JSON,
            json!({"category": "road_damage", "description": "长".repeat(2001), "location": {"lon": 118.175, "lat": 36.175, "crs": "wgs84", "accuracy_m": 5}}).to_string()),
        case("lone surrogate escape", "POST", "/api/reports", JSON, r#"{"category":"road_damage","description":"\ud800","location":{"lon":118.175,"lat":36.175,"crs":"wgs84","accuracy_m":5}}"#),
        case("invalid UTF-8", "POST", "/api/reports", JSON, b"{\"category\":\"road_damage\",\"description\":\"\xff\xfe\"}".to_vec()),
        case("text/plain body", "POST", "/api/reports", Some("text/plain"), "category=road_damage"),
        case("no content type", "POST", "/api/reports", None, "{}"),
        case("body over the limit", "POST", "/api/reports", JSON, format!("{{\"description\": \"{}\"}}", "a".repeat(2 * 1024 * 1024))),
        case("fake JPEG photo", "POST", "/api/reports", Some("multipart/form-data; boundary=b"), multipart_fake),
        case("batch that is not a list", "POST", "/api/reports/batch", JSON, r#"{"items": 5}"#),
        // Report reads and workflow.
        case("injection as status filter", "GET", format!("/api/reports?status={}", enc(INJECTION)), None, ""),
        case("bbox with NaN", "GET", "/api/reports?bbox=NaN,1,2,3", None, ""),
        case("hexbin resolution out of range", "GET", "/api/reports/hexbins?res=15", None, ""),
        case("report id not a number", "GET", "/api/reports/1%20or%201=1", None, ""),
        case("transition without login", "POST", "/api/reports/1/transitions", JSON, r#"{"to":"closed"}"#),
        // OGC API: filters and paging.
        case("CQL2 with a statement", "GET", format!("/ogc/collections/grids/items?filter={}", enc("name = 'a'; drop table grid")), None, ""),
        case("CQL2 unknown property", "GET", format!("/ogc/collections/grids/items?filter={}", enc("password_hash = 'x'")), None, ""),
        case("CQL2 too deep", "GET", format!("/ogc/collections/grids/items?filter={}", enc(&format!("{}households > 1{}", "(".repeat(100), ")".repeat(100)))), None, ""),
        case("CQL2 JSON garbage", "GET", format!("/ogc/collections/grids/items?filter-lang=cql2-json&filter={}", enc("{\"op\": \"=\", \"args\": 5}")), None, ""),
        case("CQL2 invalid WKT", "GET", format!("/ogc/collections/grids/items?filter={}", enc("S_INTERSECTS(geometry, POLYGON((1 2, 3)))")), None, ""),
        case("negative limit", "GET", "/ogc/collections/grids/items?limit=-1", None, ""),
        case("bbox of three numbers", "GET", "/ogc/collections/grids/items?bbox=1,2,3", None, ""),
        case("unknown collection", "GET", format!("/ogc/collections/{}/items", enc(INJECTION)), None, ""),
        case("feature id injection", "GET", "/ogc/collections/grids/items/1;drop", None, ""),
        // OGC API writes as a planner: geometry that must be refused.
        as_planner(case("empty polygon", "POST", "/ogc/collections/grids/items", GEOJSON, feature(&json!({"type": "Polygon", "coordinates": []})))),
        as_planner(case("point as a grid", "POST", "/ogc/collections/grids/items", GEOJSON, feature(&json!({"type": "Point", "coordinates": [118.17, 36.17]})))),
        as_planner(case("coordinates out of range", "POST", "/ogc/collections/grids/items", GEOJSON,
            feature(&json!({"type": "Polygon", "coordinates": [[[200, 36], [201, 36], [201, 37], [200, 36]]]})))),
        as_planner(case("self-intersecting outside the county", "POST", "/ogc/collections/grids/items", GEOJSON,
            feature(&json!({"type": "Polygon", "coordinates": [[[116.0, 39.0], [116.1, 39.1], [116.1, 39.0], [116.0, 39.1], [116.0, 39.0]]]})))),
        as_planner(case("one million vertices", "POST", "/ogc/collections/grids/items", GEOJSON,
            feature(&json!({"type": "Polygon", "coordinates": [huge_ring]})))),
        as_planner(case("not GeoJSON", "POST", "/ogc/collections/grids/items", GEOJSON, "<gml:Polygon/>")),
        // (Derived values such as `households` are ignored on write so that a GET → PUT round
        // trip works; a wrongly typed writable property is refused.)
        as_planner(case("injection as a community id", "PATCH", "/ogc/collections/grids/items/1", Some("application/merge-patch+json"),
            json!({"properties": {"community_id": INJECTION}}).to_string())),
        as_planner(case("unknown property", "PATCH", "/ogc/collections/grids/items/1", Some("application/merge-patch+json"),
            json!({"properties": {"password_hash": "x"}}).to_string())),
        as_planner(case("merge nothing", "POST", "/api/grids/merge", JSON, r#"{"ids": []}"#)),
        as_planner(case("split by a point", "POST", "/api/grids/1/split", JSON, r#"{"line": {"type": "Point", "coordinates": [1, 2]}}"#)),
        // Tiles.
        case("zoom too deep", "GET", "/tiles/grids/23/0/0.mvt", None, ""),
        case("column outside the zoom", "GET", "/tiles/grids/2/4/0.mvt", None, ""),
        case("coordinates not numbers", "GET", "/tiles/grids/a/b/c.mvt", None, ""),
        case("unknown layer", "GET", format!("/tiles/{}/1/0/0.mvt", enc(INJECTION)), None, ""),
        // Accounts and Open311.
        case("injection as login name", "POST", "/api/auth/login", JSON, json!({"name": INJECTION, "password": "x"}).to_string()),
        case("Open311 garbage", "POST", "/open311/v2/requests.json", Some("application/x-www-form-urlencoded"), "service_code=%00&lat=abc"),
        case("Open311 unknown status", "GET", "/open311/v2/requests.json?status=whatever", None, ""),
    ]
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn every_bad_input_is_a_4xx_json_error_and_changes_nothing(pool: PgPool) {
    crate::reports::small_city(&pool).await;
    let planner = crate::ogc::token(&pool, "corpus-planner", Role::Planner).await;
    let mut failures = Vec::new();
    for c in corpus() {
        let before = checksum(&pool).await;
        // A valid key, so the validators behind it are what answers.
        let mut r =
            Request::builder().method(c.method).uri(&c.uri).header("Idempotency-Key", uuid::Uuid::new_v4().to_string());
        if let Some(ct) = c.content_type {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        if c.token {
            r = r.header(header::AUTHORIZATION, format!("Bearer {planner}")).header(header::IF_MATCH, "\"1\"");
        }
        let reply: Reply = send(&pool, r.body(Body::from(c.body)).expect("request")).await;
        let body: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
        let json_error = match &body {
            Some(v) if c.uri.starts_with("/open311/") => v[0]["code"].is_number() || v[0]["code"].is_string(),
            Some(v) => v["code"].is_string() && v["message"].is_string(),
            None => false,
        };
        if !reply.status.is_client_error() || !json_error {
            failures.push(format!(
                "{} ({} {}): {} {}",
                c.name,
                c.method,
                c.uri.chars().take(80).collect::<String>(),
                reply.status,
                String::from_utf8_lossy(&reply.body).chars().take(200).collect::<String>()
            ));
        }
        if checksum(&pool).await != before {
            failures.push(format!("{}: the database changed", c.name));
        }
    }
    assert!(failures.is_empty(), "bad inputs not refused cleanly:\n{}", failures.join("\n"));
}

/// Text fields are data, not code: an injection string is stored verbatim and nothing else moves.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn injection_strings_in_free_text_are_stored_verbatim(pool: PgPool) {
    crate::reports::small_city(&pool).await;
    let odd = format!("{INJECTION} \u{202e}evil\u{200b} 😀 \\x00 <script>alert(1)</script>");
    let reply = crate::reports::post_report(
        &pool,
        None,
        Some(&uuid::Uuid::new_v4().to_string()),
        &json!({"category": "road_damage", "description": odd,
        "location": {"lon": 118.175, "lat": 36.175, "crs": "wgs84", "accuracy_m": 5}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    let stored: String = sqlx::query_scalar("select description from report").fetch_one(&pool).await.expect("stored");
    assert_eq!(stored, odd);
    assert_eq!(crate::common::count(&pool, "grid").await, 2, "the grid table is still there");
}

async fn burst(
    router: &axum::Router,
    n: usize,
    make: impl Fn() -> Request<Body>,
) -> Vec<axum::http::Response<axum::body::Body>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(router.clone().oneshot(make()).await.expect("infallible"));
    }
    out
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn writes_and_heavy_reads_are_rate_limited_with_a_json_429(pool: PgPool) {
    crate::reports::small_city(&pool).await;
    // Bursts of 40 writes and 100 heavy reads, refilled once an hour: the outcome cannot depend
    // on how fast this machine answers.
    let per_hour = |burst: u32| {
        governor::Quota::per_hour(std::num::NonZeroU32::MIN)
            .allow_burst(std::num::NonZeroU32::new(burst).expect("burst > 0"))
    };
    let mut state = AppState::new(pool.clone());
    state.limits = gridmap_server::http::limits::Limits::with_quotas(per_hour(40), per_hour(100));
    let router = app(state);
    // Invalid bodies: each costs a quota token and stores nothing.
    let writes = burst(&router, 60, || {
        Request::post("/api/reports")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .expect("request")
    })
    .await;
    let limited: Vec<_> = writes.iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(limited.len(), 20, "60 writes from one address: 40 pass, 20 are refused");
    assert!(writes[0].status() == StatusCode::BAD_REQUEST, "the first ones reach the handler");
    assert_eq!(limited[0].headers()[header::RETRY_AFTER], "1");
    let reads =
        burst(&router, 150, || Request::get("/ogc/collections/grids/items").body(Body::empty()).expect("request"))
            .await;
    let read_limited = reads.iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(read_limited, 50, "150 item pages: 100 pass, 50 are refused");
    assert!(reads.iter().all(|r| r.status() == StatusCode::OK || r.status() == StatusCode::TOO_MANY_REQUESTS));
    // Cheap reads are not limited.
    let cheap = burst(&router, 150, || Request::get("/healthz").body(Body::empty()).expect("request")).await;
    assert!(cheap.iter().all(|r| r.status() == StatusCode::OK));
    // A 429 is a JSON error like every other.
    let last = writes.into_iter().last().expect("last");
    let bytes = http_body_util::BodyExt::collect(last.into_body()).await.expect("body").to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(v["code"], "too_many_requests");
}
