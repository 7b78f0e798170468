//! The people's-sentiment log (民情日志): dated entries per grid or building — free text and tags
//! from a fixed list — kept by the grid's workers. Rules (docs/field-work.md repeats them):
//!
//! - **Private as a whole**: read and written by the workers of the entry's grid (grid workers,
//!   part-time rider workers), planners and admins (a county-scoped one: its county). There is no
//!   community role: the community's staff log in as planners. No public route, tile or
//!   feature ever carries an entry, its text, tags or author.
//! - **An entry's grid** is its building's grid when it names a building (so it follows the
//!   building when grids are re-drawn), else the grid it was written for.
//! - **To a report, in one action**: `POST /api/sentiment/{id}/report` files a report through
//!   report intake (`reports::intake`, the one insert path) at the building's point (else the
//!   grid's point on surface), in the category sent or the one the entry's first tag suggests,
//!   by the caller. The entry's private text is **not** copied: report descriptions are public,
//!   so the description is what the caller sends. The entry keeps `report_id` (at most one
//!   report per entry; again is 409 naming it), and `GET /api/sentiment?report=ID` finds the
//!   entry of a report. The intake key is derived from the entry id, so a retried conversion
//!   can never file a second report.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::Principal;
use crate::changes::Changes;
use crate::reports::intake::{self, IntakeError, Outcome};
use crate::rounds::{GRID_COUNTY_SQL, Reach, RoundError, grid_in_reach};

/// Longest entry, in characters.
pub const MAX_BODY_CHARS: usize = 2000;

/// A tag of the fixed list.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Tag {
    pub code: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    /// The report category an entry with this tag turns into by default, if any.
    pub suggested_category: Option<&'static str>,
}

/// The fixed tags (the same list as the `sentiment_entry_tags_known` constraint, migration 0034).
pub const TAGS: &[Tag] = &[
    Tag { code: "dispute", name_zh: "矛盾纠纷", name_en: "Dispute", suggested_category: None },
    Tag { code: "policy", name_zh: "政策咨询", name_en: "Policy question", suggested_category: None },
    Tag {
        code: "key_group_care", name_zh: "重点人群关怀", name_en: "Care for key groups", suggested_category: None
    },
    Tag { code: "livelihood", name_zh: "民生诉求", name_en: "Livelihood request", suggested_category: None },
    Tag {
        code: "safety",
        name_zh: "安全隐患",
        name_en: "Safety hazard",
        suggested_category: Some("dangerous_building"),
    },
    Tag {
        code: "environment",
        name_zh: "环境卫生",
        name_en: "Environment and sanitation",
        suggested_category: Some("exposed_garbage"),
    },
    Tag { code: "suggestion", name_zh: "意见建议", name_en: "Suggestion", suggested_category: None },
];

/// The body of `POST /api/sentiment`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEntry {
    /// The grid (when the entry is about no single building).
    pub grid_id: Option<i64>,
    /// The building; its grid is the entry's grid.
    pub building_id: Option<i64>,
    /// The day it is about (default: today in China); not in the future.
    pub entry_date: Option<NaiveDate>,
    /// Free text, 1 to 2,000 characters; private.
    pub body: String,
    /// Codes from `GET /api/sentiment/tags`.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An entry (private).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub id: i64,
    pub grid_id: Option<i64>,
    pub building_id: Option<i64>,
    pub entry_date: NaiveDate,
    pub body: String,
    pub tags: Vec<String>,
    /// Who wrote it (display name, else login).
    pub author: Option<String>,
    /// The report it was turned into.
    pub report_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Filters of `GET /api/sentiment`.
#[derive(Debug, Default)]
pub struct EntryFilter {
    pub grid: Option<i64>,
    pub building: Option<i64>,
    pub report: Option<i64>,
}

fn field(field: &str, message: impl Into<String>) -> RoundError {
    RoundError::Field { field: field.to_string(), message: message.into() }
}

const ENTRY_SQL: &str = r"select e.id, coalesce(b.grid_id, e.grid_id), e.building_id, e.entry_date, e.body, e.tags,
           coalesce(a.display_name, a.name), e.report_id, e.created_at
      from sentiment_entry e
      left join building b on b.id = e.building_id
      left join account a on a.id = e.author_id";

type EntryRow =
    (i64, Option<i64>, Option<i64>, NaiveDate, String, Vec<String>, Option<String>, Option<i64>, DateTime<Utc>);

fn entry_view(row: EntryRow) -> EntryView {
    let (id, grid_id, building_id, entry_date, body, tags, author, report_id, created_at) = row;
    EntryView { id, grid_id, building_id, entry_date, body, tags, author, report_id, created_at }
}

/// Today in China (UTC+8, no daylight saving).
fn today() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(8)).date_naive()
}

/// The entries the caller reaches, newest first.
pub async fn list(pool: &PgPool, principal: &Principal, filter: &EntryFilter) -> Result<Vec<EntryView>, RoundError> {
    let reach = Reach::of(principal)?;
    if let Some(g) = filter.grid
        && !grid_in_reach(pool, &reach, g).await?
    {
        return Err(RoundError::Forbidden(format!("grid {g} is not one of yours")));
    }
    let (grids, county) = reach.binds();
    let rows: Vec<EntryRow> = sqlx::query_as(&format!(
        "{ENTRY_SQL}
          left join grid g on g.id = coalesce(b.grid_id, e.grid_id)
         where ($1::int8[] is null or g.id = any($1))
           and ($2::int8 is null or {GRID_COUNTY_SQL} = $2)
           and ($3::int8 is null or g.id = $3)
           and ($4::int8 is null or e.building_id = $4)
           and ($5::int8 is null or e.report_id = $5)
         order by e.entry_date desc, e.id desc
         limit 500"
    ))
    .bind(grids)
    .bind(county)
    .bind(filter.grid)
    .bind(filter.building)
    .bind(filter.report)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(entry_view).collect())
}

/// Write an entry for a grid or building the caller reaches.
pub async fn create(pool: &PgPool, principal: &Principal, body: &CreateEntry) -> Result<EntryView, RoundError> {
    let reach = Reach::of(principal)?;
    let text = body.body.trim();
    if text.is_empty() {
        return Err(field("body", "required: what was heard"));
    }
    if text.chars().count() > MAX_BODY_CHARS {
        return Err(field("body", format!("at most {MAX_BODY_CHARS} characters")));
    }
    let mut tags: Vec<String> = Vec::new();
    for (i, t) in body.tags.iter().enumerate() {
        if !TAGS.iter().any(|k| k.code == t) {
            return Err(field(
                &format!("tags[{i}]"),
                format!("unknown tag `{t}`; one of {}", TAGS.iter().map(|k| k.code).collect::<Vec<_>>().join(", ")),
            ));
        }
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let date = body.entry_date.unwrap_or_else(today);
    if date > today() {
        return Err(field("entry_date", "must not be in the future"));
    }
    let grid_id = match (body.building_id, body.grid_id) {
        (Some(b), given) => {
            let grid: Option<Option<i64>> =
                sqlx::query_scalar("select grid_id from building where id = $1").bind(b).fetch_optional(pool).await?;
            let Some(grid) = grid else {
                return Err(RoundError::Unprocessable { field: "building_id", message: format!("no building {b}") });
            };
            let Some(grid) = grid else {
                return Err(RoundError::Unprocessable {
                    field: "building_id",
                    message: format!("building {b} lies in no grid"),
                });
            };
            if given.is_some_and(|g| g != grid) {
                return Err(field("grid_id", format!("building {b} is in grid {grid}; leave grid_id out")));
            }
            grid
        }
        (None, Some(g)) => {
            let exists: bool =
                sqlx::query_scalar("select exists (select 1 from grid where id = $1)").bind(g).fetch_one(pool).await?;
            if !exists {
                return Err(RoundError::Unprocessable { field: "grid_id", message: format!("no grid {g}") });
            }
            g
        }
        (None, None) => return Err(field("grid_id", "required: a grid_id or a building_id")),
    };
    if !grid_in_reach(pool, &reach, grid_id).await? {
        return Err(RoundError::Forbidden(format!("grid {grid_id} is not one of yours")));
    }
    let id: i64 = sqlx::query_scalar(
        r"insert into sentiment_entry (grid_id, building_id, entry_date, body, tags, author_id)
          values ($1, $2, $3, $4, $5, $6) returning id",
    )
    .bind(grid_id)
    .bind(body.building_id)
    .bind(date)
    .bind(text)
    .bind(&tags)
    .bind(principal.account_id)
    .fetch_one(pool)
    .await?;
    entry(pool, id).await
}

async fn entry(pool: &PgPool, id: i64) -> Result<EntryView, RoundError> {
    let row: EntryRow = sqlx::query_as(&format!("{ENTRY_SQL} where e.id = $1")).bind(id).fetch_one(pool).await?;
    Ok(entry_view(row))
}

/// The entry if the caller reaches it: 404 when there is none, 403 when it is not theirs.
async fn reachable(pool: &PgPool, principal: &Principal, id: i64) -> Result<EntryView, RoundError> {
    let reach = Reach::of(principal)?;
    let Some(found) = sqlx::query_as::<_, EntryRow>(&format!("{ENTRY_SQL} where e.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(entry_view)
    else {
        return Err(RoundError::NotFound(format!("no sentiment entry {id}")));
    };
    let mine = match found.grid_id {
        Some(g) => grid_in_reach(pool, &reach, g).await?,
        None => reach.is_staff(),
    };
    if mine { Ok(found) } else { Err(RoundError::Forbidden(format!("sentiment entry {id} is not in your grids"))) }
}

/// The body of `POST /api/sentiment/{id}/report`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryToReport {
    /// A category code; default: the one the entry's first tag suggests.
    pub category: Option<String>,
    /// The report's description, which is public: the entry's text is never copied into it.
    pub description: Option<String>,
}

/// What turning an entry into a report did: the entry (now linked) and the report's 201 body.
#[derive(Debug)]
pub struct Converted {
    pub entry: EntryView,
    pub report_id: i64,
    pub report: Value,
}

/// Turn an entry into a report through report intake (rules in the module documentation).
pub async fn to_report(
    changes: &Changes,
    principal: &Principal,
    id: i64,
    body: &EntryToReport,
) -> Result<Converted, RoundError> {
    let pool = changes.pool();
    let found = reachable(pool, principal, id).await?;
    if let Some(report) = found.report_id {
        return Err(RoundError::Conflict {
            reason: "already_reported",
            message: format!("sentiment entry {id} was already turned into report {report}"),
        });
    }
    let category = match &body.category {
        Some(c) => c.clone(),
        None => found
            .tags
            .iter()
            .find_map(|t| TAGS.iter().find(|k| k.code == t).and_then(|k| k.suggested_category))
            .ok_or_else(|| field("category", "required: no tag of this entry suggests a category"))?
            .to_string(),
    };
    let point: Option<(f64, f64)> = sqlx::query_as(
        r"select ST_X(p), ST_Y(p) from (
              select coalesce((select b.anchor from building b where b.id = $1 and b.grid_id is not null),
                              (select ST_PointOnSurface(g.geom) from grid g where g.id = $2)) as p) s
           where p is not null",
    )
    .bind(found.building_id)
    .bind(found.grid_id)
    .fetch_optional(pool)
    .await?;
    let Some((lon, lat)) = point else {
        return Err(RoundError::Unprocessable {
            field: "id",
            message: format!("sentiment entry {id} has no place left"),
        });
    };
    let categories = changes.reports().categories(pool).await?;
    let report = intake::validate(
        &json!({"category": category, "description": body.description.clone().unwrap_or_default(),
                "location": {"lon": lon, "lat": lat, "crs": "wgs84"}}),
        &categories,
    )
    .map_err(intake_error)?;
    // One entry, one key: a retried conversion is a resend, never a second report.
    let key = report_key(id);
    let outcome = intake::submit(changes, &report, Some(principal), Some(key)).await.map_err(intake_error)?;
    let (report_id, body) = match outcome {
        Outcome::Created { id, body, .. } | Outcome::Replayed { id, body } => (id, body),
    };
    sqlx::query("update sentiment_entry set report_id = $2 where id = $1 and report_id is null")
        .bind(id)
        .bind(report_id)
        .execute(pool)
        .await?;
    Ok(Converted {
        entry: entry(pool, id).await?,
        report_id,
        report: serde_json::from_str(&body).unwrap_or(Value::Null),
    })
}

fn intake_error(err: IntakeError) -> RoundError {
    match err {
        IntakeError::Field { field, message } => RoundError::Field { field, message },
        IntakeError::LoginRequired(m) => RoundError::Forbidden(m),
        IntakeError::KeyReused => RoundError::Conflict {
            reason: "already_reported",
            message: "this entry was already turned into a report with other values".into(),
        },
        IntakeError::Database(e) => RoundError::Database(e),
    }
}

/// The intake key of an entry's report (derived from its id: a retry is a resend).
pub fn report_key(id: i64) -> Uuid {
    let digest = Sha256::digest(format!("gridmap sentiment entry {id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
