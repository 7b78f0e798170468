//! Red building leaders (红色楼长, 一楼一长, 一年一聘): who leads each building (or unit) and
//! for which term, the public sign, the coverage per grid and community, and a leader's own
//! view of their buildings. One row per term (migration 0032): assigning writes the first term,
//! renewing writes the next one (`renews`), replacing ends the current term and writes the new
//! leader's; nothing is deleted, so the rows are the building's history.
//!
//! What "current" means (a term that was not ended covers the county's today) lives once in
//! SQL, `gridmap_leader_state` (migrations/functions/leaders.sql), which the tiles use too.
//! No HTTP here: the edge (`http/leaders.rs`) maps [`LeaderError`] to its statuses.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};

/// How a leader was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ChosenBy {
    /// Volunteered (自荐).
    #[serde(rename = "self")]
    SelfNominated,
    /// Elected or proposed by the residents (居民推选).
    #[serde(rename = "residents")]
    Residents,
    /// Appointed by the community's party organisation (组织选派).
    #[serde(rename = "organisation")]
    Organisation,
}

impl ChosenBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfNominated => "self",
            Self::Residents => "residents",
            Self::Organisation => "organisation",
        }
    }
}

/// A new leader for a building or unit (assign, and the successor when replacing).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLeader {
    /// The unit (单元) this leader leads, 1..=100 and at most the building's units; absent: the whole building.
    pub unit: Option<i32>,
    /// The name on the public sign: 1 to 64 characters, no control characters.
    pub name: String,
    /// The number on the public sign (published): 3 to 32 of digits, spaces, `+ ( ) -`.
    pub public_phone: Option<String>,
    /// The leader's private number (never published): the same format.
    pub phone: Option<String>,
    /// The leader's own login: an account with the role `building_leader`.
    pub account_id: Option<i64>,
    pub chosen_by: ChosenBy,
    /// First day of the term (default: today in the county, UTC+8); not before today.
    pub term_start: Option<NaiveDate>,
    /// Last day of the term (default: a year from the start, less a day); at most that.
    pub term_end: Option<NaiveDate>,
}

/// The next term of the same leader.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Renewal {
    /// Last day of the new term (default: a year from its start, less a day). The new term starts
    /// the day after the current one ends, or today when that has passed.
    pub term_end: Option<NaiveDate>,
    /// How the leader was chosen for the new term (default: as before).
    pub chosen_by: Option<ChosenBy>,
    /// A new published number for the sign (default: as before).
    pub public_phone: Option<String>,
}

/// One term as planners, admins and the building's grid workers see it (private fields included).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Term {
    pub id: i64,
    pub building_id: i64,
    pub unit: Option<i32>,
    pub name: String,
    pub public_phone: Option<String>,
    /// Private.
    pub phone: Option<String>,
    pub account_id: Option<i64>,
    /// The leader's login name (private).
    pub account_name: Option<String>,
    /// `self`, `residents` or `organisation`.
    pub chosen_by: String,
    pub term_start: NaiveDate,
    pub term_end: NaiveDate,
    /// The term this one renews.
    pub renews: Option<i64>,
    /// `current`, `upcoming`, `expired` or `ended` (replaced or ended early).
    pub state: String,
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `replaced` or `ended`.
    pub end_reason: Option<String>,
    /// The term's version: its ETag, for `If-Match` on renew, replace and end.
    pub version: i32,
    pub created_by: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A leader as the public sign in the stairwell shows them: name and published number only.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Sign {
    pub unit: Option<i32>,
    pub name: String,
    pub public_phone: Option<String>,
    pub chosen_by: String,
    pub term_start: NaiveDate,
    pub term_end: NaiveDate,
}

/// A building's public sign record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BuildingSign {
    pub building_id: i64,
    /// `current`, `expired` or `none`.
    pub state: String,
    /// The current leaders (the building's first, then by unit).
    pub leaders: Vec<Sign>,
}

/// A building with its terms, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BuildingLeaders {
    pub building_id: i64,
    pub grid_id: Option<i64>,
    /// `current`, `expired` or `none`.
    pub state: String,
    pub terms: Vec<Term>,
}

/// Coverage counts of one area: buildings with households, and how many have a current leader.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Coverage {
    pub id: Option<i64>,
    pub code: Option<String>,
    pub name: Option<String>,
    /// Buildings with households (each needs a leader).
    pub buildings: i64,
    /// Of those, with a current leader.
    pub led: i64,
    /// Without one because the last term ran out.
    pub expired: i64,
    /// Without any leader.
    pub none: i64,
    /// `led / buildings`, 1 when there are no buildings.
    pub share: f64,
}

/// The body of `GET /api/leaders/coverage`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CoverageReport {
    pub total: Coverage,
    pub communities: Vec<Coverage>,
    pub grids: Vec<Coverage>,
}

/// An open report near a leader's building (public fields only: never the reporter).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NearbyReport {
    pub id: i64,
    pub category: String,
    pub status: String,
    pub lon: f64,
    pub lat: f64,
    pub distance_m: f64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One of a leader's buildings with its open reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LedBuilding {
    pub building_id: i64,
    pub building_name: Option<String>,
    pub grid_id: Option<i64>,
    pub lon: f64,
    pub lat: f64,
    pub unit: Option<i32>,
    pub term_start: NaiveDate,
    pub term_end: NaiveDate,
    /// Open reports within [`NEARBY_M`] of the building, newest first.
    pub open_reports: Vec<NearbyReport>,
}

/// The body of `GET /api/leaders/me`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MyBuildings {
    pub buildings: Vec<LedBuilding>,
}

/// How far from a building's footprint a report counts as the building's (metres).
pub const NEARBY_M: f64 = 100.0;
/// Most open reports listed per building.
const NEARBY_LIMIT: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the term has changed since it was read (version {current}); read it again")]
    Stale { current: i32 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

type Result<T> = std::result::Result<T, LeaderError>;

fn invalid(field: &'static str, message: impl Into<String>) -> LeaderError {
    LeaderError::Invalid { field, message: message.into() }
}

/// The last day of a term of one year from `start`.
pub fn year_end(start: NaiveDate) -> NaiveDate {
    let next = start
        .with_year(start.year() + 1)
        // 29 February: a year later there is none; the term then ends on 28 February.
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(start.year() + 1, 2, 28).expect("28 February exists"));
    next.pred_opt().expect("a date after the minimum")
}

fn check_phone(field: &'static str, value: Option<&str>) -> Result<()> {
    if let Some(v) = value
        && (!(3..=32).contains(&v.chars().count()) || !v.chars().all(|c| c.is_ascii_digit() || " +()-".contains(c)))
    {
        return Err(invalid(field, "3 to 32 characters of digits, spaces, + ( ) -"));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(invalid("name", "1 to 64 characters, not blank, no control characters"));
    }
    Ok(())
}

/// The term's days: defaults, and the rules (not before today, at most a year, end after start).
fn check_term(start: NaiveDate, end: Option<NaiveDate>, today: NaiveDate) -> Result<(NaiveDate, NaiveDate)> {
    if start < today {
        return Err(invalid("term_start", format!("must not be before today ({today})")));
    }
    let longest = year_end(start);
    let end = end.unwrap_or(longest);
    if end < start {
        return Err(invalid("term_end", "must not be before term_start"));
    }
    if end > longest {
        return Err(invalid("term_end", format!("a term is one year at most (一年一聘): {longest} at the latest")));
    }
    Ok((start, end))
}

async fn today(tx: &mut Transaction<'_, Postgres>) -> Result<NaiveDate> {
    Ok(sqlx::query_scalar("select gridmap_county_today()").fetch_one(&mut **tx).await?)
}

/// The building (locked, so that terms of one building are written one at a time), if it exists
/// and is in `county` (a county-scoped planner's; `None`: any): its units and grid.
async fn lock_building(
    tx: &mut Transaction<'_, Postgres>,
    building_id: i64,
    county: Option<i64>,
) -> Result<(Option<i32>, Option<i64>)> {
    sqlx::query_as(
        r"select b.units, b.grid_id from building b
           where b.id = $1
             and ($2::bigint is null or exists (
                   select 1 from grid g join community c on c.id = g.community_id
                     join subdistrict s on s.id = c.subdistrict_id
                    where g.id = b.grid_id and s.county_id = $2))
           for update of b",
    )
    .bind(building_id)
    .bind(county)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| LeaderError::NotFound(format!("building {building_id}")))
}

async fn check_account(tx: &mut Transaction<'_, Postgres>, account_id: Option<i64>) -> Result<()> {
    let Some(id) = account_id else { return Ok(()) };
    let role: Option<String> =
        sqlx::query_scalar("select role from account where id = $1").bind(id).fetch_optional(&mut **tx).await?;
    match role.as_deref() {
        Some("building_leader") => Ok(()),
        Some(_) => Err(invalid("account_id", "must be an account with the role building_leader")),
        None => Err(invalid("account_id", "names an account that does not exist")),
    }
}

fn check_new(new: &NewLeader, units: Option<i32>) -> Result<()> {
    check_name(&new.name)?;
    check_phone("public_phone", new.public_phone.as_deref())?;
    check_phone("phone", new.phone.as_deref())?;
    if let Some(unit) = new.unit
        && (!(1..=100).contains(&unit) || units.is_some_and(|n| unit > n))
    {
        return Err(invalid(
            "unit",
            match units {
                Some(n) => format!("this building has units 1 to {n}"),
                None => "from 1 to 100".to_string(),
            },
        ));
    }
    Ok(())
}

async fn insert_term(
    tx: &mut Transaction<'_, Postgres>,
    building_id: i64,
    new: &NewLeader,
    (start, end): (NaiveDate, NaiveDate),
    renews: Option<i64>,
    actor: &str,
) -> Result<i64> {
    let id = sqlx::query_scalar(
        r"insert into building_leader
               (building_id, unit, name, public_phone, phone, account_id, chosen_by, term_start, term_end, renews, created_by)
          values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning id",
    )
    .bind(building_id)
    .bind(new.unit)
    .bind(new.name.trim())
    .bind(new.public_phone.as_deref())
    .bind(new.phone.as_deref())
    .bind(new.account_id)
    .bind(new.chosen_by.as_str())
    .bind(start)
    .bind(end)
    .bind(renews)
    .bind(actor)
    .fetch_one(&mut **tx)
    .await
    .map_err(overlap_is_conflict)?;
    Ok(id)
}

/// The exclusion constraint is the last word on 一楼一长 (the building lock makes it rare).
fn overlap_is_conflict(err: sqlx::Error) -> LeaderError {
    if err.as_database_error().and_then(|d| d.constraint()) == Some("building_leader_no_overlap") {
        return LeaderError::Conflict(OCCUPIED.into());
    }
    err.into()
}

const OCCUPIED: &str =
    "this building (or unit) already has a leader for that time: renew or replace the current leader instead";

/// Assign a leader to a building (or unit) that has none for the term: 一楼一长.
pub async fn assign(
    pool: &PgPool,
    building_id: i64,
    new: &NewLeader,
    actor: &str,
    county: Option<i64>,
) -> Result<Term> {
    let mut tx = pool.begin().await?;
    let (units, _) = lock_building(&mut tx, building_id, county).await?;
    check_new(new, units)?;
    let today = today(&mut tx).await?;
    let term = check_term(new.term_start.unwrap_or(today), new.term_end, today)?;
    check_account(&mut tx, new.account_id).await?;
    let id = insert_term(&mut tx, building_id, new, term, None, actor).await?;
    tx.commit().await?;
    term_by_id(pool, id).await
}

/// A term not yet ended, locked with its building, checked against `If-Match`'s version.
async fn lock_term(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    version: i64,
    county: Option<i64>,
) -> Result<(Term, Option<i32>)> {
    let building: Option<i64> = sqlx::query_scalar("select building_id from building_leader where id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let building = building.ok_or_else(|| LeaderError::NotFound(format!("leader term {id}")))?;
    let (units, _) = lock_building(tx, building, county).await.map_err(|e| {
        if matches!(e, LeaderError::NotFound(_)) { LeaderError::NotFound(format!("leader term {id}")) } else { e }
    })?;
    let term: Term = sqlx::query_as(&format!("{TERM_SELECT} where l.id = $1")).bind(id).fetch_one(&mut **tx).await?;
    if i64::from(term.version) != version {
        return Err(LeaderError::Stale { current: term.version });
    }
    if term.ended_at.is_some() {
        return Err(LeaderError::Conflict(format!(
            "term {id} has ended ({})",
            term.end_reason.as_deref().unwrap_or("")
        )));
    }
    Ok((term, units))
}

async fn bump(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<()> {
    sqlx::query("update building_leader set version = version + 1 where id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// Renew a leader for the next term (一年一聘): a new term for the same person, from the day after
/// this one ends (today, if that has passed). Refused when the term was renewed already.
pub async fn renew(
    pool: &PgPool,
    id: i64,
    version: i64,
    body: &Renewal,
    actor: &str,
    county: Option<i64>,
) -> Result<Term> {
    let mut tx = pool.begin().await?;
    let (term, _) = lock_term(&mut tx, id, version, county).await?;
    check_phone("public_phone", body.public_phone.as_deref())?;
    let later: bool = sqlx::query_scalar(
        r"select exists (select 1 from building_leader
                          where building_id = $1 and coalesce(unit, 0) = coalesce($2, 0)
                            and ended_at is null and term_start > $3)",
    )
    .bind(term.building_id)
    .bind(term.unit)
    .bind(term.term_end)
    .fetch_one(&mut *tx)
    .await?;
    if later {
        return Err(LeaderError::Conflict(format!("term {id} already has a next term")));
    }
    let today = today(&mut tx).await?;
    let start = term.term_end.succ_opt().expect("a date before the maximum").max(today);
    let span = check_term(start, body.term_end, today)?;
    let next = NewLeader {
        unit: term.unit,
        name: term.name.clone(),
        public_phone: body.public_phone.clone().or(term.public_phone.clone()),
        phone: term.phone.clone(),
        account_id: term.account_id,
        chosen_by: body.chosen_by.unwrap_or(match term.chosen_by.as_str() {
            "self" => ChosenBy::SelfNominated,
            "residents" => ChosenBy::Residents,
            _ => ChosenBy::Organisation,
        }),
        term_start: None,
        term_end: None,
    };
    bump(&mut tx, id).await?;
    let new_id = insert_term(&mut tx, term.building_id, &next, span, Some(id), actor).await?;
    tx.commit().await?;
    term_by_id(pool, new_id).await
}

/// End this term and the terms that follow it in its building (or unit) now.
async fn end_from(tx: &mut Transaction<'_, Postgres>, term: &Term, reason: &str) -> Result<()> {
    sqlx::query(
        r"update building_leader set ended_at = now(), end_reason = $4, version = version + 1
           where ended_at is null and building_id = $1 and coalesce(unit, 0) = coalesce($2, 0)
             and (id = $3 or term_start > (select term_start from building_leader where id = $3))",
    )
    .bind(term.building_id)
    .bind(term.unit)
    .bind(term.id)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replace a leader: their term (and any renewal of it) ends now, the successor's starts (today
/// by default), in the same building or unit.
pub async fn replace(
    pool: &PgPool,
    id: i64,
    version: i64,
    new: &NewLeader,
    actor: &str,
    county: Option<i64>,
) -> Result<Term> {
    let mut tx = pool.begin().await?;
    let (term, units) = lock_term(&mut tx, id, version, county).await?;
    if new.unit.is_some() && new.unit != term.unit {
        return Err(invalid("unit", "a successor leads the same building or unit; leave unit out"));
    }
    let new = NewLeader { unit: term.unit, ..new.clone() };
    check_new(&new, units)?;
    let today = today(&mut tx).await?;
    let span = check_term(new.term_start.unwrap_or(today), new.term_end, today)?;
    check_account(&mut tx, new.account_id).await?;
    end_from(&mut tx, &term, "replaced").await?;
    let new_id = insert_term(&mut tx, term.building_id, &new, span, None, actor).await?;
    tx.commit().await?;
    term_by_id(pool, new_id).await
}

/// End a term early without a successor (the leader stepped down): the building shows a gap.
pub async fn end(pool: &PgPool, id: i64, version: i64, county: Option<i64>) -> Result<Term> {
    let mut tx = pool.begin().await?;
    let (term, _) = lock_term(&mut tx, id, version, county).await?;
    end_from(&mut tx, &term, "ended").await?;
    tx.commit().await?;
    term_by_id(pool, id).await
}

const TERM_SELECT: &str = r"
select l.id, l.building_id, l.unit, l.name, l.public_phone, l.phone, l.account_id, a.name as account_name,
       l.chosen_by, l.term_start, l.term_end, l.renews,
       case when l.ended_at is not null then 'ended'
            when l.term_end < gridmap_county_today() then 'expired'
            when l.term_start > gridmap_county_today() then 'upcoming'
            else 'current' end as state,
       l.ended_at, l.end_reason, l.version, l.created_by, l.created_at
  from building_leader l left join account a on a.id = l.account_id";

pub async fn term_by_id(pool: &PgPool, id: i64) -> Result<Term> {
    sqlx::query_as(&format!("{TERM_SELECT} where l.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| LeaderError::NotFound(format!("leader term {id}")))
}

/// The building's grid (`None` inside: no grid), or `NotFound`.
pub async fn building_grid(pool: &PgPool, building_id: i64) -> Result<Option<i64>> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("select grid_id from building where id = $1").bind(building_id).fetch_optional(pool).await?;
    row.map(|r| r.0).ok_or_else(|| LeaderError::NotFound(format!("building {building_id}")))
}

/// Whether the building is in `county` (`None`: every county is).
pub async fn in_county(pool: &PgPool, building_id: i64, county: Option<i64>) -> Result<bool> {
    let Some(county) = county else { return Ok(true) };
    Ok(sqlx::query_scalar(
        r"select exists (select 1 from building b join grid g on g.id = b.grid_id
                           join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id
                          where b.id = $1 and s.county_id = $2)",
    )
    .bind(building_id)
    .bind(county)
    .fetch_one(pool)
    .await?)
}

/// Every term of a building, newest first.
pub async fn building_leaders(pool: &PgPool, building_id: i64) -> Result<BuildingLeaders> {
    let grid_id = building_grid(pool, building_id).await?;
    let state: String = sqlx::query_scalar("select gridmap_leader_state($1)").bind(building_id).fetch_one(pool).await?;
    let terms = sqlx::query_as(&format!(
        "{TERM_SELECT} where l.building_id = $1 order by l.term_start desc, l.created_at desc, l.id desc"
    ))
    .bind(building_id)
    .fetch_all(pool)
    .await?;
    Ok(BuildingLeaders { building_id, grid_id, state, terms })
}

/// The public sign of a building: its current leaders, name and published number only.
pub async fn sign(pool: &PgPool, building_id: i64) -> Result<BuildingSign> {
    building_grid(pool, building_id).await?;
    let state: String = sqlx::query_scalar("select gridmap_leader_state($1)").bind(building_id).fetch_one(pool).await?;
    let leaders = sqlx::query_as(
        r"select unit, name, public_phone, chosen_by, term_start, term_end from building_leader
           where building_id = $1 and ended_at is null
             and gridmap_county_today() between term_start and term_end
           order by unit nulls first, id",
    )
    .bind(building_id)
    .fetch_all(pool)
    .await?;
    Ok(BuildingSign { building_id, state, leaders })
}

/// Coverage per grid and per community, and the total (of `community`, when given).
pub async fn coverage(pool: &PgPool, community: Option<i64>) -> Result<CoverageReport> {
    // One state per building with households, then counted three ways.
    let base = r"
with s as (
    select b.grid_id, g.community_id, gridmap_leader_state(b.id) as state
      from building b left join grid g on g.id = b.grid_id
     where b.households > 0 and ($1::bigint is null or g.community_id = $1))";
    let counts = r"count(*) as buildings,
        count(*) filter (where state = 'current') as led,
        count(*) filter (where state = 'expired') as expired,
        count(*) filter (where state = 'none') as none,
        case when count(*) = 0 then 1 else (count(*) filter (where state = 'current'))::float8 / count(*) end as share";
    let total: Coverage =
        sqlx::query_as(&format!("{base} select null::int8 as id, null as code, null as name, {counts} from s"))
            .bind(community)
            .fetch_one(pool)
            .await?;
    let communities = sqlx::query_as(&format!(
        "{base} select c.id, c.code, c.name, {counts} from s join community c on c.id = s.community_id
          group by c.id order by c.id"
    ))
    .bind(community)
    .fetch_all(pool)
    .await?;
    let grids = sqlx::query_as(&format!(
        "{base} select g.id, g.code, g.name, {counts} from s join grid g on g.id = s.grid_id group by g.id order by g.id"
    ))
    .bind(community)
    .fetch_all(pool)
    .await?;
    Ok(CoverageReport { total, communities, grids })
}

/// A leader's current (and upcoming) terms with their buildings' open reports nearby.
pub async fn my_buildings(pool: &PgPool, account_id: i64) -> Result<MyBuildings> {
    type Row = (i64, Option<String>, Option<i64>, f64, f64, Option<i32>, NaiveDate, NaiveDate);
    let rows: Vec<Row> = sqlx::query_as(
        r"select b.id, b.name, b.grid_id, ST_X(b.anchor), ST_Y(b.anchor), l.unit, l.term_start, l.term_end
            from building_leader l join building b on b.id = l.building_id
           where l.account_id = $1 and l.ended_at is null and l.term_end >= gridmap_county_today()
             and l.term_start <= gridmap_county_today()
           order by b.id, l.unit nulls first",
    )
    .bind(account_id)
    .fetch_all(pool)
    .await?;
    let mut buildings = Vec::with_capacity(rows.len());
    for (building_id, building_name, grid_id, lon, lat, unit, term_start, term_end) in rows {
        let open_reports = sqlx::query_as(
            r"select r.id, r.category, r.status, ST_X(r.geom) as lon, ST_Y(r.geom) as lat,
                     ST_Distance(r.geom::geography, b.geom::geography) as distance_m, r.created_at
                from report r, building b
               where b.id = $1 and gridmap_report_is_open(r.status)
                 and ST_DWithin(r.geom::geography, b.geom::geography, $2)
               order by r.created_at desc, r.id desc
               limit $3",
        )
        .bind(building_id)
        .bind(NEARBY_M)
        .bind(NEARBY_LIMIT)
        .fetch_all(pool)
        .await?;
        buildings.push(LedBuilding {
            building_id,
            building_name,
            grid_id,
            lon,
            lat,
            unit,
            term_start,
            term_end,
            open_reports,
        });
    }
    Ok(MyBuildings { buildings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn a_term_of_one_year_ends_the_day_before_the_anniversary() {
        assert_eq!(year_end(d(2025, 1, 1)), d(2025, 12, 31));
        assert_eq!(year_end(d(2024, 2, 29)), d(2025, 2, 27));
        assert_eq!(year_end(d(2025, 3, 15)), d(2026, 3, 14));
    }

    #[test]
    fn terms_longer_than_a_year_or_in_the_past_are_refused() {
        let today = d(2025, 6, 1);
        assert!(check_term(d(2025, 6, 1), Some(d(2026, 5, 31)), today).is_ok());
        assert!(check_term(d(2025, 6, 1), Some(d(2026, 6, 1)), today).is_err());
        assert!(check_term(d(2025, 5, 31), None, today).is_err());
        assert!(check_term(d(2025, 6, 2), Some(d(2025, 6, 1)), today).is_err());
    }

    #[test]
    fn sign_phones_take_digits_spaces_and_plus_only() {
        assert!(check_phone("public_phone", Some("0533-3221234")).is_ok());
        assert!(check_phone("public_phone", Some("call me")).is_err());
        assert!(check_phone("public_phone", Some("12")).is_err());
        assert!(check_phone("public_phone", None).is_ok());
    }
}
