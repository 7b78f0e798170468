//! What happens after a write, in one place. A committed write of a report (intake, a workflow
//! step) or of the map (grids, buildings, stations — OGC, the grid tools, Open311 intake) sets
//! off the same few effects before its response goes out: the tiles drawing the changed data
//! (through [`TileService::changed`], which knows which layers live in memory), the in-memory
//! grid index after a grid edit, the open reports of the duplicate search, and the live feed.
//!
//! Across instances (docs/deploy.md): this instance's report writes are announced by the feed
//! ([`feed::Feed::wrote`]); every instance's history follower (reports/feed.rs) hands the
//! changes it reads back to [`Changes::report_seen`], so a write through another instance has
//! the same effects here. Map edits and imports (a separate process) reach the other instances
//! through the database triggers: `gridmap_tiles` for the tiles (the tiles crate's listener) and
//! `gridmap_grids_changed` for the grid index ([`crate::reports::spawn_grid_listener`]).
//!
//! No HTTP here: handlers call the domain (intake, workflow, `ogc::edit`), which calls this.

use std::sync::Arc;

use gridmap_tiles::{Bbox, LayerSet, TileService};
use sqlx::PgPool;

use crate::ogc::{Changed, Kind};
use crate::reports::open_reports::Change;
use crate::reports::{ReportChange, ReportMachinery, feed};

/// The handles the effects reach: the tile service, the report machinery and the pool the
/// grid index reloads from. Cheap to clone (a pool and `Arc`s).
#[derive(Clone)]
pub struct Changes {
    pool: PgPool,
    tiles: Arc<TileService>,
    reports: ReportMachinery,
}

impl Changes {
    pub fn new(pool: PgPool, tiles: Arc<TileService>, reports: ReportMachinery) -> Self {
        Self { pool, tiles, reports }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn reports(&self) -> &ReportMachinery {
        &self.reports
    }

    /// This instance committed a report (intake) or a step of one (workflow): its report tiles,
    /// the duplicate search, and the live feed, which also tells the other instances.
    pub async fn report_written(&self, change: Change) {
        self.report_effects(&change).await;
        let Change::Upsert { id, .. } = change;
        self.reports.feed.wrote(id);
    }

    /// A report change read from the history (reports/feed.rs): mostly another instance's write
    /// or a re-assignment by a grid edit. This instance's own writes come by too; their effects
    /// are applied again, which changes nothing.
    pub async fn report_seen(&self, change: &ReportChange) {
        self.report_effects(&Change::Upsert {
            id: change.id,
            category: change.category.clone(),
            status: change.status.clone(),
            lon: change.lon,
            lat: change.lat,
            created_at: if change.kind == "created" { change.at } else { None },
        })
        .await;
    }

    async fn report_effects(&self, change: &Change) {
        // The server's own sessions do not send the report NOTIFY (it would serialise intake
        // commits, migration 0006), so the report tiles around the point are dropped here.
        let Change::Upsert { lon, lat, .. } = change;
        self.tiles.changed(LayerSet::REPORTS, Bbox::from_lonlat(*lon, *lat, *lon, *lat)).await;
        self.reports.open.apply(change);
    }

    /// A map edit committed (grids, buildings or stations). Open reports were already
    /// re-assigned inside the edit's transaction (the 0004 triggers). Failures here are logged,
    /// not returned: the edit itself is committed.
    pub async fn map_changed(&self, changed: &Changed) {
        let Some([min_lon, min_lat, max_lon, max_lat]) = changed.bbox else { return };
        // Every layer: a building edit changes its grid's household balance, a grid edit its label.
        self.tiles.changed(LayerSet::ALL, Bbox::from_lonlat(min_lon, min_lat, max_lon, max_lat)).await;
        if changed.kind == Some(Kind::Grids)
            && let Err(err) = self.reports.index.refresh(&self.pool).await
        {
            tracing::error!(%err, "reloading the grid index after a grid edit failed");
        }
        tracing::info!(kind = ?changed.kind, bbox = ?changed.bbox, grids = ?changed.grid_ids, "map data changed");
    }

    /// A door-knocking round was opened or closed, or a visit recorded in it (`crate::rounds`):
    /// the coverage tiles over the round's grids. Other instances hear of visits from the
    /// `door_visit` trigger's NOTIFY (`migrations/functions/door_knocking.sql`).
    pub async fn coverage_changed(&self, round_id: i64) {
        let extent: Result<Option<(f64, f64, f64, f64)>, sqlx::Error> = sqlx::query_as(
            r"select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
                from (select ST_Extent(g.geom)::geometry as e
                        from door_round_grid rg join grid g on g.id = rg.grid_id where rg.round_id = $1) s
               where e is not null",
        )
        .bind(round_id)
        .fetch_optional(&self.pool)
        .await;
        match extent {
            Ok(Some((a, b, c, d))) => {
                self.tiles.changed(LayerSet::COVERAGE, Bbox::from_lonlat(a, b, c, d)).await;
            }
            Ok(None) => {}
            Err(err) => tracing::error!(%err, round_id, "finding a round's extent for its coverage tiles failed"),
        }
    }

    /// A building leader's term was written (assigned, renewed, replaced, ended): the `leaders`
    /// tiles of the building and of its grid (`leader_gaps`, `leader_coverage`). The base map
    /// does not draw leaders, so its in-memory layers and cached tiles stay.
    pub async fn leaders_changed(&self, building_id: i64) {
        let extent: Result<Option<(f64, f64, f64, f64)>, sqlx::Error> = sqlx::query_as(
            r"select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
                from (select ST_Extent(geom)::geometry e from (
                        select b.geom from building b where b.id = $1
                        union all
                        select g.geom from grid g join building b on b.grid_id = g.id where b.id = $1) x) y
               where e is not null",
        )
        .bind(building_id)
        .fetch_optional(&self.pool)
        .await;
        match extent {
            Ok(Some((x0, y0, x1, y1))) => {
                self.tiles.changed(LayerSet::LEADERS, Bbox::from_lonlat(x0, y0, x1, y1)).await;
            }
            Ok(None) => {}
            Err(err) => tracing::error!(%err, building_id, "finding the extent of a leader change failed"),
        }
    }

    /// Emergency mode changed (an episode started or ended, a check-in, a task, a member): the
    /// `emergency` count tiles. They are read per tile and cached only, so dropping them all is
    /// cheap; the base map's tiles stay. Then the live feed's notice (`event: emergency`).
    pub async fn emergency_changed(&self, notice: &crate::emergency::Notice) {
        self.tiles.changed(LayerSet::EMERGENCY, Bbox::WORLD).await;
        self.reports.feed.notice(&self.pool, notice).await;
    }

    /// Follow the writes made elsewhere: the grid listener (grid index, duplicate search) and
    /// the report history follower (report tiles, duplicate search, live feed). The follower
    /// starts once however often this is called.
    pub fn follow_other_writers(&self) {
        crate::reports::spawn_grid_listener(self.pool.clone(), self.reports.clone());
        self.follow_history();
    }

    /// Start the report history follower only (the live feed asks for it on its first client,
    /// so that a server built without [`Changes::follow_other_writers`], as in tests, has one).
    pub fn follow_history(&self) {
        feed::spawn(self);
    }
}
