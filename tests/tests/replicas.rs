//! Two real gridmap processes on one database (docs/deploy.md), talked to directly (no proxy):
//! a write through either is seen by the other within a second — report tiles, the duplicate
//! search, grid tiles and look-ups, the live feed (in order, resumable on either instance with
//! `Last-Event-ID`, without gaps or duplicates), logouts — and a resend through the other
//! instance gets the first answer. Every wait is bounded polling that fails after [`WITHIN`] and
//! prints how long it took; nothing sleeps for a fixed time and calls that an assertion.

use std::time::{Duration, Instant};

use gridmap_e2e::{Server, seeded_db};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const PASSWORD: &str = "replicas-demo-pass";
/// The deadline each check polls to. gridmap's path is a NOTIFY (≤ 20 ms after the commit) and a
/// history read, so on an idle machine every check here passes in tens of milliseconds (the
/// test prints how long each took); the 1 s of issue 21 is measured by bench/replicas.sh. The
/// deadline is wider because this machine runs other builds and tests beside it, and a missed
/// notification still shows within the follower's 1 s poll — what fails here is a change that
/// never arrives.
const WITHIN: Duration = Duration::from_secs(5);

async fn login(server: &Server, name: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&json!({"name": name, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    body["token"].as_str().unwrap_or_else(|| panic!("login {name}: {body}")).to_string()
}

/// Poll `check` until it gives `Some`, for at most [`WITHIN`] from `since`.
async fn within<T, F, Fut>(what: &str, since: Instant, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    loop {
        if let Some(found) = check().await {
            eprintln!("{what}: {:?}", since.elapsed());
            return found;
        }
        assert!(since.elapsed() < WITHIN, "{what}: not seen within {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One SSE event: its id and its data.
type SseEvent = (String, Value);

/// Open the live feed (optionally resuming after `last_event_id`) and forward its events.
async fn feed(server: &Server, token: &str, last_event_id: Option<&str>) -> mpsc::UnboundedReceiver<SseEvent> {
    let mut request = reqwest::Client::new().get(server.url("/api/reports/stream")).bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let mut response = request.send().await.expect("feed");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let id = block.lines().find_map(|l| l.strip_prefix("id: ")).map(str::to_string);
                let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                if let (Some(id), Some(data)) = (id, data) {
                    let _ = tx.send((id, serde_json::from_str(data).expect("event data is JSON")));
                }
            }
        }
    });
    rx
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<SseEvent>, since: Instant) -> SseEvent {
    let left = WITHIN.saturating_sub(since.elapsed()) + Duration::from_millis(1);
    let event =
        tokio::time::timeout(left, rx.recv()).await.expect("a feed event within 5 s").expect("the feed is open");
    eprintln!("feed event {}: {:?}", event.0, since.elapsed());
    event
}

async fn tile_etag(server: &Server, path: &str) -> Option<String> {
    let response = reqwest::Client::new().get(server.url(path)).send().await.expect("tile");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.headers().get("etag").map(|v| v.to_str().expect("ascii").to_string())
}

fn tile_at(z: u32, lon: f64, lat: f64) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = (lon + 180.0) / 360.0 * n;
    let lat = lat.to_radians();
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n;
    (x as u32, y as u32)
}

/// Status, whether it was a replayed answer, and the body.
async fn post_report(
    server: &Server,
    token: &str,
    key: &str,
    lon: f64,
    lat: f64,
) -> (reqwest::StatusCode, bool, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/api/reports"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({"category": "manhole_cover", "description": "井盖缺失",
                      "location": {"lon": lon, "lat": lat, "crs": "wgs84", "accuracy_m": 8.0}}))
        .send()
        .await
        .expect("report");
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (status, replayed, response.json().await.expect("json"))
}

#[tokio::test]
async fn two_instances_on_one_database_see_each_others_writes_within_a_second() {
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let env = [("GRIDMAP_DEMO_PASSWORD", PASSWORD)];
    let a = Server::start(&db, &env).await;
    let b = Server::start(&db, &env).await;
    let rider = login(&a, "rider-01").await;
    let admin = login(&a, "demo-admin").await;
    let (grid_id, lon, lat): (i64, f64, f64) = sqlx::query_as(
        "select id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) from grid order by id limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("a grid");
    let (x, y) = tile_at(15, lon, lat);
    let report_tile = format!("/tiles/reports/15/{x}/{y}.mvt");
    let grid_tile = format!("/tiles/grids/15/{x}/{y}.mvt");
    let mut feed_b = feed(&b, &admin, None).await;
    let report_tile_before = tile_etag(&b, &report_tile).await;
    let grid_tile_before = tile_etag(&b, &grid_tile).await;

    // A report through A: B's feed, report tile and duplicate search.
    let key = uuid::Uuid::new_v4().to_string();
    let sent = Instant::now();
    let (status, _, first) = post_report(&a, &rider, &key, lon, lat).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{first}");
    let id = first["id"].as_i64().expect("id");
    let (created_id, created) = next_event(&mut feed_b, sent).await;
    assert_eq!((created["kind"].as_str(), created["id"].as_i64()), (Some("created"), Some(id)), "{created}");
    assert_eq!(created["event_id"].to_string(), created_id, "the SSE id is the history id");
    within("B's report tile shows the report", sent, || async {
        (tile_etag(&b, &report_tile).await != report_tile_before).then_some(())
    })
    .await;
    let (status, _, second) = post_report(&b, &rider, &uuid::Uuid::new_v4().to_string(), lon, lat).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{second}");
    let duplicates: Vec<i64> = second["possible_duplicates"]
        .as_array()
        .unwrap_or_else(|| panic!("possible_duplicates: {second}"))
        .iter()
        .filter_map(|d| d["id"].as_i64())
        .collect();
    assert!(duplicates.contains(&id), "B's duplicate search knows A's report: {second}");

    // The resend through B gets A's first answer, and stores nothing.
    let (status, replayed, resent) = post_report(&b, &rider, &key, lon, lat).await;
    assert_eq!((status, replayed), (reqwest::StatusCode::CREATED, true), "{resent}");
    assert_eq!(resent, first, "the first answer, byte for byte");
    let stored: i64 = sqlx::query_scalar("select count(*) from report where idempotency_key = $1::uuid")
        .bind(&key)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 1);

    // A transition through A reaches B's feed after the second report's creation, in order.
    let since = Instant::now();
    let (second_created_id, second_created) = next_event(&mut feed_b, since).await;
    assert_eq!(second_created["id"].as_i64(), second["id"].as_i64(), "{second_created}");
    let accepted = reqwest::Client::new()
        .post(a.url(&format!("/api/reports/{id}/transitions")))
        .bearer_auth(&admin)
        .header("If-Match", "\"1\"")
        .json(&json!({"to": "accepted"}))
        .send()
        .await
        .expect("transition");
    assert_eq!(accepted.status(), reqwest::StatusCode::OK);
    let (accepted_id, transition) = next_event(&mut feed_b, since).await;
    assert_eq!((transition["kind"].as_str(), transition["id"].as_i64()), (Some("transition"), Some(id)));
    assert_eq!((transition["status"].as_str(), transition["version"].as_i64()), (Some("accepted"), Some(2)));

    // A client that saw only the first event resumes on A: exactly the two that followed on B.
    let since = Instant::now();
    let mut resumed = feed(&a, &admin, Some(&created_id)).await;
    let replayed = [next_event(&mut resumed, since).await.0, next_event(&mut resumed, since).await.0];
    assert_eq!(replayed, [second_created_id.clone(), accepted_id.clone()], "no gap, same order");
    // …and from the last one on B: nothing is sent twice; the next live change comes next.
    let mut caught_up = feed(&b, &admin, Some(&accepted_id)).await;
    let since = Instant::now();
    let (_, _, third) = post_report(&a, &rider, &uuid::Uuid::new_v4().to_string(), lon, lat).await;
    let (_, next) = next_event(&mut caught_up, since).await;
    assert_eq!(next["id"].as_i64(), third["id"].as_i64(), "the first event after the resume point: {next}");

    // A grid edit in plain SQL (as QGIS or an import would): B's grid tile and look-up follow.
    let since = Instant::now();
    sqlx::query("update grid set name = '副本测试网格', geom = ST_Multi(ST_Buffer(geom, 0.0001)) where id = $1")
        .bind(grid_id)
        .execute(&pool)
        .await
        .expect("edit");
    within("B's grid tile shows the edit", since, || async {
        (tile_etag(&b, &grid_tile).await != grid_tile_before).then_some(())
    })
    .await;
    within("B's grid look-up shows the edit", since, || async {
        let at: Value = reqwest::get(b.url(&format!("/api/grids/at?lon={lon}&lat={lat}")))
            .await
            .expect("grids/at")
            .json()
            .await
            .expect("json");
        (at.to_string().contains("副本测试网格")).then_some(())
    })
    .await;

    // Logout through A ends the token on B (where it was cached) within 1 s.
    let me = |server: &Server, token: &str| {
        reqwest::Client::new().get(server.url("/api/points/me")).bearer_auth(token.to_string()).send()
    };
    assert_eq!(me(&b, &rider).await.expect("me").status(), reqwest::StatusCode::OK, "cached on B");
    let since = Instant::now();
    let out = reqwest::Client::new().post(a.url("/api/auth/logout")).bearer_auth(&rider).send().await.expect("out");
    assert!(out.status().is_success(), "logout: {}", out.status());
    within("B refuses the logged-out token", since, || async {
        (me(&b, &rider).await.expect("me").status() == reqwest::StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
}

#[tokio::test]
async fn sigterm_drains_readiness_first_then_exits_zero() {
    let db = seeded_db(PASSWORD).await;
    let mut server = Server::start(&db, &[("GRIDMAP_DRAIN_SECONDS", "2")]).await;
    let client = reqwest::Client::new();
    let _ = std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    let since = Instant::now();
    within("/readyz answers 503 after SIGTERM", since, || async {
        let status = client.get(server.url("/readyz")).send().await.expect("still accepting").status();
        (status == reqwest::StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    // Still serving during the drain (what the load balancer already sent), asking to close.
    let tile = client.get(server.url("/tiles/grids/0/0/0.mvt")).send().await.expect("served while draining");
    assert!(tile.status().is_success(), "{}", tile.status());
    assert_eq!(tile.headers().get("connection").map(reqwest::header::HeaderValue::as_bytes), Some(&b"close"[..]));
    let status = tokio::task::spawn_blocking(move || server.child.wait().expect("wait")).await.expect("join");
    assert!(status.success(), "exit status {status:?}");
    assert!(since.elapsed() >= Duration::from_secs(2), "it served out the drain period first");
}

/// The `gridmap_instances` gauge of a server's /metrics.
async fn instances_seen(server: &Server) -> Option<u32> {
    let text = reqwest::get(server.url("/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("gridmap_instances ")).and_then(|n| n.trim().parse().ok())
}

#[tokio::test]
async fn a_client_spreading_writes_over_two_instances_gets_the_budget_once() {
    let db = seeded_db(PASSWORD).await;
    // A burst of 10 writes, refilled at one per second: the test's 20 writes take well under a
    // second, so about 10 can be granted in all; each instance alone would grant 10.
    let env = [("GRIDMAP_DEMO_PASSWORD", PASSWORD), ("GRIDMAP_RATE_WRITES", "1/10")];
    let a = Server::start(&db, &env).await;
    let b = Server::start(&db, &env).await;
    let since = Instant::now();
    for server in [&a, &b] {
        within("each instance counts two instances", since, || async {
            (instances_seen(server).await == Some(2)).then_some(())
        })
        .await;
    }
    let client = reqwest::Client::new();
    let mut granted = 0;
    let started = Instant::now();
    for i in 0..20 {
        // An anonymous write counts against the client's address whatever it is refused for.
        let server = if i % 2 == 0 { &a } else { &b };
        let status = client.post(server.url("/api/reports")).json(&json!({})).send().await.expect("write").status();
        if status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            granted += 1;
        }
    }
    let took = started.elapsed();
    eprintln!("granted {granted} of 20 alternating writes in {took:?}");
    // 10 from the burst, plus what refilled (1/s across both) while the requests ran.
    let refilled = u32::try_from(took.as_secs()).unwrap_or(u32::MAX) + 1;
    assert!(granted <= 10 + refilled, "the two instances granted {granted} writes: the budget was multiplied");
    assert!(granted >= 10, "each instance grants its half of the burst ({granted} granted)");
}
