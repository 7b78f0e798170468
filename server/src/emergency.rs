//! Emergency mode (平急融合, "一键启动", issue 24 §2). In normal times the party members
//! registered at their residence (居住地报到党员) help their grid worker; in an emergency an admin
//! switches a county, subdistrict or community into emergency mode with one request, and every
//! registered member living there becomes a volunteer of their residence grid at once. The
//! rules, in one place (docs/emergency.md repeats them for people):
//!
//! ```text
//! episode:      started (启动) ──────────────────────────→ ended (结束, reason)
//! mobilisation: mobilised (动员) → checked_in (报到)  ──→ released (恢复常态, at the end)
//! task:         open → done
//! ```
//!
//! - **Start** ([`start`]): admins only (a county-scoped admin in their county). One transaction
//!   writes the episode, one mobilisation row per active member whose building lies in the area
//!   (set-based, never a loop), the task list of every grid of the area from [`TASK_TEMPLATE`],
//!   and a history row for each. At most one active episode per area, and none overlapping
//!   another active one (a community inside an active subdistrict): 409 `episode_active` /
//!   `episode_overlaps`, decided under an advisory lock so two starts cannot both pass.
//! - **Check-in** ([`check_in`]): the member themselves (their linked login), or a worker of
//!   the member's grid (or an admin) on their behalf. Once per member and episode (409
//!   `already_checked_in`, also for two at once: the write is conditional). A member with a
//!   login earns the points market's `emergency_checkin` rule as `party_members`, in the same
//!   transaction, once per episode (`points_ledger_award_once`).
//! - **Tasks**: the grid's workers (and admins) add tasks and mark them done while the episode
//!   is active.
//! - **End** ([`end`]): admins, with a reason and `If-Match` (the episode's version). Every
//!   mobilisation is released in the same transaction: everyone is back to normal, and the
//!   whole episode stays in the history.
//! - **Who sees what**: anyone sees episodes (area, reason, times) and counts per grid; the
//!   grid's workers see their grid's volunteers (names, phones, skills, check-ins) and tasks;
//!   planners and admins (a county-scoped one: their county) see every grid and the history.
//!   Names, phones and logins never appear in a public answer or on the map.
//!
//! No HTTP here: the edge (`http/emergency.rs`) maps [`EmergencyError`] to its statuses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::auth::{Principal, Role};

/// The task list every grid of an area starts an episode with (the grid's workers edit it).
pub const TASK_TEMPLATE: [&str; 5] = [
    "摸排重点人群（独居老人、残疾人、重病患者）/ Check on vulnerable residents",
    "逐户通知并登记在家人员 / Notify every household and record who is home",
    "生活物资代购与配送 / Buy and deliver daily supplies",
    "楼栋卡口值守与秩序维护 / Staff the building entrances",
    "巡查隐患并及时上报 / Patrol for hazards and report them",
];
/// The longest reason (start, end) and task title, in characters.
pub const MAX_REASON_CHARS: usize = 200;
pub const MAX_TITLE_CHARS: usize = 200;
/// The most rows a list returns.
pub const MAX_LIST: i64 = 5000;
/// The availabilities a member may have.
pub const AVAILABILITY: [&str; 5] = ["anytime", "weekdays", "weekends", "evenings", "on_call"];

/// The kinds of area an episode covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AreaKind {
    County,
    Subdistrict,
    Community,
}

impl AreaKind {
    pub const ALL: [Self; 3] = [Self::County, Self::Subdistrict, Self::Community];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::County => "county",
            Self::Subdistrict => "subdistrict",
            Self::Community => "community",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// The communities of area (`$1` kind, `$2` id): `c` is in it.
const IN_AREA: &str = r"(($1 = 'county' and s.county_id = $2) or ($1 = 'subdistrict' and s.id = $2)
                          or ($1 = 'community' and c.id = $2))";

/// Why an emergency request was refused.
#[derive(Debug, thiserror::Error)]
pub enum EmergencyError {
    #[error("{0}")]
    NotFound(String),
    /// 400 with the field at fault and a machine reason.
    #[error("{field}: {message}")]
    Field { field: &'static str, message: String, reason: &'static str },
    /// 403 with a machine reason (`role_cannot_act`, `not_your_grid`, `not_your_county`,
    /// `not_a_member`).
    #[error("{message}")]
    Forbidden { message: String, reason: &'static str },
    /// 422: the request names something that does not exist or does not fit.
    #[error("{field}: {message}")]
    Unprocessable { field: &'static str, message: String, reason: &'static str },
    /// 409 with a machine reason (`episode_active`, `episode_overlaps`, `episode_ended`,
    /// `already_checked_in`, `task_done`).
    #[error("{message}")]
    Conflict { reason: &'static str, message: String },
    #[error("this needs If-Match with the episode's version (its ETag)")]
    VersionRequired,
    #[error("the episode changed (version {current}); reload it and try again")]
    Stale { current: i32 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn field(field: &'static str, reason: &'static str, message: impl Into<String>) -> EmergencyError {
    EmergencyError::Field { field, message: message.into(), reason }
}

fn forbidden(reason: &'static str, message: impl Into<String>) -> EmergencyError {
    EmergencyError::Forbidden { message: message.into(), reason }
}

fn conflict(reason: &'static str, message: impl Into<String>) -> EmergencyError {
    EmergencyError::Conflict { reason, message: message.into() }
}

fn check_text(name: &'static str, value: &str, max: usize) -> Result<(), EmergencyError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(field(name, "invalid_text", format!("1 to {max} characters, not blank, no control characters")));
    }
    Ok(())
}

/// Whether `actor` is staff over a county: admins and planners, a county-scoped one in theirs.
fn county_staff(actor: &Principal, county: Option<i64>) -> bool {
    matches!(actor.role, Role::Admin | Role::Planner) && (actor.county_id.is_none() || actor.county_id == county)
}

/// An admin over this county (a county-scoped admin in theirs).
fn county_admin(actor: &Principal, county: Option<i64>) -> bool {
    actor.role == Role::Admin && (actor.county_id.is_none() || actor.county_id == county)
}

/// 403 unless the account is an admin (starting and ending episodes).
pub fn must_be_admin(actor: &Principal) -> Result<(), EmergencyError> {
    if actor.role == Role::Admin {
        return Ok(());
    }
    Err(forbidden("role_cannot_act", "only an admin switches an area into or out of emergency mode"))
}

/// 403 unless the account is staff: admins, planners, grid workers.
pub fn must_be_staff(actor: &Principal) -> Result<(), EmergencyError> {
    if matches!(actor.role, Role::Admin | Role::Planner | Role::GridWorker) {
        return Ok(());
    }
    Err(forbidden("role_cannot_act", "the member registry and squads are for grid workers, planners and admins"))
}

// ---------------------------------------------------------------------------------------------
// Requests

/// The body of `POST /api/emergency`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartEpisode {
    /// `county`, `subdistrict` or `community`.
    pub area_kind: String,
    /// The id of the county, subdistrict or community.
    pub area_id: i64,
    /// Why (an epidemic, a flood): 1 to 200 characters, shown publicly.
    pub reason: String,
}

/// The body of `POST /api/emergency/{id}/end`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndEpisode {
    /// Why it ends: 1 to 200 characters.
    pub reason: String,
}

/// The body of `POST /api/emergency/{id}/checkins`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// The member checking in. A member checking in themselves leaves it out; a grid worker or
    /// an admin names the member they record.
    pub member_id: Option<i64>,
}

/// The body of `POST /api/emergency/{id}/grids/{grid}/tasks`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// 1 to 200 characters.
    pub title: String,
}

/// The body of `POST /api/emergency/members`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The member's name (private), 1 to 64 characters.
    pub name: String,
    /// The member's phone (private), 3 to 32 of digits, spaces, `+ ( ) -`.
    pub phone: Option<String>,
    /// The building they live in (its grid is their residence grid).
    pub building_id: i64,
    /// Up to 10 skills, each 1 to 32 characters (e.g. `medical`, `driving`).
    #[serde(default)]
    pub skills: Vec<String>,
    /// `anytime` (default), `weekdays`, `weekends`, `evenings`, `on_call`.
    pub availability: Option<String>,
    /// The member's own login, if they have one (so they can check in themselves).
    pub account_id: Option<i64>,
}

/// The body of `POST /api/emergency/squads`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSquad {
    pub grid_id: i64,
    /// 1 to 64 characters, unique in the grid.
    pub name: String,
    /// Members of the grid (a member is in one squad at a time: joining moves them).
    pub member_ids: Vec<i64>,
    /// The squad leader, one of `member_ids`.
    pub leader_member_id: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Views

/// Per-grid counts of an episode (public: counts only).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct GridCounts {
    pub grid_id: i64,
    pub code: String,
    pub name: String,
    pub households: i32,
    /// Members mobilised for this grid.
    pub members: i64,
    /// Of those, checked in.
    pub checked_in: i64,
    /// Checked-in volunteers per 100 households (null for a grid without households).
    pub per_100_households: Option<f64>,
    pub open_tasks: i64,
    pub done_tasks: i64,
}

/// An episode as anyone may see it; `started_by`/`ended_by` (logins) only to staff.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EpisodeView {
    pub id: i64,
    pub area_kind: AreaKind,
    pub area_id: i64,
    pub area_name: String,
    pub reason: String,
    pub active: bool,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    /// Its ETag, for `If-Match` on the end.
    pub version: i32,
    /// Members mobilised, checked in, and released (back to normal).
    pub members: i64,
    pub checked_in: i64,
    pub released: i64,
    pub grids: i64,
    pub open_tasks: i64,
    /// Grids of the area where nobody has checked in yet.
    pub grids_without_check_in: i64,
    /// Per grid, when one episode is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grid_counts: Option<Vec<GridCounts>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct EpisodeRow {
    id: i64,
    area_kind: String,
    area_id: i64,
    area_name: String,
    county_id: Option<i64>,
    reason: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    end_reason: Option<String>,
    version: i32,
    members: i64,
    checked_in: i64,
    released: i64,
    grids: i64,
    open_tasks: i64,
    grids_without_check_in: i64,
    started_by: Option<String>,
    ended_by: Option<String>,
}

const EPISODE_SELECT: &str = r"
select e.id, e.area_kind, e.area_id, e.area_name, e.county_id, e.reason, e.started_at, e.ended_at, e.end_reason,
       e.version,
       (select count(*) from emergency_mobilisation m where m.episode_id = e.id) as members,
       (select count(*) from emergency_mobilisation m where m.episode_id = e.id and m.state = 'checked_in') as checked_in,
       (select count(*) from emergency_mobilisation m where m.episode_id = e.id and m.released_at is not null) as released,
       (select count(distinct t.grid_id) from emergency_task t where t.episode_id = e.id) as grids,
       (select count(*) from emergency_task t where t.episode_id = e.id and t.done_at is null) as open_tasks,
       (select count(*) from (select distinct t.grid_id from emergency_task t where t.episode_id = e.id
                               except select m.grid_id from emergency_mobilisation m
                                       where m.episode_id = e.id and m.state = 'checked_in') x) as grids_without_check_in,
       sa.name as started_by, ea.name as ended_by
  from emergency_episode e
  left join account sa on sa.id = e.started_by
  left join account ea on ea.id = e.ended_by";

impl EpisodeRow {
    fn finish(self, viewer: Option<&Principal>) -> EpisodeView {
        let staff = viewer.is_some_and(|v| county_staff(v, self.county_id));
        EpisodeView {
            id: self.id,
            area_kind: AreaKind::parse(&self.area_kind).unwrap_or(AreaKind::Community),
            area_id: self.area_id,
            area_name: self.area_name,
            reason: self.reason,
            active: self.ended_at.is_none(),
            started_at: self.started_at,
            ended_at: self.ended_at,
            end_reason: self.end_reason,
            version: self.version,
            members: self.members,
            checked_in: self.checked_in,
            released: self.released,
            grids: self.grids,
            open_tasks: self.open_tasks,
            grids_without_check_in: self.grids_without_check_in,
            grid_counts: None,
            started_by: if staff { self.started_by } else { None },
            ended_by: if staff { self.ended_by } else { None },
        }
    }
}

/// A volunteer of a grid in an episode, as the grid's workers see them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct VolunteerView {
    pub member_id: i64,
    pub name: String,
    pub phone: Option<String>,
    pub skills: Vec<String>,
    pub availability: String,
    pub squad: Option<String>,
    /// `mobilised` or `checked_in`.
    pub state: String,
    pub checked_in_at: Option<DateTime<Utc>>,
    /// `self` or `worker` (recorded on the member's behalf).
    pub checkin_kind: Option<String>,
    pub released_at: Option<DateTime<Utc>>,
}

/// A task of a grid in an episode.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TaskView {
    pub id: i64,
    pub grid_id: i64,
    pub title: String,
    pub done: bool,
    pub done_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One grid in an episode, for its workers, planners and admins.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GridView {
    pub episode_id: i64,
    pub active: bool,
    pub counts: GridCounts,
    pub volunteers: Vec<VolunteerView>,
    pub tasks: Vec<TaskView>,
}

/// What a check-in wrote.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckInView {
    pub episode_id: i64,
    pub member_id: i64,
    pub grid_id: i64,
    pub state: String,
    pub checked_in_at: DateTime<Utc>,
    pub checkin_kind: String,
    /// Points credited to the member's login (none without a login or a rule).
    pub points_awarded: Option<i32>,
}

/// One row of an episode's history (staff only).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EventView {
    pub id: i64,
    pub kind: String,
    pub member_id: Option<i64>,
    pub grid_id: Option<i64>,
    pub task_id: Option<i64>,
    /// The login of who did it.
    pub actor: Option<String>,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// A member's own episode: their grid, state and the grid's task list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MyEpisode {
    pub episode: EpisodeView,
    pub grid_id: i64,
    pub grid_code: String,
    pub grid_name: String,
    pub state: String,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub tasks: Vec<TaskView>,
}

/// `GET /api/emergency/mine`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Mine {
    /// The viewer's entry in the member registry (none: not a registered member).
    pub member_id: Option<i64>,
    /// Active episodes that mobilised the viewer.
    pub episodes: Vec<MyEpisode>,
}

/// A registered member, as staff see them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MemberView {
    pub id: i64,
    pub name: String,
    pub phone: Option<String>,
    pub building_id: i64,
    pub grid_id: Option<i64>,
    pub grid_code: Option<String>,
    pub skills: Vec<String>,
    pub availability: String,
    pub squad_id: Option<i64>,
    pub squad: Option<String>,
    pub has_login: bool,
    pub active: bool,
    pub source: String,
}

/// A squad of a grid (staff).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SquadView {
    pub id: i64,
    pub grid_id: i64,
    pub name: String,
    pub leader_member_id: Option<i64>,
    pub leader_name: Option<String>,
    pub member_ids: Vec<i64>,
    pub source: String,
}

/// A change the live feed announces (`event: emergency`), counts and ids only.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notice {
    /// `started`, `ended`, `checked_in`, `task_added`, `task_done`.
    pub kind: &'static str,
    pub episode_id: i64,
    pub area_kind: AreaKind,
    pub area_id: i64,
    /// The grid it happened in (check-ins and tasks).
    pub grid_id: Option<i64>,
    pub member_id: Option<i64>,
    pub task_id: Option<i64>,
    pub at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Episodes

async fn episode_row(pool: &PgPool, id: i64) -> Result<EpisodeRow, EmergencyError> {
    sqlx::query_as(&format!("{EPISODE_SELECT} where e.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| EmergencyError::NotFound(format!("emergency episode {id}")))
}

/// Filters of `GET /api/emergency`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ListFilter {
    /// Only active (`Some(true)`) or ended (`Some(false)`) episodes.
    pub active: Option<bool>,
    pub county: Option<i64>,
}

/// Episodes, newest first.
pub async fn list(
    pool: &PgPool,
    filter: ListFilter,
    viewer: Option<&Principal>,
) -> Result<Vec<EpisodeView>, sqlx::Error> {
    let rows: Vec<EpisodeRow> = sqlx::query_as(&format!(
        r"{EPISODE_SELECT}
           where ($1::bool is null or (e.ended_at is null) = $1) and ($2::bigint is null or e.county_id = $2)
           order by e.started_at desc, e.id desc limit 500"
    ))
    .bind(filter.active)
    .bind(filter.county)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| r.finish(viewer)).collect())
}

/// One episode with its counts per grid.
pub async fn get(pool: &PgPool, id: i64, viewer: Option<&Principal>) -> Result<EpisodeView, EmergencyError> {
    let row = episode_row(pool, id).await?;
    let mut view = row.finish(viewer);
    view.grid_counts = Some(grid_counts(pool, id, None).await?);
    Ok(view)
}

const GRID_COUNTS: &str = r"
select g.id as grid_id, g.code, g.name, g.households,
       coalesce(m.members, 0) as members, coalesce(m.checked_in, 0) as checked_in,
       case when g.households > 0 then round(coalesce(m.checked_in, 0) * 100.0 / g.households, 2)::float8 end
           as per_100_households,
       t.open_tasks, t.done_tasks
  from (select grid_id, count(*) filter (where done_at is null) as open_tasks,
               count(*) filter (where done_at is not null) as done_tasks
          from emergency_task where episode_id = $1 group by grid_id) t
  join grid g on g.id = t.grid_id
  left join (select grid_id, count(*) as members, count(*) filter (where state = 'checked_in') as checked_in
               from emergency_mobilisation where episode_id = $1 group by grid_id) m on m.grid_id = g.id
 where $2::bigint is null or g.id = $2
 order by g.id";

async fn grid_counts(pool: &PgPool, episode: i64, grid: Option<i64>) -> Result<Vec<GridCounts>, sqlx::Error> {
    sqlx::query_as(GRID_COUNTS).bind(episode).bind(grid).fetch_all(pool).await
}

/// Switch an area into emergency mode (rules in the module documentation).
pub async fn start(
    pool: &PgPool,
    actor: &Principal,
    body: &StartEpisode,
) -> Result<(EpisodeView, Notice), EmergencyError> {
    must_be_admin(actor)?;
    let kind = AreaKind::parse(&body.area_kind)
        .ok_or_else(|| field("area_kind", "unknown_area_kind", "one of county, subdistrict, community"))?;
    check_text("reason", &body.reason, MAX_REASON_CHARS)?;
    let found: Option<(String, Option<i64>)> = sqlx::query_as(match kind {
        AreaKind::County => "select name, id from county where id = $1",
        AreaKind::Subdistrict => "select name, county_id from subdistrict where id = $1",
        AreaKind::Community => {
            "select c.name, s.county_id from community c join subdistrict s on s.id = c.subdistrict_id where c.id = $1"
        }
    })
    .bind(body.area_id)
    .fetch_optional(pool)
    .await?;
    let Some((area_name, county)) = found else {
        return Err(EmergencyError::Unprocessable {
            field: "area_id",
            message: format!("no {} {}", kind.as_str(), body.area_id),
            reason: "no_such_area",
        });
    };
    if !county_admin(actor, county) {
        return Err(forbidden("not_your_county", "a county's admin switches areas of their own county only"));
    }
    let mut tx = pool.begin().await?;
    // Two starts at once must not both find no overlap: they take turns here.
    sqlx::query("select pg_advisory_xact_lock(hashtext('gridmap_emergency_start'))").execute(&mut *tx).await?;
    let overlapping: Option<(i64, String, i64, String)> = sqlx::query_as(&format!(
        r"select e.id, e.area_kind, e.area_id, e.area_name from emergency_episode e
           where e.ended_at is null
             and ((e.area_kind = $1 and e.area_id = $2)
                  or exists (select 1 from community c join subdistrict s on s.id = c.subdistrict_id
                              where {IN_AREA}
                                and ((e.area_kind = 'county' and s.county_id = e.area_id)
                                     or (e.area_kind = 'subdistrict' and s.id = e.area_id)
                                     or (e.area_kind = 'community' and c.id = e.area_id))))
           order by e.id limit 1"
    ))
    .bind(kind.as_str())
    .bind(body.area_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, other_kind, other_id, other_name)) = overlapping {
        return Err(if other_kind == kind.as_str() && other_id == body.area_id {
            conflict("episode_active", format!("{area_name} is already in emergency mode (episode {id})"))
        } else {
            conflict(
                "episode_overlaps",
                format!("{area_name} overlaps {other_kind} {other_name}, in emergency mode already (episode {id})"),
            )
        });
    }
    let (id, started_at): (i64, DateTime<Utc>) = sqlx::query_as(
        r"insert into emergency_episode (area_kind, area_id, area_name, county_id, reason, started_by)
          values ($1, $2, $3, $4, $5, $6) returning id, started_at",
    )
    .bind(kind.as_str())
    .bind(body.area_id)
    .bind(&area_name)
    .bind(county)
    .bind(body.reason.trim())
    .bind(actor.account_id)
    .fetch_one(&mut *tx)
    .await?;
    record(&mut tx, id, actor, Event { detail: Some(body.reason.trim()), ..Event::of("started") }).await?;
    // Every active member living in the area, at once; one who still serves another episode
    // (moved house since) stays with it.
    sqlx::query(&format!(
        r"with m as (
              insert into emergency_mobilisation (episode_id, member_id, grid_id)
              select $3, m.id, b.grid_id
                from party_member m join building b on b.id = m.building_id
                join grid g on g.id = b.grid_id join community c on c.id = g.community_id
                join subdistrict s on s.id = c.subdistrict_id
               where m.active and {IN_AREA}
              on conflict (member_id) where released_at is null do nothing
              returning member_id, grid_id)
          insert into emergency_event (episode_id, kind, member_id, grid_id, actor_id, actor)
          select $3, 'mobilised', member_id, grid_id, $4, $5 from m order by member_id"
    ))
    .bind(kind.as_str())
    .bind(body.area_id)
    .bind(id)
    .bind(actor.account_id)
    .bind(&actor.name)
    .execute(&mut *tx)
    .await?;
    // Every grid of the area gets the template's task list.
    sqlx::query(&format!(
        r"with t as (
              insert into emergency_task (episode_id, grid_id, title, created_by)
              select $3, g.id, t.title, $4
                from grid g join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id
               cross join unnest($6::text[]) with ordinality as t(title, n)
               where {IN_AREA}
               order by g.id, t.n
              returning id, grid_id, title)
          insert into emergency_event (episode_id, kind, grid_id, task_id, actor_id, actor, detail)
          select $3, 'task_added', grid_id, id, $4, $5, title from t order by id"
    ))
    .bind(kind.as_str())
    .bind(body.area_id)
    .bind(id)
    .bind(actor.account_id)
    .bind(&actor.name)
    .bind(TASK_TEMPLATE.to_vec())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let notice = Notice {
        kind: "started",
        episode_id: id,
        area_kind: kind,
        area_id: body.area_id,
        grid_id: None,
        member_id: None,
        task_id: None,
        at: started_at,
    };
    Ok((get(pool, id, Some(actor)).await?, notice))
}

/// End an episode: everyone back to normal, in one transaction.
pub async fn end(
    pool: &PgPool,
    id: i64,
    actor: &Principal,
    if_match: Option<i64>,
    body: &EndEpisode,
) -> Result<(EpisodeView, Notice), EmergencyError> {
    must_be_admin(actor)?;
    check_text("reason", &body.reason, MAX_REASON_CHARS)?;
    let current = episode_row(pool, id).await?;
    if !county_admin(actor, current.county_id) {
        return Err(forbidden("not_your_county", "a county's admin ends episodes of their own county only"));
    }
    let version = if_match.ok_or(EmergencyError::VersionRequired)?;
    if current.ended_at.is_some() {
        return Err(conflict("episode_ended", format!("episode {id} has already ended")));
    }
    if version != i64::from(current.version) {
        return Err(EmergencyError::Stale { current: current.version });
    }
    let mut tx = pool.begin().await?;
    let ended: Option<DateTime<Utc>> = sqlx::query_scalar(
        r"update emergency_episode set ended_at = now(), ended_by = $2, end_reason = $3, version = version + 1
           where id = $1 and ended_at is null and version = $4 returning ended_at",
    )
    .bind(id)
    .bind(actor.account_id)
    .bind(body.reason.trim())
    .bind(version)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(ended_at) = ended else {
        drop(tx);
        let now = episode_row(pool, id).await?;
        if now.ended_at.is_some() {
            return Err(conflict("episode_ended", format!("episode {id} has already ended")));
        }
        return Err(EmergencyError::Stale { current: now.version });
    };
    sqlx::query(
        r"with r as (
              update emergency_mobilisation set released_at = now()
               where episode_id = $1 and released_at is null returning member_id, grid_id)
          insert into emergency_event (episode_id, kind, member_id, grid_id, actor_id, actor)
          select $1, 'released', member_id, grid_id, $2, $3 from r order by member_id",
    )
    .bind(id)
    .bind(actor.account_id)
    .bind(&actor.name)
    .execute(&mut *tx)
    .await?;
    record(&mut tx, id, actor, Event { detail: Some(body.reason.trim()), ..Event::of("ended") }).await?;
    tx.commit().await?;
    let notice = Notice {
        kind: "ended",
        episode_id: id,
        area_kind: AreaKind::parse(&current.area_kind).unwrap_or(AreaKind::Community),
        area_id: current.area_id,
        grid_id: None,
        member_id: None,
        task_id: None,
        at: ended_at,
    };
    Ok((get(pool, id, Some(actor)).await?, notice))
}

/// The history of an episode (planners and admins of its county), oldest first.
pub async fn history(
    pool: &PgPool,
    id: i64,
    actor: &Principal,
    member: Option<i64>,
) -> Result<Vec<EventView>, EmergencyError> {
    let current = episode_row(pool, id).await?;
    if !county_staff(actor, current.county_id) {
        return Err(forbidden("role_cannot_act", "an episode's history is for planners and admins of its county"));
    }
    Ok(sqlx::query_as(
        r"select id, kind, member_id, grid_id, task_id, actor, detail, at from emergency_event
           where episode_id = $1 and ($2::bigint is null or member_id = $2) order by id",
    )
    .bind(id)
    .bind(member)
    .fetch_all(pool)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Grids: volunteers, check-ins, tasks

/// Whether `actor` works this grid or is staff of its county.
async fn of_grid(pool: &PgPool, actor: &Principal, grid: i64) -> Result<bool, sqlx::Error> {
    if actor.role == Role::GridWorker {
        return Ok(actor.works_grid(grid));
    }
    if !matches!(actor.role, Role::Admin | Role::Planner) {
        return Ok(false);
    }
    if actor.county_id.is_none() {
        return Ok(true);
    }
    let county: Option<i64> = sqlx::query_scalar(
        r"select s.county_id from grid g join community c on c.id = g.community_id
            join subdistrict s on s.id = c.subdistrict_id where g.id = $1",
    )
    .bind(grid)
    .fetch_optional(pool)
    .await?
    .flatten();
    Ok(actor.county_id == county)
}

fn not_your_grid() -> EmergencyError {
    forbidden("not_your_grid", "only the grid's workers (and planners and admins of its county) may do this")
}

/// One grid of an episode: volunteers with their check-ins, tasks, coverage.
pub async fn grid(pool: &PgPool, id: i64, grid: i64, actor: &Principal) -> Result<GridView, EmergencyError> {
    let episode = episode_row(pool, id).await?;
    if !matches!(actor.role, Role::Admin | Role::Planner | Role::GridWorker) {
        return Err(forbidden("role_cannot_act", "a grid's volunteers are for its workers, planners and admins"));
    }
    if !of_grid(pool, actor, grid).await? {
        return Err(not_your_grid());
    }
    let counts = grid_counts(pool, id, Some(grid))
        .await?
        .pop()
        .ok_or_else(|| EmergencyError::NotFound(format!("grid {grid} in emergency episode {id}")))?;
    let volunteers = sqlx::query_as(
        r"select p.id as member_id, p.name, p.phone, p.skills, p.availability, q.name as squad, m.state,
                 m.checked_in_at, m.checkin_kind, m.released_at
            from emergency_mobilisation m join party_member p on p.id = m.member_id
            left join squad q on q.id = p.squad_id
           where m.episode_id = $1 and m.grid_id = $2
           order by m.state desc, q.name nulls last, p.id",
    )
    .bind(id)
    .bind(grid)
    .fetch_all(pool)
    .await?;
    let tasks = tasks_of(pool, id, grid).await?;
    Ok(GridView { episode_id: id, active: episode.ended_at.is_none(), counts, volunteers, tasks })
}

async fn tasks_of(pool: &PgPool, episode: i64, grid: i64) -> Result<Vec<TaskView>, sqlx::Error> {
    sqlx::query_as(
        r"select id, grid_id, title, done_at is not null as done, done_at, created_at from emergency_task
           where episode_id = $1 and grid_id = $2 order by id",
    )
    .bind(episode)
    .bind(grid)
    .fetch_all(pool)
    .await
}

/// A member's mobilisation: grid, state, released at, the member's login.
type Mobilised = (i64, String, Option<DateTime<Utc>>, Option<i64>);
/// A member's active mobilisation: episode, grid, grid code, grid name, state, checked in at.
type MineRow = (i64, i64, String, String, String, Option<DateTime<Utc>>);

/// Check a member in (rules in the module documentation).
pub async fn check_in(
    pool: &PgPool,
    id: i64,
    actor: &Principal,
    body: &CheckIn,
) -> Result<(CheckInView, Notice), EmergencyError> {
    let episode = episode_row(pool, id).await?;
    let own: Option<i64> = sqlx::query_scalar("select id from party_member where account_id = $1")
        .bind(actor.account_id)
        .fetch_optional(pool)
        .await?;
    let Some(member) = body.member_id.or(own) else {
        return Err(forbidden(
            "not_a_member",
            "your login is not a registered member; a grid worker names the member (member_id) to check them in",
        ));
    };
    let by_self = own == Some(member);
    let mobilised: Option<Mobilised> = sqlx::query_as(
        r"select m.grid_id, m.state, m.released_at, p.account_id from emergency_mobilisation m
            join party_member p on p.id = m.member_id where m.episode_id = $1 and m.member_id = $2",
    )
    .bind(id)
    .bind(member)
    .fetch_optional(pool)
    .await?;
    if !by_self && !matches!(actor.role, Role::Admin | Role::GridWorker) {
        return Err(forbidden("not_a_member", "a member checks in themselves; grid workers and admins record others"));
    }
    let Some((grid_id, state, _released, member_account)) = mobilised else {
        return Err(EmergencyError::Unprocessable {
            field: "member_id",
            message: format!("member {member} was not mobilised by episode {id}"),
            reason: "not_mobilised",
        });
    };
    let recorder = actor.role != Role::Planner && of_grid(pool, actor, grid_id).await?;
    if !by_self && !recorder {
        return Err(not_your_grid());
    }
    if episode.ended_at.is_some() {
        return Err(conflict("episode_ended", format!("episode {id} has ended: check-ins are closed")));
    }
    if state == "checked_in" {
        return Err(conflict("already_checked_in", format!("member {member} has already checked in")));
    }
    let kind = if by_self { "self" } else { "worker" };
    let mut tx = pool.begin().await?;
    let written: Option<DateTime<Utc>> = sqlx::query_scalar(
        r"update emergency_mobilisation set state = 'checked_in', checked_in_at = now(), checked_in_by = $3,
                 checkin_kind = $4
           where episode_id = $1 and member_id = $2 and state = 'mobilised' and released_at is null
          returning checked_in_at",
    )
    .bind(id)
    .bind(member)
    .bind(actor.account_id)
    .bind(kind)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(checked_in_at) = written else {
        // Someone else checked them in (or the episode ended) since the read.
        return Err(conflict("already_checked_in", format!("member {member} has already checked in")));
    };
    let event =
        Event { member_id: Some(member), grid_id: Some(grid_id), detail: Some(kind), ..Event::of("checked_in") };
    record(&mut tx, id, actor, event).await?;
    let points = match member_account {
        Some(account) => crate::points::award_in_group(
            &mut tx,
            account,
            "emergency_checkin",
            Some("party_members"),
            crate::points::SourceRef { kind: "emergency_episode", id },
        )
        .await?
        .map(|a| a.points),
        None => None,
    };
    tx.commit().await?;
    let notice = Notice {
        kind: "checked_in",
        episode_id: id,
        area_kind: AreaKind::parse(&episode.area_kind).unwrap_or(AreaKind::Community),
        area_id: episode.area_id,
        grid_id: Some(grid_id),
        member_id: Some(member),
        task_id: None,
        at: checked_in_at,
    };
    Ok((
        CheckInView {
            episode_id: id,
            member_id: member,
            grid_id,
            state: "checked_in".into(),
            checked_in_at,
            checkin_kind: kind.into(),
            points_awarded: points,
        },
        notice,
    ))
}

/// Add a task to a grid's list (its workers, admins) while the episode is active.
pub async fn add_task(
    pool: &PgPool,
    id: i64,
    grid: i64,
    actor: &Principal,
    body: &NewTask,
) -> Result<(TaskView, Notice), EmergencyError> {
    if !matches!(actor.role, Role::Admin | Role::GridWorker) {
        return Err(forbidden("role_cannot_act", "the grid's workers and admins edit its task list"));
    }
    check_text("title", &body.title, MAX_TITLE_CHARS)?;
    let episode = episode_row(pool, id).await?;
    if !of_grid(pool, actor, grid).await? {
        return Err(not_your_grid());
    }
    let in_episode: bool =
        sqlx::query_scalar("select exists (select 1 from emergency_task where episode_id = $1 and grid_id = $2)")
            .bind(id)
            .bind(grid)
            .fetch_one(pool)
            .await?;
    if !in_episode {
        return Err(EmergencyError::NotFound(format!("grid {grid} in emergency episode {id}")));
    }
    if episode.ended_at.is_some() {
        return Err(conflict("episode_ended", format!("episode {id} has ended: its task lists are closed")));
    }
    let mut tx = pool.begin().await?;
    let task: TaskView = sqlx::query_as(
        r"insert into emergency_task (episode_id, grid_id, title, created_by) values ($1, $2, $3, $4)
          returning id, grid_id, title, false as done, done_at, created_at",
    )
    .bind(id)
    .bind(grid)
    .bind(body.title.trim())
    .bind(actor.account_id)
    .fetch_one(&mut *tx)
    .await?;
    record(&mut tx, id, actor, Event::of_task("task_added", &task)).await?;
    tx.commit().await?;
    let notice = task_notice("task_added", &episode, &task);
    Ok((task, notice))
}

/// One row of an episode's history (`emergency_event`), written in the transaction of the
/// change it records (the set-at-once rows of a start or an end are written by their own
/// statements, `insert … select`).
struct Event<'a> {
    kind: &'static str,
    member_id: Option<i64>,
    grid_id: Option<i64>,
    task_id: Option<i64>,
    detail: Option<&'a str>,
}

impl<'a> Event<'a> {
    fn of(kind: &'static str) -> Self {
        Self { kind, member_id: None, grid_id: None, task_id: None, detail: None }
    }

    fn of_task(kind: &'static str, task: &'a TaskView) -> Self {
        Self { grid_id: Some(task.grid_id), task_id: Some(task.id), detail: Some(&task.title), ..Self::of(kind) }
    }
}

async fn record(
    tx: &mut sqlx::PgConnection,
    episode: i64,
    actor: &Principal,
    event: Event<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r"insert into emergency_event (episode_id, kind, member_id, grid_id, task_id, actor_id, actor, detail)
          values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(episode)
    .bind(event.kind)
    .bind(event.member_id)
    .bind(event.grid_id)
    .bind(event.task_id)
    .bind(actor.account_id)
    .bind(&actor.name)
    .bind(event.detail)
    .execute(tx)
    .await?;
    Ok(())
}

fn task_notice(kind: &'static str, episode: &EpisodeRow, task: &TaskView) -> Notice {
    Notice {
        kind,
        episode_id: episode.id,
        area_kind: AreaKind::parse(&episode.area_kind).unwrap_or(AreaKind::Community),
        area_id: episode.area_id,
        grid_id: Some(task.grid_id),
        member_id: None,
        task_id: Some(task.id),
        at: task.done_at.unwrap_or(task.created_at),
    }
}

/// Mark a task done (its grid's workers, admins) while the episode is active.
pub async fn finish_task(
    pool: &PgPool,
    id: i64,
    task: i64,
    actor: &Principal,
) -> Result<(TaskView, Notice), EmergencyError> {
    if !matches!(actor.role, Role::Admin | Role::GridWorker) {
        return Err(forbidden("role_cannot_act", "the grid's workers and admins edit its task list"));
    }
    let episode = episode_row(pool, id).await?;
    let found: Option<(i64, bool)> =
        sqlx::query_as("select grid_id, done_at is not null from emergency_task where id = $1 and episode_id = $2")
            .bind(task)
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let Some((grid, done)) = found else {
        return Err(EmergencyError::NotFound(format!("task {task} of emergency episode {id}")));
    };
    if !of_grid(pool, actor, grid).await? {
        return Err(not_your_grid());
    }
    if episode.ended_at.is_some() {
        return Err(conflict("episode_ended", format!("episode {id} has ended: its task lists are closed")));
    }
    if done {
        return Err(conflict("task_done", format!("task {task} is done already")));
    }
    let mut tx = pool.begin().await?;
    let view: Option<TaskView> = sqlx::query_as(
        r"update emergency_task set done_at = now(), done_by = $2 where id = $1 and done_at is null
          returning id, grid_id, title, true as done, done_at, created_at",
    )
    .bind(task)
    .bind(actor.account_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(view) = view else {
        return Err(conflict("task_done", format!("task {task} is done already")));
    };
    record(&mut tx, id, actor, Event::of_task("task_done", &view)).await?;
    tx.commit().await?;
    let notice = task_notice("task_done", &episode, &view);
    Ok((view, notice))
}

/// The viewer's own active episodes, as a registered member.
pub async fn mine(pool: &PgPool, viewer: &Principal) -> Result<Mine, EmergencyError> {
    let member: Option<i64> = sqlx::query_scalar("select id from party_member where account_id = $1")
        .bind(viewer.account_id)
        .fetch_optional(pool)
        .await?;
    let Some(member) = member else { return Ok(Mine { member_id: None, episodes: Vec::new() }) };
    let rows: Vec<MineRow> = sqlx::query_as(
        r"select m.episode_id, m.grid_id, g.code, g.name, m.state, m.checked_in_at
            from emergency_mobilisation m join grid g on g.id = m.grid_id
           where m.member_id = $1 and m.released_at is null order by m.episode_id",
    )
    .bind(member)
    .fetch_all(pool)
    .await?;
    let mut episodes = Vec::new();
    for (episode, grid_id, grid_code, grid_name, state, checked_in_at) in rows {
        episodes.push(MyEpisode {
            episode: episode_row(pool, episode).await?.finish(Some(viewer)),
            grid_id,
            grid_code,
            grid_name,
            state,
            checked_in_at,
            tasks: tasks_of(pool, episode, grid_id).await?,
        });
    }
    Ok(Mine { member_id: Some(member), episodes })
}

// ---------------------------------------------------------------------------------------------
// The member registry and squads (staff)

const MEMBER_SELECT: &str = r"
select p.id, p.name, p.phone, p.building_id, b.grid_id, g.code as grid_code, p.skills, p.availability, p.squad_id,
       q.name as squad, p.account_id is not null as has_login, p.active, p.source
  from party_member p join building b on b.id = p.building_id
  left join grid g on g.id = b.grid_id
  left join community c on c.id = g.community_id
  left join subdistrict s on s.id = c.subdistrict_id
  left join squad q on q.id = p.squad_id";

/// The grids a staff member may list, or `None` for all (of their county, `county`).
fn scope(actor: &Principal, grid: Option<i64>) -> Result<(Option<Vec<i64>>, Option<i64>), EmergencyError> {
    match actor.role {
        Role::GridWorker => match grid {
            Some(g) if actor.works_grid(g) => Ok((Some(vec![g]), None)),
            Some(_) => Err(not_your_grid()),
            None => Ok((Some(actor.grid_ids.clone()), None)),
        },
        _ => Ok((grid.map(|g| vec![g]), actor.county_id)),
    }
}

/// Members (of a grid; a grid worker: of their grids), by id.
pub async fn members(pool: &PgPool, actor: &Principal, grid: Option<i64>) -> Result<Vec<MemberView>, EmergencyError> {
    must_be_staff(actor)?;
    let (grids, county) = scope(actor, grid)?;
    Ok(sqlx::query_as(&format!(
        r"{MEMBER_SELECT}
           where ($1::bigint[] is null or b.grid_id = any($1)) and ($2::bigint is null or s.county_id = $2)
           order by p.id limit $3"
    ))
    .bind(grids)
    .bind(county)
    .bind(MAX_LIST)
    .fetch_all(pool)
    .await?)
}

fn check_phone(value: &str) -> Result<(), EmergencyError> {
    if !(3..=32).contains(&value.chars().count()) || !value.chars().all(|c| c.is_ascii_digit() || " +()-".contains(c)) {
        return Err(field("phone", "invalid_phone", "3 to 32 characters of digits, spaces, + ( ) -"));
    }
    Ok(())
}

/// Register a member (planners and admins; a grid worker for a building of their grid).
pub async fn add_member(pool: &PgPool, actor: &Principal, body: &NewMember) -> Result<MemberView, EmergencyError> {
    must_be_staff(actor)?;
    check_text("name", &body.name, 64)?;
    if let Some(phone) = &body.phone {
        check_phone(phone)?;
    }
    if body.skills.len() > 10 || body.skills.iter().any(|s| check_text("skills", s, 32).is_err()) {
        return Err(field("skills", "invalid_skills", "at most 10 skills of 1 to 32 characters each"));
    }
    let availability = body.availability.as_deref().unwrap_or("anytime");
    if !AVAILABILITY.contains(&availability) {
        return Err(field("availability", "unknown_availability", format!("one of {}", AVAILABILITY.join(", "))));
    }
    let grid: Option<Option<i64>> = sqlx::query_scalar("select grid_id from building where id = $1")
        .bind(body.building_id)
        .fetch_optional(pool)
        .await?;
    let Some(grid) = grid else {
        return Err(EmergencyError::Unprocessable {
            field: "building_id",
            message: format!("no building {}", body.building_id),
            reason: "no_such_building",
        });
    };
    let reaches = match grid {
        Some(g) => of_grid(pool, actor, g).await?,
        None => actor.role != Role::GridWorker && actor.county_id.is_none(),
    };
    if !reaches {
        return Err(not_your_grid());
    }
    if let Some(account) = body.account_id {
        let taken: Option<bool> = sqlx::query_scalar(
            "select exists (select 1 from party_member where account_id = a.id) from account a where a.id = $1",
        )
        .bind(account)
        .fetch_optional(pool)
        .await?;
        match taken {
            None => {
                return Err(EmergencyError::Unprocessable {
                    field: "account_id",
                    message: format!("no account {account}"),
                    reason: "no_such_account",
                });
            }
            Some(true) => {
                return Err(conflict("account_linked", format!("account {account} is another member's login")));
            }
            Some(false) => {}
        }
    }
    let skills: Vec<&str> = body.skills.iter().map(|s| s.trim()).collect();
    let id: i64 = sqlx::query_scalar(
        r"insert into party_member (name, phone, building_id, skills, availability, account_id)
          values ($1, $2, $3, $4, $5, $6) returning id",
    )
    .bind(body.name.trim())
    .bind(body.phone.as_deref())
    .bind(body.building_id)
    .bind(&skills)
    .bind(availability)
    .bind(body.account_id)
    .fetch_one(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("party_member_account_key") => {
            conflict("account_linked", "that account is another member's login")
        }
        _ => EmergencyError::Database(e),
    })?;
    Ok(sqlx::query_as(&format!("{MEMBER_SELECT} where p.id = $1")).bind(id).fetch_one(pool).await?)
}

const SQUAD_SELECT: &str = r"
select q.id, q.grid_id, q.name, q.leader_member_id, l.name as leader_name,
       array(select p.id from party_member p where p.squad_id = q.id order by p.id) as member_ids, q.source
  from squad q left join party_member l on l.id = q.leader_member_id
  join grid g on g.id = q.grid_id
  left join community c on c.id = g.community_id
  left join subdistrict s on s.id = c.subdistrict_id";

/// Squads (of a grid; a grid worker: of their grids).
pub async fn squads(pool: &PgPool, actor: &Principal, grid: Option<i64>) -> Result<Vec<SquadView>, EmergencyError> {
    must_be_staff(actor)?;
    let (grids, county) = scope(actor, grid)?;
    Ok(sqlx::query_as(&format!(
        r"{SQUAD_SELECT}
           where ($1::bigint[] is null or q.grid_id = any($1)) and ($2::bigint is null or s.county_id = $2)
           order by q.grid_id, q.id limit $3"
    ))
    .bind(grids)
    .bind(county)
    .bind(MAX_LIST)
    .fetch_all(pool)
    .await?)
}

/// Form a squad of a grid's members (its workers, planners, admins).
pub async fn add_squad(pool: &PgPool, actor: &Principal, body: &NewSquad) -> Result<SquadView, EmergencyError> {
    must_be_staff(actor)?;
    check_text("name", &body.name, 64)?;
    if body.member_ids.is_empty() || body.member_ids.len() > 50 {
        return Err(field("member_ids", "invalid_members", "1 to 50 members"));
    }
    if body.leader_member_id.is_some_and(|l| !body.member_ids.contains(&l)) {
        return Err(field("leader_member_id", "leader_not_member", "the leader is one of member_ids"));
    }
    let exists: bool = sqlx::query_scalar("select exists (select 1 from grid where id = $1)")
        .bind(body.grid_id)
        .fetch_one(pool)
        .await?;
    if !exists {
        return Err(EmergencyError::Unprocessable {
            field: "grid_id",
            message: format!("no grid {}", body.grid_id),
            reason: "no_such_grid",
        });
    }
    if !of_grid(pool, actor, body.grid_id).await? {
        return Err(not_your_grid());
    }
    let outside: i64 = sqlx::query_scalar(
        r"select count(*) from unnest($1::bigint[]) x(id)
           where not exists (select 1 from party_member p join building b on b.id = p.building_id
                              where p.id = x.id and b.grid_id = $2)",
    )
    .bind(&body.member_ids)
    .bind(body.grid_id)
    .fetch_one(pool)
    .await?;
    if outside > 0 {
        return Err(EmergencyError::Unprocessable {
            field: "member_ids",
            message: format!("{outside} of the members do not live in grid {}", body.grid_id),
            reason: "member_not_in_grid",
        });
    }
    let mut tx = pool.begin().await?;
    let id: i64 =
        sqlx::query_scalar("insert into squad (grid_id, name, leader_member_id) values ($1, $2, $3) returning id")
            .bind(body.grid_id)
            .bind(body.name.trim())
            .bind(body.leader_member_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.constraint() == Some("squad_name_per_grid") => {
                    conflict("squad_exists", "the grid already has a squad of that name")
                }
                _ => EmergencyError::Database(e),
            })?;
    sqlx::query("update party_member set squad_id = $1 where id = any($2)")
        .bind(id)
        .bind(&body.member_ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(sqlx::query_as(&format!("{SQUAD_SELECT} where q.id = $1")).bind(id).fetch_one(pool).await?)
}

/// An area an episode can cover (`GET /api/emergency/areas`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Area {
    pub kind: String,
    pub id: i64,
    pub name: String,
    /// The subdistrict's county, the community's subdistrict (none for a county).
    pub parent_id: Option<i64>,
    /// The active episode covering it, if any.
    pub active_episode: Option<i64>,
}

/// Every county, subdistrict and community, with the active episode covering each (public:
/// names of areas are on every map), for the admin's picker.
pub async fn areas(pool: &PgPool) -> Result<Vec<Area>, sqlx::Error> {
    sqlx::query_as(
        r"with a as (
              select 'county' as kind, k.id, k.name, null::int8 as parent_id, k.id as county_id, null::int8 as sd,
                     null::int8 as cm, 0 as sort
                from county k
              union all
              select 'subdistrict', s.id, s.name, s.county_id, s.county_id, s.id, null, 1 from subdistrict s
              union all
              select 'community', c.id, c.name, c.subdistrict_id, s.county_id, s.id, c.id, 2
                from community c join subdistrict s on s.id = c.subdistrict_id)
          select a.kind, a.id, a.name, a.parent_id,
                 (select min(e.id) from emergency_episode e
                   where e.ended_at is null
                     and ((e.area_kind = 'county' and e.area_id = a.county_id)
                          or (e.area_kind = 'subdistrict' and e.area_id = a.sd)
                          or (e.area_kind = 'community' and e.area_id = a.cm)
                          or (a.kind = 'county' and e.county_id = a.id)
                          or (a.kind = 'subdistrict' and e.area_kind = 'community'
                              and e.area_id in (select id from community where subdistrict_id = a.id)))) as active_episode
            from a order by a.sort, a.name, a.id",
    )
    .fetch_all(pool)
    .await
}

/// Emergency coverage for `/api/stats`: active episodes and their counts in all.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Summary {
    /// Registered members (active) in the registry.
    pub registered_members: i64,
    pub squads: i64,
    pub active_episodes: i64,
    pub mobilised: i64,
    pub checked_in: i64,
    pub episodes_ever: i64,
}

/// The registry's and the active episodes' totals (of one county, or all).
pub async fn summary(pool: &PgPool, county: Option<i64>) -> Result<Summary, sqlx::Error> {
    sqlx::query_as(
        r"select (select count(*) from party_member p join building b on b.id = p.building_id
                   left join grid g on g.id = b.grid_id left join community c on c.id = g.community_id
                   left join subdistrict s on s.id = c.subdistrict_id
                  where p.active and ($1::bigint is null or s.county_id = $1)) as registered_members,
                 (select count(*) from squad q join grid g on g.id = q.grid_id
                   left join community c on c.id = g.community_id left join subdistrict s on s.id = c.subdistrict_id
                  where $1::bigint is null or s.county_id = $1) as squads,
                 (select count(*) from emergency_episode where ended_at is null
                     and ($1::bigint is null or county_id = $1)) as active_episodes,
                 (select count(*) from emergency_mobilisation m join emergency_episode e on e.id = m.episode_id
                   where e.ended_at is null and ($1::bigint is null or e.county_id = $1)) as mobilised,
                 (select count(*) from emergency_mobilisation m join emergency_episode e on e.id = m.episode_id
                   where e.ended_at is null and m.state = 'checked_in' and ($1::bigint is null or e.county_id = $1))
                     as checked_in,
                 (select count(*) from emergency_episode where $1::bigint is null or county_id = $1) as episodes_ever",
    )
    .bind(county)
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, county: Option<i64>) -> Principal {
        Principal {
            account_id: 1,
            name: "p".into(),
            role,
            part_time_grid_worker: false,
            grid_ids: vec![7],
            county_id: county,
        }
    }

    #[test]
    fn area_kinds_round_trip_through_their_text_and_json() {
        for k in AreaKind::ALL {
            assert_eq!(AreaKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).expect("json"), serde_json::json!(k.as_str()));
        }
        assert_eq!(AreaKind::parse("city"), None);
    }

    #[test]
    fn only_admins_start_and_a_county_admin_only_in_their_county() {
        assert!(must_be_admin(&principal(Role::Admin, None)).is_ok());
        for role in [Role::Planner, Role::GridWorker, Role::Volunteer, Role::Resident] {
            assert!(must_be_admin(&principal(role, None)).is_err(), "{role:?}");
        }
        assert!(county_admin(&principal(Role::Admin, Some(2)), Some(2)));
        assert!(!county_admin(&principal(Role::Admin, Some(2)), Some(3)));
        assert!(county_admin(&principal(Role::Admin, None), Some(3)));
        assert!(!county_admin(&principal(Role::Planner, None), Some(3)));
    }

    #[test]
    fn a_grid_worker_lists_members_of_their_own_grids_only() {
        let worker = principal(Role::GridWorker, None);
        assert_eq!(scope(&worker, None).expect("own").0, Some(vec![7]));
        assert!(scope(&worker, Some(8)).is_err());
        assert_eq!(scope(&principal(Role::Planner, Some(4)), None).expect("all").1, Some(4));
    }

    #[test]
    fn the_task_template_has_short_titles() {
        for t in TASK_TEMPLATE {
            assert!(check_text("title", t, MAX_TITLE_CHARS).is_ok());
        }
    }
}
