//! `/api/points/*`: a reporter's points balance and ledger, and the monthly leaderboard.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::Datelike;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use super::principal::Auth;
use crate::reports::points::{self, Balance, LeaderboardRow};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/points/me", get(get_my_points)).route("/api/points/leaderboard", get(get_leaderboard))
}

/// The caller's balance and latest ledger rows (credits and reversals).
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
