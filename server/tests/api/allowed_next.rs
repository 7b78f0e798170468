//! `allowed_next` and `waiting_for`: every report the API returns to a signed-in viewer says
//! which transitions this viewer may make now, and the server accepts exactly those. The
//! property runs over every status × every kind of viewer × every target status; it runs
//! through one long-lived `AppState`, as a running server does (token cache, open reports,
//! grid index and tile cache shared across requests).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{Reply, send_to};
use crate::reports::{report_body, small_city, user};
use gridmap_server::config::Role;
use gridmap_server::http::AppState;
use gridmap_server::reports::status::ReportStatus;

struct World {
    state: AppState,
    rider: String,
    /// Works grid 1 and walks every report along (so it gave every feedback).
    worker: String,
    /// Also works grid 1: the four-eyes verifier.
    colleague: String,
    /// Works grid 2 only.
    stranger: String,
    planner: String,
    admin: String,
}

impl World {
    async fn new(pool: &PgPool) -> Self {
        small_city(pool).await;
        let mut state = AppState::new(pool.clone());
        // Hundreds of writes from one client in a few seconds: not what the rate limit is about.
        let many = governor::Quota::per_second(std::num::NonZeroU32::new(1_000_000).expect("> 0"));
        state.limits = gridmap_server::http::limits::Limits::with_quotas(many, many);
        Self {
            state,
            rider: user(pool, "rider-li", Role::Rider, &["G-W"]).await,
            worker: user(pool, "gw-west", Role::GridWorker, &["G-W"]).await,
            colleague: user(pool, "gw-west-2", Role::GridWorker, &["G-W"]).await,
            stranger: user(pool, "gw-east", Role::GridWorker, &["G-E"]).await,
            planner: user(pool, "planner-zhao", Role::Planner, &[]).await,
            admin: user(pool, "admin-wang", Role::Admin, &[]).await,
        }
    }

    fn viewers(&self) -> [(&'static str, &str); 6] {
        [
            ("submitter (rider)", &self.rider),
            ("worker of the grid who gave the feedback", &self.worker),
            ("another worker of the grid", &self.colleague),
            ("worker of another grid", &self.stranger),
            ("planner", &self.planner),
            ("admin", &self.admin),
        ]
    }

    async fn send(&self, token: Option<&str>, request: axum::http::request::Builder, body: Body) -> Reply {
        let request = match token {
            Some(t) => request.header(header::AUTHORIZATION, format!("Bearer {t}")),
            None => request,
        };
        send_to(&self.state, request.body(body).expect("request")).await
    }

    async fn get(&self, token: Option<&str>, uri: &str) -> Reply {
        self.send(token, Request::get(uri), Body::empty()).await
    }

    /// The rider's report at (`lon`, `lat`), walked to `path`'s last status: the grid's worker
    /// takes every step except verification, which its colleague does (four-eyes).
    async fn report_in(&self, lon: f64, lat: f64, path: &[&str]) -> i64 {
        let request = Request::post("/api/reports")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", Uuid::new_v4().to_string());
        let body = Body::from(report_body("manhole_cover", lon, lat).to_string());
        let created = self.send(Some(&self.rider), request, body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
        let id = created.json()["id"].as_i64().expect("id");
        for to in path {
            let actor = if matches!(*to, "verified" | "rework") || lon > 118.18 { &self.admin } else { &self.worker };
            let reply = self.transition(actor, id, to).await;
            assert_eq!(reply.status, StatusCode::OK, "{to}: {}", String::from_utf8_lossy(&reply.body));
        }
        id
    }

    async fn transition(&self, token: &str, id: i64, to: &str) -> Reply {
        let tag = self.get(Some(token), &format!("/api/reports/{id}")).await.headers[header::ETAG].clone();
        let body = if to == "cancelled" { json!({"to": to, "reason": "other"}) } else { json!({"to": to}) };
        let request = Request::post(format!("/api/reports/{id}/transitions"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::IF_MATCH, tag);
        self.send(Some(token), request, Body::from(body.to_string())).await
    }
}

/// How to reach each status from `submitted`.
const PATHS: [(&str, &[&str]); 10] = [
    ("submitted", &[]),
    ("accepted", &["accepted"]),
    ("cancelled", &["cancelled"]),
    ("dispatched", &["accepted", "dispatched"]),
    ("handling", &["accepted", "dispatched", "handling"]),
    ("feedback", &["accepted", "dispatched", "handling", "feedback"]),
    ("verified", &["accepted", "dispatched", "handling", "feedback", "verified"]),
    ("closed", &["accepted", "dispatched", "handling", "feedback", "verified", "closed"]),
    ("rework", &["accepted", "dispatched", "handling", "feedback", "rework"]),
    ("parked", &["accepted", "parked"]),
];

fn statuses(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("allowed_next is a list: {value}"))
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn allowed_next_names_exactly_the_transitions_the_server_accepts_for_every_status_and_viewer(pool: PgPool) {
    let world = World::new(&pool).await;
    // Grid 1 (west) has workers; a point in no grid and far from any is unassigned (admins only).
    for (lon, lat, place) in [(118.175, 36.175, "grid 1"), (118.205, 36.175, "no grid")] {
        for (status, path) in PATHS {
            let id = world.report_in(lon, lat, path).await;
            for (who, token) in world.viewers() {
                let view = world.get(Some(token), &format!("/api/reports/{id}")).await.json();
                assert_eq!(view["status"], status);
                let allowed = statuses(&view["allowed_next"]);
                let listed = world.get(Some(token), "/api/reports?limit=500").await.json();
                let in_list = listed["items"].as_array().expect("items").iter().find(|r| r["id"] == id).cloned();
                let in_list = in_list.unwrap_or_else(|| panic!("report {id} in the list"));
                assert_eq!(in_list["allowed_next"], view["allowed_next"], "{place} {status} as {who}: list = detail");
                assert_eq!(in_list["waiting_for"], view["waiting_for"], "{place} {status} as {who}: list = detail");
                for to in ReportStatus::ALL {
                    let quoted = format!("\"{to}\"");
                    if allowed.contains(&quoted) {
                        // Accepted: try it on a fresh report in the same status (this one stays put).
                        let fresh = world.report_in(lon, lat, path).await;
                        let reply = world.transition(token, fresh, to.as_str()).await;
                        assert_eq!(
                            reply.status,
                            StatusCode::OK,
                            "{place} {status} → {to} as {who} is listed in allowed_next but refused: {}",
                            String::from_utf8_lossy(&reply.body)
                        );
                    } else {
                        let reply = world.transition(token, id, to.as_str()).await;
                        assert!(
                            reply.status.is_client_error(),
                            "{place} {status} → {to} as {who} is not in allowed_next {allowed:?} but got {}",
                            reply.status
                        );
                        let error = reply.json();
                        assert!(error["reason"].is_string(), "a refusal carries a reason code: {error}");
                    }
                }
                let after = world.get(Some(token), &format!("/api/reports/{id}")).await.json();
                assert_eq!(after["version"], view["version"], "refusals change nothing");
            }
        }
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn allowed_next_follows_role_grid_and_the_four_eyes_rule(pool: PgPool) {
    let world = World::new(&pool).await;
    let submitted = world.report_in(118.175, 36.175, &[]).await;
    let feedback = world.report_in(118.175, 36.175, &["accepted", "dispatched", "handling", "feedback"]).await;
    let closed = world
        .report_in(118.175, 36.175, &["accepted", "dispatched", "handling", "feedback", "verified", "closed"])
        .await;
    let unassigned = world.report_in(118.205, 36.175, &[]).await;
    let seen = |token: &str, id: i64| {
        let world = &world;
        let token = token.to_string();
        async move {
            let view = world.get(Some(&token), &format!("/api/reports/{id}")).await.json();
            (view["allowed_next"].clone(), view["waiting_for"].clone())
        }
    };
    // The submitter is a rider (a part-time worker of grid 1, but riders report, not handle).
    assert_eq!(seen(&world.rider, submitted).await, (json!([]), json!("grid_worker")));
    assert_eq!(seen(&world.worker, submitted).await, (json!(["accepted", "cancelled"]), Value::Null));
    assert_eq!(seen(&world.stranger, submitted).await, (json!([]), json!("grid_worker")));
    assert_eq!(seen(&world.planner, submitted).await, (json!([]), json!("grid_worker")));
    assert_eq!(seen(&world.admin, submitted).await, (json!(["accepted", "cancelled"]), Value::Null));
    // Four-eyes: the worker who gave the feedback waits for another verifier (等待他人核查).
    assert_eq!(seen(&world.worker, feedback).await, (json!([]), json!("other_verifier")));
    assert_eq!(seen(&world.colleague, feedback).await, (json!(["verified", "rework"]), Value::Null));
    assert_eq!(seen(&world.admin, feedback).await, (json!(["verified", "rework"]), Value::Null));
    let refused = world.transition(&world.worker, feedback, "verified").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        (refused.json()["code"].clone(), refused.json()["reason"].clone()),
        (json!("forbidden"), json!("four_eyes"))
    );
    // Nothing is left to do on a closed report; an unassigned one waits for an admin.
    assert_eq!(seen(&world.admin, closed).await, (json!([]), Value::Null));
    assert_eq!(seen(&world.worker, unassigned).await, (json!([]), json!("admin")));
    assert_eq!(seen(&world.admin, unassigned).await, (json!(["accepted", "cancelled"]), Value::Null));
    // Anonymous viewers get neither field.
    let public = world.get(None, &format!("/api/reports/{submitted}")).await.json();
    assert!(public.get("allowed_next").is_none() && public.get("waiting_for").is_none(), "{public}");
    let stranger = world.transition(&world.stranger, submitted, "accepted").await.json();
    assert_eq!(stranger["reason"], "not_your_grid");
    let rider = world.transition(&world.rider, submitted, "accepted").await.json();
    assert_eq!(rider["reason"], "role_cannot_handle");
    let wrong = world.transition(&world.worker, submitted, "closed").await.json();
    assert_eq!((wrong["code"].clone(), wrong["reason"].clone()), (json!("conflict"), json!("transition_not_allowed")));
}
