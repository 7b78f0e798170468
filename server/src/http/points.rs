//! `/api/points/*`: a reporter's points balance and ledger, and the monthly leaderboard; the
//! points market (积分超市, issue 24 §3) — the earning rules, the catalogue, redemptions (once
//! per `Idempotency-Key`, as report intake), their hand-over and cancelling, and the yearly
//! 最美 rankings. The rules live in `crate::points`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Datelike;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::etag;
use super::extract::{self, Json, Path, Query, typed_body};
use super::principal::{Admin, Auth, MaybeAuth, Planner};
use crate::points::market::{
    self, Cancel, Item, ItemPatch, ListView, NewItem, NewRedemption, RedeemOutcome, Redemption,
};
use crate::points::rankings::{self, Ranking};
use crate::points::{self as market_points, PointsError, Rule, RulePatch, Rules};
use crate::reports::points::{self, Balance, LeaderboardRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_my_points))
        .routes(routes!(get_leaderboard))
        .routes(routes!(get_rules))
        .routes(routes!(get_rule, update_rule))
        .routes(routes!(get_rankings))
        .routes(routes!(list_items, create_item))
        .routes(routes!(get_item, update_item))
        .routes(routes!(list_redemptions, redeem))
        .routes(routes!(get_redemption))
        .routes(routes!(hand_over))
        .routes(routes!(cancel_redemption))
}

impl From<PointsError> for ApiError {
    fn from(err: PointsError) -> Self {
        match err {
            PointsError::NotFound(m) => ApiError::not_found(m),
            PointsError::Forbidden { reason, message } => ApiError::Forbidden(message).with_reason(reason),
            PointsError::Field { field, message } => ApiError::field(field, message),
            PointsError::Unprocessable { field, message } => ApiError::Unprocessable {
                message: format!("{field}: {message}"),
                details: serde_json::json!({ "field": field }),
            },
            PointsError::Conflict { reason, message } => ApiError::Conflict(message).with_reason(reason),
            stale @ PointsError::Stale { .. } => ApiError::PreconditionFailed(stale.to_string()),
            PointsError::Database(e) => ApiError::Database(e),
        }
    }
}

/// The caller's balance and latest ledger rows (credits, reversals, redemptions and refunds).
#[utoipa::path(get, path = "/api/points/me", tag = "points",
    responses((status = 200, body = Balance), (status = 401, body = super::error::ErrorBody)))]
pub async fn get_my_points(State(state): State<AppState>, Auth(me): Auth) -> ApiResult<Json<Balance>> {
    Ok(Json(points::balance(&state.pool, me.account_id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardQuery {
    /// `YYYY-MM` (UTC); default the current month.
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub month: Option<String>,
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The month's top reporters by points (public display names only).
#[utoipa::path(get, path = "/api/points/leaderboard", tag = "points", params(LeaderboardQuery),
    responses((status = 200, body = [LeaderboardRow]), (status = 400, body = super::error::ErrorBody)))]
pub async fn get_leaderboard(
    State(state): State<AppState>,
    Query(q): Query<LeaderboardQuery>,
) -> ApiResult<Json<Vec<LeaderboardRow>>> {
    let (year, month) = match q.month.as_deref() {
        None => {
            let now = chrono::Utc::now();
            (now.year(), now.month())
        }
        Some(m) => {
            let parsed = m.split_once('-').and_then(|(y, mo)| Some((y.parse::<i32>().ok()?, mo.parse::<u32>().ok()?)));
            match parsed {
                Some((y, mo)) if (2000..=2100).contains(&y) && (1..=12).contains(&mo) => (y, mo),
                _ => return Err(ApiError::field("month", "YYYY-MM")),
            }
        }
    };
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "between 1 and 100"));
    }
    Ok(Json(points::leaderboard(&state.pool, year, month, limit).await?))
}

/// `GET /api/points/rules`: the earning groups and what each event earns each group (public).
#[utoipa::path(get, path = "/api/points/rules", tag = "points",
    responses((status = 200, description = "Groups and rules", body = Rules)))]
pub async fn get_rules(State(state): State<AppState>) -> ApiResult<Json<Rules>> {
    Ok(Json(market_points::rules(&state.pool).await?))
}

/// `GET /api/points/rules/{id}`: one rule with its ETag (public, as the list).
#[utoipa::path(get, path = "/api/points/rules/{id}", tag = "points", params(("id" = i64, Path)),
    responses((status = 200, body = Rule, headers(("ETag" = String, description = "The rule's version"))),
        (status = 404, description = "No such rule", body = ErrorBody)))]
pub async fn get_rule(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Response> {
    let rule = market_points::rule(&state.pool, id).await?;
    Ok(etag::tagged(StatusCode::OK, rule.version, rule))
}

/// `PATCH /api/points/rules/{id}`: change what an event earns a group, or switch the rule off
/// (admins not scoped to one county; `If-Match`). Future awards follow; the ledger keeps the past.
#[utoipa::path(patch, path = "/api/points/rules/{id}", tag = "points", request_body = RulePatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "The rule's ETag")),
    security(("bearer" = [])),
    responses((status = 200, body = Rule, headers(("ETag" = String))),
        (status = 400, description = "Invalid field (named in `field`)", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Admins only; not a county-scoped admin (`county_scoped`)", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 412, description = "Stale If-Match", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
pub async fn update_rule(
    State(state): State<AppState>,
    Admin(me): Admin,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    let version =
        etag::required_version(&headers, "send If-Match with the rule's ETag (GET /api/points/rules/{id} first)")?;
    let patch: RulePatch = typed_body(&body)?;
    let rule = market_points::update_rule(&state.pool, &me, id, version, &patch).await?;
    Ok(etag::tagged(StatusCode::OK, rule.version, rule))
}

/// Query string of `GET /api/points/rankings`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RankingsQuery {
    /// The county's calendar year (UTC+8), 2000..=2100; default this year.
    pub year: Option<i32>,
    /// An earning group's code (`GET /api/points/rules`), e.g. `riders`.
    pub group: String,
    /// 1..=100, default 10.
    pub limit: Option<i64>,
}

/// `GET /api/points/rankings?year=&group=`: the year's 最美 ranking of one group — what each
/// earned in it (spending does not count), names masked (张**). Public.
#[utoipa::path(get, path = "/api/points/rankings", tag = "points", params(RankingsQuery),
    responses((status = 200, description = "The ranking", body = Ranking),
        (status = 400, description = "Unknown group, year or limit out of range (named in `field`)", body = ErrorBody)))]
pub async fn get_rankings(State(state): State<AppState>, Query(q): Query<RankingsQuery>) -> ApiResult<Json<Ranking>> {
    let year = match q.year {
        Some(y) if (2000..=2100).contains(&y) => y,
        Some(_) => return Err(ApiError::field("year", "from 2000 to 2100")),
        None => rankings::current_year(&state.pool).await?,
    };
    let limit = q.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "between 1 and 100"));
    }
    Ok(Json(rankings::ranking(&state.pool, year, q.group.trim(), limit).await?))
}

/// Query string of `GET /api/points/catalogue`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CatalogueQuery {
    /// `goods`, `property_fee_offset`, `merchant_discount` or `free_service`.
    pub kind: Option<String>,
    /// Inactive items too (planners and admins).
    pub include_inactive: Option<bool>,
}

/// `GET /api/points/catalogue`: the active items with cost, stock and where to collect them.
#[utoipa::path(get, path = "/api/points/catalogue", tag = "points", params(CatalogueQuery),
    responses((status = 200, description = "Items by kind, cheapest first", body = [Item]),
        (status = 400, description = "Unknown kind or parameter", body = ErrorBody),
        (status = 403, description = "`include_inactive` is for planners and admins", body = ErrorBody)))]
pub async fn list_items(
    State(state): State<AppState>,
    MaybeAuth(me): MaybeAuth,
    Query(q): Query<CatalogueQuery>,
) -> ApiResult<Json<Vec<Item>>> {
    let items =
        market::catalogue(&state.pool, me.as_ref(), q.kind.as_deref(), q.include_inactive.unwrap_or(false)).await?;
    Ok(Json(items))
}

/// `GET /api/points/catalogue/{id}`: one item with its ETag (an inactive one: planners and admins).
#[utoipa::path(get, path = "/api/points/catalogue/{id}", tag = "points", params(("id" = i64, Path)),
    responses((status = 200, body = Item, headers(("ETag" = String, description = "The item's version"))),
        (status = 404, description = "No such item", body = ErrorBody)))]
pub async fn get_item(
    State(state): State<AppState>,
    MaybeAuth(me): MaybeAuth,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let item = market::item(&state.pool, me.as_ref(), id).await?;
    Ok(etag::tagged(StatusCode::OK, item.version, item))
}

/// `POST /api/points/catalogue` → 201: a new item (planners and admins).
#[utoipa::path(post, path = "/api/points/catalogue", tag = "points", request_body = NewItem, security(("bearer" = [])),
    responses((status = 201, body = Item, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "Invalid field (named in `field`)", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 422, description = "No such merchant, station or community", body = ErrorBody)))]
pub async fn create_item(
    State(state): State<AppState>,
    Planner(me): Planner,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    let body: NewItem = typed_body(&body)?;
    let item = market::create_item(&state.pool, &me, &body).await?;
    Ok(etag::created(&format!("/api/points/catalogue/{}", item.id), item.version, item))
}

const IF_MATCH: &str = "send If-Match with the item's ETag (GET /api/points/catalogue/{id} first)";

/// `PATCH /api/points/catalogue/{id}`: change an item (planners and admins; `If-Match`).
#[utoipa::path(patch, path = "/api/points/catalogue/{id}", tag = "points", request_body = ItemPatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "The item's ETag")),
    security(("bearer" = [])),
    responses((status = 200, body = Item, headers(("ETag" = String))),
        (status = 400, description = "Invalid field (named in `field`)", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 412, description = "Stale If-Match (a redemption changes the stock, so the version)", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
pub async fn update_item(
    State(state): State<AppState>,
    Planner(me): Planner,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    let version = etag::required_version(&headers, IF_MATCH)?;
    let patch: ItemPatch = typed_body(&body)?;
    let item = market::update_item(&state.pool, &me, id, version, &patch).await?;
    Ok(etag::tagged(StatusCode::OK, item.version, item))
}

/// `POST /api/points/redemptions` → 201: redeem an item — the points are debited and the stock
/// taken in one transaction, never below zero; exactly once per `Idempotency-Key`.
#[utoipa::path(post, path = "/api/points/redemptions", tag = "points", request_body = NewRedemption,
    params(("Idempotency-Key" = uuid::Uuid, Header, description = "A client-made UUID, sent again with every resend")),
    security(("bearer" = [])),
    responses((status = 201, description = "Redeemed (or the stored redemption, for a resend)", body = Redemption,
            headers(("Location" = String), ("Idempotent-Replayed" = String, description = "`true` on a resend"))),
        (status = 400, description = "No or malformed Idempotency-Key, or an invalid field", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 409, description = "`insufficient_points`, `out_of_stock`, `item_inactive`, or `key_reused` (the key was used for another redemption)", body = ErrorBody),
        (status = 422, description = "No such item", body = ErrorBody)))]
pub async fn redeem(
    State(state): State<AppState>,
    Auth(me): Auth,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    let key = extract::idempotency_key(&headers)?;
    let body: NewRedemption = typed_body(&body)?;
    let (view, replayed) = match market::redeem(&state.pool, &me, &body, key).await? {
        RedeemOutcome::Created(v) => (v, false),
        RedeemOutcome::Replayed(v) => (v, true),
    };
    let location = format!("/api/points/redemptions/{}", view.id);
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Query string of `GET /api/points/redemptions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RedemptionsQuery {
    /// `mine` (default): the caller's; `handover`: those the caller hands over (merchants,
    /// station hosts, grid workers of the item's community, admins).
    pub view: Option<String>,
    /// `pending`, `handed_over` or `cancelled`.
    pub status: Option<String>,
}

/// `GET /api/points/redemptions`: the caller's redemptions, or (`view=handover`) those to hand over.
#[utoipa::path(get, path = "/api/points/redemptions", tag = "points", params(RedemptionsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [Redemption]),
        (status = 400, description = "Unknown view or status", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "`view=handover` by a role that hands nothing over", body = ErrorBody)))]
pub async fn list_redemptions(
    State(state): State<AppState>,
    Auth(me): Auth,
    Query(q): Query<RedemptionsQuery>,
) -> ApiResult<Json<Vec<Redemption>>> {
    let view = match q.view.as_deref() {
        None | Some("mine") => ListView::Mine,
        Some("handover") => ListView::Handover,
        Some(_) => return Err(ApiError::field("view", "mine or handover")),
    };
    Ok(Json(market::list(&state.pool, &me, view, q.status.as_deref()).await?))
}

/// `GET /api/points/redemptions/{id}`: one redemption (its redeemer, who hands it over, admins).
#[utoipa::path(get, path = "/api/points/redemptions/{id}", tag = "points", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Redemption),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not yours to see", body = ErrorBody),
        (status = 404, description = "No such redemption", body = ErrorBody)))]
pub async fn get_redemption(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Redemption>> {
    Ok(Json(market::get(&state.pool, &me, id).await?))
}

/// `POST /api/points/redemptions/{id}/handover`: confirm the hand-over (the item's merchant,
/// the host of its station, a grid worker of its community, an admin; never one's own).
#[utoipa::path(post, path = "/api/points/redemptions/{id}/handover", tag = "points", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Redemption),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "`not_your_item` or `own_redemption`", body = ErrorBody),
        (status = 404, description = "No such redemption", body = ErrorBody),
        (status = 409, description = "`not_pending`: handed over or cancelled already", body = ErrorBody)))]
pub async fn hand_over(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Redemption>> {
    Ok(Json(market::hand_over(&state.pool, &me, id).await?))
}

/// `POST /api/points/redemptions/{id}/cancel`: cancel a pending redemption (the redeemer, an
/// admin): the points come back and the stock is restored in one transaction. Body optional:
/// `{"reason": "…"}`.
#[utoipa::path(post, path = "/api/points/redemptions/{id}/cancel", tag = "points", params(("id" = i64, Path)),
    request_body = Cancel, security(("bearer" = [])),
    responses((status = 200, body = Redemption),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not the redeemer or an admin", body = ErrorBody),
        (status = 404, description = "No such redemption", body = ErrorBody),
        (status = 409, description = "`not_pending`: handed over or cancelled already", body = ErrorBody)))]
pub async fn cancel_redemption(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Redemption>> {
    let cancel: Cancel = if body.iter().all(u8::is_ascii_whitespace) {
        Cancel::default()
    } else {
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        typed_body(&value)?
    };
    Ok(Json(market::cancel(&state.pool, &me, id, &cancel).await?))
}
