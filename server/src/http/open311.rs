//! Open311 GeoReport v2 (<http://wiki.open311.org/GeoReport_v2>) at `/open311/v2/`, the civic
//! issue API `FixMyStreet` speaks: discovery, services (our report categories), POST a request,
//! GET requests with filters, GET one request — each in both formats the spec defines, `.json`
//! and `.xml` (`FixMyStreet`'s client only speaks XML). The two formats carry the same data from
//! the same typed values; XML is written by quick-xml's serde serializer, never by hand.
//! Errors are `[{"code", "description"}]` in JSON and `<errors><error><code/><description/>`
//! in XML. `api_key` is a static API key with the `open311` scope (`gridmap apikey add`), or,
//! as before, a login token. Requests go through the same intake as `/api/reports`.
//!
//! `jurisdiction_id` is a county's code (`370323`, `GET /api/counties`): every method takes it
//! (the spec's "required if the endpoint serves multiple jurisdictions", optional here, as one
//! endpoint without it serves every county as before). An id that names no county is ignored,
//! as every id was before counties; a county's code makes a request's list or its one request
//! that county's, and a POST whose point the county does not hold is 400.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::extract::{Path, Query};
use super::routes::plain_routes;
use super::urls::BaseUrl;
use crate::api_keys::{self, Scope};
use crate::counties::{self, County};
use crate::reports::intake::{self, IntakeError, Outcome};

/// Outside `/api/openapi.json`: GeoReport v2 is its own specification.
pub fn router() -> OpenApiRouter<AppState> {
    plain_routes!(OpenApiRouter::new(),
        "/open311/v2/discovery.json" => get(async |BaseUrl(base): BaseUrl| discovery(&base, Format::Json)),
        "/open311/v2/discovery.xml" => get(async |BaseUrl(base): BaseUrl| discovery(&base, Format::Xml)),
        "/open311/v2/services.json" => get(async |s: State<AppState>| services(s, Format::Json).await),
        "/open311/v2/services.xml" => get(async |s: State<AppState>| services(s, Format::Xml).await),
        "/open311/v2/services/{file}" => get(service_definition),
        "/open311/v2/requests.json" =>
            get(async |s: State<AppState>, q: Query<RequestsQuery>| list_requests(s, q, Format::Json).await)
                .post(async |s: State<AppState>, h: HeaderMap, b: Bytes| create_request(s, h, b, Format::Json).await),
        "/open311/v2/requests.xml" =>
            get(async |s: State<AppState>, q: Query<RequestsQuery>| list_requests(s, q, Format::Xml).await)
                .post(async |s: State<AppState>, h: HeaderMap, b: Bytes| create_request(s, h, b, Format::Xml).await),
        "/open311/v2/requests/{file}" => get(get_request),
    )
}

/// The two representations GeoReport v2 defines, chosen by the path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// `manhole_cover.xml` → (`manhole_cover`, XML); no known extension → 404.
    fn split(file: &str) -> Result311<(&str, Self)> {
        if let Some(stem) = file.strip_suffix(".json") {
            Ok((stem, Self::Json))
        } else if let Some(stem) = file.strip_suffix(".xml") {
            Ok((stem, Self::Xml))
        } else {
            Err(Open311Error(StatusCode::NOT_FOUND, "add the format to the path: .json or .xml".into()))
        }
    }
}

/// One response body in the requested format. `root` names XML's root element (JSON has none);
/// `xml` is the value under it — for lists a wrapper whose one field repeats the item element.
fn reply<J: Serialize, X: Serialize>(format: Format, status: StatusCode, json: &J, root: &str, xml: &X) -> Response {
    match format {
        Format::Json => (status, axum::Json(json)).into_response(),
        Format::Xml => match xml_document(root, xml) {
            Ok(text) => (status, [(header::CONTENT_TYPE, XML_CONTENT_TYPE)], text).into_response(),
            Err(err) => {
                tracing::error!(error = %err, "open311 XML serialization failed");
                Open311Error(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()).into_response()
            }
        },
    }
}

/// GeoReport v2's examples are served as `text/xml`; the charset is said, the body being UTF-8
/// Chinese.
const XML_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("text/xml; charset=utf-8");

fn xml_document<X: Serialize>(root: &str, value: &X) -> Result<String, quick_xml::SeError> {
    let body = quick_xml::se::to_string_with_root(root, value)?;
    Ok(format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{body}"))
}

/// An Open311 error: the HTTP status and `[{code, description}]` (XML: see
/// [`errors_as_open311`], which writes every error under `/open311/` in the path's format).
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

#[derive(Serialize)]
struct ErrorItem {
    code: u16,
    description: String,
}

#[derive(Serialize)]
struct XmlErrors {
    error: Vec<ErrorItem>,
}

/// Everything under `/open311/` answers errors in Open311's shape, including the ones no
/// Open311 handler produces: a query string that does not parse (`start_date=2024-01-01`), an
/// unknown path, a wrong method, a body over the limit, the rate limit. Those come from shared
/// extractors and layers as `{code, message}` or plain text; a `FixMyStreet`-style client reads
/// only `[{code, description}]` — and, on a `.xml` path, only `<errors>` (its client parses every
/// error body as XML) — so they are rewritten here, status and headers kept.
pub async fn errors_as_open311(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path();
    let is_open311 = path.starts_with("/open311/");
    let xml = std::path::Path::new(path).extension().is_some_and(|e| e.eq_ignore_ascii_case("xml"));
    let response = next.run(request).await;
    let status = response.status();
    if !is_open311 || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let items: Vec<ErrorItem> = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(_)) if !xml => return Response::from_parts(parts, axum::body::Body::from(bytes)),
        Ok(Value::Array(items)) => items
            .iter()
            .map(|i| ErrorItem {
                code: i["code"].as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(status.as_u16()),
                description: i["description"].as_str().unwrap_or_default().to_string(),
            })
            .collect(),
        other => {
            let description = match other {
                Ok(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_string),
                _ => Some(String::from_utf8_lossy(&bytes).trim().to_string()).filter(|t| !t.is_empty()),
            }
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
            vec![ErrorItem { code: status.as_u16(), description }]
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = if xml {
        parts.headers.insert(header::CONTENT_TYPE, XML_CONTENT_TYPE);
        xml_document("errors", &XmlErrors { error: items }).unwrap_or_default()
    } else {
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        serde_json::to_string(&items).unwrap_or_default()
    };
    Response::from_parts(parts, axum::body::Body::from(body))
}

type Result311<T> = Result<T, Open311Error>;

/// `?jurisdiction_id=` of `GET requests/{id}`.
#[derive(Debug, Deserialize)]
pub struct JurisdictionQuery {
    pub jurisdiction_id: Option<String>,
}

/// The county a `jurisdiction_id` names: `None` when it is absent, empty (the spec: an empty
/// optional argument is no argument) or names no county. Before counties the id was accepted
/// and ignored (docs/reports.md), and integrations send whatever their operator configured
/// (`FixMyStreet`: a body's `jurisdiction`, say `yiyuan`): such an id is still ignored, so they
/// keep working, while a county's code scopes every method to that county.
async fn jurisdiction(state: &AppState, id: Option<&str>) -> Result311<Option<County>> {
    let Some(code) = id.map(str::trim).filter(|c| !c.is_empty()) else { return Ok(None) };
    Ok(counties::by_code(&state.pool, code).await?)
}

/// When the discovery document last changed (the spec's `changeset`).
const CHANGESET: &str = "2026-12-06T00:00:00Z";

#[derive(Serialize)]
struct Discovery<E> {
    changeset: &'static str,
    contact: &'static str,
    key_service: &'static str,
    endpoints: E,
}

#[derive(Serialize)]
struct Endpoint<F> {
    specification: &'static str,
    /// Absolute, as the spec's examples and clients that follow it from another host need.
    url: String,
    changeset: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    formats: F,
}

#[derive(Serialize)]
struct XmlEndpoints {
    endpoint: Vec<Endpoint<XmlFormats>>,
}

#[derive(Serialize)]
struct XmlFormats {
    format: Vec<&'static str>,
}

fn endpoint<F>(url: &str, formats: F) -> Endpoint<F> {
    Endpoint {
        specification: "http://wiki.open311.org/GeoReport_v2",
        url: url.to_string(),
        changeset: CHANGESET,
        kind: "production",
        formats,
    }
}

const FORMATS: [&str; 2] = ["application/json", "text/xml"];

/// `GET discovery.{json,xml}`: where the v2 endpoint lives (from `GRIDMAP_PUBLIC_URL`, else the
/// request's host) and which formats it speaks — the same for every county (one endpoint).
fn discovery(base: &str, format: Format) -> Response {
    // Absolute as the spec's example; the base comes from `http::urls` (GRIDMAP_PUBLIC_URL).
    let url = format!("{base}/open311/v2");
    let contact = "沂源县城市网格化管理 (gridmap)";
    let key_service = "an Open311 API key from the county's administrator (gridmap apikey add NAME), or a bearer token from POST /api/auth/login";
    let json =
        Discovery { changeset: CHANGESET, contact, key_service, endpoints: vec![endpoint(&url, FORMATS.to_vec())] };
    let xml = Discovery {
        changeset: CHANGESET,
        contact,
        key_service,
        endpoints: XmlEndpoints { endpoint: vec![endpoint(&url, XmlFormats { format: FORMATS.to_vec() })] },
    };
    reply(format, StatusCode::OK, &json, "discovery", &xml)
}

/// One service (a report category), the same fields in both formats.
#[derive(Serialize)]
#[allow(clippy::struct_field_names, reason = "the field names are GeoReport v2's")]
struct Service {
    service_code: String,
    service_name: String,
    description: String,
    metadata: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    keywords: String,
    group: String,
}

#[derive(Serialize)]
struct XmlServices {
    service: Vec<Service>,
}

/// `GET services.{json,xml}`: every county offers the same services (the report categories).
async fn services(State(state): State<AppState>, format: Format) -> Result311<Response> {
    let categories = state.reports.categories(&state.pool).await?;
    let list: Vec<Service> = categories
        .iter()
        .map(|c| Service {
            service_code: c.code.clone(),
            service_name: c.name_zh.clone(),
            description: format!("{} — {} / {}", c.name_en, c.group_zh, c.group_en),
            metadata: false,
            kind: "realtime",
            keywords: format!("{},{}", c.kind, c.group_code),
            group: c.group_zh.clone(),
        })
        .collect();
    let json = serde_json::to_value(&list)
        .map_err(|_| Open311Error(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))?;
    Ok(reply(format, StatusCode::OK, &json, "services", &XmlServices { service: list }))
}

#[derive(Serialize)]
struct ServiceDefinition<A> {
    service_code: String,
    /// No category asks extra questions (`metadata` is false for all), so the list is empty.
    attributes: A,
}

async fn service_definition(State(state): State<AppState>, Path(file): Path<String>) -> Result311<Response> {
    let (code, format) = Format::split(&file)?;
    let categories = state.reports.categories(&state.pool).await?;
    if !categories.iter().any(|c| c.code == code) {
        return Err(Open311Error(StatusCode::NOT_FOUND, format!("no service {code}")));
    }
    let json = ServiceDefinition { service_code: code.to_string(), attributes: Vec::<Value>::new() };
    let xml = ServiceDefinition { service_code: code.to_string(), attributes: "" };
    Ok(reply(format, StatusCode::OK, &json, "service_definition", &xml))
}

/// The answer to a POST: the new request's id.
#[derive(Serialize)]
#[allow(clippy::struct_field_names, reason = "the field names are GeoReport v2's")]
struct Created {
    service_request_id: String,
    service_notice: &'static str,
    account_id: Option<String>,
}

/// XML's `<service_requests>` holds one `<request>` per item.
#[derive(Serialize)]
struct XmlRequests<T> {
    request: Vec<T>,
}

/// The account behind `api_key`: a static key (prefix `gmk_`) with the `open311` scope, or a
/// login token (what this endpoint took before keys existed; kept for existing clients).
async fn open311_principal(state: &AppState, api_key: &str) -> Result311<crate::auth::Principal> {
    let principal = if api_keys::is_api_key(api_key) {
        api_keys::authenticate(&state.pool, api_key, Scope::Open311).await?
    } else {
        state.tokens.authenticate(&state.pool, api_key).await?
    };
    principal.ok_or_else(|| {
        Open311Error(StatusCode::FORBIDDEN, "api_key: invalid, revoked, expired or not for Open311".into())
    })
}

/// POST requests.{json,xml}: form-encoded per the spec (JSON is accepted too). `FixMyStreet`
/// also sends `first_name`, `last_name`, `email`, `phone` and `attribute[...]`: the reporter's
/// identity is the key's account, so those personal fields are neither needed nor stored.
/// `jurisdiction_id`, when it names a county, must name one that holds the point (else 400):
/// a client filing for one county never files a report into another.
async fn create_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
    format: Format,
) -> Result311<Response> {
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
        Open311Error(StatusCode::BAD_REQUEST, "api_key: required (an Open311 API key from the administrator)".into())
    })?;
    let principal = open311_principal(&state, api_key).await?;
    let number = |name: &str| -> Result311<f64> {
        fields
            .get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| Open311Error(StatusCode::BAD_REQUEST, format!("{name}: required, a number (WGS84)")))
    };
    let (lat, lon) = (number("lat")?, number("long")?);
    if let Some(county) = jurisdiction(&state, fields.get("jurisdiction_id").map(String::as_str)).await?
        && !counties::holds_point(&state.pool, county.id, lon, lat).await?
    {
        return Err(Open311Error(
            StatusCode::BAD_REQUEST,
            format!(
                "jurisdiction_id: the point lat {lat}, long {lon} is outside {} ({}); send the county that holds it, or no jurisdiction_id",
                county.name, county.code
            ),
        ));
    }
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
    let outcome = crate::reports::intake::submit(&state.changes(), &report, Some(&principal), key).await?;
    let (Outcome::Created { id, .. } | Outcome::Replayed { id, .. }) = outcome;
    let created = vec![Created {
        service_request_id: id.to_string(),
        service_notice: "已受理 received; assigned to the grid that contains the point",
        account_id: None,
    }];
    let json = serde_json::to_value(&created)
        .map_err(|_| Open311Error(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))?;
    Ok(reply(format, StatusCode::CREATED, &json, "service_requests", &XmlRequests { request: created }))
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte; the last of a
/// repeated name wins).
fn form_pairs(body: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[derive(Debug, Deserialize)]
pub struct RequestsQuery {
    pub service_request_id: Option<String>,
    /// One code or a comma list (`manhole_cover,streetlight`).
    pub service_code: Option<String>,
    /// `open`, `closed` or both as a comma list (cancelled counts as closed).
    pub status: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// A county's code: only its requests (those of its subdistricts, as `/api/stats` counts).
    pub jurisdiction_id: Option<String>,
}

/// The non-empty items of a comma list (`a, b,` → `a`, `b`); `None` when there are none.
fn comma_list(text: Option<&str>) -> Option<Vec<&str>> {
    let items: Vec<&str> = text?.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    (!items.is_empty()).then_some(items)
}

/// `status=open,closed` as the spec allows: which of the two are wanted (`None`: both).
fn status_filter(text: Option<&str>) -> Result311<Option<bool>> {
    let Some(items) = comma_list(text) else { return Ok(None) };
    let mut open = false;
    let mut closed = false;
    for item in items {
        match item {
            "open" => open = true,
            "closed" => closed = true,
            other => {
                return Err(Open311Error(
                    StatusCode::BAD_REQUEST,
                    format!("status: `{other}` is not open or closed (a comma list of these is allowed)"),
                ));
            }
        }
    }
    Ok(if open && closed { None } else { Some(closed) })
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

/// A service request as GeoReport v2 lists it, the same fields in JSON and XML.
#[derive(Serialize)]
#[allow(clippy::struct_field_names, reason = "the field names are GeoReport v2's")]
struct ServiceRequest {
    service_request_id: String,
    status: &'static str,
    status_notes: String,
    service_name: String,
    service_code: String,
    description: String,
    agency_responsible: String,
    service_notice: Option<String>,
    requested_datetime: DateTime<Utc>,
    updated_datetime: DateTime<Utc>,
    expected_datetime: Option<DateTime<Utc>>,
    address: Option<String>,
    address_id: Option<String>,
    zipcode: Option<String>,
    lat: f64,
    long: f64,
    media_url: Option<String>,
}

fn to_open311(r: &Row) -> ServiceRequest {
    let closed = !crate::reports::open_reports::is_open(&r.status);
    ServiceRequest {
        service_request_id: r.id.to_string(),
        status: if closed { "closed" } else { "open" },
        status_notes: match (&r.cancel_reason, r.status.as_str()) {
            (Some(reason), "cancelled") => format!("cancelled: {reason}"),
            (_, s) => s.to_string(),
        },
        service_name: r.name_zh.clone(),
        service_code: r.code.clone(),
        description: r.description.clone(),
        agency_responsible: r.grid_name.clone().unwrap_or_else(|| "待分派 unassigned".into()),
        service_notice: None,
        requested_datetime: r.created_at,
        updated_datetime: r.updated_at,
        expected_datetime: r.due_at,
        address: None,
        address_id: None,
        zipcode: None,
        lat: r.lat,
        long: r.lon,
        // Photos are not published (they may show people); the count is in /api/reports.
        media_url: (r.photo_count > 0).then(|| format!("/api/reports/{}", r.id)),
    }
}

fn requests_reply(format: Format, rows: &[Row]) -> Result311<Response> {
    let list: Vec<ServiceRequest> = rows.iter().map(to_open311).collect();
    let json = serde_json::to_value(&list)
        .map_err(|_| Open311Error(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))?;
    Ok(reply(format, StatusCode::OK, &json, "service_requests", &XmlRequests { request: list }))
}

const SELECT: &str = r"
select r.id, r.status, r.cancel_reason, c.code, c.name_zh, r.description, g.name as grid_name,
       r.created_at, r.updated_at, r.due_at, ST_X(r.geom) as lon, ST_Y(r.geom) as lat, r.photo_count
  from report r join report_category c on c.code = r.category left join grid g on g.id = r.grid_id";

/// GET requests.{json,xml}: without dates, the last 90 days (the spec's default), at most 1,000.
async fn list_requests(
    State(state): State<AppState>,
    Query(q): Query<RequestsQuery>,
    format: Format,
) -> Result311<Response> {
    let ids: Option<Vec<i64>> =
        match comma_list(q.service_request_id.as_deref()) {
            None => None,
            Some(items) => Some(items.iter().map(|s| s.parse::<i64>()).collect::<Result<_, _>>().map_err(|_| {
                Open311Error(StatusCode::BAD_REQUEST, "service_request_id: comma-separated ids".into())
            })?),
        };
    let codes: Option<Vec<String>> =
        comma_list(q.service_code.as_deref()).map(|items| items.into_iter().map(str::to_string).collect());
    let closed = status_filter(q.status.as_deref())?;
    let county = jurisdiction(&state, q.jurisdiction_id.as_deref()).await?.map(|c| c.id);
    let start = if ids.is_none() && q.start_date.is_none() && q.end_date.is_none() {
        Some(Utc::now() - chrono::Duration::days(90))
    } else {
        q.start_date
    };
    let rows: Vec<Row> = sqlx::query_as(&format!(
        r"{SELECT}
          where ($1::bigint[] is null or r.id = any($1))
            and ($2::text[] is null or r.category = any($2))
            and ($3::boolean is null or gridmap_report_is_open(r.status) <> $3)
            and ($4::timestamptz is null or r.created_at >= $4)
            and ($5::timestamptz is null or r.created_at <= $5)
            and ($6::bigint is null or r.subdistrict_id in (select id from subdistrict where county_id = $6))
          order by r.created_at desc, r.id desc limit 1000"
    ))
    .bind(&ids)
    .bind(&codes)
    .bind(closed)
    .bind(start)
    .bind(q.end_date)
    .bind(county)
    .fetch_all(&state.pool)
    .await?;
    requests_reply(format, &rows)
}

/// `GET requests/{id}.{json,xml}`: with a `jurisdiction_id`, a request of another county is not
/// found there (404), as in a per-county endpoint.
async fn get_request(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(q): Query<JurisdictionQuery>,
) -> Result311<Response> {
    let (stem, format) = Format::split(&file)?;
    let county = jurisdiction(&state, q.jurisdiction_id.as_deref()).await?;
    let id: i64 = stem.parse().map_err(|_| Open311Error(StatusCode::NOT_FOUND, "no such service request".into()))?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "{SELECT} where r.id = $1
            and ($2::bigint is null or r.subdistrict_id in (select id from subdistrict where county_id = $2))"
    ))
    .bind(id)
    .bind(county.as_ref().map(|c| c.id))
    .fetch_optional(&state.pool)
    .await?;
    let row = row.ok_or_else(|| match &county {
        Some(c) => Open311Error(StatusCode::NOT_FOUND, format!("no service request {id} in jurisdiction {}", c.code)),
        None => Open311Error(StatusCode::NOT_FOUND, format!("no service request {id}")),
    })?;
    requests_reply(format, &[row])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_plus_and_percent() {
        let m = form_pairs(b"a=1&description=%E4%BA%95%E7%9B%96+broken&lat=36.1&bad=%zz");
        assert_eq!(m["description"], "井盖 broken");
        assert_eq!(m["lat"], "36.1");
        assert_eq!(m["bad"], "%zz");
    }

    #[test]
    fn status_takes_a_comma_list_of_open_and_closed() {
        assert_eq!(status_filter(None).ok(), Some(None));
        assert_eq!(status_filter(Some("open")).ok(), Some(Some(false)));
        assert_eq!(status_filter(Some("closed")).ok(), Some(Some(true)));
        assert_eq!(status_filter(Some("open,closed")).ok(), Some(None));
        assert_eq!(status_filter(Some(" closed , open ,")).ok(), Some(None));
        assert!(status_filter(Some("open,fixed")).is_err());
    }

    #[test]
    fn xml_lists_repeat_the_item_element_under_the_root() {
        let text = xml_document(
            "service_requests",
            &XmlRequests {
                request: vec![
                    Created { service_request_id: "1".into(), service_notice: "a & b", account_id: None },
                    Created { service_request_id: "2".into(), service_notice: "<x>", account_id: None },
                ],
            },
        )
        .expect("serializes");
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_requests><request>"), "{text}");
        assert!(text.contains("<service_notice>a &amp; b</service_notice>"), "{text}");
        assert!(text.contains("&lt;x&gt;"), "{text}");
        assert_eq!(text.matches("<request>").count(), 2);
    }
}
