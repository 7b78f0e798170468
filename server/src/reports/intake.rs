//! Report intake: validate (naming the offending field), convert GCJ-02, assign a grid, and
//! store exactly once per `Idempotency-Key` — like ODK Central, the same key with the same
//! payload gets the original 201 body back and stores nothing; the same key with a different
//! payload is a conflict. A SHA-256 of the canonical payload (including who sent it and the
//! photos' digests) is stored next to the key.
//!
//! The happy path is one SQL statement (grid and workers, insert, history row; the possible
//! duplicates come from memory, `open_reports.rs`), shared with the reports that arrive at the
//! same moment (`commit.rs`), so intake costs a share of one round trip and one durable commit.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::commit::{Inserted, Row, insert_one};
use super::fringe::{Fringe, Margin};
use super::index::GridIndex;
use super::resends::KeyAnswer;
use super::status::AssignmentMethod;
use super::{Category, MAX_ACCURACY_M, MAX_DESCRIPTION_CHARS, ReportMachinery, gcj02};
use crate::auth::Principal;
use crate::changes::Changes;

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("{0}")]
    LoginRequired(String),
    #[error("this Idempotency-Key was already used for a different report")]
    KeyReused,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn field(field: &str, message: impl Into<String>) -> IntakeError {
    IntakeError::Field { field: field.to_string(), message: message.into() }
}

/// The coordinate systems a client may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crs {
    Wgs84,
    Gcj02,
    Cgcs2000,
}

impl Crs {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wgs84 => "wgs84",
            Self::Gcj02 => "gcj02",
            Self::Cgcs2000 => "cgcs2000",
        }
    }
}

/// A photo that passed the content checks, EXIF already removed.
#[derive(Debug, Clone)]
pub struct Photo {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

/// A checked report, coordinates in WGS84.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub category: Category,
    pub description: String,
    pub lon: f64,
    pub lat: f64,
    pub input_lon: f64,
    pub input_lat: f64,
    pub crs: Crs,
    pub accuracy_m: Option<f64>,
    pub location_suspect: bool,
    pub photos: Vec<Photo>,
}

/// The body of `POST /api/reports` (JSON), of a batch item and of a multipart intake's `report`
/// part. Any other field is refused, naming it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReport {
    /// A category code from `GET /api/report-categories`.
    pub category: String,
    /// At most 2,000 characters.
    pub description: Option<String>,
    pub location: ReportLocation,
    /// A batch item's own key (`POST /api/reports/batch` reads it); ignored anywhere else.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub idempotency_key: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportLocation {
    pub lon: f64,
    pub lat: f64,
    /// `wgs84` (default; GPS, the browser), `gcj02` (Amap/Tencent; converted) or `cgcs2000`.
    pub crs: Option<String>,
    /// GPS accuracy in metres, 0..=100. 0 (mock location) is accepted but flagged `location_suspect`.
    pub accuracy_m: Option<f64>,
}

/// Check a JSON report body ([`CreateReport`]). Field names in errors are JSON paths such as
/// `location.lon`.
pub fn validate(body: &Value, categories: &[Category]) -> Result<NewReport, IntakeError> {
    if !body.is_object() {
        return Err(field("body", "expected a JSON object"));
    }
    // Checked here as well as at the HTTP edge: a batch item and a multipart `report` part
    // arrive here without passing the edge's whole-body check.
    if let Some(path) = crate::nul::nul_path(body) {
        return Err(field(&path, "must not contain a NUL character (\\u0000)"));
    }
    let report: CreateReport = serde_path_to_error::deserialize(body).map_err(|e| shape_error(&e))?;
    check(report, categories)
}

/// serde's refusal as a field error naming the JSON path of the field at fault. serde's path
/// ends at an unknown field itself, but at the object missing a field: the missing one is added.
fn shape_error(err: &serde_path_to_error::Error<serde_json::Error>) -> IntakeError {
    let path = err.path().to_string();
    let path = path.trim_start_matches('.');
    let message = err.inner().to_string();
    if let Some((name, _)) = message.strip_prefix("missing field `").and_then(|rest| rest.split_once('`')) {
        field(&if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }, "required")
    } else if message.starts_with("unknown field `") {
        field(path, "unknown field")
    } else {
        field(if path.is_empty() { "body" } else { path }, message)
    }
}

/// The rules serde's types do not say: a known category, lengths, ranges, the CRS.
fn check(report: CreateReport, categories: &[Category]) -> Result<NewReport, IntakeError> {
    let CreateReport { category: code, description, location, idempotency_key: _ } = report;
    let category = categories
        .iter()
        .find(|c| c.code == code)
        .cloned()
        .ok_or_else(|| field("category", format!("unknown category `{code}` (see GET /api/report-categories)")))?;
    let description = description.map(|d| d.trim().to_string()).unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(field("description", format!("at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    let ReportLocation { lon: input_lon, lat: input_lat, crs, accuracy_m } = location;
    if !(-180.0..=180.0).contains(&input_lon) {
        return Err(field("location.lon", "must be between -180 and 180"));
    }
    if !(-90.0..=90.0).contains(&input_lat) {
        return Err(field("location.lat", "must be between -90 and 90"));
    }
    let crs = match crs.map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("wgs84" | "epsg:4326") => Crs::Wgs84,
        Some("gcj02") => Crs::Gcj02,
        Some("cgcs2000" | "epsg:4490") => Crs::Cgcs2000,
        Some(_) => return Err(field("location.crs", "one of wgs84, gcj02, cgcs2000")),
    };
    if let Some(a) = accuracy_m {
        if !a.is_finite() {
            return Err(field("location.accuracy_m", "must be a number"));
        }
        if a < 0.0 {
            return Err(field("location.accuracy_m", "must not be negative"));
        }
        if a > MAX_ACCURACY_M {
            return Err(field(
                "location.accuracy_m",
                format!("GPS accuracy {a} m is worse than {MAX_ACCURACY_M} m; wait for a better fix"),
            ));
        }
    }
    let (lon, lat) = match crs {
        Crs::Gcj02 => gcj02::gcj02_to_wgs84(input_lon, input_lat),
        Crs::Wgs84 | Crs::Cgcs2000 => (input_lon, input_lat),
    };
    Ok(NewReport {
        category,
        description,
        lon,
        lat,
        input_lon,
        input_lat,
        crs,
        accuracy_m,
        // Mock-location providers report exactly 0 m; real fixes never do.
        location_suspect: accuracy_m == Some(0.0),
        photos: Vec::new(),
    })
}

/// The SHA-256 of the canonical payload: what the client sent (after parsing, so key order and
/// whitespace do not matter), who sent it, and the photos' digests.
pub fn payload_hash(report: &NewReport, reporter: Option<i64>) -> Vec<u8> {
    let photos: Vec<String> = report.photos.iter().map(|p| hex::encode(Sha256::digest(&p.bytes))).collect();
    let canonical = json!([
        report.category.code,
        report.description,
        report.input_lon,
        report.input_lat,
        report.crs.as_str(),
        report.accuracy_m,
        reporter,
        photos,
    ]);
    Sha256::digest(canonical.to_string().as_bytes()).to_vec()
}

/// What intake did.
#[derive(Debug)]
pub enum Outcome {
    /// A new report; `body` is the 201 body (JSON text).
    Created { id: i64, grid_id: Option<i64>, body: String },
    /// A resend of an earlier report: the original 201 body, nothing stored.
    Replayed { id: i64, body: String },
}

impl Outcome {
    pub fn body(&self) -> &str {
        match self {
            Self::Created { body, .. } | Self::Replayed { body, .. } => body,
        }
    }
}

/// The grid assignment of a point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub grid_id: Option<i64>,
    pub method: AssignmentMethod,
    pub subdistrict_id: Option<i64>,
}

/// Assign a WGS84 point. Memory answers rule 1 (the index), and rules 2–3 and the county margin
/// whenever the answer clears their safety band (`fringe.rs`); PostGIS answers the rest — a point
/// about 150 m from a grid, about 500 m outside the county, or near a tie. `Ok(None)` means the
/// point is outside the county.
pub async fn assign(
    pool: &PgPool,
    reports: &ReportMachinery,
    lon: f64,
    lat: f64,
) -> Result<Option<Assignment>, sqlx::Error> {
    match reports.index.ready(pool) {
        Some(index) => assign_with(pool, reports, &index, lon, lat).await,
        None => Ok(assign_in_sql(pool, reports, lon, lat).await?.0),
    }
}

/// Whether the point `p.g` lies within `$3` metres of the county (null when no county boundary
/// is loaded): the county-margin rule as both PostGIS assignments below ask it.
macro_rules! within_county_margin {
    () => {
        r"(select case when count(*) > 0 then coalesce(bool_or(ST_DWithin(a.geom::geography, p.g::geography, $3))
                                              filter (where a.geom && ST_Expand(p.g, 0.01)), false) end
             from area a where a.kind = 'county')"
    };
}

/// A PostGIS answer `(within the county margin?, grid, method, subdistrict)` as an assignment;
/// `None` outside the county (with no county boundary loaded, outside the county's box).
fn assignment_from_sql(
    lon: f64,
    lat: f64,
    (in_county, grid_id, method, subdistrict_id): (Option<bool>, Option<i64>, String, Option<i64>),
) -> Result<Option<Assignment>, sqlx::Error> {
    if !in_county.unwrap_or_else(|| crate::geo_input::inside_county([lon, lat, lon, lat])) {
        return Ok(None);
    }
    let method = AssignmentMethod::try_from(method).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(Some(Assignment { grid_id, method, subdistrict_id }))
}

/// Every rule in PostGIS, while the in-memory index is still being built (a server just
/// started): the covering grid, else the nearest within 150 m, else the nearest grid's
/// subdistrict, and the county margin — with the index generation the statement saw, so the
/// insert assigns again only if the grids change in between (commit.rs).
async fn assign_in_sql(
    pool: &PgPool,
    reports: &ReportMachinery,
    lon: f64,
    lat: f64,
) -> Result<(Option<Assignment>, Option<i64>), sqlx::Error> {
    reports.count_assignment_in_sql();
    let (in_county, grid_id, method, subdistrict_id, generation): (
        Option<bool>,
        Option<i64>,
        String,
        Option<i64>,
        Option<i64>,
    ) = sqlx::query_as(concat!(
        r"with p as (select ST_SetSRID(ST_MakePoint($1, $2), 4326) as g)
              select ",
        within_county_margin!(),
        r", a.grid_id, a.assignment, a.subdistrict_id, (select generation from grid_index_generation)
                from p, gridmap_report_assignment(p.g) a"
    ))
    .bind(lon)
    .bind(lat)
    .bind(super::COUNTY_MARGIN_M)
    .fetch_one(pool)
    .await?;
    Ok((assignment_from_sql(lon, lat, (in_county, grid_id, method, subdistrict_id))?, generation))
}

/// [`assign`] with the index already in hand (intake also records its generation).
async fn assign_with(
    pool: &PgPool,
    reports: &ReportMachinery,
    index: &GridIndex,
    lon: f64,
    lat: f64,
) -> Result<Option<Assignment>, sqlx::Error> {
    if let Some(grid_id) = index.lookup(lon, lat) {
        // Grids lie inside the county, so a covered point needs no county check.
        return Ok(Some(Assignment { grid_id: Some(grid_id), method: AssignmentMethod::Covers, subdistrict_id: None }));
    }
    let margin = index.county_margin(lon, lat);
    if margin == Some(Margin::Outside) {
        return Ok(None);
    }
    if let (Some(Margin::Inside), Some(fringe)) = (margin, index.fringe(lon, lat)) {
        return Ok(Some(match fringe {
            // The insert takes a grid's subdistrict from the grid itself.
            Fringe::Nearest(grid_id) => {
                Assignment { grid_id: Some(grid_id), method: AssignmentMethod::Nearest, subdistrict_id: None }
            }
            Fringe::Unassigned(sd) => {
                Assignment { grid_id: None, method: AssignmentMethod::Unassigned, subdistrict_id: sd }
            }
        }));
    }
    reports.count_assignment_in_sql();
    // Rule 1 is settled (the index agrees with gridmap_grid_at), so only rules 2 and 3 run;
    // CASE evaluates the county subquery only when memory could not decide.
    let row: (Option<bool>, Option<i64>, String, Option<i64>) = sqlx::query_as(concat!(
        r"with p as (select ST_SetSRID(ST_MakePoint($1, $2), 4326) as g)
          select case when $4 then true else ",
        within_county_margin!(),
        r" end,
                 a.grid_id, a.assignment, a.subdistrict_id
            from p, gridmap_nearest_assignment(p.g) a"
    ))
    .bind(lon)
    .bind(lat)
    .bind(super::COUNTY_MARGIN_M)
    .bind(margin == Some(Margin::Inside))
    .fetch_one(pool)
    .await?;
    assignment_from_sql(lon, lat, row)
}

/// Store a checked report once per key and, when it is new, set off its effects
/// ([`Changes::report_written`]) before the caller answers. The history names `reporter` as the
/// actor (`anonymous` without a login).
pub async fn submit(
    changes: &Changes,
    report: &NewReport,
    reporter: Option<&Principal>,
    key: Option<Uuid>,
) -> Result<Outcome, IntakeError> {
    let (pool, reports) = (changes.pool(), changes.reports());
    if reporter.is_none() && !report.category.anonymous_allowed {
        return Err(IntakeError::LoginRequired(format!(
            "category `{}` needs a login; anonymous reports are allowed only for some categories",
            report.category.code
        )));
    }
    let reporter_id = reporter.map(|p| p.account_id);
    let hash = payload_hash(report, reporter_id);
    // A resend of a key stored recently is answered from memory (resends.rs); any other key
    // goes to the insert, whose ON CONFLICT finds an older resend at no extra cost.
    if let Some(stored) = key.and_then(|k| reports.resends.get(k)) {
        return if stored.hash == hash {
            Ok(Outcome::Replayed { id: stored.id, body: stored.body.clone() })
        } else {
            Err(IntakeError::KeyReused)
        };
    }
    // The row carries the generation of the index that assigned it: if the grids have moved on
    // since, PostgreSQL assigns it again (commit.rs).
    let (assignment, index_generation) = match reports.index.ready(pool) {
        Some(index) => (assign_with(pool, reports, &index, report.lon, report.lat).await?, index.generation()),
        None => assign_in_sql(pool, reports, report.lon, report.lat).await?,
    };
    let assignment = assignment.ok_or_else(|| field("location", "the point is outside Yiyuan county"))?;
    // Whole microseconds, as PostgreSQL stores it, so the in-memory copy matches the row.
    let now: DateTime<Utc> = Utc::now().trunc_subsecs(6);
    // Duplicates: the 20 nearest open reports of the category within its radius, from memory
    // (open_reports.rs; the same search as SQL's gridmap_possible_duplicates).
    reports.open.ensure_loaded(pool).await?;
    let duplicates = reports.open.search(
        &report.category.code,
        report.lon,
        report.lat,
        f64::from(report.category.duplicate_radius_m),
    );
    let row = Row {
        category: report.category.code.clone(),
        description: report.description.clone(),
        lon: report.lon,
        lat: report.lat,
        input_lon: report.input_lon,
        input_lat: report.input_lat,
        crs: report.crs.as_str(),
        accuracy_m: report.accuracy_m,
        location_suspect: report.location_suspect,
        grid_id: assignment.grid_id,
        method: assignment.method,
        subdistrict_id: assignment.subdistrict_id,
        reporter_id,
        key,
        hash: hash.clone(),
        photo_count: i32::try_from(report.photos.len()).unwrap_or(i32::MAX),
        created_at: now,
        partial: created_body(report, &assignment, now),
        duplicates,
        actor: reporter.map_or("anonymous", |p| p.name.as_str()).to_string(),
        index_generation,
    };
    let Some((id, grid_id, body)) = store(pool, reports, row, &report.photos).await? else {
        let key = key.expect("only a keyed insert can conflict");
        return replay(pool, reports, key, &hash).await?.ok_or_else(|| {
            IntakeError::Database(sqlx::Error::Protocol("idempotency key conflict without a stored report".into()))
        });
    };
    if let Some(key) = key {
        reports.resends.remember(key, KeyAnswer { id, hash, body: body.clone() });
    }
    changes
        .report_written(super::open_reports::Change::Upsert {
            id,
            category: report.category.code.clone(),
            status: "submitted".into(),
            lon: report.lon,
            lat: report.lat,
            created_at: Some(now),
        })
        .await;
    Ok(Outcome::Created { id, grid_id, body })
}

/// The 201 body's fields known before the insert (the statement adds the id, the grid and the
/// duplicates).
fn created_body(report: &NewReport, assignment: &Assignment, now: DateTime<Utc>) -> Value {
    json!({
        "status": "submitted",
        "version": 1,
        "category": report.category.code,
        "category_name": report.category.name_zh,
        "description": report.description,
        "location": {"lon": report.lon, "lat": report.lat, "crs": "wgs84"},
        "input_location": {"lon": report.input_lon, "lat": report.input_lat, "crs": report.crs.as_str()},
        "accuracy_m": report.accuracy_m,
        "location_suspect": report.location_suspect,
        "assignment": assignment.method.as_str(),
        "photo_count": report.photos.len(),
        "created_at": now,
    })
}

/// Insert `row` (and its photos); `None` when its key was stored already. Without photos the
/// one statement is its own transaction, written with whatever other reports arrive meanwhile
/// (commit.rs: one statement, one durable commit for the batch).
async fn store(pool: &PgPool, reports: &ReportMachinery, row: Row, photos: &[Photo]) -> Result<Inserted, sqlx::Error> {
    if photos.is_empty() {
        return reports.commit.insert(pool, row).await;
    }
    let mut tx = pool.begin().await?;
    super::commit::lock_index(&mut tx).await?;
    let stored = insert_one(&mut *tx, &row).await?;
    if let Some((id, _, _)) = &stored {
        for photo in photos {
            sqlx::query("insert into report_photo (report_id, media_type, bytes) values ($1, $2, $3)")
                .bind(id)
                .bind(photo.media_type)
                .bind(&photo.bytes)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(stored)
}

/// The stored answer for a key: the original body if the payload matches, else a conflict.
async fn replay(
    pool: &PgPool,
    reports: &ReportMachinery,
    key: Uuid,
    hash: &[u8],
) -> Result<Option<Outcome>, IntakeError> {
    let row: Option<(i64, Option<Vec<u8>>, Option<String>)> =
        sqlx::query_as("select id, payload_hash, response::text from report where idempotency_key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?;
    match row {
        None => Ok(None),
        Some((id, Some(stored), Some(body))) => {
            let same = stored == hash;
            reports.resends.remember(key, KeyAnswer { id, hash: stored, body: body.clone() });
            if same { Ok(Some(Outcome::Replayed { id, body })) } else { Err(IntakeError::KeyReused) }
        }
        Some(_) => Err(IntakeError::KeyReused),
    }
}
