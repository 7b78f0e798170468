//! Station visits, the suggestion box and the station host (issue 23 §3): every rule and every
//! refusal of a check-in (radius, accuracy, once per hour, riders only), the counts (host and
//! county only; the public sees a hint), suggestions (anonymous but to admins; who answers which
//! box) and the host's card edits through OGC Part 4 with If-Match and history.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{Reply, count, get, send};
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;

/// A station at (118.17, 36.18) in Yiyuan, open every day.
async fn station(pool: &PgPool, name: &str, lon: f64) -> i64 {
    sqlx::query_scalar(
        r"insert into station (name, address, geom, opening_hours, services, host_org, phone)
          values ($1, '沂源县历山街道鲁山路10号', ST_SetSRID(ST_MakePoint($2, 36.18), 4326), 'Mo-Su 08:00-20:00',
                  '{rest,water}', '沂源县总工会', '0533-0300001')
          returning id",
    )
    .bind(name)
    .bind(lon)
    .fetch_one(pool)
    .await
    .expect("station")
}

async fn login(pool: &PgPool, name: &str, role: Role) -> String {
    let password = format!("{name}-station-test");
    upsert(pool, &NewAccount { name, role, password: &password, part_time_grid_worker: false, grid_codes: &[] })
        .await
        .expect("account");
    gridmap_server::auth::login(pool, name, &password).await.expect("login").expect("valid login").token
}

async fn host(pool: &PgPool, name: &str, station: i64) -> String {
    let token = login(pool, name, Role::StationHost).await;
    sqlx::query("update account set station_id = $2 where name = $1")
        .bind(name)
        .bind(station)
        .execute(pool)
        .await
        .expect("link host");
    token
}

async fn call(pool: &PgPool, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    }
    .expect("request");
    send(pool, request).await
}

/// Check in `dlat` degrees north of the station (0.001° of latitude ≈ 111 m).
async fn check_in(pool: &PgPool, station: i64, token: &str, dlat: f64) -> Reply {
    call(
        pool,
        "POST",
        &format!("/api/stations/{station}/visits"),
        Some(token),
        Some(json!({"lon": 118.17, "lat": 36.18 + dlat, "accuracy_m": 12})),
    )
    .await
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_rider_within_150_m_checks_in_and_the_visit_counts(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let rider = login(&pool, "visit-rider", Role::Rider).await;
    let reply = check_in(&pool, s, &rider, 0.0010).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let visit = reply.json();
    let d = visit["distance_m"].as_f64().expect("distance");
    assert!((100.0..120.0).contains(&d), "0.001° north is about 111 m on the ellipsoid, got {d}");
    assert_eq!(visit["repeat"], false);
    assert_eq!(visit["station_id"], s);
    assert_eq!(count(&pool, "station_visit").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_check_in_farther_than_150_m_is_refused_with_the_distance_and_nothing_is_stored(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let rider = login(&pool, "visit-rider", Role::Rider).await;
    let reply = check_in(&pool, s, &rider, 0.0014).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&reply));
    let body = reply.json();
    assert_eq!(body["reason"], "too_far");
    let d = body["details"]["distance_m"].as_f64().expect("distance in details");
    assert!((150.0..165.0).contains(&d), "about 155 m, got {d}");
    assert_eq!(body["details"]["radius_m"], 150.0);
    assert!(body["message"].as_str().expect("message").contains("150 m"));
    assert_eq!(count(&pool, "station_visit").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_second_check_in_within_the_hour_returns_the_first_visit_and_counts_nothing(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let other = station(&pool, "胜利路站", 118.171).await;
    let rider = login(&pool, "visit-rider", Role::Rider).await;
    let first = check_in(&pool, s, &rider, 0.0).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = check_in(&pool, s, &rider, 0.0002).await;
    assert_eq!(again.status, StatusCode::OK, "{}", text(&again));
    assert_eq!(again.json()["repeat"], true);
    assert_eq!(again.json()["id"], first.json()["id"], "the answer is the first visit");
    assert_eq!(count(&pool, "station_visit").await, 1);
    // The rule is per station: the neighbouring station (about 90 m away) counts.
    assert_eq!(check_in(&pool, other, &rider, 0.0).await.status, StatusCode::CREATED);
    // And per person: another rider at the first station counts.
    let second_rider = login(&pool, "visit-rider-2", Role::Rider).await;
    assert_eq!(check_in(&pool, s, &second_rider, 0.0).await.status, StatusCode::CREATED);
    assert_eq!(count(&pool, "station_visit").await, 3);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_check_in_an_hour_after_the_last_counts_again(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let rider = login(&pool, "visit-rider", Role::Rider).await;
    assert_eq!(check_in(&pool, s, &rider, 0.0).await.status, StatusCode::CREATED);
    sqlx::query(
        "update station_visit set visited_at = visited_at - interval '61 minutes', counted_until = counted_until - interval '61 minutes'",
    )
    .execute(&pool)
    .await
    .expect("an hour ago");
    let later = check_in(&pool, s, &rider, 0.0).await;
    assert_eq!(later.status, StatusCode::CREATED, "{}", text(&later));
    assert_eq!(count(&pool, "station_visit").await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn concurrent_check_ins_of_one_rider_count_once(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let rider = login(&pool, "visit-rider", Role::Rider).await;
    let replies = futures::future::join_all((0..6).map(|_| check_in(&pool, s, &rider, 0.0))).await;
    let created = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let repeats = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    assert_eq!((created, repeats), (1, 5), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(count(&pool, "station_visit").await, 1);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_fix_coarser_than_100_m_is_refused(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let rider = login(&pool, "visit-rider", Role::Rider).await;
    let reply = call(
        &pool,
        "POST",
        &format!("/api/stations/{s}/visits"),
        Some(&rider),
        Some(json!({"lon": 118.17, "lat": 36.18, "accuracy_m": 350})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&reply));
    assert_eq!(reply.json()["reason"], "inaccurate_fix");
    assert_eq!(count(&pool, "station_visit").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn bad_check_in_bodies_are_400s_naming_the_field(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let rider = login(&pool, "visit-rider", Role::Rider).await;
    for (body, field) in [
        (json!({"lon": 218.0, "lat": 36.18}), Some("lon")),
        (json!({"lon": 118.17, "lat": -91}), Some("lat")),
        (json!({"lon": 118.17, "lat": 36.18, "accuracy_m": -1}), Some("accuracy_m")),
        (json!({"lon": 118.17}), None),
        (json!({"lon": 118.17, "lat": 36.18, "who": "me"}), None),
        (json!({"lon": "east", "lat": 36.18}), None),
    ] {
        let reply = call(&pool, "POST", &format!("/api/stations/{s}/visits"), Some(&rider), Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", text(&reply));
        if let Some(field) = field {
            assert_eq!(reply.json()["field"], field, "{body}");
        }
    }
    let not_a_number =
        call(&pool, "POST", "/api/stations/x/visits", Some(&rider), Some(json!({"lon": 1, "lat": 1}))).await;
    assert_eq!(not_a_number.status, StatusCode::BAD_REQUEST);
    assert_eq!(count(&pool, "station_visit").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn checking_in_at_a_station_that_does_not_exist_is_404(pool: PgPool) {
    let rider = login(&pool, "visit-rider", Role::Rider).await;
    let reply = check_in(&pool, 999_999, &rider, 0.0).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", text(&reply));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn only_logged_in_riders_check_in(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let anonymous =
        call(&pool, "POST", &format!("/api/stations/{s}/visits"), None, Some(json!({"lon": 118.17, "lat": 36.18})))
            .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    for (name, role) in [("visit-worker", Role::GridWorker), ("visit-planner", Role::Planner)] {
        let token = login(&pool, name, role).await;
        assert_eq!(check_in(&pool, s, &token, 0.0).await.status, StatusCode::FORBIDDEN, "{name}");
    }
    let own_host = host(&pool, "visit-host", s).await;
    assert_eq!(check_in(&pool, s, &own_host, 0.0).await.status, StatusCode::FORBIDDEN, "a host does not count visits");
    assert_eq!(count(&pool, "station_visit").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_host_and_the_county_see_counts_per_day_and_month_and_nobody_else_does(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let other = station(&pool, "胜利路站", 118.18).await;
    for k in 0..3 {
        let rider = login(&pool, &format!("visit-rider-{k}"), Role::Rider).await;
        assert_eq!(check_in(&pool, s, &rider, 0.0).await.status, StatusCode::CREATED);
    }
    let own = host(&pool, "visit-host", s).await;
    let reply = call(&pool, "GET", &format!("/api/stations/{s}/visits"), Some(&own), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    let d = reply.json();
    assert_eq!((d["today"].as_i64(), d["this_month"].as_i64(), d["total"].as_i64()), (Some(3), Some(3), Some(3)));
    assert_eq!(d["by_day"].as_array().expect("days").len(), 31);
    assert_eq!(d["by_day"][30]["visits"], 3, "today is the last day");
    assert_eq!(d["by_month"].as_array().expect("months").len(), 12);
    assert_eq!(d["by_month"][11]["visits"], 3);
    assert_eq!(d["busyness"], "normal");
    assert!(!text(&reply).contains("visit-rider"), "counts never say who");
    let planner = login(&pool, "visit-planner", Role::Planner).await;
    assert_eq!(
        call(&pool, "GET", &format!("/api/stations/{s}/visits"), Some(&planner), None).await.status,
        StatusCode::OK
    );
    let county = call(&pool, "GET", "/api/stations/visits", Some(&planner), None).await;
    assert_eq!(county.status, StatusCode::OK, "{}", text(&county));
    assert_eq!(county.json()["total"], 3);
    assert_eq!(county.json()["stations"].as_array().expect("stations").len(), 2);

    let other_host = host(&pool, "visit-other-host", other).await;
    let rider = login(&pool, "visit-rider-0", Role::Rider).await;
    for (who, token) in [("another station's host", &other_host), ("a rider", &rider)] {
        let reply = call(&pool, "GET", &format!("/api/stations/{s}/visits"), Some(token), None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{who}");
    }
    assert_eq!(call(&pool, "GET", "/api/stations/visits", Some(&own), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call(&pool, "GET", &format!("/api/stations/{s}/visits"), None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&pool, "GET", "/api/stations/999999/visits", Some(&planner), None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_public_station_card_shows_a_busyness_hint_never_a_count_or_who(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let quiet = station(&pool, "胜利路站", 118.18).await;
    let _rider = login(&pool, "visit-rider", Role::Rider).await;
    // Eight visits in the last day (one an hour, as the rule allows), one from two days ago.
    sqlx::query(
        r"insert into station_visit (station_id, account_id, visited_at, counted_until, distance_m)
          select $1, a.id, now() - make_interval(hours => h), now() - make_interval(hours => h) + interval '1 hour', 20
            from account a, generate_series(0, 7) h where a.name = 'visit-rider'
          union all
          select $1, a.id, now() - interval '2 days', now() - interval '2 days' + interval '1 hour', 20
            from account a where a.name = 'visit-rider'",
    )
    .bind(s)
    .execute(&pool)
    .await
    .expect("visits");
    let card = get(&pool, &format!("/api/stations/{s}")).await;
    assert_eq!(card.status, StatusCode::OK);
    assert_eq!(card.json()["busyness"], "busy");
    assert_eq!(get(&pool, &format!("/api/stations/{quiet}")).await.json()["busyness"], "quiet");
    let list = get(&pool, "/api/stations").await;
    assert_eq!(list.json()["stations"][0]["busyness"], "busy");
    let near = get(&pool, "/api/stations/nearest?lon=118.17&lat=36.18").await;
    assert_eq!(near.json()["stations"][0]["busyness"], "busy");
    for reply in [&card, &list, &near] {
        let body = text(reply);
        assert!(!body.contains("visits") && !body.contains("visit-rider"), "no count, no who: {body}");
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_rider_suggests_anonymously_and_only_admins_see_who(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let rider = login(&pool, "suggesting-rider", Role::Rider).await;
    let reply =
        call(&pool, "POST", "/api/suggestions", Some(&rider), Some(json!({"station_id": s, "body": " 微波炉坏了 "})))
            .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let created = reply.json();
    assert_eq!((created["status"].as_str(), created["body"].as_str()), (Some("open"), Some("微波炉坏了")));
    assert!(created.get("author").is_none(), "not even to the writer: {created}");
    let county_box =
        call(&pool, "POST", "/api/suggestions", Some(&rider), Some(json!({"body": "希望增加驿站数量"}))).await;
    assert_eq!(county_box.status, StatusCode::CREATED);
    assert_eq!(county_box.json()["station_id"], Value::Null);

    let own_host = host(&pool, "suggest-host", s).await;
    let listed = call(&pool, "GET", "/api/suggestions", Some(&own_host), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", text(&listed));
    assert_eq!(listed.json().as_array().expect("list").len(), 1, "the host reads their box only");
    assert!(!text(&listed).contains("suggesting-rider"));
    let planner = login(&pool, "suggest-planner", Role::Planner).await;
    let all = call(&pool, "GET", "/api/suggestions?box=county", Some(&planner), None).await;
    assert_eq!(all.json().as_array().expect("list").len(), 1);
    assert!(!text(&all).contains("suggesting-rider"), "planners do not see who");
    let admin = login(&pool, "suggest-admin", Role::Admin).await;
    let seen = call(&pool, "GET", "/api/suggestions", Some(&admin), None).await;
    assert_eq!(seen.json().as_array().expect("list").len(), 2);
    assert_eq!(seen.json()[0]["author"]["name"], "suggesting-rider", "admins know who");
    // The writer reads their own (for the answers); another rider reads nothing of theirs.
    let mine = call(&pool, "GET", "/api/suggestions", Some(&rider), None).await;
    assert_eq!(mine.json().as_array().expect("list").len(), 2);
    let stranger = login(&pool, "suggest-stranger", Role::Rider).await;
    let theirs = call(&pool, "GET", "/api/suggestions", Some(&stranger), None).await;
    assert_eq!(theirs.json().as_array().expect("list").len(), 0);
    assert_eq!(call(&pool, "GET", "/api/suggestions", None, None).await.status, StatusCode::UNAUTHORIZED);
    let other = station(&pool, "胜利路站", 118.18).await;
    let elsewhere = call(&pool, "GET", &format!("/api/suggestions?box={other}"), Some(&own_host), None).await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    let bad = call(&pool, "GET", "/api/suggestions?status=closed", Some(&admin), None).await;
    assert_eq!((bad.status, bad.json()["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn blank_long_or_misaddressed_suggestions_are_refused_and_nothing_is_stored(pool: PgPool) {
    let rider = login(&pool, "suggesting-rider", Role::Rider).await;
    for (body, field) in [
        (json!({"body": "   "}), Some("body")),
        (json!({"body": "长".repeat(1001)}), Some("body")),
        (json!({"body": "好", "station_id": 999_999}), Some("station_id")),
        (json!({"body": "好", "author": "me"}), None),
        (json!({}), None),
    ] {
        let reply = call(&pool, "POST", "/api/suggestions", Some(&rider), Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", text(&reply));
        if let Some(field) = field {
            assert_eq!(reply.json()["field"], field);
        }
    }
    let anonymous = call(&pool, "POST", "/api/suggestions", None, Some(json!({"body": "好"}))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(count(&pool, "station_suggestion").await, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_host_answers_their_box_and_planners_the_countys(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let other = station(&pool, "胜利路站", 118.18).await;
    let rider = login(&pool, "suggesting-rider", Role::Rider).await;
    let at_station =
        call(&pool, "POST", "/api/suggestions", Some(&rider), Some(json!({"station_id": s, "body": "热水不热"})))
            .await
            .json()["id"]
            .as_i64()
            .expect("id");
    let county = call(&pool, "POST", "/api/suggestions", Some(&rider), Some(json!({"body": "多建驿站"}))).await.json()
        ["id"]
        .as_i64()
        .expect("id");
    let own = host(&pool, "answer-host", s).await;
    let other_host = host(&pool, "answer-other-host", other).await;
    let planner = login(&pool, "answer-planner", Role::Planner).await;
    let answer = |id: i64, token: String, text: &'static str| {
        let pool = pool.clone();
        async move {
            call(&pool, "POST", &format!("/api/suggestions/{id}/answer"), Some(&token), Some(json!({"answer": text})))
                .await
        }
    };
    for (who, token, id) in [
        ("a rider", rider.clone(), at_station),
        ("another station's host", other_host.clone(), at_station),
        ("a planner, at a station's box", planner.clone(), at_station),
        ("a host, at the county's box", own.clone(), county),
    ] {
        let reply = answer(id, token, "已处理").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{who}: {}", text(&reply));
    }
    let blank = answer(at_station, own.clone(), "  ").await;
    assert_eq!((blank.status, blank.json()["field"].as_str()), (StatusCode::BAD_REQUEST, Some("answer")));
    assert_eq!(answer(999_999, own.clone(), "好").await.status, StatusCode::NOT_FOUND);
    let answered = answer(at_station, own.clone(), "已修好，谢谢提醒").await;
    assert_eq!(answered.status, StatusCode::OK, "{}", text(&answered));
    assert_eq!(answered.json()["status"], "answered");
    assert_eq!(answered.json()["answer"], "已修好，谢谢提醒");
    let by_planner = answer(county, planner.clone(), "正在规划新站点").await;
    assert_eq!(by_planner.status, StatusCode::OK);
    // The writer reads both answers; the open filter finds nothing left.
    let mine = call(&pool, "GET", "/api/suggestions", Some(&rider), None).await.json();
    assert!(mine.as_array().expect("list").iter().all(|g| g["status"] == "answered"), "{mine}");
    let open = call(&pool, "GET", "/api/suggestions?status=open", Some(&planner), None).await.json();
    assert_eq!(open.as_array().expect("list").len(), 0);
    // The dashboard counts them.
    let d = call(&pool, "GET", &format!("/api/stations/{s}/visits"), Some(&own), None).await.json();
    assert_eq!((d["suggestions_open"].as_i64(), d["suggestions_answered"].as_i64()), (Some(0), Some(1)));
}

async fn station_etag(pool: &PgPool, s: i64) -> String {
    let reply = get(pool, &format!("/ogc/collections/stations/items/{s}")).await;
    reply.headers[header::ETAG].to_str().expect("etag").to_string()
}

async fn patch(pool: &PgPool, s: i64, token: &str, etag: Option<&str>, body: Value) -> Reply {
    let mut r = Request::patch(format!("/ogc/collections/stations/items/{s}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(e) = etag {
        r = r.header(header::IF_MATCH, e);
    }
    send(pool, r.body(Body::from(body.to_string())).expect("request")).await
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_host_edits_hours_services_and_notice_of_their_station_with_if_match_and_history(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let other = station(&pool, "胜利路站", 118.18).await;
    let own = host(&pool, "edit-host", s).await;
    let etag = station_etag(&pool, s).await;
    let edit = json!({"properties": {"opening_hours": "Mo-Su 07:00-22:00", "services": ["rest", "water", "charging"],
                                     "notice": "本周六停水，饮水请自带"}});
    assert_eq!(patch(&pool, s, &own, None, edit.clone()).await.status, StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(patch(&pool, s, &own, Some("\"1\""), edit.clone()).await.status, StatusCode::PRECONDITION_FAILED);
    let done = patch(&pool, s, &own, Some(&etag), edit.clone()).await;
    assert_eq!(done.status, StatusCode::OK, "{}", text(&done));
    assert_ne!(done.headers[header::ETAG].to_str().expect("etag"), etag, "a new version");
    assert_eq!(patch(&pool, s, &own, Some(&etag), edit.clone()).await.status, StatusCode::PRECONDITION_FAILED);
    let card = get(&pool, &format!("/api/stations/{s}")).await.json();
    assert_eq!(card["opening_hours"], "Mo-Su 07:00-22:00");
    assert_eq!(card["notice"], "本周六停水，饮水请自带");
    // The history, on the dashboard: who and what.
    let d = call(&pool, "GET", &format!("/api/stations/{s}/visits"), Some(&own), None).await.json();
    assert_eq!(d["edits"][0]["author"], "edit-host");
    assert_eq!(d["edits"][0]["notice"], "本周六停水，饮水请自带");
    let versions: i64 =
        sqlx::query_scalar("select count(*) from station_version where station_id = $1 and op = 'update'")
            .bind(s)
            .fetch_one(&pool)
            .await
            .expect("history");
    assert_eq!(versions, 1);

    // What a host may not do: another property, the geometry, another station, PUT, DELETE, POST.
    let etag = station_etag(&pool, s).await;
    for body in [
        json!({"properties": {"name": "改名站"}}),
        json!({"properties": {"phone": "110"}}),
        json!({"geometry": {"type": "Point", "coordinates": [118.2, 36.2]}}),
    ] {
        let reply = patch(&pool, s, &own, Some(&etag), body.clone()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{body}: {}", text(&reply));
    }
    let other_etag = station_etag(&pool, other).await;
    assert_eq!(patch(&pool, other, &own, Some(&other_etag), edit.clone()).await.status, StatusCode::FORBIDDEN);
    let put = send(
        &pool,
        Request::put(format!("/ogc/collections/stations/items/{s}"))
            .header(header::AUTHORIZATION, format!("Bearer {own}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::IF_MATCH, &etag)
            .body(Body::from(json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.17, 36.18]}, "properties": {"name": "x"}}).to_string()))
            .expect("request"),
    )
    .await;
    assert_eq!(put.status, StatusCode::FORBIDDEN);
    let delete = send(
        &pool,
        Request::delete(format!("/ogc/collections/stations/items/{s}"))
            .header(header::AUTHORIZATION, format!("Bearer {own}"))
            .header(header::IF_MATCH, &etag)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    let create = call(
        &pool,
        "POST",
        "/ogc/collections/stations/items",
        Some(&own),
        Some(json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.17, 36.18]}, "properties": {"name": "新站"}})),
    )
    .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    let grid = call(&pool, "PATCH", "/ogc/collections/grids/items/1", Some(&own), Some(json!({}))).await;
    assert_eq!(grid.status, StatusCode::FORBIDDEN, "hosts never edit grids");
    // A host's notice is bounded like an admin's: the database's rule, as a 4xx.
    let long = patch(&pool, s, &own, Some(&etag), json!({"properties": {"notice": "长".repeat(501)}})).await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&long));
    assert_eq!(count(&pool, "station").await, 2);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_admin_links_a_host_account_to_one_station(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let admin = login(&pool, "link-admin", Role::Admin).await;
    let new = |name: &str, role: &str, station: Value| json!({"name": name, "role": role, "password": "station-host-pass-1", "station_id": station});
    let created =
        call(&pool, "POST", "/api/admin/accounts", Some(&admin), Some(new("host-new", "station_host", json!(s)))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", text(&created));
    assert_eq!(created.json()["station_id"], s);
    let rider =
        call(&pool, "POST", "/api/admin/accounts", Some(&admin), Some(new("rider-new", "rider", json!(s)))).await;
    assert_eq!((rider.status, rider.json()["field"].as_str()), (StatusCode::BAD_REQUEST, Some("station_id")));
    let nowhere = call(
        &pool,
        "POST",
        "/api/admin/accounts",
        Some(&admin),
        Some(new("host-nowhere", "station_host", json!(999_999))),
    )
    .await;
    assert_eq!((nowhere.status, nowhere.json()["field"].as_str()), (StatusCode::BAD_REQUEST, Some("station_id")));
    // A new role other than host unlinks the station.
    let id = created.json()["id"].as_i64().expect("id");
    let demoted =
        call(&pool, "PATCH", &format!("/api/admin/accounts/{id}"), Some(&admin), Some(json!({"role": "rider"}))).await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", text(&demoted));
    assert_eq!(demoted.json()["station_id"], Value::Null);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn each_station_has_a_printable_qr_code_of_its_check_in_link(pool: PgPool) {
    let s = station(&pool, "鲁山路站", 118.17).await;
    let reply = get(&pool, &format!("/api/stations/{s}/qr.svg")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "image/svg+xml");
    let svg = text(&reply);
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    assert_eq!(get(&pool, "/api/stations/999999/qr.svg").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&pool, "/api/stations/x/qr.svg").await.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn the_demo_city_has_2200_plus_visits_across_its_48_stations_and_a_host_each(pool: PgPool) {
    gridmap_server::seed::seed_demo(&pool, 1).await.expect("seed");
    let planner = login(&pool, "seed-planner", Role::Planner).await;
    let county = call(&pool, "GET", "/api/stations/visits", Some(&planner), None).await.json();
    let total = county["total"].as_i64().expect("total");
    assert!((2_200..2_500).contains(&total), "{total} visits");
    assert_eq!(county["stations"].as_array().expect("stations").len(), 48);
    assert!(county["stations"].as_array().expect("stations").iter().all(|s| s["total"].as_i64() > Some(0)));
    let hosts: i64 =
        sqlx::query_scalar("select count(*) from account where role = 'station_host' and station_id is not null")
            .fetch_one(&pool)
            .await
            .expect("hosts");
    assert_eq!(hosts, 48);
    let (open, answered): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where answer is null), count(*) filter (where answer is not null) from station_suggestion",
    )
    .fetch_one(&pool)
    .await
    .expect("suggestions");
    assert!(open > 5 && answered > open, "{open} open, {answered} answered");
    // The hints differ from station to station.
    let list = get(&pool, "/api/stations").await.json();
    let hints: std::collections::BTreeSet<String> = list["stations"]
        .as_array()
        .expect("stations")
        .iter()
        .map(|s| s["busyness"].as_str().expect("hint").to_string())
        .collect();
    assert_eq!(hints.len(), 3, "{hints:?}");
    let labelled: i64 = sqlx::query_scalar("select count(*) from station_visit where source <> 'synthetic-demo'")
        .fetch_one(&pool)
        .await
        .expect("labels");
    assert_eq!(labelled, 0);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn check_ins_and_suggestions_are_rate_limited_per_account_like_report_intake(pool: PgPool) {
    use tower::ServiceExt;
    let s = station(&pool, "鲁山路站", 118.17).await;
    let rider = login(&pool, "limited-rider", Role::Rider).await;
    let quota = governor::Quota::per_hour(std::num::NonZeroU32::MIN)
        .allow_burst(std::num::NonZeroU32::new(10).expect("burst > 0"));
    let mut state = gridmap_server::http::AppState::new(pool.clone());
    state.limits = gridmap_server::http::limits::Limits::with_quotas(quota, quota);
    let router = gridmap_server::http::app(state);
    let mut statuses = Vec::new();
    for k in 0..16 {
        let (uri, body) = if k % 2 == 0 {
            (format!("/api/stations/{s}/visits"), json!({"lon": 118.17, "lat": 36.18}))
        } else {
            ("/api/suggestions".to_string(), json!({"body": format!("第 {k} 条")}))
        };
        let request = Request::post(uri)
            .header(header::AUTHORIZATION, format!("Bearer {rider}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        statuses.push(router.clone().oneshot(request).await.expect("infallible").status());
    }
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(limited, 6, "a burst of 10 writes passes, the rest wait: {statuses:?}");
    assert_eq!(count(&pool, "station_visit").await, 1, "once an hour anyway");
    assert_eq!(count(&pool, "station_suggestion").await, 5);
}
