//! `/api/stations…`: the 48 warm-"new" stations (暖"新"驿站) for residents and riders — the list
//! with search, one station, and the stations nearest to a point (a KNN search on the spatial index).
//!
//! Public fields only. A station's `phone` is the station's own published service line (the
//! number on its door sign), not a person's; it is the only phone number this module returns.
//!
//! Visits (issue 23 §3, `crate::station_visits`): a rider's check-in (`POST …/{id}/visits`), the
//! counts for the station's host and the county (`GET …/{id}/visits`, `GET /api/stations/visits`),
//! and the printable QR code of the check-in link (`GET …/{id}/qr.svg`). The public sees a
//! busy-ness hint (`busyness`) on every station, never a count and never who.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query, lon_lat};
use super::principal::{Auth, Planner, RiderLogin};
use super::urls::BaseUrl;
use crate::station_visits::{self, Busyness, CheckIn, CountyCounts, Dashboard, Visit};

/// Most stations one `nearest` request may ask for.
pub const MAX_NEAREST: i64 = 50;
/// Stations returned by `nearest` when `limit` is absent.
const DEFAULT_NEAREST: i64 = 5;
/// Longest search text; the list has 48 short names, so anything longer is a mistake.
const MAX_QUERY_CHARS: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_stations))
        .routes(routes!(nearest_stations))
        .routes(routes!(county_visits))
        .routes(routes!(get_station))
        .routes(routes!(station_visits, check_in))
        .routes(routes!(station_qr))
}

impl From<station_visits::Error> for ApiError {
    fn from(err: station_visits::Error) -> Self {
        use station_visits::Error as E;
        match err {
            E::Invalid { field, message } => Self::field(field, message),
            E::NotFound(m) => Self::NotFound(m),
            E::Forbidden(m) => Self::Forbidden(m),
            E::TooFar { .. } => {
                Self::Unprocessable { message: err.to_string(), details: err.details() }.with_reason("too_far")
            }
            E::Inaccurate { .. } => {
                Self::Unprocessable { message: err.to_string(), details: err.details() }.with_reason("inaccurate_fix")
            }
            E::Database(e) => Self::Database(e),
        }
    }
}

/// A station as the public sees it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Station {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub lon: f64,
    pub lat: f64,
    /// OSM `opening_hours` syntax (`24/7`, `Mo-Su 08:00-20:00`); the client decides "open now"
    /// in the county's time zone.
    pub opening_hours: String,
    /// Codes from the schema's allow-list (`rest`, `water`, `charging`, …).
    pub services: Vec<String>,
    pub host_org: String,
    /// The station's own published service line.
    pub phone: String,
    /// The host's notice on the card (a closure, a free-meal day …); empty when none.
    pub notice: String,
    /// How busy the station has been in the last 24 hours (清闲 / 一般 / 较忙): a hint, never a
    /// count and never who.
    #[sqlx(skip)]
    pub busyness: Busyness,
    #[serde(skip)]
    pub visits_last_24h: i64,
}

impl Station {
    fn with_hint(mut self) -> Self {
        self.busyness = Busyness::of(self.visits_last_24h);
        self
    }
}

/// A station with its distance from the asked point, in metres on the ellipsoid.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NearStation {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub station: Station,
    pub distance_m: f64,
}

/// The body of `GET /api/stations`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StationList {
    pub count: usize,
    /// By id.
    pub stations: Vec<Station>,
}

/// The body of `GET /api/stations/nearest`: the point asked about and the stations by distance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NearestStations {
    pub from: LonLat,
    /// Nearest first (ties by id).
    pub stations: Vec<NearStation>,
}

/// A WGS84 point.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LonLat {
    pub lon: f64,
    pub lat: f64,
}

const STATION_COLUMNS: &str = r"s.id, s.name, s.address, ST_X(s.geom) as lon, ST_Y(s.geom) as lat,
    s.opening_hours, s.services, s.host_org, s.phone, s.notice,
    (select count(*) from station_visit v where v.station_id = s.id and v.visited_at > now() - interval '24 hours') as visits_last_24h";

/// `GET /api/stations[?q=]`: every station, or those whose name, address, host or service code
/// contains `q` (case-insensitive, literal text — `%` and `_` are not wildcards).
#[utoipa::path(get, path = "/api/stations", tag = "stations",
    params(("q" = Option<String>, Query, description = "Search text, at most 100 characters; blank means every station")),
    responses((status = 200, description = "The matching stations, by id", body = StationList),
        (status = 400, description = "`q` is too long", body = ErrorBody)))]
pub(crate) async fn list_stations(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<StationList>> {
    let q = params.get("q").map(|q| q.trim()).filter(|q| !q.is_empty());
    if let Some(q) = q
        && q.chars().count() > MAX_QUERY_CHARS
    {
        return Err(ApiError::field("q", format!("at most {MAX_QUERY_CHARS} characters")));
    }
    let pattern = q.map(|q| format!("%{}%", escape_like(q)));
    let stations: Vec<Station> = sqlx::query_as(&format!(
        r"select {STATION_COLUMNS} from station s
           where $1::text is null
              or s.name ilike $1 or s.address ilike $1 or s.host_org ilike $1
              or exists (select 1 from unnest(s.services) sv where sv ilike $1)
           order by s.id"
    ))
    .bind(pattern)
    .fetch_all(&state.pool)
    .await?;
    let stations: Vec<Station> = stations.into_iter().map(Station::with_hint).collect();
    Ok(Json(StationList { count: stations.len(), stations }))
}

/// `GET /api/stations/{id}`.
#[utoipa::path(get, path = "/api/stations/{id}", tag = "stations",
    params(("id" = i64, Path, description = "Station id")),
    responses((status = 200, description = "The station", body = Station),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody)))]
pub(crate) async fn get_station(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Station>> {
    let id: i64 = id.parse().map_err(|_| ApiError::field("id", "must be an integer station id"))?;
    let station: Option<Station> = sqlx::query_as(&format!("select {STATION_COLUMNS} from station s where s.id = $1"))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    station.map(|s| Json(s.with_hint())).ok_or_else(|| ApiError::not_found(format!("station {id}")))
}

/// `GET /api/stations/nearest?lon=&lat=[&limit=]`: the nearest stations in order, with distance.
#[utoipa::path(get, path = "/api/stations/nearest", tag = "stations",
    params(("lon" = f64, Query, description = "WGS84 longitude, -180..=180", minimum = -180.0, maximum = 180.0),
        ("lat" = f64, Query, description = "WGS84 latitude, -90..=90", minimum = -90.0, maximum = 90.0),
        ("limit" = Option<i64>, Query, description = "How many stations, 1..=50 (default 5)", minimum = 1, maximum = 50)),
    responses((status = 200, description = "The point and the nearest stations with their distance in metres", body = NearestStations),
        (status = 400, description = "A missing or out-of-range `lon`, `lat` or `limit` (named in `field`)", body = ErrorBody)))]
pub(crate) async fn nearest_stations(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<NearestStations>> {
    let (lon, lat) = lon_lat(&params)?;
    let limit = match params.get("limit") {
        None => DEFAULT_NEAREST,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_NEAREST).contains(&n) => n,
            _ => return Err(ApiError::field("limit", format!("must be an integer from 1 to {MAX_NEAREST}"))),
        },
    };
    // The KNN operator walks the GiST index on the Web Mercator copy. Mercator is conformal, so
    // within a county its distances are true distances times one near-constant factor and the
    // order is right; a few extra candidates re-ranked on the ellipsoid settle near-ties exactly.
    let stations: Vec<NearStation> = sqlx::query_as(&format!(
        r"with p as (select ST_SetSRID(ST_MakePoint($1, $2), 4326) as g),
               candidates as (
                 select s.* from station s, p
                  order by s.geom_3857 <-> ST_Transform(p.g, 3857)
                  limit $3 + 8)
          select {STATION_COLUMNS}, ST_Distance(s.geom::geography, p.g::geography) as distance_m
            from candidates s, p
           order by distance_m, s.id
           limit $3"
    ))
    .bind(lon)
    .bind(lat)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    let stations = stations
        .into_iter()
        .map(|n| NearStation { station: n.station.with_hint(), distance_m: n.distance_m })
        .collect();
    Ok(Json(NearestStations { from: LonLat { lon, lat }, stations }))
}

fn station_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::field("id", "must be an integer station id"))
}

/// `POST /api/stations/{id}/visits`: a rider checks in from the phone's fix. 201 with the visit;
/// a second check-in at the same station within the hour is answered 200 with the first visit
/// (`repeat: true`) and counts nothing, so a resend from a flaky network is harmless.
#[utoipa::path(post, path = "/api/stations/{id}/visits", tag = "stations", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Station id")),
    request_body = CheckIn,
    responses((status = 201, description = "Counted: the new visit", body = Visit),
        (status = 200, description = "Already checked in here within the hour: the earlier visit, `repeat: true`", body = Visit),
        (status = 400, description = "A missing or out-of-range `lon`, `lat` or `accuracy_m` (named in `field`)", body = ErrorBody),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Riders only", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "Farther than 150 m (`reason: too_far`, `details.distance_m`) or a fix coarser than 100 m (`reason: inaccurate_fix`)", body = ErrorBody)))]
pub(crate) async fn check_in(
    State(state): State<AppState>,
    RiderLogin(me): RiderLogin,
    Path(id): Path<String>,
    Json(body): Json<CheckIn>,
) -> ApiResult<Response> {
    let id = station_id(&id)?;
    let visit = station_visits::check_in(&state.pool, id, me.account_id, &body).await?;
    let status = if visit.repeat { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(visit)).into_response())
}

/// `GET /api/stations/{id}/visits`: the station's dashboard — visits today, this month, per day
/// (31 days) and per month (12), open and answered suggestions, the card's recent edits. For
/// the station's host, planners and admins.
#[utoipa::path(get, path = "/api/stations/{id}/visits", tag = "stations", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Station id")),
    responses((status = 200, description = "The station's counts", body = Dashboard),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Not this station's host, a planner or an admin", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody)))]
pub(crate) async fn station_visits(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Dashboard>> {
    let id = station_id(&id)?;
    station_visits::may_see_counts(&state.pool, &me, id).await?;
    Ok(Json(station_visits::dashboard(&state.pool, id).await?))
}

/// `GET /api/stations/visits`: every station's counts and the county's totals (planners, admins).
#[utoipa::path(get, path = "/api/stations/visits", tag = "stations", security(("bearer" = [])),
    responses((status = 200, description = "Counts per station and in total", body = CountyCounts),
        (status = 401, description = "Login required", body = ErrorBody),
        (status = 403, description = "Planners and admins only", body = ErrorBody)))]
pub(crate) async fn county_visits(State(state): State<AppState>, _: Planner) -> ApiResult<Json<CountyCounts>> {
    Ok(Json(station_visits::county_counts(&state.pool).await?))
}

/// `GET /api/stations/{id}/qr.svg`: the QR code to print at the station; it opens the web map's
/// check-in page for this station (`/#checkin/{id}`, absolute: `GRIDMAP_PUBLIC_URL` when set).
#[utoipa::path(get, path = "/api/stations/{id}/qr.svg", tag = "stations",
    params(("id" = i64, Path, description = "Station id")),
    responses((status = 200, description = "An SVG image of the QR code", body = String, content_type = "image/svg+xml"),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody)))]
pub(crate) async fn station_qr(
    State(state): State<AppState>,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = station_id(&id)?;
    let exists: bool = sqlx::query_scalar("select exists (select 1 from station where id = $1)")
        .bind(id)
        .fetch_one(&state.pool)
        .await?;
    if !exists {
        return Err(ApiError::not_found(format!("station {id}")));
    }
    let link = checkin_link(&base, id);
    let code = qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| anyhow::anyhow!("QR code of {link}: {e}"))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).quiet_zone(true).build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "public, max-age=3600")], svg)
        .into_response())
}

/// The web map's check-in page of a station.
fn checkin_link(base: &str, id: i64) -> String {
    format!("{}/#checkin/{id}", base.trim_end_matches('/'))
}

/// Make user text literal inside an `ilike` pattern (default escape character `\`).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_link_opens_the_check_in_page() {
        assert_eq!(checkin_link("https://grid.example.cn/", 7), "https://grid.example.cn/#checkin/7");
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }
}
