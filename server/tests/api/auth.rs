//! Login, bearer tokens, logout, and no user enumeration.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{send, send_json};
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;

pub async fn make_user(pool: &PgPool, name: &str, role: Role) -> String {
    let password = format!("{name}-password-123");
    upsert(pool, &NewAccount { name, role, password: &password, part_time_grid_worker: false, grid_codes: &[] })
        .await
        .expect("create account");
    password
}

pub async fn login(pool: &PgPool, name: &str, password: &str) -> String {
    let reply = send_json(pool, "POST", "/api/auth/login", &json!({"name": name, "password": password})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["token"].as_str().expect("token").to_string()
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn login_returns_an_expiring_token_and_the_role(pool: PgPool) {
    let password = make_user(&pool, "planner-zhao", Role::Planner).await;
    let reply =
        send_json(&pool, "POST", "/api/auth/login", &json!({"name": "planner-zhao", "password": password})).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["role"], "planner");
    assert_eq!(body["token"].as_str().expect("token").len(), 64, "256-bit token");
    assert!(body["expires_at"].is_string());
    assert_eq!(body["grid_ids"], json!([]), "a planner works no grid");
    let stored: Vec<u8> =
        sqlx::query_scalar("select token_hash from session_token").fetch_one(&pool).await.expect("row");
    assert_ne!(stored, body["token"].as_str().expect("token").as_bytes(), "only a hash is stored");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn wrong_password_and_unknown_name_get_the_same_401(pool: PgPool) {
    make_user(&pool, "rider-qian", Role::Rider).await;
    let wrong =
        send_json(&pool, "POST", "/api/auth/login", &json!({"name": "rider-qian", "password": "not it at all"})).await;
    let unknown =
        send_json(&pool, "POST", "/api/auth/login", &json!({"name": "nobody-here", "password": "not it at all"})).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    let malformed = send_json(&pool, "POST", "/api/auth/login", &json!({"name": 5})).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json()["code"], "bad_request");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn logout_revokes_the_token(pool: PgPool) {
    let password = make_user(&pool, "worker-sun", Role::GridWorker).await;
    let token = login(&pool, "worker-sun", &password).await;
    let logout = |token: String| {
        let pool = pool.clone();
        async move {
            let request = Request::post("/api/auth/logout")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request");
            send(&pool, request).await
        }
    };
    assert_eq!(logout(token.clone()).await.status, StatusCode::NO_CONTENT);
    let again = logout(token).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.json()["code"], "unauthorized");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn repeated_wrong_passwords_are_throttled_with_429(pool: PgPool) {
    use tower::ServiceExt;
    let password = make_user(&pool, "rider-li", Role::Rider).await;
    // The limiter lives in the app's state, so every attempt goes through one app instance.
    let app = gridmap_server::http::app(gridmap_server::http::AppState::new(pool.clone()));
    let attempt = |password: &str| {
        Request::post("/api/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"name": "rider-li", "password": password}).to_string()))
            .expect("request")
    };
    for _ in 0..5 {
        let r = app.clone().oneshot(attempt("guess guess guess")).await.expect("infallible");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = app.clone().oneshot(attempt(&password)).await.expect("infallible");
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(throttled.headers().contains_key(header::RETRY_AFTER));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_oversized_body_is_refused_with_413(pool: PgPool) {
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = send_json(&pool, "POST", "/api/auth/login", &json!({"name": "a", "password": huge})).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["code"], "payload_too_large");
}
