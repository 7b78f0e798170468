//! `/ogc…`: OGC API – Features. Part 1 Core + GeoJSON + OpenAPI 3.0 (landing page, conformance,
//! API definition, collections, items, item), Part 3 filtering (CQL2 text and JSON, queryables),
//! Part 4 create/replace/update/delete with strong ETags and `If-Match` (mandatory, but for a
//! desktop GIS's API key on grids: `edit::Precondition::DesktopKey`, docs/ogc.md).
//!
//! Query parameters of `…/items`: `limit` (default 10, larger than 1000 is clamped to 1000),
//! `offset`, `bbox` (CRS84), `properties`, `filter`, `filter-lang`, `filter-crs` (CRS84 only),
//! `datetime` (an instant, date or interval with `..`; on `created_at` for reports, on
//! `updated_at` elsewhere; malformed is a 400), `f=json`, and one
//! equality filter per published property (`?code=LS-001`). Anything else is a 400 naming it.
//! Features answers carry `Content-Crs` (always CRS84); one feature carries `self` and
//! `collection` links beside its strong ETag.

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::etag;
use super::extract::{Json, Path};
use super::principal::{Auth, bearer_token};
use super::routes::plain_routes;
use super::urls::BaseUrl;
use crate::api_keys::{self, Scope};
use crate::auth::Role;
use crate::ogc::edit::{self, Actor, Precondition};
use crate::ogc::features::{self, DEFAULT_LIMIT, ItemsQuery, MAX_LIMIT};
use crate::ogc::{self, Collection, Kind, collections, cql};

/// Outside `/api/openapi.json`: OGC API – Features describes itself at `/ogc/api`.
pub fn router() -> OpenApiRouter<AppState> {
    plain_routes!(OpenApiRouter::new(),
        "/ogc" => get(landing),
        "/ogc/" => get(landing),
        "/ogc/conformance" => get(conformance),
        "/ogc/api" => get(api),
        "/ogc/collections" => get(list_collections),
        "/ogc/collections/{collection}" => get(get_collection),
        "/ogc/collections/{collection}/queryables" => get(queryables),
        "/ogc/collections/{collection}/items" => get(get_items).post(create_item).options(items_options),
        "/ogc/collections/{collection}/items/{id}" =>
            get(get_item).put(replace_item).patch(patch_item).delete(delete_item).options(item_options),
    )
}

/// Part 4 §7 (discovery): QGIS ≥ 3.32 asks `OPTIONS` before it offers editing and reads
/// `Allow`; a read-only collection (`reports`) advertises no write method.
async fn items_options(Path(id): Path<String>) -> ApiResult<Response> {
    let coll = collection(&id)?;
    Ok(allow(if coll.editable() { "GET, HEAD, POST, OPTIONS" } else { "GET, HEAD, OPTIONS" }))
}

async fn item_options(Path((id, _fid)): Path<(String, String)>) -> ApiResult<Response> {
    let coll = collection(&id)?;
    Ok(allow(if coll.editable() { "GET, HEAD, PUT, PATCH, DELETE, OPTIONS" } else { "GET, HEAD, OPTIONS" }))
}

fn allow(methods: &'static str) -> Response {
    (StatusCode::NO_CONTENT, [(header::ALLOW, HeaderValue::from_static(methods))]).into_response()
}

impl From<ogc::Error> for ApiError {
    fn from(err: ogc::Error) -> Self {
        match err {
            ogc::Error::BadRequest(m) => Self::BadRequest(m),
            ogc::Error::NotFound(m) => Self::NotFound(m),
            ogc::Error::Forbidden(m) => Self::Forbidden(m),
            ogc::Error::Conflict(m) => Self::Conflict(m),
            ogc::Error::PreconditionFailed(m) => Self::PreconditionFailed(m),
            ogc::Error::PreconditionRequired(m) => Self::PreconditionRequired(m),
            ogc::Error::Unprocessable { message, details } => Self::Unprocessable { message, details },
            ogc::Error::Database(e) => Self::Database(e),
        }
    }
}

pub const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    // The draft's classes for feature resources and for If-Match/ETag locking (both implemented:
    // every write needs If-Match, checked in the same statement as the write).
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/optimistic-locking-etags",
];

const GEOJSON: &str = "application/geo+json";
const JSON: &str = "application/json";
const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";
const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

/// `f=json` (or none) is the only format; anything else is a 400 naming what exists.
fn check_format(f: Option<&str>) -> ApiResult<()> {
    match f {
        None | Some("json" | "geojson") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!("format `{other}` is not offered; use f=json"))),
    }
}

/// Part 2 §6.3: every features answer names its CRS in `Content-Crs`, so a client that asked
/// for none (or for CRS84) knows the axis order without guessing from the document.
fn content_crs() -> (HeaderName, HeaderValue) {
    (HeaderName::from_static("content-crs"), HeaderValue::from_static("<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"))
}

fn json_response(body: &Value, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body.to_string()).into_response()
}

/// Features go out as `application/geo+json` unless the client asked only for plain JSON.
fn feature_type(headers: &HeaderMap) -> &'static str {
    let accept = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).unwrap_or("");
    if accept.contains("application/json") && !accept.contains("geo+json") { JSON } else { GEOJSON }
}

fn params(raw: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
}

fn simple_format(raw: Option<&str>) -> ApiResult<()> {
    let ps = params(raw)?;
    check_format(ps.iter().find(|(k, _)| k == "f").map(|(_, v)| v.as_str()))
}

fn collection(id: &str) -> ApiResult<&'static Collection> {
    collections::find(id)
        .ok_or_else(|| ApiError::not_found(format!("collection `{id}` (collections: grids, buildings, stations)")))
}

/// Part 1 §7.2: the landing page.
async fn landing(BaseUrl(b): BaseUrl, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    simple_format(raw.as_deref())?;
    Ok(json_response(
        &json!({
            "title": "gridmap — Yiyuan county grids, buildings and warm-\"new\" stations",
            "description": "OGC API – Features (Parts 1, 3 and 4) for the urban grid governance of Yiyuan county.",
            "links": [
                {"href": format!("{b}/ogc"), "rel": "self", "type": JSON, "title": "This document"},
                {"href": format!("{b}/ogc/api"), "rel": "service-desc", "type": OPENAPI, "title": "The API definition"},
                {"href": format!("{b}/ogc/conformance"), "rel": "conformance", "type": JSON, "title": "Conformance classes"},
                {"href": format!("{b}/ogc/collections"), "rel": "data", "type": JSON, "title": "Collections"},
            ]
        }),
        JSON,
    ))
}

/// Part 1 §7.4: conformance classes — only what is implemented.
async fn conformance(RawQuery(raw): RawQuery) -> ApiResult<Response> {
    simple_format(raw.as_deref())?;
    Ok(json_response(&json!({ "conformsTo": CONFORMANCE }), JSON))
}

async fn collection_json(state: &AppState, coll: &Collection, b: &str) -> ApiResult<Value> {
    let extent = features::extent(&state.pool, coll).await?.unwrap_or(crate::geo_input::COUNTY_BBOX);
    let href = format!("{b}/ogc/collections/{}", coll.id);
    Ok(json!({
        "id": coll.id,
        "title": coll.title,
        "description": coll.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": {"spatial": {"bbox": [extent], "crs": CRS84}},
        "links": [
            {"href": href, "rel": "self", "type": JSON, "title": coll.title},
            {"href": format!("{href}/items"), "rel": "items", "type": GEOJSON, "title": "Features"},
            {"href": format!("{href}/queryables"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "type": "application/schema+json", "title": "Queryables"},
        ]
    }))
}

/// Part 1 §7.13: the collections.
async fn list_collections(
    State(state): State<AppState>,
    BaseUrl(b): BaseUrl,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    simple_format(raw.as_deref())?;
    let mut list = Vec::new();
    for coll in collections::ALL {
        list.push(collection_json(&state, coll, &b).await?);
    }
    Ok(json_response(
        &json!({
            "links": [{"href": format!("{b}/ogc/collections"), "rel": "self", "type": JSON, "title": "Collections"}],
            "collections": list,
        }),
        JSON,
    ))
}

/// Part 1 §7.14: one collection.
async fn get_collection(
    State(state): State<AppState>,
    BaseUrl(b): BaseUrl,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    simple_format(raw.as_deref())?;
    let coll = collection(&id)?;
    Ok(json_response(&collection_json(&state, coll, &b).await?, JSON))
}

/// Part 3 §6: the queryables of a collection (JSON Schema).
async fn queryables(BaseUrl(b): BaseUrl, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    simple_format(raw.as_deref())?;
    let coll = collection(&id)?;
    let url = format!("{b}/ogc/collections/{}/queryables", coll.id);
    Ok(json_response(&coll.queryables(&url), "application/schema+json"))
}

fn parse_items_query(coll: &Collection, pairs: &[(String, String)]) -> ApiResult<ItemsQuery> {
    let mut q = ItemsQuery { limit: DEFAULT_LIMIT, ..ItemsQuery::default() };
    let (mut filter, mut lang) = (None, None);
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                let n: i64 = value.parse().map_err(|_| ApiError::field("limit", "must be an integer from 1"))?;
                if n < 1 {
                    return Err(ApiError::field("limit", "must be an integer from 1"));
                }
                q.limit = n.min(MAX_LIMIT);
            }
            "offset" => {
                q.offset = super::paging::parse_offset(value)?;
            }
            "bbox" => {
                let nums: Vec<f64> = value
                    .split(',')
                    .map(|s| s.trim().parse::<f64>().ok().filter(|f| f.is_finite()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| ApiError::field("bbox", "must be 4 (or 6) comma-separated numbers"))?;
                let b = match nums.as_slice() {
                    [x0, y0, x1, y1] | [x0, y0, _, x1, y1, _] => [*x0, *y0, *x1, *y1],
                    _ => return Err(ApiError::field("bbox", "must be 4 (or 6) comma-separated numbers")),
                };
                if b[0] > b[2] || b[1] > b[3] {
                    return Err(ApiError::field(
                        "bbox",
                        "must be minx,miny,maxx,maxy (this server does not wrap the antimeridian)",
                    ));
                }
                q.bbox = Some(b);
            }
            "bbox-crs" | "filter-crs" | "crs" => {
                if value != CRS84 {
                    return Err(ApiError::field(key.clone(), format!("only {CRS84} is supported")));
                }
            }
            "properties" => {
                let list = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|name| {
                        coll.property(name).ok_or_else(|| {
                            ApiError::field(
                                "properties",
                                format!("unknown property `{name}`; known: {}", coll.property_names()),
                            )
                        })
                    })
                    .collect::<ApiResult<Vec<_>>>()?;
                q.properties = Some(list);
            }
            "filter" => filter = Some(value.clone()),
            "filter-lang" => lang = Some(value.clone()),
            "f" => check_format(Some(value))?,
            "datetime" => q.datetime = Some(features::parse_datetime(value)?),
            name => match coll.property(name) {
                Some(p) => q.equals.push((p, value.clone())),
                None => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter `{name}`; use limit, offset, bbox, properties, filter, filter-lang or a property: {}",
                        coll.property_names()
                    )));
                }
            },
        }
    }
    if let Some(filter) = filter {
        q.filter = Some(cql::parse(&filter, cql::Lang::from_param(lang.as_deref())?)?);
    } else if lang.is_some() {
        cql::Lang::from_param(lang.as_deref())?;
    }
    Ok(q)
}

fn page_link(b: &str, coll: &Collection, pairs: &[(String, String)], offset: i64, rel: &str) -> Value {
    let mut kept: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "offset").cloned().collect();
    kept.push(("offset".into(), offset.to_string()));
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    json!({"href": format!("{b}/ogc/collections/{}/items?{query}", coll.id), "rel": rel, "type": GEOJSON})
}

/// Part 1 §7.15, Part 3 §8: a page of features.
async fn get_items(
    State(state): State<AppState>,
    headers: HeaderMap,
    BaseUrl(b): BaseUrl,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let coll = collection(&id)?;
    let pairs = params(raw.as_deref())?;
    let q = parse_items_query(coll, &pairs)?;
    let page = features::items(&state.pool, coll, &q).await?;
    let returned = page.features.len() as i64;
    let mut links = vec![
        json!({"href": format!("{b}/ogc/collections/{}/items{}", coll.id, raw.as_deref().map(|r| format!("?{r}")).unwrap_or_default()), "rel": "self", "type": GEOJSON}),
        json!({"href": format!("{b}/ogc/collections/{}", coll.id), "rel": "collection", "type": JSON}),
    ];
    if let Some(next) = super::paging::next_offset(q.offset, returned, page.number_matched) {
        links.push(page_link(&b, coll, &pairs, next, "next"));
    }
    if q.offset > 0 {
        links.push(page_link(&b, coll, &pairs, (q.offset - q.limit).max(0), "prev"));
    }
    let head = json!({
        "type": "FeatureCollection",
        "numberMatched": page.number_matched,
        "numberReturned": returned,
        "timeStamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "links": links,
    })
    .to_string();
    // Splice the features (already GeoJSON text from PostgreSQL) into the collection object.
    let mut body = String::with_capacity(head.len() + page.features.iter().map(|f| f.len() + 1).sum::<usize>() + 16);
    body.push_str(&head[..head.len() - 1]);
    body.push_str(",\"features\":[");
    for (i, f) in page.features.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(f);
    }
    body.push_str("]}");
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(feature_type(&headers))), content_crs()], body)
        .into_response())
}

/// Part 1 §7.16: one feature, with its strong ETag.
async fn get_item(
    State(state): State<AppState>,
    headers: HeaderMap,
    BaseUrl(b): BaseUrl,
    Path((id, fid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    simple_format(raw.as_deref())?;
    let coll = collection(&id)?;
    let fid = feature_id(&fid)?;
    let (feature, etag) = features::one(&state.pool, coll, fid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{} {fid}", coll.id)))?;
    if etag::none_match(&headers, |tag| tag == etag.to_string()) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag::strong(etag))]).into_response());
    }
    // Part 1 §7.16.2 (requirement /req/core/f-links): the feature links to itself and its collection.
    let mut feature: Value =
        serde_json::from_str(&feature).map_err(|e| anyhow::anyhow!("feature JSON from PostgreSQL: {e}"))?;
    feature["links"] = json!([
        {"href": format!("{b}/ogc/collections/{}/items/{fid}", coll.id), "rel": "self", "type": GEOJSON},
        {"href": format!("{b}/ogc/collections/{}", coll.id), "rel": "collection", "type": JSON},
    ]);
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(feature_type(&headers))),
            (header::ETAG, etag::strong(etag)),
            content_crs(),
        ],
        feature.to_string(),
    )
        .into_response())
}

fn feature_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::not_found(format!("feature `{raw}` (ids are integers)")))
}

/// The feature version a write names in `If-Match` (http/etag.rs: missing → 428, none → 412).
pub(crate) fn if_match(headers: &HeaderMap) -> ApiResult<i64> {
    etag::required_version(headers, "send If-Match with the feature's ETag (GET it first)")
}

/// Who may edit what: planners and admins edit grids; admins edit buildings and stations, and a
/// station's host its own station's card (`host_edit`); nobody edits reports here.
fn editor<'a>(auth: &'a Auth, coll: &Collection, reason: Option<&'a str>) -> ApiResult<Actor<'a>> {
    let principal = match coll.kind {
        Kind::Grids => auth.require(&[Role::Planner, Role::Admin])?,
        Kind::Buildings => auth.require(&[Role::Admin])?,
        Kind::Stations => auth.require(&[Role::Admin, Role::StationHost])?,
        // Reports move through their own workflow (`/api/reports/{id}/transitions`).
        Kind::Reports => {
            return Err(ApiError::MethodNotAllowed);
        }
    };
    Ok(Actor { name: &principal.name, reason, county_id: principal.county_id })
}

/// What a station's host may change on their station's card, through a merge patch (PATCH).
pub const HOST_EDITABLE: [&str; 3] = ["opening_hours", "services", "notice"];

/// A station host's write (issue 23 §3): a PATCH of their own station touching only
/// [`HOST_EDITABLE`] properties; anything else is 403, naming what they may change. Any other
/// caller passes unchecked (their role was checked by `editor`).
async fn host_edit(state: &AppState, auth: &Auth, fid: Option<i64>, body: Option<&Value>) -> ApiResult<()> {
    if auth.0.role != Role::StationHost {
        return Ok(());
    }
    let refuse = |why: String| -> ApiResult<()> { Err(ApiError::Forbidden(why)) };
    let (Some(fid), Some(body)) = (fid, body) else {
        return refuse(
            "a station host edits their station's card with PATCH; creating and deleting stations is for admins".into(),
        );
    };
    let own = crate::station_visits::hosted_station(&state.pool, &auth.0).await?;
    if own != Some(fid) {
        return refuse(format!("a station host edits their own station only (station {fid} is not theirs)"));
    }
    let Some(object) = body.as_object() else { return Ok(()) }; // the edit's own 400
    for (key, value) in object {
        match key.as_str() {
            "type" | "id" | "links" => {}
            "properties" => {
                for name in value.as_object().map(|p| p.keys().collect::<Vec<_>>()).unwrap_or_default() {
                    if !HOST_EDITABLE.contains(&name.as_str()) {
                        return refuse(format!(
                            "a station host may change {} only, not `{name}`",
                            HOST_EDITABLE.join(", ")
                        ));
                    }
                }
            }
            other => {
                return refuse(format!("a station host may change {} only, not `{other}`", HOST_EDITABLE.join(", ")));
            }
        }
    }
    Ok(())
}

/// The role check of an OGC write as an extractor, so that it runs before the body is read: a
/// caller without the role gets 401/403 whatever they send, never a 400 about the body. The
/// caller is a login, or a desktop GIS's static API key with scope `ogc_edit` (`Authorization:
/// Bearer gmk_…`, as QGIS sends it from an authentication configuration) acting for its account.
struct MayEdit {
    auth: Auth,
    /// The API key's id when the write comes with one.
    desktop_key: Option<i64>,
}

impl FromRequestParts<AppState> for MayEdit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> ApiResult<Self> {
        // `/ogc/collections/{id}/items[/{fid}]`
        let coll = collection(parts.uri.path().split('/').nth(3).unwrap_or_default())?;
        let (auth, desktop_key) = match bearer_token(&parts.headers).filter(|t| api_keys::is_api_key(t)) {
            Some(key) => {
                let (key_id, principal) =
                    api_keys::authenticate_key(&state.pool, &key, Scope::OgcEdit).await?.ok_or_else(|| {
                        ApiError::Unauthorized("the API key is unknown, revoked, or lacks the ogc_edit scope".into())
                    })?;
                (Auth(principal), Some(key_id))
            }
            None => (Auth::from_request_parts(parts, state).await?, None),
        };
        editor(&auth, coll, None)?;
        Ok(Self { auth, desktop_key })
    }
}

/// What a replace or update is checked against: `If-Match` when sent (a desktop key too); else
/// a desktop key's rule (`Precondition::DesktopKey`); else 428.
fn precondition(headers: &HeaderMap, desktop_key: Option<i64>) -> ApiResult<Precondition> {
    match desktop_key {
        Some(key) if !headers.contains_key(header::IF_MATCH) => Ok(Precondition::DesktopKey(key)),
        _ => Ok(Precondition::IfMatch(if_match(headers)?)),
    }
}

/// `?reason=…` (stored with the grid version) and `?clip=neighbours`.
struct WriteParams {
    reason: Option<String>,
    clip: bool,
}

fn write_params(raw: Option<&str>) -> ApiResult<WriteParams> {
    let mut p = WriteParams { reason: None, clip: false };
    for (k, v) in params(raw)? {
        match k.as_str() {
            "reason" => p.reason = Some(v),
            "clip" if v == "neighbours" => p.clip = true,
            "clip" => return Err(ApiError::field("clip", "the only value is `neighbours`")),
            "f" => check_format(Some(&v))?,
            other => {
                return Err(ApiError::bad_request(format!("unknown query parameter `{other}` (use reason, clip)")));
            }
        }
    }
    Ok(p)
}

fn written_response(status: StatusCode, b: &str, coll: &Collection, w: &edit::Written) -> Response {
    let mut feature: Value = serde_json::from_str(&w.feature).unwrap_or(Value::Null);
    if !w.warnings.is_empty() {
        feature["warnings"] = json!(w.warnings);
    }
    let location = format!("{b}/ogc/collections/{}/items/{}", coll.id, w.id);
    let mut response = json_response(&feature, GEOJSON);
    *response.status_mut() = status;
    response.headers_mut().insert(header::ETAG, etag::strong(w.etag));
    if let Ok(l) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, l);
    }
    response
}

/// Part 4: create a feature → 201 + Location + ETag.
async fn create_item(
    State(state): State<AppState>,
    MayEdit { auth, .. }: MayEdit,
    BaseUrl(b): BaseUrl,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let coll = collection(&id)?;
    let p = write_params(raw.as_deref())?;
    let actor = editor(&auth, coll, p.reason.as_deref())?;
    host_edit(&state, &auth, None, None).await?;
    let written = edit::create(&state.pool, coll, &body, actor, p.clip).await?;
    state.changes().map_changed(&written.changed).await;
    Ok(written_response(StatusCode::CREATED, &b, coll, &written))
}

#[allow(clippy::too_many_arguments)] // PUT and PATCH share it; each argument is one extractor
async fn update_item(
    state: AppState,
    MayEdit { auth, desktop_key }: MayEdit,
    headers: HeaderMap,
    b: String,
    id: String,
    fid: String,
    raw: Option<String>,
    body: Value,
    patch: bool,
) -> ApiResult<Response> {
    let coll = collection(&id)?;
    let fid = feature_id(&fid)?;
    let p = write_params(raw.as_deref())?;
    let actor = editor(&auth, coll, p.reason.as_deref())?;
    host_edit(&state, &auth, Some(fid), patch.then_some(&body)).await?;
    let precondition = precondition(&headers, desktop_key)?;
    let written = edit::replace(&state.pool, coll, fid, precondition, &body, patch, actor, p.clip).await?;
    state.changes().map_changed(&written.changed).await;
    Ok(written_response(StatusCode::OK, &b, coll, &written))
}

/// Part 4: replace a feature (If-Match required).
async fn replace_item(
    State(state): State<AppState>,
    may: MayEdit,
    headers: HeaderMap,
    BaseUrl(b): BaseUrl,
    Path((id, fid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    update_item(state, may, headers, b, id, fid, raw, body, false).await
}

/// Part 4: update a feature with a JSON merge patch (If-Match required).
async fn patch_item(
    State(state): State<AppState>,
    may: MayEdit,
    headers: HeaderMap,
    BaseUrl(b): BaseUrl,
    Path((id, fid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    update_item(state, may, headers, b, id, fid, raw, body, true).await
}

/// Part 4: delete a feature (If-Match required, from a desktop key too) → 204.
async fn delete_item(
    State(state): State<AppState>,
    MayEdit { auth, .. }: MayEdit,
    headers: HeaderMap,
    Path((id, fid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let coll = collection(&id)?;
    let fid = feature_id(&fid)?;
    let p = write_params(raw.as_deref())?;
    let actor = editor(&auth, coll, p.reason.as_deref())?;
    host_edit(&state, &auth, None, None).await?;
    let etag = if_match(&headers)?;
    let changed = edit::delete(&state.pool, coll, fid, etag, actor).await?;
    state.changes().map_changed(&changed).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Part 1 §7.3 / OpenAPI 3.0: the API definition, built from the collection allow-lists.
async fn api(BaseUrl(b): BaseUrl, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    simple_format(raw.as_deref())?;
    Ok(json_response(&openapi(&b), OPENAPI))
}

fn openapi(b: &str) -> Value {
    let json_ok = |d: &str| json!({"description": d, "content": {JSON: {"schema": {"type": "object"}}}});
    let geo_ok = |d: &str| json!({"description": d, "content": {GEOJSON: {"schema": {"type": "object"}}}});
    let err = json!({"description": "error", "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut paths = serde_json::Map::new();
    // Paths are relative to the server URL, which is the landing page: GDAL looks an items path
    // up as `/collections/{id}/items` (to learn its query parameters, hence which filters it
    // may send to the server), and OpenAPI clients join `servers[0].url` and the path.
    paths.insert("/".into(), json!({"get": {"summary": "Landing page", "operationId": "getLandingPage", "responses": {"200": json_ok("links to the API")}}}));
    paths.insert("/conformance".into(), json!({"get": {"summary": "Conformance classes", "operationId": "getConformance", "responses": {"200": json_ok("conformsTo")}}}));
    paths.insert("/api".into(), json!({"get": {"summary": "This API definition", "operationId": "getApi", "responses": {"200": {"description": "OpenAPI 3.0", "content": {OPENAPI: {}}}}}}));
    paths.insert("/collections".into(), json!({"get": {"summary": "Collections", "operationId": "getCollections", "responses": {"200": json_ok("collections")}}}));
    for coll in collections::ALL {
        let c = coll.id;
        let mut item_params = vec![
            json!({"$ref": "#/components/parameters/limit"}),
            json!({"$ref": "#/components/parameters/offset"}),
            json!({"$ref": "#/components/parameters/bbox"}),
            json!({"$ref": "#/components/parameters/filter"}),
            json!({"$ref": "#/components/parameters/filter-lang"}),
            json!({"name": "datetime", "in": "query", "required": false, "schema": {"type": "string"},
                   "description": format!("RFC 3339 instant, date or interval (`..` open) on {}", coll.temporal_column())}),
            json!({"name": "properties", "in": "query", "required": false, "style": "form", "explode": false,
                   "schema": {"type": "array", "items": {"type": "string", "enum": coll.properties.iter().map(|p| p.name).collect::<Vec<_>>()}}}),
        ];
        for p in coll.properties.iter().filter(|p| p.ty != ogc::PropType::TextArray) {
            item_params.push(json!({"name": p.name, "in": "query", "required": false, "description": format!("{} equals", p.title), "schema": p.ty.schema()}));
        }
        let write_security = json!([{"bearer": []}]);
        let if_match = json!({"$ref": "#/components/parameters/If-Match"});
        paths.insert(format!("/collections/{c}"), json!({"get": {"summary": coll.title, "operationId": format!("describe_{c}"), "responses": {"200": json_ok("the collection"), "404": err}}}));
        paths.insert(format!("/collections/{c}/queryables"), json!({"get": {"summary": format!("Queryables of {c}"), "operationId": format!("queryables_{c}"), "responses": {"200": {"description": "JSON Schema", "content": {"application/schema+json": {}}}}}}));
        let mut items = json!({
            "get": {"summary": format!("Features of {c}"), "operationId": format!("getFeatures_{c}"), "parameters": item_params,
                    "responses": {"200": geo_ok("a page of features"), "400": err}},
            "post": {"summary": format!("Create a feature in {c}"), "operationId": format!("createFeature_{c}"), "security": write_security,
                     "requestBody": {"required": true, "content": {GEOJSON: {"schema": {"type": "object"}}}},
                     "responses": {"201": {"description": "created; Location and ETag headers"}, "400": err, "401": err, "403": err, "409": err, "422": err}},
        });
        let mut item = json!({
            "parameters": [{"name": "featureId", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "get": {"summary": format!("One feature of {c}"), "operationId": format!("getFeature_{c}"), "responses": {"200": geo_ok("the feature, with an ETag"), "404": err}},
            "put": {"summary": "Replace", "operationId": format!("replaceFeature_{c}"), "security": write_security, "parameters": [if_match],
                    "requestBody": {"required": true, "content": {GEOJSON: {"schema": {"type": "object"}}}},
                    "responses": {"200": geo_ok("replaced"), "409": err, "412": err, "428": err, "422": err}},
            "patch": {"summary": "Update (JSON merge patch)", "operationId": format!("updateFeature_{c}"), "security": write_security, "parameters": [if_match],
                      "requestBody": {"required": true, "content": {"application/merge-patch+json": {"schema": {"type": "object"}}}},
                      "responses": {"200": geo_ok("updated"), "409": err, "412": err, "428": err, "422": err}},
            "delete": {"summary": "Delete", "operationId": format!("deleteFeature_{c}"), "security": write_security, "parameters": [if_match],
                       "responses": {"204": {"description": "deleted"}, "412": err, "428": err}},
        });
        if !coll.editable() {
            // Read-only: advertise no write operations.
            if let Some(o) = items.as_object_mut() {
                o.remove("post");
            }
            if let Some(o) = item.as_object_mut() {
                for method in ["put", "patch", "delete"] {
                    o.remove(method);
                }
            }
        }
        paths.insert(format!("/collections/{c}/items"), items);
        paths.insert(format!("/collections/{c}/items/{{featureId}}"), item);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "gridmap OGC API – Features", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Grids, buildings, warm-\"new\" stations and (read-only) reports of Yiyuan county. limit defaults to 10; values above 1000 are clamped to 1000."},
        "servers": [{"url": format!("{b}/ogc"), "description": "the landing page; every path is relative to it"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "POST /api/auth/login"}},
            "parameters": {
                "limit": {"name": "limit", "in": "query", "required": false, "style": "form", "explode": false,
                          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
                "offset": {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": super::paging::MAX_OFFSET, "default": 0}},
                "bbox": {"name": "bbox", "in": "query", "required": false, "style": "form", "explode": false,
                         "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
                "filter": {"name": "filter", "in": "query", "required": false, "schema": {"type": "string", "maxLength": cql::MAX_FILTER_BYTES}},
                "filter-lang": {"name": "filter-lang", "in": "query", "required": false, "schema": {"type": "string", "enum": ["cql2-text", "cql2-json", "cql-text"], "default": "cql2-text"},
                                "description": "cql-text is the draft's name that GDAL up to 3.7 sends (and looks for here before it sends any filter); it is read as cql2-text"},
                "If-Match": {"name": "If-Match", "in": "header", "required": false, "description": "the feature's ETag; stale → 412; missing → 428, except from a desktop GIS API key (scope ogc_edit) writing a grid: then the body's properties.version is checked (409 when stale) or, without one, the write is recorded as unchecked in the grid's history", "schema": {"type": "string"}},
            },
            "schemas": {"Error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}},
        },
    })
}
