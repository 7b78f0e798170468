//! Emergency mode (平急融合, issue 24 §2): every state and every refusal of
//! `gridmap_server::emergency` through the HTTP API — starting an episode (mobilisation and
//! task lists in one transaction, overlapping areas refused), check-ins (own, on a member's
//! behalf, once, with points once), tasks, the end (If-Match, everyone released), the history,
//! the registry and squads, the live feed's notices — and the drill: a community of 300
//! members switched into emergency mode, all checking in at once, and back to normal.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

use crate::common::{Reply, count, send, send_to};
use crate::rounds::{Town, town};
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;
use gridmap_server::http::{AppState, app};

const MEMBER_PHONE: &str = "13800138000";

fn request(method: &str, uri: &str, token: Option<&str>, if_match: Option<i64>, body: Option<Value>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(v) = if_match {
        r = r.header(header::IF_MATCH, format!("\"{v}\""));
    }
    match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    }
    .expect("request")
}

async fn call(pool: &PgPool, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    send(pool, request(method, uri, token, None, body)).await
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

async fn login(pool: &PgPool, name: &str, role: Role) -> String {
    let password = format!("{name}-password");
    upsert(pool, &NewAccount { name, role, password: &password, part_time_grid_worker: false, grid_codes: &[] })
        .await
        .expect("account");
    gridmap_server::auth::login(pool, name, &password).await.expect("login").expect("valid").token
}

/// A registered member living in `building`, with a login of role volunteer when `login` is
/// given (returns the member id and the token).
async fn member(pool: &PgPool, name: &str, building: i64, login_name: Option<&str>) -> (i64, Option<String>) {
    let token = match login_name {
        Some(l) => Some(login(pool, l, Role::Volunteer).await),
        None => None,
    };
    let id: i64 = sqlx::query_scalar(
        r"insert into party_member (name, phone, building_id, skills, account_id)
          values ($1, $2, $3, '{medical}', (select id from account where name = $4)) returning id",
    )
    .bind(name)
    .bind(MEMBER_PHONE)
    .bind(building)
    .bind(login_name)
    .fetch_one(pool)
    .await
    .expect("member");
    (id, token)
}

struct World {
    town: Town,
    /// In GA (b3), with a login.
    m1: i64,
    m1_token: String,
    /// In GA (b2), no login.
    m2: i64,
    /// In GB (b4).
    m3: i64,
    volunteer: String,
}

async fn world(pool: &PgPool) -> World {
    let town = town(pool).await;
    let (m1, m1_token) = member(pool, "张党员", town.b3, Some("member-one")).await;
    let (m2, _) = member(pool, "李党员", town.b2, None).await;
    let (m3, _) = member(pool, "王党员", town.b4, None).await;
    World {
        m1,
        m1_token: m1_token.expect("login"),
        m2,
        m3,
        volunteer: login(pool, "plain-volunteer", Role::Volunteer).await,
        town,
    }
}

async fn start(pool: &PgPool, w: &World) -> Value {
    let reply = call(
        pool,
        "POST",
        "/api/emergency",
        Some(&w.town.admin),
        Some(json!({"area_kind": "community", "area_id": w.town.community, "reason": "防汛应急（测试）"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    reply.json()
}

async fn end(pool: &PgPool, token: &str, id: i64, version: Option<i64>, reason: &str) -> Reply {
    send(
        pool,
        request("POST", &format!("/api/emergency/{id}/end"), Some(token), version, Some(json!({"reason": reason}))),
    )
    .await
}

fn reason(reply: &Reply) -> String {
    reply.json()["reason"].as_str().unwrap_or_default().to_string()
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn one_request_mobilises_every_member_of_the_community_and_gives_each_grid_its_task_list(pool: PgPool) {
    let w = world(&pool).await;
    // A member of another community is not mobilised.
    let elsewhere: i64 = sqlx::query_scalar(
        r"with sd as (select id from subdistrict limit 1),
               c as (insert into community (subdistrict_id, code, name) select id, 'CM2', '别的社区' from sd returning id),
               g as (insert into grid (code, name, community_id, geom)
                     select 'GZ', 'GZ网格', c.id, ST_Multi(ST_Buffer(ST_MakePoint(118.3, 36.3)::geography, 200)::geometry)
                       from c returning id),
               b as (insert into building (geom, households, grid_id)
                     select ST_Multi(ST_Buffer(ST_MakePoint(118.3, 36.3)::geography, 10)::geometry), 5, g.id from g returning id)
          insert into party_member (name, building_id) select '外社区党员', b.id from b returning id",
    )
    .fetch_one(&pool)
    .await
    .expect("member elsewhere");
    let episode = start(&pool, &w).await;
    let id = episode["id"].as_i64().expect("id");
    assert_eq!(episode["active"], true);
    assert_eq!(episode["area_name"], "测试社区");
    assert_eq!(episode["members"], 3, "{episode}");
    assert_eq!(episode["checked_in"], 0);
    assert_eq!(episode["grids"], 2);
    assert_eq!(episode["open_tasks"], 2 * gridmap_server::emergency::TASK_TEMPLATE.len() as i64);
    assert_eq!(episode["grids_without_check_in"], 2);
    assert_eq!(episode["version"], 1);
    let grids = episode["grid_counts"].as_array().expect("grid counts");
    assert_eq!(grids.len(), 2);
    assert_eq!(grids[0]["members"], 2, "GA has two members");
    let mobilised: Vec<i64> =
        sqlx::query_scalar("select member_id from emergency_mobilisation where episode_id = $1 order by member_id")
            .bind(id)
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(mobilised, vec![w.m1, w.m2, w.m3]);
    assert!(!mobilised.contains(&elsewhere));
    let kinds: Vec<(String, i64)> =
        sqlx::query_as("select kind, count(*) from emergency_event where episode_id = $1 group by kind order by kind")
            .bind(id)
            .fetch_all(&pool)
            .await
            .expect("history");
    assert_eq!(
        kinds,
        vec![("mobilised".into(), 3), ("started".into(), 1), ("task_added".into(), 10)],
        "every state change is in the history"
    );
    // The public sees the episode and counts, never the members.
    for viewer in [None, Some(w.volunteer.as_str())] {
        for uri in [format!("/api/emergency/{id}"), "/api/emergency".to_string(), "/api/emergency?active=true".into()] {
            let reply = call(&pool, "GET", &uri, viewer, None).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
            let body = text(&reply);
            for private in ["张党员", MEMBER_PHONE, "round-admin", "started_by"] {
                assert!(!body.contains(private), "{uri} shows {private}: {body}");
            }
        }
    }
    let staff = call(&pool, "GET", &format!("/api/emergency/{id}"), Some(&w.town.admin), None).await.json();
    assert_eq!(staff["started_by"], "round-admin");
    // The member sees their grid and tasks.
    let mine = call(&pool, "GET", "/api/emergency/mine", Some(&w.m1_token), None).await.json();
    assert_eq!(mine["member_id"], w.m1);
    assert_eq!(mine["episodes"][0]["grid_code"], "GA");
    assert_eq!(mine["episodes"][0]["state"], "mobilised");
    assert_eq!(mine["episodes"][0]["tasks"].as_array().expect("tasks").len(), 5);
    let none = call(&pool, "GET", "/api/emergency/mine", Some(&w.volunteer), None).await.json();
    assert_eq!(none, json!({"member_id": null, "episodes": []}));
    assert_eq!(call(&pool, "GET", "/api/emergency/mine", None, None).await.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn starting_is_for_admins_of_the_area_s_county_with_a_valid_area_and_no_overlap(pool: PgPool) {
    let w = world(&pool).await;
    let body = json!({"area_kind": "community", "area_id": w.town.community, "reason": "疫情防控"});
    assert_eq!(call(&pool, "POST", "/api/emergency", None, Some(body.clone())).await.status, StatusCode::UNAUTHORIZED);
    for token in [&w.town.worker_a, &w.town.planner, &w.town.rider, &w.volunteer, &w.m1_token] {
        let reply = call(&pool, "POST", "/api/emergency", Some(token), Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
        assert_eq!(reason(&reply), "role_cannot_act");
    }
    // An admin of another county.
    let other: i64 = sqlx::query_scalar("insert into county (code, name) values ('T999', '别县') returning id")
        .fetch_one(&pool)
        .await
        .expect("county");
    let outsider = login(&pool, "other-county-admin", Role::Admin).await;
    sqlx::query("update account set county_id = $1 where name = 'other-county-admin'")
        .bind(other)
        .execute(&pool)
        .await
        .expect("scope");
    let reply = call(&pool, "POST", "/api/emergency", Some(&outsider), Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
    assert_eq!(reason(&reply), "not_your_county");
    for (bad, status, why) in [
        (json!({"area_kind": "city", "area_id": 1, "reason": "x"}), StatusCode::BAD_REQUEST, "unknown_area_kind"),
        (
            json!({"area_kind": "community", "area_id": w.town.community, "reason": "  "}),
            StatusCode::BAD_REQUEST,
            "invalid_text",
        ),
        (
            json!({"area_kind": "community", "area_id": w.town.community, "reason": "x".repeat(201)}),
            StatusCode::BAD_REQUEST,
            "invalid_text",
        ),
        (
            json!({"area_kind": "community", "area_id": 999_999, "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_such_area",
        ),
    ] {
        let reply = call(&pool, "POST", "/api/emergency", Some(&w.town.admin), Some(bad.clone())).await;
        assert_eq!(reply.status, status, "{bad}: {}", text(&reply));
        assert_eq!(reason(&reply), why, "{bad}");
    }
    for bad in
        [json!({"area_kind": "community"}), json!({"area_kind": "community", "area_id": 1, "reason": "x", "extra": 1})]
    {
        let reply = call(&pool, "POST", "/api/emergency", Some(&w.town.admin), Some(bad.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", text(&reply));
    }
    assert_eq!(count(&pool, "emergency_episode").await, 0, "a refusal stores nothing");

    let episode = start(&pool, &w).await;
    let reply = call(&pool, "POST", "/api/emergency", Some(&w.town.admin), Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", text(&reply));
    assert_eq!(reason(&reply), "episode_active");
    let subdistrict: i64 = sqlx::query_scalar("select subdistrict_id from community where id = $1")
        .bind(w.town.community)
        .fetch_one(&pool)
        .await
        .expect("subdistrict");
    for (kind, area) in [("subdistrict", subdistrict), ("county", w.town.county)] {
        let reply = call(
            &pool,
            "POST",
            "/api/emergency",
            Some(&w.town.admin),
            Some(json!({"area_kind": kind, "area_id": area, "reason": "全域应急"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{kind}: {}", text(&reply));
        assert_eq!(reason(&reply), "episode_overlaps");
    }
    assert_eq!(count(&pool, "emergency_episode").await, 1);
    assert_eq!(count(&pool, "emergency_mobilisation").await, 3, "no member mobilised twice");
    // Once it ends, the whole county may be switched on.
    let id = episode["id"].as_i64().expect("id");
    assert_eq!(end(&pool, &w.town.admin, id, Some(1), "解除").await.status, StatusCode::OK);
    let reply = call(
        &pool,
        "POST",
        "/api/emergency",
        Some(&w.town.admin),
        Some(json!({"area_kind": "county", "area_id": w.town.county, "reason": "全县应急"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    assert_eq!(reply.json()["members"], 3, "the same members, mobilised again by the new episode");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn members_check_in_once_themselves_or_through_their_grid_s_worker_and_earn_points_once(pool: PgPool) {
    let w = world(&pool).await;
    let episode = start(&pool, &w).await;
    let id = episode["id"].as_i64().expect("id");
    let checkins = format!("/api/emergency/{id}/checkins");
    assert_eq!(call(&pool, "POST", &checkins, None, Some(json!({}))).await.status, StatusCode::UNAUTHORIZED);
    // A login that is no member, naming nobody.
    let reply = call(&pool, "POST", &checkins, Some(&w.volunteer), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
    assert_eq!(reason(&reply), "not_a_member");
    // A volunteer or a planner naming someone else.
    for token in [&w.volunteer, &w.town.planner, &w.town.rider] {
        let reply = call(&pool, "POST", &checkins, Some(token), Some(json!({"member_id": w.m2}))).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
    }
    // The worker of the other grid.
    let reply = call(&pool, "POST", &checkins, Some(&w.town.worker_b), Some(json!({"member_id": w.m2}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
    assert_eq!(reason(&reply), "not_your_grid");
    let reply = call(&pool, "POST", &checkins, Some(&w.town.worker_a), Some(json!({"member_id": 999_999}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&reply));
    assert_eq!(reason(&reply), "not_mobilised");
    let reply = call(&pool, "POST", &checkins, Some(&w.town.worker_a), Some(json!({"member_id": "one"}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", text(&reply));
    let reply = call(&pool, "POST", "/api/emergency/999999/checkins", Some(&w.m1_token), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(count(&pool, "points_ledger").await, 0, "refusals store nothing");

    // The member themselves: checked in, 30 points as a party member.
    let reply = call(&pool, "POST", &checkins, Some(&w.m1_token), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let done = reply.json();
    assert_eq!(done["member_id"], w.m1);
    assert_eq!(done["checkin_kind"], "self");
    assert_eq!(done["points_awarded"], 30);
    let reply = call(&pool, "POST", &checkins, Some(&w.m1_token), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reason(&reply), "already_checked_in");
    let reply = call(&pool, "POST", &checkins, Some(&w.town.worker_a), Some(json!({"member_id": w.m1}))).await;
    assert_eq!(reason(&reply), "already_checked_in");
    let (points, group): (i64, String) = sqlx::query_as(
        r"select sum(delta)::int8, min(group_code) from points_ledger l join account a on a.id = l.account_id
           where a.name = 'member-one' and l.reason = 'emergency_checkin'",
    )
    .fetch_one(&pool)
    .await
    .expect("points");
    assert_eq!((points, group.as_str()), (30, "party_members"));

    // The worker of GA records m2 (no login: no points); an admin records m3.
    let reply = call(&pool, "POST", &checkins, Some(&w.town.worker_a), Some(json!({"member_id": w.m2}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    assert_eq!(reply.json()["checkin_kind"], "worker");
    assert_eq!(reply.json()["points_awarded"], Value::Null);

    // The worker's view of GA: both volunteers checked in, with names and phones.
    let view =
        call(&pool, "GET", &format!("/api/emergency/{id}/grids/{}", w.town.ga), Some(&w.town.worker_a), None).await;
    assert_eq!(view.status, StatusCode::OK, "{}", text(&view));
    let view = view.json();
    assert_eq!(view["counts"]["checked_in"], 2);
    assert_eq!(view["volunteers"].as_array().expect("volunteers").len(), 2);
    assert!(view.to_string().contains("张党员") && view.to_string().contains(MEMBER_PHONE));
    assert_eq!(view["tasks"].as_array().expect("tasks").len(), 5);
    for (token, status) in [
        (&w.town.worker_b, StatusCode::FORBIDDEN),
        (&w.town.planner, StatusCode::OK),
        (&w.town.admin, StatusCode::OK),
        (&w.volunteer, StatusCode::FORBIDDEN),
        (&w.m1_token, StatusCode::FORBIDDEN),
    ] {
        let reply = call(&pool, "GET", &format!("/api/emergency/{id}/grids/{}", w.town.ga), Some(token), None).await;
        assert_eq!(reply.status, status, "{}", text(&reply));
    }
    let reply = call(&pool, "GET", &format!("/api/emergency/{id}/grids/999999"), Some(&w.town.admin), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let summary = call(&pool, "GET", &format!("/api/emergency/{id}"), None, None).await.json();
    assert_eq!(summary["checked_in"], 2);
    assert_eq!(summary["grids_without_check_in"], 1, "GB has nobody yet");
    let stats = call(&pool, "GET", "/api/stats", None, None).await.json();
    assert_eq!(
        stats["emergency"],
        json!({"registered_members": 3, "squads": 0, "active_episodes": 1, "mobilised": 3, "checked_in": 2, "episodes_ever": 1})
    );

    // After the end, check-ins are closed.
    assert_eq!(end(&pool, &w.town.admin, id, Some(1), "汛情解除").await.status, StatusCode::OK);
    let reply = call(&pool, "POST", &checkins, Some(&w.town.admin), Some(json!({"member_id": w.m3}))).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", text(&reply));
    assert_eq!(reason(&reply), "episode_ended");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_grid_s_workers_add_and_finish_tasks_while_the_episode_is_active(pool: PgPool) {
    let w = world(&pool).await;
    let id = start(&pool, &w).await["id"].as_i64().expect("id");
    let tasks = format!("/api/emergency/{id}/grids/{}/tasks", w.town.ga);
    let body = json!({"title": "给3号楼独居老人送药"});
    assert_eq!(call(&pool, "POST", &tasks, None, Some(body.clone())).await.status, StatusCode::UNAUTHORIZED);
    for token in [&w.town.worker_b, &w.town.planner, &w.volunteer, &w.m1_token] {
        let reply = call(&pool, "POST", &tasks, Some(token), Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
    }
    for bad in [json!({"title": ""}), json!({"title": "x".repeat(201)}), json!({}), json!({"title": "a", "done": true})]
    {
        let reply = call(&pool, "POST", &tasks, Some(&w.town.worker_a), Some(bad.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", text(&reply));
    }
    let reply = call(
        &pool,
        "POST",
        &format!("/api/emergency/{id}/grids/999999/tasks"),
        Some(&w.town.admin),
        Some(body.clone()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", text(&reply));
    let reply = call(&pool, "POST", &tasks, Some(&w.town.worker_a), Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let task = reply.json();
    assert_eq!(task["done"], false);
    let task_id = task["id"].as_i64().expect("task id");
    let done = format!("/api/emergency/{id}/tasks/{task_id}/done");
    for token in [&w.town.worker_b, &w.town.planner, &w.volunteer] {
        assert_eq!(call(&pool, "POST", &done, Some(token), None).await.status, StatusCode::FORBIDDEN);
    }
    let reply = call(&pool, "POST", &done, Some(&w.town.worker_a), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    assert_eq!(reply.json()["done"], true);
    let reply = call(&pool, "POST", &done, Some(&w.town.worker_a), None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reason(&reply), "task_done");
    let reply = call(&pool, "POST", &format!("/api/emergency/{id}/tasks/999999/done"), Some(&w.town.admin), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let kinds: Vec<String> =
        sqlx::query_scalar("select kind from emergency_event where episode_id = $1 and task_id = $2 order by id")
            .bind(id)
            .bind(task_id)
            .fetch_all(&pool)
            .await
            .expect("history");
    assert_eq!(kinds, ["task_added", "task_done"]);
    assert_eq!(end(&pool, &w.town.admin, id, Some(1), "结束").await.status, StatusCode::OK);
    let reply = call(&pool, "POST", &tasks, Some(&w.town.worker_a), Some(body)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reason(&reply), "episode_ended");
    let other: i64 = sqlx::query_scalar("select min(id) from emergency_task where episode_id = $1 and done_at is null")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("open task");
    let reply =
        call(&pool, "POST", &format!("/api/emergency/{id}/tasks/{other}/done"), Some(&w.town.worker_a), None).await;
    assert_eq!(reason(&reply), "episode_ended");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn ending_needs_an_admin_a_reason_and_the_current_version_and_returns_everyone_to_normal(pool: PgPool) {
    let w = world(&pool).await;
    let id = start(&pool, &w).await["id"].as_i64().expect("id");
    let reply = call(&pool, "POST", &format!("/api/emergency/{id}/checkins"), Some(&w.m1_token), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(end(&pool, &w.town.worker_a, id, Some(1), "x").await.status, StatusCode::FORBIDDEN);
    assert_eq!(end(&pool, &w.town.planner, id, Some(1), "x").await.status, StatusCode::FORBIDDEN);
    let reply = end(&pool, &w.town.admin, id, Some(1), " ").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", text(&reply));
    let reply = end(&pool, &w.town.admin, id, None, "解除").await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_REQUIRED, "{}", text(&reply));
    let reply = end(&pool, &w.town.admin, id, Some(7), "解除").await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED, "{}", text(&reply));
    assert_eq!(end(&pool, &w.town.admin, 999_999, Some(1), "解除").await.status, StatusCode::NOT_FOUND);
    let reply = end(&pool, &w.town.admin, id, Some(1), "汛情解除，恢复常态").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    assert_eq!(reply.headers[header::ETAG], "\"2\"");
    let ended = reply.json();
    assert_eq!(ended["active"], false);
    assert_eq!(ended["end_reason"], "汛情解除，恢复常态");
    assert_eq!(ended["released"], 3);
    assert_eq!(ended["checked_in"], 1, "the record of who checked in stays");
    let reply = end(&pool, &w.town.admin, id, Some(2), "again").await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reason(&reply), "episode_ended");
    let mine = call(&pool, "GET", "/api/emergency/mine", Some(&w.m1_token), None).await.json();
    assert_eq!(mine["episodes"], json!([]), "back to normal");
    let past = call(&pool, "GET", "/api/emergency?active=false", None, None).await.json();
    assert_eq!(past[0]["id"], id);
    assert_eq!(call(&pool, "GET", "/api/emergency?active=true", None, None).await.json(), json!([]));

    // The history: planners and admins only; every member mobilised, checked in or not, released.
    let history = format!("/api/emergency/{id}/history");
    for token in [&w.town.worker_a, &w.volunteer, &w.m1_token] {
        assert_eq!(call(&pool, "GET", &history, Some(token), None).await.status, StatusCode::FORBIDDEN);
    }
    let rows = call(&pool, "GET", &history, Some(&w.town.planner), None).await.json();
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.first().expect("first")["kind"], "started");
    assert_eq!(rows.last().expect("last")["kind"], "ended");
    let own = call(&pool, "GET", &format!("{history}?member={}", w.m1), Some(&w.town.admin), None).await.json();
    let kinds: Vec<&str> = own.as_array().expect("rows").iter().map(|r| r["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["mobilised", "checked_in", "released"]);
    let own = call(&pool, "GET", &format!("{history}?member={}", w.m2), Some(&w.town.admin), None).await.json();
    let kinds: Vec<&str> = own.as_array().expect("rows").iter().map(|r| r["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["mobilised", "released"]);
    // The history cannot be rewritten.
    let err = sqlx::query("delete from emergency_event where episode_id = $1").bind(id).execute(&pool).await;
    assert!(err.is_err(), "the history is append-only");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn staff_register_members_and_form_squads_of_their_grids(pool: PgPool) {
    let w = world(&pool).await;
    let body = json!({"name": "赵党员", "phone": "13900000000", "building_id": w.town.b3, "skills": ["driving"],
                      "availability": "weekends"});
    assert_eq!(
        call(&pool, "POST", "/api/emergency/members", None, Some(body.clone())).await.status,
        StatusCode::UNAUTHORIZED
    );
    for token in [&w.volunteer, &w.town.rider, &w.m1_token] {
        let reply = call(&pool, "POST", "/api/emergency/members", Some(token), Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
        assert_eq!(call(&pool, "GET", "/api/emergency/members", Some(token), None).await.status, StatusCode::FORBIDDEN);
    }
    let reply = call(&pool, "POST", "/api/emergency/members", Some(&w.town.worker_b), Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "a building of another grid");
    for (field, value) in [
        ("phone", json!("call me")),
        ("availability", json!("sometimes")),
        ("name", json!("")),
        ("skills", json!(vec!["a"; 11])),
    ] {
        let mut bad = body.clone();
        bad[field] = value;
        let reply = call(&pool, "POST", "/api/emergency/members", Some(&w.town.worker_a), Some(bad)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}: {}", text(&reply));
    }
    let mut bad = body.clone();
    bad["building_id"] = json!(999_999);
    let reply = call(&pool, "POST", "/api/emergency/members", Some(&w.town.admin), Some(bad)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&reply));
    let mut linked = body.clone();
    linked["account_id"] = sqlx::query_scalar::<_, i64>("select id from account where name = 'member-one'")
        .fetch_one(&pool)
        .await
        .expect("id")
        .into();
    let reply = call(&pool, "POST", "/api/emergency/members", Some(&w.town.admin), Some(linked)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", text(&reply));
    assert_eq!(count(&pool, "party_member").await, 3, "refusals store nothing");
    let reply = call(&pool, "POST", "/api/emergency/members", Some(&w.town.worker_a), Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let new_member = reply.json();
    assert_eq!(new_member["grid_id"], w.town.ga);
    assert_eq!(new_member["skills"], json!(["driving"]));
    let new_id = new_member["id"].as_i64().expect("id");

    let own = call(&pool, "GET", "/api/emergency/members", Some(&w.town.worker_a), None).await.json();
    assert_eq!(own.as_array().expect("list").len(), 3, "GA's three members");
    let reply =
        call(&pool, "GET", &format!("/api/emergency/members?grid={}", w.town.gb), Some(&w.town.worker_a), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let all = call(&pool, "GET", "/api/emergency/members", Some(&w.town.planner), None).await.json();
    assert_eq!(all.as_array().expect("list").len(), 4);

    let squad =
        json!({"grid_id": w.town.ga, "name": "第一小队", "member_ids": [w.m1, w.m2, new_id], "leader_member_id": w.m1});
    for (token, status) in [(&w.town.worker_b, StatusCode::FORBIDDEN), (&w.volunteer, StatusCode::FORBIDDEN)] {
        assert_eq!(call(&pool, "POST", "/api/emergency/squads", Some(token), Some(squad.clone())).await.status, status);
    }
    let mut outside = squad.clone();
    outside["member_ids"] = json!([w.m1, w.m3]);
    let reply = call(&pool, "POST", "/api/emergency/squads", Some(&w.town.worker_a), Some(outside)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&reply));
    let mut leaderless = squad.clone();
    leaderless["leader_member_id"] = json!(w.m3);
    let reply = call(&pool, "POST", "/api/emergency/squads", Some(&w.town.worker_a), Some(leaderless)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", text(&reply));
    let reply = call(&pool, "POST", "/api/emergency/squads", Some(&w.town.worker_a), Some(squad.clone())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    assert_eq!(reply.json()["member_ids"], json!([w.m1, w.m2, new_id]));
    assert_eq!(reply.json()["leader_name"], "张党员");
    let reply = call(&pool, "POST", "/api/emergency/squads", Some(&w.town.admin), Some(squad)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", text(&reply));
    let squads = call(&pool, "GET", "/api/emergency/squads", Some(&w.town.worker_a), None).await.json();
    assert_eq!(squads.as_array().expect("list").len(), 1);
    let squads = call(&pool, "GET", "/api/emergency/squads", Some(&w.town.worker_b), None).await.json();
    assert_eq!(squads, json!([]), "another grid's squads are not listed");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_live_feed_announces_the_start_check_ins_and_end_without_moving_the_resume_id(pool: PgPool) {
    let w = world(&pool).await;
    let state = AppState::new(pool.clone());
    let stream = Request::get("/api/reports/stream")
        .header(header::AUTHORIZATION, format!("Bearer {}", w.town.worker_a))
        .body(Body::empty())
        .expect("request");
    let response = app(state.clone()).oneshot(stream).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let reply = send_to(
        &state,
        request(
            "POST",
            "/api/emergency",
            Some(&w.town.admin),
            None,
            Some(json!({"area_kind": "community", "area_id": w.town.community, "reason": "演练"})),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let id = reply.json()["id"].as_i64().expect("id");
    let started = next_data(&mut body).await;
    assert!(started.contains("event: emergency"), "{started}");
    assert!(!started.lines().any(|l| l.starts_with("id:")), "no SSE id: Last-Event-ID stays a report id: {started}");
    assert!(started.contains("\"kind\":\"started\"") && started.contains(&format!("\"episode_id\":{id}")), "{started}");
    let reply = send_to(
        &state,
        request("POST", &format!("/api/emergency/{id}/checkins"), Some(&w.m1_token), None, Some(json!({}))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let checked = next_data(&mut body).await;
    assert!(
        checked.contains("\"kind\":\"checked_in\"") && checked.contains(&format!("\"member_id\":{}", w.m1)),
        "{checked}"
    );
    assert!(!checked.contains("张党员"), "a notice carries ids, never names");
    let reply = send_to(
        &state,
        request(
            "POST",
            &format!("/api/emergency/{id}/end"),
            Some(&w.town.admin),
            Some(1),
            Some(json!({"reason": "结束"})),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let ended = next_data(&mut body).await;
    assert!(ended.contains("\"kind\":\"ended\""), "{ended}");
}

/// The next SSE frame with data, skipping keep-alive comments.
async fn next_data(body: &mut Body) -> String {
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10 s")
            .expect("a frame")
            .expect("an ok frame");
        let text = String::from_utf8(frame.into_data().expect("data").to_vec()).expect("utf8");
        if text.contains("data: ") {
            return text;
        }
    }
}

/// The drill of issue 24 §2: a community with 300 members (each with a login) is switched into
/// emergency mode, all 300 check in concurrently (in batches of 50), and it ends. Nothing is
/// lost, every state change is in the history, points are awarded exactly once each, nothing
/// private is in a public answer, and everyone is back to normal.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn drill_300_members_switch_on_check_in_at_once_and_return_to_normal(pool: PgPool) {
    const N: usize = 300;
    let w = world(&pool).await;
    // Start from the drill's members only.
    sqlx::query("delete from party_member").execute(&pool).await.expect("clear");
    let names: Vec<String> = (0..N).map(|i| format!("drill-member-{i:03}")).collect();
    let tokens: Vec<String> = (0..N).map(|i| format!("drill-token-{i:03}-{}", uuid::Uuid::new_v4())).collect();
    let buildings = [w.town.b3, w.town.b2, w.town.b4];
    let homes: Vec<i64> = (0..N).map(|i| buildings[i % 3]).collect();
    sqlx::query(
        r"with a as (
              insert into account (name, display_name, role)
              select n, 'DRILLNAME' || n, 'volunteer' from unnest($1::text[]) n returning id, name),
          t as (
              insert into session_token (account_id, token_hash, expires_at)
              select a.id, sha256(convert_to(x.tok, 'UTF8')), now() + interval '1 day'
                from unnest($1::text[], $2::text[]) x(n, tok) join a on a.name = x.n)
          insert into party_member (name, phone, building_id, account_id)
          select 'DRILLMEMBER' || x.n, '+86 (911) ' || lpad(x.k::text, 4, '0'), x.home, a.id
            from unnest($1::text[], $3::int8[]) with ordinality x(n, home, k) join a on a.name = x.n",
    )
    .bind(&names)
    .bind(&tokens)
    .bind(&homes)
    .execute(&pool)
    .await
    .expect("300 members with logins");
    assert_eq!(count(&pool, "party_member").await, N as i64);

    let episode = start(&pool, &w).await;
    let id = episode["id"].as_i64().expect("id");
    assert_eq!(episode["members"], N as i64);
    let checkins = format!("/api/emergency/{id}/checkins");
    for batch in tokens.chunks(50) {
        let replies = futures::future::join_all(
            batch.iter().map(|t| send(&pool, request("POST", &checkins, Some(t), None, Some(json!({}))))),
        )
        .await;
        for reply in replies {
            assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
            assert_eq!(reply.json()["points_awarded"], 30);
        }
    }
    // A second round, concurrently, changes nothing.
    let replies = futures::future::join_all(
        tokens.iter().take(50).map(|t| send(&pool, request("POST", &checkins, Some(t), None, Some(json!({}))))),
    )
    .await;
    assert!(replies.iter().all(|r| r.status == StatusCode::CONFLICT), "a member checks in once");
    let during = call(&pool, "GET", &format!("/api/emergency/{id}"), None, None).await.json();
    assert_eq!(during["checked_in"], N as i64);
    assert_eq!(during["grids_without_check_in"], 0);
    let ga = during["grid_counts"].as_array().expect("grids").iter().find(|g| g["grid_id"] == w.town.ga).cloned();
    assert_eq!(ga.expect("GA")["checked_in"], 200);

    let reply = end(&pool, &w.town.admin, id, Some(1), "演练结束").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    let ended = reply.json();
    assert_eq!(
        (ended["members"].as_i64(), ended["checked_in"].as_i64(), ended["released"].as_i64()),
        (Some(300), Some(300), Some(300))
    );

    // Nothing lost: every member, every mobilisation, all released.
    assert_eq!(count(&pool, "party_member").await, N as i64);
    let (rows, checked, released): (i64, i64, i64) = sqlx::query_as(
        r"select count(*), count(*) filter (where state = 'checked_in' and checkin_kind = 'self'),
                 count(*) filter (where released_at is not null)
            from emergency_mobilisation where episode_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("mobilisations");
    assert_eq!((rows, checked, released), (300, 300, 300));
    // Every member's history: mobilised, checked in, released — in that order.
    let per_member: Vec<(i64, Vec<String>)> = sqlx::query_as(
        r"select member_id, array_agg(kind order by id) from emergency_event
           where episode_id = $1 and member_id is not null group by member_id",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .expect("history");
    assert_eq!(per_member.len(), N);
    for (member, kinds) in &per_member {
        assert_eq!(kinds, &["mobilised", "checked_in", "released"], "member {member}");
    }
    let (started, ended_rows): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where kind = 'started'), count(*) filter (where kind = 'ended') from emergency_event where episode_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("episode rows");
    assert_eq!((started, ended_rows), (1, 1));
    // Points exactly once each.
    let (awards, earners, total): (i64, i64, i64) = sqlx::query_as(
        r"select count(*), count(distinct account_id), sum(delta)::int8 from points_ledger
           where reason = 'emergency_checkin' and source_kind = 'emergency_episode' and source_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("points");
    assert_eq!((awards, earners, total), (300, 300, 9000));
    // Nothing private in the public answers.
    for uri in [format!("/api/emergency/{id}"), "/api/emergency".into(), "/api/stats".into()] {
        let body = text(&call(&pool, "GET", &uri, None, None).await);
        for private in ["DRILLMEMBER", "DRILLNAME", "drill-member", "+86 (911)", "round-admin"] {
            assert!(!body.contains(private), "{uri} shows {private}");
        }
    }
    // Everyone back to normal.
    for t in tokens.iter().step_by(37) {
        let mine = call(&pool, "GET", "/api/emergency/mine", Some(t), None).await.json();
        assert_eq!(mine["episodes"], json!([]));
    }
    let active: i64 = sqlx::query_scalar("select count(*) from emergency_mobilisation where released_at is null")
        .fetch_one(&pool)
        .await
        .expect("active");
    assert_eq!(active, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_demo_seed_registers_2933_synthetic_members_in_squads_of_their_grids(pool: PgPool) {
    gridmap_server::seed::seed_demo(&pool, 1).await.expect("seed");
    let (members, synthetic, with_grid, phones): (i64, i64, i64, i64) = sqlx::query_as(
        r"select count(*), count(*) filter (where p.source = 'synthetic-demo'), count(b.grid_id),
                 count(*) filter (where p.phone like '102%')
            from party_member p join building b on b.id = p.building_id",
    )
    .fetch_one(&pool)
    .await
    .expect("members");
    assert_eq!((members, synthetic, with_grid, phones), (2933, 2933, 2933, 2933));
    let (squads, largest, wrong_grid, leaders_outside): (i64, i64, i64, i64) = sqlx::query_as(
        r"select (select count(*) from squad),
                 (select max(n) from (select count(*) n from party_member group by squad_id) x),
                 (select count(*) from party_member p join building b on b.id = p.building_id
                    join squad q on q.id = p.squad_id where q.grid_id <> b.grid_id),
                 (select count(*) from squad q join party_member l on l.id = q.leader_member_id where l.squad_id <> q.id)",
    )
    .fetch_one(&pool)
    .await
    .expect("squads");
    assert!(squads > 267, "{squads} squads");
    assert!(largest <= 6);
    assert_eq!((wrong_grid, leaders_outside), (0, 0));
    let linked: i64 = sqlx::query_scalar(
        "select count(*) from party_member p join account a on a.id = p.account_id where a.name = 'vol-001'",
    )
    .fetch_one(&pool)
    .await
    .expect("vol-001");
    assert_eq!(linked, 1, "the demo volunteer is a registered member");
    assert_eq!(count(&pool, "emergency_episode").await, 0, "the demo starts in normal times");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_emergency_tiles_carry_counts_per_grid_follow_check_ins_at_once_and_go_when_it_ends(pool: PgPool) {
    use crate::tiles::{decode, layer, props, send as get_tile, tile_at, uri};
    let w = world(&pool).await;
    let state = AppState::new(pool.clone());
    let t = tile_at(118.170, 36.180, 14);
    let before = get_tile(&state, &uri("emergency", t), &[]).await;
    assert_eq!(before.status, StatusCode::NO_CONTENT, "normal times: nothing to draw");
    let reply = send_to(
        &state,
        request(
            "POST",
            "/api/emergency",
            Some(&w.town.admin),
            None,
            Some(json!({"area_kind": "community", "area_id": w.town.community, "reason": "演练"})),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.json()["id"].as_i64().expect("id");
    let ga_props = |tile: &geozero::mvt::Tile| {
        let l = layer(tile, "emergency");
        let f = l.features.iter().find(|f| f.id == Some(w.town.ga as u64)).expect("GA");
        props(l, f)
    };
    let first = ga_props(&decode(&get_tile(&state, &uri("emergency", t), &[]).await));
    for (k, v) in [("members", "2"), ("volunteers", "0"), ("open_tasks", "5"), ("coverage_class", "none")] {
        assert!(first.contains(&(k.to_string(), v.to_string())), "{k}={v}: {first:?}");
    }
    let reply = send_to(
        &state,
        request("POST", &format!("/api/emergency/{id}/checkins"), Some(&w.m1_token), None, Some(json!({}))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let after = ga_props(&decode(&get_tile(&state, &uri("emergency", t), &[]).await));
    assert!(after.contains(&("volunteers".into(), "1".into())), "the cached tile was dropped: {after:?}");
    assert!(!after.contains(&("coverage_class".into(), "none".into())), "{after:?}");
    let text = format!("{after:?}");
    assert!(!text.contains("张党员") && !text.contains(MEMBER_PHONE), "counts only: {text}");
    let reply = send_to(
        &state,
        request(
            "POST",
            &format!("/api/emergency/{id}/end"),
            Some(&w.town.admin),
            Some(1),
            Some(json!({"reason": "结束"})),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(get_tile(&state, &uri("emergency", t), &[]).await.status, StatusCode::NO_CONTENT, "back to normal");
    // The public picker names the areas and the active episode over them.
    let areas = call(&pool, "GET", "/api/emergency/areas", None, None).await.json();
    let community =
        areas.as_array().expect("areas").iter().find(|a| a["kind"] == "community").cloned().expect("community");
    assert_eq!(community["active_episode"], Value::Null);
}
