//! Health, readiness, JSON errors for unknown routes, and the schema's triggers (versions,
//! history, derived households, geometry repair) as an operator's plain SQL exercises them.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use sqlx::PgPool;

use crate::common::{get, send};

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn healthz_and_readyz_answer_json(pool: PgPool) {
    let health = get(&pool, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = get(&pool, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["migrations"], "applied");
}

#[sqlx::test(migrations = false)]
async fn readyz_is_red_until_migrations_are_applied(pool: PgPool) {
    sqlx::query("create table _sqlx_migrations (version bigint primary key, success boolean not null)")
        .execute(&pool)
        .await
        .expect("fake migration table");
    let ready = get(&pool, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["migrations"], "pending");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn unknown_route_and_wrong_method_get_json_errors(pool: PgPool) {
    let missing = get(&pool, "/api/no-such-thing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["code"], "not_found");
    let wrong = send(&pool, Request::delete("/healthz").body(Body::empty()).expect("request")).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.json()["code"], "method_not_allowed");
}

async fn square(pool: &PgPool, code: &str, x0: f64, x1: f64) -> i64 {
    sqlx::query_scalar(
        "insert into grid (code, name, geom) values ($1, $1, ST_Multi(ST_MakeEnvelope($2, 36.17, $3, 36.18, 4326))) returning id",
    )
    .bind(code)
    .bind(x0)
    .bind(x1)
    .fetch_one(pool)
    .await
    .expect("insert grid")
}

async fn building_at(pool: &PgPool, x: f64, households: i32) {
    sqlx::query(
        "insert into building (geom, households) values (ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint($1, 36.175), 4326), 0.0001, 2)), $2)",
    )
    .bind(x)
    .bind(households)
    .execute(pool)
    .await
    .expect("insert building");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn plain_sql_grid_edit_bumps_version_keeps_history_and_recounts_households(pool: PgPool) {
    let west = square(&pool, "T-001", 118.16, 118.17).await;
    let east = square(&pool, "T-002", 118.17, 118.18).await;
    building_at(&pool, 118.165, 40).await;
    building_at(&pool, 118.168, 25).await;
    building_at(&pool, 118.175, 7).await;
    let households = |id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i32>("select households from grid where id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("grid")
        }
    };
    assert_eq!((households(west).await, households(east).await), (65, 7));

    // Move the shared edge west so the 25-household building changes grid, as an operator might.
    let mut tx = pool.begin().await.expect("tx");
    sqlx::query(
        "select set_config('gridmap.actor', 'planner-wang', true), set_config('gridmap.reason', 'rebalance', true)",
    )
    .execute(&mut *tx)
    .await
    .expect("actor");
    sqlx::query("update grid set geom = ST_Multi(ST_MakeEnvelope(118.16, 36.17, 118.167, 36.18, 4326)) where id = $1")
        .bind(west)
        .execute(&mut *tx)
        .await
        .expect("move west");
    sqlx::query("update grid set geom = ST_Multi(ST_MakeEnvelope(118.167, 36.17, 118.18, 36.18, 4326)) where id = $1")
        .bind(east)
        .execute(&mut *tx)
        .await
        .expect("move east");
    tx.commit().await.expect("commit");
    assert_eq!((households(west).await, households(east).await), (40, 32));

    let history: Vec<(i32, String, String, Option<String>)> =
        sqlx::query_as("select version, op, author, reason from grid_version where grid_id = $1 order by version")
            .bind(west)
            .fetch_all(&pool)
            .await
            .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1], (2, "update".into(), "planner-wang".into(), Some("rebalance".into())));

    // A household recount alone is not a new version of the grid.
    sqlx::query("update building set households = 50 where households = 7").execute(&pool).await.expect("update");
    let version: i32 =
        sqlx::query_scalar("select version from grid where id = $1").bind(east).fetch_one(&pool).await.expect("v");
    assert_eq!(version, 2);
    assert_eq!(households(east).await, 75);

    // Deleting keeps the history.
    sqlx::query("delete from grid where id = $1").bind(east).execute(&pool).await.expect("delete");
    let ops: Vec<String> = sqlx::query_scalar("select op from grid_version where grid_id = $1 order by id")
        .bind(east)
        .fetch_all(&pool)
        .await
        .expect("ops");
    assert_eq!(ops, ["insert", "update", "delete"]);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn invalid_geometry_is_repaired_on_write(pool: PgPool) {
    // A bow-tie: self-intersecting.
    sqlx::query("insert into grid (code, name, geom) values ('T-BOW', 'bow', 'SRID=4326;MULTIPOLYGON(((118 36,118.01 36.01,118.01 36,118 36.01,118 36)))')")
        .execute(&pool)
        .await
        .expect("insert");
    let valid: bool =
        sqlx::query_scalar("select ST_IsValid(geom) and ST_IsValid(geom_3857) from grid where code = 'T-BOW'")
            .fetch_one(&pool)
            .await
            .expect("valid");
    assert!(valid);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn named_constraints_reject_bad_rows(pool: PgPool) {
    let err = sqlx::query("insert into account (name, role) values ('someone', 'mayor')")
        .execute(&pool)
        .await
        .expect_err("bad role");
    assert_eq!(err.as_database_error().and_then(|e| e.constraint()), Some("account_role_check"));
    let err = sqlx::query(
        "insert into station (name, geom, services) values ('s', 'SRID=4326;POINT(118.17 36.18)', '{karaoke}')",
    )
    .execute(&pool)
    .await
    .expect_err("unknown service");
    assert_eq!(err.as_database_error().and_then(|e| e.constraint()), Some("station_services_known"));
}
