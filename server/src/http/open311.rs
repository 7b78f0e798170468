//! Open311 GeoReport v2 (<http://wiki.open311.org/GeoReport_v2>) at `/open311/v2/`, the civic
//! issue API `FixMyStreet` speaks: discovery, services (our report categories), POST a request
//! (`api_key` = a logged-in account's bearer token), GET requests with filters, GET one request.
//! JSON format only; errors are `[{"code": <http status>, "description": "..."}]`.
//! Requests go through the same intake as `/api/reports` (validation, GCJ-02 not applicable:
//! Open311 coordinates are WGS84, assignment, duplicates, history).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Path, Query};
use super::urls::BaseUrl;
use crate::reports::intake::{self, IntakeError, Outcome};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/open311/v2/discovery.json", get(discovery))
        .route("/open311/v2/services.json", get(services))
        .route("/open311/v2/services/{file}", get(service_definition))
        .route("/open311/v2/requests.json", get(list_requests).post(create_request))
        .route("/open311/v2/requests/{file}", get(get_request))
}

/// An Open311 error: the HTTP status and `[{code, description}]`.
pub struct Open311Error(StatusCode, String);

impl IntoResponse for Open311Error {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!([{"code": self.0.as_u16(), "description": self.1}]))).into_response()
    }
}

impl From<sqlx::Error> for Open311Error {
    fn from(err: sqlx::Error) -> Self {
        tracing::error!(error = ?err, "open311 request failed");
        Self(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

impl From<IntakeError> for Open311Error {
    fn from(err: IntakeError) -> Self {
        match err {
            IntakeError::Field { field, message } => {
                let field = match field.as_str() {
                    "location.lon" => "long".to_string(),
                    "location.lat" => "lat".to_string(),
                    "category" => "service_code".to_string(),
                    _ => field,
                };
                Self(StatusCode::BAD_REQUEST, format!("{field}: {message}"))
            }
            IntakeError::LoginRequired(m) => Self(StatusCode::FORBIDDEN, m),
            IntakeError::KeyReused => Self(StatusCode::CONFLICT, err.to_string()),
            IntakeError::Database(e) => e.into(),
        }
    }
}

/// Everything under `/open311/` answers errors in Open311's shape, including the ones no
/// Open311 handler produces: a query string that does not parse (`start_date=2024-01-01`), an
/// unknown path, a wrong method, a body over the limit, the rate limit. Those come from shared
/// extractors and layers as `{code, message}` or plain text; a `FixMyStreet`-style client reads
/// only `[{code, description}]`, so they are rewritten here, status and headers kept.
pub async fn errors_as_open311(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_open311 = request.uri().path().starts_with("/open311/");
    let response = next.run(request).await;
    let status = response.status();
    if !is_open311 || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let description = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(_)) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
        Ok(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_string),
        _ => Some(String::from_utf8_lossy(&bytes).trim().to_string()).filter(|t| !t.is_empty()),
    }
    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    let body = json!([{"code": status.as_u16(), "description": description}]).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

type Result311<T> = Result<T, Open311Error>;

fn json_file(file: &str) -> Result311<&str> {
    file.strip_suffix(".json")
        .ok_or_else(|| Open311Error(StatusCode::NOT_FOUND, "only the JSON format is served (use .json)".into()))
}

async fn discovery(BaseUrl(base): BaseUrl) -> Response {
    axum::Json(json!({
        "changeset": "2026-11-28T00:00:00Z",
        "contact": "沂源县城市网格化管理 (gridmap)",
        "key_service": "api_key is the bearer token from POST /api/auth/login",
        "endpoints": [{
            "specification": "http://wiki.open311.org/GeoReport_v2",
            // Absolute as the spec's example; the base comes from `http::urls` (GRIDMAP_PUBLIC_URL).
            "url": format!("{base}/open311/v2"),
            "changeset": "2026-11-28T00:00:00Z",
            "type": "production",
            "formats": ["application/json"],
        }],
    }))
    .into_response()
}

async fn services(State(state): State<AppState>) -> Result311<Response> {
    let categories = state.reports.categories(&state.pool).await?;
    let list: Vec<Value> = categories
        .iter()
        .map(|c| {
            json!({
                "service_code": c.code,
                "service_name": c.name_zh,
                "description": format!("{} — {} / {}", c.name_en, c.group_zh, c.group_en),
                "metadata": false,
                "type": "realtime",
                "keywords": format!("{},{}", c.kind, c.group_code),
                "group": c.group_zh,
            })
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

async fn service_definition(State(state): State<AppState>, Path(file): Path<String>) -> Result311<Response> {
    let code = json_file(&file)?;
    let categories = state.reports.categories(&state.pool).await?;
    if !categories.iter().any(|c| c.code == code) {
        return Err(Open311Error(StatusCode::NOT_FOUND, format!("no service {code}")));
    }
    Ok(axum::Json(json!({"service_code": code, "attributes": []})).into_response())
}

/// POST requests.json: form-encoded per the spec (JSON is accepted too).
async fn create_request(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result311<Response> {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let fields: std::collections::HashMap<String, String> = if content_type.starts_with("application/json") {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| Open311Error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
        value
            .as_object()
            .ok_or_else(|| Open311Error(StatusCode::BAD_REQUEST, "expected an object".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect()
    } else if content_type.starts_with("application/x-www-form-urlencoded") || content_type.is_empty() {
        form_pairs(&body)
    } else {
        return Err(Open311Error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/x-www-form-urlencoded".into()));
    };
    let api_key = fields.get("api_key").filter(|k| !k.is_empty()).ok_or_else(|| {
        Open311Error(StatusCode::BAD_REQUEST, "api_key: required (a bearer token from POST /api/auth/login)".into())
    })?;
    let principal = state
        .tokens
        .authenticate(&state.pool, api_key)
        .await?
        .ok_or_else(|| Open311Error(StatusCode::FORBIDDEN, "api_key: invalid or expired".into()))?;
    let number = |name: &str| -> Result311<f64> {
        fields
            .get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| Open311Error(StatusCode::BAD_REQUEST, format!("{name}: required, a number (WGS84)")))
    };
    let (lat, lon) = (number("lat")?, number("long")?);
    let service_code = fields
        .get("service_code")
        .ok_or_else(|| Open311Error(StatusCode::BAD_REQUEST, "service_code: required".into()))?;
    let body = json!({
        "category": service_code,
        "description": fields.get("description").cloned().unwrap_or_default(),
        "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
    });
    let categories = state.reports.categories(&state.pool).await?;
    let report = intake::validate(&body, &categories)?;
    // GeoReport v2 has no idempotency of its own; a client that sends `Idempotency-Key` (as
    // gridmap's own clients do) gets the same exactly-once behaviour as `POST /api/reports`.
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| uuid::Uuid::parse_str(s.trim()).ok())
                .ok_or_else(|| Open311Error(StatusCode::BAD_REQUEST, "Idempotency-Key: must be a UUID".into()))?,
        ),
    };
    let outcome = super::reports::submit(&state, &report, Some(&principal), key).await?;
    let (Outcome::Created { id, .. } | Outcome::Replayed { id, .. }) = outcome;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!([{"service_request_id": id.to_string(), "service_notice": "已受理 received; assigned to the grid that contains the point", "account_id": null}])),
    )
        .into_response())
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte; the last of a
/// repeated name wins).
fn form_pairs(body: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[derive(Debug, Deserialize)]
pub struct RequestsQuery {
    pub service_request_id: Option<String>,
    pub service_code: Option<String>,
    /// `open` or `closed` (cancelled counts as closed).
    pub status: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub jurisdiction_id: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    status: String,
    cancel_reason: Option<String>,
    code: String,
    name_zh: String,
    description: String,
    grid_name: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    due_at: Option<DateTime<Utc>>,
    lon: f64,
    lat: f64,
    photo_count: i32,
}

fn to_open311(r: &Row) -> Value {
    let closed = matches!(r.status.as_str(), "closed" | "cancelled");
    json!({
        "service_request_id": r.id.to_string(),
        "status": if closed { "closed" } else { "open" },
        "status_notes": match (&r.cancel_reason, r.status.as_str()) {
            (Some(reason), "cancelled") => format!("cancelled: {reason}"),
            (_, s) => s.to_string(),
        },
        "service_name": r.name_zh,
        "service_code": r.code,
        "description": r.description,
        "agency_responsible": r.grid_name.clone().unwrap_or_else(|| "待分派 unassigned".into()),
        "service_notice": null,
        "requested_datetime": r.created_at,
        "updated_datetime": r.updated_at,
        "expected_datetime": r.due_at,
        "address": null,
        "address_id": null,
        "zipcode": null,
        "lat": r.lat,
        "long": r.lon,
        // Photos are not published (they may show people); the count is in /api/reports.
        "media_url": if r.photo_count > 0 { Some(format!("/api/reports/{}", r.id)) } else { None },
    })
}

const SELECT: &str = r"
select r.id, r.status, r.cancel_reason, c.code, c.name_zh, r.description, g.name as grid_name,
       r.created_at, r.updated_at, r.due_at, ST_X(r.geom) as lon, ST_Y(r.geom) as lat, r.photo_count
  from report r join report_category c on c.code = r.category left join grid g on g.id = r.grid_id";

/// GET requests.json: without dates, the last 90 days (the spec's default), at most 1,000.
async fn list_requests(State(state): State<AppState>, Query(q): Query<RequestsQuery>) -> Result311<Response> {
    let ids: Option<Vec<i64>> = match &q.service_request_id {
        None => None,
        Some(text) => Some(
            text.split(',')
                .map(|s| s.trim().parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| Open311Error(StatusCode::BAD_REQUEST, "service_request_id: comma-separated ids".into()))?,
        ),
    };
    let closed = match q.status.as_deref() {
        None => None,
        Some("open") => Some(false),
        Some("closed") => Some(true),
        Some(_) => return Err(Open311Error(StatusCode::BAD_REQUEST, "status: open or closed".into())),
    };
    let start = if ids.is_none() && q.start_date.is_none() && q.end_date.is_none() {
        Some(Utc::now() - chrono::Duration::days(90))
    } else {
        q.start_date
    };
    let rows: Vec<Row> = sqlx::query_as(&format!(
        r"{SELECT}
          where ($1::bigint[] is null or r.id = any($1))
            and ($2::text is null or r.category = $2)
            and ($3::boolean is null or (r.status in ('closed', 'cancelled')) = $3)
            and ($4::timestamptz is null or r.created_at >= $4)
            and ($5::timestamptz is null or r.created_at <= $5)
          order by r.created_at desc, r.id desc limit 1000"
    ))
    .bind(&ids)
    .bind(&q.service_code)
    .bind(closed)
    .bind(start)
    .bind(q.end_date)
    .fetch_all(&state.pool)
    .await?;
    Ok(axum::Json(rows.iter().map(to_open311).collect::<Vec<_>>()).into_response())
}

async fn get_request(State(state): State<AppState>, Path(file): Path<String>) -> Result311<Response> {
    let id: i64 =
        json_file(&file)?.parse().map_err(|_| Open311Error(StatusCode::NOT_FOUND, "no such service request".into()))?;
    let row: Option<Row> =
        sqlx::query_as(&format!("{SELECT} where r.id = $1")).bind(id).fetch_optional(&state.pool).await?;
    let row = row.ok_or_else(|| Open311Error(StatusCode::NOT_FOUND, format!("no service request {id}")))?;
    Ok(axum::Json(vec![to_open311(&row)]).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_decoding_handles_plus_and_percent() {
        let m = super::form_pairs(b"a=1&description=%E4%BA%95%E7%9B%96+broken&lat=36.1&bad=%zz");
        assert_eq!(m["description"], "井盖 broken");
        assert_eq!(m["lat"], "36.1");
        assert_eq!(m["bad"], "%zz");
    }
}
