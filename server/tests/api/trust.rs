//! Issue 19's promises (docs/security.md lists each with its test): NUL characters refused
//! with the field named, constraint violations as client errors, and the rest of the review.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{count, get, send, send_json};
use crate::reports::{key, post_multipart, post_report, report_body, small_city, transition, user};
use gridmap_server::config::Role;

fn nul_refused(reply: &crate::common::Reply, field: &str, what: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}: {}", String::from_utf8_lossy(&reply.body));
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.contains(field) && text.contains("NUL"), "{what}: names {field}: {text}");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_nul_character_in_any_text_input_is_a_400_naming_the_field_and_nothing_is_stored(pool: PgPool) {
    small_city(&pool).await;
    let worker = user(&pool, "gw-west", Role::GridWorker, &["G-W"]).await;
    let rider = user(&pool, "rider-nul", Role::Rider, &[]).await;
    let mut body = report_body("manhole_cover", 118.175, 36.175);
    body["description"] = json!("井盖\u{0}缺失");
    let reply = post_report(&pool, Some(&rider), Some(&key()), &body).await;
    nul_refused(&reply, "description", "JSON intake");
    let part = body.to_string().into_bytes();
    let reply = post_multipart(&pool, &rider, &[("report", None, "application/json", part)]).await;
    nul_refused(&reply, "description", "multipart intake");
    assert_eq!(count(&pool, "report").await, 0);

    // Query strings: typed (list filters, hexbins) and raw (OGC, Open311).
    for (uri, field) in [
        ("/api/reports?category=a%00b", "category"),
        ("/api/reports/hexbins?category=%00", "category"),
        ("/ogc/collections/reports/items?category=%00", "category"),
        ("/open311/v2/requests.json?service_code=x%00", "service_code"),
    ] {
        nul_refused(&get(&pool, uri).await, field, uri);
    }
    let login = send_json(&pool, "POST", "/api/auth/login", &json!({"name": "gw\u{0}", "password": "x"})).await;
    nul_refused(&login, "name", "login");
    let open311 = send(
        &pool,
        Request::post("/open311/v2/requests.json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("service_code=manhole_cover&lat=36.175&long=118.175&description=a%00b"))
            .expect("request"),
    )
    .await;
    assert_eq!(open311.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&open311.body));
    assert!(String::from_utf8_lossy(&open311.body).contains("description"), "Open311 names the field");

    let created = post_report(&pool, Some(&rider), Some(&key()), &report_body("manhole_cover", 118.175, 36.175)).await;
    let id = created.json()["id"].as_i64().expect("id");
    let note = transition(&pool, &worker, id, Some("\"1\""), &json!({"to": "accepted", "note": "ok\u{0}"})).await;
    nul_refused(&note, "note", "transition note");
    assert_eq!(get(&pool, &format!("/api/reports/{id}")).await.json()["status"], "submitted");
    assert_eq!(count(&pool, "report").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_batch_answers_a_nul_item_with_its_own_400_and_stores_the_others(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-batch", Role::Rider, &[]).await;
    let item = |description: &str| {
        let mut b = report_body("manhole_cover", 118.175, 36.175);
        b["description"] = json!(description);
        b["idempotency_key"] = json!(key());
        b
    };
    let batch = json!({"items": [item("first"), item("bad\u{0}"), item("third")]});
    let request = Request::post("/api/reports/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {rider}"))
        .body(Body::from(batch.to_string()))
        .expect("request");
    let reply = send(&pool, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let results: Vec<Value> = serde_json::from_slice(&reply.body).expect("results");
    let statuses: Vec<i64> = results.iter().map(|r| r["status"].as_i64().expect("status")).collect();
    assert_eq!(statuses, [201, 400, 201]);
    assert_eq!(results[1]["error"]["field"], "description");
    assert_eq!(count(&pool, "report").await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_public_phone_breaking_its_rule_is_a_400_naming_the_field_on_add_and_on_change(pool: PgPool) {
    let admin = crate::admin::admin_token(&pool).await;
    let added = crate::admin::call(
        &pool,
        "POST",
        "/api/admin/accounts",
        &admin,
        Some(json!({"name": "gw-phone", "role": "grid_worker", "password": "Qx7!harbour-lamp", "public_phone": "call me"})),
    )
    .await;
    assert_eq!(added.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&added.body));
    assert_eq!(added.json()["field"], "public_phone");
    assert_eq!(count(&pool, "account").await, 1, "nothing stored");
    let patched =
        crate::admin::call(&pool, "PATCH", "/api/admin/accounts/1", &admin, Some(json!({"public_phone": "x"}))).await;
    assert_eq!(patched.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&patched.body));
    assert_eq!(patched.json()["field"], "public_phone");
    let text = String::from_utf8_lossy(&patched.body);
    assert!(!text.contains("violates"), "our words, not PostgreSQL's: {text}");
}

fn slow_quota(burst: u32) -> governor::Quota {
    governor::Quota::per_hour(std::num::NonZeroU32::MIN).allow_burst(std::num::NonZeroU32::new(burst).expect("burst"))
}

async fn statuses(state: &gridmap_server::http::AppState, n: usize, make: impl Fn(usize) -> Request<Body>) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(crate::common::send_to(state, make(i)).await.status.as_u16());
    }
    out
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn made_up_or_respaced_tokens_do_not_get_fresh_rate_limit_buckets(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-limits", Role::Rider, &[]).await;
    let mut state = gridmap_server::http::AppState::new(pool.clone());
    state.limits = gridmap_server::http::limits::Limits::with_quotas(slow_quota(3), slow_quota(100));
    // A random bearer per request: not an account, so the address's bucket pays.
    let random = statuses(&state, 5, |i| {
        Request::post("/api/reports")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {i:064x}"))
            .body(Body::from("{}"))
            .expect("request")
    })
    .await;
    assert_eq!(random, [401, 401, 401, 429, 429], "made-up tokens share the address's bucket");
    // One account's token, spelled with more spaces: one account, one bucket.
    let spaced = statuses(&state, 5, |i| {
        Request::post("/api/reports")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer{}{rider}", " ".repeat(i + 1)))
            .body(Body::from("{}"))
            .expect("request")
    })
    .await;
    assert_eq!(spaced, [400, 400, 400, 429, 429], "the account's bucket, however the header is spelled");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn requests_with_an_api_key_count_against_the_keys_account_not_the_address(pool: PgPool) {
    use gridmap_server::api_keys::{ActsFor, Scope, create};
    small_city(&pool).await;
    let _a = user(&pool, "planner-keys-a", Role::Planner, &[]).await;
    let _b = user(&pool, "planner-keys-b", Role::Planner, &[]).await;
    let key = |name: &'static str, account: &'static str| {
        let pool = pool.clone();
        async move { create(&pool, name, ActsFor::Name(account), &[Scope::OgcEdit]).await.expect("key").key }
    };
    let (a1, a2, b) = (
        key("qgis-a1", "planner-keys-a").await,
        key("qgis-a2", "planner-keys-a").await,
        key("qgis-b", "planner-keys-b").await,
    );
    let mut state = gridmap_server::http::AppState::new(pool.clone());
    state.limits = gridmap_server::http::limits::Limits::with_quotas(slow_quota(3), slow_quota(100));
    let write = |token: &str| {
        Request::delete("/ogc/collections/grids/items/999999")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::IF_MATCH, "\"1\"")
            .body(Body::empty())
            .expect("request")
    };
    // Two keys of one account share its budget (3 writes), alternating or not.
    let keys = [&a1, &a2, &a1, &a2];
    let account_a = statuses(&state, 4, |i| write(keys[i])).await;
    assert_eq!(account_a, [404, 404, 404, 429], "one account, one budget, whichever key");
    // Another account's key, from the same address, has its own.
    assert_eq!(statuses(&state, 1, |_| write(&b)).await, [404], "another account is not charged for the first");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_batch_of_n_reports_costs_n_writes(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-batch-limit", Role::Rider, &[]).await;
    let mut state = gridmap_server::http::AppState::new(pool.clone());
    state.limits = gridmap_server::http::limits::Limits::with_quotas(slow_quota(3), slow_quota(100));
    let items: Vec<Value> = (0..5)
        .map(|_| {
            let mut b = report_body("manhole_cover", 118.175, 36.175);
            b["idempotency_key"] = json!(key());
            b
        })
        .collect();
    let request = Request::post("/api/reports/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {rider}"))
        .body(Body::from(json!({ "items": items }).to_string()))
        .expect("request");
    let reply = crate::common::send_to(&state, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let got: Vec<i64> =
        reply.json().as_array().expect("array").iter().map(|r| r["status"].as_i64().expect("s")).collect();
    assert_eq!(got, [201, 201, 201, 429, 429]);
    assert_eq!(count(&pool, "report").await, 3);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn wrong_passwords_from_elsewhere_do_not_lock_the_owner_out(pool: PgPool) {
    use std::net::SocketAddr;
    let _ = user(&pool, "gw-owner", Role::GridWorker, &[]).await;
    let state = gridmap_server::http::AppState::new(pool.clone());
    let from = |addr: &str, password: &str| {
        let mut r = Request::post("/api/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"name": "gw-owner", "password": password}).to_string()))
            .expect("request");
        let addr: SocketAddr = addr.parse().expect("addr");
        r.extensions_mut().insert(axum::extract::ConnectInfo(addr));
        r
    };
    for _ in 0..8 {
        let r = crate::common::send_to(&state, from("198.51.100.7:4000", "wrong-wrong-wrong")).await;
        assert!(matches!(r.status.as_u16(), 401 | 429));
    }
    let attacker = crate::common::send_to(&state, from("198.51.100.7:4000", "gw-owner-password-123")).await;
    assert_eq!(attacker.status, StatusCode::TOO_MANY_REQUESTS, "the address that failed is throttled");
    let owner = crate::common::send_to(&state, from("203.0.113.5:5000", "gw-owner-password-123")).await;
    assert_eq!(owner.status, StatusCode::OK, "the owner logs in from their own address");
    // Right passwords are not failures: logging in again and again is never throttled by name.
    for _ in 0..8 {
        let again = crate::common::send_to(&state, from("203.0.113.5:5000", "gw-owner-password-123")).await;
        assert_eq!(again.status, StatusCode::OK);
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn resetting_a_password_or_role_from_the_command_line_ends_the_old_logins(pool: PgPool) {
    use gridmap_server::accounts::{NewAccount, upsert};
    let account = |password: &'static str, role: Role| NewAccount {
        name: "gw-reset",
        role,
        password,
        part_time_grid_worker: false,
        grid_codes: &[],
    };
    upsert(&pool, &account("Qx7!harbour-lamp", Role::GridWorker)).await.expect("add");
    let token = crate::auth::login(&pool, "gw-reset", "Qx7!harbour-lamp").await;
    let me = |t: String| {
        let pool = pool.clone();
        async move {
            let r = Request::get("/api/points/me").header(header::AUTHORIZATION, format!("Bearer {t}"));
            send(&pool, r.body(Body::empty()).expect("request")).await.status
        }
    };
    upsert(&pool, &account("Qx7!harbour-lamp", Role::GridWorker)).await.expect("same again");
    assert_eq!(me(token.clone()).await, StatusCode::OK, "nothing changed: the login stays");
    upsert(&pool, &account("Vb9?river-stone", Role::GridWorker)).await.expect("new password");
    assert_eq!(me(token).await, StatusCode::UNAUTHORIZED, "a new password ends the old login");
    let token = crate::auth::login(&pool, "gw-reset", "Vb9?river-stone").await;
    upsert(&pool, &account("Vb9?river-stone", Role::Rider)).await.expect("new role");
    assert_eq!(me(token).await, StatusCode::UNAUTHORIZED, "a new role ends the old login");
    let weak = upsert(&pool, &account("aaaaaaaaaa", Role::Rider)).await;
    assert!(weak.is_err(), "the CLI applies the password policy too");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn weak_passwords_are_refused_by_the_admin_api_with_the_rule_named(pool: PgPool) {
    let admin = crate::admin::admin_token(&pool).await;
    for weak in ["          ", "aaaaaaaaaa", "1234567890", "Password123", "gw-weakling"] {
        let reply = crate::admin::call(
            &pool,
            "POST",
            "/api/admin/accounts",
            &admin,
            Some(json!({"name": "gw-weakling", "role": "grid_worker", "password": weak})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{weak:?}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["field"], "password");
    }
    let reply =
        crate::admin::call(&pool, "PATCH", "/api/admin/accounts/1", &admin, Some(json!({"password": "qwertyuiop"})))
            .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(count(&pool, "account").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_public_grid_history_never_shows_a_login_name(pool: PgPool) {
    small_city(&pool).await;
    user(&pool, "sentinel-planner-login", Role::Planner, &[]).await;
    let mut tx = pool.begin().await.expect("tx");
    sqlx::query("select set_config('gridmap.actor', 'sentinel-planner-login', true)")
        .execute(&mut *tx)
        .await
        .expect("actor");
    sqlx::query("update grid set name = '西网格二' where id = 1").execute(&mut *tx).await.expect("edit");
    tx.commit().await.expect("commit");
    sqlx::query("update grid set name = '西网格三' where id = 1").execute(&pool).await.expect("sql edit");
    let history = get(&pool, "/api/grids/1/history").await;
    assert_eq!(history.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&history.body);
    assert!(!text.contains("sentinel-planner-login") && !text.contains("\"postgres\""), "{text}");
    let authors: Vec<String> = history.json()["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["author"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(authors.iter().any(|a| a == "规划人员") && authors.iter().any(|a| a == "系统"), "{authors:?}");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_worker_cannot_accept_verify_or_close_their_own_report_nor_earn_points_by_it(pool: PgPool) {
    small_city(&pool).await;
    let worker = user(&pool, "gw-self", Role::GridWorker, &["G-W"]).await;
    let colleague = user(&pool, "gw-colleague", Role::GridWorker, &["G-W"]).await;
    let created = post_report(&pool, Some(&worker), Some(&key()), &report_body("manhole_cover", 118.175, 36.175)).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["id"].as_i64().expect("id");
    let as_worker = |t: &str| {
        Request::get(format!("/api/reports/{id}"))
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Body::empty())
            .expect("request")
    };
    let view = send(&pool, as_worker(&worker)).await.json();
    assert!(
        !view["allowed_next"].as_array().expect("allowed_next").iter().any(|s| s == "accepted"),
        "allowed_next says so: {view}"
    );
    let refused = transition(&pool, &worker, id, Some("\"1\""), &json!({"to": "accepted"})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&refused.body));
    assert_eq!(refused.json()["reason"], "own_report");
    let points: i64 = sqlx::query_scalar("select count(*) from points_ledger").fetch_one(&pool).await.expect("points");
    assert_eq!(points, 0, "no points for it");
    let accepted = transition(&pool, &colleague, id, Some("\"1\""), &json!({"to": "accepted"})).await;
    assert_eq!(accepted.status, StatusCode::OK, "another worker of the grid accepts it");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_json_report_body_over_one_mib_is_a_413_as_documented(pool: PgPool) {
    small_city(&pool).await;
    let mut body = report_body("manhole_cover", 118.175, 36.175);
    body["description"] = json!("井".repeat(600_000));
    let reply = post_report(&pool, None, Some(&key()), &body).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["code"], "payload_too_large");
    assert_eq!(count(&pool, "report").await, 0);
}

fn collect(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains("://") && !s.contains("opengis.net") && !s.contains("open311.org") => {
            out.push(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
        Value::Object(o) => o.values().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// The absolute URLs of every document that carries them: style.json, TileJSON, the OGC
/// landing page and API definition, an OGC collection, and Open311 discovery.
async fn absolute_urls(state: &gridmap_server::http::AppState, headers: &[(&str, &str)], peer: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for uri in [
        "/tiles/style.json",
        "/tiles/grids.json",
        "/ogc",
        "/ogc/api",
        "/ogc/collections/grids",
        "/open311/v2/discovery.json",
    ] {
        let mut request = Request::get(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut request = request.body(Body::empty()).expect("request");
        let addr: std::net::SocketAddr = peer.parse().expect("peer");
        request.extensions_mut().insert(axum::extract::ConnectInfo(addr));
        let reply = crate::common::send_to(state, request).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&reply.body));
        let before = urls.len();
        collect(&reply.json(), &mut urls);
        assert!(urls.len() > before, "{uri} carries absolute URLs");
    }
    urls
}

fn under(url: &str, base: &str) -> bool {
    url == base || url.starts_with(&format!("{base}/"))
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn absolute_urls_come_from_the_public_url_and_forwarded_headers_only_from_trusted_proxies(pool: PgPool) {
    small_city(&pool).await;
    let poison =
        [("host", "gridmap.internal:8080"), ("x-forwarded-host", "evil.example"), ("x-forwarded-proto", "https")];
    let mut state = gridmap_server::http::AppState::new(pool.clone());
    state.limits = gridmap_server::http::limits::Limits::with_quotas(slow_quota(1000), slow_quota(1000))
        .trusting(gridmap_server::http::limits::TrustedProxies::parse("10.0.0.1").expect("proxies"));

    // Anyone's X-Forwarded-Host is ignored: the URLs name the host the client addressed.
    for url in absolute_urls(&state, &poison, "203.0.113.9:5555").await {
        assert!(under(&url, "http://gridmap.internal:8080"), "untrusted peer: {url}");
    }
    // The trusted proxy's forwarded host and scheme are believed.
    for url in absolute_urls(&state, &poison, "10.0.0.1:5555").await {
        assert!(under(&url, "https://evil.example"), "trusted proxy: {url}");
    }
    // GRIDMAP_PUBLIC_URL wins over every header, from anyone.
    state.urls = gridmap_server::http::urls::PublicUrls::new(Some("https://grid.yiyuan.example/"), None);
    for peer in ["203.0.113.9:5555", "10.0.0.1:5555"] {
        for url in absolute_urls(&state, &poison, peer).await {
            assert!(under(&url, "https://grid.yiyuan.example"), "public URL from {peer}: {url}");
        }
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_huge_offset_is_a_400_naming_it_and_next_never_goes_negative(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-pages", Role::Rider, &[]).await;
    for _ in 0..3 {
        post_report(&pool, Some(&rider), Some(&key()), &report_body("manhole_cover", 118.175, 36.175)).await;
    }
    for uri in [
        "/api/reports?offset=9223372036854775807",
        "/api/reports?offset=9223372036854775000&limit=500",
        "/api/reports?offset=10000001",
        "/ogc/collections/grids/items?offset=9223372036854775807",
        "/ogc/collections/reports/items?offset=10000001",
    ] {
        let reply = get(&pool, uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["field"], "offset", "{uri}");
    }
    // Within the bound: pages link forward with a sensible offset, and the last page links nowhere.
    let first = get(&pool, "/api/reports?limit=2").await.json();
    assert_eq!(first["next"], "/api/reports?limit=2&offset=2");
    assert!(get(&pool, "/api/reports?limit=2&offset=2").await.json()["next"].is_null());
    assert!(get(&pool, "/api/reports?offset=10000000").await.json()["next"].is_null());
    let items = get(&pool, "/ogc/collections/reports/items?limit=2").await.json();
    let next: Vec<&str> = items["links"]
        .as_array()
        .expect("links")
        .iter()
        .filter(|l| l["rel"] == "next")
        .filter_map(|l| l["href"].as_str())
        .collect();
    assert!(next.len() == 1 && next[0].ends_with("offset=2"), "{next:?}");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_ogc_write_checks_the_role_before_reading_the_body(pool: PgPool) {
    small_city(&pool).await;
    let rider = user(&pool, "rider-ogc", Role::Rider, &[]).await;
    for (method, uri) in [
        ("POST", "/ogc/collections/grids/items"),
        ("PUT", "/ogc/collections/grids/items/1"),
        ("PATCH", "/ogc/collections/stations/items/1"),
        ("POST", "/ogc/collections/buildings/items"),
    ] {
        for (who, expected) in [(Some(rider.as_str()), StatusCode::FORBIDDEN), (None, StatusCode::UNAUTHORIZED)] {
            let mut request =
                Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
            if let Some(token) = who {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let reply = send(&pool, request.body(Body::from("{ not json")).expect("request")).await;
            assert_eq!(reply.status, expected, "{method} {uri}: {}", String::from_utf8_lossy(&reply.body));
        }
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn every_kind_of_response_carries_the_security_headers(pool: PgPool) {
    small_city(&pool).await;
    let mut state = gridmap_server::http::AppState::new(pool.clone());
    // A served page with an inline script, as web-map/dist has (the import map).
    let web = std::env::temp_dir().join(format!("gridmap-csp-{}", std::process::id()));
    std::fs::create_dir_all(&web).expect("web dir");
    std::fs::write(web.join("index.html"), "<script type=\"importmap\">{\"imports\":{}}</script>").expect("index");
    state.web_dir = web.clone();
    let rider = user(&pool, "rider-csp", Role::Rider, &[]).await;
    let requests = [
        ("page", Request::get("/").body(Body::empty())),
        ("JSON", Request::get("/api/grids").body(Body::empty())),
        ("404", Request::get("/no/such/thing").body(Body::empty())),
        ("405", Request::delete("/api/grids").body(Body::empty())),
        ("401", Request::get("/api/reports").body(Body::empty())),
        (
            "403",
            Request::get("/api/admin/accounts")
                .header(header::AUTHORIZATION, format!("Bearer {rider}"))
                .body(Body::empty()),
        ),
        ("tile", Request::get("/tiles/grids/12/3363/1575.mvt").body(Body::empty())),
        ("Open311", Request::get("/open311/v2/services.xml").body(Body::empty())),
    ];
    for (what, request) in requests {
        let reply = crate::common::send_to(&state, request.expect("request")).await;
        let h = |name: &str| reply.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let csp = h("content-security-policy");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{what} ({}): {csp:?}",
            reply.status
        );
        // printf '{"imports":{}}' | openssl dgst -sha256 -binary | base64
        assert!(csp.contains("'sha256-URrTy+Il/Nz0lHojVUx275hWqAWhkSF0VsHbUM4/6Hw='"), "{what}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{what}: {csp}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{what}");
    }
    let _ = std::fs::remove_dir_all(web);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_api_document_lists_the_statuses_the_shared_layers_give_and_the_real_parameter_bounds(pool: PgPool) {
    let doc = get(&pool, "/api/openapi.json").await.json();
    let statuses = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
    };
    for (path, method, expected) in [
        ("/api/reports", "post", &["400", "401", "413", "415", "429", "503"][..]),
        ("/api/reports/batch", "post", &["400", "413", "415", "429", "503"]),
        ("/api/reports/{id}", "get", &["400", "404", "503"]),
        ("/api/reports", "get", &["400", "429", "503"]),
        ("/api/admin/accounts", "post", &["400", "401", "403", "413", "415", "429", "503"]),
        ("/api/grids/{id}/history", "get", &["400", "404", "503"]),
    ] {
        let have = statuses(path, method);
        for status in expected {
            assert!(have.iter().any(|s| s == status), "{method} {path} documents {status}: {have:?}");
        }
    }
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let limit = param("/api/stations/nearest", "limit");
    assert_eq!(
        (limit["schema"]["minimum"].as_f64(), limit["schema"]["maximum"].as_f64()),
        (Some(1.0), Some(50.0)),
        "{limit}"
    );
    let lat = param("/api/grids/at", "lat");
    assert_eq!(
        (lat["schema"]["minimum"].as_f64(), lat["schema"]["maximum"].as_f64()),
        (Some(-90.0), Some(90.0)),
        "{lat}"
    );
    let key = doc["paths"]["/api/reports"]["post"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "Idempotency-Key"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(key["schema"]["format"], "uuid", "{key}");
}
