//! Door-knocking rounds and the sentiment log (issue 23 §2): every rule and refusal of
//! `gridmap_server::rounds` and `gridmap_server::sentiment`, through the HTTP API.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{Reply, count, send};
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;

/// A small town: one county, one community, grids GA and GB side by side. GA has buildings of
/// 3 and 2 households and a shop without households; GB one building of 4 households.
pub struct Town {
    pub county: i64,
    pub community: i64,
    pub ga: i64,
    pub gb: i64,
    pub b3: i64,
    pub b2: i64,
    pub shop: i64,
    pub b4: i64,
    pub worker_a: String,
    pub worker_b: String,
    pub planner: String,
    pub admin: String,
    pub rider: String,
}

fn square(lon: f64, lat: f64, half: f64) -> String {
    format!(
        "MULTIPOLYGON((({a} {b},{c} {b},{c} {d},{a} {d},{a} {b})))",
        a = lon - half,
        b = lat - half,
        c = lon + half,
        d = lat + half
    )
}

async fn login(pool: &PgPool, name: &str, role: Role, grid_codes: &[String]) -> String {
    let password = format!("{name}-password");
    upsert(pool, &NewAccount { name, role, password: &password, part_time_grid_worker: false, grid_codes })
        .await
        .expect("account");
    gridmap_server::auth::login(pool, name, &password).await.expect("login").expect("valid").token
}

pub async fn town(pool: &PgPool) -> Town {
    let county: i64 = sqlx::query_scalar("insert into county (code, name) values ('T370', '测试县') returning id")
        .fetch_one(pool)
        .await
        .expect("county");
    let subdistrict: i64 = sqlx::query_scalar(
        "insert into subdistrict (county_id, code, name) values ($1, 'SD1', '测试街道') returning id",
    )
    .bind(county)
    .fetch_one(pool)
    .await
    .expect("subdistrict");
    let community: i64 = sqlx::query_scalar(
        "insert into community (subdistrict_id, code, name) values ($1, 'CM1', '测试社区') returning id",
    )
    .bind(subdistrict)
    .fetch_one(pool)
    .await
    .expect("community");
    let mut grids = Vec::new();
    for (code, lon) in [("GA", 118.170), ("GB", 118.180)] {
        let id: i64 = sqlx::query_scalar(
            "insert into grid (code, name, community_id, geom) values ($1, $1 || '网格', $2, ST_GeomFromText($3, 4326)) returning id",
        )
        .bind(code)
        .bind(community)
        .bind(square(lon, 36.18, 0.004))
        .fetch_one(pool)
        .await
        .expect("grid");
        grids.push(id);
    }
    let mut buildings = Vec::new();
    for (lon, lat, households, units, usage) in [
        (118.169, 36.179, 3, 2, "residential"),
        (118.171, 36.181, 2, 1, "residential"),
        (118.170, 36.182, 0, 0, "commercial"),
        (118.180, 36.180, 4, 2, "residential"),
    ] {
        let id: i64 = sqlx::query_scalar(
            "insert into building (geom, households, units, use) values (ST_GeomFromText($1, 4326), $2, $3, $4) returning id",
        )
        .bind(square(lon, lat, 0.0002))
        .bind(households)
        .bind(units)
        .bind(usage)
        .fetch_one(pool)
        .await
        .expect("building");
        buildings.push(id);
    }
    Town {
        county,
        community,
        ga: grids[0],
        gb: grids[1],
        b3: buildings[0],
        b2: buildings[1],
        shop: buildings[2],
        b4: buildings[3],
        worker_a: login(pool, "round-worker-a", Role::GridWorker, &["GA".to_string()]).await,
        worker_b: login(pool, "round-worker-b", Role::GridWorker, &["GB".to_string()]).await,
        planner: login(pool, "round-planner", Role::Planner, &[]).await,
        admin: login(pool, "round-admin", Role::Admin, &[]).await,
        rider: login(pool, "round-rider", Role::Rider, &[]).await,
    }
}

pub async fn call(pool: &PgPool, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    call_keyed(pool, method, uri, token, None, body).await
}

pub async fn call_keyed(
    pool: &PgPool,
    method: &str,
    uri: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    let request = match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    }
    .expect("request");
    send(pool, request).await
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

async fn open(pool: &PgPool, token: &str, scope: &str, target: i64) -> Reply {
    call(
        pool,
        "POST",
        "/api/rounds",
        Some(token),
        Some(json!({"scope": scope, "target_id": target, "name": "2025年第一轮敲门行动",
                    "starts_on": "2025-01-01", "ends_on": "2025-12-31"})),
    )
    .await
}

async fn visit(pool: &PgPool, token: &str, round: i64, key: &str, body: Value) -> Reply {
    call_keyed(pool, "POST", &format!("/api/rounds/{round}/visits"), Some(token), Some(key), Some(body)).await
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_planner_opens_a_community_round_covering_its_grids_with_household_counts(pool: PgPool) {
    let t = town(&pool).await;
    let reply = open(&pool, &t.planner, "community", t.community).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let round = reply.json();
    assert_eq!(round["status"], "running");
    assert!(reply.headers[header::LOCATION].to_str().expect("ascii").starts_with("/api/rounds/"));
    let id = round["id"].as_i64().expect("id");
    let detail = call(&pool, "GET", &format!("/api/rounds/{id}"), Some(&t.planner), None).await.json();
    // The shop has no households: not knocked on.
    assert_eq!(detail["progress"]["buildings"], 3);
    assert_eq!(detail["progress"]["households"], 9);
    assert_eq!(detail["progress"]["buildings_done"], 0);
    let grids = detail["grids"].as_array().expect("grids");
    assert_eq!(grids.len(), 2);
    assert_eq!(grids[0]["code"], "GA");
    assert_eq!(grids[0]["households"], 5);
    assert_eq!(grids[0]["community"], "测试社区");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_grid_worker_opens_a_round_for_their_own_grid_only(pool: PgPool) {
    let t = town(&pool).await;
    let own = open(&pool, &t.worker_a, "grid", t.ga).await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", text(&own));
    let other = open(&pool, &t.worker_a, "grid", t.gb).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", text(&other));
    let community = open(&pool, &t.worker_a, "community", t.community).await;
    assert_eq!(community.status, StatusCode::FORBIDDEN, "{}", text(&community));
    let rider = open(&pool, &t.rider, "grid", t.ga).await;
    assert_eq!(rider.status, StatusCode::FORBIDDEN);
    let anonymous = call(&pool, "POST", "/api/rounds", None, Some(json!({}))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(count(&pool, "door_round").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_round_overlapping_a_running_round_is_refused_with_409_naming_it(pool: PgPool) {
    let t = town(&pool).await;
    let first = open(&pool, &t.worker_a, "grid", t.ga).await.json();
    let county = open(&pool, &t.planner, "county", t.county).await;
    assert_eq!(county.status, StatusCode::CONFLICT, "{}", text(&county));
    assert_eq!(county.json()["reason"], "round_overlap");
    assert!(county.json()["message"].as_str().expect("message").contains(&format!("round {}", first["id"])));
    // The other grid alone does not overlap.
    assert_eq!(open(&pool, &t.planner, "grid", t.gb).await.status, StatusCode::CREATED);
    assert_eq!(count(&pool, "door_round").await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_round_bodies_get_field_errors_and_store_nothing(pool: PgPool) {
    let t = town(&pool).await;
    let cases = [
        (
            json!({"scope": "street", "target_id": t.ga, "name": "x", "starts_on": "2025-01-01", "ends_on": "2025-02-01"}),
            400,
            "scope",
        ),
        (
            json!({"scope": "grid", "target_id": t.ga, "name": " ", "starts_on": "2025-01-01", "ends_on": "2025-02-01"}),
            400,
            "name",
        ),
        (
            json!({"scope": "grid", "target_id": t.ga, "name": "x", "starts_on": "2025-03-01", "ends_on": "2025-02-01"}),
            400,
            "ends_on",
        ),
        (
            json!({"scope": "grid", "target_id": t.ga, "name": "x", "starts_on": "2025-01-01", "ends_on": "2027-01-01"}),
            400,
            "ends_on",
        ),
        (
            json!({"scope": "grid", "target_id": 999_999, "name": "x", "starts_on": "2025-01-01", "ends_on": "2025-02-01"}),
            422,
            "target_id",
        ),
    ];
    for (body, status, field) in cases {
        let reply = call(&pool, "POST", "/api/rounds", Some(&t.planner), Some(body.clone())).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", text(&reply));
        assert!(text(&reply).contains(field), "{body}: {}", text(&reply));
    }
    let unknown = call(
        &pool,
        "POST",
        "/api/rounds",
        Some(&t.planner),
        Some(json!({"scope": "grid", "target_id": t.ga, "name": "x", "starts_on": "2025-01-01", "ends_on": "2025-02-01", "extra": 1})),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(count(&pool, "door_round").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_grid_without_households_cannot_get_a_round(pool: PgPool) {
    let t = town(&pool).await;
    sqlx::query("update building set households = 0 where grid_id = $1")
        .bind(t.gb)
        .execute(&pool)
        .await
        .expect("empty");
    let reply = open(&pool, &t.planner, "grid", t.gb).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&reply));
    assert_eq!(count(&pool, "door_round").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_visit_resent_with_its_key_gets_the_same_answer_and_no_second_row(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.planner, "community", t.community).await.json()["id"].as_i64().expect("id");
    let k = key();
    let body = json!({"building_id": t.b3, "households": 2, "outcome": "at_home", "unit": 1,
                      "visited_at": "2025-03-01T02:00:00Z", "note": "二单元张大爷腿脚不便"});
    let first = visit(&pool, &t.worker_a, round, &k, body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", text(&first));
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(first.json()["building_settled"], 2);
    assert_eq!(first.json()["building_done"], false);
    let again = visit(&pool, &t.worker_a, round, &k, body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.json(), first.json());
    assert_eq!(count(&pool, "door_visit").await, 1);
    // The same key with another payload is a conflict.
    let mut other = body;
    other["households"] = json!(1);
    let clash = visit(&pool, &t.worker_a, round, &k, other).await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert_eq!(clash.json()["reason"], "key_reused");
    assert_eq!(count(&pool, "door_visit").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_visits_are_refused_naming_the_field_and_store_nothing(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.worker_a, "grid", t.ga).await.json()["id"].as_i64().expect("id");
    let ok = json!({"building_id": t.b3, "households": 1, "outcome": "at_home"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("outcome", json!("maybe")), 400, "outcome"),
        (with("households", json!(0)), 400, "households"),
        (with("households", json!(4)), 400, "households"),
        (with("unit", json!(3)), 400, "unit"),
        (with("visited_at", json!("2099-01-01T00:00:00Z")), 400, "visited_at"),
        (with("visited_at", json!("2024-12-01T00:00:00Z")), 400, "visited_at"),
        (with("note", json!("长".repeat(501))), 400, "note"),
        (with("building_id", json!(t.shop)), 422, "building_id"),
        (with("building_id", json!(999_999)), 422, "building_id"),
    ];
    for (body, status, field) in cases {
        let reply = visit(&pool, &t.worker_a, round, &key(), body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", text(&reply));
        assert!(text(&reply).contains(field), "{body}: {}", text(&reply));
    }
    let no_key = call(&pool, "POST", &format!("/api/rounds/{round}/visits"), Some(&t.worker_a), Some(ok.clone())).await;
    assert_eq!(no_key.status, StatusCode::BAD_REQUEST);
    assert!(text(&no_key).contains("Idempotency-Key"));
    let missing = visit(&pool, &t.worker_a, 999_999, &key(), ok.clone()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(count(&pool, "door_visit").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn only_workers_of_the_buildings_grid_record_visits(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.planner, "community", t.community).await.json()["id"].as_i64().expect("id");
    let body = json!({"building_id": t.b4, "households": 1, "outcome": "not_home"});
    let a = visit(&pool, &t.worker_a, round, &key(), body.clone()).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", text(&a));
    let planner = visit(&pool, &t.planner, round, &key(), body.clone()).await;
    assert_eq!(planner.status, StatusCode::FORBIDDEN);
    let rider = visit(&pool, &t.rider, round, &key(), body.clone()).await;
    assert_eq!(rider.status, StatusCode::FORBIDDEN);
    let b = visit(&pool, &t.worker_b, round, &key(), body).await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", text(&b));
    assert_eq!(count(&pool, "door_visit").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_building_outside_the_rounds_grids_is_refused(pool: PgPool) {
    let t = town(&pool).await;
    let round_a = open(&pool, &t.worker_a, "grid", t.ga).await.json()["id"].as_i64().expect("id");
    // worker_a works GB too, but the round covers GA only.
    sqlx::query(
        "insert into grid_assignment (account_id, grid_id) select id, $1 from account where name = 'round-worker-a'",
    )
    .bind(t.gb)
    .execute(&pool)
    .await
    .expect("assign");
    let reply =
        visit(&pool, &t.worker_a, round_a, &key(), json!({"building_id": t.b4, "households": 1, "outcome": "refused"}))
            .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&reply));
    assert!(text(&reply).contains("not in the grids of round"));
    // worker_b reaches no grid of the round at all.
    let b =
        visit(&pool, &t.worker_b, round_a, &key(), json!({"building_id": t.b4, "households": 1, "outcome": "refused"}))
            .await;
    assert_eq!(b.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&pool, "door_visit").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn closing_an_incomplete_round_is_409_naming_the_missing_buildings_and_households(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.planner, "community", t.community).await.json()["id"].as_i64().expect("id");
    visit(&pool, &t.worker_a, round, &key(), json!({"building_id": t.b3, "households": 3, "outcome": "at_home"})).await;
    let reply = call(&pool, "POST", &format!("/api/rounds/{round}/close"), Some(&t.planner), None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", text(&reply));
    let body = reply.json();
    assert_eq!(body["reason"], "round_incomplete");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("2 buildings in 2 grids still have 6 households"), "{message}");
    assert!(message.contains(&format!("GA building {}: 2", t.b2)), "{message}");
    assert!(message.contains(&format!("GB building {}: 4", t.b4)), "{message}");
    assert!(!message.contains(&format!("building {}:", t.b3)), "{message}");
    let round_now = call(&pool, "GET", &format!("/api/rounds/{round}"), Some(&t.planner), None).await.json();
    assert_eq!(round_now["status"], "running");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_round_closes_once_every_household_is_recorded_in_any_outcome(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.planner, "community", t.community).await.json()["id"].as_i64().expect("id");
    for (token, building, households, outcome) in [
        (&t.worker_a, t.b3, 1, "at_home"),
        (&t.worker_a, t.b3, 2, "not_home"),
        (&t.worker_a, t.b2, 2, "refused"),
        (&t.worker_b, t.b4, 4, "at_home"),
    ] {
        let reply = visit(
            &pool,
            token,
            round,
            &key(),
            json!({"building_id": building, "households": households, "outcome": outcome}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    }
    let progress = call(&pool, "GET", &format!("/api/rounds/{round}"), Some(&t.worker_a), None).await.json();
    assert_eq!(progress["progress"]["buildings_done"], 3);
    assert_eq!(progress["progress"]["households_settled"], 9);
    assert_eq!(progress["progress"]["households_at_home"], 5);
    // A grid worker may not close a community round.
    let worker = call(&pool, "POST", &format!("/api/rounds/{round}/close"), Some(&t.worker_a), None).await;
    assert_eq!(worker.status, StatusCode::FORBIDDEN);
    let closed = call(&pool, "POST", &format!("/api/rounds/{round}/close"), Some(&t.planner), None).await;
    assert_eq!(closed.status, StatusCode::OK, "{}", text(&closed));
    assert_eq!(closed.json()["status"], "closed");
    let again = call(&pool, "POST", &format!("/api/rounds/{round}/close"), Some(&t.planner), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["reason"], "round_closed");
    // A new visit to a closed round is refused; nothing stored.
    let late =
        visit(&pool, &t.worker_a, round, &key(), json!({"building_id": t.b3, "households": 1, "outcome": "at_home"}))
            .await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.json()["reason"], "round_closed");
    assert_eq!(count(&pool, "door_visit").await, 4);
    // The grids are free for the next round.
    assert_eq!(open(&pool, &t.planner, "county", t.county).await.status, StatusCode::CREATED);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_resend_after_the_round_closed_still_gets_its_stored_answer(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.worker_a, "grid", t.ga).await.json()["id"].as_i64().expect("id");
    let k = key();
    let body = json!({"building_id": t.b3, "households": 3, "outcome": "at_home"});
    let first = visit(&pool, &t.worker_a, round, &k, body.clone()).await;
    visit(&pool, &t.worker_a, round, &key(), json!({"building_id": t.b2, "households": 2, "outcome": "at_home"})).await;
    let closed = call(&pool, "POST", &format!("/api/rounds/{round}/close"), Some(&t.worker_a), None).await;
    assert_eq!(closed.status, StatusCode::OK, "a worker closes the round of their own grid: {}", text(&closed));
    let again = visit(&pool, &t.worker_a, round, &k, body).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(count(&pool, "door_visit").await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn coverage_lists_visited_and_unvisited_buildings_for_the_worker_and_planner(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.planner, "community", t.community).await.json()["id"].as_i64().expect("id");
    visit(&pool, &t.worker_a, round, &key(), json!({"building_id": t.b2, "households": 2, "outcome": "at_home"})).await;
    let mine = call(&pool, "GET", &format!("/api/rounds/{round}/buildings"), Some(&t.worker_a), None).await;
    assert_eq!(mine.status, StatusCode::OK);
    let mine = mine.json();
    let ids: Vec<i64> = mine.as_array().expect("list").iter().map(|b| b["building_id"].as_i64().expect("id")).collect();
    // Not done first; the worker sees their own grid's buildings only.
    assert_eq!(ids, [t.b3, t.b2]);
    assert_eq!(mine[1]["done"], true);
    assert!(mine[0]["lon"].as_f64().is_some());
    let all = call(&pool, "GET", &format!("/api/rounds/{round}/buildings"), Some(&t.planner), None).await.json();
    assert_eq!(all.as_array().expect("list").len(), 3);
    let other =
        call(&pool, "GET", &format!("/api/rounds/{round}/buildings?grid={}", t.gb), Some(&t.worker_a), None).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let listed =
        call(&pool, "GET", &format!("/api/rounds?status=running&grid={}", t.ga), Some(&t.worker_a), None).await;
    assert_eq!(listed.json().as_array().expect("list").len(), 1);
    let bad = call(&pool, "GET", "/api/rounds?status=open", Some(&t.worker_a), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_round_of_another_grid_is_403_and_a_missing_one_404(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.worker_b, "grid", t.gb).await.json()["id"].as_i64().expect("id");
    for uri in [
        format!("/api/rounds/{round}"),
        format!("/api/rounds/{round}/visits"),
        format!("/api/rounds/{round}/buildings"),
    ] {
        assert_eq!(call(&pool, "GET", &uri, Some(&t.worker_a), None).await.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(call(&pool, "GET", &uri, Some(&t.rider), None).await.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(call(&pool, "GET", &uri, None, None).await.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    assert_eq!(call(&pool, "GET", "/api/rounds/424242", Some(&t.planner), None).await.status, StatusCode::NOT_FOUND);
    assert!(
        call(&pool, "GET", "/api/rounds", Some(&t.worker_a), None).await.json().as_array().expect("list").is_empty()
    );
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn visits_show_who_visited_to_the_grids_workers_and_planners_only(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.planner, "community", t.community).await.json()["id"].as_i64().expect("id");
    visit(
        &pool,
        &t.worker_a,
        round,
        &key(),
        json!({"building_id": t.b3, "households": 1, "outcome": "at_home", "note": "独居老人"}),
    )
    .await;
    let own = call(&pool, "GET", &format!("/api/rounds/{round}/visits"), Some(&t.worker_a), None).await.json();
    assert_eq!(own[0]["visitor"], "round-worker-a");
    assert_eq!(own[0]["note"], "独居老人");
    let planner = call(&pool, "GET", &format!("/api/rounds/{round}/visits"), Some(&t.planner), None).await.json();
    assert_eq!(planner.as_array().expect("list").len(), 1);
    // worker_b reaches the community round through GB, but sees GB's visits only.
    let other = call(&pool, "GET", &format!("/api/rounds/{round}/visits"), Some(&t.worker_b), None).await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(other.json().as_array().expect("list").is_empty());
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_visit_changes_the_coverage_tile_of_its_grid(pool: PgPool) {
    let t = town(&pool).await;
    let round = open(&pool, &t.worker_a, "grid", t.ga).await.json()["id"].as_i64().expect("id");
    let state = gridmap_server::http::AppState::new(pool.clone());
    // z14 tile over GA (118.17, 36.18).
    let uri = "/tiles/coverage/14/13570/6423.mvt";
    let get = |uri: &'static str| {
        let state = state.clone();
        async move { crate::common::send_to(&state, Request::get(uri).body(Body::empty()).expect("request")).await }
    };
    let before = get(uri).await;
    assert_eq!(before.status, StatusCode::OK, "{}", text(&before));
    let reply =
        visit(&pool, &t.worker_a, round, &key(), json!({"building_id": t.b3, "households": 3, "outcome": "at_home"}))
            .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    // Through the same state the visit's effect reaches the cache (changes.rs).
    let req = Request::post(format!("/api/rounds/{round}/visits"))
        .header(header::AUTHORIZATION, format!("Bearer {}", t.worker_a))
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key())
        .body(Body::from(json!({"building_id": t.b2, "households": 2, "outcome": "at_home"}).to_string()))
        .expect("request");
    assert_eq!(crate::common::send_to(&state, req).await.status, StatusCode::CREATED);
    let after = get(uri).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_ne!(before.body, after.body, "the coverage tile changed");
    let text_after = String::from_utf8_lossy(&after.body);
    assert!(text_after.contains("coverage") && text_after.contains("done"), "coverage layer with progress_class");
    assert!(!text_after.contains("round-worker-a"), "counts only");
}

// ---------------------------------------------------------------------------------------------
// The sentiment log

async fn entry(pool: &PgPool, token: &str, body: Value) -> Reply {
    call(pool, "POST", "/api/sentiment", Some(token), Some(body)).await
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_worker_logs_an_entry_for_a_building_of_their_grid_and_reads_it_back(pool: PgPool) {
    let t = town(&pool).await;
    let reply = entry(
        &pool,
        &t.worker_a,
        json!({"building_id": t.b3, "body": "邻里噪音纠纷", "tags": ["dispute", "dispute"],
                                                   "entry_date": "2025-03-01"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let e = reply.json();
    assert_eq!(e["grid_id"], t.ga);
    assert_eq!(e["tags"], json!(["dispute"]));
    assert_eq!(e["author"], "round-worker-a");
    let list = call(&pool, "GET", &format!("/api/sentiment?grid={}", t.ga), Some(&t.worker_a), None).await.json();
    assert_eq!(list.as_array().expect("list").len(), 1);
    let planner = call(&pool, "GET", "/api/sentiment", Some(&t.planner), None).await.json();
    assert_eq!(planner.as_array().expect("list").len(), 1);
    let admin = call(&pool, "GET", &format!("/api/sentiment?building={}", t.b3), Some(&t.admin), None).await.json();
    assert_eq!(admin.as_array().expect("list").len(), 1);
    let tags = call(&pool, "GET", "/api/sentiment/tags", Some(&t.worker_a), None).await.json();
    assert!(tags.as_array().expect("tags").iter().any(|t| t["name_zh"] == "重点人群关怀"));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_sentiment_log_is_private_to_the_grids_workers_planners_and_admins(pool: PgPool) {
    let t = town(&pool).await;
    entry(&pool, &t.worker_a, json!({"grid_id": t.ga, "body": "低保政策咨询", "tags": ["policy"]})).await;
    let other = call(&pool, "GET", "/api/sentiment", Some(&t.worker_b), None).await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(other.json().as_array().expect("list").is_empty(), "another grid's worker sees none");
    let asked = call(&pool, "GET", &format!("/api/sentiment?grid={}", t.ga), Some(&t.worker_b), None).await;
    assert_eq!(asked.status, StatusCode::FORBIDDEN);
    assert_eq!(call(&pool, "GET", "/api/sentiment", Some(&t.rider), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(call(&pool, "GET", "/api/sentiment", None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&pool, "GET", "/api/sentiment/tags", None, None).await.status, StatusCode::UNAUTHORIZED);
    let write = entry(&pool, &t.worker_b, json!({"grid_id": t.ga, "body": "x"})).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&pool, "sentiment_entry").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_sentiment_entries_are_refused_naming_the_field_and_store_nothing(pool: PgPool) {
    let t = town(&pool).await;
    let cases = [
        (json!({"grid_id": t.ga, "body": "  "}), 400, "body"),
        (json!({"grid_id": t.ga, "body": "长".repeat(2001)}), 400, "body"),
        (json!({"grid_id": t.ga, "body": "x", "tags": ["gossip"]}), 400, "tags[0]"),
        (json!({"grid_id": t.ga, "body": "x", "entry_date": "2999-01-01"}), 400, "entry_date"),
        (json!({"body": "x"}), 400, "grid_id"),
        (json!({"grid_id": t.gb, "building_id": t.b3, "body": "x"}), 400, "grid_id"),
        (json!({"grid_id": 999_999, "body": "x"}), 422, "grid_id"),
        (json!({"building_id": 999_999, "body": "x"}), 422, "building_id"),
        (json!({"grid_id": t.ga, "body": "x", "mood": "sad"}), 400, "mood"),
    ];
    for (body, status, field) in cases {
        let reply = entry(&pool, &t.worker_a, body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", text(&reply));
        assert!(text(&reply).contains(field), "{body}: {}", text(&reply));
    }
    assert_eq!(count(&pool, "sentiment_entry").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_entry_turns_into_a_report_at_its_building_once_linked_both_ways(pool: PgPool) {
    let t = town(&pool).await;
    let e = entry(
        &pool,
        &t.worker_a,
        json!({"building_id": t.b3, "body": "楼道堆放杂物，SENTINELPRIVATE", "tags": ["environment"]}),
    )
    .await
    .json();
    let id = e["id"].as_i64().expect("id");
    let reply = call(
        &pool,
        "POST",
        &format!("/api/sentiment/{id}/report"),
        Some(&t.worker_a),
        Some(json!({"description": "楼道杂物"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let body = reply.json();
    let report_id = body["report"]["id"].as_i64().expect("report id");
    assert_eq!(body["entry"]["report_id"], report_id);
    // Category from the tag, location at the building's point, in its grid.
    assert_eq!(body["report"]["category"], "exposed_garbage");
    assert_eq!(body["report"]["grid_id"], t.ga);
    let (lon, lat): (f64, f64) = sqlx::query_as("select ST_X(anchor), ST_Y(anchor) from building where id = $1")
        .bind(t.b3)
        .fetch_one(&pool)
        .await
        .expect("anchor");
    assert!((body["report"]["location"]["lon"].as_f64().expect("lon") - lon).abs() < 1e-9);
    assert!((body["report"]["location"]["lat"].as_f64().expect("lat") - lat).abs() < 1e-9);
    // The private text is not copied into the (public) report.
    let public = crate::common::get(&pool, &format!("/api/reports/{report_id}")).await;
    assert!(!text(&public).contains("SENTINELPRIVATE"));
    // From the report back to the entry.
    let back = call(&pool, "GET", &format!("/api/sentiment?report={report_id}"), Some(&t.worker_a), None).await.json();
    assert_eq!(back[0]["id"], id);
    // Once only.
    let again = call(&pool, "POST", &format!("/api/sentiment/{id}/report"), Some(&t.worker_a), Some(json!({}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["reason"], "already_reported");
    assert_eq!(count(&pool, "report").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_entry_without_a_suggesting_tag_needs_a_category_and_lands_on_its_grid(pool: PgPool) {
    let t = town(&pool).await;
    let id = entry(&pool, &t.worker_b, json!({"grid_id": t.gb, "body": "邻里矛盾", "tags": ["dispute"]})).await.json()
        ["id"]
        .as_i64()
        .expect("id");
    let none = call(&pool, "POST", &format!("/api/sentiment/{id}/report"), Some(&t.worker_b), Some(json!({}))).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert_eq!(none.json()["field"], "category");
    let bad = call(
        &pool,
        "POST",
        &format!("/api/sentiment/{id}/report"),
        Some(&t.worker_b),
        Some(json!({"category": "nonsense"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let other = call(
        &pool,
        "POST",
        &format!("/api/sentiment/{id}/report"),
        Some(&t.worker_a),
        Some(json!({"category": "illegal_parking"})),
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&pool, "report").await, 0);
    let ok = call(
        &pool,
        "POST",
        &format!("/api/sentiment/{id}/report"),
        Some(&t.planner),
        Some(json!({"category": "illegal_parking"})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", text(&ok));
    assert_eq!(ok.json()["report"]["grid_id"], t.gb);
    let missing = call(&pool, "POST", "/api/sentiment/999999/report", Some(&t.planner), Some(json!({}))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
