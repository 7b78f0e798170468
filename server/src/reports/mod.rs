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
pub mod feed;
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
use tokio::sync::OnceCell;

pub use index::{GridIndex, GridIndexHandle};

/// Rule 2: the nearest grid within this distance takes a point in no grid.
pub const NEAREST_GRID_M: f64 = 150.0;
/// How far outside the county polygon a point may be (GPS noise, boundary generalisation).
pub const COUNTY_MARGIN_M: f64 = 500.0;
/// Worst GPS accuracy accepted (ODK flags worse than 100 m).
pub const MAX_ACCURACY_M: f64 = 100.0;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

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
    /// The report history id of this change; also the event's SSE `id`, which a reconnecting
    /// client sends back as `Last-Event-ID` (to any instance) to get what it missed.
    pub event_id: i64,
    /// The report id.
    pub id: i64,
    pub status: String,
    pub category: String,
    pub grid_id: Option<i64>,
    /// For `reassign`: the grid the report left (its worker hears of the move too).
    pub previous_grid_id: Option<i64>,
    pub lon: f64,
    pub lat: f64,
    /// The report's version after this change.
    pub version: i32,
    /// When the change was made.
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ReportChange {
    /// Whether the change concerns one of these grids (the one it is in, or the one it left).
    pub fn touches_any(&self, grids: &[i64]) -> bool {
        [self.grid_id, self.previous_grid_id].into_iter().flatten().any(|g| grids.contains(&g))
    }
}

/// Shared report machinery in `AppState`: the grid index, cached categories, the live feed.
#[derive(Debug, Clone)]
pub struct ReportMachinery {
    pub index: Arc<GridIndexHandle>,
    /// The live feed, read from the report history (feed.rs), and the announcements of this
    /// instance's report writes to the other instances.
    pub feed: Arc<feed::Feed>,
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

impl Default for ReportMachinery {
    fn default() -> Self {
        Self {
            index: Arc::new(GridIndexHandle::default()),
            feed: Arc::new(feed::Feed::default()),
            open: Arc::new(open_reports::OpenReports::default()),
            commit: Arc::new(commit::GroupCommit::default()),
            resends: Arc::new(resends::Resends::default()),
            assignments_in_sql: Arc::new(AtomicU64::new(0)),
            categories: Arc::new(OnceCell::new()),
        }
    }
}

impl ReportMachinery {
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
}

/// Reload the grid index whenever any writer changes grids (`NOTIFY gridmap_grids_changed`
/// from the grid triggers), so imports and plain SQL are picked up too; reload the open reports
/// when another writer changed reports (`gridmap_tiles` with `table: report`), after every
/// (re)connect and every [`open_reports::RELOAD_EVERY`]; wake the live feed's follower when
/// another instance or a grid re-draw wrote report history, and after every (re)connect.
/// Runs until the pool closes.
pub fn spawn_grid_listener(pool: PgPool, reports: ReportMachinery) {
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
            // gridmap_report_events and gridmap_reports_reassigned: history rows to read (feed.rs).
            let channels = [
                "gridmap_grids_changed",
                "gridmap_tiles",
                "gridmap_reports_reassigned",
                feed::CHANNEL,
                feed::NOTICE_CHANNEL,
            ];
            if let Err(err) = listener.listen_all(channels).await {
                tracing::warn!(%err, "LISTEN {channels:?} failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                continue;
            }
            // A change may have happened while we were not listening (rebuilt only if so).
            if let Err(err) = reports.index.refresh(&pool).await {
                tracing::warn!(%err, "grid index reload failed");
            }
            reload_open_reports(&pool, &reports).await;
            reports.feed.wake();
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
                let (mut grids, mut open, mut history) = (false, false, false);
                let mut note = |n: &sqlx::postgres::PgNotification| match n.channel() {
                    "gridmap_grids_changed" => grids = true,
                    "gridmap_reports_reassigned" | feed::CHANNEL => history = true,
                    feed::NOTICE_CHANNEL => reports.feed.heard_notice(n.payload()),
                    _ if is_report_payload(n.payload()) => open = true,
                    _ => {}
                };
                note(&first);
                while let Some(n) = listener.next_buffered() {
                    note(&n);
                }
                if grids {
                    // Rebuilt only if this server's own edit has not done so already (changes.rs).
                    match reports.index.refresh(&pool).await {
                        Ok(index) => tracing::info!(grids = index.grid_count(), "grid index reloaded"),
                        Err(err) => tracing::warn!(%err, "grid index reload failed"),
                    }
                }
                if open {
                    reload_open_reports(&pool, &reports).await;
                }
                if history {
                    reports.feed.wake();
                }
            }
        }
    });
}

/// Whether a `gridmap_tiles` payload (`{"table": …, …}`) is about the report table.
fn is_report_payload(payload: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(payload).is_ok_and(|v| v["table"] == "report")
}

async fn reload_open_reports(pool: &PgPool, reports: &ReportMachinery) {
    match reports.open.reload(pool).await {
        Ok(count) => tracing::debug!(count, "open reports reloaded"),
        Err(err) => tracing::warn!(%err, "open reports reload failed"),
    }
}
