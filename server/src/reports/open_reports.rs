//! Open reports in memory, for the duplicate search at intake.
//!
//! The search is what `gridmap_possible_duplicates` (migration 0007) does in SQL, and gives the
//! same answer: of the open reports (not cancelled, not closed) of the category, the 20 nearest
//! in EPSG:3857 (Web Mercator is conformal, so over a few hundred metres its order is the true
//! one), kept when within the radius geodesically (WGS84 ellipsoid, as PostGIS's geography),
//! ordered by whole metres, then id. In SQL it was the largest part of a report's cost
//! (~0.4 ms of PostgreSQL CPU in bench/reports.sh's dense box); here it is a few microseconds.
//!
//! Keeping it current:
//! - this server's own writes are applied after they commit (intake, workflow transitions);
//! - other writers (psql, QGIS, scripts) fire the report tile trigger, whose NOTIFY makes the
//!   server's listener reload the set (`spawn_grid_listener`), as after a reconnect;
//! - a reload runs every [`RELOAD_EVERY`] as well, which bounds how stale a second gridmap
//!   instance on the same database can be (its writes send no NOTIFY; README).
//!
//! A reload reads a snapshot while writes go on: changes this process applies during the read
//! are journalled and replayed on top of the snapshot, so none is lost to the swap.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use geo::{Distance, Geodesic, Point};
use rstar::{AABB, PointDistance, RTree, RTreeObject};
use sqlx::PgPool;

/// How often the whole set is re-read even without a NOTIFY.
pub const RELOAD_EVERY: Duration = Duration::from_secs(60);
/// At most this many possible duplicates are offered.
pub const MAX_DUPLICATES: usize = 20;

/// Statuses that take a report out of the duplicate search (an unknown text counts as open,
/// as SQL `gridmap_report_is_open` does).
pub fn is_open(status: &str) -> bool {
    super::status::ReportStatus::parse(status).is_none_or(super::status::ReportStatus::is_open)
}

/// A change to one report, applied after its transaction committed.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new report, or one whose status changed (`created_at` unknown: kept from the entry).
    Upsert { id: i64, category: String, status: String, lon: f64, lat: f64, created_at: Option<DateTime<Utc>> },
}

/// One possible duplicate, as the 201 body lists it. Serialized straight into the intake
/// statement's jsonb: built as `serde_json::Value` objects (and cloned into the statement's
/// arguments) these were a fifth of gridmap's CPU under ×100 intake (`perf record`, bench/RESULTS.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Duplicate {
    pub id: i64,
    pub status: Arc<str>,
    /// RFC 3339 with microseconds, as PostgreSQL's `to_json(timestamptz)` writes it.
    pub created_at: String,
    pub distance_m: i64,
}

/// A report row: id, category, status, lon, lat, creation time.
type Row = (i64, String, String, f64, f64, DateTime<Utc>);

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    id: i64,
    /// EPSG:3857 metres, for the nearest-first order.
    xy: [f64; 2],
    lon: f64,
    lat: f64,
    status: Arc<str>,
    created_at: DateTime<Utc>,
}

impl RTreeObject for Entry {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point(self.xy)
    }
}

impl PointDistance for Entry {
    fn distance_2(&self, point: &[f64; 2]) -> f64 {
        let (dx, dy) = (self.xy[0] - point[0], self.xy[1] - point[1]);
        dx * dx + dy * dy
    }
}

/// WGS84 → EPSG:3857 (spherical Mercator, as PostGIS/PROJ compute it).
fn mercator(lon: f64, lat: f64) -> [f64; 2] {
    const R: f64 = 6_378_137.0;
    [R * lon.to_radians(), R * (std::f64::consts::FRAC_PI_4 + lat.to_radians() / 2.0).tan().ln()]
}

#[derive(Debug, Default)]
struct Set {
    trees: HashMap<String, RTree<Entry>>,
    /// id → category and position, to find an entry again.
    places: HashMap<i64, (String, [f64; 2])>,
}

impl Set {
    fn remove(&mut self, id: i64) -> Option<Entry> {
        let (category, xy) = self.places.remove(&id)?;
        let tree = self.trees.get_mut(&category)?;
        let entry = tree.locate_all_at_point(&xy).find(|e| e.id == id).cloned()?;
        tree.remove(&entry)
    }

    fn apply(&mut self, change: &Change) {
        let Change::Upsert { id, category, status, lon, lat, created_at } = change;
        let previous = self.remove(*id).map(|e| e.created_at);
        if !is_open(status) {
            return;
        }
        let Some(created_at) = created_at.or(previous) else {
            // A status change of a report this set never saw: the next reload brings it.
            return;
        };
        self.insert(
            *id,
            category.clone(),
            Entry {
                id: *id,
                xy: mercator(*lon, *lat),
                lon: *lon,
                lat: *lat,
                status: status.as_str().into(),
                created_at,
            },
        );
    }

    fn insert(&mut self, id: i64, category: String, entry: Entry) {
        self.places.insert(id, (category.clone(), entry.xy));
        self.trees.entry(category).or_default().insert(entry);
    }
}

#[derive(Debug, Default)]
struct State {
    set: Option<Set>,
    /// While a reload reads its snapshot: this process's changes since it began.
    journal: Option<Vec<Change>>,
}

/// The open reports of every category (see the module docs).
#[derive(Default)]
pub struct OpenReports {
    state: RwLock<State>,
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OpenReports {
    // The count, not tens of thousands of entries, if `ReportMachinery` is ever logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenReports").field("loaded", &self.loaded_count()).finish()
    }
}

impl OpenReports {
    /// Load the set unless it is loaded.
    pub async fn ensure_loaded(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        if self.state.read().expect("open reports lock").set.is_some() {
            return Ok(());
        }
        let _turn = self.reloading.lock().await;
        if self.state.read().expect("open reports lock").set.is_some() {
            return Ok(());
        }
        self.read_snapshot(pool).await.map(|_| ())
    }

    /// Re-read every open report; returns how many there are.
    pub async fn reload(&self, pool: &PgPool) -> Result<usize, sqlx::Error> {
        let _turn = self.reloading.lock().await;
        self.read_snapshot(pool).await
    }

    async fn read_snapshot(&self, pool: &PgPool) -> Result<usize, sqlx::Error> {
        // Journal first, then read: a write that commits after the snapshot was taken is applied
        // (and journalled) after this point, so it is replayed below.
        self.state.write().expect("open reports lock").journal = Some(Vec::new());
        let rows: Result<Vec<Row>, sqlx::Error> = sqlx::query_as(
            "select id, category, status, ST_X(geom), ST_Y(geom), created_at from report
              where gridmap_report_is_open(status)",
        )
        .fetch_all(pool)
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => {
                self.state.write().expect("open reports lock").journal = None;
                return Err(err);
            }
        };
        let mut by_category: HashMap<String, Vec<Entry>> = HashMap::new();
        let mut places = HashMap::with_capacity(rows.len());
        for (id, category, status, lon, lat, created_at) in rows {
            let xy = mercator(lon, lat);
            places.insert(id, (category.clone(), xy));
            by_category.entry(category).or_default().push(Entry {
                id,
                xy,
                lon,
                lat,
                status: status.into(),
                created_at,
            });
        }
        let trees = by_category.into_iter().map(|(c, entries)| (c, RTree::bulk_load(entries))).collect();
        let mut set = Set { trees, places };
        let mut state = self.state.write().expect("open reports lock");
        for change in state.journal.take().unwrap_or_default() {
            set.apply(&change);
        }
        let count = set.places.len();
        state.set = Some(set);
        Ok(count)
    }

    /// Apply a committed change (a no-op until the set is loaded; the load reads it then).
    pub fn apply(&self, change: &Change) {
        let mut state = self.state.write().expect("open reports lock");
        if let Some(journal) = state.journal.as_mut() {
            journal.push(change.clone());
        }
        if let Some(set) = state.set.as_mut() {
            set.apply(change);
        }
    }

    /// How many open reports are in memory (`None` until loaded).
    pub fn loaded_count(&self) -> Option<usize> {
        self.state.read().expect("open reports lock").set.as_ref().map(|s| s.places.len())
    }

    /// The possible duplicates of a new report at (lon, lat), WGS84, nearest first (the 201
    /// body's `possible_duplicates`). Empty until loaded.
    pub fn search(&self, category: &str, lon: f64, lat: f64, radius_m: f64) -> Vec<Duplicate> {
        let state = self.state.read().expect("open reports lock");
        let Some(tree) = state.set.as_ref().and_then(|s| s.trees.get(category)) else {
            return Vec::new();
        };
        let here = Point::new(lon, lat);
        let mut found: Vec<(i64, &Entry)> = tree
            .nearest_neighbor_iter(&mercator(lon, lat))
            .take(MAX_DUPLICATES)
            .filter_map(|e| {
                let metres = Geodesic.distance(here, Point::new(e.lon, e.lat));
                (metres <= radius_m).then(|| (metres.round() as i64, e))
            })
            .collect();
        found.sort_by_key(|(metres, e)| (*metres, e.id));
        found
            .into_iter()
            .map(|(metres, e)| Duplicate {
                id: e.id,
                status: Arc::clone(&e.status),
                created_at: e.created_at.to_rfc3339_opts(SecondsFormat::Micros, false),
                distance_m: metres,
            })
            .collect()
    }
}
