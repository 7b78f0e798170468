//! The grid-event workflow (the national digital city-management practice): moving a report
//! through its statuses, and the report views the API returns. The statuses, the one list of
//! transitions and the rule of who may take which step are in `status.rs`; this module applies
//! them to the database. Every write needs `If-Match` with the report's version. History rows
//! are append-only (a trigger refuses updates and deletes).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::intake::Photo;
use super::open_reports::Change;
use super::points;
use super::status::{self, AssignmentMethod, Facts, Refusal, ReportStatus, WaitingFor};
use crate::auth::{Principal, Role};
use crate::changes::Changes;

/// Why a report may be cancelled.
pub const CANCEL_REASONS: [&str; 4] = ["duplicate", "invalid", "out_of_remit", "other"];
/// Longest note in the history, in characters.
const MAX_NOTE_CHARS: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("no report {0}")]
    NotFound(i64),
    #[error("{field}: {message}")]
    Field { field: &'static str, message: String, refusal: Refusal },
    #[error("{message}")]
    Forbidden { message: String, refusal: Refusal },
    #[error("this needs If-Match with the report's version (its ETag)")]
    VersionRequired,
    #[error("the report changed (version {current}); reload it and try again")]
    Stale { current: i32 },
    #[error("a report in status {from} cannot go to {to} (allowed: {allowed})")]
    Transition { from: ReportStatus, to: ReportStatus, allowed: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl WorkflowError {
    /// The stable machine code of a refusal (`None` for a missing report or a database error).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Field { refusal, .. } | Self::Forbidden { refusal, .. } => Some(*refusal),
            Self::VersionRequired => Some(Refusal::VersionRequired),
            Self::Stale { .. } => Some(Refusal::StaleVersion),
            Self::Transition { .. } => Some(Refusal::TransitionNotAllowed),
            Self::NotFound(_) | Self::Database(_) => None,
        }
    }

    fn field(field: &'static str, refusal: Refusal, message: impl Into<String>) -> Self {
        Self::Field { field, message: message.into(), refusal }
    }

    fn forbidden(refusal: Refusal) -> Self {
        let message = match refusal {
            Refusal::FourEyes => {
                "verification is four-eyes: another worker of the grid or an admin verifies your feedback"
            }
            Refusal::NotYourGrid => "only the workers of this report's grid (or an admin) may act on it",
            Refusal::OwnReport => {
                "you filed this report: another worker of the grid or an admin accepts, verifies and closes it"
            }
            _ => "only grid workers and admins handle reports",
        };
        Self::Forbidden { message: message.into(), refusal }
    }
}

/// A requested transition.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The target status.
    pub to: String,
    /// Free text for the history (≤ 2,000 characters).
    #[serde(default)]
    pub note: Option<String>,
    /// For `cancelled`: `duplicate`, `invalid`, `out_of_remit` or `other`.
    #[serde(default)]
    pub reason: Option<String>,
    /// For `cancelled` with reason `duplicate`: the report this one duplicates.
    #[serde(default)]
    pub duplicate_of: Option<i64>,
}

/// The locked report row a transition starts from.
#[derive(Debug, sqlx::FromRow)]
struct Current {
    #[sqlx(try_from = "String")]
    status: ReportStatus,
    version: i32,
    grid_id: Option<i64>,
    reporter_id: Option<i64>,
    category: String,
    lon: f64,
    lat: f64,
    sla_hours: i32,
}

/// What a cancellation records: its reason and, for a duplicate, the original.
#[derive(Debug, Clone, Copy, Default)]
struct Cancellation<'a> {
    reason: Option<&'a str>,
    duplicate_of: Option<i64>,
}

/// Apply a transition and set off its effects ([`Changes::report_written`]); returns the
/// report's new version.
/// The checks run in the order a client can act on: the request's own fields, who acts, the
/// version, whether the status may go there, then the cancellation's details.
pub async fn transition(
    changes: &Changes,
    id: i64,
    actor: &Principal,
    if_match: Option<i32>,
    request: &TransitionRequest,
    photos: &[Photo],
) -> Result<i32, WorkflowError> {
    let note = checked_note(request.note.as_deref())?;
    let to = ReportStatus::parse(&request.to).ok_or_else(|| {
        let known: Vec<&str> = ReportStatus::ALL.iter().map(|s| s.as_str()).collect();
        WorkflowError::field("to", Refusal::UnknownStatus, format!("unknown status (one of {})", known.join(", ")))
    })?;
    if !photos.is_empty() && to != ReportStatus::Feedback {
        return Err(WorkflowError::field("photo", Refusal::FeedbackPhoto, "photos go with the `feedback` step only"));
    }
    let mut tx = changes.pool().begin().await?;
    let current = lock_report(&mut tx, id).await?;
    let facts =
        Facts { status: current.status, grid_id: current.grid_id, feedback_by: None, reporter_id: current.reporter_id };
    authorize(&mut tx, id, actor, facts, to).await?;
    let version = if_match.ok_or(WorkflowError::VersionRequired)?;
    if version != current.version {
        return Err(WorkflowError::Stale { current: current.version });
    }
    let allowed = current.status.next();
    if !allowed.contains(&to) {
        let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(WorkflowError::Transition {
            from: current.status,
            to,
            allowed: if allowed.is_empty() { "none".into() } else { allowed.join(", ") },
        });
    }
    let cancellation = cancellation(&mut tx, id, to, request).await?;
    let new_version = store(&mut tx, id, actor, &current, to, cancellation, note, photos).await?;
    tx.commit().await?;
    changes
        .report_written(Change::Upsert {
            id,
            category: current.category,
            status: to.as_str().to_string(),
            lon: current.lon,
            lat: current.lat,
            created_at: None,
        })
        .await;
    Ok(new_version)
}

/// The note, trimmed; empty is none.
fn checked_note(note: Option<&str>) -> Result<Option<&str>, WorkflowError> {
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
        return Err(WorkflowError::field("note", Refusal::NoteTooLong, format!("at most {MAX_NOTE_CHARS} characters")));
    }
    Ok(note)
}

async fn lock_report(conn: &mut PgConnection, id: i64) -> Result<Current, WorkflowError> {
    sqlx::query_as(
        r"select r.status, r.version, r.grid_id, r.reporter_id, r.category, ST_X(r.geom) as lon, ST_Y(r.geom) as lat,
                 c.sla_hours
            from report r join report_category c on c.code = r.category
           where r.id = $1 for update of r",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(WorkflowError::NotFound(id))
}

/// [`status::permission`], reading who gave the feedback only when the step checks it.
async fn authorize(
    conn: &mut PgConnection,
    id: i64,
    actor: &Principal,
    mut facts: Facts,
    to: ReportStatus,
) -> Result<(), WorkflowError> {
    // Who acts is decided first without the history, so an outsider costs no extra query.
    status::permission(actor, &facts, to).map_err(WorkflowError::forbidden)?;
    if actor.role != Role::Admin && matches!(to, ReportStatus::Verified | ReportStatus::Rework) {
        facts.feedback_by = last_feedback_by(conn, id).await?;
        status::permission(actor, &facts, to).map_err(WorkflowError::forbidden)?;
    }
    Ok(())
}

async fn last_feedback_by(conn: &mut PgConnection, id: i64) -> Result<Option<i64>, sqlx::Error> {
    Ok(sqlx::query_scalar(
        "select actor_id from report_event where report_id = $1 and to_status = 'feedback' order by id desc limit 1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .flatten())
}

/// A cancellation's reason (one of [`CANCEL_REASONS`]) and, for `duplicate`, the other report;
/// any other step carries neither.
async fn cancellation<'a>(
    conn: &mut PgConnection,
    id: i64,
    to: ReportStatus,
    request: &'a TransitionRequest,
) -> Result<Cancellation<'a>, WorkflowError> {
    if to != ReportStatus::Cancelled {
        if request.reason.is_some() || request.duplicate_of.is_some() {
            return Err(WorkflowError::field(
                "reason",
                Refusal::CancelReason,
                "reason and duplicate_of go with cancelled only",
            ));
        }
        return Ok(Cancellation::default());
    }
    let reason = request.reason.as_deref().ok_or_else(|| {
        WorkflowError::field(
            "reason",
            Refusal::CancelReason,
            format!("cancelling needs a reason: {}", CANCEL_REASONS.join(", ")),
        )
    })?;
    if !CANCEL_REASONS.contains(&reason) {
        return Err(WorkflowError::field(
            "reason",
            Refusal::CancelReason,
            format!("one of {}", CANCEL_REASONS.join(", ")),
        ));
    }
    if reason != "duplicate" {
        if request.duplicate_of.is_some() {
            return Err(WorkflowError::field("duplicate_of", Refusal::DuplicateOf, "only with reason duplicate"));
        }
        return Ok(Cancellation { reason: Some(reason), duplicate_of: None });
    }
    let original = request.duplicate_of.ok_or_else(|| {
        WorkflowError::field(
            "duplicate_of",
            Refusal::DuplicateOf,
            "a duplicate needs the id of the report it duplicates",
        )
    })?;
    let exists: bool = sqlx::query_scalar("select exists (select 1 from report where id = $1 and id <> $2)")
        .bind(original)
        .bind(id)
        .fetch_one(conn)
        .await?;
    if !exists {
        return Err(WorkflowError::field("duplicate_of", Refusal::DuplicateOf, "no such other report"));
    }
    Ok(Cancellation { reason: Some(reason), duplicate_of: Some(original) })
}

/// Write the step: the report row (timestamps, SLA deadline, counters), its history row, and
/// the points it earns or reverses, and the feedback's photos (tied to its history row). Returns
/// the new version.
#[allow(clippy::too_many_arguments)]
async fn store(
    conn: &mut PgConnection,
    id: i64,
    actor: &Principal,
    current: &Current,
    to: ReportStatus,
    cancellation: Cancellation<'_>,
    note: Option<&str>,
    photos: &[Photo],
) -> Result<i32, sqlx::Error> {
    let new_version: i32 = sqlx::query_scalar(
        r"update report
             set status = $2, version = version + 1,
                 accepted_at = case when $2 = 'accepted' then now() else accepted_at end,
                 dispatched_at = case when $2 = 'dispatched' then now() else dispatched_at end,
                 due_at = case when $2 = 'dispatched' then now() + make_interval(hours => $3) else due_at end,
                 closed_at = case when $2 = 'closed' then now() else closed_at end,
                 rework_count = rework_count + case when $2 = 'rework' then 1 else 0 end,
                 cancel_reason = coalesce($4, cancel_reason),
                 duplicate_of = coalesce($5, duplicate_of)
           where id = $1
       returning version",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(current.sla_hours)
    .bind(cancellation.reason)
    .bind(cancellation.duplicate_of)
    .fetch_one(&mut *conn)
    .await?;
    let full_note = match (cancellation.reason, note) {
        (Some(r), Some(n)) => Some(format!("[{r}] {n}")),
        (Some(r), None) => Some(format!("[{r}]")),
        (None, n) => n.map(str::to_string),
    };
    let event_id: i64 = sqlx::query_scalar(
        r"insert into report_event (report_id, action, from_status, to_status, actor_id, actor, note, grid_id)
          values ($1, 'transition', $2, $3, $4, $5, $6, $7)
          returning id",
    )
    .bind(id)
    .bind(current.status.as_str())
    .bind(to.as_str())
    .bind(actor.account_id)
    .bind(&actor.name)
    .bind(full_note)
    .bind(current.grid_id)
    .fetch_one(&mut *conn)
    .await?;
    for photo in photos {
        sqlx::query("insert into report_photo (report_id, event_id, media_type, bytes) values ($1, $2, $3, $4)")
            .bind(id)
            .bind(event_id)
            .bind(photo.media_type)
            .bind(&photo.bytes)
            .execute(&mut *conn)
            .await?;
    }
    if to == ReportStatus::Accepted {
        points::credit_accepted(conn, id).await?;
    }
    if matches!(cancellation.reason, Some("duplicate" | "invalid")) {
        points::reverse(conn, id).await?;
    }
    Ok(new_version)
}

/// One history row.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    /// Who acted (omitted in public responses: the first row's actor is the reporter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub note: Option<String>,
    pub grid_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// The reporter, for workers and admins only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reporter {
    pub id: i64,
    pub name: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Location {
    pub lon: f64,
    pub lat: f64,
}

/// A report as the API shows it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ReportView {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub status: ReportStatus,
    pub version: i32,
    pub category: String,
    pub category_name: String,
    pub description: String,
    #[sqlx(skip)]
    pub location: Option<Location>,
    #[serde(skip)]
    pub lon: f64,
    #[serde(skip)]
    pub lat: f64,
    pub grid_id: Option<i64>,
    pub grid_code: Option<String>,
    pub grid_name: Option<String>,
    #[sqlx(try_from = "String")]
    pub assignment: AssignmentMethod,
    pub subdistrict_id: Option<i64>,
    pub accuracy_m: Option<f64>,
    pub location_suspect: bool,
    pub photo_count: i32,
    /// Photos attached to feedback steps ("after" pictures), served at
    /// `/api/reports/{id}/feedback-photos/{n}` to the same people as the intake photos.
    pub feedback_photo_count: i64,
    pub duplicate_of: Option<i64>,
    pub cancel_reason: Option<String>,
    pub rework_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub reporter_id: Option<i64>,
    #[serde(skip)]
    pub reporter_name: Option<String>,
    #[serde(skip)]
    pub reporter_display_name: Option<String>,
    /// Present for grid workers and admins only.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<Reporter>,
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
    /// The account that gave the last feedback, while in `feedback` (for the four-eyes rule;
    /// never sent).
    #[serde(skip)]
    pub feedback_by: Option<i64>,
    /// For a signed-in viewer: the transitions this viewer may make now (`POST
    /// …/transitions` accepts exactly these; empty when none). Absent for anonymous viewers.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_next: Option<Vec<ReportStatus>>,
    /// For a signed-in viewer: whom the next step waits for when it is not this viewer's to
    /// take (`other_verifier`: 等待他人核查; `grid_worker`; `admin`); null when the viewer may
    /// act or nothing is left to do. Absent for anonymous viewers.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WaitingFor>, nullable)]
    pub waiting_for: Option<Option<WaitingFor>>,
}

const VIEW_SELECT: &str = r"
select r.id, r.status, r.version, r.category, c.name_zh as category_name, r.description,
       ST_X(r.geom) as lon, ST_Y(r.geom) as lat, r.grid_id, g.code as grid_code, g.name as grid_name,
       r.assignment, r.subdistrict_id, r.accuracy_m, r.location_suspect, r.photo_count,
       (select count(*) from report_photo p where p.report_id = r.id and p.event_id is not null) as feedback_photo_count,
       r.duplicate_of,
       r.cancel_reason, r.rework_count, r.created_at, r.updated_at, r.accepted_at, r.dispatched_at, r.due_at,
       r.closed_at, r.reporter_id, a.name as reporter_name, a.display_name as reporter_display_name,
       case when r.status = 'feedback' then
           (select e.actor_id from report_event e
             where e.report_id = r.id and e.to_status = 'feedback' order by e.id desc limit 1)
       end as feedback_by
  from report r
  join report_category c on c.code = r.category
  left join grid g on g.id = r.grid_id
  left join account a on a.id = r.reporter_id";

/// May this viewer see the reporter and the history's actors of a report in `grid_id`? Admins
/// and the grid workers of that very grid — decided per report, so a worker of another grid (or
/// a list spanning grids) shows the public view for every report outside their own grids.
pub fn sees_private(viewer: Option<&Principal>, grid_id: Option<i64>) -> bool {
    viewer.is_some_and(|p| {
        p.role == Role::Admin || (p.role == Role::GridWorker && grid_id.is_some_and(|g| p.works_grid(g)))
    })
}

impl ReportView {
    fn finish(mut self, viewer: Option<&Principal>) -> Self {
        self.location = Some(Location { lon: self.lon, lat: self.lat });
        let private = sees_private(viewer, self.grid_id);
        // The joined names are dropped whatever the viewer: only `reporter` ever carries them.
        let (name, display_name) = (self.reporter_name.take(), self.reporter_display_name.take());
        if let Some(viewer) = viewer {
            let facts = Facts {
                status: self.status,
                grid_id: self.grid_id,
                feedback_by: self.feedback_by,
                reporter_id: self.reporter_id,
            };
            self.allowed_next = Some(status::allowed_next(viewer, &facts));
            self.waiting_for = Some(status::waiting_for(viewer, &facts));
        }
        if private && let Some(id) = self.reporter_id {
            self.reporter = Some(Reporter { id, name: name.unwrap_or_default(), display_name });
        }
        self
    }
}

/// One report, with its history.
pub async fn get_report(pool: &PgPool, id: i64, viewer: Option<&Principal>) -> Result<Option<ReportView>, sqlx::Error> {
    let Some(view) = sqlx::query_as::<_, ReportView>(&format!("{VIEW_SELECT} where r.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let mut view = view.finish(viewer);
    let private = sees_private(viewer, view.grid_id);
    let mut history: Vec<HistoryEntry> = sqlx::query_as(
        r"select action, from_status, to_status, actor, note, grid_id, created_at
            from report_event where report_id = $1 order by id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    if !private {
        for h in &mut history {
            h.actor = None;
        }
    }
    view.history = Some(history);
    Ok(Some(view))
}

/// Filters for `GET /api/reports`.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    /// `Some(None)`: unassigned reports only.
    pub grid: Option<Option<i64>>,
    pub statuses: Option<Vec<String>>,
    pub category: Option<String>,
    pub bbox: Option<[f64; 4]>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub subdistrict: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// A page of reports (newest first) and the total matching.
pub async fn list_reports(
    pool: &PgPool,
    filter: &ListFilter,
    viewer: Option<&Principal>,
) -> Result<(Vec<ReportView>, i64), sqlx::Error> {
    let conditions = r"
        where ($1::boolean is false or r.grid_id is not distinct from $2)
          and ($3::text[] is null or r.status = any($3))
          and ($4::text is null or r.category = $4)
          and ($5::float8[] is null or r.geom && ST_MakeEnvelope($5[1], $5[2], $5[3], $5[4], 4326))
          and ($6::timestamptz is null or r.created_at >= $6)
          and ($7::timestamptz is null or r.created_at < $7)
          and ($8::bigint is null or r.subdistrict_id = $8)";
    let bbox = filter.bbox.map(|b| b.to_vec());
    let rows: Vec<ReportView> = sqlx::query_as(&format!(
        "{VIEW_SELECT} {conditions} order by r.created_at desc, r.id desc limit $9 offset $10"
    ))
    .bind(filter.grid.is_some())
    .bind(filter.grid.flatten())
    .bind(&filter.statuses)
    .bind(&filter.category)
    .bind(&bbox)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.subdistrict)
    .bind(filter.limit)
    .bind(filter.offset)
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!("select count(*) from report r {conditions}"))
        .bind(filter.grid.is_some())
        .bind(filter.grid.flatten())
        .bind(&filter.statuses)
        .bind(&filter.category)
        .bind(&bbox)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.subdistrict)
        .fetch_one(pool)
        .await?;
    Ok((rows.into_iter().map(|r| r.finish(viewer)).collect(), total))
}

/// Published metrics for a period (by report creation time).
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Stats {
    /// Reports created in the period, not counting cancelled ones.
    pub reports: i64,
    pub cancelled: i64,
    pub closed: i64,
    /// closed / reports (结案率); null without reports.
    pub closure_rate: Option<f64>,
    /// closed by the deadline / closed (按期结案率).
    pub on_time_closure_rate: Option<f64>,
    /// reports sent back at least once / reports that reached verification (返工率).
    pub rework_rate: Option<f64>,
    /// Median hours from report to closure.
    pub median_hours_to_close: Option<f64>,
}

pub async fn stats(
    pool: &PgPool,
    grid: Option<i64>,
    community: Option<i64>,
    subdistrict: Option<i64>,
    county: Option<i64>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Stats, sqlx::Error> {
    sqlx::query_as(
        r"with r as (
              select * from report
               where ($1::bigint is null or grid_id = $1) and ($2::bigint is null or subdistrict_id = $2)
                 and ($3::timestamptz is null or created_at >= $3) and ($4::timestamptz is null or created_at < $4)
                 and ($5::bigint is null or subdistrict_id in (select id from subdistrict where county_id = $5))
                 and ($6::bigint is null or grid_id in (select id from grid where community_id = $6))
          ), s as (
              select count(*) filter (where status <> 'cancelled') as reports,
                     count(*) filter (where status = 'cancelled') as cancelled,
                     count(*) filter (where status = 'closed') as closed,
                     count(*) filter (where status = 'closed' and due_at is not null and closed_at <= due_at) as on_time,
                     count(*) filter (where rework_count > 0) as reworked,
                     count(*) filter (where rework_count > 0 or status in ('verified', 'closed')) as verified_once,
                     percentile_cont(0.5) within group (order by extract(epoch from closed_at - created_at) / 3600.0)
                         filter (where status = 'closed') as median_hours
                from r
          )
          select reports, cancelled, closed,
                 closed::float8 / nullif(reports, 0) as closure_rate,
                 on_time::float8 / nullif(closed, 0) as on_time_closure_rate,
                 reworked::float8 / nullif(verified_once, 0) as rework_rate,
                 median_hours::float8 as median_hours_to_close
            from s",
    )
    .bind(grid)
    .bind(subdistrict)
    .bind(from)
    .bind(to)
    .bind(county)
    .bind(community)
    .fetch_one(pool)
    .await
}
