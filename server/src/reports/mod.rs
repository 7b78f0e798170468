//! Mobile-probe reports (移动探头): intake with ODK-style idempotency, assignment to the grid that
//! contains the point, the grid-event workflow, duplicates, points and the live feed.
//!
//! Assignment rules (the same in the in-memory index and in SQL `gridmap_report_assignment`):
//! 1. `covers`: the grid whose polygon covers the point — boundary counts as inside, and on a
//!    shared edge or vertex the lowest grid id wins (`gridmap_grid_at`);
//! 2. `nearest`: else the nearest grid within [`NEAREST_GRID_M`] (geodesic; ties: lowest id);
//! 3. `unassigned`: else no grid; the report waits in the queue of the subdistrict of the nearest
//!    grid (admins see it in `GET /api/reports?status=submitted&grid=none`).
//!
//! Location rules: `crs` is `wgs84` (default), `cgcs2000` (taken as WGS84, < 1 m apart) or
//! `gcj02` (converted with [`gcj02::gcj02_to_wgs84`]). The point must lie in the county polygon
//! or within [`COUNTY_MARGIN_M`] of it. `accuracy_m` above 100 is refused; **accuracy 0** is what
//! mock-location apps report: the report is accepted but flagged `location_suspect: true` so the
//! verifier checks the spot (refusing it would push riders to fake a plausible accuracy instead).

pub mod commit;
pub mod fringe;
pub mod gcj02;
pub mod index;
pub mod intake;
pub mod open_reports;
pub mod photos;
pub mod points;
pub mod resends;
pub mod status;
pub mod workflow;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::{OnceCell, broadcast};

pub use index::{GridIndex, GridIndexHandle};

/// Rule 2: the nearest grid within this distance takes a point in no grid.
pub const NEAREST_GRID_M: f64 = 150.0;
/// How far outside the county polygon a point may be (GPS noise, boundary generalisation).
pub const COUNTY_MARGIN_M: f64 = 500.0;
/// Worst GPS accuracy accepted (ODK flags worse than 100 m).
pub const MAX_ACCURACY_M: f64 = 100.0;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Points credited for an accepted report.
pub const POINTS_PER_ACCEPTED_REPORT: i32 = 10;

/// A report category (`GET /api/report-categories`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Category {
    /// Stable machine code, e.g. `manhole_cover`.
    pub code: String,
    /// `event` (事件) or `facility` (部件).
    pub kind: String,
    pub group_code: String,
    pub group_zh: String,
    pub group_en: String,
    pub name_zh: String,
    pub name_en: String,
    /// Hours from dispatch to the deadline.
    pub sla_hours: i32,
    /// Open reports of this category within this radius are offered as possible duplicates.
    pub duplicate_radius_m: i32,
    /// Whether a resident may report this without logging in.
    pub anonymous_allowed: bool,
}

/// A change to a report, for the live feed (public-safe: no reporter identity).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportChange {
    /// `created`, `transition` or `reassign`.
    pub kind: &'static str,
    pub id: i64,
    pub status: String,
    pub category: String,
    pub grid_id: Option<i64>,
    /// For `reassign`: the grid the report left (its worker hears of the move too).
    pub previous_grid_id: Option<i64>,
    pub lon: f64,
    pub lat: f64,
    pub version: i32,
}

impl ReportChange {
    /// Whether the change concerns one of these grids (the one it is in, or the one it left).
    pub fn touches_any(&self, grids: &[i64]) -> bool {
        [self.grid_id, self.previous_grid_id].into_iter().flatten().any(|g| grids.contains(&g))
    }
}

/// Shared report machinery in `AppState`: the grid index, cached categories, the live feed.
#[derive(Debug, Clone)]
pub struct Reports {
    pub index: Arc<GridIndexHandle>,
    pub events: broadcast::Sender<ReportChange>,
    /// Open reports for the duplicate search (kept current by intake, transitions, NOTIFY).
    pub open: Arc<open_reports::OpenReports>,
    /// Intake's group committer: concurrent reports share one statement and one commit.
    pub commit: Arc<commit::GroupCommit>,
    /// Recently stored keys: a resend is answered without the database.
    pub resends: Arc<resends::Resends>,
    /// Points in no grid whose assignment memory left to PostGIS (near 150 m, 500 m or a tie).
    assignments_in_sql: Arc<AtomicU64>,
    categories: Arc<OnceCell<Arc<Vec<Category>>>>,
}

impl Default for Reports {
    fn default() -> Self {
        Self {
            index: Arc::new(GridIndexHandle::default()),
            events: broadcast::channel(1024).0,
            open: Arc::new(open_reports::OpenReports::default()),
            commit: Arc::new(commit::GroupCommit::default()),
            resends: Arc::new(resends::Resends::default()),
            assignments_in_sql: Arc::new(AtomicU64::new(0)),
            categories: Arc::new(OnceCell::new()),
        }
    }
}

impl Reports {
    /// Categories in display order (read once; they change only with a migration).
    pub async fn categories(&self, pool: &PgPool) -> Result<Arc<Vec<Category>>, sqlx::Error> {
        self.categories
            .get_or_try_init(|| async {
                let rows: Vec<Category> = sqlx::query_as(
                    r"select code, kind, group_code, group_zh, group_en, name_zh, name_en, sla_hours,
                             duplicate_radius_m, anonymous_allowed
                        from report_category order by sort, code",
                )
                .fetch_all(pool)
                .await?;
                Ok(Arc::new(rows))
            })
            .await
            .cloned()
    }

    pub(crate) fn count_assignment_in_sql(&self) {
        self.assignments_in_sql.fetch_add(1, Ordering::Relaxed);
    }

    /// Assignments that needed PostGIS so far (for `/metrics`).
    pub fn assignments_in_sql(&self) -> u64 {
        self.assignments_in_sql.load(Ordering::Relaxed)
    }

    /// Publish a change to live-feed subscribers (no subscribers is fine).
    pub fn publish(&self, change: ReportChange) {
        let _ = self.events.send(change);
    }
}

/// Reload the grid index whenever any writer changes grids (`NOTIFY gridmap_grids_changed`
/// from the grid triggers), so imports and plain SQL are picked up too; reload the open reports
/// when another writer changed reports (`gridmap_tiles` with `table: report`), after every
/// (re)connect and every [`open_reports::RELOAD_EVERY`]. Runs until the pool closes.
pub fn spawn_grid_listener(pool: PgPool, reports: Reports) {
    tokio::spawn(async move {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(err) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(%err, "grid change listener cannot connect; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    continue;
                }
            };
            // gridmap_tiles carries report writes by anyone but this server's own sessions
            // (migration 0006): those change the open reports of the duplicate search.
            let channels = ["gridmap_grids_changed", "gridmap_tiles", "gridmap_reports_reassigned"];
            if let Err(err) = listener.listen_all(channels).await {
                tracing::warn!(%err, "LISTEN {channels:?} failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                continue;
            }
            // A change may have happened while we were not listening.
            if let Err(err) = reports.index.reload(&pool).await {
                tracing::warn!(%err, "grid index reload failed");
            }
            reload_open_reports(&pool, &reports).await;
            let mut periodic = tokio::time::interval(open_reports::RELOAD_EVERY);
            periodic.tick().await; // the first tick is immediate
            loop {
                let notification = tokio::select! {
                    n = listener.recv() => n,
                    _ = periodic.tick() => {
                        reload_open_reports(&pool, &reports).await;
                        continue;
                    }
                };
                let first = match notification {
                    Ok(n) => n,
                    Err(err) => {
                        tracing::warn!(%err, "grid change listener lost its connection");
                        break;
                    }
                };
                // Coalesce a burst of notifications (one per statement) into one reload of each.
                let (mut grids, mut open, mut moved) = (false, false, Vec::new());
                let mut note = |n: &sqlx::postgres::PgNotification| match n.channel() {
                    "gridmap_grids_changed" => grids = true,
                    "gridmap_reports_reassigned" => moved.extend(event_range(n.payload())),
                    _ if is_report_payload(n.payload()) => open = true,
                    _ => {}
                };
                note(&first);
                while let Some(n) = listener.next_buffered() {
                    note(&n);
                }
                if grids {
                    match reports.index.reload(&pool).await {
                        Ok(index) => tracing::info!(grids = index.grid_count(), "grid index reloaded"),
                        Err(err) => tracing::warn!(%err, "grid index reload failed"),
                    }
                }
                if open {
                    reload_open_reports(&pool, &reports).await;
                }
                for (first, last) in moved {
                    if let Err(err) = publish_reassigned(&pool, &reports, first, last).await {
                        tracing::warn!(%err, first, last, "re-assigned reports not announced");
                    }
                }
            }
        }
    });
}

/// Whether a `gridmap_tiles` payload (`{"table": …, …}`) is about the report table.
fn is_report_payload(payload: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(payload).is_ok_and(|v| v["table"] == "report")
}

/// The history ids a `gridmap_reports_reassigned` payload (`{"first": …, "last": …}`) names.
fn event_range(payload: &str) -> Option<(i64, i64)> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    Some((v["first"].as_i64()?, v["last"].as_i64()?))
}

/// Announce the moves a grid change committed (migration 0011) on the live feed. The range may
/// hold another transaction's moves, committed or not yet: invisible ones are announced by
/// their own notification, visible ones may go out twice (SSE clients dedupe on `id-version`).
async fn publish_reassigned(pool: &PgPool, reports: &Reports, first: i64, last: i64) -> Result<(), sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Moved {
        id: i64,
        status: String,
        category: String,
        grid_id: Option<i64>,
        previous_grid_id: Option<i64>,
        lon: f64,
        lat: f64,
        version: i32,
    }
    let rows: Vec<Moved> = sqlx::query_as(
        r"select r.id, r.status, r.category, e.grid_id,
                 (select p.grid_id from report_event p
                   where p.report_id = e.report_id and p.id < e.id and p.action in ('submit', 'reassign')
                   order by p.id desc limit 1) as previous_grid_id,
                 ST_X(r.geom) as lon, ST_Y(r.geom) as lat, r.version
            from report_event e join report r on r.id = e.report_id
           where e.id between $1 and $2 and e.action = 'reassign'
           order by e.id",
    )
    .bind(first)
    .bind(last)
    .fetch_all(pool)
    .await?;
    for m in rows {
        reports.publish(ReportChange {
            kind: "reassign",
            id: m.id,
            status: m.status,
            category: m.category,
            grid_id: m.grid_id,
            previous_grid_id: m.previous_grid_id,
            lon: m.lon,
            lat: m.lat,
            version: m.version,
        });
    }
    Ok(())
}

async fn reload_open_reports(pool: &PgPool, reports: &Reports) {
    match reports.open.reload(pool).await {
        Ok(count) => tracing::debug!(count, "open reports reloaded"),
        Err(err) => tracing::warn!(%err, "open reports reload failed"),
    }
}
