//! OGC API – Features at /ogc: Part 1 (paging, bbox, equality, properties), Part 3 (CQL2),
//! Part 4 (201 + Location, If-Match: 428/412), and that private fields never appear.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::auth::{login, make_user};
use crate::common::{Reply, get, send};
use gridmap_server::config::Role;
use gridmap_server::seed;

/// A request with an optional bearer token, If-Match and JSON body.
pub async fn call(
    pool: &PgPool,
    method: &str,
    uri: &str,
    token: Option<&str>,
    if_match: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(m) = if_match {
        r = r.header(header::IF_MATCH, m);
    }
    let request = match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/geo+json").body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    }
    .expect("valid request");
    send(pool, request).await
}

pub async fn token(pool: &PgPool, name: &str, role: Role) -> String {
    let password = make_user(pool, name, role).await;
    login(pool, name, &password).await
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

async fn matched(pool: &PgPool, collection: &str, query: &str) -> Reply {
    get(pool, &format!("/ogc/collections/{collection}/items?{query}")).await
}

async fn filter_count(pool: &PgPool, filter: &str, lang: &str) -> i64 {
    let r = matched(pool, "grids", &format!("filter-lang={lang}&filter={}", enc(filter))).await;
    assert_eq!(r.status, StatusCode::OK, "{filter}: {}", String::from_utf8_lossy(&r.body));
    r.json()["numberMatched"].as_i64().expect("numberMatched")
}

async fn sql_count(pool: &PgPool, predicate: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from grid where {predicate}")).fetch_one(pool).await.expect("count")
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn landing_conformance_api_and_collections_describe_the_service(pool: PgPool) {
    let landing = get(&pool, "/ogc").await;
    assert_eq!(landing.status, StatusCode::OK);
    let rels: Vec<String> = landing.json()["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| l["rel"].as_str().unwrap_or("").to_string())
        .collect();
    for rel in ["self", "service-desc", "conformance", "data"] {
        assert!(rels.iter().any(|r| r == rel), "missing {rel}: {rels:?}");
    }
    let conf = get(&pool, "/ogc/conformance").await.json();
    let classes: Vec<&str> = conf["conformsTo"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
    assert!(classes.contains(&"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"));
    assert!(classes.contains(&"http://www.opengis.net/spec/cql2/1.0/conf/cql2-json"));
    assert!(!classes.iter().any(|c| c.ends_with("/html")), "HTML is not implemented");
    let api = get(&pool, "/ogc/api").await;
    assert_eq!(api.headers[header::CONTENT_TYPE], "application/vnd.oai.openapi+json;version=3.0");
    let api = api.json();
    assert!(api["openapi"].as_str().expect("version").starts_with("3.0"));
    // Paths are relative to the landing page, which is the server URL (GDAL joins them so).
    assert_eq!(api["servers"][0]["url"], "/ogc", "no Host header here: relative");
    assert!(api["paths"]["/collections/grids/items"]["get"].is_object());
    assert!(api["paths"]["/"]["get"].is_object(), "the landing page");
    assert!(api["paths"].as_object().expect("paths").keys().all(|p| !p.starts_with("/ogc")));
    assert_eq!(api["components"]["parameters"]["limit"]["schema"]["maximum"], 1000);
    let params = api["paths"]["/collections/buildings/items"]["get"]["parameters"].as_array().expect("parameters");
    assert!(params.iter().any(|p| p["$ref"] == "#/components/parameters/limit"), "limit (and its maximum) is declared");
    assert!(params.iter().any(|p| p["name"] == "floors" && p["in"] == "query"), "queryables are query parameters");
    let langs = &api["components"]["parameters"]["filter-lang"]["schema"]["enum"];
    assert!(langs.as_array().expect("enum").iter().any(|l| l == "cql-text"), "GDAL 3.6 looks for cql-text");
    let cols = get(&pool, "/ogc/collections").await.json();
    let ids: Vec<&str> =
        cols["collections"].as_array().expect("list").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, ["grids", "buildings", "stations", "reports"]);
    assert!(api["paths"]["/collections/reports/items"]["post"].is_null(), "reports are read-only here");
    assert!(api["paths"]["/collections/grids/items"]["post"].is_object());
    assert_eq!(get(&pool, "/ogc/collections/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&pool, "/ogc?f=html").await.status, StatusCode::BAD_REQUEST);
    let q = get(&pool, "/ogc/collections/buildings/queryables").await.json();
    assert_eq!(q["additionalProperties"], false);
    assert!(q["properties"]["households"].is_object());
    assert!(q["properties"].get("leader_phone").is_none());
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn items_pages_carry_number_matched_and_next_prev_links_through_all_267(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let first = matched(&pool, "grids", "limit=100").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers[header::CONTENT_TYPE], "application/geo+json");
    let mut ids = std::collections::BTreeSet::new();
    let mut page = first.json();
    let mut pages = 0;
    loop {
        pages += 1;
        assert_eq!(page["numberMatched"], 267);
        assert!(page["timeStamp"].is_string());
        let features = page["features"].as_array().expect("features");
        assert_eq!(page["numberReturned"].as_u64(), Some(features.len() as u64));
        for f in features {
            assert!(ids.insert(f["id"].as_i64().expect("id")), "a feature came twice");
            assert_eq!(f["geometry"]["type"], "MultiPolygon");
        }
        let links = page["links"].as_array().expect("links");
        if pages > 1 {
            assert!(links.iter().any(|l| l["rel"] == "prev"), "page {pages} has a prev link");
        }
        let Some(next) = links.iter().find(|l| l["rel"] == "next") else { break };
        let href = next["href"].as_str().expect("href");
        assert!(href.contains("limit=100"), "next keeps the other parameters: {href}");
        page = get(&pool, href).await.json();
    }
    assert_eq!((ids.len(), pages), (267, 3));
    // The default page is 10; an oversized limit is clamped to 1000 (all 267, no next link).
    assert_eq!(matched(&pool, "grids", "").await.json()["numberReturned"], 10);
    let all = matched(&pool, "grids", "limit=5000").await.json();
    assert_eq!(all["numberReturned"], 267);
    assert!(!all["links"].as_array().expect("links").iter().any(|l| l["rel"] == "next"));
    for bad in ["limit=0", "limit=x", "offset=-1", "bbox=1,2,3", "colour=red"] {
        let r = matched(&pool, "grids", bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert!(String::from_utf8_lossy(&matched(&pool, "grids", "colour=red").await.body).contains("colour"));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bbox_equality_and_property_selection_filter_items(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let one = matched(&pool, "grids", "code=LS-001").await.json();
    assert_eq!(one["numberMatched"], 1);
    assert_eq!(one["features"][0]["properties"]["code"], "LS-001");
    let (x0, y0, x1, y1): (f64, f64, f64, f64) =
        sqlx::query_as("select ST_XMin(e), ST_YMin(e), (ST_XMin(e)+ST_XMax(e))/2, (ST_YMin(e)+ST_YMax(e))/2 from (select ST_Extent(geom) e from grid) s")
            .fetch_one(&pool)
            .await
            .expect("extent");
    let expected = sql_count(&pool, &format!("ST_Intersects(geom, ST_MakeEnvelope({x0},{y0},{x1},{y1},4326))")).await;
    let in_box = matched(&pool, "grids", &format!("bbox={x0},{y0},{x1},{y1}")).await.json();
    assert_eq!(in_box["numberMatched"].as_i64(), Some(expected));
    assert!(expected > 0 && expected < 267, "{expected}");
    let b = matched(&pool, "buildings", "limit=50&properties=floors,households").await;
    assert_eq!(b.status, StatusCode::OK);
    let props = b.json()["features"][0]["properties"].as_object().expect("properties").clone();
    assert_eq!(props.keys().collect::<Vec<_>>(), ["floors", "households"]);
    let full = matched(&pool, "buildings", "limit=1000").await;
    let text = String::from_utf8_lossy(&full.body);
    assert!(!text.contains("leader"), "private fields must never appear");
    let refused = matched(&pool, "buildings", "properties=leader_phone").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&refused.body).contains("leader_phone"));
    assert_eq!(matched(&pool, "buildings", "leader_name=x").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(matched(&pool, "grids", "households=many").await.status, StatusCode::BAD_REQUEST);
    let item = get(&pool, &format!("/ogc/collections/grids/items/{}", one["features"][0]["id"])).await;
    assert_eq!(item.status, StatusCode::OK);
    assert!(item.headers.contains_key(header::ETAG));
    assert_eq!(get(&pool, "/ogc/collections/grids/items/999999").await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn cql2_text_and_json_filters_match_the_same_rows_as_sql(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let cases = [
        ("households > 300 AND code LIKE 'LS-%'", "households > 300 and code like 'LS-%'"),
        (
            "households BETWEEN 250 AND 350 OR NOT (code LIKE 'NM%')",
            "households between 250 and 350 or not code like 'NM%'",
        ),
        ("code IN ('LS-001', 'NM-002', 'XX-999')", "code in ('LS-001', 'NM-002')"),
        ("community_id IS NULL", "community_id is null"),
        ("households <> 300 AND version >= 1", "households <> 300"),
    ];
    for (cql, sql) in cases {
        let expected = sql_count(&pool, sql).await;
        assert_eq!(filter_count(&pool, cql, "cql2-text").await, expected, "{cql}");
    }
    let json = r#"{"op":"and","args":[{"op":">","args":[{"property":"households"},300]},{"op":"like","args":[{"property":"code"},"LS-%"]}]}"#;
    assert_eq!(
        filter_count(&pool, json, "cql2-json").await,
        sql_count(&pool, "households > 300 and code like 'LS-%'").await
    );
    let (x, y): (f64, f64) = sqlx::query_as(
        "select ST_X(p), ST_Y(p) from (select ST_PointOnSurface(geom) p from grid where code = 'LS-001') s",
    )
    .fetch_one(&pool)
    .await
    .expect("point");
    let at = matched(&pool, "grids", &format!("filter={}", enc(&format!("S_INTERSECTS(geometry, POINT({x} {y}))"))))
        .await
        .json();
    assert_eq!(at["numberMatched"], 1);
    assert_eq!(at["features"][0]["properties"]["code"], "LS-001");
    let envelope = filter_count(
        &pool,
        &format!("S_INTERSECTS(geometry, BBOX({x}, {y}, {}, {}))", x + 0.001, y + 0.001),
        "cql2-text",
    )
    .await;
    assert!(envelope >= 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn injection_strings_are_only_ever_values(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    for evil in ["x' OR '1'='1", "'; drop table grid; --", "LS-001' --"] {
        let quoted = evil.replace('\'', "''");
        assert_eq!(filter_count(&pool, &format!("code = '{quoted}'"), "cql2-text").await, 0, "{evil}");
        let r = matched(&pool, "grids", &format!("code={}", enc(evil))).await;
        assert_eq!(r.json()["numberMatched"], 0, "{evil}");
        let j = json!({"op": "=", "args": [{"property": "name"}, evil]}).to_string();
        assert_eq!(filter_count(&pool, &j, "cql2-json").await, 0);
    }
    assert_eq!(sql_count(&pool, "true").await, 267);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_filters_are_400_and_name_the_unknown_property(pool: PgPool) {
    let unknown = matched(&pool, "buildings", &format!("filter={}", enc("leader_phone = '138'"))).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.json()["message"].as_str().expect("message").contains("`leader_phone`"));
    let json_unknown = matched(
        &pool,
        "grids",
        &format!("filter-lang=cql2-json&filter={}", enc(r#"{"op":"=","args":[{"property":"colour"},"red"]}"#)),
    )
    .await;
    assert!(json_unknown.json()["message"].as_str().expect("message").contains("`colour`"));
    let too_long = format!("code IN ({})", vec!["'LS-001'"; 3000].join(","));
    let too_deep = format!("{}code = 'a'{}", "(".repeat(60), ")".repeat(60));
    for bad in [
        "code = ",
        "households = 'many'",
        too_long.as_str(),
        too_deep.as_str(),
        "T_BEFORE(updated_at, TIMESTAMP('2020-01-01T00:00:00Z'))",
    ] {
        let r = matched(&pool, "grids", &format!("filter={}", enc(bad))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(matched(&pool, "grids", "filter=code%3D'a'&filter-lang=sql").await.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn station_write_round_trip_needs_if_match_428_then_412_then_succeeds(pool: PgPool) {
    let admin = token(&pool, "admin-wu", Role::Admin).await;
    let feature = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.17, 36.18]},
                         "properties": {"name": "南麻驿站", "address": "新华路 1 号", "services": ["rest", "water"]}});
    let created = call(&pool, "POST", "/ogc/collections/stations/items", Some(&admin), None, Some(&feature)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    let location = created.headers[header::LOCATION].to_str().expect("location").to_string();
    let etag1 = created.headers[header::ETAG].to_str().expect("etag").to_string();
    assert!(location.starts_with("/ogc/collections/stations/items/"));
    let fetched = get(&pool, &location).await;
    assert_eq!(fetched.headers[header::ETAG].to_str().expect("etag"), etag1);

    let mut changed = feature.clone();
    changed["properties"]["name"] = json!("南麻暖新驿站");
    changed["properties"].as_object_mut().expect("properties").remove("address");
    assert_eq!(
        call(&pool, "PUT", &location, Some(&admin), None, Some(&changed)).await.status,
        StatusCode::PRECONDITION_REQUIRED
    );
    assert_eq!(
        call(&pool, "PUT", &location, Some(&admin), Some("\"12345\""), Some(&changed)).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    let put = call(&pool, "PUT", &location, Some(&admin), Some(&etag1), Some(&changed)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", String::from_utf8_lossy(&put.body));
    let etag2 = put.headers[header::ETAG].to_str().expect("etag").to_string();
    assert_ne!(etag1, etag2);
    // PUT replaced the feature: the address it did not send went back to the default.
    assert_eq!(put.json()["properties"]["address"], "");

    let patch = json!({"properties": {"opening_hours": "08:00-20:00"}});
    assert_eq!(
        call(&pool, "PATCH", &location, Some(&admin), Some(&etag1), Some(&patch)).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    let patched = call(&pool, "PATCH", &location, Some(&admin), Some(&etag2), Some(&patch)).await;
    assert_eq!(patched.status, StatusCode::OK);
    let body = patched.json();
    assert_eq!(body["properties"]["opening_hours"], "08:00-20:00");
    assert_eq!(body["properties"]["name"], "南麻暖新驿站", "merge patch keeps what it does not mention");
    let etag3 = patched.headers[header::ETAG].to_str().expect("etag").to_string();

    let bad = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.17, 36.18]}, "properties": {"name": "x", "leader_phone": "1"}});
    let refused = call(&pool, "POST", "/ogc/collections/stations/items", Some(&admin), None, Some(&bad)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let far = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [9.5, 47.1]}, "properties": {"name": "x"}});
    assert_eq!(
        call(&pool, "POST", "/ogc/collections/stations/items", Some(&admin), None, Some(&far)).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    assert_eq!(
        call(&pool, "DELETE", &location, Some(&admin), Some(&etag2), None).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(call(&pool, "DELETE", &location, Some(&admin), Some(&etag3), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&pool, &location).await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn writes_need_the_right_role(pool: PgPool) {
    let planner = token(&pool, "planner-he", Role::Planner).await;
    let rider = token(&pool, "rider-ma", Role::Rider).await;
    let station = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.17, 36.18]}, "properties": {"name": "x"}});
    assert_eq!(
        call(&pool, "POST", "/ogc/collections/stations/items", None, None, Some(&station)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&pool, "POST", "/ogc/collections/stations/items", Some(&planner), None, Some(&station)).await.status,
        StatusCode::FORBIDDEN
    );
    let grid = json!({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[118.15, 36.17], [118.151, 36.17], [118.151, 36.171], [118.15, 36.17]]]},
                      "properties": {"code": "T-001", "name": "test"}});
    assert_eq!(
        call(&pool, "POST", "/ogc/collections/grids/items", Some(&rider), None, Some(&grid)).await.status,
        StatusCode::FORBIDDEN
    );
    let created = call(&pool, "POST", "/ogc/collections/grids/items", Some(&planner), None, Some(&grid)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    assert_eq!(created.json()["properties"]["version"], 1);
    assert_eq!(created.headers[header::ETAG], "\"1\"");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn reports_collection_is_public_safe_filterable_and_read_only(pool: PgPool) {
    crate::reports::small_city(&pool).await;
    let rider = crate::reports::user(&pool, "rider-secret-name", Role::Rider, &[]).await;
    for (category, lon) in [("manhole_cover", 118.175), ("streetlight", 118.185)] {
        let body = crate::reports::report_body(category, lon, 36.175);
        let reply =
            crate::reports::post_report(&pool, Some(&rider), Some(&uuid::Uuid::new_v4().to_string()), &body).await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let page = get(&pool, "/ogc/collections/reports/items?limit=10").await;
    assert_eq!(page.status, StatusCode::OK);
    let page = page.json();
    assert_eq!(page["numberMatched"], 2);
    let first = &page["features"][0];
    assert_eq!(first["geometry"]["type"], "Point");
    assert!(first["properties"]["status"].is_string());
    let text = page.to_string();
    assert!(
        !text.contains("rider-secret-name") && !text.contains("reporter") && !text.contains("idempotency"),
        "{text}"
    );
    // Equality and CQL2 filters work on the published properties only.
    assert_eq!(get(&pool, "/ogc/collections/reports/items?category=streetlight").await.json()["numberMatched"], 1);
    let cql = enc("grid_id = 2 AND status = 'submitted'");
    assert_eq!(get(&pool, &format!("/ogc/collections/reports/items?filter={cql}")).await.json()["numberMatched"], 1);
    let private = get(&pool, &format!("/ogc/collections/reports/items?filter={}", enc("reporter_id = 1"))).await;
    assert_eq!(private.status, StatusCode::BAD_REQUEST, "a private column is an unknown property");
    let q = get(&pool, "/ogc/collections/reports/queryables").await.json();
    assert!(q["properties"].get("reporter_id").is_none() && q["properties"]["category"].is_object());
    // Read-only: even an admin cannot write reports through OGC (their workflow is elsewhere).
    let admin = token(&pool, "ogc-admin", Role::Admin).await;
    let feature =
        json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.175, 36.175]}, "properties": {}});
    let created = call(&pool, "POST", "/ogc/collections/reports/items", Some(&admin), None, Some(&feature)).await;
    assert_eq!(created.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(crate::common::count(&pool, "report").await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn one_feature_links_to_itself_and_its_collection_and_features_name_their_crs(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let crs = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>";
    let page = matched(&pool, "grids", "limit=1").await;
    assert_eq!(page.headers["content-crs"], crs);
    let id = page.json()["features"][0]["id"].as_i64().expect("id");
    let request = Request::get(format!("/ogc/collections/grids/items/{id}"))
        .header(header::HOST, "grid.example.cn")
        .body(Body::empty())
        .expect("request");
    let one = send(&pool, request).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.headers["content-crs"], crs);
    let feature = one.json();
    assert_eq!(feature["id"], id, "the feature itself is unchanged");
    let link = |rel: &str| {
        feature["links"].as_array().expect("links").iter().find(|l| l["rel"] == rel).map(|l| l["href"].clone())
    };
    assert_eq!(link("self"), Some(json!(format!("http://grid.example.cn/ogc/collections/grids/items/{id}"))));
    assert_eq!(link("collection"), Some(json!("http://grid.example.cn/ogc/collections/grids")));
}

async fn get_encoded(pool: &PgPool, uri: &str, accept: &str) -> Reply {
    send(pool, Request::get(uri).header(header::ACCEPT_ENCODING, accept).body(Body::empty()).expect("request")).await
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn pages_of_features_come_compressed_as_the_client_asks_and_tagged_features_do_not(pool: PgPool) {
    use std::io::Read as _;
    seed::seed_demo(&pool, 1).await.expect("seed");
    let uri = "/ogc/collections/buildings/items?limit=100";
    let plain = get(&pool, uri).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none(), "nothing asked, nothing coded");

    let br = get_encoded(&pool, uri, "gzip, deflate, br").await;
    assert_eq!(br.headers[header::CONTENT_ENCODING], "br");
    assert_eq!(br.headers[header::VARY], "accept-encoding");
    let mut decoded = Vec::new();
    brotli::Decompressor::new(br.body.as_slice(), 4096).read_to_end(&mut decoded).expect("brotli decodes");
    assert!(br.body.len() * 4 < plain.body.len(), "{} bytes in brotli of {}", br.body.len(), plain.body.len());
    let (a, b): (Value, Value) = (serde_json::from_slice(&decoded).expect("JSON"), plain.json());
    assert_eq!(a["features"], b["features"], "the same page, decoded");

    let gz = get_encoded(&pool, uri, "gzip").await;
    assert_eq!(gz.headers[header::CONTENT_ENCODING], "gzip");
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(gz.body.as_slice()).read_to_end(&mut decoded).expect("gzip decodes");
    assert_eq!(serde_json::from_slice::<Value>(&decoded).expect("JSON")["features"], b["features"]);

    // The style the web map waits for before it draws.
    let style = get_encoded(&pool, "/tiles/style.json", "br").await;
    assert_eq!(style.headers[header::CONTENT_ENCODING], "br");

    // One feature carries a strong ETag that If-Match must match: sent as it is.
    let id = b["features"][0]["id"].as_i64().expect("id");
    let one = get_encoded(&pool, &format!("/ogc/collections/buildings/items/{id}"), "gzip, br").await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.headers.contains_key(header::ETAG));
    assert!(one.headers.get(header::CONTENT_ENCODING).is_none(), "{:?}", one.headers);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn datetime_filters_grids_by_last_change_and_refuses_malformed(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    // Two grids edited on a known day, the rest long ago.
    sqlx::query("alter table grid disable trigger user").execute(&pool).await.expect("triggers off");
    sqlx::query("update grid set updated_at = '2020-01-01T00:00:00Z'").execute(&pool).await.expect("old");
    sqlx::query("update grid set updated_at = '2026-12-05T10:00:00+08:00' where id in (select id from grid order by id limit 2)")
        .execute(&pool)
        .await
        .expect("recent");
    sqlx::query("alter table grid enable trigger user").execute(&pool).await.expect("triggers on");
    let count = async |coll: &str, dt: &str| {
        let r = matched(&pool, coll, &format!("datetime={}", enc(dt))).await;
        assert_eq!(r.status, StatusCode::OK, "{dt}: {}", String::from_utf8_lossy(&r.body));
        r.json()["numberMatched"].as_i64().expect("numberMatched")
    };
    assert_eq!(count("grids", "2026-12-05").await, 2, "a date is its whole UTC day");
    assert_eq!(count("grids", "2026-12-05T02:00:00Z").await, 2, "an instant matches exactly");
    assert_eq!(count("grids", "2026-12-01T00:00:00Z/..").await, 2);
    assert_eq!(count("grids", "../2021-01-01").await, 265);
    assert_eq!(count("grids", "2026-12-06/").await, 0);
    for bad in ["yesterday", "2026-12-05/2026-12-01", "../..", "2026-02-30"] {
        let r = matched(&pool, "grids", &format!("datetime={}", enc(bad))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(String::from_utf8_lossy(&r.body).contains("datetime"), "{bad}");
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn datetime_filters_reports_by_when_they_were_made(pool: PgPool) {
    crate::reports::small_city(&pool).await;
    let rider = crate::reports::user(&pool, "rider-datetime", Role::Rider, &[]).await;
    for (category, lon) in [("manhole_cover", 118.175), ("streetlight", 118.185)] {
        let body = crate::reports::report_body(category, lon, 36.175);
        let reply =
            crate::reports::post_report(&pool, Some(&rider), Some(&uuid::Uuid::new_v4().to_string()), &body).await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    // One report was made last year and changed today: the filter reads created_at, not updated_at.
    sqlx::query("alter table report disable trigger user").execute(&pool).await.expect("triggers off");
    sqlx::query("update report set created_at = '2025-06-01T12:00:00Z', updated_at = now() where id = (select min(id) from report)")
        .execute(&pool)
        .await
        .expect("backdate");
    sqlx::query("alter table report enable trigger user").execute(&pool).await.expect("triggers on");
    let count = async |dt: &str| {
        let r = matched(&pool, "reports", &format!("datetime={}", enc(dt))).await;
        assert_eq!(r.status, StatusCode::OK, "{dt}: {}", String::from_utf8_lossy(&r.body));
        r.json()["numberMatched"].as_i64().expect("numberMatched")
    };
    assert_eq!(count("../2025-12-31").await, 1);
    assert_eq!(count("2025-06-01").await, 1);
    assert_eq!(count("2026-01-01T00:00:00Z/..").await, 1);
    assert_eq!(count("2025-01-01/2099-01-01").await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn options_answers_204_with_allow_and_advertises_no_writes_on_reports(pool: PgPool) {
    let options = |uri: &'static str| {
        let pool = pool.clone();
        async move { send(&pool, Request::options(uri).body(Body::empty()).expect("request")).await }
    };
    let allow = |r: &Reply| r.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let items = options("/ogc/collections/grids/items").await;
    assert_eq!(items.status, StatusCode::NO_CONTENT);
    assert_eq!(allow(&items), "GET, HEAD, POST, OPTIONS");
    let item = options("/ogc/collections/buildings/items/1").await;
    assert_eq!(item.status, StatusCode::NO_CONTENT);
    assert_eq!(allow(&item), "GET, HEAD, PUT, PATCH, DELETE, OPTIONS");
    for uri in ["/ogc/collections/reports/items", "/ogc/collections/reports/items/1"] {
        let reports = options(uri).await;
        assert_eq!(reports.status, StatusCode::NO_CONTENT, "{uri}");
        assert_eq!(allow(&reports), "GET, HEAD, OPTIONS", "{uri}: reports are read-only");
    }
    assert_eq!(options("/ogc/collections/nope/items").await.status, StatusCode::NOT_FOUND);
}
