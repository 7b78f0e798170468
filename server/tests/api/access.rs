//! The authorization table: every route × {anonymous, rider, grid worker of this grid, grid
//! worker of another grid, planner, admin, building leader, host of this station, merchant of
//! this item, volunteer, resident of a building of this grid} → allowed, 401 or 403 (the last
//! five's outcomes are the rider's but for `ONLY_THE_RIDER` and their own rows, `LIKE_THE_RIDER`).
//! The test reads the routes from the router (`gridmap_server::http::route_list`: the OpenAPI
//! operations and the plain routes, as registered) and **fails when a route has no entry**
//! (or an entry names a route that no longer exists), then sends every request as every
//! principal and checks the outcome. "Allowed" means the request got past authorization: any
//! status but 401/403 (bodies here are deliberately empty or invalid, so no data changes).

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sqlx::PgPool;

use crate::common::send;
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;
use gridmap_server::seed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum O {
    /// Past authorization.
    A,
    /// 401: a login is required.
    U,
    /// 403: logged in, but not allowed.
    F,
}
use O::{A, F, U};

/// (method, route pattern, [anonymous, rider, worker of this grid, worker of another grid, planner, admin]);
/// the building leader, the station host, the merchant, the volunteer and the resident follow
/// the rider but where `ONLY_THE_RIDER` and their own rows (`LIKE_THE_RIDER`) say otherwise.
pub const TABLE: &[(&str, &str, [O; 6])] = &[
    ("GET", "/healthz", [A, A, A, A, A, A]),
    ("GET", "/readyz", [A, A, A, A, A, A]),
    ("POST", "/api/auth/login", [A, A, A, A, A, A]),
    ("GET", "/api/stations", [A, A, A, A, A, A]),
    ("GET", "/api/stations/nearest", [A, A, A, A, A, A]),
    ("GET", "/api/stations/{id}", [A, A, A, A, A, A]),
    ("GET", "/api/stations/{id}/qr.svg", [A, A, A, A, A, A]),
    // Riders check in; the counts are for the station's host and the county (planners, admins).
    ("POST", "/api/stations/{id}/visits", [U, A, F, F, F, F]),
    ("GET", "/api/stations/{id}/visits", [U, F, F, F, A, A]),
    ("GET", "/api/stations/visits", [U, F, F, F, A, A]),
    // The suggestion box: anyone logged in writes and reads what they may (the list filters);
    // the box's host (the station's; planners for the county's) and admins answer.
    ("POST", "/api/suggestions", [U, A, A, A, A, A]),
    ("GET", "/api/suggestions", [U, A, A, A, A, A]),
    ("POST", "/api/suggestions/{id}/answer", [U, F, F, F, F, A]),
    ("GET", "/api/grids/at", [A, A, A, A, A, A]),
    ("GET", "/api/counties", [A, A, A, A, A, A]),
    ("GET", "/api/grids/gaps", [A, A, A, A, A, A]),
    ("GET", "/api/grids/balance", [A, A, A, A, A, A]),
    ("GET", "/api/grids/{id}/history", [A, A, A, A, A, A]),
    ("POST", "/api/grids/merge", [U, F, F, F, A, A]),
    ("POST", "/api/grids/{id}/revert", [U, F, F, F, A, A]),
    ("POST", "/api/grids/{id}/split", [U, F, F, F, A, A]),
    ("POST", "/api/grids/{id}/preview", [U, F, F, F, A, A]),
    ("GET", "/ogc", [A, A, A, A, A, A]),
    ("GET", "/ogc/", [A, A, A, A, A, A]),
    ("GET", "/ogc/api", [A, A, A, A, A, A]),
    ("GET", "/ogc/conformance", [A, A, A, A, A, A]),
    ("GET", "/ogc/collections", [A, A, A, A, A, A]),
    ("GET", "/ogc/collections/{collection}", [A, A, A, A, A, A]),
    ("GET", "/ogc/collections/{collection}/queryables", [A, A, A, A, A, A]),
    ("GET", "/ogc/collections/{collection}/items", [A, A, A, A, A, A]),
    ("POST", "/ogc/collections/{collection}/items", [U, F, F, F, A, A]),
    // Part 4 discovery: which methods a collection allows is public.
    ("OPTIONS", "/ogc/collections/{collection}/items", [A, A, A, A, A, A]),
    ("GET", "/ogc/collections/{collection}/items/{id}", [A, A, A, A, A, A]),
    ("PUT", "/ogc/collections/{collection}/items/{id}", [U, F, F, F, A, A]),
    ("PATCH", "/ogc/collections/{collection}/items/{id}", [U, F, F, F, A, A]),
    ("DELETE", "/ogc/collections/{collection}/items/{id}", [U, F, F, F, A, A]),
    ("OPTIONS", "/ogc/collections/{collection}/items/{id}", [A, A, A, A, A, A]),
    ("GET", "/tiles/{file}", [A, A, A, A, A, A]),
    ("GET", "/tiles/{layers}/{z}/{x}/{file}", [A, A, A, A, A, A]),
    ("GET", "/metrics", [A, A, A, A, A, A]),
    ("GET", "/api/report-categories", [A, A, A, A, A, A]),
    // Anonymous residents may report in the categories that allow it; the body decides.
    ("POST", "/api/reports", [A, A, A, A, A, A]),
    ("GET", "/api/reports", [A, A, A, A, A, A]),
    ("POST", "/api/reports/batch", [A, A, A, A, A, A]),
    ("GET", "/api/reports/hexbins", [A, A, A, A, A, A]),
    ("GET", "/api/reports/stream", [U, F, A, A, A, A]),
    ("GET", "/api/reports/{id}", [A, A, A, A, A, A]),
    // Only the report's grid workers and admins move a report along.
    ("POST", "/api/reports/{id}/transitions", [U, F, A, F, F, A]),
    // Photos show faces, plates and homes: the grid's workers, planners, admins and the sender.
    ("GET", "/api/reports/{id}/photos/{n}", [U, F, A, F, A, A]),
    // The "after" photos of feedback: the same people as the intake photos.
    ("GET", "/api/reports/{id}/feedback-photos/{n}", [U, F, A, F, A, A]),
    ("GET", "/api/points/me", [U, A, A, A, A, A]),
    ("GET", "/api/points/leaderboard", [A, A, A, A, A, A]),
    // The points market (issue 24 §3): rules, rankings and the catalogue are public; planners
    // and admins edit the catalogue; anyone logged in redeems and lists their own. {id} is
    // rider-01's pending redemption at merchant-01 (seeded): the rider sees and cancels it, the
    // merchant (and an admin) sees it and hands it over.
    ("GET", "/api/points/rules", [A, A, A, A, A, A]),
    ("GET", "/api/points/rules/{id}", [A, A, A, A, A, A]),
    // The earning rules hold for the whole deployment: admins (not scoped to a county) change them.
    ("PATCH", "/api/points/rules/{id}", [U, F, F, F, F, A]),
    ("GET", "/api/points/rankings", [A, A, A, A, A, A]),
    ("GET", "/api/points/catalogue", [A, A, A, A, A, A]),
    ("POST", "/api/points/catalogue", [U, F, F, F, A, A]),
    ("GET", "/api/points/catalogue/{id}", [A, A, A, A, A, A]),
    ("PATCH", "/api/points/catalogue/{id}", [U, F, F, F, A, A]),
    ("GET", "/api/points/redemptions", [U, A, A, A, A, A]),
    ("POST", "/api/points/redemptions", [U, A, A, A, A, A]),
    ("GET", "/api/points/redemptions/{id}", [U, A, F, F, F, A]),
    ("POST", "/api/points/redemptions/{id}/handover", [U, F, F, F, F, A]),
    ("POST", "/api/points/redemptions/{id}/cancel", [U, A, F, F, F, A]),
    ("GET", "/api/stats", [A, A, A, A, A, A]),
    ("GET", "/open311/v2/discovery.json", [A, A, A, A, A, A]),
    ("GET", "/open311/v2/services.json", [A, A, A, A, A, A]),
    ("GET", "/open311/v2/services/{file}", [A, A, A, A, A, A]),
    ("GET", "/open311/v2/requests.json", [A, A, A, A, A, A]),
    // Open311 authenticates by the `api_key` field, not the header; an empty body is a 400.
    ("POST", "/open311/v2/requests.json", [A, A, A, A, A, A]),
    ("GET", "/open311/v2/requests/{file}", [A, A, A, A, A, A]),
    ("GET", "/open311/v2/discovery.xml", [A, A, A, A, A, A]),
    ("GET", "/open311/v2/services.xml", [A, A, A, A, A, A]),
    ("GET", "/open311/v2/requests.xml", [A, A, A, A, A, A]),
    // Open311 authenticates with the body's api_key, not with the bearer token.
    ("POST", "/open311/v2/requests.xml", [A, A, A, A, A, A]),
    // Red building leaders: the sign and the coverage counts are public; a building's terms (with
    // the private number) are for its grid's workers, planners and admins; writes for planners.
    ("GET", "/api/buildings/{id}/leader-sign", [A, A, A, A, A, A]),
    ("GET", "/api/buildings/{id}/leaders", [U, F, A, F, A, A]),
    ("POST", "/api/buildings/{id}/leaders", [U, F, F, F, A, A]),
    ("GET", "/api/leaders/coverage", [A, A, A, A, A, A]),
    ("GET", "/api/leaders/me", [U, F, F, F, F, F]),
    ("GET", "/api/leaders/{id}", [U, F, A, F, A, A]),
    ("POST", "/api/leaders/{id}/renew", [U, F, F, F, A, A]),
    ("POST", "/api/leaders/{id}/replace", [U, F, F, F, A, A]),
    ("POST", "/api/leaders/{id}/end", [U, F, F, F, A, A]),
    ("GET", "/api/admin/api-keys", [U, F, F, F, F, A]),
    ("POST", "/api/admin/api-keys", [U, F, F, F, F, A]),
    ("POST", "/api/admin/api-keys/{id}/revoke", [U, F, F, F, F, A]),
    ("GET", "/api/admin/accounts", [U, F, F, F, F, A]),
    ("POST", "/api/admin/accounts", [U, F, F, F, F, A]),
    ("GET", "/api/admin/accounts/{id}", [U, F, F, F, F, A]),
    ("PATCH", "/api/admin/accounts/{id}", [U, F, F, F, F, A]),
    ("PUT", "/api/admin/accounts/{id}/grids", [U, F, F, F, F, A]),
    ("POST", "/api/admin/accounts/{id}/revoke-tokens", [U, F, F, F, F, A]),
    // Door-knocking rounds (issue 23 §2): workers, planners, admins — and rider-01, one of the
    // part-time rider grid workers, for its own grid; {id} is a round of the worker's own grid.
    // Visits are recorded by the grid's workers only.
    ("GET", "/api/rounds", [U, A, A, A, A, A]),
    ("POST", "/api/rounds", [U, A, A, A, A, A]),
    ("GET", "/api/rounds/{id}", [U, F, A, F, A, A]),
    ("GET", "/api/rounds/{id}/buildings", [U, F, A, F, A, A]),
    ("GET", "/api/rounds/{id}/visits", [U, F, A, F, A, A]),
    ("POST", "/api/rounds/{id}/visits", [U, F, A, F, F, F]),
    // The round is incomplete: a 409 for those allowed to close it.
    ("POST", "/api/rounds/{id}/close", [U, F, A, F, A, A]),
    // The sentiment log: private to the grid's workers, planners and admins; {id} is an entry
    // of the worker's own grid (tagged 矛盾纠纷, which suggests no category: `{}` is a 400).
    ("GET", "/api/sentiment", [U, A, A, A, A, A]),
    ("POST", "/api/sentiment", [U, A, A, A, A, A]),
    ("GET", "/api/sentiment/tags", [U, A, A, A, A, A]),
    ("POST", "/api/sentiment/{id}/report", [U, F, A, F, A, A]),
    // Micro-wishes (issue 24 §1): the board, one wish, the metrics and the map's counts are
    // public (the resident and the building are not in them); residents, grid workers and admins
    // publish (a worker of another grid is refused by the body's building, a 400 here); a claim
    // (the body sent to the transitions) is for volunteers and grid workers of any grid.
    ("GET", "/api/wishes", [A, A, A, A, A, A]),
    ("POST", "/api/wishes", [U, F, A, A, F, A]),
    ("GET", "/api/wishes/categories", [A, A, A, A, A, A]),
    ("GET", "/api/wishes/mine", [U, A, A, A, A, A]),
    ("GET", "/api/wishes/stats", [A, A, A, A, A, A]),
    ("GET", "/api/wishes/open-counts", [A, A, A, A, A, A]),
    ("GET", "/api/wishes/{id}", [A, A, A, A, A, A]),
    ("POST", "/api/wishes/{id}/transitions", [U, F, A, A, F, F]),
    // A wish's photo: the resident (who entered it), the grid's workers and admins attach one
    // (the `{}` body is no multipart: a 400); it is seen by them, the claimant and planners
    // (the access wish has none: a 404).
    ("POST", "/api/wishes/{id}/photo", [U, F, A, F, F, A]),
    ("GET", "/api/wishes/{id}/photo", [U, F, A, F, A, A]),
    // Emergency mode (issue 24 §2): episodes and their counts per grid are public; admins start
    // and end them; a grid's volunteers and tasks are its workers', planners' and admins'; the
    // history is planners' and admins'. {id} is an episode over the worker's community, {grid}
    // the worker's grid, {task} one of its tasks. The check-in names a member of that grid
    // (the worker records it; a later admin gets 409, past authorization); the task body is
    // valid, so the grid rule decides.
    ("GET", "/api/emergency", [A, A, A, A, A, A]),
    ("POST", "/api/emergency", [U, F, F, F, F, A]),
    ("GET", "/api/emergency/mine", [U, A, A, A, A, A]),
    ("GET", "/api/emergency/areas", [A, A, A, A, A, A]),
    ("GET", "/api/emergency/members", [U, F, A, A, A, A]),
    ("POST", "/api/emergency/members", [U, F, A, A, A, A]),
    ("GET", "/api/emergency/squads", [U, F, A, A, A, A]),
    ("POST", "/api/emergency/squads", [U, F, A, A, A, A]),
    ("GET", "/api/emergency/{id}", [A, A, A, A, A, A]),
    ("POST", "/api/emergency/{id}/end", [U, F, F, F, F, A]),
    ("GET", "/api/emergency/{id}/history", [U, F, F, F, A, A]),
    ("POST", "/api/emergency/{id}/checkins", [U, F, A, F, F, A]),
    ("GET", "/api/emergency/{id}/grids/{grid}", [U, F, A, F, A, A]),
    ("POST", "/api/emergency/{id}/grids/{grid}/tasks", [U, F, A, F, F, A]),
    ("POST", "/api/emergency/{id}/tasks/{task}/done", [U, F, A, F, F, A]),
    // Last: it revokes the token it is sent with.
    ("POST", "/api/auth/logout", [U, A, A, A, A, A]),
];

/// Where the table's rider stands apart from every principal that follows it: the rider is a
/// part-time grid worker (check-ins, door-knocking rounds and the sentiment log are field work)
/// and redeemed the seeded redemption the points routes name (rider-01's). Each of the others
/// is refused these unless its own rows say otherwise.
const ONLY_THE_RIDER: &[(&str, &str, O)] = &[
    ("POST", "/api/stations/{id}/visits", F),
    ("GET", "/api/rounds", F),
    ("POST", "/api/rounds", F),
    ("GET", "/api/sentiment", F),
    ("POST", "/api/sentiment", F),
    ("GET", "/api/sentiment/tags", F),
    ("GET", "/api/points/redemptions/{id}", F),
    ("POST", "/api/points/redemptions/{id}/cancel", F),
];

/// A volunteer (role `volunteer`) claims wishes.
const VOLUNTEER_OWN: &[(&str, &str, O)] = &[("POST", "/api/wishes/{id}/transitions", A)];

/// The resident of a building in the worker's grid, whose wish the wish routes name, publishes
/// wishes (and confirms and withdraws their own; a claim, sent here, is not theirs).
const RESIDENT_OWN: &[(&str, &str, O)] = &[
    ("POST", "/api/wishes", A),
    // A photo of their own wish: attached by them, seen by them.
    ("POST", "/api/wishes/{id}/photo", A),
    ("GET", "/api/wishes/{id}/photo", A),
];

/// The building leader (role `building_leader`, leading a building in the worker's grid): a
/// column of its own would be the same letters as the rider's everywhere else.
const LEADER_OWN: &[(&str, &str, O)] = &[("GET", "/api/leaders/me", A)];

/// The host of the station a route names (role `station_host`; elsewhere a host of some
/// station) reads its station's visits and answers its suggestion box.
const HOST_OWN: &[(&str, &str, O)] =
    &[("GET", "/api/stations/{id}/visits", A), ("POST", "/api/suggestions/{id}/answer", A)];

/// The merchant of the points-market item a route names (`merchant-01`) sees the seeded
/// redemption, which is at its counter, and hands it over.
const MERCHANT_OWN: &[(&str, &str, O)] =
    &[("GET", "/api/points/redemptions/{id}", A), ("POST", "/api/points/redemptions/{id}/handover", A)];

/// The five principals that follow the rider, with their own rows: (name, rows).
/// Rows of the table that one principal answers unlike the rider: (method, route, outcome).
type Rows = &'static [(&'static str, &'static str, O)];

pub const LIKE_THE_RIDER: [(&str, Rows); 5] = [
    ("building leader", LEADER_OWN),
    ("host of the station", HOST_OWN),
    ("merchant of the item", MERCHANT_OWN),
    ("volunteer", VOLUNTEER_OWN),
    ("resident of the building", RESIDENT_OWN),
];

/// The expected outcome on a route of the table for a principal that follows the rider but
/// for its `own` rows and [`ONLY_THE_RIDER`].
pub fn like_rider_but(own: &[(&str, &str, O)], method: &str, route: &str, row: [O; 6]) -> O {
    own.iter().chain(ONLY_THE_RIDER).find(|(m, r, _)| *m == method && *r == route).map_or(row[1], |(_, _, o)| *o)
}

#[test]
fn every_exception_to_the_rider_names_a_route_of_the_table() {
    for (m, r, _) in LIKE_THE_RIDER.iter().flat_map(|(_, own)| own.iter()).chain(ONLY_THE_RIDER) {
        assert!(TABLE.iter().any(|(tm, tr, _)| tm == m && tr == r), "{m} {r}");
    }
}

/// Every (method, path template) the router answers (`gridmap_server::http::route_list`).
pub fn routes_of_the_router() -> BTreeSet<(String, String)> {
    gridmap_server::http::route_list().into_iter().map(|r| (r.method.to_string(), r.path)).collect()
}

#[test]
fn every_route_has_an_entry_in_the_authorization_table() {
    let routed = routes_of_the_router();
    let in_table: BTreeSet<(String, String)> =
        TABLE.iter().map(|(m, p, _)| ((*m).to_string(), (*p).to_string())).collect();
    let missing: Vec<_> = routed.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&routed).collect();
    assert!(missing.is_empty(), "routes without an authorization entry: {missing:?}");
    assert!(stale.is_empty(), "entries for routes that do not exist: {stale:?}");
    assert!(routed.len() >= 100, "the router lists only {} routes", routed.len());
}

async fn token(pool: &PgPool, name: &str, role: Role) -> String {
    let password = format!("{name}-access-test");
    upsert(
        pool,
        &NewAccount { name, role, password: &password, part_time_grid_worker: role == Role::Rider, grid_codes: &[] },
    )
    .await
    .expect("account");
    gridmap_server::auth::login(pool, name, &password).await.expect("login").expect("valid login").token
}

/// The seeded host of `station` (`host-01` hosts the first), with a password to log in.
async fn host_token(pool: &PgPool, station: i64) -> String {
    let name: String = sqlx::query_scalar("select name from account where role = 'station_host' and station_id = $1")
        .bind(station)
        .fetch_one(pool)
        .await
        .expect("the station's seeded host");
    let token = token(pool, &name, Role::StationHost).await;
    sqlx::query("update account set station_id = $2 where name = $1")
        .bind(&name)
        .bind(station)
        .execute(pool)
        .await
        .expect("keep the link");
    token
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn every_route_answers_each_principal_as_the_table_says(pool: PgPool) {
    seed::seed_demo(&pool, 1).await.expect("seed");
    // gw-0001 works the lowest grid of its assignment; gw-0002 works another grid.
    let own_grid: i64 = sqlx::query_scalar(
        "select ga.grid_id from grid_assignment ga join account a on a.id = ga.account_id where a.name = 'gw-0001' order by 1 limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("own grid");
    let station: i64 = sqlx::query_scalar("select min(id) from station").fetch_one(&pool).await.expect("station");
    // A suggestion in that station's box, for the answer route.
    let suggestion: i64 = sqlx::query_scalar("select min(id) from station_suggestion where station_id = $1")
        .bind(station)
        .fetch_one(&pool)
        .await
        .expect("a seeded suggestion");
    // A report inside the worker's own grid, for the report routes.
    let (lon, lat): (f64, f64) =
        sqlx::query_as("select ST_X(p), ST_Y(p) from (select ST_PointOnSurface(geom) p from grid where id = $1) s")
            .bind(own_grid)
            .fetch_one(&pool)
            .await
            .expect("point in own grid");
    let report = crate::reports::post_report(
        &pool,
        None,
        Some(&uuid::Uuid::new_v4().to_string()),
        &serde_json::json!({"category": "road_damage", "description": "access test",
                            "location": {"lon": lon, "lat": lat, "crs": "wgs84", "accuracy_m": 8}}),
    )
    .await;
    assert_eq!(report.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&report.body));
    let report_id = report.json()["id"].as_i64().expect("report id");
    // A round of the worker's own grid (no households recorded: it cannot close) and an entry.
    let round_id: i64 = sqlx::query_scalar(
        "insert into door_round (scope, grid_id, name, starts_on, ends_on) values ('grid', $1, 'access', current_date, current_date) returning id",
    )
    .bind(own_grid)
    .fetch_one(&pool)
    .await
    .expect("round");
    let entry_id: i64 = sqlx::query_scalar(
        "insert into sentiment_entry (grid_id, entry_date, body, tags) values ($1, current_date, 'access', '{dispute}') returning id",
    )
    .bind(own_grid)
    .fetch_one(&pool)
    .await
    .expect("entry");
    // A building of the worker's grid with a current leader's term (the seed gives every one).
    let (building, term): (i64, i64) = sqlx::query_as(
        r"select b.id, l.id from building b join building_leader l on l.building_id = b.id
           where b.grid_id = $1 and l.term_end >= gridmap_county_today() order by b.id limit 1",
    )
    .bind(own_grid)
    .fetch_one(&pool)
    .await
    .expect("a led building in the own grid");
    // rider-01's pending redemption at merchant-01 (the seed's), and an item of the catalogue.
    let (redemption, item): (i64, i64) = sqlx::query_as(
        r"select r.id, r.item_id from points_redemption r join account a on a.id = r.account_id
            join points_item i on i.id = r.item_id join account m on m.id = i.merchant_id
           where a.name = 'rider-01' and m.name = 'merchant-01' and r.status = 'pending' order by r.id limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("a seeded redemption");
    let rule: i64 = sqlx::query_scalar("select min(id) from points_rule").fetch_one(&pool).await.expect("a rule");
    // A resident at home in that building, with a wish of theirs for the wish routes.
    let resident = token(&pool, "access-resident", Role::Resident).await;
    let wish_id: i64 = sqlx::query_scalar(
        r"with r as (update account set building_id = $1 where name = 'access-resident' returning id)
          insert into wish (building_id, category, body, desired_on, resident_id)
          select $1, 'repair', 'access', current_date + 1, r.id from r returning id",
    )
    .bind(building)
    .fetch_one(&pool)
    .await
    .expect("a wish");
    let tokens = [
        None,
        Some(token(&pool, "rider-01", Role::Rider).await),
        Some(token(&pool, "gw-0001", Role::GridWorker).await),
        Some(token(&pool, "gw-0002", Role::GridWorker).await),
        Some(token(&pool, "demo-planner", Role::Planner).await),
        Some(token(&pool, "demo-admin", Role::Admin).await),
        Some(token(&pool, "leader-0001", Role::BuildingLeader).await),
        Some(host_token(&pool, station).await),
        Some(token(&pool, "merchant-01", Role::Merchant).await),
        Some(token(&pool, "access-volunteer", Role::Volunteer).await),
        Some(resident),
    ];
    // An episode over the worker's community (emergency routes), a member of the worker's grid
    // and a task of that grid.
    let started = send(
        &pool,
        Request::post("/api/emergency")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", tokens[5].as_deref().expect("admin")))
            .body(Body::from(
                serde_json::json!({"area_kind": "community", "reason": "access",
                                   "area_id": sqlx::query_scalar::<_, i64>("select community_id from grid where id = $1")
                                        .bind(own_grid).fetch_one(&pool).await.expect("community")})
                .to_string(),
            ))
            .expect("request"),
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&started.body));
    let episode = started.json()["id"].as_i64().expect("episode");
    let (member, task): (i64, i64) = sqlx::query_as(
        r"select (select min(member_id) from emergency_mobilisation where episode_id = $1 and grid_id = $2),
                 (select min(id) from emergency_task where episode_id = $1 and grid_id = $2)",
    )
    .bind(episode)
    .bind(own_grid)
    .fetch_one(&pool)
    .await
    .expect("a member and a task of the own grid");
    let who: Vec<&str> = ["anonymous", "rider", "worker of this grid", "worker of another grid", "planner", "admin"]
        .into_iter()
        .chain(LIKE_THE_RIDER.iter().map(|(name, _)| *name))
        .collect();
    let mut failures = Vec::new();
    for (method, route, expected) in TABLE {
        let id = if route.starts_with("/api/stations") {
            station.to_string()
        } else if route.starts_with("/api/admin/") {
            // No such account: an admin action here must not log out one of the principals.
            "999999999".to_string()
        } else if route.starts_with("/api/buildings/") {
            building.to_string()
        } else if route.starts_with("/api/leaders/") {
            term.to_string()
        } else if route.starts_with("/api/reports/") {
            report_id.to_string()
        } else if route.starts_with("/api/rounds/") {
            round_id.to_string()
        } else if route.starts_with("/api/sentiment/") {
            entry_id.to_string()
        } else if route.starts_with("/api/points/redemptions/") {
            redemption.to_string()
        } else if route.starts_with("/api/points/catalogue/") {
            item.to_string()
        } else if route.starts_with("/api/points/rules/") {
            rule.to_string()
        } else if route.starts_with("/api/suggestions/") {
            suggestion.to_string()
        } else if route.starts_with("/api/wishes/") {
            wish_id.to_string()
        } else if route.starts_with("/api/emergency/") {
            episode.to_string()
        } else {
            own_grid.to_string()
        };
        let uri = route
            .replace("{collection}", "grids")
            .replace("{featureId}", &own_grid.to_string())
            .replace("{id}", &id)
            .replace("{n}", "1")
            .replace("{grid}", &own_grid.to_string())
            .replace("{task}", &task.to_string())
            .replace("{layers}/{z}/{x}/{file}", "grids/14/13525/6380.mvt")
            .replace("/tiles/{file}", "/tiles/style.json")
            .replace("services/{file}", "services/road_damage.json")
            .replace("requests/{file}", &format!("requests/{report_id}.json"));
        let uri = match *route {
            "/api/stations/nearest" | "/api/grids/at" => format!("{uri}?lon=118.17&lat=36.18"),
            _ => uri,
        };
        let body = match *route {
            "/api/reports/{id}/transitions" => r#"{"to": "accepted"}"#.to_string(),
            // A valid answer: the box's rule (who answers which box) is checked after the body.
            "/api/suggestions/{id}/answer" => r#"{"answer": "已处理"}"#.to_string(),
            // A claim without If-Match: who may claim is checked first, then a 428.
            "/api/wishes/{id}/transitions" => r#"{"to": "claimed"}"#.to_string(),
            "/api/emergency/{id}/checkins" => format!(r#"{{"member_id": {member}}}"#),
            "/api/emergency/{id}/grids/{grid}/tasks" => r#"{"title": "access"}"#.to_string(),
            _ => "{}".to_string(),
        };
        for (i, token) in tokens.iter().enumerate() {
            let mut request =
                Request::builder().method(*method).uri(&uri).header(header::CONTENT_TYPE, "application/json");
            if let Some(t) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let body = if *method == "GET" || *method == "DELETE" { Body::empty() } else { Body::from(body.clone()) };
            let request = request.body(body).expect("request");
            // The live feed never ends: judge it by its status line alone.
            let reply = if *route == "/api/reports/stream" {
                status_only(&pool, request).await
            } else {
                send(&pool, request).await
            };
            let got = match reply.status {
                StatusCode::UNAUTHORIZED => U,
                StatusCode::FORBIDDEN => F,
                _ => A,
            };
            let want = match i {
                0..6 => expected[i],
                _ => like_rider_but(LIKE_THE_RIDER[i - 6].1, method, route, *expected),
            };
            if got != want {
                failures.push(format!(
                    "{method} {uri} as {}: expected {:?}, got {} {}",
                    who[i],
                    want,
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "authorization table violations:\n{}", failures.join("\n"));
}

async fn status_only(pool: &PgPool, request: Request<Body>) -> crate::common::Reply {
    use tower::ServiceExt;
    let response = gridmap_server::http::app(gridmap_server::http::AppState::new(pool.clone()))
        .oneshot(request)
        .await
        .expect("infallible");
    crate::common::Reply { status: response.status(), headers: response.headers().clone(), body: Vec::new() }
}

/// Routes mounted by utoipa-swagger-ui, outside `route_list`: public documentation.
#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn api_documentation_is_public(pool: PgPool) {
    for uri in ["/api/openapi.json", "/api/docs/"] {
        let reply = crate::common::get(&pool, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
    }
}
