//! Privacy: sentinel values go into every private field — reporter identity, phone numbers,
//! building leaders' contacts (the private number of every leader's term, a leader's login),
//! login names of workers, idempotency keys, password hashes, who checked in at a station, who
//! wrote a suggestion (and its text and answer), a station host's login, door-knocking visit
//! notes and visitors, the sentiment log's text and tags, the points market's redeemers (login,
//! name, key, cancel reason) and a merchant's login and shop account, emergency mode's
//! registered members (name, phone, skills, login, squad), who started an episode, who checked
//! a member in and who added a task (logins) and a task's title — then
//! notes and visitors, the sentiment log's text and tags, a wish's resident (login, name,
//! phone, or the name and phone a worker entered), its claimant, its end reason and its photo — then
//! every public route (each GET the authorization table opens to anonymous callers) is crawled,
//! anonymously, as an unrelated rider, as a grid worker of another grid and as another building's
//! leader, and no response may
//! contain any sentinel. The crawl
//! fails if a public route is added without being crawled here.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use sqlx::PgPool;

use crate::access::{O, TABLE};
use crate::common::send;
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;
use gridmap_server::seed;

const REPORTER_LOGIN: &str = "sentinel-reporter-login";
const REPORTER_NAME: &str = "SENTINELREPORTERNAME";
const WORKER_LOGIN: &str = "sentinel-worker-login";
const PHONE: &str = "SENTINELPHONE";
const LEADER_NAME: &str = "SENTINELLEADERNAME";
const LEADER_PHONE: &str = "SENTINELLEADERPHONE";
const IDEMPOTENCY_KEY: &str = "5e471e15-0000-4000-8000-00000000abcd";
const API_KEY_NAME: &str = "sentinel-apikey-name";
const DESKTOP_KEY_NAME: &str = "sentinel-desktop-key";
const PLANNER_LOGIN: &str = "sentinel-planner-login";
const OPEN311_FIRST_NAME: &str = "SENTINELOPENFIRSTNAME";
const OPEN311_EMAIL: &str = "sentinel-open311@example.org";
const PHOTO: &str = "SENTINELAFTERPHOTO";
const SENTIMENT_TEXT: &str = "SENTINELSENTIMENTTEXT";
const VISIT_NOTE: &str = "SENTINELVISITNOTE";
/// A tag no public answer has any reason to carry (the log's tags are private with it).
const SENTIMENT_TAG: &str = "key_group_care";
// The column takes a phone number only: digits no demo value or id has.
const LEADER_PRIVATE_PHONE: &str = "+86 (977) 3141-5926";
const LEADER_LOGIN: &str = "sentinel-leader-login";
const HOST_LOGIN: &str = "sentinel-host-login";
const VISITOR_LOGIN: &str = "sentinel-visitor-login";
const VISITOR_NAME: &str = "SENTINELVISITORNAME";
const SUGGESTER_LOGIN: &str = "sentinel-suggester-login";
const SUGGESTION: &str = "SENTINELSUGGESTIONTEXT";
const ANSWER: &str = "SENTINELANSWERTEXT";
const REDEEMER_LOGIN: &str = "sentinel-redeemer-login";
const REDEEMER_NAME: &str = "SENTINELREDEEMERNAME";
const MERCHANT_LOGIN: &str = "sentinel-merchant-login";
const MERCHANT_NAME: &str = "SENTINELMERCHANTNAME";
const REDEMPTION_KEY: &str = "5e471e15-0000-4000-8000-00000000beef";
const CANCEL_REASON: &str = "SENTINELCANCELREASON";
const RESIDENT_LOGIN: &str = "sentinel-resident-login";
const RESIDENT_NAME: &str = "SENTINELRESIDENTNAME";
// The wish's phone columns take a phone number only: digits no demo value or id has.
const RESIDENT_PHONE: &str = "+86 (955) 1123-5813";
const WISH_RESIDENT_NAME: &str = "SENTINELWISHRESIDENT";
const WISH_RESIDENT_PHONE: &str = "+86 (966) 2113-4558";
const VOLUNTEER_LOGIN: &str = "sentinel-volunteer-login";
const VOLUNTEER_NAME: &str = "SENTINELVOLUNTEERNAME";
const WISH_REASON: &str = "SENTINELWISHREASON";
const WISH_PHOTO: &str = "SENTINELWISHPHOTO";
const MEMBER_NAME: &str = "SENTINELMEMBERNAME";
// party_member.phone takes a phone number only: digits no demo value or id has.
const MEMBER_PHONE: &str = "+86 (933) 7177-2207";
const MEMBER_LOGIN: &str = "sentinel-member-login";
const MEMBER_SKILL: &str = "SENTINELSKILL";
const SQUAD_NAME: &str = "SENTINELSQUADNAME";
const EMERGENCY_ADMIN_LOGIN: &str = "sentinel-emergency-admin";
const TASK_TITLE: &str = "SENTINELTASKTITLE";

async fn login(pool: &PgPool, name: &str, role: Role, grid_codes: &[String]) -> String {
    let password = format!("{name}-password");
    upsert(pool, &NewAccount { name, role, password: &password, part_time_grid_worker: false, grid_codes })
        .await
        .expect("account");
    gridmap_server::auth::login(pool, name, &password).await.expect("login").expect("valid").token
}

fn request(method: &str, uri: &str, token: Option<&str>, body: Option<serde_json::Value>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    }
    .expect("request")
}

/// XYZ tile containing a WGS84 point.
fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let lat = lat.to_radians();
    let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
    (x as u32, y as u32)
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn no_private_value_appears_in_any_public_response(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    // Private fields everywhere: every account's phone, every building leader.
    sqlx::query("update account set phone = $1 || id").bind(PHONE).execute(&pool).await.expect("phones");
    sqlx::query("update building set leader_name = $1, leader_phone = $2")
        .bind(LEADER_NAME)
        .bind(LEADER_PHONE)
        .execute(&pool)
        .await
        .expect("leaders");

    // Red building leaders (migration 0032): every term's private number, and a leader's login
    // linked to the term of a building in the first grid.
    sqlx::query("update building_leader set phone = $1")
        .bind(LEADER_PRIVATE_PHONE)
        .execute(&pool)
        .await
        .expect("phones");
    let _leader = login(&pool, LEADER_LOGIN, Role::BuildingLeader, &[]).await;
    let led_building: i64 = sqlx::query_scalar(
        r"update building_leader set account_id = (select id from account where name = $1)
           where id = (select l.id from building_leader l join building b on b.id = l.building_id
                        where l.term_end >= gridmap_county_today() order by b.grid_id, b.id limit 1)
          returning building_id",
    )
    .bind(LEADER_LOGIN)
    .fetch_one(&pool)
    .await
    .expect("leader login");

    // Two grids with reports: a sentinel reporter files them, a sentinel worker acts on one.
    let grids: Vec<(i64, String, f64, f64)> = sqlx::query_as(
        "select id, code, ST_X(p), ST_Y(p) from (select id, code, ST_PointOnSurface(geom) p from grid order by id limit 3) s",
    )
    .fetch_all(&pool)
    .await
    .expect("grids");
    let reporter = login(&pool, REPORTER_LOGIN, Role::Rider, &[]).await;
    sqlx::query("update account set display_name = $1, phone = $2 where name = $3")
        .bind(REPORTER_NAME)
        .bind(PHONE)
        .bind(REPORTER_LOGIN)
        .execute(&pool)
        .await
        .expect("reporter");
    let worker = login(&pool, WORKER_LOGIN, Role::GridWorker, &[grids[0].1.clone()]).await;
    // A grid worker too, but of a third grid: the reporter of a report elsewhere is not theirs to see.
    let other_worker = login(&pool, "privacy-other-grid-worker", Role::GridWorker, &[grids[2].1.clone()]).await;
    let mut report_ids = Vec::new();
    for (i, (_, _, lon, lat)) in grids.iter().take(2).enumerate() {
        let mut r = request(
            "POST",
            "/api/reports",
            Some(&reporter),
            Some(json!({"category": "manhole_cover", "description": "井盖缺失",
                        "location": {"lon": lon, "lat": lat, "crs": "wgs84", "accuracy_m": 5}})),
        );
        let key = if i == 0 { IDEMPOTENCY_KEY.to_string() } else { uuid::Uuid::new_v4().to_string() };
        r.headers_mut().insert("Idempotency-Key", key.parse().expect("header"));
        let reply = send(&pool, r).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
        report_ids.push(reply.json()["id"].as_i64().expect("id"));
    }
    let etag =
        crate::common::get(&pool, &format!("/api/reports/{}", report_ids[0])).await.headers[header::ETAG].clone();
    let mut accept = request(
        "POST",
        &format!("/api/reports/{}/transitions", report_ids[0]),
        Some(&worker),
        Some(json!({"to": "accepted"})),
    );
    accept.headers_mut().insert(header::IF_MATCH, etag);
    let accepted = send(&pool, accept).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", String::from_utf8_lossy(&accepted.body));
    // The worker takes report 1 to feedback with an "after" photo whose bytes carry a sentinel
    // (in a JPEG comment, which stripping keeps): photos are never in a public answer.
    let mut version = accepted.json()["version"].as_i64().expect("version");
    for to in ["dispatched", "handling"] {
        let mut r = request(
            "POST",
            &format!("/api/reports/{}/transitions", report_ids[0]),
            Some(&worker),
            Some(json!({"to": to})),
        );
        r.headers_mut().insert(header::IF_MATCH, format!("\"{version}\"").parse().expect("header"));
        let reply = send(&pool, r).await;
        assert_eq!(reply.status, StatusCode::OK, "{to}: {}", String::from_utf8_lossy(&reply.body));
        version += 1;
    }
    // The sentinel rides in the entropy-coded scan (what a decoder needs, so stripping keeps it):
    // a comment segment would be dropped by the metadata allow-list and prove nothing here.
    let mut photo = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
    photo.extend_from_slice(PHOTO.as_bytes());
    photo.extend_from_slice(&[0xFF, 0xD9]);
    let boundary = "privacy-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"transition\"\r\n\r\n{{\"to\":\"feedback\"}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"after.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&photo);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let feedback = Request::post(format!("/api/reports/{}/transitions", report_ids[0]))
        .header(header::AUTHORIZATION, format!("Bearer {worker}"))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .header(header::IF_MATCH, format!("\"{version}\""))
        .body(Body::from(body))
        .expect("request");
    let feedback = send(&pool, feedback).await;
    assert_eq!(feedback.status, StatusCode::OK, "{}", String::from_utf8_lossy(&feedback.body));
    let own =
        send(&pool, request("GET", &format!("/api/reports/{}/feedback-photos/1", report_ids[0]), Some(&worker), None))
            .await;
    assert!(String::from_utf8_lossy(&own.body).contains(PHOTO), "the grid's worker sees the photo");
    // The privileged view does show the reporter: the sentinel is really there to leak.
    let privileged = send(&pool, request("GET", &format!("/api/reports/{}", report_ids[0]), Some(&worker), None)).await;
    assert!(String::from_utf8_lossy(&privileged.body).contains(REPORTER_LOGIN), "the worker sees the reporter");

    // An integration files one through Open311 with a static key, sending the personal fields
    // FixMyStreet sends; neither they nor the key (nor its name) may come back.
    let api_key = gridmap_server::api_keys::create(
        &pool,
        API_KEY_NAME,
        gridmap_server::api_keys::ActsFor::Own,
        &[gridmap_server::api_keys::Scope::Open311],
    )
    .await
    .expect("api key")
    .key;
    let form = format!(
        "api_key={api_key}&service_code=manhole_cover&lat={}&long={}&first_name={OPEN311_FIRST_NAME}&email={OPEN311_EMAIL}",
        grids[1].3, grids[1].2
    );
    let open311 = send(
        &pool,
        Request::post("/open311/v2/requests.xml")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("request"),
    )
    .await;
    assert_eq!(open311.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&open311.body));
    let open311_id: i64 = sqlx::query_scalar("select max(id) from report").fetch_one(&pool).await.expect("id");
    report_ids.push(open311_id);

    // A desktop GIS edits a grid without If-Match through a key of a planner: the grid's public
    // history marks the version unchecked, but shows neither the key, its name nor the login.
    let _planner = login(&pool, PLANNER_LOGIN, Role::Planner, &[]).await;
    let desktop = gridmap_server::api_keys::create(
        &pool,
        DESKTOP_KEY_NAME,
        gridmap_server::api_keys::ActsFor::Name(PLANNER_LOGIN),
        &[gridmap_server::api_keys::Scope::OgcEdit],
    )
    .await
    .expect("desktop key")
    .key;
    let edited = send(
        &pool,
        request(
            "PATCH",
            &format!("/ogc/collections/grids/items/{}", grids[0].0),
            Some(&desktop),
            Some(serde_json::json!({"properties": {"name": "桌面改名"}})),
        ),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", String::from_utf8_lossy(&edited.body));

    // Door-knocking and the sentiment log (issue 23 §2): the sentinel worker records a visit
    // with a private note in a round of their grid, and logs an entry that becomes a report.
    let round: i64 = sqlx::query_scalar(
        "insert into door_round (scope, grid_id, name, starts_on, ends_on) values ('grid', $1, 'privacy', current_date - 1, current_date + 30) returning id",
    )
    .bind(grids[0].0)
    .fetch_one(&pool)
    .await
    .expect("round");
    let knocked: i64 = sqlx::query_scalar("select min(id) from building where grid_id = $1 and households > 0")
        .bind(grids[0].0)
        .fetch_one(&pool)
        .await
        .expect("a building with households");
    let mut visit = request(
        "POST",
        &format!("/api/rounds/{round}/visits"),
        Some(&worker),
        Some(json!({"building_id": knocked, "households": 1, "outcome": "at_home", "note": VISIT_NOTE})),
    );
    visit.headers_mut().insert("Idempotency-Key", uuid::Uuid::new_v4().to_string().parse().expect("header"));
    let visit = send(&pool, visit).await;
    assert_eq!(visit.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&visit.body));
    let logged = send(
        &pool,
        request(
            "POST",
            "/api/sentiment",
            Some(&worker),
            Some(json!({"building_id": knocked, "body": SENTIMENT_TEXT, "tags": [SENTIMENT_TAG, "environment"]})),
        ),
    )
    .await;
    assert_eq!(logged.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&logged.body));
    let entry = logged.json()["id"].as_i64().expect("entry id");
    let converted = send(
        &pool,
        request(
            "POST",
            &format!("/api/sentiment/{entry}/report"),
            Some(&worker),
            Some(json!({"description": "楼道杂物"})),
        ),
    )
    .await;
    assert_eq!(converted.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&converted.body));
    report_ids.push(converted.json()["report"]["id"].as_i64().expect("report id"));
    // The private views do carry them: the sentinels are really there to leak.
    let own_log = send(&pool, request("GET", "/api/sentiment", Some(&worker), None)).await;
    assert!(String::from_utf8_lossy(&own_log.body).contains(SENTIMENT_TEXT));
    let own_visits = send(&pool, request("GET", &format!("/api/rounds/{round}/visits"), Some(&worker), None)).await;
    assert!(String::from_utf8_lossy(&own_visits.body).contains(VISIT_NOTE));
    assert!(String::from_utf8_lossy(&own_visits.body).contains(WORKER_LOGIN));

    let other_rider = login(&pool, "privacy-other-rider", Role::Rider, &[]).await;
    // Another building's leader: they see public fields only, like the rider.
    let other_leader = login(&pool, "privacy-other-leader", Role::BuildingLeader, &[]).await;
    let station: i64 = sqlx::query_scalar("select min(id) from station").fetch_one(&pool).await.expect("station");

    // Station life: a host edits the card (the history keeps the login), a rider checks in, another
    // drops a suggestion and the host answers it.
    let host = login(&pool, HOST_LOGIN, Role::StationHost, &[]).await;
    sqlx::query("update account set station_id = $2 where name = $1")
        .bind(HOST_LOGIN)
        .bind(station)
        .execute(&pool)
        .await
        .expect("host's station");
    let etag = crate::common::get(&pool, &format!("/ogc/collections/stations/items/{station}")).await.headers
        [header::ETAG]
        .clone();
    let mut card = request(
        "PATCH",
        &format!("/ogc/collections/stations/items/{station}"),
        Some(&host),
        Some(json!({"properties": {"notice": "今日热水暂停"}})),
    );
    card.headers_mut().insert(header::IF_MATCH, etag);
    let card = send(&pool, card).await;
    assert_eq!(card.status, StatusCode::OK, "{}", String::from_utf8_lossy(&card.body));
    let visitor = login(&pool, VISITOR_LOGIN, Role::Rider, &[]).await;
    sqlx::query("update account set display_name = $1 where name = $2")
        .bind(VISITOR_NAME)
        .bind(VISITOR_LOGIN)
        .execute(&pool)
        .await
        .expect("visitor");
    let (s_lon, s_lat): (f64, f64) = sqlx::query_as("select ST_X(geom), ST_Y(geom) from station where id = $1")
        .bind(station)
        .fetch_one(&pool)
        .await
        .expect("station point");
    let visit = send(
        &pool,
        request(
            "POST",
            &format!("/api/stations/{station}/visits"),
            Some(&visitor),
            Some(json!({"lon": s_lon, "lat": s_lat + 0.0003, "accuracy_m": 10})),
        ),
    )
    .await;
    assert_eq!(visit.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&visit.body));
    let suggester = login(&pool, SUGGESTER_LOGIN, Role::Rider, &[]).await;
    let suggestion = send(
        &pool,
        request("POST", "/api/suggestions", Some(&suggester), Some(json!({"station_id": station, "body": SUGGESTION}))),
    )
    .await;
    assert_eq!(suggestion.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&suggestion.body));
    let suggestion_id = suggestion.json()["id"].as_i64().expect("suggestion id");
    let answered = send(
        &pool,
        request(
            "POST",
            &format!("/api/suggestions/{suggestion_id}/answer"),
            Some(&host),
            Some(json!({"answer": ANSWER})),
        ),
    )
    .await;
    assert_eq!(answered.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answered.body));

    // Micro-wishes (issue 24 §1): a resident (sentinel login, name and phone) publishes a wish
    // for their home in the worker's grid, which a volunteer (sentinel login and name) claims;
    // the worker enters another on a resident's behalf (sentinel name and phone) and withdraws
    // a third with a sentinel reason.
    let resident = login(&pool, RESIDENT_LOGIN, Role::Resident, &[]).await;
    let home: i64 = sqlx::query_scalar("select min(id) from building where grid_id = $1 and households > 0")
        .bind(grids[0].0)
        .fetch_one(&pool)
        .await
        .expect("a home in the worker's grid");
    sqlx::query("update account set building_id = $2, display_name = $3, phone = $4 where name = $1")
        .bind(RESIDENT_LOGIN)
        .bind(home)
        .bind(RESIDENT_NAME)
        .bind(RESIDENT_PHONE)
        .execute(&pool)
        .await
        .expect("resident");
    let volunteer = login(&pool, VOLUNTEER_LOGIN, Role::Volunteer, &[]).await;
    sqlx::query("update account set display_name = $2 where name = $1")
        .bind(VOLUNTEER_LOGIN)
        .bind(VOLUNTEER_NAME)
        .execute(&pool)
        .await
        .expect("volunteer");
    let desired_on = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive().to_string();
    let mut wish_ids = Vec::new();
    for (token, body) in [
        (&resident, json!({"category": "repair", "body": "换灯泡", "desired_on": desired_on})),
        (
            &worker,
            json!({"building_id": home, "category": "errands", "body": "代缴医保", "desired_on": desired_on,
                         "resident_name": WISH_RESIDENT_NAME, "resident_phone": WISH_RESIDENT_PHONE}),
        ),
        (
            &worker,
            json!({"building_id": home, "category": "other", "body": "其他", "desired_on": desired_on,
                         "resident_name": WISH_RESIDENT_NAME, "resident_phone": WISH_RESIDENT_PHONE}),
        ),
    ] {
        let reply = send(&pool, request("POST", "/api/wishes", Some(token), Some(body))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
        wish_ids.push(reply.json()["id"].as_i64().expect("wish id"));
    }
    for (id, token, step) in [
        (wish_ids[0], &volunteer, json!({"to": "claimed"})),
        (wish_ids[1], &volunteer, json!({"to": "claimed"})),
        (wish_ids[2], &worker, json!({"to": "withdrawn", "reason": WISH_REASON})),
    ] {
        let mut r = request("POST", &format!("/api/wishes/{id}/transitions"), Some(token), Some(step));
        r.headers_mut().insert(header::IF_MATCH, "\"1\"".parse().expect("header"));
        let reply = send(&pool, r).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    }
    // The resident's photo of the wish (issue 24 §1), the sentinel in its scan data (kept by
    // the stripping, as in the report photo above).
    {
        let boundary = "wish-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"home.jpg\"\r\n\
             Content-Type: image/jpeg\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02]);
        body.extend_from_slice(WISH_PHOTO.as_bytes());
        body.extend_from_slice(&[0xFF, 0xD9]);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let upload = Request::post(format!("/api/wishes/{}/photo", wish_ids[0]))
            .header(header::AUTHORIZATION, format!("Bearer {resident}"))
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
            .body(Body::from(body))
            .expect("request");
        let upload = send(&pool, upload).await;
        assert_eq!(upload.status, StatusCode::OK, "{}", String::from_utf8_lossy(&upload.body));
        let own =
            send(&pool, request("GET", &format!("/api/wishes/{}/photo", wish_ids[0]), Some(&volunteer), None)).await;
        assert!(String::from_utf8_lossy(&own.body).contains(WISH_PHOTO), "the claimant sees the photo");
    }
    // The people who may see them do: the sentinels are really there to leak.
    let held = send(&pool, request("GET", "/api/wishes/mine", Some(&volunteer), None)).await;
    for s in [RESIDENT_NAME, RESIDENT_PHONE, WISH_RESIDENT_NAME, WISH_RESIDENT_PHONE] {
        assert!(String::from_utf8_lossy(&held.body).contains(s), "the claimant sees {s}");
    }
    let staff = send(&pool, request("GET", &format!("/api/wishes/{}", wish_ids[0]), Some(&worker), None)).await;
    for s in [RESIDENT_LOGIN, VOLUNTEER_LOGIN, VOLUNTEER_NAME] {
        assert!(String::from_utf8_lossy(&staff.body).contains(s), "the grid's worker sees {s}");
    }

    let building: i64 = sqlx::query_scalar("select min(id) from building").fetch_one(&pool).await.expect("building");

    // The points market (issue 24 §3): a sentinel merchant's item; a sentinel redeemer earns,
    // redeems it with a sentinel key, redeems again and cancels with a sentinel reason.
    let merchant = login(&pool, MERCHANT_LOGIN, Role::Merchant, &[]).await;
    let redeemer = login(&pool, REDEEMER_LOGIN, Role::Rider, &[]).await;
    sqlx::query("update account set display_name = $1 where name = $2")
        .bind(MERCHANT_NAME)
        .bind(MERCHANT_LOGIN)
        .execute(&pool)
        .await
        .expect("merchant");
    sqlx::query("update account set display_name = $1 where name = $2")
        .bind(REDEEMER_NAME)
        .bind(REDEEMER_LOGIN)
        .execute(&pool)
        .await
        .expect("redeemer");
    {
        let redeemer_id: i64 = sqlx::query_scalar("select id from account where name = $1")
            .bind(REDEEMER_LOGIN)
            .fetch_one(&pool)
            .await
            .expect("id");
        let mut conn = pool.acquire().await.expect("connection");
        for n in 0..10 {
            gridmap_server::points::award(
                &mut conn,
                redeemer_id,
                "report_accepted",
                gridmap_server::points::SourceRef { kind: "privacy", id: n },
            )
            .await
            .expect("award");
        }
    }
    let merchant_id: i64 = sqlx::query_scalar("select id from account where name = $1")
        .bind(MERCHANT_LOGIN)
        .fetch_one(&pool)
        .await
        .expect("id");
    let admin = login(&pool, "privacy-admin", Role::Admin, &[]).await;
    let market_item = send(
        &pool,
        request(
            "POST",
            "/api/points/catalogue",
            Some(&admin),
            Some(json!({"name": "理发券", "kind": "free_service", "cost": 20, "stock": 5, "merchant_id": merchant_id})),
        ),
    )
    .await;
    assert_eq!(market_item.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&market_item.body));
    let market_item = market_item.json()["id"].as_i64().expect("item id");
    let rule: i64 = sqlx::query_scalar("select min(id) from points_rule").fetch_one(&pool).await.expect("a rule");
    for (key, cancel) in [(REDEMPTION_KEY.to_string(), false), (uuid::Uuid::new_v4().to_string(), true)] {
        let mut r = request("POST", "/api/points/redemptions", Some(&redeemer), Some(json!({"item_id": market_item})));
        r.headers_mut().insert("Idempotency-Key", key.parse().expect("header"));
        let reply = send(&pool, r).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
        if cancel {
            let id = reply.json()["id"].as_i64().expect("id");
            let cancelled = send(
                &pool,
                request(
                    "POST",
                    &format!("/api/points/redemptions/{id}/cancel"),
                    Some(&redeemer),
                    Some(json!({"reason": CANCEL_REASON})),
                ),
            )
            .await;
            assert_eq!(cancelled.status, StatusCode::OK, "{}", String::from_utf8_lossy(&cancelled.body));
        }
    }
    let own_redemptions = send(&pool, request("GET", "/api/points/redemptions", Some(&redeemer), None)).await;
    assert!(String::from_utf8_lossy(&own_redemptions.body).contains(CANCEL_REASON), "the redeemer sees their reason");
    let handovers = send(&pool, request("GET", "/api/points/redemptions?view=handover", Some(&merchant), None)).await;
    assert_eq!(handovers.status, StatusCode::OK);
    assert!(!String::from_utf8_lossy(&handovers.body).contains(REDEEMER_LOGIN), "the merchant sees no login");
    assert!(!String::from_utf8_lossy(&handovers.body).contains(REDEEMER_NAME), "the merchant sees a masked name");

    // Emergency mode (issue 24 §2): every seeded member gets a sentinel name, phone and skill,
    // every squad a sentinel name; a sentinel member login in the worker's grid; a sentinel
    // admin switches the worker's community on; the member checks in themselves, the worker
    // records another and adds a task with a sentinel title; a second episode is ended.
    sqlx::query("update party_member set name = $1, phone = $2, skills = array[$3]")
        .bind(MEMBER_NAME)
        .bind(MEMBER_PHONE)
        .bind(MEMBER_SKILL)
        .execute(&pool)
        .await
        .expect("members");
    sqlx::query("update squad set name = $1 || id").bind(SQUAD_NAME).execute(&pool).await.expect("squads");
    let member_token = login(&pool, MEMBER_LOGIN, Role::Volunteer, &[]).await;
    sqlx::query(
        r"update party_member set account_id = (select id from account where name = $1)
           where id = (select min(p.id) from party_member p join building b on b.id = p.building_id where b.grid_id = $2)",
    )
    .bind(MEMBER_LOGIN)
    .bind(grids[0].0)
    .execute(&pool)
    .await
    .expect("member login");
    let emergency_admin = login(&pool, EMERGENCY_ADMIN_LOGIN, Role::Admin, &[]).await;
    let mut episode_ids = Vec::new();
    for grid in [grids[0].0, grids[2].0] {
        let community: i64 = sqlx::query_scalar("select community_id from grid where id = $1")
            .bind(grid)
            .fetch_one(&pool)
            .await
            .expect("community");
        let reply = send(
            &pool,
            request(
                "POST",
                "/api/emergency",
                Some(&emergency_admin),
                Some(json!({"area_kind": "community", "area_id": community, "reason": "防汛演练"})),
            ),
        )
        .await;
        if reply.status == StatusCode::CONFLICT {
            continue; // the same community as the first
        }
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
        episode_ids.push(reply.json()["id"].as_i64().expect("episode"));
    }
    let episode = episode_ids[0];
    let own = send(
        &pool,
        request("POST", &format!("/api/emergency/{episode}/checkins"), Some(&member_token), Some(json!({}))),
    )
    .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&own.body));
    let other_member: i64 = sqlx::query_scalar(
        "select max(member_id) from emergency_mobilisation where episode_id = $1 and grid_id = $2 and state = 'mobilised'",
    )
    .bind(episode)
    .bind(grids[0].0)
    .fetch_one(&pool)
    .await
    .expect("another member");
    for (uri, body) in [
        (format!("/api/emergency/{episode}/checkins"), json!({"member_id": other_member})),
        (format!("/api/emergency/{episode}/grids/{}/tasks", grids[0].0), json!({"title": TASK_TITLE})),
    ] {
        let reply = send(&pool, request("POST", &uri, Some(&worker), Some(body))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    }
    if let Some(second) = episode_ids.get(1) {
        let mut r = request(
            "POST",
            &format!("/api/emergency/{second}/end"),
            Some(&emergency_admin),
            Some(json!({"reason": "解除"})),
        );
        r.headers_mut().insert(header::IF_MATCH, "\"1\"".parse().expect("header"));
        assert_eq!(send(&pool, r).await.status, StatusCode::OK);
    }
    // The worker sees the sentinels: they are really there to leak.
    let staff =
        send(&pool, request("GET", &format!("/api/emergency/{episode}/grids/{}", grids[0].0), Some(&worker), None))
            .await;
    for s in [MEMBER_NAME, MEMBER_PHONE, MEMBER_SKILL, SQUAD_NAME, TASK_TITLE] {
        assert!(String::from_utf8_lossy(&staff.body).contains(s), "the grid's worker sees {s}");
    }

    // The crawl: (route pattern it covers, URI).
    let mut crawl: Vec<(&str, String)> = vec![
        ("/healthz", "/healthz".into()),
        ("/readyz", "/readyz".into()),
        ("/api/stations", "/api/stations".into()),
        ("/api/stations/nearest", "/api/stations/nearest?lon=118.17&lat=36.18&limit=48".into()),
        ("/api/stations/{id}", format!("/api/stations/{station}")),
        ("/api/stations/{id}/qr.svg", format!("/api/stations/{station}/qr.svg")),
        ("/api/grids/gaps", "/api/grids/gaps".into()),
        ("/api/grids/balance", "/api/grids/balance".into()),
        ("/ogc", "/ogc".into()),
        ("/ogc/", "/ogc/".into()),
        ("/ogc/api", "/ogc/api".into()),
        ("/ogc/conformance", "/ogc/conformance".into()),
        ("/ogc/collections", "/ogc/collections".into()),
        ("/tiles/{file}", "/tiles/style.json".into()),
        ("/metrics", "/metrics".into()),
        ("/api/report-categories", "/api/report-categories".into()),
        ("/api/reports", "/api/reports?limit=500".into()),
        ("/api/reports/hexbins", "/api/reports/hexbins?res=9".into()),
        ("/api/points/leaderboard", "/api/points/leaderboard".into()),
        ("/api/points/rules", "/api/points/rules".into()),
        ("/api/points/rules/{id}", format!("/api/points/rules/{rule}")),
        ("/api/points/catalogue", "/api/points/catalogue".into()),
        ("/api/points/catalogue/{id}", format!("/api/points/catalogue/{market_item}")),
        ("/api/stats", "/api/stats".into()),
        ("/api/counties", "/api/counties".into()),
        ("/api/leaders/coverage", "/api/leaders/coverage".into()),
        ("/api/wishes", "/api/wishes?state=all&limit=1000".into()),
        ("/api/wishes", format!("/api/wishes?grid={}&state=all", grids[0].0)),
        ("/api/wishes/categories", "/api/wishes/categories".into()),
        ("/api/wishes/stats", "/api/wishes/stats".into()),
        ("/api/wishes/open-counts", "/api/wishes/open-counts".into()),
        ("/api/emergency", "/api/emergency".into()),
        ("/api/emergency", "/api/emergency?active=true".into()),
        ("/api/emergency", "/api/emergency?active=false".into()),
        ("/api/emergency/areas", "/api/emergency/areas".into()),
        ("/api/buildings/{id}/leader-sign", format!("/api/buildings/{led_building}/leader-sign")),
        ("/api/buildings/{id}/leader-sign", format!("/api/buildings/{building}/leader-sign")),
        ("/open311/v2/discovery.json", "/open311/v2/discovery.json".into()),
        ("/open311/v2/services.json", "/open311/v2/services.json".into()),
        ("/open311/v2/services/{file}", "/open311/v2/services/manhole_cover.json".into()),
        ("/open311/v2/requests.json", "/open311/v2/requests.json".into()),
        ("/open311/v2/discovery.xml", "/open311/v2/discovery.xml".into()),
        ("/open311/v2/services.xml", "/open311/v2/services.xml".into()),
        ("/open311/v2/services/{file}", "/open311/v2/services/manhole_cover.xml".into()),
        ("/open311/v2/requests.xml", "/open311/v2/requests.xml".into()),
    ];
    for group in ["grid_workers", "building_leaders", "party_members", "volunteers", "residents", "riders"] {
        crawl.push(("/api/points/rankings", format!("/api/points/rankings?group={group}&limit=100")));
    }
    let layers = gridmap_tiles::Layer::ALL.map(gridmap_tiles::Layer::name).join(",");
    crawl.push(("/tiles/{file}", format!("/tiles/{layers}.json")));
    for (grid, _, lon, lat) in grids.iter().take(2) {
        crawl.push(("/api/grids/at", format!("/api/grids/at?lon={lon}&lat={lat}")));
        crawl.push(("/api/grids/{id}/history", format!("/api/grids/{grid}/history")));
        for z in 10..=18u8 {
            let (x, y) = tile_of(*lon, *lat, z);
            crawl.push(("/tiles/{layers}/{z}/{x}/{file}", format!("/tiles/{layers}/{z}/{x}/{y}.mvt")));
        }
    }
    for id in &report_ids {
        crawl.push(("/api/reports/{id}", format!("/api/reports/{id}")));
        crawl.push(("/open311/v2/requests/{file}", format!("/open311/v2/requests/{id}.json")));
        crawl.push(("/open311/v2/requests/{file}", format!("/open311/v2/requests/{id}.xml")));
    }
    for id in &wish_ids {
        crawl.push(("/api/wishes/{id}", format!("/api/wishes/{id}")));
    }
    for id in &episode_ids {
        crawl.push(("/api/emergency/{id}", format!("/api/emergency/{id}")));
    }
    for coll in gridmap_server::ogc::collections::ALL {
        let c = coll.id;
        crawl.push(("/ogc/collections/{collection}", format!("/ogc/collections/{c}")));
        crawl.push(("/ogc/collections/{collection}/queryables", format!("/ogc/collections/{c}/queryables")));
        crawl.push(("/ogc/collections/{collection}/items", format!("/ogc/collections/{c}/items?limit=1000")));
        let id = match c {
            "grids" => grids[0].0,
            "buildings" => building,
            "stations" => station,
            _ => report_ids[0],
        };
        crawl.push(("/ogc/collections/{collection}/items/{id}", format!("/ogc/collections/{c}/items/{id}")));
    }

    // Every public GET route is crawled.
    let public: BTreeSet<&str> =
        TABLE.iter().filter(|(m, _, who)| *m == "GET" && who[0] == O::A).map(|(_, p, _)| *p).collect();
    let crawled: BTreeSet<&str> = crawl.iter().map(|(p, _)| *p).collect();
    let missed: Vec<_> = public.difference(&crawled).collect();
    assert!(missed.is_empty(), "public routes the privacy crawl does not visit: {missed:?}");

    let sentinels = [
        REPORTER_LOGIN,
        REPORTER_NAME,
        WORKER_LOGIN,
        PHONE,
        LEADER_NAME,
        LEADER_PHONE,
        IDEMPOTENCY_KEY,
        "$argon2id$",
        API_KEY_NAME,
        &api_key,
        DESKTOP_KEY_NAME,
        &desktop,
        PLANNER_LOGIN,
        OPEN311_FIRST_NAME,
        OPEN311_EMAIL,
        PHOTO,
        SENTIMENT_TEXT,
        VISIT_NOTE,
        SENTIMENT_TAG,
        LEADER_PRIVATE_PHONE,
        LEADER_LOGIN,
        HOST_LOGIN,
        VISITOR_LOGIN,
        VISITOR_NAME,
        SUGGESTER_LOGIN,
        SUGGESTION,
        ANSWER,
        REDEEMER_LOGIN,
        REDEEMER_NAME,
        MERCHANT_LOGIN,
        MERCHANT_NAME,
        REDEMPTION_KEY,
        CANCEL_REASON,
        RESIDENT_LOGIN,
        RESIDENT_NAME,
        RESIDENT_PHONE,
        WISH_RESIDENT_NAME,
        WISH_RESIDENT_PHONE,
        VOLUNTEER_LOGIN,
        VOLUNTEER_NAME,
        WISH_REASON,
        WISH_PHOTO,
        MEMBER_NAME,
        MEMBER_PHONE,
        MEMBER_LOGIN,
        MEMBER_SKILL,
        SQUAD_NAME,
        EMERGENCY_ADMIN_LOGIN,
        TASK_TITLE,
    ];
    let mut leaks = Vec::new();
    let mut bytes_seen = 0usize;
    for token in [None, Some(other_rider.as_str()), Some(other_worker.as_str()), Some(other_leader.as_str())] {
        for (_, uri) in &crawl {
            let reply = send(&pool, request("GET", uri, token, None)).await;
            assert!(
                reply.status.is_success() || reply.status == StatusCode::NO_CONTENT,
                "GET {uri}: {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
            bytes_seen += reply.body.len();
            // Bodies are searched as bytes: MVT string tables hold property values verbatim.
            let text = String::from_utf8_lossy(&reply.body);
            for s in sentinels.iter().chain(std::iter::once(&reporter.as_str())) {
                if text.contains(s) {
                    leaks.push(format!("GET {uri} (token: {}) contains {s}", token.is_some()));
                }
            }
        }
    }
    // Routes behind a login, as the unrelated rider and worker: whatever they answer (their own
    // suggestions, a 403), nothing of the others'.
    for token in [other_rider.as_str(), other_worker.as_str()] {
        for uri in [
            "/api/suggestions".to_string(),
            format!("/api/suggestions?box={station}"),
            format!("/api/stations/{station}/visits"),
            "/api/stations/visits".to_string(),
            "/api/points/redemptions".to_string(),
            "/api/points/redemptions?view=handover".to_string(),
            "/api/points/me".to_string(),
            "/api/wishes/mine".to_string(),
            "/api/emergency/mine".to_string(),
            format!("/api/wishes/{}/photo", wish_ids[0]),
        ] {
            let reply = send(&pool, request("GET", &uri, Some(token), None)).await;
            let text = String::from_utf8_lossy(&reply.body);
            for s in &sentinels {
                if text.contains(s) {
                    leaks.push(format!("GET {uri} (logged in, unrelated) contains {s}"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "private values in public responses:\n{}", leaks.join("\n"));
    assert!(bytes_seen > 1_000_000, "the crawl read real content ({bytes_seen} bytes)");
}
