//! `/api/admin/*`: accounts added, disabled (which ends their logins at once), re-enabled,
//! assigned to grids (which takes effect on the next request), and logged out everywhere.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{Reply, count, send};
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;

pub async fn admin_token(pool: &PgPool) -> String {
    upsert(
        pool,
        &NewAccount {
            name: "the-admin",
            role: Role::Admin,
            password: "admin-password-1",
            part_time_grid_worker: false,
            grid_codes: &[],
        },
    )
    .await
    .expect("admin");
    gridmap_server::auth::login(pool, "the-admin", "admin-password-1").await.expect("login").expect("valid").token
}

pub async fn call(pool: &PgPool, method: &str, uri: &str, token: &str, body: Option<Value>) -> Reply {
    let r = Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
    let r = match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    };
    send(pool, r.expect("request")).await
}

async fn login(pool: &PgPool, name: &str, password: &str) -> Reply {
    let r = Request::post("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"name": name, "password": password}).to_string()))
        .expect("request");
    send(pool, r).await
}

async fn two_grids(pool: &PgPool) -> Vec<i64> {
    crate::reports::small_city(pool).await;
    sqlx::query_scalar("select id from grid order by id").fetch_all(pool).await.expect("grids")
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn admin_adds_disables_and_reenables_an_account(pool: PgPool) {
    let admin = admin_token(&pool).await;
    let grids = two_grids(&pool).await;
    let created = call(
        &pool,
        "POST",
        "/api/admin/accounts",
        &admin,
        Some(json!({
            "name": "gw-new", "role": "grid_worker", "password": "worker-password-1",
            "display_name": "王网格员", "phone": "13900000000", "public_phone": "0533-3200000", "grid_ids": [grids[0]]
        })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    let body = created.json();
    let id = body["id"].as_i64().expect("id");
    assert_eq!(created.headers[header::LOCATION], format!("/api/admin/accounts/{id}").as_str());
    assert_eq!(body["grid_ids"], json!([grids[0]]));
    assert!(body.get("password_hash").is_none(), "never the hash");

    let token = login(&pool, "gw-new", "worker-password-1").await;
    assert_eq!(token.status, StatusCode::OK);
    let token = token.json()["token"].as_str().expect("token").to_string();
    assert_eq!(call(&pool, "GET", "/api/points/me", &token, None).await.status, StatusCode::OK);

    // Disabling ends the login that is already out there, and refuses new ones.
    let disabled =
        call(&pool, "PATCH", &format!("/api/admin/accounts/{id}"), &admin, Some(json!({"disabled": true}))).await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.json()["active_tokens"], 0);
    assert_eq!(call(&pool, "GET", "/api/points/me", &token, None).await.status, StatusCode::UNAUTHORIZED);
    let refused = login(&pool, "gw-new", "worker-password-1").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["message"], "invalid name or password", "the same answer as a wrong password");

    let enabled =
        call(&pool, "PATCH", &format!("/api/admin/accounts/{id}"), &admin, Some(json!({"disabled": false}))).await;
    assert_eq!(enabled.json()["can_log_in"], true);
    assert_eq!(login(&pool, "gw-new", "worker-password-1").await.status, StatusCode::OK);

    let listed = call(&pool, "GET", "/api/admin/accounts", &admin, None).await.json();
    assert!(listed.as_array().expect("list").iter().any(|a| a["name"] == "gw-new"));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn assigning_grids_changes_what_a_worker_may_do_on_the_next_request(pool: PgPool) {
    let admin = admin_token(&pool).await;
    let grids = two_grids(&pool).await;
    let created = call(
        &pool,
        "POST",
        "/api/admin/accounts",
        &admin,
        Some(json!({
            "name": "gw-moves", "role": "grid_worker", "password": "worker-password-1", "grid_ids": [grids[0]]
        })),
    )
    .await;
    let id = created.json()["id"].as_i64().expect("id");
    let token =
        login(&pool, "gw-moves", "worker-password-1").await.json()["token"].as_str().expect("token").to_string();
    // A report in the second grid: not this worker's until the admin moves them.
    let (lon, lat): (f64, f64) =
        sqlx::query_as("select ST_X(p), ST_Y(p) from (select ST_PointOnSurface(geom) p from grid where id = $1) s")
            .bind(grids[1])
            .fetch_one(&pool)
            .await
            .expect("point");
    let report = crate::reports::post_report(
        &pool,
        None,
        Some(&uuid::Uuid::new_v4().to_string()),
        &json!({"category": "road_damage", "description": "x",
        "location": {"lon": lon, "lat": lat, "crs": "wgs84", "accuracy_m": 5}}),
    )
    .await;
    assert_eq!(report.status, StatusCode::CREATED);
    let report = report.json()["id"].as_i64().expect("report");
    let accept = |token: String| {
        let pool = pool.clone();
        async move {
            let etag = crate::common::get(&pool, &format!("/api/reports/{report}")).await.headers[header::ETAG].clone();
            let r = Request::post(format!("/api/reports/{report}/transitions"))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::IF_MATCH, etag)
                .body(Body::from(r#"{"to": "accepted"}"#))
                .expect("request");
            send(&pool, r).await.status
        }
    };
    assert_eq!(accept(token.clone()).await, StatusCode::FORBIDDEN);
    let moved =
        call(&pool, "PUT", &format!("/api/admin/accounts/{id}/grids"), &admin, Some(json!({"grid_ids": [grids[1]]})))
            .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(moved.json()["grid_ids"], json!([grids[1]]));
    assert_eq!(accept(token).await, StatusCode::OK, "the same login, the new grid");

    // Unknown grids are refused whole: the old assignment stays.
    let bad = call(
        &pool,
        "PUT",
        &format!("/api/admin/accounts/{id}/grids"),
        &admin,
        Some(json!({"grid_ids": [grids[0], 999_999]})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["field"], "grid_ids");
    let kept: Vec<i64> = sqlx::query_scalar("select grid_id from grid_assignment where account_id = $1")
        .bind(id)
        .fetch_all(&pool)
        .await
        .expect("kept");
    assert_eq!(kept, vec![grids[1]]);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn revoke_tokens_logs_an_account_out_everywhere(pool: PgPool) {
    let admin = admin_token(&pool).await;
    upsert(
        &pool,
        &NewAccount {
            name: "rider-x",
            role: Role::Rider,
            password: "rider-password-1",
            part_time_grid_worker: false,
            grid_codes: &[],
        },
    )
    .await
    .expect("rider");
    let phone_a = login(&pool, "rider-x", "rider-password-1").await.json()["token"].as_str().expect("a").to_string();
    let phone_b = login(&pool, "rider-x", "rider-password-1").await.json()["token"].as_str().expect("b").to_string();
    let id: i64 =
        sqlx::query_scalar("select id from account where name = 'rider-x'").fetch_one(&pool).await.expect("id");
    let revoked = call(&pool, "POST", &format!("/api/admin/accounts/{id}/revoke-tokens"), &admin, None).await;
    assert_eq!(revoked.json(), json!({"revoked": 2}));
    for t in [phone_a, phone_b] {
        assert_eq!(call(&pool, "GET", "/api/points/me", &t, None).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        call(&pool, "POST", "/api/admin/accounts/999999/revoke-tokens", &admin, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_account_input_is_a_clear_error_and_stores_nothing(pool: PgPool) {
    let admin = admin_token(&pool).await;
    let before = count(&pool, "account").await;
    let cases = [
        (json!({"name": "x y", "role": "rider", "password": "long-enough-1"}), StatusCode::BAD_REQUEST, Some("name")),
        (json!({"name": "short-pw", "role": "rider", "password": "short"}), StatusCode::BAD_REQUEST, Some("password")),
        (json!({"name": "bad-role", "role": "mayor", "password": "long-enough-1"}), StatusCode::BAD_REQUEST, None),
        (json!({"name": "the-admin", "role": "rider", "password": "long-enough-1"}), StatusCode::CONFLICT, None),
        (
            json!({"name": "pt", "role": "planner", "password": "long-enough-1", "part_time_grid_worker": true}),
            StatusCode::BAD_REQUEST,
            Some("part_time_grid_worker"),
        ),
        (
            json!({"name": "nogrid", "role": "grid_worker", "password": "long-enough-1", "grid_ids": [424_242]}),
            StatusCode::BAD_REQUEST,
            Some("grid_ids"),
        ),
        (
            json!({"name": "ctrl", "role": "rider", "password": "long-enough-1", "display_name": "a\u{0}b"}),
            StatusCode::BAD_REQUEST,
            Some("display_name"),
        ),
        (
            json!({"name": "extra", "role": "rider", "password": "long-enough-1", "is_admin": true}),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (body, status, field) in cases {
        let reply = call(&pool, "POST", "/api/admin/accounts", &admin, Some(body.clone())).await;
        assert_eq!(reply.status, status, "{body}: {}", String::from_utf8_lossy(&reply.body));
        if let Some(field) = field {
            assert_eq!(reply.json()["field"], field, "{body}");
        }
    }
    assert_eq!(count(&pool, "account").await, before, "nothing stored");
    // An admin cannot lock themselves out.
    let me: i64 =
        sqlx::query_scalar("select id from account where name = 'the-admin'").fetch_one(&pool).await.expect("me");
    let own = call(&pool, "PATCH", &format!("/api/admin/accounts/{me}"), &admin, Some(json!({"disabled": true}))).await;
    assert_eq!(own.status, StatusCode::CONFLICT);
}
