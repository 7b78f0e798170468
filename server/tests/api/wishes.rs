//! Micro-wishes (微心愿, issue 24 §1): publishing, every step and every refusal of
//! `gridmap_server::wishes` through the HTTP API — first come claims (a second or concurrent
//! claim gets 409), the contact shown only to the claimant holding the claim, the metrics, the
//! map's counts per grid — and the demo seed's wishes.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{Reply, count, send};
use crate::rounds::{Town, town};
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;

const RESIDENT_PHONE: &str = "13912345678";

async fn login(pool: &PgPool, name: &str, role: Role) -> String {
    let password = format!("{name}-password");
    upsert(pool, &NewAccount { name, role, password: &password, part_time_grid_worker: false, grid_codes: &[] })
        .await
        .expect("account");
    gridmap_server::auth::login(pool, name, &password).await.expect("login").expect("valid").token
}

/// The town of the rounds tests, a resident at home in GA's building b3 (with a phone), two
/// volunteers.
struct World {
    town: Town,
    resident: String,
    volunteer: String,
    volunteer2: String,
}

async fn world(pool: &PgPool) -> World {
    let town = town(pool).await;
    let resident = login(pool, "wish-resident", Role::Resident).await;
    sqlx::query(
        "update account set building_id = $1, phone = $2, display_name = '王阿姨' where name = 'wish-resident'",
    )
    .bind(town.b3)
    .bind(RESIDENT_PHONE)
    .execute(pool)
    .await
    .expect("home");
    World {
        resident,
        volunteer: login(pool, "wish-volunteer", Role::Volunteer).await,
        volunteer2: login(pool, "wish-volunteer-2", Role::Volunteer).await,
        town,
    }
}

async fn call(
    pool: &PgPool,
    method: &str,
    uri: &str,
    token: Option<&str>,
    if_match: Option<i64>,
    body: Option<Value>,
) -> Reply {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(v) = if_match {
        r = r.header(header::IF_MATCH, format!("\"{v}\""));
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

fn tomorrow() -> String {
    (chrono::Utc::now() + chrono::Duration::days(2)).date_naive().to_string()
}

fn wish_body() -> Value {
    json!({"category": "repair", "body": "楼道灯坏了，想请人帮忙换灯泡", "desired_on": tomorrow()})
}

/// The resident publishes a wish; returns its id.
async fn publish(pool: &PgPool, w: &World) -> i64 {
    let reply = call(pool, "POST", "/api/wishes", Some(&w.resident), None, Some(wish_body())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    reply.json()["id"].as_i64().expect("id")
}

/// Take a step with the wish's current version.
async fn step(pool: &PgPool, id: i64, token: &str, to: &str, reason: Option<&str>) -> Reply {
    let version: i64 = sqlx::query_scalar("select version::int8 from wish where id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("version");
    let mut body = json!({"to": to});
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    call(pool, "POST", &format!("/api/wishes/{id}/transitions"), Some(token), Some(version), Some(body)).await
}

async fn state(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("select state from wish where id = $1").bind(id).fetch_one(pool).await.expect("state")
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_resident_publishes_a_wish_for_their_home_and_the_board_shows_its_grid_and_community_only(pool: PgPool) {
    let w = world(&pool).await;
    let reply = call(&pool, "POST", "/api/wishes", Some(&w.resident), None, Some(wish_body())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let wish = reply.json();
    assert_eq!(wish["state"], "published");
    assert_eq!(wish["grid_id"], w.town.ga);
    assert_eq!(wish["building"]["id"], w.town.b3, "the resident sees their own building");
    assert_eq!(wish["allowed_next"], json!(["withdrawn"]));
    assert_eq!(reply.headers[header::ETAG], "\"1\"");
    assert_eq!(reply.headers[header::LOCATION], format!("/api/wishes/{}", wish["id"]));

    let board = call(&pool, "GET", &format!("/api/wishes?community={}", w.town.community), None, None, None).await;
    assert_eq!(board.status, StatusCode::OK, "{}", text(&board));
    let board = board.json();
    assert_eq!(board.as_array().expect("list").len(), 1);
    let public = &board[0];
    assert_eq!(public["grid_code"], "GA");
    assert_eq!(public["community_name"], "测试社区");
    assert_eq!(public["allowed_next"], json!([]));
    for private in ["building", "contact", "claimant", "history"] {
        assert!(public.get(private).is_none(), "the board shows no {private}: {public}");
    }
    assert!(!board.to_string().contains(RESIDENT_PHONE) && !board.to_string().contains("王阿姨"));
    let as_volunteer = call(&pool, "GET", "/api/wishes", Some(&w.volunteer), None, None).await.json();
    assert_eq!(as_volunteer[0]["allowed_next"], json!(["claimed"]));
    assert!(as_volunteer[0].get("contact").is_none(), "no contact before the claim");
    let history: Vec<(Option<String>, String)> =
        sqlx::query_as("select from_state, to_state from wish_event").fetch_all(&pool).await.expect("history");
    assert_eq!(history, vec![(None, "published".to_string())]);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_grid_worker_enters_a_wish_on_a_residents_behalf_with_their_contact_kept_private(pool: PgPool) {
    let w = world(&pool).await;
    let mut body = wish_body();
    body["building_id"] = json!(w.town.b2);
    body["resident_name"] = json!("李大爷");
    body["resident_phone"] = json!("0533-3210000");
    let reply = call(&pool, "POST", "/api/wishes", Some(&w.town.worker_a), None, Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let wish = reply.json();
    assert_eq!(
        wish["contact"],
        json!({"name": "李大爷", "phone": "0533-3210000"}),
        "the worker sees what they entered"
    );
    let id = wish["id"].as_i64().expect("id");
    for token in [None, Some(w.volunteer.as_str()), Some(w.town.worker_b.as_str()), Some(w.town.rider.as_str())] {
        let one = call(&pool, "GET", &format!("/api/wishes/{id}"), token, None, None).await;
        assert_eq!(one.status, StatusCode::OK);
        assert!(!text(&one).contains("李大爷") && !text(&one).contains("0533-3210000"), "{}", text(&one));
        assert!(one.json().get("building").is_none());
    }
    // Another grid's building is not the worker's to enter.
    body["building_id"] = json!(w.town.b4);
    let reply = call(&pool, "POST", "/api/wishes", Some(&w.town.worker_a), None, Some(body)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
    assert_eq!(reply.json()["reason"], "not_your_grid");
    assert_eq!(count(&pool, "wish").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_volunteer_claims_completes_and_the_resident_confirms_with_every_step_in_the_history_and_the_volunteer_earns_points(
    pool: PgPool,
) {
    let w = world(&pool).await;
    let id = publish(&pool, &w).await;
    let claimed = step(&pool, id, &w.volunteer, "claimed", None).await;
    assert_eq!(claimed.status, StatusCode::OK, "{}", text(&claimed));
    assert_eq!(claimed.headers[header::ETAG], "\"2\"");
    let claimed = claimed.json();
    assert_eq!(claimed["state"], "claimed");
    assert_eq!(claimed["allowed_next"], json!(["completed", "published", "failed"]));
    assert_eq!(claimed["contact"], json!({"name": "王阿姨", "phone": RESIDENT_PHONE}), "the claimant sees the contact");
    assert_eq!(claimed["building"]["id"], w.town.b3, "and where to go");

    let mine = call(&pool, "GET", "/api/wishes/mine", Some(&w.resident), None, None).await.json();
    assert_eq!(mine[0]["claimant"], "志愿者", "the resident sees who claimed it (a display name)");
    assert_eq!(mine[0]["allowed_next"], json!(["withdrawn"]));

    let done = step(&pool, id, &w.volunteer, "completed", None).await;
    assert_eq!(done.status, StatusCode::OK, "{}", text(&done));
    assert!(done.json().get("contact").is_none(), "the contact goes with the claim");
    let confirmed = step(&pool, id, &w.resident, "confirmed", None).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", text(&confirmed));
    assert_eq!(confirmed.json()["state"], "confirmed");
    assert_eq!(confirmed.json()["allowed_next"], json!([]));
    // The volunteer earns the points market's `wish_completed` rule (20 for volunteers), once.
    let points = call(&pool, "GET", "/api/points/me", Some(&w.volunteer), None, None).await.json();
    assert_eq!(points["balance"], 20, "{points}");
    let again = step(&pool, id, &w.resident, "confirmed", None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", text(&again));
    let points = call(&pool, "GET", "/api/points/me", Some(&w.volunteer), None, None).await.json();
    assert_eq!(points["balance"], 20, "{points}");

    let staff = call(&pool, "GET", &format!("/api/wishes/{id}"), Some(&w.town.worker_a), None, None).await.json();
    let steps: Vec<(Value, Value, Value)> = staff["history"]
        .as_array()
        .expect("history for the grid's worker")
        .iter()
        .map(|e| (e["from_state"].clone(), e["to_state"].clone(), e["actor"].clone()))
        .collect();
    assert_eq!(
        steps,
        vec![
            (Value::Null, json!("published"), json!("wish-resident")),
            (json!("published"), json!("claimed"), json!("wish-volunteer")),
            (json!("claimed"), json!("completed"), json!("wish-volunteer")),
            (json!("completed"), json!("confirmed"), json!("wish-resident")),
        ]
    );
    let public = call(&pool, "GET", &format!("/api/wishes/{id}"), None, None, None).await.json();
    assert!(public.get("history").is_none() && public.get("claimant").is_none(), "{public}");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_contact_is_shown_only_to_the_claimant_and_only_while_they_hold_the_claim(pool: PgPool) {
    let w = world(&pool).await;
    let id = publish(&pool, &w).await;
    let before = call(&pool, "GET", &format!("/api/wishes/{id}"), Some(&w.volunteer), None, None).await;
    assert!(!text(&before).contains(RESIDENT_PHONE), "not before claiming");
    assert_eq!(step(&pool, id, &w.volunteer, "claimed", None).await.status, StatusCode::OK);
    let holder = call(&pool, "GET", &format!("/api/wishes/{id}"), Some(&w.volunteer), None, None).await;
    assert!(text(&holder).contains(RESIDENT_PHONE), "{}", text(&holder));
    for other in [&w.volunteer2, &w.town.worker_b, &w.town.rider] {
        let seen = call(&pool, "GET", &format!("/api/wishes/{id}"), Some(other), None, None).await;
        assert!(!text(&seen).contains(RESIDENT_PHONE), "{}", text(&seen));
        let board = call(&pool, "GET", "/api/wishes?state=all", Some(other), None, None).await;
        assert!(!text(&board).contains(RESIDENT_PHONE));
    }
    // Released: the volunteer holds nothing any more.
    let released = step(&pool, id, &w.volunteer, "published", Some("临时有事")).await;
    assert_eq!(released.status, StatusCode::OK, "{}", text(&released));
    let after = call(&pool, "GET", &format!("/api/wishes/{id}"), Some(&w.volunteer), None, None).await;
    assert!(!text(&after).contains(RESIDENT_PHONE), "{}", text(&after));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_second_claim_gets_409_already_claimed_and_a_released_claim_opens_the_wish_again(pool: PgPool) {
    let w = world(&pool).await;
    let id = publish(&pool, &w).await;
    let first = call(
        &pool,
        "POST",
        &format!("/api/wishes/{id}/transitions"),
        Some(&w.volunteer),
        Some(1),
        Some(json!({"to": "claimed"})),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", text(&first));
    // The second volunteer read the board before the claim: the same version.
    let second = call(
        &pool,
        "POST",
        &format!("/api/wishes/{id}/transitions"),
        Some(&w.volunteer2),
        Some(1),
        Some(json!({"to": "claimed"})),
    )
    .await;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", text(&second));
    assert_eq!(second.json()["code"], "conflict");
    assert_eq!(second.json()["reason"], "already_claimed");
    let by_worker = step(&pool, id, &w.town.worker_b, "claimed", None).await;
    assert_eq!(by_worker.status, StatusCode::CONFLICT);

    let release = step(&pool, id, &w.volunteer, "published", None).await;
    assert_eq!(release.status, StatusCode::OK, "{}", text(&release));
    assert_eq!(release.json()["allowed_next"], json!(["claimed"]));
    let again = step(&pool, id, &w.volunteer2, "claimed", None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", text(&again));
    let (claimant, first_claimed, claimed): (String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as(
            "select a.name, w.first_claimed_at, w.claimed_at from wish w join account a on a.id = w.claimant_id where w.id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("claim");
    assert_eq!(claimant, "wish-volunteer-2");
    assert!(first_claimed < claimed, "the time to a claim counts from the first claim");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn of_concurrent_claims_exactly_one_wins_and_the_others_get_409(pool: PgPool) {
    let w = world(&pool).await;
    let id = publish(&pool, &w).await;
    let mut volunteers =
        vec![w.volunteer.clone(), w.volunteer2.clone(), w.town.worker_a.clone(), w.town.worker_b.clone()];
    for i in 3..=6 {
        volunteers.push(login(&pool, &format!("wish-volunteer-{i}"), Role::Volunteer).await);
    }
    let uri = format!("/api/wishes/{id}/transitions");
    let replies = futures::future::join_all(
        volunteers.iter().map(|v| call(&pool, "POST", &uri, Some(v), Some(1), Some(json!({"to": "claimed"})))),
    )
    .await;
    let won = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    let lost: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::CONFLICT).collect();
    assert_eq!(won, 1, "{:?}", replies.iter().map(|r| (r.status, text(r))).collect::<Vec<_>>());
    assert_eq!(lost.len(), volunteers.len() - 1);
    assert!(lost.iter().all(|r| r.json()["reason"] == "already_claimed"));
    let claims: i64 = sqlx::query_scalar("select count(*) from wish_event where wish_id = $1 and to_state = 'claimed'")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("claims");
    assert_eq!(claims, 1, "one claim in the history");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn withdrawing_and_failing_need_a_reason_and_end_the_wish(pool: PgPool) {
    let w = world(&pool).await;
    let id = publish(&pool, &w).await;
    let bare = step(&pool, id, &w.resident, "withdrawn", None).await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST, "{}", text(&bare));
    assert_eq!(bare.json()["field"], "reason");
    assert_eq!(bare.json()["reason"], "reason_required");
    let long = step(&pool, id, &w.resident, "withdrawn", Some(&"长".repeat(501))).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(state(&pool, id).await, "published", "nothing stored");
    let withdrawn = step(&pool, id, &w.resident, "withdrawn", Some("家人已帮忙")).await;
    assert_eq!(withdrawn.status, StatusCode::OK, "{}", text(&withdrawn));
    assert_eq!(withdrawn.json()["end_reason"], "家人已帮忙");
    let after = step(&pool, id, &w.volunteer, "claimed", None).await;
    assert_eq!(after.status, StatusCode::CONFLICT);

    // Failed: by the claimant, with a reason.
    let id = publish(&pool, &w).await;
    assert_eq!(step(&pool, id, &w.volunteer, "claimed", None).await.status, StatusCode::OK);
    let bare = step(&pool, id, &w.volunteer, "failed", Some("  ")).await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST, "a blank reason is none");
    let failed = step(&pool, id, &w.volunteer, "failed", Some("需要专业电工")).await;
    assert_eq!(failed.status, StatusCode::OK, "{}", text(&failed));
    assert_eq!(state(&pool, id).await, "failed");
    assert_eq!(step(&pool, id, &w.resident, "confirmed", None).await.status, StatusCode::CONFLICT);
    let reason: Option<String> =
        sqlx::query_scalar("select reason from wish_event where wish_id = $1 and to_state = 'failed'")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("event");
    assert_eq!(reason.as_deref(), Some("需要专业电工"));
    // A grid worker of the wish's grid may also say it cannot be done, even before a claim.
    let id = publish(&pool, &w).await;
    assert_eq!(step(&pool, id, &w.town.worker_a, "failed", Some("超出服务范围")).await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn steps_that_are_not_the_callers_are_refused_with_403_and_a_reason_and_change_nothing(pool: PgPool) {
    let w = world(&pool).await;
    let id = publish(&pool, &w).await;
    let uri = format!("/api/wishes/{id}/transitions");
    let anonymous = call(&pool, "POST", &uri, None, Some(1), Some(json!({"to": "claimed"}))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    for (token, to, reason) in [
        (&w.town.rider, "claimed", "role_cannot_act"),
        (&w.town.planner, "claimed", "role_cannot_act"),
        (&w.resident, "claimed", "role_cannot_act"),
        (&w.volunteer, "withdrawn", "role_cannot_act"),
        (&w.town.worker_b, "withdrawn", "not_your_grid"),
        (&w.volunteer, "completed", "not_the_claimant"),
    ] {
        let reply = step(&pool, id, token, to, if to == "withdrawn" { Some("x") } else { None }).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{to}: {}", text(&reply));
        assert_eq!(reply.json()["reason"], reason, "{to}: {}", text(&reply));
    }
    assert_eq!(state(&pool, id).await, "published");
    // Claimed by a grid worker of the wish's own grid: another volunteer cannot complete it, the
    // claimant cannot confirm their own work, another resident cannot confirm it.
    assert_eq!(step(&pool, id, &w.town.worker_a, "claimed", None).await.status, StatusCode::OK);
    let other = step(&pool, id, &w.volunteer2, "completed", None).await;
    assert_eq!(other.json()["reason"], "not_the_claimant");
    assert_eq!(step(&pool, id, &w.town.worker_a, "completed", None).await.status, StatusCode::OK);
    let own = step(&pool, id, &w.town.worker_a, "confirmed", None).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN);
    assert_eq!(own.json()["reason"], "own_wish");
    let neighbour = login(&pool, "wish-neighbour", Role::Resident).await;
    let stranger = step(&pool, id, &neighbour, "confirmed", None).await;
    assert_eq!(stranger.json()["reason"], "not_your_wish");
    assert_eq!(state(&pool, id).await, "completed");
    // Publishing: riders, volunteers, planners do not publish.
    for token in [&w.town.rider, &w.volunteer, &w.town.planner] {
        let reply = call(&pool, "POST", "/api/wishes", Some(token), None, Some(wish_body())).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
    }
    assert_eq!(count(&pool, "wish").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn wrong_states_get_409_and_a_missing_or_stale_if_match_428_or_412(pool: PgPool) {
    let w = world(&pool).await;
    let id = publish(&pool, &w).await;
    let uri = format!("/api/wishes/{id}/transitions");
    let early = step(&pool, id, &w.resident, "confirmed", None).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", text(&early));
    assert_eq!(early.json()["reason"], "transition_not_allowed");
    let missing = call(&pool, "POST", &uri, Some(&w.volunteer), None, Some(json!({"to": "claimed"}))).await;
    assert_eq!(missing.status, StatusCode::PRECONDITION_REQUIRED, "{}", text(&missing));
    assert_eq!(missing.json()["reason"], "version_required");
    let stale = call(&pool, "POST", &uri, Some(&w.volunteer), Some(7), Some(json!({"to": "claimed"}))).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED, "{}", text(&stale));
    assert_eq!(stale.json()["reason"], "stale_version");
    assert_eq!(state(&pool, id).await, "published");
    let gone = call(
        &pool,
        "POST",
        "/api/wishes/999999/transitions",
        Some(&w.volunteer),
        Some(1),
        Some(json!({"to": "claimed"})),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&pool, "GET", "/api/wishes/999999", None, None, None).await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_input_gets_a_4xx_naming_the_field_and_stores_nothing(pool: PgPool) {
    let w = world(&pool).await;
    let past = (chrono::Utc::now() - chrono::Duration::days(3)).date_naive().to_string();
    let far = (chrono::Utc::now() + chrono::Duration::days(120)).date_naive().to_string();
    let mut on_behalf = wish_body();
    on_behalf["building_id"] = json!(w.town.b2);
    for (token, body, status, field) in [
        (&w.resident, json!({"category": "repair", "body": "x", "desired_on": tomorrow(), "colour": "red"}), 400, None),
        (&w.resident, json!({"category": "magic", "body": "x", "desired_on": tomorrow()}), 400, Some("category")),
        (&w.resident, json!({"category": "repair", "body": "   ", "desired_on": tomorrow()}), 400, Some("body")),
        (
            &w.resident,
            json!({"category": "repair", "body": "长".repeat(501), "desired_on": tomorrow()}),
            400,
            Some("body"),
        ),
        (&w.resident, json!({"category": "repair", "body": "x", "desired_on": past}), 400, Some("desired_on")),
        (&w.resident, json!({"category": "repair", "body": "x", "desired_on": far}), 400, Some("desired_on")),
        (&w.resident, json!({"category": "repair", "body": "x", "desired_on": "tomorrow"}), 400, None),
        (&w.resident, json!({"category": "repair", "body": "x"}), 400, None),
        (
            &w.resident,
            json!({"category": "repair", "body": "x", "desired_on": tomorrow(), "resident_name": "某某"}),
            400,
            Some("resident_name"),
        ),
        (&w.town.worker_a, on_behalf.clone(), 400, Some("resident_name")),
        (
            &w.town.worker_a,
            json!({"category": "repair", "body": "x", "desired_on": tomorrow(), "resident_name": "某", "resident_phone": "1"}),
            400,
            Some("resident_phone"),
        ),
        (
            &w.town.worker_a,
            json!({"category": "repair", "body": "x", "desired_on": tomorrow(), "resident_name": "某", "resident_phone": "12345"}),
            400,
            Some("building_id"),
        ),
        (
            &w.town.worker_a,
            json!({"building_id": 999_999, "category": "repair", "body": "x", "desired_on": tomorrow(), "resident_name": "某", "resident_phone": "12345"}),
            422,
            None,
        ),
    ] {
        let reply = call(&pool, "POST", "/api/wishes", Some(token), None, Some(body.clone())).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", text(&reply));
        assert!(reply.json()["message"].is_string(), "a JSON error");
        if let Some(f) = field {
            assert_eq!(reply.json()["field"], f, "{body}: {}", text(&reply));
        }
    }
    // A resident whose account has no home building: 422.
    let homeless = login(&pool, "wish-homeless", Role::Resident).await;
    let reply = call(&pool, "POST", "/api/wishes", Some(&homeless), None, Some(wish_body())).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&reply));
    // Another building than their home: 403.
    let mut elsewhere = wish_body();
    elsewhere["building_id"] = json!(w.town.b4);
    let reply = call(&pool, "POST", "/api/wishes", Some(&w.resident), None, Some(elsewhere)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
    let plain = Request::post("/api/wishes")
        .header(header::AUTHORIZATION, format!("Bearer {}", w.resident))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("a wish"))
        .expect("request");
    assert_eq!(send(&pool, plain).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(count(&pool, "wish").await, 0, "nothing stored");
    assert_eq!(count(&pool, "wish_event").await, 0);

    // Transitions and queries.
    let id = publish(&pool, &w).await;
    for body in [
        json!({"to": "done"}),
        json!({"to": "claimed", "extra": 1}),
        json!({"to": "claimed", "reason": "因为"}),
        json!({}),
    ] {
        let reply = call(
            &pool,
            "POST",
            &format!("/api/wishes/{id}/transitions"),
            Some(&w.volunteer),
            Some(1),
            Some(body.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", text(&reply));
    }
    assert_eq!(state(&pool, id).await, "published");
    for uri in [
        "/api/wishes?state=lost",
        "/api/wishes?limit=0",
        "/api/wishes?colour=red",
        "/api/wishes?county=nowhere",
        "/api/wishes/stats?community=x",
        "/api/wishes/open-counts?grid=1",
        "/api/wishes/abc",
        "/api/stats?community=x",
    ] {
        let reply = call(&pool, "GET", uri, None, None, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}: {}", text(&reply));
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn metrics_count_published_claimed_completed_and_the_median_hours_to_a_claim_per_grid_community_and_county(
    pool: PgPool,
) {
    let w = world(&pool).await;
    // Four wishes in GA: confirmed (claimed after 2 h), completed (after 4 h), claimed (6 h), open;
    // one in GB, withdrawn.
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(publish(&pool, &w).await);
    }
    for (i, to) in [(0, "confirmed"), (1, "completed"), (2, "claimed")] {
        let id = ids[i];
        assert_eq!(step(&pool, id, &w.volunteer, "claimed", None).await.status, StatusCode::OK);
        if to != "claimed" {
            assert_eq!(step(&pool, id, &w.volunteer, "completed", None).await.status, StatusCode::OK);
        }
        if to == "confirmed" {
            assert_eq!(step(&pool, id, &w.resident, "confirmed", None).await.status, StatusCode::OK);
        }
        sqlx::query("update wish set first_claimed_at = created_at + make_interval(hours => $2) where id = $1")
            .bind(id)
            .bind(2 * (i32::try_from(i).expect("small") + 1))
            .execute(&pool)
            .await
            .expect("claim time");
    }
    let mut body = wish_body();
    body["building_id"] = json!(w.town.b4);
    body["resident_name"] = json!("赵");
    body["resident_phone"] = json!("12345");
    let gb = call(&pool, "POST", "/api/wishes", Some(&w.town.worker_b), None, Some(body)).await.json();
    let gb = gb["id"].as_i64().expect("id");
    assert_eq!(step(&pool, gb, &w.town.worker_b, "withdrawn", Some("不需要了")).await.status, StatusCode::OK);

    let stats = call(&pool, "GET", &format!("/api/stats?grid={}", w.town.ga), None, None, None).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", text(&stats));
    let s = stats.json();
    assert!(s["closure_rate"].is_null(), "the reports' fields stay: {s}");
    let wishes = &s["wishes"];
    assert_eq!(wishes["published"], 4);
    assert_eq!(wishes["claimed"], 3);
    assert_eq!(wishes["completed"], 2);
    assert_eq!(wishes["confirmed"], 1);
    assert_eq!(wishes["open"], 1);
    assert_eq!(wishes["completion_rate"], 0.5);
    assert_eq!(wishes["median_hours_to_claim"], 4.0);

    let county_code: String = sqlx::query_scalar("select code from county where id = $1")
        .bind(w.town.county)
        .fetch_one(&pool)
        .await
        .expect("code");
    let county = call(&pool, "GET", &format!("/api/stats?county={county_code}"), None, None, None).await.json();
    assert_eq!(county["wishes"]["published"], 5);
    assert_eq!(county["wishes"]["withdrawn"], 1);
    assert_eq!(county["wishes"]["completion_rate"], 0.5, "a withdrawn wish needed no doing");
    let community =
        call(&pool, "GET", &format!("/api/stats?community={}", w.town.community), None, None, None).await.json();
    assert_eq!(community["wishes"]["published"], 5);

    let report =
        call(&pool, "GET", &format!("/api/wishes/stats?community={}", w.town.community), None, None, None).await;
    assert_eq!(report.status, StatusCode::OK, "{}", text(&report));
    let report = report.json();
    assert_eq!(report["total"]["published"], 5);
    assert_eq!(report["communities"][0]["published"], 5);
    let grids: Vec<(Value, Value)> = report["grids"]
        .as_array()
        .expect("grids")
        .iter()
        .map(|g| (g["code"].clone(), g["published"].clone()))
        .collect();
    assert_eq!(grids, vec![(json!("GA"), json!(4)), (json!("GB"), json!(1))]);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_map_layer_counts_open_wishes_per_grid_at_a_point_inside_it_and_names_no_building(pool: PgPool) {
    let w = world(&pool).await;
    publish(&pool, &w).await;
    publish(&pool, &w).await;
    let claimed = publish(&pool, &w).await;
    assert_eq!(step(&pool, claimed, &w.volunteer, "claimed", None).await.status, StatusCode::OK);
    let reply = call(&pool, "GET", "/api/wishes/open-counts", None, None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/geo+json");
    let fc = reply.json();
    let features = fc["features"].as_array().expect("features");
    assert_eq!(features.len(), 1, "only grids with open wishes: {fc}");
    assert_eq!(features[0]["properties"]["open"], 2);
    assert_eq!(features[0]["properties"]["code"], "GA");
    let inside: bool =
        sqlx::query_scalar("select ST_Contains(geom, ST_SetSRID(ST_MakePoint($2, $3), 4326)) from grid where id = $1")
            .bind(w.town.ga)
            .bind(features[0]["geometry"]["coordinates"][0].as_f64().expect("lon"))
            .bind(features[0]["geometry"]["coordinates"][1].as_f64().expect("lat"))
            .fetch_one(&pool)
            .await
            .expect("inside");
    assert!(inside, "the point is the grid's, not the building's");
    let (lon, lat): (f64, f64) = sqlx::query_as("select ST_X(anchor), ST_Y(anchor) from building where id = $1")
        .bind(w.town.b3)
        .fetch_one(&pool)
        .await
        .expect("anchor");
    assert!(!text(&reply).contains(&format!("{lon:.6}")) || !text(&reply).contains(&format!("{lat:.6}")));
    let other = call(&pool, "GET", "/api/wishes/open-counts?community=999999", None, None, None).await.json();
    assert_eq!(other["features"], json!([]));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_demo_seed_has_over_1800_wishes_with_over_98_percent_of_the_older_ones_claimed_and_completed(pool: PgPool) {
    gridmap_server::seed::seed_demo(&pool, 1).await.expect("seed");
    let (total, older, older_done, older_claimed, open): (i64, i64, i64, i64, i64) = sqlx::query_as(
        r"select count(*),
                 count(*) filter (where created_at < now() - interval '30 days'),
                 count(*) filter (where created_at < now() - interval '30 days' and state in ('completed', 'confirmed')),
                 count(*) filter (where created_at < now() - interval '30 days' and first_claimed_at is not null),
                 count(*) filter (where state = 'published')
            from wish",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert!(total >= 1800, "{total}");
    assert!(older_done * 100 > older * 98, "{older_done} of {older}");
    assert!(older_claimed * 100 > older * 98, "{older_claimed} of {older}");
    assert!(open > 10, "the board has open wishes: {open}");
    let future: i64 = sqlx::query_scalar(
        "select count(*) from wish where greatest(first_claimed_at, completed_at, confirmed_at, ended_at) > now()",
    )
    .fetch_one(&pool)
    .await
    .expect("future");
    assert_eq!(future, 0, "no step lies in the future");
    let volunteers: i64 =
        sqlx::query_scalar("select count(*) from account where role = 'volunteer'").fetch_one(&pool).await.expect("v");
    assert!(volunteers >= 100);
    let unlabelled: i64 = sqlx::query_scalar(
        "select count(*) from wish where source <> 'synthetic-demo' or body not like '（合成演示）%'",
    )
    .fetch_one(&pool)
    .await
    .expect("labels");
    assert_eq!(unlabelled, 0);
    // The demo resident's wish waits for them; the stats say what the county says.
    let stats = crate::common::get(&pool, "/api/stats?county=370323").await.json();
    assert!(stats["wishes"]["completion_rate"].as_f64().expect("rate") > 0.95, "{stats}");
    let events: i64 = sqlx::query_scalar("select count(*) from wish_event").fetch_one(&pool).await.expect("events");
    assert!(events > total * 3, "every wish has its history: {events}");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_admin_creates_a_resident_with_a_home_building_and_only_residents_have_one(pool: PgPool) {
    let w = world(&pool).await;
    let body =
        json!({"name": "new-resident", "role": "resident", "password": "Qx7!harbour-lamp-9", "building_id": w.town.b2});
    let reply = call(&pool, "POST", "/api/admin/accounts", Some(&w.town.admin), None, Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    assert_eq!(reply.json()["building_id"], w.town.b2);
    let id = reply.json()["id"].as_i64().expect("id");
    let body =
        json!({"name": "not-a-resident", "role": "rider", "password": "Qx7!harbour-lamp-9", "building_id": w.town.b2});
    let reply = call(&pool, "POST", "/api/admin/accounts", Some(&w.town.admin), None, Some(body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", text(&reply));
    assert_eq!(reply.json()["field"], "building_id");
    let body = json!({"name": "nowhere-resident", "role": "resident", "password": "Qx7!harbour-lamp-9", "building_id": 999_999});
    let reply = call(&pool, "POST", "/api/admin/accounts", Some(&w.town.admin), None, Some(body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", text(&reply));
    // A new role clears the home.
    let reply = call(
        &pool,
        "PATCH",
        &format!("/api/admin/accounts/{id}"),
        Some(&w.town.admin),
        None,
        Some(json!({"role": "volunteer"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    assert_eq!(reply.json()["building_id"], Value::Null);
    assert_eq!(reply.json()["role"], "volunteer");
}

/// A JPEG-shaped upload whose EXIF segment carries a GPS marker, and `scan` in its scan data.
fn jpeg_with_exif(scan: &[u8]) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8];
    let exif = b"Exif\0\0GPSLatitude=36.18";
    b.extend_from_slice(&[0xFF, 0xE1]);
    b.extend_from_slice(&u16::try_from(exif.len() + 2).expect("short").to_be_bytes());
    b.extend_from_slice(exif);
    b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02]);
    b.extend_from_slice(scan);
    b.extend_from_slice(&[0xFF, 0xD9]);
    b
}

/// `POST /api/wishes/{id}/photo` with one multipart part named `part`.
async fn attach_photo(pool: &PgPool, id: i64, token: Option<&str>, part: &str, bytes: &[u8]) -> Reply {
    let boundary = "wish-photo-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"home.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut r = Request::post(format!("/api/wishes/{id}/photo"))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"));
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    send(pool, r.body(Body::from(body)).expect("request")).await
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_wish_photo_is_stripped_of_its_metadata_and_seen_by_the_resident_the_claimant_and_staff_only(pool: PgPool) {
    let w = world(&pool).await;
    let id = publish(&pool, &w).await;
    let photo = jpeg_with_exif(b"the-stairwell");
    assert_eq!(attach_photo(&pool, id, None, "photo", &photo).await.status, StatusCode::UNAUTHORIZED);
    for token in [&w.volunteer, &w.town.worker_b, &w.town.planner, &w.town.rider] {
        let reply = attach_photo(&pool, id, Some(token), "photo", &photo).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply));
    }
    let reply = attach_photo(&pool, id, Some(&w.resident), "photo", b"not an image").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", text(&reply));
    let reply = attach_photo(&pool, id, Some(&w.resident), "picture", &photo).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", text(&reply));
    let reply = call(&pool, "POST", &format!("/api/wishes/{id}/photo"), Some(&w.resident), None, Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", text(&reply));
    assert_eq!(count(&pool, "wish_photo").await, 0, "refusals store nothing");
    let big = vec![0u8; gridmap_server::reports::photos::MAX_PHOTO_BYTES + 1];
    let reply = attach_photo(&pool, id, Some(&w.resident), "photo", &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", text(&reply));

    let reply = attach_photo(&pool, id, Some(&w.resident), "photo", &photo).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    assert_eq!(reply.json()["has_photo"], true);
    let stored: Vec<u8> = sqlx::query_scalar("select bytes from wish_photo where wish_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("stored");
    assert!(!stored.windows(11).any(|x| x == b"GPSLatitude"), "EXIF is stripped");
    assert!(stored.windows(13).any(|x| x == b"the-stairwell"), "the picture is kept");
    // The public board does not even say there is one.
    let board = call(&pool, "GET", &format!("/api/wishes/{id}"), None, None, None).await.json();
    assert!(board.get("has_photo").is_none(), "{board}");

    let url = format!("/api/wishes/{id}/photo");
    assert_eq!(call(&pool, "GET", &url, None, None, None).await.status, StatusCode::UNAUTHORIZED);
    for (token, status) in [
        (&w.resident, StatusCode::OK),
        (&w.town.worker_a, StatusCode::OK),
        (&w.town.planner, StatusCode::OK),
        (&w.town.admin, StatusCode::OK),
        (&w.volunteer, StatusCode::FORBIDDEN),
        (&w.town.worker_b, StatusCode::FORBIDDEN),
        (&w.town.rider, StatusCode::FORBIDDEN),
    ] {
        let reply = call(&pool, "GET", &url, Some(token), None, None).await;
        assert_eq!(reply.status, status, "{}", text(&reply));
        if status == StatusCode::OK {
            assert_eq!(reply.headers[header::CONTENT_TYPE], "image/jpeg");
            assert_eq!(reply.body, stored);
        }
    }
    // The claimant sees it once they hold the claim; the worker replaces it meanwhile.
    assert_eq!(step(&pool, id, &w.volunteer, "claimed", None).await.status, StatusCode::OK);
    assert_eq!(call(&pool, "GET", &url, Some(&w.volunteer), None, None).await.status, StatusCode::OK);
    let reply = attach_photo(&pool, id, Some(&w.town.worker_a), "photo", &jpeg_with_exif(b"new")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    assert_eq!(count(&pool, "wish_photo").await, 1, "one photo per wish");
    // A closed wish takes no new photo.
    assert_eq!(step(&pool, id, &w.resident, "withdrawn", Some("不需要了")).await.status, StatusCode::OK);
    let reply = attach_photo(&pool, id, Some(&w.resident), "photo", &photo).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", text(&reply));
    let missing = call(&pool, "GET", "/api/wishes/999999/photo", Some(&w.town.admin), None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
