//! The token cache (`auth::TokenCache`): a login changed through this server — logout, revoke,
//! disable, new role, new grids — takes effect on the very next request even though the token
//! was cached; a change behind the server's back takes effect within the cache's lifetime.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gridmap_server::auth::TokenCache;
use gridmap_server::config::Role;
use gridmap_server::http::AppState;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{Reply, send_to};
use crate::reports::{small_city, user};

async fn call(state: &AppState, method: &str, uri: &str, token: &str, body: Option<Value>) -> Reply {
    let r = Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
    let r = match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    };
    send_to(state, r.expect("request")).await
}

async fn me(state: &AppState, token: &str) -> StatusCode {
    call(state, "GET", "/api/points/me", token, None).await.status
}

async fn account_id(pool: &PgPool, name: &str) -> i64 {
    sqlx::query_scalar("select id from account where name = $1").bind(name).fetch_one(pool).await.expect("account")
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn cached_logins_end_at_once_when_disabled_revoked_or_logged_out_through_the_server(pool: PgPool) {
    small_city(&pool).await;
    let admin = user(&pool, "the-admin", Role::Admin, &[]).await;
    let state = AppState::new(pool.clone());

    let rider = user(&pool, "rider-a", Role::Rider, &[]).await;
    assert_eq!(me(&state, &rider).await, StatusCode::OK, "cached from here on");
    let id = account_id(&pool, "rider-a").await;
    let patched =
        call(&state, "PATCH", &format!("/api/admin/accounts/{id}"), &admin, Some(json!({"disabled": true}))).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(me(&state, &rider).await, StatusCode::UNAUTHORIZED, "disabled: the next request is refused");

    let rider = user(&pool, "rider-b", Role::Rider, &[]).await;
    assert_eq!(me(&state, &rider).await, StatusCode::OK);
    let id = account_id(&pool, "rider-b").await;
    let revoked = call(&state, "POST", &format!("/api/admin/accounts/{id}/revoke-tokens"), &admin, None).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(me(&state, &rider).await, StatusCode::UNAUTHORIZED, "revoked everywhere");

    let rider = user(&pool, "rider-c", Role::Rider, &[]).await;
    assert_eq!(me(&state, &rider).await, StatusCode::OK);
    let id = account_id(&pool, "rider-c").await;
    let demoted = call(
        &state,
        "PATCH",
        &format!("/api/admin/accounts/{id}"),
        &admin,
        Some(json!({"role": "resident", "part_time_grid_worker": false})),
    )
    .await;
    assert_eq!(demoted.status, StatusCode::OK);
    assert_eq!(me(&state, &rider).await, StatusCode::UNAUTHORIZED, "a new role ends the login");

    let rider = user(&pool, "rider-d", Role::Rider, &[]).await;
    assert_eq!(me(&state, &rider).await, StatusCode::OK);
    assert_eq!(call(&state, "POST", "/api/auth/logout", &rider, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(me(&state, &rider).await, StatusCode::UNAUTHORIZED, "logged out");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn new_grids_apply_to_a_cached_login_on_the_next_request(pool: PgPool) {
    small_city(&pool).await;
    let admin = user(&pool, "the-admin", Role::Admin, &[]).await;
    let worker = user(&pool, "gw-move", Role::GridWorker, &["G-W"]).await;
    let state = AppState::new(pool.clone());
    let principal = state.tokens.authenticate(&pool, &worker).await.expect("lookup").expect("live");
    assert_eq!(principal.grid_ids, [1]);
    let id = account_id(&pool, "gw-move").await;
    let moved =
        call(&state, "PUT", &format!("/api/admin/accounts/{id}/grids"), &admin, Some(json!({"grid_ids": [2]}))).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", String::from_utf8_lossy(&moved.body));
    let principal = state.tokens.authenticate(&pool, &worker).await.expect("lookup").expect("live");
    assert_eq!(principal.grid_ids, [2]);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_token_revoked_behind_the_servers_back_ends_within_the_cache_lifetime(pool: PgPool) {
    let rider = user(&pool, "rider-psql", Role::Rider, &[]).await;
    let mut state = AppState::new(pool.clone());
    let ttl = Duration::from_millis(300);
    state.tokens = std::sync::Arc::new(TokenCache::new(ttl));
    assert_eq!(me(&state, &rider).await, StatusCode::OK);
    // An operator revokes it in psql: the server is not told.
    sqlx::query("update session_token set revoked_at = now()").execute(&pool).await.expect("revoke");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(me(&state, &rider).await, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_cached_token_is_never_used_past_its_expiry(pool: PgPool) {
    let rider = user(&pool, "rider-expiring", Role::Rider, &[]).await;
    let state = AppState::new(pool.clone());
    sqlx::query("update session_token set expires_at = now() + interval '1 second'")
        .execute(&pool)
        .await
        .expect("shorten");
    assert_eq!(me(&state, &rider).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(me(&state, &rider).await, StatusCode::UNAUTHORIZED, "expired while cached");
}
