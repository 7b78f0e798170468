//! Red building leaders (红色楼长, 一楼一长, 一年一聘): assigning, renewing, replacing and ending
//! terms and every refusal; the public sign; the coverage counts and tile layers; a leader's
//! own login; and the demo seed's leaders.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{Reply, send};
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;
use gridmap_server::seed;

async fn login(pool: &PgPool, name: &str, role: Role, grid_codes: &[String]) -> String {
    let password = format!("{name}-leaders-test");
    upsert(pool, &NewAccount { name, role, password: &password, part_time_grid_worker: false, grid_codes })
        .await
        .expect("account");
    gridmap_server::auth::login(pool, name, &password).await.expect("login").expect("valid").token
}

async fn call(
    pool: &PgPool,
    method: &str,
    uri: &str,
    token: Option<&str>,
    if_match: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(m) = if_match {
        r = r.header(header::IF_MATCH, m);
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

/// The demo city, a planner's login, and a building with households whose seeded leaders are
/// removed (so it has none), with its grid's code.
async fn setup(pool: &PgPool) -> (String, i64, String) {
    seed::seed_demo(pool, 1).await.expect("seed");
    let planner = login(pool, "leaders-planner", Role::Planner, &[]).await;
    let (building, code): (i64, String) = sqlx::query_as(
        r"select b.id, g.code from building b join grid g on g.id = b.grid_id
           where b.households > 0 and b.units >= 2 order by b.id limit 1",
    )
    .fetch_one(pool)
    .await
    .expect("a building with units");
    sqlx::query("delete from building_leader where building_id = $1")
        .bind(building)
        .execute(pool)
        .await
        .expect("clear");
    (planner, building, code)
}

async fn today(pool: &PgPool) -> chrono::NaiveDate {
    sqlx::query_scalar("select gridmap_county_today()").fetch_one(pool).await.expect("today")
}

async fn terms(pool: &PgPool, building: i64) -> i64 {
    sqlx::query_scalar("select count(*) from building_leader where building_id = $1")
        .bind(building)
        .fetch_one(pool)
        .await
        .expect("count")
}

fn leader(name: &str) -> Value {
    json!({"name": name, "public_phone": "0533-3100000", "phone": "13900000001", "chosen_by": "residents"})
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_planner_assigns_a_leader_for_a_year_and_the_sign_shows_only_the_public_name_and_number(pool: PgPool) {
    let (planner, building, _) = setup(&pool).await;
    let sign = call(&pool, "GET", &format!("/api/buildings/{building}/leader-sign"), None, None, None).await;
    assert_eq!(sign.status, StatusCode::OK);
    assert_eq!(sign.json()["state"], "none");
    assert_eq!(sign.json()["leaders"], json!([]));

    let reply = call(
        &pool,
        "POST",
        &format!("/api/buildings/{building}/leaders"),
        Some(&planner),
        None,
        Some(leader("王红梅")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let term = reply.json();
    let today = today(&pool).await;
    assert_eq!(term["term_start"], today.to_string());
    assert_eq!(term["term_end"], gridmap_server::leaders::year_end(today).to_string());
    assert_eq!(term["state"], "current");
    assert_eq!(term["phone"], "13900000001", "the people who manage leaders see the private number");
    assert_eq!(reply.headers[header::LOCATION], format!("/api/leaders/{}", term["id"]));
    assert_eq!(reply.headers[header::ETAG], "\"1\"");

    let sign = call(&pool, "GET", &format!("/api/buildings/{building}/leader-sign"), None, None, None).await;
    let sign = sign.json();
    assert_eq!(sign["state"], "current");
    assert_eq!(
        sign["leaders"][0],
        json!({"unit": null, "name": "王红梅", "public_phone": "0533-3100000", "chosen_by": "residents",
               "term_start": today.to_string(), "term_end": term["term_end"]})
    );
    assert!(!sign.to_string().contains("13900000001"), "the private number never reaches the sign");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_second_leader_for_the_same_building_and_time_is_refused_with_409_but_units_have_their_own(pool: PgPool) {
    let (planner, building, _) = setup(&pool).await;
    let uri = format!("/api/buildings/{building}/leaders");
    let first = call(&pool, "POST", &uri, Some(&planner), None, Some(leader("甲"))).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", text(&first));
    let second = call(&pool, "POST", &uri, Some(&planner), None, Some(leader("乙"))).await;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", text(&second));
    assert!(text(&second).contains("renew or replace"), "{}", text(&second));
    let mut unit = leader("单元长一");
    unit["unit"] = json!(1);
    let one = call(&pool, "POST", &uri, Some(&planner), None, Some(unit.clone())).await;
    assert_eq!(one.status, StatusCode::CREATED, "{}", text(&one));
    let again = call(&pool, "POST", &uri, Some(&planner), None, Some(unit)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", text(&again));
    assert_eq!(terms(&pool, building).await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_leader_fields_are_refused_by_name_and_nothing_is_stored(pool: PgPool) {
    let (planner, building, _) = setup(&pool).await;
    let today = today(&pool).await;
    let rider = login(&pool, "leaders-rider", Role::Rider, &[]).await;
    let rider_id: i64 = sqlx::query_scalar("select id from account where name = 'leaders-rider'")
        .fetch_one(&pool)
        .await
        .expect("rider id");
    let units: i32 = sqlx::query_scalar("select units from building where id = $1")
        .bind(building)
        .fetch_one(&pool)
        .await
        .expect("units");
    let _ = rider;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": " ", "chosen_by": "self"}), "name"),
        (json!({"name": "x".repeat(65), "chosen_by": "self"}), "name"),
        (json!({"name": "甲", "public_phone": "call me", "chosen_by": "self"}), "public_phone"),
        (json!({"name": "甲", "phone": "12", "chosen_by": "self"}), "phone"),
        (json!({"name": "甲", "unit": 0, "chosen_by": "self"}), "unit"),
        (json!({"name": "甲", "unit": units + 1, "chosen_by": "self"}), "unit"),
        (json!({"name": "甲", "account_id": rider_id, "chosen_by": "self"}), "account_id"),
        (json!({"name": "甲", "account_id": 999_999_999, "chosen_by": "self"}), "account_id"),
        (json!({"name": "甲", "chosen_by": "self", "term_start": today.pred_opt().expect("yesterday")}), "term_start"),
        (
            json!({"name": "甲", "chosen_by": "self",
                   "term_end": gridmap_server::leaders::year_end(today).succ_opt().expect("day")}),
            "term_end",
        ),
        (json!({"name": "甲", "chosen_by": "self", "term_end": today.pred_opt().expect("yesterday")}), "term_end"),
    ];
    for (body, field) in cases {
        let reply = call(
            &pool,
            "POST",
            &format!("/api/buildings/{building}/leaders"),
            Some(&planner),
            None,
            Some(body.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", text(&reply));
        assert_eq!(reply.json()["field"], field, "{body}: {}", text(&reply));
    }
    for body in [
        json!({"name": "甲", "chosen_by": "lottery"}),
        json!({"name": "甲", "chosen_by": "self", "private_note": "x"}),
        json!({"name": "甲", "chosen_by": "self", "term_start": "2025-13-01"}),
        json!({"chosen_by": "self"}),
    ] {
        let reply = call(
            &pool,
            "POST",
            &format!("/api/buildings/{building}/leaders"),
            Some(&planner),
            None,
            Some(body.clone()),
        )
        .await;
        assert!(reply.status.is_client_error(), "{body}: {}", text(&reply));
        assert!(reply.json()["code"].is_string(), "{body}: a JSON error");
    }
    let missing =
        call(&pool, "POST", "/api/buildings/999999999/leaders", Some(&planner), None, Some(leader("甲"))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", text(&missing));
    let bad_id = call(&pool, "POST", "/api/buildings/abc/leaders", Some(&planner), None, Some(leader("甲"))).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST, "{}", text(&bad_id));
    assert_eq!(terms(&pool, building).await, 0, "nothing was stored");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn only_planners_and_admins_assign_renew_replace_and_end_leaders(pool: PgPool) {
    let (planner, building, code) = setup(&pool).await;
    let worker = login(&pool, "leaders-worker", Role::GridWorker, &[code]).await;
    let rider = login(&pool, "leaders-rider", Role::Rider, &[]).await;
    let uri = format!("/api/buildings/{building}/leaders");
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(&rider), StatusCode::FORBIDDEN),
        (Some(&worker), StatusCode::FORBIDDEN),
    ] {
        let reply = call(&pool, "POST", &uri, token.map(String::as_str), None, Some(leader("甲"))).await;
        assert_eq!(reply.status, status, "{}", text(&reply));
    }
    let term = call(&pool, "POST", &uri, Some(&planner), None, Some(leader("甲"))).await.json();
    let id = term["id"].as_i64().expect("id");
    for action in ["renew", "replace", "end"] {
        let body = if action == "replace" { leader("乙") } else { json!({}) };
        let reply =
            call(&pool, "POST", &format!("/api/leaders/{id}/{action}"), Some(&worker), Some("\"1\""), Some(body)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{action}: {}", text(&reply));
    }
    assert_eq!(terms(&pool, building).await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn renewing_needs_the_terms_etag_and_starts_the_next_term_the_day_after_it_ends(pool: PgPool) {
    let (planner, building, _) = setup(&pool).await;
    let term =
        call(&pool, "POST", &format!("/api/buildings/{building}/leaders"), Some(&planner), None, Some(leader("甲")))
            .await
            .json();
    let id = term["id"].as_i64().expect("id");
    let renew = format!("/api/leaders/{id}/renew");
    let missing = call(&pool, "POST", &renew, Some(&planner), None, Some(json!({}))).await;
    assert_eq!(missing.status, StatusCode::PRECONDITION_REQUIRED, "{}", text(&missing));
    let stale = call(&pool, "POST", &renew, Some(&planner), Some("\"7\""), Some(json!({}))).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED, "{}", text(&stale));
    let long =
        call(&pool, "POST", &renew, Some(&planner), Some("\"1\""), Some(json!({"term_end": "2999-01-01"}))).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST, "{}", text(&long));
    assert_eq!(long.json()["field"], "term_end");

    let reply =
        call(&pool, "POST", &renew, Some(&planner), Some("\"1\""), Some(json!({"chosen_by": "organisation"}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let next = reply.json();
    let end: chrono::NaiveDate = term["term_end"].as_str().expect("end").parse().expect("date");
    let start = end.succ_opt().expect("next day");
    assert_eq!(next["term_start"], start.to_string());
    assert_eq!(next["term_end"], gridmap_server::leaders::year_end(start).to_string());
    assert_eq!(
        (next["name"].clone(), next["renews"].clone(), next["chosen_by"].clone()),
        (json!("甲"), json!(id), json!("organisation"))
    );
    assert_eq!(next["state"], "upcoming");

    // The old ETag is spent, and the term cannot be renewed twice.
    let again = call(&pool, "POST", &renew, Some(&planner), Some("\"1\""), Some(json!({}))).await;
    assert_eq!(again.status, StatusCode::PRECONDITION_FAILED, "{}", text(&again));
    let twice = call(&pool, "POST", &renew, Some(&planner), Some("\"2\""), Some(json!({}))).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", text(&twice));
    assert_eq!(terms(&pool, building).await, 2);
    // Still current today: the running term.
    let sign = call(&pool, "GET", &format!("/api/buildings/{building}/leader-sign"), None, None, None).await.json();
    assert_eq!(sign["state"], "current");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_expired_term_is_a_gap_until_it_is_renewed_from_today(pool: PgPool) {
    let (planner, building, _) = setup(&pool).await;
    let id: i64 = sqlx::query_scalar(
        r"insert into building_leader (building_id, name, chosen_by, term_start, term_end)
          values ($1, '旧楼长', 'self', gridmap_county_today() - 400, gridmap_county_today() - 40) returning id",
    )
    .bind(building)
    .fetch_one(&pool)
    .await
    .expect("old term");
    let sign = call(&pool, "GET", &format!("/api/buildings/{building}/leader-sign"), None, None, None).await.json();
    assert_eq!((sign["state"].clone(), sign["leaders"].clone()), (json!("expired"), json!([])));
    let reply =
        call(&pool, "POST", &format!("/api/leaders/{id}/renew"), Some(&planner), Some("\"1\""), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    assert_eq!(reply.json()["term_start"], today(&pool).await.to_string());
    let sign = call(&pool, "GET", &format!("/api/buildings/{building}/leader-sign"), None, None, None).await.json();
    assert_eq!(sign["state"], "current");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn replacing_a_leader_ends_their_term_and_any_renewal_and_starts_the_successor_today(pool: PgPool) {
    let (planner, building, _) = setup(&pool).await;
    let term =
        call(&pool, "POST", &format!("/api/buildings/{building}/leaders"), Some(&planner), None, Some(leader("甲")))
            .await
            .json();
    let id = term["id"].as_i64().expect("id");
    let renewed =
        call(&pool, "POST", &format!("/api/leaders/{id}/renew"), Some(&planner), Some("\"1\""), Some(json!({}))).await;
    assert_eq!(renewed.status, StatusCode::CREATED);
    let mut other_unit = leader("乙");
    other_unit["unit"] = json!(2);
    let reply =
        call(&pool, "POST", &format!("/api/leaders/{id}/replace"), Some(&planner), Some("\"2\""), Some(other_unit))
            .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "a successor leads the same building: {}", text(&reply));
    assert_eq!(reply.json()["field"], "unit");

    let reply =
        call(&pool, "POST", &format!("/api/leaders/{id}/replace"), Some(&planner), Some("\"2\""), Some(leader("乙")))
            .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    assert_eq!(reply.json()["term_start"], today(&pool).await.to_string());
    let all =
        call(&pool, "GET", &format!("/api/buildings/{building}/leaders"), Some(&planner), None, None).await.json();
    let states: Vec<(String, String, Option<String>)> = all["terms"]
        .as_array()
        .expect("terms")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().expect("n").to_string(),
                t["state"].as_str().expect("s").to_string(),
                t["end_reason"].as_str().map(String::from),
            )
        })
        .collect();
    assert_eq!(states.iter().filter(|s| s.1 == "ended" && s.2.as_deref() == Some("replaced")).count(), 2, "{states:?}");
    assert!(states.iter().any(|s| s.0 == "乙" && s.1 == "current"), "{states:?}");
    let sign = call(&pool, "GET", &format!("/api/buildings/{building}/leader-sign"), None, None, None).await.json();
    assert_eq!(sign["leaders"].as_array().expect("leaders").len(), 1);
    assert_eq!(sign["leaders"][0]["name"], "乙");
    // An ended term is ended: neither renewed nor replaced again.
    let ended =
        call(&pool, "POST", &format!("/api/leaders/{id}/replace"), Some(&planner), Some("\"3\""), Some(leader("丙")))
            .await;
    assert_eq!(ended.status, StatusCode::CONFLICT, "{}", text(&ended));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn ending_a_term_leaves_a_gap_in_the_coverage_of_its_grid_and_community(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let planner = login(&pool, "leaders-planner", Role::Planner, &[]).await;
    let before = call(&pool, "GET", "/api/leaders/coverage", None, None, None).await;
    assert_eq!(before.status, StatusCode::OK, "{}", text(&before));
    let before = before.json();
    let buildings = before["total"]["buildings"].as_i64().expect("buildings");
    let expired = before["total"]["expired"].as_i64().expect("expired");
    assert!(buildings > 1000, "{before}");
    assert_eq!(before["total"]["none"], 0, "every building with households has a leader");
    assert!((1..=buildings / 100).contains(&expired), "a deliberate handful of expired terms: {expired}");
    assert_eq!(before["total"]["led"].as_i64(), Some(buildings - expired));

    let (id, grid, community): (i64, i64, i64) = sqlx::query_as(
        r"select l.id, g.id, g.community_id from building_leader l join building b on b.id = l.building_id
            join grid g on g.id = b.grid_id
           where l.term_end >= gridmap_county_today() and l.unit is null order by l.id limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("a current term");
    let reply = call(&pool, "POST", &format!("/api/leaders/{id}/end"), Some(&planner), Some("\"1\""), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    assert_eq!((reply.json()["state"].clone(), reply.json()["end_reason"].clone()), (json!("ended"), json!("ended")));
    let after =
        call(&pool, "GET", &format!("/api/leaders/coverage?community_id={community}"), None, None, None).await.json();
    let of =
        |list: &Value, id: i64| list.as_array().expect("list").iter().find(|c| c["id"] == id).cloned().expect("listed");
    let before_grid = of(&before["grids"], grid);
    let after_grid = of(&after["grids"], grid);
    assert_eq!(after_grid["led"].as_i64(), before_grid["led"].as_i64().map(|n| n - 1));
    assert_eq!(after_grid["none"].as_i64(), before_grid["none"].as_i64().map(|n| n + 1));
    assert_eq!(after["communities"].as_array().expect("communities").len(), 1);
    assert_eq!(of(&after["communities"], community)["none"], 1);
    for bad in ["community_id=abc", "grid=1"] {
        let reply = call(&pool, "GET", &format!("/api/leaders/coverage?{bad}"), None, None, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", text(&reply));
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_buildings_terms_are_for_its_grids_workers_planners_and_admins_only(pool: PgPool) {
    let (planner, building, code) = setup(&pool).await;
    let own = login(&pool, "leaders-own-worker", Role::GridWorker, std::slice::from_ref(&code)).await;
    let other_code: String = sqlx::query_scalar("select code from grid where code <> $1 order by id limit 1")
        .bind(&code)
        .fetch_one(&pool)
        .await
        .expect("other grid");
    let other = login(&pool, "leaders-other-worker", Role::GridWorker, &[other_code]).await;
    let rider = login(&pool, "leaders-rider", Role::Rider, &[]).await;
    let id =
        call(&pool, "POST", &format!("/api/buildings/{building}/leaders"), Some(&planner), None, Some(leader("甲")))
            .await
            .json()["id"]
            .as_i64()
            .expect("id");
    for uri in [format!("/api/buildings/{building}/leaders"), format!("/api/leaders/{id}")] {
        assert_eq!(call(&pool, "GET", &uri, Some(&own), None, None).await.status, StatusCode::OK, "{uri}");
        assert_eq!(call(&pool, "GET", &uri, Some(&planner), None, None).await.status, StatusCode::OK, "{uri}");
        assert_eq!(call(&pool, "GET", &uri, Some(&other), None, None).await.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(call(&pool, "GET", &uri, Some(&rider), None, None).await.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(call(&pool, "GET", &uri, None, None, None).await.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let one = call(&pool, "GET", &format!("/api/leaders/{id}"), Some(&own), None, None).await;
    assert_eq!(one.headers[header::ETAG], "\"1\"");
    assert_eq!(one.json()["phone"], "13900000001");
    assert_eq!(
        call(&pool, "GET", "/api/leaders/999999999", Some(&planner), None, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_building_leader_logs_in_sees_open_reports_at_their_building_and_reports_like_a_rider(pool: PgPool) {
    let (planner, building, _) = setup(&pool).await;
    let token = login(&pool, "leaders-leader", Role::BuildingLeader, &[]).await;
    let account: i64 = sqlx::query_scalar("select id from account where name = 'leaders-leader'")
        .fetch_one(&pool)
        .await
        .expect("account");
    let mut body = leader("甲");
    body["account_id"] = json!(account);
    let assigned =
        call(&pool, "POST", &format!("/api/buildings/{building}/leaders"), Some(&planner), None, Some(body)).await;
    assert_eq!(assigned.status, StatusCode::CREATED, "{}", text(&assigned));
    assert_eq!(assigned.json()["account_name"], "leaders-leader");

    // The leader reports at their building's door, like a rider; a report far away is not theirs.
    let (lon, lat): (f64, f64) = sqlx::query_as("select ST_X(anchor), ST_Y(anchor) from building where id = $1")
        .bind(building)
        .fetch_one(&pool)
        .await
        .expect("anchor");
    let near = crate::reports::post_report(
        &pool,
        Some(&token),
        Some(&uuid::Uuid::new_v4().to_string()),
        &json!({"category": "road_damage", "description": "楼下路面破损",
                "location": {"lon": lon, "lat": lat, "crs": "wgs84", "accuracy_m": 5}}),
    )
    .await;
    assert_eq!(near.status, StatusCode::CREATED, "{}", text(&near));
    let far = crate::reports::post_report(
        &pool,
        Some(&token),
        Some(&uuid::Uuid::new_v4().to_string()),
        &json!({"category": "road_damage", "description": "远处",
                "location": {"lon": lon + 0.01, "lat": lat + 0.01, "crs": "wgs84", "accuracy_m": 5}}),
    )
    .await;
    assert_eq!(far.status, StatusCode::CREATED, "{}", text(&far));

    let mine = call(&pool, "GET", "/api/leaders/me", Some(&token), None, None).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", text(&mine));
    let mine = mine.json();
    assert_eq!(mine["buildings"].as_array().expect("buildings").len(), 1);
    assert_eq!(mine["buildings"][0]["building_id"], building);
    let reports: Vec<i64> = mine["buildings"][0]["open_reports"]
        .as_array()
        .expect("reports")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert!(reports.contains(&near.json()["id"].as_i64().expect("id")), "{mine}");
    assert!(!reports.contains(&far.json()["id"].as_i64().expect("id")), "{mine}");
    assert!(!mine.to_string().contains("楼下路面破损"), "public fields only: no description");

    // Other roles have no leader view; the leader has no planner's or worker's powers.
    let planner_me = call(&pool, "GET", "/api/leaders/me", Some(&planner), None, None).await;
    assert_eq!(planner_me.status, StatusCode::FORBIDDEN);
    let list = call(&pool, "GET", &format!("/api/buildings/{building}/leaders"), Some(&token), None, None).await;
    assert_eq!(list.status, StatusCode::FORBIDDEN);
    let assign =
        call(&pool, "POST", &format!("/api/buildings/{building}/leaders"), Some(&token), None, Some(leader("乙")))
            .await;
    assert_eq!(assign.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_demo_seed_gives_every_building_with_households_a_labelled_synthetic_leader_and_a_leader_login(
    pool: PgPool,
) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    let (buildings, led, expired, synthetic): (i64, i64, i64, bool) = sqlx::query_as(
        r"select count(*), count(*) filter (where gridmap_leader_state(b.id) = 'current'),
                 count(*) filter (where gridmap_leader_state(b.id) = 'expired'),
                 bool_and(exists (select 1 from building_leader l where l.building_id = b.id and l.source = 'synthetic-demo'))
            from building b where b.households > 0",
    )
    .fetch_one(&pool)
    .await
    .expect("coverage");
    assert_eq!(led + expired, buildings, "every building with households has a leader");
    assert!(synthetic);
    assert_eq!(expired as usize, (0..buildings as usize).filter(|i| i % seed::EXPIRED_EVERY == 17).count());
    let (role, linked): (String, i64) = sqlx::query_as(
        "select a.role, (select count(*) from building_leader l where l.account_id = a.id and l.term_end >= gridmap_county_today()) from account a where a.name = 'leader-0001'",
    )
    .fetch_one(&pool)
    .await
    .expect("leader login");
    assert_eq!((role.as_str(), linked), ("building_leader", 1));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn tiles_show_coverage_counts_per_grid_and_the_buildings_without_a_current_leader_in_a_layer_of_their_own(
    pool: PgPool,
) {
    use crate::tiles::{decode, layer, props, send as get_tile, tile_at, uri};
    let (planner, building, _) = setup(&pool).await;
    let state = gridmap_server::http::AppState::new(pool.clone());
    let (lon, lat, grid): (f64, f64, i64) =
        sqlx::query_as("select ST_X(anchor), ST_Y(anchor), grid_id from building where id = $1")
            .bind(building)
            .fetch_one(&pool)
            .await
            .expect("anchor");
    let t = tile_at(lon, lat, 16);
    let tile = decode(&get_tile(&state, &uri("leaders", t), &[]).await);
    let gaps = layer(&tile, "leader_gaps");
    let gap = gaps.features.iter().find(|f| f.id == Some(building as u64)).expect("the leaderless building is a gap");
    assert!(props(gaps, gap).contains(&("leader_state".into(), "none".into())));
    let keys: Vec<&str> = gaps.keys.iter().map(String::as_str).collect();
    assert_eq!(keys.iter().filter(|k| !["leader_state", "households"].contains(k)).count(), 0, "{keys:?}");

    // Coverage at the grid's label point: the grid has one unled building.
    let (llon, llat): (f64, f64) = sqlx::query_as(
        "select ST_X(ST_Transform(label_3857, 4326)), ST_Y(ST_Transform(label_3857, 4326)) from grid where id = $1",
    )
    .bind(grid)
    .fetch_one(&pool)
    .await
    .expect("label");
    let lt = tile_at(llon, llat, 14);
    let coverage = |tile: &geozero::mvt::Tile| {
        let l = layer(tile, "leader_coverage");
        let f = l.features.iter().find(|f| f.id == Some(grid as u64)).expect("the grid's coverage");
        props(l, f)
    };
    let unled = |props: &[(String, String)]| {
        props.iter().find(|(k, _)| k == "unled").and_then(|(_, v)| v.parse::<i64>().ok()).expect("unled")
    };
    let before = coverage(&decode(&get_tile(&state, &uri("leaders", lt), &[]).await));
    // The base map carries none of it, and keeps its cached tiles through a leader change.
    let base = get_tile(&state, &uri("grids,buildings", t), &[]).await;
    assert!(decode(&base).layers.iter().all(|l| !l.name.starts_with("leader_")));
    let cache_of = |r: &crate::common::Reply| r.headers["x-tile-cache"].to_str().expect("ascii").to_string();
    assert_eq!(cache_of(&get_tile(&state, &uri("grids,buildings", t), &[]).await), "hit");
    assert!(unled(&before) >= 1, "{before:?}");
    assert!(before.contains(&("coverage_class".into(), "gaps".into())), "{before:?}");

    // Assigning through the API redraws both at once (the cached tiles are dropped).
    let reply =
        call(&pool, "POST", &format!("/api/buildings/{building}/leaders"), Some(&planner), None, Some(leader("甲")))
            .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    state.changes().leaders_changed(building).await;
    let after = coverage(&decode(&get_tile(&state, &uri("leaders", lt), &[]).await));
    assert_eq!(unled(&after), unled(&before) - 1, "{after:?}");
    let tile = get_tile(&state, &uri("leaders", t), &[]).await;
    if tile.status == StatusCode::OK {
        let tile = decode(&tile);
        if let Some(gaps) = tile.layers.iter().find(|l| l.name == "leader_gaps") {
            assert!(gaps.features.iter().all(|f| f.id != Some(building as u64)), "no longer a gap");
        }
    }
    assert_eq!(cache_of(&get_tile(&state, &uri("grids,buildings", t), &[]).await), "hit", "base tiles stay cached");
}
