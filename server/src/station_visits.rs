//! Station visits and the suggestion box of the warm-"new" stations (暖"新"驿站, issue 23 §3;
//! docs/field-work.md "## Stations"): a rider's check-in (within [`RADIUS_M`] of the station by
//! the phone's fix, measured by PostGIS on the ellipsoid; once per person, station and hour), the
//! counts a host and the county see, the busy-ness hint the public sees, and suggestions with
//! their answers. No HTTP here; `http::stations` and `http::suggestions` turn these results and
//! [`Error`]s into responses.
//!
//! Who checked in and who wrote a suggestion are private: only [`SuggestionView::author`] carries
//! a writer, and only an admin's list fills it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use crate::auth::{Principal, Role};

/// A check-in counts only this close to the station (metres, on the ellipsoid).
pub const RADIUS_M: f64 = 150.0;
/// A fix coarser than this cannot show the rider was within the radius (DOMAIN: worse than
/// 100 m is flagged; here it is refused).
pub const MAX_ACCURACY_M: f64 = 100.0;
/// Longest suggestion and answer, in characters.
pub const MAX_TEXT_CHARS: usize = 1000;
/// Visits in the last 24 hours from which a station reads "normal" (一般) and "busy" (较忙).
pub const NORMAL_FROM: i64 = 3;
pub const BUSY_FROM: i64 = 8;

/// What went wrong, phrased for the client; the HTTP edge maps each variant to a status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    /// The fix is farther from the station than [`RADIUS_M`] (422 with the distance).
    #[error("you are {distance_m:.0} m from the station; a check-in counts within {radius_m:.0} m")]
    TooFar { distance_m: f64, radius_m: f64 },
    /// The fix is too coarse to tell (422).
    #[error("the location is accurate to {accuracy_m:.0} m only; a check-in needs {max_m:.0} m or better")]
    Inaccurate { accuracy_m: f64, max_m: f64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Error {
    /// The body's `details` for a 422, so the client can show the numbers.
    pub fn details(&self) -> serde_json::Value {
        match self {
            Self::TooFar { distance_m, radius_m } => {
                json!({"distance_m": (distance_m * 10.0).round() / 10.0, "radius_m": radius_m})
            }
            Self::Inaccurate { accuracy_m, max_m } => json!({"accuracy_m": accuracy_m, "max_accuracy_m": max_m}),
            _ => serde_json::Value::Null,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The body of a check-in: the phone's WGS84 fix (browser geolocation gives WGS84).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// WGS84 longitude.
    pub lon: f64,
    /// WGS84 latitude.
    pub lat: f64,
    /// The fix's accuracy in metres, as the phone reports it; at most 100.
    pub accuracy_m: Option<f64>,
}

/// A counted visit as its rider sees it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Visit {
    pub id: i64,
    pub station_id: i64,
    pub visited_at: DateTime<Utc>,
    /// From the fix to the station, metres (the server's measure).
    pub distance_m: f64,
    /// When a new check-in of this rider at this station counts again (an hour after this one).
    pub counted_until: DateTime<Utc>,
    /// `true` when this check-in came within the hour of the one returned: nothing new was
    /// counted (the answer is the earlier visit).
    #[sqlx(default)]
    pub repeat: bool,
}

/// Record a rider's check-in: 404 for no station, 422 when too far or too coarse, and the
/// earlier visit (`repeat: true`) when the rider checked in there within the hour.
pub async fn check_in(pool: &PgPool, station_id: i64, account_id: i64, body: &CheckIn) -> Result<Visit> {
    if !(body.lon.is_finite() && (-180.0..=180.0).contains(&body.lon)) {
        return Err(Error::Invalid { field: "lon", message: "must be a number from -180 to 180 (WGS84)".into() });
    }
    if !(body.lat.is_finite() && (-90.0..=90.0).contains(&body.lat)) {
        return Err(Error::Invalid { field: "lat", message: "must be a number from -90 to 90 (WGS84)".into() });
    }
    if let Some(a) = body.accuracy_m {
        if !a.is_finite() || a < 0.0 {
            return Err(Error::Invalid { field: "accuracy_m", message: "must be a number of metres ≥ 0".into() });
        }
        if a > MAX_ACCURACY_M {
            return Err(Error::Inaccurate { accuracy_m: a, max_m: MAX_ACCURACY_M });
        }
    }
    let distance: Option<f64> = sqlx::query_scalar(
        r"select ST_Distance(s.geom::geography, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography)
            from station s where s.id = $1",
    )
    .bind(station_id)
    .bind(body.lon)
    .bind(body.lat)
    .fetch_optional(pool)
    .await?;
    let distance_m = distance.ok_or_else(|| Error::NotFound(format!("station {station_id}")))?;
    if distance_m > RADIUS_M {
        return Err(Error::TooFar { distance_m, radius_m: RADIUS_M });
    }
    let inserted = sqlx::query_as::<_, Visit>(
        r"insert into station_visit (station_id, account_id, visited_at, counted_until, distance_m, accuracy_m)
          values ($1, $2, now(), now() + interval '1 hour', $3, $4)
          returning id, station_id, visited_at, distance_m::float8 as distance_m, counted_until",
    )
    .bind(station_id)
    .bind(account_id)
    .bind(distance_m as f32)
    .bind(body.accuracy_m.map(|a| a as f32))
    .fetch_one(pool)
    .await;
    match inserted {
        Ok(visit) => Ok(visit),
        Err(err) if constraint(&err) == Some("station_visit_once_per_hour") => {
            // The earlier visit that still holds the hour (it exists: the constraint saw it).
            let mut earlier: Visit = sqlx::query_as(
                r"select id, station_id, visited_at, distance_m::float8 as distance_m, counted_until
                    from station_visit
                   where station_id = $1 and account_id = $2 and counted_until > now()
                   order by visited_at desc limit 1",
            )
            .bind(station_id)
            .bind(account_id)
            .fetch_one(pool)
            .await?;
            earlier.repeat = true;
            Ok(earlier)
        }
        Err(err) => Err(err.into()),
    }
}

fn constraint(err: &sqlx::Error) -> Option<&str> {
    err.as_database_error().and_then(|db| db.constraint())
}

/// The public hint on a station card: how busy it has been in the last 24 hours — never who,
/// and never the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Busyness {
    /// 清闲: fewer than [`NORMAL_FROM`] visits.
    #[default]
    Quiet,
    /// 一般.
    Normal,
    /// 较忙: [`BUSY_FROM`] or more.
    Busy,
}

impl Busyness {
    pub fn of(visits_last_24h: i64) -> Self {
        if visits_last_24h >= BUSY_FROM {
            Self::Busy
        } else if visits_last_24h >= NORMAL_FROM {
            Self::Normal
        } else {
            Self::Quiet
        }
    }
}

/// SQL (over a station alias `s`) for the visits of the last 24 hours: the input of [`Busyness::of`].
pub const VISITS_LAST_24H_SQL: &str =
    "(select count(*) from station_visit v where v.station_id = s.id and v.visited_at > now() - interval '24 hours')";

/// Visits on one day (the county's calendar, UTC+8).
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DayCount {
    pub day: NaiveDate,
    pub visits: i64,
}

/// Visits in one month (`2026-12`).
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MonthCount {
    pub month: String,
    pub visits: i64,
}

/// One version of the station's card (an edit), newest first.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StationEdit {
    pub op: String,
    pub opening_hours: String,
    pub services: Vec<String>,
    pub notice: String,
    /// The login that made the edit (hosts, the county and admins only).
    pub author: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A station's dashboard: visit counts per day and month, suggestions, recent edits.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    pub station_id: i64,
    pub name: String,
    pub today: i64,
    pub this_month: i64,
    pub total: i64,
    pub last_24h: i64,
    pub busyness: Busyness,
    /// The last 31 days, oldest first, days without visits included.
    pub by_day: Vec<DayCount>,
    /// The last 12 months, oldest first.
    pub by_month: Vec<MonthCount>,
    pub suggestions_open: i64,
    pub suggestions_answered: i64,
    /// The last 10 edits of the station's card.
    pub edits: Vec<StationEdit>,
}

/// The station a `station_host` account keeps (`None`: not a host, or no station linked).
pub async fn hosted_station(pool: &PgPool, who: &Principal) -> Result<Option<i64>> {
    if who.role != Role::StationHost {
        return Ok(None);
    }
    Ok(sqlx::query_scalar("select station_id from account where id = $1")
        .bind(who.account_id)
        .fetch_optional(pool)
        .await?
        .flatten())
}

/// Who sees a station's counts: its host, planners and admins (the county).
pub async fn may_see_counts(pool: &PgPool, who: &Principal, station_id: i64) -> Result<()> {
    match who.role {
        Role::Planner | Role::Admin => Ok(()),
        Role::StationHost => {
            if hosted_station(pool, who).await? == Some(station_id) {
                Ok(())
            } else {
                Err(Error::Forbidden("a station host sees the counts of their own station only".into()))
            }
        }
        _ => Err(Error::Forbidden("visit counts are for the station's host, planners and admins".into())),
    }
}

const COUNTY_DAY: &str = "(v.visited_at at time zone 'Asia/Shanghai')";

/// The dashboard of one station (404 when there is none).
pub async fn dashboard(pool: &PgPool, station_id: i64) -> Result<Dashboard> {
    let head: Option<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(&format!(
        r"with now8 as (select (now() at time zone 'Asia/Shanghai') as t)
          select s.name,
                 (select count(*) from station_visit v, now8 where v.station_id = s.id and {COUNTY_DAY}::date = now8.t::date),
                 (select count(*) from station_visit v, now8 where v.station_id = s.id
                     and date_trunc('month', {COUNTY_DAY}) = date_trunc('month', now8.t)),
                 (select count(*) from station_visit v where v.station_id = s.id),
                 {VISITS_LAST_24H_SQL},
                 (select count(*) from station_suggestion g where g.station_id = s.id and g.answer is null),
                 (select count(*) from station_suggestion g where g.station_id = s.id and g.answer is not null)
            from station s where s.id = $1"
    ))
    .bind(station_id)
    .fetch_optional(pool)
    .await?;
    let (name, today, this_month, total, last_24h, suggestions_open, suggestions_answered) =
        head.ok_or_else(|| Error::NotFound(format!("station {station_id}")))?;
    let by_day: Vec<DayCount> = sqlx::query_as(&format!(
        r"select d::date as day,
                 (select count(*) from station_visit v where v.station_id = $1 and {COUNTY_DAY}::date = d::date) as visits
            from generate_series((now() at time zone 'Asia/Shanghai')::date - 30,
                                 (now() at time zone 'Asia/Shanghai')::date, interval '1 day') d
           order by d"
    ))
    .bind(station_id)
    .fetch_all(pool)
    .await?;
    let by_month: Vec<MonthCount> = sqlx::query_as(&format!(
        r"select to_char(m, 'YYYY-MM') as month,
                 (select count(*) from station_visit v where v.station_id = $1
                     and date_trunc('month', {COUNTY_DAY}) = m) as visits
            from generate_series(date_trunc('month', now() at time zone 'Asia/Shanghai') - interval '11 months',
                                 date_trunc('month', now() at time zone 'Asia/Shanghai'), interval '1 month') m
           order by m"
    ))
    .bind(station_id)
    .fetch_all(pool)
    .await?;
    let edits: Vec<StationEdit> = sqlx::query_as(
        r"select op, opening_hours, services, notice, author, reason, created_at
            from station_version where station_id = $1 order by id desc limit 10",
    )
    .bind(station_id)
    .fetch_all(pool)
    .await?;
    Ok(Dashboard {
        station_id,
        name,
        today,
        this_month,
        total,
        last_24h,
        busyness: Busyness::of(last_24h),
        by_day,
        by_month,
        suggestions_open,
        suggestions_answered,
        edits,
    })
}

/// One station's line in the county's overview.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StationCounts {
    pub station_id: i64,
    pub name: String,
    pub today: i64,
    pub this_month: i64,
    pub total: i64,
    pub suggestions_open: i64,
}

/// The county's overview: every station's counts, and the totals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CountyCounts {
    pub stations: Vec<StationCounts>,
    pub today: i64,
    pub this_month: i64,
    pub total: i64,
    /// Open suggestions in the county-wide box (not a station's).
    pub county_box_open: i64,
}

pub async fn county_counts(pool: &PgPool) -> Result<CountyCounts> {
    let stations: Vec<StationCounts> = sqlx::query_as(&format!(
        r"with now8 as (select (now() at time zone 'Asia/Shanghai') as t)
          select s.id as station_id, s.name,
                 count(v.id) filter (where {COUNTY_DAY}::date = now8.t::date) as today,
                 count(v.id) filter (where date_trunc('month', {COUNTY_DAY}) = date_trunc('month', now8.t)) as this_month,
                 count(v.id) as total,
                 (select count(*) from station_suggestion g where g.station_id = s.id and g.answer is null) as suggestions_open
            from station s cross join now8 left join station_visit v on v.station_id = s.id
           group by s.id, s.name
           order by s.id"
    ))
    .fetch_all(pool)
    .await?;
    let county_box_open: i64 =
        sqlx::query_scalar("select count(*) from station_suggestion where station_id is null and answer is null")
            .fetch_one(pool)
            .await?;
    Ok(CountyCounts {
        today: stations.iter().map(|s| s.today).sum(),
        this_month: stations.iter().map(|s| s.this_month).sum(),
        total: stations.iter().map(|s| s.total).sum(),
        stations,
        county_box_open,
    })
}

/// A new suggestion: for a station's box, or the county's (`station_id` absent or null).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSuggestion {
    pub station_id: Option<i64>,
    /// 1 to 1000 characters.
    pub body: String,
}

/// An answer to a suggestion (a second answer replaces the first).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAnswer {
    /// 1 to 1000 characters.
    pub answer: String,
}

/// Who wrote a suggestion: admins only.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Author {
    pub account_id: i64,
    pub name: String,
    pub display_name: Option<String>,
}

/// A suggestion as its reader may see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuggestionView {
    pub id: i64,
    /// `null`: the county-wide box.
    pub station_id: Option<i64>,
    pub body: String,
    /// `open` or `answered`.
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    pub answer: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
    /// Filled for admins only; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
}

type SuggestionRow =
    (i64, Option<i64>, String, DateTime<Utc>, Option<String>, Option<DateTime<Utc>>, i64, String, Option<String>);

const SUGGESTION_SELECT: &str = r"select g.id, g.station_id, g.body, g.created_at, g.answer, g.answered_at,
       a.id, a.name, a.display_name
  from station_suggestion g join account a on a.id = g.account_id";

fn view(row: SuggestionRow, with_author: bool) -> SuggestionView {
    let (id, station_id, body, created_at, answer, answered_at, account_id, name, display_name) = row;
    SuggestionView {
        id,
        station_id,
        body,
        status: if answer.is_some() { "answered" } else { "open" },
        created_at,
        answer,
        answered_at,
        author: with_author.then_some(Author { account_id, name, display_name }),
    }
}

fn check_text(field: &'static str, text: &str) -> Result<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Invalid { field, message: "must not be blank".into() });
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::Invalid { field, message: format!("at most {MAX_TEXT_CHARS} characters") });
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(Error::Invalid { field, message: "no control characters".into() });
    }
    Ok(text.to_string())
}

/// Drop a suggestion into a box (any logged-in account; 422 for a station that does not exist).
pub async fn suggest(pool: &PgPool, who: &Principal, new: &NewSuggestion) -> Result<SuggestionView> {
    let body = check_text("body", &new.body)?;
    if let Some(id) = new.station_id {
        let exists: bool =
            sqlx::query_scalar("select exists (select 1 from station where id = $1)").bind(id).fetch_one(pool).await?;
        if !exists {
            return Err(Error::Invalid { field: "station_id", message: format!("no station {id}") });
        }
    }
    let id: i64 = sqlx::query_scalar(
        "insert into station_suggestion (station_id, account_id, body) values ($1, $2, $3) returning id",
    )
    .bind(new.station_id)
    .bind(who.account_id)
    .bind(&body)
    .fetch_one(pool)
    .await?;
    one(pool, id, who.role == Role::Admin).await
}

async fn one(pool: &PgPool, id: i64, with_author: bool) -> Result<SuggestionView> {
    let row: Option<SuggestionRow> =
        sqlx::query_as(&format!("{SUGGESTION_SELECT} where g.id = $1")).bind(id).fetch_optional(pool).await?;
    row.map(|r| view(r, with_author)).ok_or_else(|| Error::NotFound(format!("suggestion {id}")))
}

/// Which box a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxFilter {
    /// Every suggestion the reader may see.
    All,
    /// The county-wide box.
    County,
    Station(i64),
}

/// The suggestions a reader may see, newest first: admins every one (with the writer), planners
/// every one, a host their station's box, anyone else their own. `status`: `open`/`answered`.
pub async fn list(
    pool: &PgPool,
    who: &Principal,
    filter: BoxFilter,
    status: Option<&str>,
) -> Result<Vec<SuggestionView>> {
    let own_station = hosted_station(pool, who).await?;
    // Restrict by the reader: `mine` (own suggestions) or `station` (a host's box).
    let (mine, station_only): (Option<i64>, Option<i64>) = match who.role {
        Role::Admin | Role::Planner => (None, None),
        Role::StationHost => match (own_station, filter) {
            (Some(s), BoxFilter::All) => (None, Some(s)),
            (Some(s), BoxFilter::Station(asked)) if asked == s => (None, Some(s)),
            _ => {
                return Err(Error::Forbidden("a station host reads their own station's box only".into()));
            }
        },
        _ => (Some(who.account_id), None),
    };
    let (county_box, station) = match filter {
        BoxFilter::All => (false, None),
        BoxFilter::County => (true, None),
        BoxFilter::Station(s) => (false, Some(s)),
    };
    let rows: Vec<SuggestionRow> = sqlx::query_as(&format!(
        r"{SUGGESTION_SELECT}
          where ($1::bigint is null or g.account_id = $1)
            and ($2::bigint is null or g.station_id = $2)
            and ($3::bigint is null or g.station_id = $3)
            and (not $4 or g.station_id is null)
            and ($5::text is null or ($5 = 'open') = (g.answer is null))
          order by g.created_at desc, g.id desc
          limit 500"
    ))
    .bind(mine)
    .bind(station_only)
    .bind(station)
    .bind(county_box)
    .bind(status)
    .fetch_all(pool)
    .await?;
    let with_author = who.role == Role::Admin;
    Ok(rows.into_iter().map(|r| view(r, with_author)).collect())
}

/// Answer a suggestion: a station's box by its host or an admin, the county's box by a planner
/// or an admin. A second answer replaces the first.
pub async fn answer(pool: &PgPool, who: &Principal, id: i64, new: &NewAnswer) -> Result<SuggestionView> {
    let text = check_text("answer", &new.answer)?;
    let station: Option<Option<i64>> = sqlx::query_scalar("select station_id from station_suggestion where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let station = station.ok_or_else(|| Error::NotFound(format!("suggestion {id}")))?;
    let allowed = match (who.role, station) {
        (Role::Admin, _) | (Role::Planner, None) => true,
        (Role::StationHost, Some(s)) => hosted_station(pool, who).await? == Some(s),
        _ => false,
    };
    if !allowed {
        return Err(Error::Forbidden(match station {
            Some(_) => "a station's suggestions are answered by its host or an admin".into(),
            None => "the county-wide box is answered by planners and admins".into(),
        }));
    }
    sqlx::query("update station_suggestion set answer = $2, answered_at = now(), answered_by = $3 where id = $1")
        .bind(id)
        .bind(&text)
        .bind(who.account_id)
        .execute(pool)
        .await?;
    one(pool, id, who.role == Role::Admin).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busyness_reads_the_last_day_in_three_steps() {
        assert_eq!(Busyness::of(0), Busyness::Quiet);
        assert_eq!(Busyness::of(NORMAL_FROM - 1), Busyness::Quiet);
        assert_eq!(Busyness::of(NORMAL_FROM), Busyness::Normal);
        assert_eq!(Busyness::of(BUSY_FROM - 1), Busyness::Normal);
        assert_eq!(Busyness::of(BUSY_FROM), Busyness::Busy);
    }

    #[test]
    fn suggestion_text_is_trimmed_and_bounded() {
        assert_eq!(check_text("body", "  热水器坏了 ").expect("ok"), "热水器坏了");
        assert!(check_text("body", "   ").is_err());
        assert!(check_text("body", &"字".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert!(check_text("body", "a\u{0}b").is_err());
        assert!(check_text("body", "第一行\n第二行").is_ok());
    }
}
