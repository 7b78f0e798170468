//! Open311 GeoReport v2 at /open311/v2/: discovery, services, POST with `api_key`, GET filters.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{get, send};
use crate::reports::{small_city, user};
use gridmap_server::config::Role;

async fn post_form(pool: &PgPool, form: &str) -> crate::common::Reply {
    let request = Request::post("/open311/v2/requests.json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .expect("request");
    send(pool, request).await
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn open311_discovery_services_and_definitions(pool: PgPool) {
    let discovery = get(&pool, "/open311/v2/discovery.json").await.json();
    assert_eq!(discovery["endpoints"][0]["specification"], "http://wiki.open311.org/GeoReport_v2");
    let services = get(&pool, "/open311/v2/services.json").await.json();
    let manhole = services
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["service_code"] == "manhole_cover")
        .cloned()
        .expect("svc");
    assert_eq!(manhole["type"], "realtime");
    assert_eq!(manhole["metadata"], false);
    assert_eq!(get(&pool, "/open311/v2/services/manhole_cover.json").await.json()["service_code"], "manhole_cover");
    let missing = get(&pool, "/open311/v2/services/nope.json").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()[0]["code"], 404);
    assert!(missing.json()[0]["description"].is_string());
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn open311_post_with_a_rider_token_then_get_with_filters(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let no_key = post_form(&pool, "service_code=manhole_cover&lat=36.175&long=118.175").await;
    assert_eq!(no_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_key.json()[0]["code"], 400);
    let bad_key = post_form(&pool, "api_key=nope&service_code=manhole_cover&lat=36.175&long=118.175").await;
    assert_eq!(bad_key.status, StatusCode::FORBIDDEN);
    let bad_lat = post_form(&pool, &format!("api_key={rider}&service_code=manhole_cover&lat=91&long=118.175")).await;
    assert_eq!(bad_lat.status, StatusCode::BAD_REQUEST);
    assert!(bad_lat.json()[0]["description"].as_str().expect("d").starts_with("lat"));

    let created = post_form(
        &pool,
        &format!(
            "api_key={rider}&service_code=manhole_cover&lat=36.175&long=118.185&description=%E4%BA%95%E7%9B%96+missing"
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    let id = created.json()[0]["service_request_id"].as_str().expect("id").to_string();
    let one = get(&pool, &format!("/open311/v2/requests/{id}.json")).await.json();
    assert_eq!(one[0]["status"], "open");
    assert_eq!(one[0]["description"], "井盖 missing");
    assert_eq!(one[0]["agency_responsible"], "东网格");
    assert_eq!(one[0]["long"], 118.185);
    assert!(!one.to_string().contains("rider-li"));

    assert_eq!(get(&pool, "/open311/v2/requests.json?status=open").await.json().as_array().expect("a").len(), 1);
    assert_eq!(get(&pool, "/open311/v2/requests.json?status=closed").await.json(), json!([]));
    assert_eq!(get(&pool, "/open311/v2/requests.json?service_code=streetlight").await.json(), json!([]));
    assert_eq!(
        get(&pool, "/open311/v2/requests.json?start_date=2000-01-01T00:00:00Z&end_date=2000-02-01T00:00:00Z")
            .await
            .json(),
        json!([])
    );
    assert_eq!(get(&pool, "/open311/v2/requests/999999.json").await.json()[0]["code"], 404);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn open311_post_with_an_idempotency_key_lands_once(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let key = uuid::Uuid::new_v4().to_string();
    let post = |form: String| {
        let pool = pool.clone();
        let key = key.clone();
        async move {
            let request = Request::post("/open311/v2/requests.json")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("Idempotency-Key", key)
                .body(Body::from(form))
                .expect("request");
            send(&pool, request).await
        }
    };
    let form = format!("api_key={rider}&service_code=manhole_cover&lat=36.175&long=118.185");
    let first = post(form.clone()).await;
    let again = post(form).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(first.json()[0]["service_request_id"], again.json()[0]["service_request_id"]);
    assert_eq!(crate::common::count(&pool, "report").await, 1, "a resend is not a second report");
    let other = post(format!("api_key={rider}&service_code=streetlight&lat=36.175&long=118.185")).await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.json()[0]["code"], 409);
    assert_eq!(crate::common::count(&pool, "report").await, 1);
}

/// Errors that no Open311 handler writes — a query string that does not parse, an unknown path,
/// a wrong method, a body over the limit — are still `[{code, description}]` under /open311/.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn open311_errors_from_extractors_and_routing_are_in_open311_shape(pool: PgPool) {
    let is_open311_error = |reply: &crate::common::Reply, status: StatusCode| {
        assert_eq!(reply.status, status);
        assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
        let body = reply.json();
        assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!(body[0]["code"], status.as_u16());
        body[0]["description"].as_str().expect("a description").to_string()
    };
    let bad_date = get(&pool, "/open311/v2/requests.json?start_date=yesterday").await;
    assert!(is_open311_error(&bad_date, StatusCode::BAD_REQUEST).contains("start_date"));
    is_open311_error(&get(&pool, "/open311/v2/nothing-here.json").await, StatusCode::NOT_FOUND);
    let delete = Request::delete("/open311/v2/services.json").body(Body::empty()).expect("request");
    is_open311_error(&send(&pool, delete).await, StatusCode::METHOD_NOT_ALLOWED);
    let huge = post_form(&pool, &format!("api_key=x&description={}", "a".repeat(3 * 1024 * 1024))).await;
    is_open311_error(&huge, StatusCode::PAYLOAD_TOO_LARGE);
    // The rest of the API keeps its own shape.
    let api = get(&pool, "/api/reports?bbox=1").await;
    assert_eq!(api.status, StatusCode::BAD_REQUEST);
    assert!(api.json()["code"].is_string());
    assert_eq!(crate::common::count(&pool, "report").await, 0);
}

/// An admin's bearer token (the account is made here).
async fn admin_token(pool: &PgPool) -> String {
    user(pool, "admin-keys", Role::Admin, &[]).await
}

async fn admin_call(
    pool: &PgPool,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> crate::common::Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    send(pool, request).await
}

/// The text of each `<tag>` under `root` in an XML body, read by an XML parser.
fn xml_texts(body: &[u8], root: &str, tag: &str) -> Vec<String> {
    let text = std::str::from_utf8(body).expect("utf-8");
    let doc = roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("well-formed XML ({e}): {text}"));
    assert_eq!(doc.root_element().tag_name().name(), root, "{text}");
    doc.descendants().filter(|n| n.has_tag_name(tag)).map(|n| n.text().unwrap_or_default().to_string()).collect()
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_admin_issues_a_static_key_that_files_open311_requests_until_revoked(pool: PgPool) {
    small_city(&pool).await;
    let admin = admin_token(&pool).await;
    let created =
        admin_call(&pool, &admin, "POST", "/api/admin/api-keys", Some(json!({"name": "fixmystreet-zibo"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    let key = created.json()["key"].as_str().expect("key once").to_string();
    let id = created.json()["id"].as_i64().expect("id");
    assert_eq!(created.json()["scopes"], json!(["open311"]));
    assert_eq!(created.json()["account_name"], "fixmystreet-zibo");
    // Hashed at rest: the key is nowhere in the database.
    let stored: i64 =
        sqlx::query_scalar("select count(*) from api_key where key_hash = sha256(convert_to($1, 'UTF8'))")
            .bind(&key)
            .fetch_one(&pool)
            .await
            .expect("hash lookup");
    assert_eq!(stored, 1);
    let plain: i64 =
        sqlx::query_scalar("select count(*) from api_key where encode(key_hash, 'escape') like '%' || $1 || '%'")
            .bind(&key[4..20])
            .fetch_one(&pool)
            .await
            .expect("plain lookup");
    assert_eq!(plain, 0);

    let form = format!(
        "api_key={key}&jurisdiction_id=yiyuan&service_code=manhole_cover&lat=36.175&long=118.185&email=x%40example.org"
    );
    let filed = post_form(&pool, &form).await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&filed.body));
    let listed = admin_call(&pool, &admin, "GET", "/api/admin/api-keys", None).await.json();
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");
    assert!(listed[0].get("key").is_none() && !listed.to_string().contains(&key), "the list never shows the key");

    let revoked = admin_call(&pool, &admin, "POST", &format!("/api/admin/api-keys/{id}/revoke"), None).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.json()["revoked_at"].is_string());
    let refused = post_form(&pool, &form).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()[0]["code"], 403);
    assert_eq!(crate::common::count(&pool, "report").await, 1, "nothing stored after revocation");
    let missing = admin_call(&pool, &admin, "POST", "/api/admin/api-keys/424242/revoke", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_api_key_requests_are_refused_with_the_field_and_store_nothing(pool: PgPool) {
    small_city(&pool).await;
    let admin = admin_token(&pool).await;
    let call = |body: serde_json::Value| admin_call(&pool, &admin, "POST", "/api/admin/api-keys", Some(body));
    let bad_name = call(json!({"name": "has space"})).await;
    assert_eq!((bad_name.status, bad_name.json()["field"].clone()), (StatusCode::BAD_REQUEST, json!("name")));
    let no_scope = call(json!({"name": "k1", "scopes": []})).await;
    assert_eq!((no_scope.status, no_scope.json()["field"].clone()), (StatusCode::BAD_REQUEST, json!("scopes")));
    let bad_scope = call(json!({"name": "k1", "scopes": ["everything"]})).await;
    assert_eq!(bad_scope.status, StatusCode::BAD_REQUEST);
    let no_account = call(json!({"name": "k1", "account_id": 987_654})).await;
    assert_eq!((no_account.status, no_account.json()["field"].clone()), (StatusCode::BAD_REQUEST, json!("account_id")));
    // A person's account of the same name is never taken over silently.
    let person = call(json!({"name": "admin-keys"})).await;
    assert_eq!(person.status, StatusCode::CONFLICT);
    assert_eq!(crate::common::count(&pool, "api_key").await, 0);
    assert_eq!(call(json!({"name": "k1"})).await.status, StatusCode::CREATED);
    assert_eq!(call(json!({"name": "k1"})).await.status, StatusCode::CONFLICT, "names are unique");
    assert_eq!(crate::common::count(&pool, "api_key").await, 1);

    // A key without the open311 scope does not file Open311 requests.
    let gis = call(json!({"name": "qgis-desk", "scopes": ["ogc_edit"]})).await.json();
    let form =
        format!("api_key={}&service_code=manhole_cover&lat=36.175&long=118.185", gis["key"].as_str().expect("key"));
    assert_eq!(post_form(&pool, &form).await.status, StatusCode::FORBIDDEN);
    // Nor does a key whose account was disabled.
    let integration = call(json!({"name": "fms-2"})).await.json();
    sqlx::query("update account set disabled = true where name = 'fms-2'").execute(&pool).await.expect("disable");
    let form = format!(
        "api_key={}&service_code=manhole_cover&lat=36.175&long=118.185",
        integration["key"].as_str().expect("key")
    );
    assert_eq!(post_form(&pool, &form).await.status, StatusCode::FORBIDDEN);
    assert_eq!(crate::common::count(&pool, "report").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn open311_speaks_xml_with_the_same_data_as_json(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let request = Request::post("/open311/v2/requests.xml")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "api_key={rider}&service_code=manhole_cover&lat=36.175&long=118.185&description=a+%3C%26%3E+b"
        )))
        .expect("request");
    let created = send(&pool, request).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    assert!(created.headers[header::CONTENT_TYPE].to_str().expect("ct").starts_with("text/xml"));
    let ids = xml_texts(&created.body, "service_requests", "service_request_id");
    assert_eq!(ids.len(), 1);

    let xml = get(&pool, &format!("/open311/v2/requests/{}.xml", ids[0])).await;
    assert_eq!(xml_texts(&xml.body, "service_requests", "description"), ["a <&> b"]);
    let json = get(&pool, &format!("/open311/v2/requests/{}.json", ids[0])).await.json();
    for field in
        ["service_request_id", "status", "service_code", "service_name", "requested_datetime", "agency_responsible"]
    {
        assert_eq!(
            xml_texts(&xml.body, "service_requests", field),
            [json[0][field].as_str().expect("text").to_string()],
            "{field}"
        );
    }
    assert_eq!(xml_texts(&xml.body, "service_requests", "long"), [json[0]["long"].to_string()]);

    let services = get(&pool, "/open311/v2/services.xml").await;
    let json_codes: Vec<String> = get(&pool, "/open311/v2/services.json")
        .await
        .json()
        .as_array()
        .expect("a")
        .iter()
        .map(|s| s["service_code"].as_str().expect("code").to_string())
        .collect();
    assert_eq!(xml_texts(&services.body, "services", "service_code"), json_codes);
    let definition = get(&pool, "/open311/v2/services/manhole_cover.xml").await;
    assert_eq!(xml_texts(&definition.body, "service_definition", "service_code"), ["manhole_cover"]);
    let request = Request::get("/open311/v2/discovery.xml")
        .header(header::HOST, "grid.example.cn")
        .body(Body::empty())
        .expect("r");
    let discovery = send(&pool, request).await;
    let urls = xml_texts(&discovery.body, "discovery", "url");
    assert!(urls[0].starts_with("http://") && urls[0].ends_with("/open311/v2"), "absolute: {urls:?}");
    assert_eq!(xml_texts(&discovery.body, "discovery", "format"), ["application/json", "text/xml"]);

    // Errors on .xml paths are <errors>, from handlers and from routing/extractors alike.
    for (uri, status) in [
        ("/open311/v2/services/nope.xml", StatusCode::NOT_FOUND),
        ("/open311/v2/requests.xml?status=fixed", StatusCode::BAD_REQUEST),
        ("/open311/v2/requests.xml?start_date=yesterday", StatusCode::BAD_REQUEST),
        ("/open311/v2/requests/999999.xml", StatusCode::NOT_FOUND),
    ] {
        let reply = get(&pool, uri).await;
        assert_eq!(reply.status, status, "{uri}");
        assert_eq!(xml_texts(&reply.body, "errors", "code"), [status.as_u16().to_string()], "{uri}");
        assert_eq!(xml_texts(&reply.body, "errors", "description").len(), 1);
    }
    let no_key = Request::post("/open311/v2/requests.xml")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("service_code=manhole_cover&lat=36.175&long=118.185"))
        .expect("request");
    let no_key = send(&pool, no_key).await;
    assert_eq!(xml_texts(&no_key.body, "errors", "code"), ["400"]);
    assert_eq!(crate::common::count(&pool, "report").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn status_and_service_code_take_comma_lists(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    for code in ["manhole_cover", "streetlight"] {
        let filed = post_form(&pool, &format!("api_key={rider}&service_code={code}&lat=36.175&long=118.185")).await;
        assert_eq!(filed.status, StatusCode::CREATED);
    }
    let ids = |v: serde_json::Value| v.as_array().expect("a").len();
    assert_eq!(ids(get(&pool, "/open311/v2/requests.json?status=open,closed").await.json()), 2);
    assert_eq!(
        ids(get(&pool, "/open311/v2/requests.json?status=closed,open&service_code=manhole_cover,streetlight")
            .await
            .json()),
        2
    );
    assert_eq!(ids(get(&pool, "/open311/v2/requests.json?service_code=streetlight,road_damage").await.json()), 1);
    assert_eq!(ids(get(&pool, "/open311/v2/requests.json?status=closed").await.json()), 0);
    let bad = get(&pool, "/open311/v2/requests.json?status=open,fixed").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()[0]["description"].as_str().expect("d").contains("fixed"));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn discovery_names_an_absolute_endpoint_from_the_public_url(pool: PgPool) {
    let request = Request::get("/open311/v2/discovery.json")
        .header(header::HOST, "grid.example.cn:8443")
        .body(Body::empty())
        .expect("request");
    let discovery = send(&pool, request).await.json();
    assert_eq!(discovery["endpoints"][0]["url"], "http://grid.example.cn:8443/open311/v2");
    assert_eq!(discovery["endpoints"][0]["formats"], json!(["application/json", "text/xml"]));
}

async fn post_form_to(pool: &PgPool, path: &str, form: &str) -> crate::common::Reply {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .expect("request");
    send(pool, request).await
}

fn request_ids(reply: &crate::common::Reply) -> Vec<String> {
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let body = reply.json();
    body.as_array().expect("a list").iter().map(|r| r["service_request_id"].as_str().expect("id").to_string()).collect()
}

/// Yiyuan (370323, grids 1–2) and S002 (grids 3–4, boundary 118.9–119.1 E): `jurisdiction_id` is
/// the county code; a POST lands only in the county that holds its point; the lists and the one
/// request are that county's.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn open311_jurisdiction_id_is_a_county_code_that_scopes_posts_and_lists(pool: PgPool) {
    crate::counties::two_counties(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let yiyuan_point = "lat=36.175&long=118.185";
    let s002_point = "lat=36.175&long=118.995";

    let in_yiyuan =
        post_form(&pool, &format!("api_key={rider}&jurisdiction_id=370323&service_code=manhole_cover&{yiyuan_point}"))
            .await;
    assert_eq!(in_yiyuan.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&in_yiyuan.body));
    let in_s002 =
        post_form(&pool, &format!("api_key={rider}&jurisdiction_id=S002&service_code=streetlight&{s002_point}")).await;
    assert_eq!(in_s002.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&in_s002.body));
    // Without a jurisdiction_id, as before: any county's point.
    let unnamed = post_form(&pool, &format!("api_key={rider}&service_code=manhole_cover&{s002_point}")).await;
    assert_eq!(unnamed.status, StatusCode::CREATED);
    let yiyuan_id = in_yiyuan.json()[0]["service_request_id"].as_str().expect("id").to_string();
    let s002_ids = [&in_s002, &unnamed].map(|r| r.json()[0]["service_request_id"].as_str().expect("id").to_string());

    // A point the named county does not hold: 400 in both formats, and nothing is stored.
    let outside =
        post_form(&pool, &format!("api_key={rider}&jurisdiction_id=S002&service_code=manhole_cover&{yiyuan_point}"))
            .await;
    assert_eq!(outside.status, StatusCode::BAD_REQUEST);
    assert_eq!(outside.json()[0]["code"], 400);
    let description = outside.json()[0]["description"].as_str().expect("description").to_string();
    assert!(description.starts_with("jurisdiction_id") && description.contains("S002"), "{description}");
    let outside_xml = post_form_to(
        &pool,
        "/open311/v2/requests.xml",
        &format!("api_key={rider}&jurisdiction_id=370323&service_code=manhole_cover&{s002_point}"),
    )
    .await;
    assert_eq!(outside_xml.status, StatusCode::BAD_REQUEST);
    assert_eq!(xml_texts(&outside_xml.body, "errors", "code"), ["400"]);
    assert!(xml_texts(&outside_xml.body, "errors", "description")[0].contains("370323"));
    assert_eq!(crate::common::count(&pool, "report").await, 3);

    // GET requests: that county's only; without the id, every county's.
    assert_eq!(
        request_ids(&get(&pool, "/open311/v2/requests.json?jurisdiction_id=370323").await),
        [yiyuan_id.as_str()]
    );
    let mut s002_listed = request_ids(&get(&pool, "/open311/v2/requests.json?jurisdiction_id=S002").await);
    s002_listed.sort();
    let mut expected = s002_ids.to_vec();
    expected.sort();
    assert_eq!(s002_listed, expected);
    assert_eq!(
        request_ids(&get(&pool, "/open311/v2/requests.json?jurisdiction_id=S002&service_code=streetlight").await),
        [s002_ids[0].clone()]
    );
    assert_eq!(request_ids(&get(&pool, "/open311/v2/requests.json").await).len(), 3);
    assert_eq!(
        request_ids(&get(&pool, "/open311/v2/requests.json?jurisdiction_id=").await).len(),
        3,
        "empty is the same as absent"
    );
    let xml = get(&pool, "/open311/v2/requests.xml?jurisdiction_id=370323").await;
    assert_eq!(xml_texts(&xml.body, "service_requests", "service_request_id"), [yiyuan_id.as_str()]);

    // GET one request: found in its own county, not in another's.
    let own = get(&pool, &format!("/open311/v2/requests/{yiyuan_id}.json?jurisdiction_id=370323")).await;
    assert_eq!(request_ids(&own), [yiyuan_id.as_str()]);
    let other = get(&pool, &format!("/open311/v2/requests/{yiyuan_id}.json?jurisdiction_id=S002")).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.json()[0]["code"], 404);

    // Discovery, services and a service definition take it too.
    for path in ["discovery.json", "services.json", "services/manhole_cover.json", "services.xml"] {
        let r = get(&pool, &format!("/open311/v2/{path}?jurisdiction_id=S002")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
}

/// Before counties, `jurisdiction_id` was accepted and ignored (docs/reports.md said so, and
/// `FixMyStreet` sends whatever its operator configured, say `yiyuan`): an id that names no
/// county is still ignored — every method answers for every county and a POST is stored —
/// so an integration set up then keeps working; a county's code scopes it.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_jurisdiction_id_that_names_no_county_is_ignored_as_before(pool: PgPool) {
    crate::counties::two_counties(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let created =
        post_form(&pool, &format!("api_key={rider}&service_code=manhole_cover&lat=36.175&long=118.185")).await;
    let id = created.json()[0]["service_request_id"].as_str().expect("id").to_string();
    for path in [
        "discovery.json".to_string(),
        "services.json".into(),
        "services/manhole_cover.json".into(),
        "requests.json".into(),
        format!("requests/{id}.json"),
    ] {
        let r = get(&pool, &format!("/open311/v2/{path}?jurisdiction_id=yiyuan")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let xml_path = path.replace(".json", ".xml");
        let r = get(&pool, &format!("/open311/v2/{xml_path}?jurisdiction_id=yiyuan")).await;
        assert_eq!(r.status, StatusCode::OK, "{xml_path}");
    }
    let listed = request_ids(&get(&pool, "/open311/v2/requests.json?jurisdiction_id=yiyuan").await);
    assert_eq!(listed, request_ids(&get(&pool, "/open311/v2/requests.json").await));
    for path in ["/open311/v2/requests.json", "/open311/v2/requests.xml"] {
        let form = format!("api_key={rider}&jurisdiction_id=yiyuan&service_code=manhole_cover&lat=36.175&long=118.185");
        let r = post_form_to(&pool, path, &form).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}");
    }
    assert_eq!(crate::common::count(&pool, "report").await, 3);
}

/// A database without counties (made before migration 0028, or `small_city` here) serves one
/// unnamed jurisdiction: the spec lets it ignore `jurisdiction_id`, and it does, as before.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn without_counties_open311_ignores_jurisdiction_id_as_the_spec_allows(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-li", Role::Rider, &[]).await;
    let form = format!("api_key={rider}&jurisdiction_id=yiyuan&service_code=manhole_cover&lat=36.175&long=118.185");
    assert_eq!(post_form(&pool, &form).await.status, StatusCode::CREATED);
    assert_eq!(request_ids(&get(&pool, "/open311/v2/requests.json?jurisdiction_id=yiyuan").await).len(), 1);
    assert_eq!(get(&pool, "/open311/v2/services.xml?jurisdiction_id=yiyuan").await.status, StatusCode::OK);
}
