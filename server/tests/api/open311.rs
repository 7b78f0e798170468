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
