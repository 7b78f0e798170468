//! `/api/reports*` and `/api/report-categories`: mobile-probe intake (JSON or multipart with
//! photos), the offline batch, listing, one report with history, workflow transitions, the
//! H3 hexbin heatmap and the live feed (SSE). Rules are documented in `crate::reports`.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::Stream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::etag;
use super::extract::{self, Json, Path, Query};
use super::principal::{Auth, MaybeAuth};
use crate::auth::{Principal, Role};
use crate::reports::intake::{self, CreateReport, IntakeError, Outcome, ReportLocation};
use crate::reports::status::ReportStatus;
use crate::reports::workflow::{self, ListFilter, ReportView, TransitionRequest, WorkflowError};
use crate::reports::{Category, ReportChange, photos};

/// Largest multipart body: three 5 MB photos and the fields.
const MAX_MULTIPART_BYTES: usize = 3 * photos::MAX_PHOTO_BYTES + 64 * 1024;
/// Most items in one offline batch.
pub const MAX_BATCH_ITEMS: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_categories))
        .routes(routes!(create_report, list_reports).layer(DefaultBodyLimit::max(MAX_MULTIPART_BYTES)))
        .routes(routes!(create_reports_batch))
        .routes(routes!(hexbins))
        .routes(routes!(stream))
        .routes(routes!(get_report))
        .routes(routes!(create_transition).layer(DefaultBodyLimit::max(MAX_MULTIPART_BYTES)))
        .routes(routes!(get_photo))
        .routes(routes!(get_feedback_photo))
}

impl From<IntakeError> for ApiError {
    fn from(err: IntakeError) -> Self {
        match err {
            IntakeError::Field { field, message } => ApiError::field(field, message),
            IntakeError::LoginRequired(m) => ApiError::Unauthorized(m),
            IntakeError::KeyReused => ApiError::Conflict(err.to_string()),
            IntakeError::Database(e) => ApiError::Database(e),
        }
    }
}

impl From<WorkflowError> for ApiError {
    fn from(err: WorkflowError) -> Self {
        let reason = err.refusal();
        let error = match err {
            WorkflowError::NotFound(_) => ApiError::not_found(err.to_string()),
            WorkflowError::Field { field, message, .. } => ApiError::field(field, message),
            WorkflowError::Forbidden { message, .. } => ApiError::Forbidden(message),
            WorkflowError::VersionRequired => ApiError::PreconditionRequired(err.to_string()),
            WorkflowError::Stale { .. } => ApiError::PreconditionFailed(err.to_string()),
            WorkflowError::Transition { .. } => ApiError::Conflict(err.to_string()),
            WorkflowError::Database(e) => ApiError::Database(e),
        };
        match reason {
            Some(reason) => error.with_reason(reason.as_str()),
            None => error,
        }
    }
}

/// Report categories, grouped as the national practice does (events 事件, facilities 部件).
#[utoipa::path(get, path = "/api/report-categories", tag = "reports",
    responses((status = 200, description = "All categories in display order", body = [Category])))]
pub async fn list_categories(State(state): State<AppState>) -> ApiResult<Json<Vec<Category>>> {
    Ok(Json(state.reports.categories(&state.pool).await?.as_ref().clone()))
}

fn created(outcome: &Outcome) -> Response {
    let id = match outcome {
        Outcome::Created { id, .. } | Outcome::Replayed { id, .. } => *id,
    };
    let mut response = (StatusCode::CREATED, outcome.body().to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(location) = HeaderValue::from_str(&format!("/api/reports/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    if matches!(outcome, Outcome::Replayed { .. }) {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// A multipart intake (`multipart/form-data`): the JSON body in a part `report`, photos in
/// parts `photo`. Any other part name is refused.
#[derive(Debug, utoipa::ToSchema)]
pub struct CreateReportMultipart {
    /// The same JSON as the `application/json` body (send the part as `application/json`).
    pub report: CreateReport,
    /// Up to three parts named `photo`, JPEG, PNG or WebP (decided by content), ≤ 5 MB each;
    /// EXIF is removed before storing.
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    pub photo: Option<Vec<Vec<u8>>>,
}

/// The 201 body of an intake (and of its resends), as `intake::submit` and the intake SQL
/// (`commit.rs`) build it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedReport {
    pub id: i64,
    /// `submitted`.
    pub status: String,
    pub version: i32,
    pub category: String,
    /// The category's Chinese name.
    pub category_name: String,
    /// Trimmed; empty when none was sent.
    pub description: String,
    /// Where the report is, WGS84 (`crs` is always `wgs84`).
    pub location: ReportPoint,
    /// The coordinates as sent, in the CRS sent (`wgs84`, `gcj02` or `cgcs2000`).
    pub input_location: ReportPoint,
    /// The GPS accuracy sent, metres.
    pub accuracy_m: Option<f64>,
    /// Photos stored with the report (multipart intake; 0 for JSON).
    pub photo_count: usize,
    pub grid_id: Option<i64>,
    pub grid_code: Option<String>,
    pub grid_name: Option<String>,
    /// `covers`, `nearest` (within 150 m) or `unassigned`.
    pub assignment: String,
    pub subdistrict_id: Option<i64>,
    /// The grid's workers, public display names only.
    pub assigned_workers: Vec<WorkerName>,
    /// Open reports of the same category within the category's radius.
    pub possible_duplicates: Vec<PossibleDuplicate>,
    pub location_suspect: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportPoint {
    pub lon: f64,
    pub lat: f64,
    pub crs: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerName {
    pub display_name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PossibleDuplicate {
    pub id: i64,
    pub status: String,
    /// Whole metres, nearest first.
    pub distance_m: i64,
    pub created_at: DateTime<Utc>,
}

/// Submit a report (ODK-style idempotency on `Idempotency-Key`).
#[utoipa::path(post, path = "/api/reports", tag = "reports",
    request_body(content((CreateReport = "application/json"), (CreateReportMultipart = "multipart/form-data"))),
    params(("Idempotency-Key" = uuid::Uuid, Header, description = "A client-made UUID; a resend with the same payload gets the original response")),
    responses(
        (status = 201, description = "Stored (or the original response to a resend)", body = CreatedReport,
            headers(("Location" = String, description = "/api/reports/{id}"),
                ("Idempotent-Replayed" = String, description = "`true` on a resend answered with the original response"))),
        (status = 400, description = "Invalid field; nothing stored", body = super::error::ErrorBody),
        (status = 401, description = "This category needs a login", body = super::error::ErrorBody),
        (status = 409, description = "The key was used for a different payload", body = super::error::ErrorBody),
        (status = 413, description = "Too large", body = super::error::ErrorBody),
        (status = 415, description = "Not JSON or multipart/form-data", body = super::error::ErrorBody)))]
pub async fn create_report(
    State(state): State<AppState>,
    MaybeAuth(principal): MaybeAuth,
    request: Request,
) -> ApiResult<Response> {
    let key = extract::idempotency_key(request.headers())?;
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let categories = state.reports.categories(&state.pool).await?;
    let report = if content_type.starts_with("application/json") {
        let bytes = Bytes::from_request(request, &()).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("request body too large".into())
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        let body: Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        intake::validate(&body, &categories)?
    } else if content_type.starts_with("multipart/form-data") {
        read_multipart(request, &categories).await?
    } else {
        return Err(ApiError::UnsupportedMediaType("send application/json or multipart/form-data".into()));
    };
    let outcome = intake::submit(&state.changes(), &report, principal.as_ref(), Some(key)).await?;
    Ok(created(&outcome))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchRequest {
    /// At most 100. Each item is checked on its own (a malformed one fails alone), so they
    /// are read as any JSON here.
    #[schema(value_type = Vec<BatchItem>)]
    pub items: Vec<Value>,
}

/// One item of a batch: a report body plus its own key.
#[derive(Debug, utoipa::ToSchema)]
pub struct BatchItem {
    /// A client-made UUID, as the `Idempotency-Key` of a single intake.
    #[schema(format = Uuid)]
    pub idempotency_key: String,
    pub category: String,
    pub description: Option<String>,
    pub location: ReportLocation,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// The item's key as sent (null when it had none).
    pub idempotency_key: Option<String>,
    /// The status this item would have had on its own: 201, 400, 401, 409 …
    pub status: u16,
    /// The 201 body (for 201).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CreatedReport>)]
    pub report: Option<Value>,
    /// The error body (otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::error::ErrorBody>)]
    pub error: Option<Value>,
}

/// A rider's offline queue: each item is stored (or refused) on its own, with its own key.
#[utoipa::path(post, path = "/api/reports/batch", tag = "reports", request_body = BatchRequest,
    responses((status = 200, description = "One result per item, in order", body = [BatchResult]),
        (status = 400, description = "Not a batch", body = super::error::ErrorBody)))]
pub async fn create_reports_batch(
    State(state): State<AppState>,
    MaybeAuth(principal): MaybeAuth,
    rate_key: Option<axum::Extension<super::limits::RateKey>>,
    Json(batch): Json<BatchRequest>,
) -> ApiResult<Json<Vec<BatchResult>>> {
    if batch.items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::field("items", format!("at most {MAX_BATCH_ITEMS} items per batch")));
    }
    let categories = state.reports.categories(&state.pool).await?;
    let mut results = Vec::with_capacity(batch.items.len());
    for (index, mut item) in batch.items.into_iter().enumerate() {
        let key_text = item.as_object_mut().and_then(|o| o.remove("idempotency_key"));
        let key_string = key_text.as_ref().and_then(Value::as_str).map(str::to_string);
        let outcome = async {
            // A batch of N reports is N writes: the request paid for the first.
            if index > 0
                && let Some(axum::Extension(rate_key)) = &rate_key
            {
                state.limits.charge_write(rate_key)?;
            }
            let key = key_string
                .as_deref()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| ApiError::field("idempotency_key", "required: a UUID per item"))?;
            let report = intake::validate(&item, &categories)?;
            Ok::<_, ApiError>(intake::submit(&state.changes(), &report, principal.as_ref(), Some(key)).await?)
        }
        .await;
        results.push(match outcome {
            Ok(o) => BatchResult {
                idempotency_key: key_string,
                status: 201,
                report: serde_json::from_str(o.body()).ok(),
                error: None,
            },
            Err(err) => {
                if matches!(err, ApiError::Database(_) | ApiError::Internal(_)) {
                    return Err(err);
                }
                let response = err.into_response();
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
                BatchResult {
                    idempotency_key: key_string,
                    status,
                    report: None,
                    error: serde_json::from_slice(&body).ok(),
                }
            }
        });
    }
    Ok(Json(results))
}

/// Query string of `GET /api/reports`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListReportsQuery {
    /// A grid id, or `none` for the unassigned queue.
    pub grid: Option<String>,
    /// One status or several, comma-separated.
    pub status: Option<String>,
    pub category: Option<String>,
    /// minlon,minlat,maxlon,maxlat (WGS84).
    pub bbox: Option<String>,
    pub subdistrict: Option<i64>,
    /// Created at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// 1..=500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// 0..=10,000,000 (`http::paging::MAX_OFFSET`), default 0.
    #[param(minimum = 0, maximum = 10_000_000)]
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportPage {
    pub items: Vec<ReportView>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    /// The next page, if any.
    pub next: Option<String>,
}

pub fn parse_bbox(text: &str) -> Result<[f64; 4], ApiError> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::field("bbox", "four numbers: minlon,minlat,maxlon,maxlat"))?;
    match parts.as_slice() {
        [a, b, c, d] if parts.iter().all(|v| v.is_finite()) && a <= c && b <= d => Ok([*a, *b, *c, *d]),
        _ => Err(ApiError::field("bbox", "four finite numbers: minlon,minlat,maxlon,maxlat with min <= max")),
    }
}

/// Reports, newest first; public fields unless the caller is a grid worker or an admin.
#[utoipa::path(get, path = "/api/reports", tag = "reports", params(ListReportsQuery),
    responses((status = 200, body = ReportPage), (status = 400, body = super::error::ErrorBody)))]
pub async fn list_reports(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Query(q): Query<ListReportsQuery>,
) -> ApiResult<Json<ReportPage>> {
    let grid = match q.grid.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(g) => Some(Some(g.parse::<i64>().map_err(|_| ApiError::field("grid", "a grid id or `none`"))?)),
    };
    let statuses = match &q.status {
        None => None,
        Some(s) => {
            let list: Vec<String> = s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
            if let Some(bad) = list.iter().find(|p| ReportStatus::parse(p).is_none()) {
                return Err(ApiError::field("status", format!("unknown status `{bad}`")));
            }
            Some(list)
        }
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "between 1 and 500"));
    }
    let offset = super::paging::offset(q.offset)?;
    let filter = ListFilter {
        grid,
        statuses,
        category: q.category.clone(),
        bbox: q.bbox.as_deref().map(parse_bbox).transpose()?,
        from: q.from,
        to: q.to,
        subdistrict: q.subdistrict,
        limit,
        offset,
    };
    let (items, total) = workflow::list_reports(&state.pool, &filter, viewer.as_ref()).await?;
    let next = super::paging::next_offset(offset, limit, total).map(|next_offset| {
        let mut params: Vec<String> = Vec::new();
        if let Some(g) = &q.grid {
            params.push(format!("grid={g}"));
        }
        if let Some(s) = &q.status {
            params.push(format!("status={s}"));
        }
        if let Some(c) = &q.category {
            params.push(format!("category={c}"));
        }
        if let Some(b) = &q.bbox {
            params.push(format!("bbox={b}"));
        }
        if let Some(s) = q.subdistrict {
            params.push(format!("subdistrict={s}"));
        }
        if let Some(f) = q.from {
            params.push(format!("from={}", f.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        }
        if let Some(t) = q.to {
            params.push(format!("to={}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        }
        params.push(format!("limit={limit}"));
        params.push(format!("offset={next_offset}"));
        format!("/api/reports?{}", params.join("&"))
    });
    Ok(Json(ReportPage { items, total, limit, offset, next }))
}

/// A multipart intake: a part `report` (the JSON body) and up to three parts `photo`.
pub(crate) async fn read_multipart(request: Request, categories: &[Category]) -> Result<intake::NewReport, ApiError> {
    let (report, stored) = read_parts(request, "report").await?;
    let report = report.ok_or_else(|| ApiError::field("report", "a part `report` with the JSON body is required"))?;
    let mut new = intake::validate(&report, categories)?;
    new.photos = stored;
    Ok(new)
}

/// A multipart body of one JSON part named `json_part` and up to three parts `photo`, each
/// checked by content and stripped of its metadata (`reports::photos`). Any other part name is
/// refused.
async fn read_parts(request: Request, json_part: &str) -> Result<(Option<Value>, Vec<intake::Photo>), ApiError> {
    let mut multipart = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {}", e.body_text())))?;
    let mut json: Option<Value> = None;
    let mut stored = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(photos_too_large());
            }
            Err(e) => return Err(ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))),
        };
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                photos_too_large()
            } else {
                ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
            }
        })?;
        match name.as_str() {
            "photo" => {
                if stored.len() == photos::MAX_PHOTOS {
                    return Err(ApiError::field("photo", format!("at most {} photos", photos::MAX_PHOTOS)));
                }
                if bytes.len() > photos::MAX_PHOTO_BYTES {
                    let message = format!("photo {}: more than 5 MB", stored.len() + 1);
                    return Err(ApiError::FieldTooLarge { field: "photo".into(), message });
                }
                stored.push(photos::check_and_strip(&bytes).map_err(|m| ApiError::field("photo", m))?);
            }
            name if name == json_part => {
                json = Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| ApiError::field(json_part.to_string(), format!("invalid JSON: {e}")))?,
                );
            }
            other => {
                return Err(ApiError::field(other, format!("unknown part (expected `{json_part}` and `photo`)")));
            }
        }
    }
    Ok((json, stored))
}

/// The multipart body passed its limit: photos are what make a report that large.
fn photos_too_large() -> ApiError {
    ApiError::FieldTooLarge {
        field: "photo".into(),
        message: "request body too large (3 photos of 5 MB at most)".into(),
    }
}

/// One report with its history; `ETag` is its version (send it back in `If-Match`).
#[utoipa::path(get, path = "/api/reports/{id}", tag = "reports", params(("id" = i64, Path)),
    responses((status = 200, body = ReportView, headers(("ETag" = String))), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_report(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let view = workflow::get_report(&state.pool, id, viewer.as_ref())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no report {id}")))?;
    Ok(etag::tagged(StatusCode::OK, view.version, view))
}

/// The `n`th photo of a report (1 to `photo_count`, in the order sent), as stored: metadata
/// stripped. For whoever handles the report — the workers of its grid, planners, admins — and
/// the account that sent it; never public, since photos of a street show faces, number plates
/// and homes (the public report view and tiles carry `photo_count` only).
#[utoipa::path(get, path = "/api/reports/{id}/photos/{n}", tag = "reports",
    params(("id" = i64, Path), ("n" = i32, Path, description = "1 to the report's `photo_count`")),
    responses(
        (status = 200, description = "the stored image (`image/jpeg`, `image/png` or `image/webp`)",
         content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "image/webp"))),
        (status = 401, body = super::error::ErrorBody),
        (status = 403, description = "not the report's grid, role or sender", body = super::error::ErrorBody),
        (status = 404, description = "no such report or photo", body = super::error::ErrorBody)))]
pub(crate) async fn get_photo(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, n)): Path<(i64, i64)>,
) -> ApiResult<Response> {
    serve_photo(&state, &auth.0, id, n, false).await
}

/// The `n`th "after" photo a grid worker attached to feedback (1 to `feedback_photo_count`, in
/// the order sent, across feedback steps), stripped like intake photos and shown to the same
/// people: the grid's workers, planners, admins and the report's sender (who sees it fixed).
#[utoipa::path(get, path = "/api/reports/{id}/feedback-photos/{n}", tag = "reports",
    params(("id" = i64, Path), ("n" = i64, Path, description = "1 to the report's `feedback_photo_count`")),
    responses(
        (status = 200, description = "the stored image (`image/jpeg`, `image/png` or `image/webp`)",
         content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "image/webp"))),
        (status = 401, body = super::error::ErrorBody),
        (status = 403, description = "not the report's grid, role or sender", body = super::error::ErrorBody),
        (status = 404, description = "no such report or photo", body = super::error::ErrorBody)))]
pub(crate) async fn get_feedback_photo(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, n)): Path<(i64, i64)>,
) -> ApiResult<Response> {
    serve_photo(&state, &auth.0, id, n, true).await
}

async fn serve_photo(state: &AppState, viewer: &Principal, id: i64, n: i64, feedback: bool) -> ApiResult<Response> {
    let report: Option<(Option<i64>, Option<i64>)> =
        sqlx::query_as("select grid_id, reporter_id from report where id = $1")
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
    let (grid_id, reporter_id) = report.ok_or_else(|| ApiError::not_found(format!("no report {id}")))?;
    let allowed = matches!(viewer.role, Role::Planner | Role::Admin)
        || (viewer.role == Role::GridWorker && grid_id.is_some_and(|g| viewer.works_grid(g)))
        || reporter_id == Some(viewer.account_id);
    if !allowed {
        return Err(ApiError::Forbidden(
            "photos are for the report's grid workers, planners, admins and its sender".into(),
        ));
    }
    // Intake photos are at most three; feedback photos accumulate over rework rounds.
    let in_range = if feedback { n >= 1 } else { (1..=3).contains(&n) };
    let photo: Option<(String, Vec<u8>)> = if in_range {
        sqlx::query_as(
            "select media_type, bytes from report_photo
              where report_id = $1 and (event_id is not null) = $3 order by id offset $2 limit 1",
        )
        .bind(id)
        .bind(n - 1)
        .bind(feedback)
        .fetch_optional(&state.pool)
        .await?
    } else {
        None
    };
    let (media_type, bytes) = photo.ok_or_else(|| ApiError::not_found(format!("report {id} has no photo {n}")))?;
    let headers = [
        (header::CONTENT_TYPE, media_type),
        // Never stored by shared caches; the bytes of a stored photo never change.
        (header::CACHE_CONTROL, "private, max-age=86400, immutable".to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ];
    Ok((headers, bytes).into_response())
}

/// The version `If-Match` names (http/etag.rs); the workflow answers a missing one with 428 and
/// any other than the current one (a weak tag, `*`, not a number) with 412 and the current version.
fn if_match_version(headers: &HeaderMap) -> Result<Option<i32>, ApiError> {
    Ok(etag::if_match_version(headers)?.map(|v| i32::try_from(v).unwrap_or(-1)))
}

/// Move a report through the workflow (see `crate::reports::workflow` for who may do what).
/// JSON, or — for `feedback` with "after" photos — multipart: a part `transition` (the same JSON)
/// and up to three parts `photo`, checked and stripped like intake photos and stored in the
/// step's transaction.
#[utoipa::path(post, path = "/api/reports/{id}/transitions", tag = "reports", params(("id" = i64, Path),
        ("If-Match" = String, Header, description = "The report's ETag")),
    request_body(content(
        (TransitionRequest = "application/json"),
        (TransitionMultipart = "multipart/form-data"))),
    responses((status = 200, description = "The report after the transition, with history", body = ReportView),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "Not allowed from the current status", body = super::error::ErrorBody),
        (status = 412, description = "Stale If-Match", body = super::error::ErrorBody),
        (status = 413, description = "A photo over 5 MB", body = super::error::ErrorBody),
        (status = 415, body = super::error::ErrorBody),
        (status = 428, description = "If-Match missing", body = super::error::ErrorBody)))]
pub async fn create_transition(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    request: Request,
) -> ApiResult<Response> {
    let if_match = if_match_version(request.headers())?;
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let (body, photos) = if content_type.starts_with("multipart/form-data") {
        let (json, photos) = read_parts(request, "transition").await?;
        let json =
            json.ok_or_else(|| ApiError::field("transition", "a part `transition` with the JSON body is required"))?;
        // The NUL layer (http/input.rs) does not read multipart bodies.
        if let Some(field) = crate::nul::nul_path(&json) {
            return Err(ApiError::field(field, "must not contain a NUL character (\\u0000)"));
        }
        let body: TransitionRequest =
            serde_json::from_value(json).map_err(|e| ApiError::field("transition", format!("invalid JSON: {e}")))?;
        (body, photos)
    } else {
        let Json(body) = Json::<TransitionRequest>::from_request(request, &state).await?;
        (body, Vec::new())
    };
    let version = workflow::transition(&state.changes(), id, &actor, if_match, &body, &photos).await?;
    let view = workflow::get_report(&state.pool, id, Some(&actor))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no report {id}")))?;
    Ok(etag::tagged(StatusCode::OK, version, view))
}

/// The multipart form of a transition: the JSON in a part `transition`, "after" photos in parts
/// `photo`. Any other part name is refused.
#[derive(Debug, utoipa::ToSchema)]
pub struct TransitionMultipart {
    /// The same JSON as the `application/json` body (`{"to": "feedback", "note": …}`).
    pub transition: TransitionRequest,
    /// Up to three parts named `photo`, JPEG, PNG or WebP (decided by content), ≤ 5 MB each,
    /// EXIF removed before storing; only with `to: feedback`.
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    pub photo: Option<Vec<Vec<u8>>>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HexbinQuery {
    /// H3 resolution 7..=10 (default 8).
    pub res: Option<u8>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub category: Option<String>,
}

/// A heatmap: GeoJSON FeatureCollection of H3 cells with report counts (cancelled excluded).
#[utoipa::path(get, path = "/api/reports/hexbins", tag = "reports", params(HexbinQuery),
    responses((status = 200, description = "GeoJSON FeatureCollection; properties h3, count", content_type = "application/geo+json", body = Object),
        (status = 400, body = super::error::ErrorBody)))]
pub async fn hexbins(State(state): State<AppState>, Query(q): Query<HexbinQuery>) -> ApiResult<Response> {
    let res = q.res.unwrap_or(8);
    if !(7..=10).contains(&res) {
        return Err(ApiError::field("res", "an H3 resolution from 7 to 10"));
    }
    let resolution =
        h3o::Resolution::try_from(res).map_err(|_| ApiError::field("res", "an H3 resolution from 7 to 10"))?;
    let points: Vec<(f64, f64)> = sqlx::query_as(
        r"select ST_X(geom), ST_Y(geom) from report
           where status <> 'cancelled' and ($1::timestamptz is null or created_at >= $1)
             and ($2::timestamptz is null or created_at < $2) and ($3::text is null or category = $3)",
    )
    .bind(q.from)
    .bind(q.to)
    .bind(&q.category)
    .fetch_all(&state.pool)
    .await?;
    let mut counts: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for (lon, lat) in points {
        if let Ok(ll) = h3o::LatLng::new(lat, lon) {
            *counts.entry(u64::from(ll.to_cell(resolution))).or_default() += 1;
        }
    }
    let features: Vec<Value> = counts
        .into_iter()
        .filter_map(|(cell, count)| {
            let cell = h3o::CellIndex::try_from(cell).ok()?;
            let mut ring: Vec<[f64; 2]> = cell.boundary().iter().map(|v| [v.lng(), v.lat()]).collect();
            ring.push(*ring.first()?);
            Some(json!({
                "type": "Feature",
                "id": cell.to_string(),
                "properties": {"h3": cell.to_string(), "count": count},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }))
        })
        .collect();
    let body = json!({"type": "FeatureCollection", "features": features});
    Ok(([(header::CONTENT_TYPE, "application/geo+json")], body.to_string()).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Only this grid.
    pub grid: Option<i64>,
    /// Only inside minlon,minlat,maxlon,maxlat.
    pub bbox: Option<String>,
}

/// Live feed (Server-Sent Events, event `report`) of new and changed reports, for grid workers,
/// planners and admins: intake (`created`), workflow steps (`transition`) and moves to another
/// grid when grids are re-drawn by anyone (`reassign`, sent to the grid left and the grid
/// entered) — made through any gridmap instance on the database. Without a filter a grid worker
/// gets the grids they work. Each event's SSE `id` is its report history id: a client that
/// reconnects (to this or another instance) with `Last-Event-ID` first gets, from the database,
/// every change after that one, then the live ones — no gap, no duplicate (reports/feed.rs).
/// Emergency mode adds `event: emergency` (an episode started or ended, a check-in, a task:
/// `crate::emergency::Notice`), without an `id`, so resuming stays by report history id.
#[utoipa::path(get, path = "/api/reports/stream", tag = "reports", params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: the changes after it are sent first (an unknown or non-numeric id: live changes only)")),
    responses((status = 200, description = "text/event-stream of ReportChange", content_type = "text/event-stream", body = ReportChange),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    use crate::reports::feed::{self, FeedEvent};
    let principal = auth.require(&[Role::GridWorker, Role::Planner, Role::Admin])?.clone();
    let bbox = q.bbox.as_deref().map(parse_bbox).transpose()?;
    let grids: Option<Vec<i64>> = match (q.grid, bbox) {
        (Some(g), _) => Some(vec![g]),
        (None, None) if principal.role == Role::GridWorker => Some(principal.grid_ids.clone()),
        (None, _) => None,
    };
    // The follower runs in `serve`; a state built by hand (tests) starts it here.
    state.changes().follow_history();
    // EventSource sends back whatever id it last saw; an old instance's `report-version` ids
    // (before an upgrade) or garbage mean "no position": live changes only, never an error
    // (a browser stops reconnecting after one).
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|id| *id > 0);
    let notices = state.reports.feed.notices();
    let (receiver, mut delivered) = state.reports.feed.subscribe();
    for _ in 0..500 {
        if delivered.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        delivered = state.reports.feed.subscribe().1;
    }
    // Without the follower's starting point there is no line between replay and live events:
    // a stream opened anyway would drop every live event as "already replayed", silently. A
    // 503 makes the client retry (with its Last-Event-ID) once the follower has read it.
    let Some(until) = delivered else {
        return Err(ApiError::Unavailable("the live feed is starting; retry in a few seconds".into()));
    };
    let from = match resume {
        Some(id) => feed::position_of(&state.pool, id).await?,
        None => None,
    };
    // Missed changes, read from the database page by page up to where live delivery starts.
    let pool = state.pool.clone();
    let replay = futures::stream::unfold(from, move |cursor| {
        let pool = pool.clone();
        async move {
            let at = cursor?;
            match feed::read_after(&pool, at, Some(until), 500).await {
                Ok(page) => {
                    let next = if page.full { page.last } else { None };
                    Some((page.events, next))
                }
                Err(err) => {
                    tracing::warn!(%err, "live feed replay failed");
                    None
                }
            }
        }
    })
    .flat_map(futures::stream::iter);
    // A subscriber that falls behind the buffer ends its stream: it reconnects with its last
    // id and gets the rest from the database, rather than silently missing changes.
    let live = futures::stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(event) => Some((event, receiver)),
            Err(_) => None,
        }
    });
    // A client resuming from a change this instance has not delivered yet (it came from a
    // faster instance) gets nothing twice either.
    let floor = from.map_or(until, |from| from.max(until));
    let live = live.filter(move |event: &FeedEvent| futures::future::ready(event.position > floor));
    let stopped = state.lifecycle.stopped();
    let notice_grids = grids.clone();
    let reports = replay.chain(live).filter_map(move |event: FeedEvent| {
        let change = event.change;
        let wanted = grids.as_ref().is_none_or(|grids| change.touches_any(grids))
            && bbox.is_none_or(|[a, b, c, d]| change.lon >= a && change.lon <= c && change.lat >= b && change.lat <= d);
        futures::future::ready(
            wanted
                .then(|| Event::default().event("report").id(change.event_id.to_string()).json_data(&change).ok())
                .flatten()
                .map(Ok),
        )
    });
    // Emergency mode (docs/emergency.md): an episode's start and end go to everyone; a check-in
    // or a task to the subscribers of its grid. No SSE `id`: an event without one leaves the
    // client's last event id as it was, so `Last-Event-ID` stays a report history id.
    let notices = futures::stream::unfold(notices, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(json) => return Some((json, receiver)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .filter_map(move |json: String| {
        let grid = serde_json::from_str::<serde_json::Value>(&json).ok().and_then(|v| v["grid_id"].as_i64());
        let wanted = match (grid, notice_grids.as_ref()) {
            (Some(g), Some(grids)) => grids.contains(&g),
            _ => true,
        };
        futures::future::ready(wanted.then(|| Ok::<_, Infallible>(Event::default().event("emergency").data(json))))
    });
    let events = futures::stream::select(reports, notices).take_until(stopped);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
