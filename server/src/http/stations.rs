//! `/api/stations…`: the 48 warm-"new" stations (暖"新"驿站) for residents and riders — the list
//! with search, one station, and the stations nearest to a point (a KNN search on the spatial index).
//!
//! Public fields only. A station's `phone` is the station's own published service line (the
//! number on its door sign), not a person's; it is the only phone number this module returns.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;

use super::AppState;
use super::error::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query, lon_lat};

/// Most stations one `nearest` request may ask for.
pub const MAX_NEAREST: i64 = 50;
/// Stations returned by `nearest` when `limit` is absent.
const DEFAULT_NEAREST: i64 = 5;
/// Longest search text; the list has 48 short names, so anything longer is a mistake.
const MAX_QUERY_CHARS: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/stations", get(list_stations))
        .route("/api/stations/nearest", get(nearest_stations))
        .route("/api/stations/{id}", get(get_station))
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
    s.opening_hours, s.services, s.host_org, s.phone";

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
    station.map(Json).ok_or_else(|| ApiError::not_found(format!("station {id}")))
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
    Ok(Json(NearestStations { from: LonLat { lon, lat }, stations }))
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
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }
}
