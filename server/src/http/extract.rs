//! Extractors that turn a malformed request into the same JSON error shape as everything else.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts};

use super::error::{ApiError, ApiResult};

/// `axum::Json` with JSON errors.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with JSON errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with JSON errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Read `lon` and `lat` from a query string: present, finite, in WGS84 range; an error names the
/// field. The one reader of a point in a query (`/api/stations/nearest`, `/api/grids/at`).
pub(crate) fn lon_lat(params: &HashMap<String, String>) -> ApiResult<(f64, f64)> {
    let lon = coordinate(params, "lon", 180.0)?;
    let lat = coordinate(params, "lat", 90.0)?;
    Ok((lon, lat))
}

fn coordinate(params: &HashMap<String, String>, field: &str, bound: f64) -> ApiResult<f64> {
    let raw = params.get(field).ok_or_else(|| ApiError::field(field, "is required (WGS84 degrees)"))?;
    // Rust's float parser accepts "NaN" and "inf", which are no place on Earth.
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (-bound..=bound).contains(&v) => Ok(v),
        _ => Err(ApiError::field(field, format!("must be a number from -{bound} to {bound} (WGS84 degrees)"))),
    }
}

/// A JSON body as `T`, or a 400 naming the field at fault (`field`: its path, `body` for the
/// whole) — for handlers that take the body as a `serde_json::Value` so that who may write is
/// settled before its shape (a planner gets 403, not 400). One home for the rule: door-knocking
/// visits, micro-wish steps and the points market use it.
pub fn typed_body<T: serde::de::DeserializeOwned>(body: &serde_json::Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        ApiError::field(if path == "." { "body".to_string() } else { path }, e.inner().to_string())
    })
}

/// The `Idempotency-Key` header of a write that must happen once (report intake, a door-knocking
/// visit): a UUID the client made and sends again with every resend.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<uuid::Uuid, ApiError> {
    let value = headers.get("idempotency-key").ok_or_else(|| {
        ApiError::field("Idempotency-Key", "required: a UUID made by the client, reused on every resend")
    })?;
    value
        .to_str()
        .ok()
        .and_then(|s| uuid::Uuid::parse_str(s.trim()).ok())
        .ok_or_else(|| ApiError::field("Idempotency-Key", "must be a UUID"))
}

/// A `county` query parameter (a county's code, e.g. `370323`) → its id; `None` when the
/// parameter is absent, a 400 naming `county` when no county has the code.
pub async fn county_param(pool: &sqlx::PgPool, code: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(code) = code else { return Ok(None) };
    let id = crate::counties::id_by_code(pool, code).await?;
    id.map(Some).ok_or_else(|| ApiError::field("county", format!("no county has the code {code:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    #[test]
    fn lon_lat_names_the_bad_field() {
        assert!(lon_lat(&params(&[("lon", "118.1"), ("lat", "36.1")])).is_ok());
        for (case, field) in [
            (params(&[("lat", "36.1")]), "lon"),
            (params(&[("lon", "NaN"), ("lat", "36.1")]), "lon"),
            (params(&[("lon", "118.1"), ("lat", "inf")]), "lat"),
            (params(&[("lon", "118.1"), ("lat", "91")]), "lat"),
            (params(&[("lon", "-180.5"), ("lat", "1")]), "lon"),
        ] {
            match lon_lat(&case) {
                Err(ApiError::InvalidField { field: f, .. }) => assert_eq!(f, field, "{case:?}"),
                other => panic!("{case:?} gave {other:?}"),
            }
        }
    }
}
