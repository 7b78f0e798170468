//! `/api/wishes…`: micro-wishes (微心愿, issue 24 §1) — the public board, one wish, publishing,
//! the steps of a wish (claim, complete, confirm, release, withdraw, fail) with `If-Match`, the
//! viewer's own wishes, the metrics per grid and community, and the open wishes per grid for
//! the map. The rules are in `crate::wishes`.

use std::collections::HashMap;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::etag;
use super::extract::{Json, Path, Query, county_param, typed_body};
use super::principal::{Auth, MaybeAuth};
use crate::wishes::{self, CreateWish, ListFilter, StatsReport, WishError, WishState, WishTransition, WishView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_wishes, create_wish))
        .routes(routes!(list_wish_categories))
        .routes(routes!(list_my_wishes))
        .routes(routes!(get_wish_stats))
        .routes(routes!(get_open_counts))
        .routes(routes!(get_wish))
        .routes(routes!(create_wish_transition))
        .routes(routes!(get_wish_photo, attach_wish_photo).layer(DefaultBodyLimit::max(MAX_PHOTO_BODY)))
}

/// One photo of at most 5 MB and the multipart framing around it.
const MAX_PHOTO_BODY: usize = crate::reports::photos::MAX_PHOTO_BYTES + 64 * 1024;

impl From<WishError> for ApiError {
    fn from(err: WishError) -> Self {
        match err {
            WishError::NotFound(id) => ApiError::not_found(format!("wish {id}")),
            WishError::Field { field, message, reason } => ApiError::field(field, message).with_reason(reason),
            WishError::Forbidden { message, reason } => ApiError::Forbidden(message).with_reason(reason),
            WishError::Unprocessable { field, message } => ApiError::Unprocessable {
                message: format!("{field}: {message}"),
                details: serde_json::json!({ "field": field }),
            },
            e @ WishError::VersionRequired => {
                ApiError::PreconditionRequired(e.to_string()).with_reason("version_required")
            }
            e @ WishError::Stale { .. } => ApiError::PreconditionFailed(e.to_string()).with_reason("stale_version"),
            WishError::Conflict { reason, message } => ApiError::Conflict(message).with_reason(reason),
            WishError::Database(e) => ApiError::Database(e),
        }
    }
}

/// One category of wishes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WishCategory {
    pub id: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
}

/// `GET /api/wishes/categories`: the fixed list of wish categories.
#[utoipa::path(get, path = "/api/wishes/categories", tag = "wishes",
    responses((status = 200, description = "Every category in display order", body = [WishCategory])))]
pub async fn list_wish_categories() -> Json<Vec<WishCategory>> {
    Json(wishes::CATEGORIES.iter().map(|(id, zh, en)| WishCategory { id, name_zh: zh, name_en: en }).collect())
}

/// Query string of `GET /api/wishes`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListWishesQuery {
    /// One grid's wishes.
    pub grid: Option<i64>,
    /// One community's wishes (the community board).
    pub community: Option<i64>,
    /// A county's code (e.g. `370323`).
    pub county: Option<String>,
    /// `open` (default: waiting for a claimant), `all`, or a comma list of states.
    pub state: Option<String>,
    /// At most this many (default 200, at most 1,000).
    pub limit: Option<i64>,
}

fn states(text: Option<&str>) -> ApiResult<Vec<WishState>> {
    match text.map(str::trim) {
        None | Some("open") => Ok(vec![WishState::Published]),
        Some("all") => Ok(Vec::new()),
        Some(list) => list
            .split(',')
            .map(|s| {
                WishState::parse(s.trim()).ok_or_else(|| {
                    ApiError::field("state", format!("open, all, or states among {}", state_names().join(", ")))
                })
            })
            .collect(),
    }
}

fn state_names() -> Vec<&'static str> {
    WishState::ALL.iter().map(|s| s.as_str()).collect()
}

/// `GET /api/wishes`: the wish board — by grid, community or county, open wishes by default,
/// soonest desired date first. Public: a wish shows its grid and community, never the resident
/// or the building (those go to the claimant holding the claim, the resident and staff).
#[utoipa::path(get, path = "/api/wishes", tag = "wishes", params(ListWishesQuery),
    responses((status = 200, description = "The wishes as the viewer may see them", body = [WishView]),
        (status = 400, description = "A parameter does not parse (named in `field`)", body = ErrorBody)))]
pub async fn list_wishes(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Query(q): Query<ListWishesQuery>,
) -> ApiResult<Json<Vec<WishView>>> {
    if q.limit.is_some_and(|l| !(1..=wishes::MAX_LIST).contains(&l)) {
        return Err(ApiError::field("limit", format!("from 1 to {}", wishes::MAX_LIST)));
    }
    let filter = ListFilter {
        grid: q.grid,
        community: q.community,
        county: county_param(&state.pool, q.county.as_deref()).await?,
        states: states(q.state.as_deref())?,
        limit: q.limit.unwrap_or(200),
    };
    Ok(Json(wishes::list(&state.pool, &filter, viewer.as_ref()).await?))
}

/// `POST /api/wishes` → 201: publish a wish. A resident publishes for their home building; a
/// grid worker (or an admin) enters one on a resident's behalf, for a building of their grid,
/// with the resident's name and phone (private).
#[utoipa::path(post, path = "/api/wishes", tag = "wishes", request_body = CreateWish, security(("bearer" = [])),
    responses((status = 201, description = "Published", body = WishView,
            headers(("Location" = String, description = "/api/wishes/{id}"), ("ETag" = String, description = "Its version"))),
        (status = 400, description = "Invalid field (named in `field`, `reason` says why) or body", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not a resident, grid worker or admin; another building; not your grid", body = ErrorBody),
        (status = 422, description = "No such building, or the resident's account has no home building", body = ErrorBody)))]
pub async fn create_wish(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    // Who may publish is settled before the body's shape: a rider gets 403, not a 400.
    wishes::may_publish(&actor)?;
    let body: CreateWish = typed_body(&body)?;
    let view = wishes::publish(&state.pool, &actor, &body).await?;
    Ok(etag::created(&format!("/api/wishes/{}", view.id), view.version, view))
}

/// `GET /api/wishes/mine`: the signed-in account's wishes — published by or for them, entered
/// by them, claimed by them — newest first.
#[utoipa::path(get, path = "/api/wishes/mine", tag = "wishes", security(("bearer" = [])),
    responses((status = 200, description = "The viewer's wishes", body = [WishView]),
        (status = 401, description = "Login required", body = ErrorBody)))]
pub async fn list_my_wishes(State(state): State<AppState>, Auth(me): Auth) -> ApiResult<Json<Vec<WishView>>> {
    Ok(Json(wishes::mine(&state.pool, &me).await?))
}

/// `GET /api/wishes/{id}`: one wish as the viewer may see it, with its ETag (staff: its history).
#[utoipa::path(get, path = "/api/wishes/{id}", tag = "wishes", params(("id" = i64, Path, description = "Wish id")),
    responses((status = 200, description = "The wish", body = WishView, headers(("ETag" = String, description = "Its version"))),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 404, description = "No such wish", body = ErrorBody)))]
pub async fn get_wish(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let view = wishes::get(&state.pool, id, viewer.as_ref()).await?;
    Ok(etag::tagged(StatusCode::OK, view.version, view))
}

/// `POST /api/wishes/{id}/transitions`: a step of a wish — `claimed` (first come; a second
/// claim gets 409 `already_claimed`), `completed`, `confirmed`, `published` (a claim released),
/// `withdrawn` or `failed` (both with a reason). `If-Match` with the wish's ETag is required.
#[utoipa::path(post, path = "/api/wishes/{id}/transitions", tag = "wishes", request_body = WishTransition,
    params(("id" = i64, Path, description = "Wish id"), ("If-Match" = String, Header, description = "The wish's ETag")),
    security(("bearer" = [])),
    responses((status = 200, description = "The wish after the step", body = WishView, headers(("ETag" = String, description = "Its new version"))),
        (status = 400, description = "Unknown state, reason missing or too long (`field`, `reason`)", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not this viewer's step (`reason`: role_cannot_act, not_your_grid, not_your_wish, not_the_claimant, own_wish)", body = ErrorBody),
        (status = 404, description = "No such wish", body = ErrorBody),
        (status = 409, description = "Claimed by someone else first (`already_claimed`) or not a step from this state (`transition_not_allowed`)", body = ErrorBody),
        (status = 412, description = "Stale If-Match", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
pub async fn create_wish_transition(
    State(state): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    wishes::takes_part(&actor)?;
    let body: WishTransition = typed_body(&body)?;
    let if_match = etag::if_match_version(&headers)?;
    let view = wishes::transition(&state.pool, id, &actor, if_match, &body).await?;
    Ok(etag::tagged(StatusCode::OK, view.version, view))
}

/// Query string of the metrics and counts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WishAreaQuery {
    /// One community.
    pub community: Option<i64>,
    /// A county's code (e.g. `370323`).
    pub county: Option<String>,
    /// Wishes published at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Wishes published before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// `GET /api/wishes/stats`: published, claimed, completed, completion rate and median hours to
/// a claim — in all, per community and per grid. Counts only (public).
#[utoipa::path(get, path = "/api/wishes/stats", tag = "wishes", params(WishAreaQuery),
    responses((status = 200, description = "Metrics in all, per community and per grid", body = StatsReport),
        (status = 400, description = "A parameter does not parse, or `county` names no county", body = ErrorBody)))]
pub async fn get_wish_stats(
    State(state): State<AppState>,
    Query(q): Query<WishAreaQuery>,
) -> ApiResult<Json<StatsReport>> {
    let area = wishes::Area {
        community: q.community,
        county: county_param(&state.pool, q.county.as_deref()).await?,
        from: q.from,
        to: q.to,
        ..wishes::Area::default()
    };
    Ok(Json(wishes::stats_report(&state.pool, &area).await?))
}

/// `GET /api/wishes/open-counts[?community=]`: the open wishes per grid at a point inside the
/// grid — the map's wish layer (GeoJSON; properties `grid_id`, `code`, `name`, `open`). Counts
/// only: no building, no resident.
#[utoipa::path(get, path = "/api/wishes/open-counts", tag = "wishes",
    params(("community" = Option<i64>, Query, description = "Only this community's grids")),
    responses((status = 200, description = "GeoJSON FeatureCollection of grids with open wishes", content_type = "application/geo+json", body = Object),
        (status = 400, description = "`community` is not an integer", body = ErrorBody)))]
pub(crate) async fn get_open_counts(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    if let Some(unknown) = params.keys().find(|k| *k != "community") {
        return Err(ApiError::field(unknown.clone(), "unknown query parameter (known: community)"));
    }
    let community = params
        .get("community")
        .map(|c| c.trim().parse::<i64>().map_err(|_| ApiError::field("community", "must be an integer community id")))
        .transpose()?;
    let body = wishes::open_counts(&state.pool, community).await?;
    Ok(([(header::CONTENT_TYPE, "application/geo+json")], body.to_string()).into_response())
}

/// `POST /api/wishes/{id}/photo` (multipart, one part `photo`): attach or replace the wish's
/// photo — the resident, whoever entered the wish, a worker of its grid or an admin, while the
/// wish is open. Checked by content (JPEG, PNG, WebP; at most 5 MB) and stored without its
/// metadata (EXIF, XMP, GPS, C2PA), as report photos are. Never public.
#[utoipa::path(post, path = "/api/wishes/{id}/photo", tag = "wishes",
    params(("id" = i64, Path, description = "Wish id")), security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "multipart/form-data", description = "one part `photo`"),
    responses((status = 200, description = "The wish, `has_photo` true", body = WishView),
        (status = 400, description = "Not a multipart body, no `photo` part, another part, or not an image", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not the wish's resident, its grid's worker or an admin", body = ErrorBody),
        (status = 404, description = "No such wish", body = ErrorBody),
        (status = 409, description = "The wish is closed (`wish_closed`)", body = ErrorBody),
        (status = 413, description = "More than 5 MB", body = ErrorBody)))]
pub async fn attach_wish_photo(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    request: Request,
) -> ApiResult<Response> {
    // Who may is settled before the upload is read.
    wishes::may_attach_photo(&state.pool, id, &actor).await?;
    let too_large =
        || ApiError::FieldTooLarge { field: "photo".into(), message: "a photo may have at most 5 MB".into() };
    let mut multipart = axum::extract::Multipart::from_request(request, &()).await.map_err(|e| {
        ApiError::bad_request(format!("send multipart/form-data with one part `photo`: {}", e.body_text()))
    })?;
    let mut stored = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
            Err(e) => return Err(ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))),
        };
        let name = field.name().unwrap_or_default().to_string();
        if name != "photo" || stored.is_some() {
            return Err(ApiError::field(name, "one part, named `photo`"));
        }
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
            }
        })?;
        if bytes.len() > crate::reports::photos::MAX_PHOTO_BYTES {
            return Err(too_large());
        }
        stored = Some(crate::reports::photos::check_and_strip(&bytes).map_err(|m| ApiError::field("photo", m))?);
    }
    let photo = stored.ok_or_else(|| ApiError::field("photo", "no part named `photo`"))?;
    let view = wishes::set_photo(&state.pool, id, &actor, &photo).await?;
    Ok(etag::tagged(StatusCode::OK, view.version, view))
}

/// `GET /api/wishes/{id}/photo`: the wish's photo as stored (metadata stripped) — for the
/// resident, the claimant and staff; never public.
#[utoipa::path(get, path = "/api/wishes/{id}/photo", tag = "wishes",
    params(("id" = i64, Path, description = "Wish id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored image", content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "image/webp"))),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not the resident, the claimant or staff", body = ErrorBody),
        (status = 404, description = "No such wish, or it has no photo", body = ErrorBody)))]
pub async fn get_wish_photo(
    State(state): State<AppState>,
    Auth(viewer): Auth,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let photo = wishes::photo(&state.pool, id, &viewer).await?;
    Ok((
        [(header::CONTENT_TYPE, photo.media_type), (header::CACHE_CONTROL, "private, no-store".to_string())],
        photo.bytes,
    )
        .into_response())
}
