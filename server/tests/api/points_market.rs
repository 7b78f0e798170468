//! The points market (积分超市, issue 24 §3): earning by the rule table, the catalogue (planners
//! and admins, `If-Match`), redemptions — the debit and the stock in one transaction, never
//! below zero even when many arrive at once, exactly once per `Idempotency-Key` — their
//! hand-over by the item's merchant, station host or community worker, cancelling (points and
//! stock come back), who sees what, and the yearly rankings with masked names.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{Reply, send};
use gridmap_server::accounts::{NewAccount, upsert};
use gridmap_server::config::Role;
use gridmap_server::points::{self, SourceRef};
use gridmap_server::seed;

async fn login(pool: &PgPool, name: &str, role: Role, grid_codes: &[String]) -> String {
    let password = format!("{name}-market-test");
    upsert(pool, &NewAccount { name, role, password: &password, part_time_grid_worker: false, grid_codes })
        .await
        .expect("account");
    gridmap_server::auth::login(pool, name, &password).await.expect("login").expect("valid").token
}

async fn account_id(pool: &PgPool, name: &str) -> i64 {
    sqlx::query_scalar("select id from account where name = $1").bind(name).fetch_one(pool).await.expect("account id")
}

/// Credit `name` with `times` × the `report_accepted` rule of their group (10 points each as
/// seeded), through the domain function every feature calls.
async fn earn(pool: &PgPool, name: &str, times: i64) {
    let id = account_id(pool, name).await;
    let mut conn = pool.acquire().await.expect("connection");
    for n in 0..times {
        let award = points::award(&mut conn, id, "report_accepted", SourceRef { kind: "test", id: n })
            .await
            .expect("award")
            .expect("a rule for the group");
        assert_eq!(award.points, 10, "the seeded rule's amount");
    }
}

async fn balance(pool: &PgPool, name: &str) -> i64 {
    sqlx::query_scalar(
        "select coalesce(sum(delta), 0)::bigint from points_ledger l join account a on a.id = l.account_id where a.name = $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .expect("balance")
}

async fn stock(pool: &PgPool, item: i64) -> Option<i32> {
    sqlx::query_scalar("select stock from points_item where id = $1").bind(item).fetch_one(pool).await.expect("stock")
}

async fn call(
    pool: &PgPool,
    method: &str,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
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

async fn redeem(pool: &PgPool, token: &str, key: &str, body: Value) -> Reply {
    call(pool, "POST", "/api/points/redemptions", Some(token), &[("Idempotency-Key", key)], Some(body)).await
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

struct World {
    planner: String,
    admin: String,
    rider: String,
    /// merchant-01 (seeded) and a second merchant.
    merchant: String,
    other_merchant: String,
    merchant_id: i64,
}

/// The demo city, a planner, an admin, a rider (`pm-rider`, no points yet) and two merchants.
async fn world(pool: &PgPool) -> World {
    seed::seed_demo(pool, 1).await.expect("seed");
    let planner = login(pool, "pm-planner", Role::Planner, &[]).await;
    let admin = login(pool, "pm-admin", Role::Admin, &[]).await;
    let rider = login(pool, "pm-rider", Role::Rider, &[]).await;
    let merchant = login(pool, "merchant-01", Role::Merchant, &[]).await;
    let other_merchant = login(pool, "pm-other-merchant", Role::Merchant, &[]).await;
    let merchant_id = account_id(pool, "merchant-01").await;
    World { planner, admin, rider, merchant, other_merchant, merchant_id }
}

/// A new item at merchant-01 by the planner: its id and ETag.
async fn item(pool: &PgPool, w: &World, cost: i32, stock: Option<i32>) -> (i64, String) {
    let reply = call(
        pool,
        "POST",
        "/api/points/catalogue",
        Some(&w.planner),
        &[],
        Some(
            json!({"name": "测试洗衣液", "kind": "goods", "cost": cost, "stock": stock, "merchant_id": w.merchant_id}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", text(&reply));
    let etag = reply.headers[header::ETAG].to_str().expect("etag").to_string();
    (reply.json()["id"].as_i64().expect("id"), etag)
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn redeeming_debits_points_and_stock_together_and_the_items_merchant_hands_it_over(pool: PgPool) {
    let w = world(&pool).await;
    earn(&pool, "pm-rider", 10).await;
    let (item_id, _) = item(&pool, &w, 30, Some(2)).await;
    let r = redeem(&pool, &w.rider, &key(), json!({"item_id": item_id})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let body = r.json();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["points"], 30);
    assert_eq!(body["mine"], true);
    let id = body["id"].as_i64().expect("id");
    assert_eq!(r.headers[header::LOCATION], format!("/api/points/redemptions/{id}").as_str());
    assert_eq!(balance(&pool, "pm-rider").await, 70);
    assert_eq!(stock(&pool, item_id).await, Some(1));
    let me = call(&pool, "GET", "/api/points/me", Some(&w.rider), &[], None).await.json();
    assert_eq!(me["balance"], 70);
    assert_eq!(me["entries"][0]["reason"], "redeemed");
    assert_eq!(me["entries"][0]["redemption_id"], id);

    // Another merchant, the redeemer, a planner: not theirs to hand over.
    for token in [&w.other_merchant, &w.rider, &w.planner] {
        let r = call(&pool, "POST", &format!("/api/points/redemptions/{id}/handover"), Some(token), &[], None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", text(&r));
    }
    let r = call(&pool, "POST", &format!("/api/points/redemptions/{id}/handover"), Some(&w.merchant), &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(r.json()["status"], "handed_over");
    // Once: a second hand-over or a late cancel is a conflict; nothing moves.
    let again =
        call(&pool, "POST", &format!("/api/points/redemptions/{id}/handover"), Some(&w.merchant), &[], None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["reason"], "not_pending");
    let late = call(&pool, "POST", &format!("/api/points/redemptions/{id}/cancel"), Some(&w.rider), &[], None).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(balance(&pool, "pm-rider").await, 70);
    assert_eq!(stock(&pool, item_id).await, Some(1));
    // The merchant's list has it, with the masked redeemer, never the login.
    let list = call(&pool, "GET", "/api/points/redemptions?view=handover", Some(&w.merchant), &[], None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.json().as_array().expect("list").iter().any(|x| x["id"] == id));
    assert!(!text(&list).contains("pm-rider"));
    let none = call(&pool, "GET", "/api/points/redemptions?view=handover", Some(&w.other_merchant), &[], None).await;
    assert!(!none.json().as_array().expect("list").iter().any(|x| x["id"] == id));
    // A rider hands nothing over.
    let rider_view = call(&pool, "GET", "/api/points/redemptions?view=handover", Some(&w.rider), &[], None).await;
    assert_eq!(rider_view.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn insufficient_points_and_out_of_stock_are_409_and_store_nothing(pool: PgPool) {
    let w = world(&pool).await;
    earn(&pool, "pm-rider", 5).await;
    let (dear, _) = item(&pool, &w, 60, Some(5)).await;
    let (scarce, _) = item(&pool, &w, 10, Some(1)).await;
    let before: i64 = crate::common::count(&pool, "points_redemption").await;
    let r = redeem(&pool, &w.rider, &key(), json!({"item_id": dear})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", text(&r));
    assert_eq!(r.json()["reason"], "insufficient_points");
    let r = redeem(&pool, &w.rider, &key(), json!({"item_id": scarce, "quantity": 2})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", text(&r));
    assert_eq!(r.json()["reason"], "out_of_stock");
    assert_eq!(crate::common::count(&pool, "points_redemption").await, before);
    assert_eq!(balance(&pool, "pm-rider").await, 50);
    assert_eq!(stock(&pool, dear).await, Some(5));
    assert_eq!(stock(&pool, scarce).await, Some(1));
    // The last piece goes; then the item is out of stock.
    assert_eq!(redeem(&pool, &w.rider, &key(), json!({"item_id": scarce})).await.status, StatusCode::CREATED);
    let r = redeem(&pool, &w.rider, &key(), json!({"item_id": scarce})).await;
    assert_eq!(r.json()["reason"], "out_of_stock");
    assert_eq!(stock(&pool, scarce).await, Some(0));
    assert_eq!(balance(&pool, "pm-rider").await, 40);
    // An inactive item is not offered.
    sqlx::query("update points_item set active = false where id = $1").bind(dear).execute(&pool).await.expect("off");
    let r = redeem(&pool, &w.rider, &key(), json!({"item_id": dear})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["reason"], "item_inactive");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn concurrent_redemptions_never_overspend_points_or_stock(pool: PgPool) {
    let w = world(&pool).await;
    // One account, 50 points, twelve phones at once for 10 points each: exactly five succeed.
    earn(&pool, "pm-rider", 5).await;
    let (cheap, _) = item(&pool, &w, 10, Some(100)).await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (pool, token) = (pool.clone(), w.rider.clone());
        tasks.push(tokio::spawn(async move { redeem(&pool, &token, &key(), json!({"item_id": cheap})).await.status }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 7, "{statuses:?}");
    assert_eq!(balance(&pool, "pm-rider").await, 0);
    assert_eq!(stock(&pool, cheap).await, Some(95));

    // Six accounts with points enough, two requests each, for an item with three left.
    let (scarce, _) = item(&pool, &w, 10, Some(3)).await;
    let mut tokens = Vec::new();
    for k in 0..6 {
        let name = format!("pm-crowd-{k}");
        tokens.push(login(&pool, &name, Role::Rider, &[]).await);
        earn(&pool, &name, 5).await;
    }
    let mut tasks = Vec::new();
    for token in tokens.iter().chain(tokens.iter()) {
        let (pool, token) = (pool.clone(), token.clone());
        tasks.push(tokio::spawn(async move { redeem(&pool, &token, &key(), json!({"item_id": scarce})).await.status }));
    }
    let mut created = 0;
    for t in tasks {
        let status = t.await.expect("task");
        assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT, "{status}");
        created += usize::from(status == StatusCode::CREATED);
    }
    assert_eq!(created, 3);
    assert_eq!(stock(&pool, scarce).await, Some(0));
    let debits: i64 = sqlx::query_scalar(
        "select count(*) from points_ledger l join points_redemption r on r.id = l.redemption_id where r.item_id = $1",
    )
    .bind(scarce)
    .fetch_one(&pool)
    .await
    .expect("debits");
    assert_eq!(debits, 3, "one debit per redemption that took a piece");
    let negative: i64 = sqlx::query_scalar(
        "select count(*) from (select account_id from points_ledger group by account_id having sum(delta) < 0) s",
    )
    .fetch_one(&pool)
    .await
    .expect("balances");
    assert_eq!(negative, 0, "no balance below zero");
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn a_resend_with_the_same_key_gets_the_same_redemption_and_is_debited_once(pool: PgPool) {
    let w = world(&pool).await;
    earn(&pool, "pm-rider", 10).await;
    let (item_id, _) = item(&pool, &w, 20, Some(10)).await;
    let k = key();
    let first = redeem(&pool, &w.rider, &k, json!({"item_id": item_id})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", text(&first));
    assert!(!first.headers.contains_key("idempotent-replayed"));
    let again = redeem(&pool, &w.rider, &k, json!({"item_id": item_id})).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", text(&again));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(balance(&pool, "pm-rider").await, 80);
    assert_eq!(stock(&pool, item_id).await, Some(9));
    // The same key with another body (or from another account) is a conflict; nothing stored.
    let other = redeem(&pool, &w.rider, &k, json!({"item_id": item_id, "quantity": 2})).await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", text(&other));
    assert_eq!(other.json()["reason"], "key_reused");
    let thief = login(&pool, "pm-other-rider", Role::Rider, &[]).await;
    earn(&pool, "pm-other-rider", 10).await;
    let stolen = redeem(&pool, &thief, &k, json!({"item_id": item_id})).await;
    assert_eq!(stolen.status, StatusCode::CONFLICT, "{}", text(&stolen));
    // Two resends racing: still one redemption.
    let k2 = key();
    let (a, b) = tokio::join!(
        redeem(&pool, &w.rider, &k2, json!({"item_id": item_id})),
        redeem(&pool, &w.rider, &k2, json!({"item_id": item_id}))
    );
    assert_eq!((a.status, b.status), (StatusCode::CREATED, StatusCode::CREATED), "{} {}", text(&a), text(&b));
    assert_eq!(a.json()["id"], b.json()["id"]);
    assert_eq!(balance(&pool, "pm-rider").await, 60);
    assert_eq!(stock(&pool, item_id).await, Some(8));
    // Without a key, or with one that is no UUID: 400 naming the header, nothing stored.
    let before = crate::common::count(&pool, "points_redemption").await;
    let none =
        call(&pool, "POST", "/api/points/redemptions", Some(&w.rider), &[], Some(json!({"item_id": item_id}))).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert_eq!(none.json()["field"], "Idempotency-Key");
    let bad = redeem(&pool, &w.rider, "not-a-uuid", json!({"item_id": item_id})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(crate::common::count(&pool, "points_redemption").await, before);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn cancelling_gives_back_the_points_and_the_stock_and_only_the_redeemer_or_an_admin_cancels(pool: PgPool) {
    let w = world(&pool).await;
    earn(&pool, "pm-rider", 10).await;
    let (item_id, _) = item(&pool, &w, 25, Some(4)).await;
    let first = redeem(&pool, &w.rider, &key(), json!({"item_id": item_id, "quantity": 2})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", text(&first));
    let id = first.json()["id"].as_i64().expect("id");
    assert_eq!(balance(&pool, "pm-rider").await, 50);
    assert_eq!(stock(&pool, item_id).await, Some(2));
    let other = login(&pool, "pm-other-rider", Role::Rider, &[]).await;
    for token in [&other, &w.merchant, &w.planner] {
        let r = call(&pool, "POST", &format!("/api/points/redemptions/{id}/cancel"), Some(token), &[], None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", text(&r));
    }
    let bad = call(
        &pool,
        "POST",
        &format!("/api/points/redemptions/{id}/cancel"),
        Some(&w.rider),
        &[],
        Some(json!({"why": "x"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", text(&bad));
    let r = call(
        &pool,
        "POST",
        &format!("/api/points/redemptions/{id}/cancel"),
        Some(&w.rider),
        &[],
        Some(json!({"reason": "不需要了"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(r.json()["status"], "cancelled");
    assert_eq!(r.json()["cancel_reason"], "不需要了");
    assert_eq!(balance(&pool, "pm-rider").await, 100);
    assert_eq!(stock(&pool, item_id).await, Some(4));
    let again = call(&pool, "POST", &format!("/api/points/redemptions/{id}/cancel"), Some(&w.rider), &[], None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(balance(&pool, "pm-rider").await, 100, "refunded once");
    // An admin cancels someone's pending redemption (an unlimited item: no stock to restore).
    let (unlimited, _) = item(&pool, &w, 30, None).await;
    let second = redeem(&pool, &w.rider, &key(), json!({"item_id": unlimited})).await;
    let id2 = second.json()["id"].as_i64().expect("id");
    let r = call(&pool, "POST", &format!("/api/points/redemptions/{id2}/cancel"), Some(&w.admin), &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(balance(&pool, "pm-rider").await, 100);
    assert_eq!(stock(&pool, unlimited).await, None);
    // The ledger keeps all of it: two debits, two refunds.
    let rows: Vec<(String, i32)> = sqlx::query_as(
        "select reason, delta from points_ledger where redemption_id is not null and account_id = $1 order by id",
    )
    .bind(account_id(&pool, "pm-rider").await)
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        vec![
            ("redeemed".to_string(), -50),
            ("redemption_refunded".to_string(), 50),
            ("redeemed".to_string(), -30),
            ("redemption_refunded".to_string(), 30)
        ]
    );
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn station_and_community_items_are_handed_over_by_their_host_and_community_worker(pool: PgPool) {
    let w = world(&pool).await;
    earn(&pool, "pm-rider", 20).await;
    let (station, community): (i64, i64) =
        sqlx::query_as("select (select min(id) from station), (select min(id) from community)")
            .fetch_one(&pool)
            .await
            .expect("places");
    let grids: Vec<String> = sqlx::query_scalar("select code from grid where community_id = $1 order by id limit 1")
        .bind(community)
        .fetch_all(&pool)
        .await
        .expect("grid");
    let outside: Vec<String> = sqlx::query_scalar("select code from grid where community_id <> $1 order by id limit 1")
        .bind(community)
        .fetch_all(&pool)
        .await
        .expect("grid");
    let worker = login(&pool, "pm-worker", Role::GridWorker, &grids).await;
    let far_worker = login(&pool, "pm-far-worker", Role::GridWorker, &outside).await;
    let host = login(&pool, "pm-host", Role::StationHost, &[]).await;
    sqlx::query("update account set station_id = $1 where name = 'pm-host'")
        .bind(station)
        .execute(&pool)
        .await
        .expect("host");
    let mut ids = Vec::new();
    for place in [json!({"station_id": station}), json!({"community_id": community})] {
        let mut body = json!({"name": "大米 10 斤", "kind": "goods", "cost": 50, "stock": 5});
        body.as_object_mut().expect("object").extend(place.as_object().expect("object").clone());
        let created = call(&pool, "POST", "/api/points/catalogue", Some(&w.admin), &[], Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", text(&created));
        let r = redeem(&pool, &w.rider, &key(), json!({"item_id": created.json()["id"]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
        ids.push(r.json()["id"].as_i64().expect("id"));
    }
    let (at_station, at_community) = (ids[0], ids[1]);
    let handover = |id: i64, token: String| {
        let pool = pool.clone();
        async move {
            call(&pool, "POST", &format!("/api/points/redemptions/{id}/handover"), Some(&token), &[], None).await.status
        }
    };
    assert_eq!(handover(at_station, worker.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(handover(at_station, w.merchant.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(handover(at_community, host.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(handover(at_community, far_worker.clone()).await, StatusCode::FORBIDDEN);
    // Who hands over sees it (and its masked redeemer); an unrelated worker does not.
    let seen = call(&pool, "GET", &format!("/api/points/redemptions/{at_community}"), Some(&worker), &[], None).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", text(&seen));
    assert_eq!(seen.json()["mine"], false);
    let unseen =
        call(&pool, "GET", &format!("/api/points/redemptions/{at_community}"), Some(&far_worker), &[], None).await;
    assert_eq!(unseen.status, StatusCode::FORBIDDEN);
    assert_eq!(handover(at_station, host).await, StatusCode::OK);
    assert_eq!(handover(at_community, worker).await, StatusCode::OK);
    let mine = call(&pool, "GET", "/api/points/redemptions?status=handed_over", Some(&w.rider), &[], None).await;
    assert_eq!(mine.json().as_array().expect("list").len(), 2, "{}", text(&mine));
    let missing = call(&pool, "POST", "/api/points/redemptions/999999999/handover", Some(&w.admin), &[], None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn nobody_hands_over_their_own_redemption(pool: PgPool) {
    let w = world(&pool).await;
    // The merchant redeems at their own shop: someone else (an admin) confirms the hand-over.
    earn(&pool, "merchant-01", 5).await;
    let (item_id, _) = item(&pool, &w, 10, None).await;
    let r = redeem(&pool, &w.merchant, &key(), json!({"item_id": item_id})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let id = r.json()["id"].as_i64().expect("id");
    let own =
        call(&pool, "POST", &format!("/api/points/redemptions/{id}/handover"), Some(&w.merchant), &[], None).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN);
    assert_eq!(own.json()["reason"], "own_redemption");
    let admin = call(&pool, "POST", &format!("/api/points/redemptions/{id}/handover"), Some(&w.admin), &[], None).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", text(&admin));
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn planners_and_admins_edit_the_catalogue_with_if_match(pool: PgPool) {
    let w = world(&pool).await;
    let rider_try = call(
        &pool,
        "POST",
        "/api/points/catalogue",
        Some(&w.rider),
        &[],
        Some(json!({"name": "x", "kind": "goods", "cost": 1, "merchant_id": w.merchant_id})),
    )
    .await;
    assert_eq!(rider_try.status, StatusCode::FORBIDDEN);
    let merchant_try = call(&pool, "POST", "/api/points/catalogue", Some(&w.merchant), &[], Some(json!({}))).await;
    assert_eq!(merchant_try.status, StatusCode::FORBIDDEN);
    let (id, etag) = item(&pool, &w, 40, Some(3)).await;
    let uri = format!("/api/points/catalogue/{id}");
    let got = call(&pool, "GET", &uri, None, &[], None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers[header::ETAG], etag.as_str());
    assert!(got.json().get("merchant_id").is_none(), "the merchant's account is not public");
    let patch = json!({"cost": 45, "stock": 10});
    let missing = call(&pool, "PATCH", &uri, Some(&w.planner), &[], Some(patch.clone())).await;
    assert_eq!(missing.status, StatusCode::PRECONDITION_REQUIRED);
    let stale = call(&pool, "PATCH", &uri, Some(&w.planner), &[("If-Match", "\"99\"")], Some(patch.clone())).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let ok = call(&pool, "PATCH", &uri, Some(&w.admin), &[("If-Match", etag.as_str())], Some(patch)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", text(&ok));
    assert_eq!(ok.json()["cost"], 45);
    assert_eq!(ok.json()["stock"], 10);
    let etag2 = ok.headers[header::ETAG].to_str().expect("etag").to_string();
    assert_ne!(etag2, etag);
    // A redemption takes stock, so it moves the version: an edit from before it is stale.
    earn(&pool, "pm-rider", 5).await;
    assert_eq!(redeem(&pool, &w.rider, &key(), json!({"item_id": id})).await.status, StatusCode::CREATED);
    let stale =
        call(&pool, "PATCH", &uri, Some(&w.planner), &[("If-Match", etag2.as_str())], Some(json!({"stock": 100})))
            .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stock(&pool, id).await, Some(9));
    // Unlimited, then inactive: the public no longer sees it, the planner does.
    let etag3 =
        call(&pool, "GET", &uri, None, &[], None).await.headers[header::ETAG].to_str().expect("etag").to_string();
    let off = call(
        &pool,
        "PATCH",
        &uri,
        Some(&w.planner),
        &[("If-Match", etag3.as_str())],
        Some(json!({"stock": null, "active": false})),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", text(&off));
    assert_eq!(off.json()["stock"], Value::Null);
    assert_eq!(call(&pool, "GET", &uri, None, &[], None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&pool, "GET", &uri, Some(&w.planner), &[], None).await.status, StatusCode::OK);
    let public = call(&pool, "GET", "/api/points/catalogue", None, &[], None).await;
    assert!(!public.json().as_array().expect("list").iter().any(|i| i["id"] == id));
    let all = call(&pool, "GET", "/api/points/catalogue?include_inactive=true", Some(&w.planner), &[], None).await;
    assert!(all.json().as_array().expect("list").iter().any(|i| i["id"] == id));
    let refused = call(&pool, "GET", "/api/points/catalogue?include_inactive=true", Some(&w.rider), &[], None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn every_bad_input_is_a_clear_4xx_and_stores_nothing(pool: PgPool) {
    let w = world(&pool).await;
    earn(&pool, "pm-rider", 5).await;
    let (item_id, etag) = item(&pool, &w, 10, Some(5)).await;
    let station: i64 = sqlx::query_scalar("select min(id) from station").fetch_one(&pool).await.expect("station");
    let items = crate::common::count(&pool, "points_item").await;
    let bad_items = [
        (json!({"name": "", "kind": "goods", "cost": 1, "station_id": station}), StatusCode::BAD_REQUEST, "name"),
        (json!({"name": "x", "kind": "gold", "cost": 1, "station_id": station}), StatusCode::BAD_REQUEST, "kind"),
        (json!({"name": "x", "kind": "goods", "cost": 0, "station_id": station}), StatusCode::BAD_REQUEST, "cost"),
        (
            json!({"name": "x", "kind": "goods", "cost": 1, "stock": -1, "station_id": station}),
            StatusCode::BAD_REQUEST,
            "stock",
        ),
        (json!({"name": "x", "kind": "goods", "cost": 1}), StatusCode::BAD_REQUEST, "merchant_id"),
        (
            json!({"name": "x", "kind": "goods", "cost": 1, "station_id": station, "community_id": 1}),
            StatusCode::BAD_REQUEST,
            "merchant_id",
        ),
        (
            json!({"name": "x", "kind": "goods", "cost": 1, "station_id": station, "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "body",
        ),
        (
            json!({"name": "x", "kind": "goods", "cost": 1, "station_id": 999_999_999}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            json!({"name": "x", "kind": "goods", "cost": 1, "merchant_id": account_id(&pool, "pm-rider").await}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (json!({"name": "x", "kind": "goods", "cost": "ten", "station_id": station}), StatusCode::BAD_REQUEST, "cost"),
    ];
    for (body, status, field) in bad_items {
        let r = call(&pool, "POST", "/api/points/catalogue", Some(&w.planner), &[], Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", text(&r));
        assert!(r.json()["message"].as_str().is_some_and(|m| !m.is_empty()));
        if !field.is_empty() && field != "body" {
            assert_eq!(r.json()["field"], field, "{body}");
        }
    }
    assert_eq!(crate::common::count(&pool, "points_item").await, items);
    let bad_patch = call(
        &pool,
        "PATCH",
        &format!("/api/points/catalogue/{item_id}"),
        Some(&w.planner),
        &[("If-Match", etag.as_str())],
        Some(json!({"merchant_id": 1})),
    )
    .await;
    assert_eq!(bad_patch.status, StatusCode::BAD_REQUEST, "the place does not change: {}", text(&bad_patch));
    let redemptions = crate::common::count(&pool, "points_redemption").await;
    let ledger = crate::common::count(&pool, "points_ledger").await;
    let bad_redemptions = [
        (json!({}), StatusCode::BAD_REQUEST),
        (json!({"item_id": "one"}), StatusCode::BAD_REQUEST),
        (json!({"item_id": item_id, "quantity": 0}), StatusCode::BAD_REQUEST),
        (json!({"item_id": item_id, "quantity": 11}), StatusCode::BAD_REQUEST),
        (json!({"item_id": item_id, "price": 0}), StatusCode::BAD_REQUEST),
        (json!({"item_id": 999_999_999}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!([item_id]), StatusCode::BAD_REQUEST),
    ];
    for (body, status) in bad_redemptions {
        let r = redeem(&pool, &w.rider, &key(), body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", text(&r));
    }
    let not_json =
        call(&pool, "POST", "/api/points/redemptions", Some(&w.rider), &[("Idempotency-Key", key().as_str())], None)
            .await;
    assert!(not_json.status.is_client_error(), "{}", not_json.status);
    assert_eq!(crate::common::count(&pool, "points_redemption").await, redemptions);
    assert_eq!(crate::common::count(&pool, "points_ledger").await, ledger);
    for uri in [
        "/api/points/rankings",
        "/api/points/rankings?group=pirates",
        "/api/points/rankings?group=riders&year=1999",
        "/api/points/rankings?group=riders&limit=0",
        "/api/points/rankings?group=riders&colour=red",
        "/api/points/catalogue?kind=gold",
        "/api/points/catalogue?colour=red",
    ] {
        let r = call(&pool, "GET", uri, None, &[], None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", text(&r));
    }
    for uri in ["/api/points/redemptions?view=all", "/api/points/redemptions?status=lost"] {
        let r = call(&pool, "GET", uri, Some(&w.rider), &[], None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", text(&r));
    }
    assert_eq!(call(&pool, "GET", "/api/points/catalogue/x", None, &[], None).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        call(&pool, "GET", "/api/points/catalogue/999999999", None, &[], None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn earning_follows_the_rule_table(pool: PgPool) {
    let _w = world(&pool).await;
    let rider = account_id(&pool, "pm-rider").await;
    let mut conn = pool.acquire().await.expect("connection");
    // Another amount for riders: the next award has it; once per source.
    sqlx::query("update points_rule set points = 25 where event = 'report_accepted' and group_code = 'riders'")
        .execute(&pool)
        .await
        .expect("rule");
    let award = points::award(&mut conn, rider, "report_accepted", SourceRef { kind: "test", id: 1 })
        .await
        .expect("award")
        .expect("awarded");
    assert_eq!((award.points, award.group_code.as_str()), (25, "riders"));
    let twice =
        points::award(&mut conn, rider, "report_accepted", SourceRef { kind: "test", id: 1 }).await.expect("award");
    assert_eq!(twice, None, "once per source");
    // No rule for riders: nothing. An inactive rule: nothing. A named group: its rule.
    assert_eq!(
        points::award(&mut conn, rider, "wish_completed", SourceRef { kind: "wish", id: 1 }).await.expect("award"),
        None
    );
    sqlx::query("update points_rule set active = false where event = 'door_round_completed' and group_code = 'riders'")
        .execute(&pool)
        .await
        .expect("rule");
    assert_eq!(
        points::award(&mut conn, rider, "door_round_completed", SourceRef::door_round(1)).await.expect("award"),
        None
    );
    let member = points::award_in_group(
        &mut conn,
        rider,
        "emergency_checkin",
        Some("party_members"),
        SourceRef { kind: "emergency", id: 1 },
    )
    .await
    .expect("award")
    .expect("awarded");
    assert_eq!((member.points, member.group_code.as_str()), (30, "party_members"));
    // The rules are public.
    let rules = crate::common::get(&pool, "/api/points/rules").await;
    assert_eq!(rules.status, StatusCode::OK);
    let body = rules.json();
    assert_eq!(body["groups"].as_array().expect("groups").len(), 6);
    assert!(
        body["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .any(|r| r["event"] == "report_accepted" && r["group_code"] == "riders" && r["points"] == 25)
    );
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn closing_a_door_knocking_round_credits_everyone_who_knocked(pool: PgPool) {
    let _w = world(&pool).await;
    let (grid, code): (i64, String) = sqlx::query_as(
        r"select g.id, g.code from grid g
           where exists (select 1 from building b where b.grid_id = g.id and b.households > 0)
             and not exists (select 1 from door_round_grid rg join door_round r on r.id = rg.round_id
                              where rg.grid_id = g.id and r.closed_at is null)
           order by g.id limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("grid");
    let worker = login(&pool, "pm-knocker", Role::GridWorker, &[code]).await;
    let round: i64 = sqlx::query_scalar(
        "insert into door_round (scope, grid_id, name, starts_on, ends_on) values ('grid', $1, 'pm', current_date - 1, current_date + 5) returning id",
    )
    .bind(grid)
    .fetch_one(&pool)
    .await
    .expect("round");
    let buildings: Vec<(i64, i32)> =
        sqlx::query_as("select id, households from building where grid_id = $1 and households > 0")
            .bind(grid)
            .fetch_all(&pool)
            .await
            .expect("buildings");
    for (b, households) in buildings {
        let r = call(
            &pool,
            "POST",
            &format!("/api/rounds/{round}/visits"),
            Some(&worker),
            &[("Idempotency-Key", key().as_str())],
            Some(json!({"building_id": b, "households": households, "outcome": "at_home"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    }
    let closed = call(&pool, "POST", &format!("/api/rounds/{round}/close"), Some(&worker), &[], None).await;
    assert_eq!(closed.status, StatusCode::OK, "{}", text(&closed));
    let rows: Vec<(String, i32, String)> =
        sqlx::query_as("select reason, delta, group_code from points_ledger where account_id = $1")
            .bind(account_id(&pool, "pm-knocker").await)
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows, vec![("door_round_completed".to_string(), 50, "grid_workers".to_string())]);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn yearly_rankings_per_group_are_masked_and_spending_does_not_lower_them(pool: PgPool) {
    let w = world(&pool).await;
    let zhang = login(&pool, "pm-zhang", Role::Rider, &[]).await;
    login(&pool, "pm-li", Role::Rider, &[]).await;
    sqlx::query("update account set display_name = '张三丰' where name = 'pm-zhang'")
        .execute(&pool)
        .await
        .expect("name");
    sqlx::query("update account set display_name = '李四' where name = 'pm-li'").execute(&pool).await.expect("name");
    // Far above the seeded riders: 90 and 80 points this year.
    earn(&pool, "pm-zhang", 90).await;
    earn(&pool, "pm-li", 8).await;
    earn(&pool, "pm-li", 0).await;
    sqlx::query(
        r"insert into points_ledger (account_id, delta, reason, rule_id, group_code, source_kind, source_id)
          select a.id, 720, 'report_accepted', r.id, 'riders', 'test-bulk', 1
            from account a, points_rule r where a.name = 'pm-li' and r.event = 'report_accepted' and r.group_code = 'riders'",
    )
    .execute(&pool)
    .await
    .expect("bulk");
    // Zhang spends most of it: the ranking counts what was earned.
    let (item_id, _) = item(&pool, &w, 800, None).await;
    assert_eq!(redeem(&pool, &zhang, &key(), json!({"item_id": item_id})).await.status, StatusCode::CREATED);
    // Last year's earnings are last year's.
    sqlx::query(
        r"insert into points_ledger (account_id, delta, reason, rule_id, group_code, source_kind, source_id, created_at)
          select a.id, 5000, 'report_accepted', r.id, 'riders', 'test-old', 1, now() - interval '400 days'
            from account a, points_rule r where a.name = 'pm-li' and r.event = 'report_accepted' and r.group_code = 'riders'",
    )
    .execute(&pool)
    .await
    .expect("old");
    let year: i32 = sqlx::query_scalar("select extract(year from gridmap_county_today())::int")
        .fetch_one(&pool)
        .await
        .expect("year");
    let r =
        call(&pool, "GET", &format!("/api/points/rankings?group=riders&year={year}&limit=3"), None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let body = r.json();
    assert_eq!(body["group"]["code"], "riders");
    assert_eq!(body["year"], year);
    assert_eq!(body["rows"][0]["display_name"], "张**");
    assert_eq!(body["rows"][0]["points"], 900);
    assert_eq!(body["rows"][0]["rank"], 1);
    assert_eq!(body["rows"][1]["display_name"], "李*");
    assert_eq!(body["rows"][1]["points"], 800);
    let page = text(&r);
    assert!(!page.contains("张三丰") && !page.contains("pm-zhang") && !page.contains("李四"), "{page}");
    // Another group's ranking does not list riders; the default year is this one.
    let leaders = call(&pool, "GET", "/api/points/rankings?group=building_leaders", None, &[], None).await;
    assert_eq!(leaders.status, StatusCode::OK, "{}", text(&leaders));
    assert_eq!(leaders.json()["year"], year);
    assert!(!text(&leaders).contains("张**"));
    // The monthly leaderboard ignores spending too.
    let board = call(&pool, "GET", "/api/points/leaderboard?limit=100", None, &[], None).await;
    let zhang_row = board.json().as_array().expect("board").iter().find(|x| x["display_name"] == "张**").cloned();
    assert_eq!(zhang_row.expect("on the board")["points"], 900);
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn an_admin_changes_an_earning_rule_with_if_match_and_the_next_award_follows_it(pool: PgPool) {
    let w = world(&pool).await;
    let rider = account_id(&pool, "pm-rider").await;
    let (id, version): (i64, i32) =
        sqlx::query_as("select id, version from points_rule where event = 'report_accepted' and group_code = 'riders'")
            .fetch_one(&pool)
            .await
            .expect("rule");
    let path = format!("/api/points/rules/{id}");
    let read = call(&pool, "GET", &path, None, &[], None).await;
    assert_eq!(read.status, StatusCode::OK);
    let etag = read.headers.get("etag").expect("an ETag").to_str().expect("ascii").to_string();
    assert_eq!(etag, format!("\"{version}\""));
    // Without If-Match: 428; a planner: 403; a bad amount or an unknown field: 400 naming it.
    let change = json!({"points": 40, "description": "上报问题被受理（骑手加倍）"});
    let missing = call(&pool, "PATCH", &path, Some(&w.admin), &[], Some(change.clone())).await;
    assert_eq!(missing.status, StatusCode::PRECONDITION_REQUIRED, "{}", text(&missing));
    let planner = call(&pool, "PATCH", &path, Some(&w.planner), &[("If-Match", &etag)], Some(change.clone())).await;
    assert_eq!(planner.status, StatusCode::FORBIDDEN);
    for (body, field) in
        [(json!({"points": 0}), "points"), (json!({"points": 10001}), "points"), (json!({"event": "x"}), "event")]
    {
        let bad = call(&pool, "PATCH", &path, Some(&w.admin), &[("If-Match", &etag)], Some(body)).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", text(&bad));
        assert!(text(&bad).contains(field), "{}", text(&bad));
    }
    let unchanged: i32 = sqlx::query_scalar("select points from points_rule where id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("points");
    assert_eq!(unchanged, 10, "a refused change stores nothing");
    // The admin's change: 200 with the new version; the old ETag is then stale (412).
    let changed = call(&pool, "PATCH", &path, Some(&w.admin), &[("If-Match", &etag)], Some(change.clone())).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", text(&changed));
    assert_eq!(changed.json()["points"], 40);
    assert_eq!(changed.headers.get("etag").expect("ETag").to_str().expect("ascii"), format!("\"{}\"", version + 1));
    let stale =
        call(&pool, "PATCH", &path, Some(&w.admin), &[("If-Match", &etag)], Some(json!({"active": false}))).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED, "{}", text(&stale));
    let missing_rule = call(
        &pool,
        "PATCH",
        "/api/points/rules/999999",
        Some(&w.admin),
        &[("If-Match", "\"1\"")],
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(missing_rule.status, StatusCode::NOT_FOUND);
    // The next award earns the new amount; switched off, nothing.
    let mut conn = pool.acquire().await.expect("connection");
    let award = points::award(&mut conn, rider, "report_accepted", SourceRef { kind: "test", id: 7 })
        .await
        .expect("award")
        .expect("awarded");
    assert_eq!(award.points, 40);
    let now = format!("\"{}\"", version + 1);
    let off = call(&pool, "PATCH", &path, Some(&w.admin), &[("If-Match", &now)], Some(json!({"active": false}))).await;
    assert_eq!(off.status, StatusCode::OK, "{}", text(&off));
    assert_eq!(
        points::award(&mut conn, rider, "report_accepted", SourceRef { kind: "test", id: 8 }).await.expect("award"),
        None
    );
    // A county-scoped admin does not change rules that hold for every county.
    let county: i64 = sqlx::query_scalar("select min(id) from county").fetch_one(&pool).await.expect("county");
    sqlx::query("update account set county_id = $1 where name = 'pm-admin'")
        .bind(county)
        .execute(&pool)
        .await
        .expect("scope");
    let current = format!("\"{}\"", version + 2);
    let scoped =
        call(&pool, "PATCH", &path, Some(&w.admin), &[("If-Match", &current)], Some(json!({"active": true}))).await;
    assert_eq!(scoped.status, StatusCode::FORBIDDEN, "{}", text(&scoped));
    assert!(text(&scoped).contains("county_scoped"), "{}", text(&scoped));
}
