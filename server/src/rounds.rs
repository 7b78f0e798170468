//! Door-knocking rounds (敲门行动): a round is opened for one grid, one community or one county
//! with a period; the grids' workers record each visit to a building (or one unit of it); the
//! round closes once every household was recorded. The rules, in one place (docs/field-work.md
//! repeats them for people):
//!
//! - **Who opens a round**: planners and admins, for any grid, community or county (a planner
//!   scoped to a county: inside it); a grid worker for a grid they work (scope `grid` only).
//!   At most one running round per grid: a round whose grids overlap a running round's is 409.
//! - **Which buildings**: every building of the round's grids (as the grids are now) with
//!   households > 0. A building without households (a shop, a school) is not knocked on.
//! - **Who records a visit**: a worker of the building's grid (grid workers and part-time rider
//!   workers), with a client-made `Idempotency-Key` (a resend gets the stored answer; the same key
//!   with another payload is 409).
//! - **When a building is done**: when the households recorded in its visits of the round, **any
//!   outcome** (在家 at home, 不在家 not at home, 拒访 refused), reach its household count. A
//!   not-at-home household counts as recorded "not reachable" in this round.
//! - **Closing**: planners, admins, and a worker of the grid of a grid-scope round; only when
//!   every building is done, else 409 naming the buildings and households still missing.
//! - **Who sees what**: coverage counts (buildings and households, per grid) are public in the
//!   `coverage` tile layer; the API's rounds, buildings and visits are for the workers of the
//!   round's grids, planners and admins. Who visited and the visit notes are private.

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::changes::Changes;

/// Longest round: a year and a day.
pub const MAX_PERIOD_DAYS: i64 = 366;
/// Longest visit note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// How far in the future a phone's clock may put a visit (clock skew).
pub const FUTURE_SKEW_MINUTES: i64 = 10;
/// Buildings named in an "incomplete" refusal.
const MISSING_NAMED: usize = 20;

/// Why a round request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("{message}")]
    Unprocessable { field: &'static str, message: String },
    /// 409 with a stable machine reason (`round_closed`, `round_overlap`, `round_incomplete`,
    /// `key_reused`, `already_reported`).
    #[error("{message}")]
    Conflict { reason: &'static str, message: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn field(field: &str, message: impl Into<String>) -> RoundError {
    RoundError::Field { field: field.to_string(), message: message.into() }
}

fn forbidden(message: impl Into<String>) -> RoundError {
    RoundError::Forbidden(message.into())
}

/// What the caller may see: every grid (planners, admins; a county-scoped one: its county's),
/// or the grids they work.
#[derive(Debug, Clone)]
pub enum Reach {
    All { county: Option<i64> },
    Grids(Vec<i64>),
}

impl Reach {
    /// The field-work reach of an account, or 403: planners and admins, and accounts that work
    /// a grid (grid workers, part-time rider workers).
    pub fn of(principal: &Principal) -> Result<Self, RoundError> {
        match principal.role {
            Role::Planner | Role::Admin => Ok(Self::All { county: principal.county_id }),
            _ if !principal.grid_ids.is_empty() => Ok(Self::Grids(principal.grid_ids.clone())),
            _ => Err(forbidden("door-knocking and the sentiment log are for grid workers, planners and admins")),
        }
    }

    /// `(grids, county)` to bind as `$n::bigint[]` (null: any) and `$m::bigint` (null: any).
    pub fn binds(&self) -> (Option<Vec<i64>>, Option<i64>) {
        match self {
            Self::All { county } => (None, *county),
            Self::Grids(g) => (Some(g.clone()), None),
        }
    }

    pub fn is_staff(&self) -> bool {
        matches!(self, Self::All { .. })
    }
}

/// The county of grid `g` (an SQL expression over alias `g`).
pub const GRID_COUNTY_SQL: &str =
    "(select s.county_id from community c join subdistrict s on s.id = c.subdistrict_id where c.id = g.community_id)";

/// Whether a grid is within reach.
pub async fn grid_in_reach(pool: &PgPool, reach: &Reach, grid_id: i64) -> Result<bool, sqlx::Error> {
    let (grids, county) = reach.binds();
    sqlx::query_scalar(&format!(
        "select exists (select 1 from grid g where g.id = $1 and ($2::bigint[] is null or g.id = any($2))
                   and ($3::bigint is null or {GRID_COUNTY_SQL} = $3))"
    ))
    .bind(grid_id)
    .bind(grids)
    .bind(county)
    .fetch_one(pool)
    .await
}

/// The body of `POST /api/rounds`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRound {
    /// `grid`, `community` or `county`.
    pub scope: String,
    /// The grid (scope `grid`), community (`community`) or county (`county`) id.
    pub target_id: i64,
    /// e.g. 2024年第二轮敲门行动; at most 100 characters.
    pub name: String,
    pub starts_on: NaiveDate,
    /// On or after `starts_on`, at most 366 days later.
    pub ends_on: NaiveDate,
}

/// Progress counts of a round or of one of its grids.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Progress {
    /// Buildings with households in the round's grids.
    pub buildings: i64,
    /// Buildings whose visits recorded all their households (any outcome).
    pub buildings_done: i64,
    pub households: i64,
    /// Households recorded by visits (at home, not at home or refused), at most each building's count.
    pub households_settled: i64,
    /// Households reached at home (在家).
    pub households_at_home: i64,
}

/// A round (`GET /api/rounds`, `GET /api/rounds/{id}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoundView {
    pub id: i64,
    pub scope: String,
    pub grid_id: Option<i64>,
    pub community_id: Option<i64>,
    pub county_id: Option<i64>,
    pub name: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    /// `running` or `closed`.
    pub status: String,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub progress: Progress,
    /// Per grid (in `GET /api/rounds/{id}`; empty in lists).
    pub grids: Vec<GridProgress>,
}

/// One grid's progress in a round.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GridProgress {
    pub grid_id: i64,
    pub code: String,
    pub name: String,
    pub community_id: Option<i64>,
    pub community: Option<String>,
    #[serde(flatten)]
    pub progress: Progress,
}

type RoundRow = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
    NaiveDate,
    NaiveDate,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<i64>,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// grid id, code, name, community id and name, then the five progress counts.
type GridProgressRow = (i64, String, String, Option<i64>, Option<String>, i64, i64, i64, i64, i64);
/// building id, grid id, name, units, households, settled, at home, lon, lat.
type BuildingRow = (i64, i64, Option<String>, Option<i32>, i32, i64, i64, f64, f64);

/// The round's county (an SQL expression over alias `r`).
const ROUND_COUNTY_SQL: &str = "coalesce(r.county_id,
    (select s.county_id from community c join subdistrict s on s.id = c.subdistrict_id where c.id = r.community_id),
    (select s.county_id from grid g join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id where g.id = r.grid_id))";

/// Rounds the caller reaches: `$1` grids (null: any) and `$2` county (null: any), optional `$3`
/// id, `$4` status filter (`running`/`closed`/null), `$5` grid filter.
fn rounds_sql() -> String {
    format!(
        r"select r.id, r.scope, r.grid_id, r.community_id, r.county_id, r.name, r.starts_on, r.ends_on,
                 r.opened_at, r.closed_at, {ROUND_COUNTY_SQL},
                 coalesce(p.buildings, 0), coalesce(p.buildings_done, 0), coalesce(p.households, 0),
                 coalesce(p.households_settled, 0), coalesce(p.households_at_home, 0)
            from door_round r
            left join lateral (
                  select sum(buildings)::int8 as buildings, sum(buildings_done)::int8 as buildings_done,
                         sum(households)::int8 as households, sum(households_settled)::int8 as households_settled,
                         sum(households_at_home)::int8 as households_at_home
                    from door_round_progress p where p.round_id = r.id) p on true
           where ($3::int8 is null or r.id = $3)
             and ($4::text is null or ($4 = 'running') = (r.closed_at is null))
             and ($5::int8 is null or exists (select 1 from door_round_grid rg where rg.round_id = r.id and rg.grid_id = $5))
             and ($1::int8[] is null or exists (select 1 from door_round_grid rg where rg.round_id = r.id and rg.grid_id = any($1)))
             and ($2::int8 is null or {ROUND_COUNTY_SQL} = $2)
           order by r.closed_at is not null, r.id desc
           limit 200"
    )
}

fn view(row: RoundRow) -> RoundView {
    let (
        id,
        scope,
        grid_id,
        community_id,
        county_id,
        name,
        starts_on,
        ends_on,
        opened_at,
        closed_at,
        _,
        b,
        bd,
        h,
        hs,
        ha,
    ) = row;
    RoundView {
        id,
        scope,
        grid_id,
        community_id,
        county_id,
        name,
        starts_on,
        ends_on,
        status: if closed_at.is_none() { "running" } else { "closed" }.to_string(),
        opened_at,
        closed_at,
        progress: Progress {
            buildings: b,
            buildings_done: bd,
            households: h,
            households_settled: hs,
            households_at_home: ha,
        },
        grids: Vec::new(),
    }
}

/// Filters of `GET /api/rounds`.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    pub grid: Option<i64>,
}

/// The rounds the caller reaches, running first, newest first.
pub async fn list(pool: &PgPool, principal: &Principal, filter: &ListFilter) -> Result<Vec<RoundView>, RoundError> {
    let reach = Reach::of(principal)?;
    if let Some(s) = filter.status.as_deref()
        && s != "running"
        && s != "closed"
    {
        return Err(field("status", "running or closed"));
    }
    if let Some(g) = filter.grid
        && !grid_in_reach(pool, &reach, g).await?
    {
        return Err(forbidden(format!("grid {g} is not one of yours")));
    }
    let (grids, county) = reach.binds();
    let rows: Vec<RoundRow> = sqlx::query_as(&rounds_sql())
        .bind(grids)
        .bind(county)
        .bind(None::<i64>)
        .bind(filter.status.as_deref())
        .bind(filter.grid)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(view).collect())
}

/// One round with its per-grid progress: 404 if there is none, 403 if the caller does not reach it.
pub async fn get(pool: &PgPool, principal: &Principal, id: i64) -> Result<RoundView, RoundError> {
    let reach = Reach::of(principal)?;
    let mut round = visible(pool, &reach, id).await?;
    let rows: Vec<GridProgressRow> = sqlx::query_as(
        r"select g.id, g.code, g.name, g.community_id, c.name,
                 coalesce(p.buildings, 0), coalesce(p.buildings_done, 0), coalesce(p.households, 0),
                 coalesce(p.households_settled, 0), coalesce(p.households_at_home, 0)
            from door_round_grid rg
            join grid g on g.id = rg.grid_id
            left join community c on c.id = g.community_id
            left join door_round_progress p on p.round_id = rg.round_id and p.grid_id = rg.grid_id
           where rg.round_id = $1
           order by g.code",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    round.grids = rows
        .into_iter()
        .map(|(grid_id, code, name, community_id, community, b, bd, h, hs, ha)| GridProgress {
            grid_id,
            code,
            name,
            community_id,
            community,
            progress: Progress {
                buildings: b,
                buildings_done: bd,
                households: h,
                households_settled: hs,
                households_at_home: ha,
            },
        })
        .collect();
    Ok(round)
}

/// The round if the caller reaches it: 404 when it does not exist, 403 when it is not theirs.
async fn visible(pool: &PgPool, reach: &Reach, id: i64) -> Result<RoundView, RoundError> {
    let (grids, county) = reach.binds();
    let row: Option<RoundRow> = sqlx::query_as(&rounds_sql())
        .bind(grids)
        .bind(county)
        .bind(id)
        .bind(None::<&str>)
        .bind(None::<i64>)
        .fetch_optional(pool)
        .await?;
    if let Some(row) = row {
        return Ok(view(row));
    }
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from door_round where id = $1)").bind(id).fetch_one(pool).await?;
    if exists {
        Err(forbidden(format!("round {id} covers none of your grids")))
    } else {
        Err(RoundError::NotFound(format!("no round {id}")))
    }
}

/// Open a round (rules in the module documentation).
pub async fn open(changes: &Changes, principal: &Principal, body: &OpenRound) -> Result<RoundView, RoundError> {
    let pool = changes.pool();
    let reach = Reach::of(principal)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(field("name", "1 to 100 characters"));
    }
    if body.ends_on < body.starts_on {
        return Err(field("ends_on", "must be on or after starts_on"));
    }
    if (body.ends_on - body.starts_on).num_days() > MAX_PERIOD_DAYS {
        return Err(field("ends_on", format!("a round lasts at most {MAX_PERIOD_DAYS} days")));
    }
    let scope = body.scope.as_str();
    // The target's county (for a county-scoped planner), and whether it exists.
    let target_sql = match scope {
        "grid" => format!("select {GRID_COUNTY_SQL} from grid g where g.id = $1"),
        "community" => {
            "select s.county_id from community c join subdistrict s on s.id = c.subdistrict_id where c.id = $1".into()
        }
        "county" => "select id from county where id = $1".into(),
        _ => return Err(field("scope", "one of grid, community, county")),
    };
    let target_county: Option<Option<i64>> =
        sqlx::query_scalar(&target_sql).bind(body.target_id).fetch_optional(pool).await?;
    let Some(target_county) = target_county else {
        return Err(RoundError::Unprocessable {
            field: "target_id",
            message: format!("no {scope} {}", body.target_id),
        });
    };
    match &reach {
        Reach::Grids(grids) => {
            if principal.role != Role::GridWorker || scope != "grid" || !grids.contains(&body.target_id) {
                return Err(forbidden(
                    "a grid worker opens rounds for a grid they work only; planners open community and county rounds",
                ));
            }
        }
        Reach::All { county: Some(c) } if target_county != Some(*c) => {
            return Err(forbidden(format!("{scope} {} is outside your county", body.target_id)));
        }
        Reach::All { .. } => {}
    }
    let mut tx = pool.begin().await?;
    // Opens take turns, so two overlapping rounds cannot both pass the check below.
    sqlx::query("lock table door_round in share row exclusive mode").execute(&mut *tx).await?;
    let id: i64 = sqlx::query_scalar(
        r"insert into door_round (scope, grid_id, community_id, county_id, name, starts_on, ends_on, opened_by)
          values ($1, case when $1 = 'grid' then $2 end, case when $1 = 'community' then $2 end,
                  case when $1 = 'county' then $2 end, $3, $4, $5, $6)
          returning id",
    )
    .bind(scope)
    .bind(body.target_id)
    .bind(name)
    .bind(body.starts_on)
    .bind(body.ends_on)
    .bind(principal.account_id)
    .fetch_one(&mut *tx)
    .await?;
    let overlapping: Vec<(i64, String)> = sqlx::query_as(
        r"select distinct r.id, r.name from door_round r
            join door_round_grid o on o.round_id = r.id
            join door_round_grid n on n.grid_id = o.grid_id and n.round_id = $1
           where r.id <> $1 and r.closed_at is null order by r.id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    if let Some((other, other_name)) = overlapping.first() {
        return Err(RoundError::Conflict {
            reason: "round_overlap",
            message: format!("round {other} ({other_name}) is still running on some of these grids; close it first"),
        });
    }
    let buildings: i64 = sqlx::query_scalar(
        "select count(*) from door_round_grid rg join building b on b.grid_id = rg.grid_id and b.households > 0 where rg.round_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if buildings == 0 {
        return Err(RoundError::Unprocessable {
            field: "target_id",
            message: format!("{scope} {} has no buildings with households to knock on", body.target_id),
        });
    }
    tx.commit().await?;
    changes.coverage_changed(id).await;
    get(pool, principal, id).await
}

/// The body of `POST /api/rounds/{id}/visits`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordVisit {
    pub building_id: i64,
    /// The unit (单元) visited, 1..=the building's units; absent for the whole building.
    pub unit: Option<i32>,
    /// When the visit was made (the phone's clock; an offline visit keeps its time). Default: now.
    pub visited_at: Option<DateTime<Utc>>,
    /// Households this visit settled, 1..=the building's households.
    pub households: i32,
    /// `at_home` (在家), `not_home` (不在家) or `refused` (拒访).
    pub outcome: String,
    /// At most 500 characters; private.
    pub note: Option<String>,
}

/// A stored visit (the 201 body, and `GET /api/rounds/{id}/visits`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VisitView {
    pub id: i64,
    pub round_id: i64,
    pub building_id: Option<i64>,
    pub grid_id: Option<i64>,
    pub unit: Option<i32>,
    pub visited_at: DateTime<Utc>,
    pub households: i32,
    pub outcome: String,
    pub note: String,
    /// Who visited (display name, else login): private, like the note.
    pub visitor: Option<String>,
    /// The building after this visit: households recorded in the round, and whether it is done.
    pub building_settled: i64,
    pub building_households: i32,
    pub building_done: bool,
}

/// What recording a visit did.
#[derive(Debug)]
pub enum VisitOutcome {
    Created(VisitView),
    /// A resend of a stored visit: its stored view, nothing stored again.
    Replayed(VisitView),
}

/// Whether the caller may record visits in this round at all (before the body is read): 404
/// for no such round, 403 unless they work one of its grids.
pub async fn may_record(pool: &PgPool, principal: &Principal, round_id: i64) -> Result<(), RoundError> {
    let reach = Reach::of(principal)?;
    visible(pool, &reach, round_id).await?;
    if reach.is_staff() {
        return Err(forbidden("visits are recorded by the workers of the building's grid"));
    }
    Ok(())
}

/// Record a visit once per key (rules in the module documentation).
pub async fn record_visit(
    changes: &Changes,
    principal: &Principal,
    round_id: i64,
    body: &RecordVisit,
    key: Uuid,
) -> Result<VisitOutcome, RoundError> {
    let pool = changes.pool();
    let reach = Reach::of(principal)?;
    let round = visible(pool, &reach, round_id).await?;
    let note = body.note.as_deref().map(str::trim).unwrap_or_default().to_string();
    let hash = visit_hash(round_id, body, &note, principal.account_id);
    // A resend is answered before anything else: even once the round has closed since.
    if let Some(outcome) = replay(pool, key, &hash).await? {
        return Ok(outcome);
    }
    if round.status != "running" {
        return Err(round_closed(round_id));
    }
    if !["at_home", "not_home", "refused"].contains(&body.outcome.as_str()) {
        return Err(field("outcome", "one of at_home (在家), not_home (不在家), refused (拒访)"));
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(field("note", format!("at most {MAX_NOTE_CHARS} characters")));
    }
    check_building(pool, principal, round_id, body).await?;
    let visited_at = checked_visit_time(body, &round)?;
    let mut tx = pool.begin().await?;
    // A close waits for this visit (and a visit for a close): `for share` against `for update`.
    let closed: Option<DateTime<Utc>> = sqlx::query_scalar("select closed_at from door_round where id = $1 for share")
        .bind(round_id)
        .fetch_one(&mut *tx)
        .await?;
    if closed.is_some() {
        return Err(round_closed(round_id));
    }
    let id: Option<i64> = sqlx::query_scalar(
        r"insert into door_visit (round_id, building_id, unit, visitor_id, visited_at, households, outcome, note,
                                  idempotency_key, payload_hash)
          values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
          on conflict (idempotency_key) do nothing
          returning id",
    )
    .bind(round_id)
    .bind(body.building_id)
    .bind(body.unit)
    .bind(principal.account_id)
    .bind(visited_at)
    .bind(body.households)
    .bind(&body.outcome)
    .bind(&note)
    .bind(key)
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(id) = id else {
        // Another request with this key committed meanwhile.
        return replay(pool, key, &hash).await?.ok_or_else(|| {
            RoundError::Database(sqlx::Error::Protocol("visit key conflict without a stored visit".into()))
        });
    };
    changes.coverage_changed(round_id).await;
    Ok(VisitOutcome::Created(visit(pool, id).await?))
}

fn round_closed(round_id: i64) -> RoundError {
    RoundError::Conflict {
        reason: "round_closed",
        message: format!("round {round_id} is closed; visits are recorded in a running round"),
    }
}

/// The SHA-256 of what a visit's sender sent: a resend with the same key must match it.
fn visit_hash(round_id: i64, body: &RecordVisit, note: &str, visitor: i64) -> Vec<u8> {
    let canonical =
        json!([round_id, body.building_id, body.unit, body.visited_at, body.households, body.outcome, note, visitor]);
    Sha256::digest(canonical.to_string().as_bytes()).to_vec()
}

/// The visited building: one of the round's, in a grid the visitor works, with households; the
/// visit's households and unit within the building's.
async fn check_building(
    pool: &PgPool,
    principal: &Principal,
    round_id: i64,
    body: &RecordVisit,
) -> Result<(), RoundError> {
    let building: Option<(Option<i64>, i32, Option<i32>, bool)> = sqlx::query_as(
        r"select b.grid_id, b.households, b.units,
                 exists (select 1 from door_round_grid rg where rg.round_id = $2 and rg.grid_id = b.grid_id)
            from building b where b.id = $1",
    )
    .bind(body.building_id)
    .bind(round_id)
    .fetch_optional(pool)
    .await?;
    let Some((grid_id, households, units, in_round)) = building else {
        return Err(RoundError::Unprocessable {
            field: "building_id",
            message: format!("no building {}", body.building_id),
        });
    };
    if !grid_id.is_some_and(|g| principal.works_grid(g)) {
        return Err(forbidden(format!(
            "building {} is not in a grid you work; visits are recorded by the grid's workers",
            body.building_id
        )));
    }
    if !in_round {
        return Err(RoundError::Unprocessable {
            field: "building_id",
            message: format!("building {} is not in the grids of round {round_id}", body.building_id),
        });
    }
    if households == 0 {
        return Err(RoundError::Unprocessable {
            field: "building_id",
            message: format!("building {} has no households to knock on", body.building_id),
        });
    }
    if !(1..=households).contains(&body.households) {
        return Err(field("households", format!("from 1 to the building's {households} households")));
    }
    if let Some(u) = body.unit {
        let max = units.filter(|n| *n > 0).unwrap_or(100);
        if !(1..=max).contains(&u) {
            return Err(field("unit", format!("from 1 to {max}")));
        }
    }
    Ok(())
}

/// When the visit took place (now if not said): not in the future beyond the phone clocks'
/// skew, not before the round's first day.
fn checked_visit_time(body: &RecordVisit, round: &RoundView) -> Result<DateTime<Utc>, RoundError> {
    let now = Utc::now().trunc_subsecs(6);
    let visited_at = body.visited_at.map_or(now, |t| t.trunc_subsecs(6));
    if visited_at > now + chrono::Duration::minutes(FUTURE_SKEW_MINUTES) {
        return Err(field("visited_at", "is in the future; check the phone's clock"));
    }
    // The round's first day starts at midnight in China (UTC+8).
    let starts = round.starts_on.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc() - chrono::Duration::hours(8);
    if visited_at < starts {
        return Err(field("visited_at", format!("is before the round started on {}", round.starts_on)));
    }
    Ok(visited_at)
}

async fn replay(pool: &PgPool, key: Uuid, hash: &[u8]) -> Result<Option<VisitOutcome>, RoundError> {
    let row: Option<(i64, Option<Vec<u8>>)> =
        sqlx::query_as("select id, payload_hash from door_visit where idempotency_key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?;
    match row {
        None => Ok(None),
        Some((id, Some(stored))) if stored == hash => Ok(Some(VisitOutcome::Replayed(visit(pool, id).await?))),
        Some(_) => Err(RoundError::Conflict {
            reason: "key_reused",
            message: "this Idempotency-Key was already used for a different visit".into(),
        }),
    }
}

const VISIT_SQL: &str = r"select v.id, v.round_id, v.building_id, b.grid_id, v.unit, v.visited_at, v.households, v.outcome, v.note,
           coalesce(a.display_name, a.name),
           coalesce((select sum(o.households) from door_visit o where o.round_id = v.round_id and o.building_id = v.building_id
                      and (o.visited_at, o.id) <= (v.visited_at, v.id)), 0)::int8,
           coalesce(b.households, 0)
      from door_visit v
      left join building b on b.id = v.building_id
      left join account a on a.id = v.visitor_id";

type VisitRow =
    (i64, i64, Option<i64>, Option<i64>, Option<i32>, DateTime<Utc>, i32, String, String, Option<String>, i64, i32);

fn visit_view(row: VisitRow) -> VisitView {
    let (id, round_id, building_id, grid_id, unit, visited_at, households, outcome, note, visitor, settled, bh) = row;
    VisitView {
        id,
        round_id,
        building_id,
        grid_id,
        unit,
        visited_at,
        households,
        outcome,
        note,
        visitor,
        building_settled: settled,
        building_households: bh,
        building_done: settled >= i64::from(bh),
    }
}

async fn visit(pool: &PgPool, id: i64) -> Result<VisitView, sqlx::Error> {
    let row: VisitRow = sqlx::query_as(&format!("{VISIT_SQL} where v.id = $1")).bind(id).fetch_one(pool).await?;
    Ok(visit_view(row))
}

/// The caller's reach into round `round_id` (403/404 when it is not theirs to see), checked
/// against `grid` when the request narrows to one grid.
async fn round_reach(
    pool: &PgPool,
    principal: &Principal,
    round_id: i64,
    grid: Option<i64>,
) -> Result<Reach, RoundError> {
    let reach = Reach::of(principal)?;
    visible(pool, &reach, round_id).await?;
    if let Some(g) = grid
        && !grid_in_reach(pool, &reach, g).await?
    {
        return Err(forbidden(format!("grid {g} is not one of yours")));
    }
    Ok(reach)
}

/// The visits of a round in the caller's grids (all grids for planners and admins), newest
/// first; `grid` narrows to one grid.
pub async fn visits(
    pool: &PgPool,
    principal: &Principal,
    round_id: i64,
    grid: Option<i64>,
) -> Result<Vec<VisitView>, RoundError> {
    let reach = round_reach(pool, principal, round_id, grid).await?;
    let (grids, _) = reach.binds();
    let rows: Vec<VisitRow> = sqlx::query_as(&format!(
        "{VISIT_SQL} where v.round_id = $1 and ($2::int8[] is null or b.grid_id = any($2))
           and ($3::int8 is null or b.grid_id = $3) order by v.visited_at desc, v.id desc limit 2000"
    ))
    .bind(round_id)
    .bind(grids)
    .bind(grid)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(visit_view).collect())
}

/// A building of a round and how far its households are recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BuildingProgress {
    pub building_id: i64,
    pub grid_id: i64,
    pub name: Option<String>,
    pub units: Option<i32>,
    pub households: i32,
    /// Households recorded by visits (any outcome).
    pub settled: i64,
    pub at_home: i64,
    pub done: bool,
    /// The building's point on surface, WGS84.
    pub lon: f64,
    pub lat: f64,
}

/// The buildings of a round in the caller's grids (a planner's: all, or `grid`), not done first.
pub async fn buildings(
    pool: &PgPool,
    principal: &Principal,
    round_id: i64,
    grid: Option<i64>,
) -> Result<Vec<BuildingProgress>, RoundError> {
    let reach = round_reach(pool, principal, round_id, grid).await?;
    let (grids, _) = reach.binds();
    let rows: Vec<BuildingRow> = sqlx::query_as(
        r"select b.id, b.grid_id, b.name, b.units, b.households,
                 coalesce(sum(v.households), 0)::int8,
                 coalesce(sum(v.households) filter (where v.outcome = 'at_home'), 0)::int8,
                 ST_X(b.anchor), ST_Y(b.anchor)
            from door_round_grid rg
            join building b on b.grid_id = rg.grid_id and b.households > 0
            left join door_visit v on v.round_id = rg.round_id and v.building_id = b.id
           where rg.round_id = $1 and ($2::int8[] is null or rg.grid_id = any($2)) and ($3::int8 is null or rg.grid_id = $3)
           group by b.id
           order by coalesce(sum(v.households), 0) >= b.households, b.grid_id, b.id
           limit 5000",
    )
    .bind(round_id)
    .bind(grids)
    .bind(grid)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(building_id, grid_id, name, units, households, settled, at_home, lon, lat)| BuildingProgress {
            building_id,
            grid_id,
            name,
            units,
            households,
            settled,
            at_home,
            done: settled >= i64::from(households),
            lon,
            lat,
        })
        .collect())
}

/// Close a round: only when every building is done (else 409 naming what is missing).
pub async fn close(changes: &Changes, principal: &Principal, id: i64) -> Result<RoundView, RoundError> {
    let pool = changes.pool();
    let reach = Reach::of(principal)?;
    let round = visible(pool, &reach, id).await?;
    let own_grid_round = round.scope == "grid" && round.grid_id.is_some_and(|g| principal.works_grid(g));
    if !(reach.is_staff() || principal.role == Role::GridWorker && own_grid_round) {
        return Err(forbidden("planners and admins close rounds; a grid worker closes a round of their own grid"));
    }
    let mut tx = pool.begin().await?;
    let closed: Option<DateTime<Utc>> = sqlx::query_scalar("select closed_at from door_round where id = $1 for update")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if closed.is_some() {
        return Err(RoundError::Conflict { reason: "round_closed", message: format!("round {id} is already closed") });
    }
    let missing: Vec<(String, i64, i64)> = sqlx::query_as(
        r"select g.code, b.id, (b.households - coalesce(sum(v.households), 0))::int8
            from door_round_grid rg
            join grid g on g.id = rg.grid_id
            join building b on b.grid_id = rg.grid_id and b.households > 0
            left join door_visit v on v.round_id = rg.round_id and v.building_id = b.id
           where rg.round_id = $1
           group by g.code, b.id
          having coalesce(sum(v.households), 0) < b.households
           order by g.code, b.id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    if !missing.is_empty() {
        let households: i64 = missing.iter().map(|m| m.2).sum();
        let mut grids: Vec<&str> = missing.iter().map(|m| m.0.as_str()).collect();
        grids.dedup();
        let named: Vec<String> =
            missing.iter().take(MISSING_NAMED).map(|(g, b, h)| format!("{g} building {b}: {h}")).collect();
        return Err(RoundError::Conflict {
            reason: "round_incomplete",
            message: format!(
                "round {id} cannot close: {} buildings in {} grids still have {households} households not recorded \
                 (in 在家, 不在家 or 拒访) — {}{}",
                missing.len(),
                grids.len(),
                named.join("; "),
                if missing.len() > MISSING_NAMED { "; …" } else { "" }
            ),
        });
    }
    sqlx::query("update door_round set closed_at = now(), closed_by = $2 where id = $1")
        .bind(id)
        .bind(principal.account_id)
        .execute(&mut *tx)
        .await?;
    // Everyone who knocked in the round earns by the `door_round_completed` rule of their group
    // (grid workers, part-time rider workers), once per round, in the closing transaction.
    let visitors: Vec<i64> = sqlx::query_scalar(
        "select distinct visitor_id from door_visit where round_id = $1 and visitor_id is not null order by 1",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    for visitor in visitors {
        crate::points::award(&mut tx, visitor, "door_round_completed", crate::points::SourceRef::door_round(id))
            .await?;
    }
    tx.commit().await?;
    changes.coverage_changed(id).await;
    get(pool, principal, id).await
}
