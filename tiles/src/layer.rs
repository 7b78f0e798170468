//! The requestable tile layers (`{layers}` in a tile URL), sets of them, and the zooms they
//! draw at. What each yields — tables, columns, filters — is declared once in [`crate::schema`].
//!
//! Everything reads the precomputed, repaired `geom_3857` / `label_3857` columns, so a tile
//! request never reprojects or repairs.

use std::fmt;

use crate::schema::MvtLayer;

/// Zoom from which building footprints are drawn: below it a building is a few pixels.
pub const BUILDINGS_MIN_ZOOM: u8 = 14;
/// Zoom from which single grids are drawn: a grid of ~300 households is a few hundred metres
/// across, 4–5 pixels at z10. Further out the grids layer draws generalised outlines instead
/// (migration 0029), so a province of ~26,700 grids still makes small low-zoom tiles.
pub const GRIDS_MIN_ZOOM: u8 = 10;
/// Zoom from which stations are drawn: further out a province's thousands of stations would be
/// one smear of dots (and hundreds of KB per tile); the station finder lists the nearest ones.
pub const STATIONS_MIN_ZOOM: u8 = 8;

/// Zoom from which grid label points are emitted (grid names are unreadable further out).
pub const GRID_LABELS_MIN_ZOOM: u8 = 12;
/// Below this zoom polygons and lines are simplified to about half a screen pixel.
pub const SIMPLIFY_BELOW_ZOOM: u8 = 14;
/// Alleys are left out below this zoom.
pub const ALLEYS_MIN_ZOOM: u8 = 14;
/// Zoom from which single reports are drawn; further out the H3 heatmap
/// (`/api/reports/hexbins`) shows where they are.
pub const REPORTS_MIN_ZOOM: u8 = 12;
/// Most reports in one tile, newest first: keeps a tile of a busy spot under 500 KB (a report
/// takes ~60 bytes) whatever the volume; the heatmap, not the tile, shows density.
pub const REPORTS_PER_TILE: u32 = 4000;

/// A requestable layer (`{layers}` in the URL is a comma list of these names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    Grids,
    Buildings,
    Stations,
    Roads,
    Reports,
    /// Door-knocking coverage per grid of the running round (issue 23 §2): counts only.
    Coverage,
    /// Red building leader coverage (issue 23 §1): per grid counts and the buildings without a
    /// current leader. Counts only; read per tile (a term runs out at midnight).
    Leaders,
    /// Emergency mode (issue 24 §2): per grid of an active episode, members, checked-in
    /// volunteers, households, volunteers per 100 households and open tasks. Counts only.
    Emergency,
}

impl Layer {
    /// In drawing order (bottom first); also the order of the layers inside a tile.
    pub const ALL: [Layer; 8] = [
        Layer::Roads,
        Layer::Grids,
        Layer::Coverage,
        Layer::Leaders,
        Layer::Emergency,
        Layer::Buildings,
        Layer::Stations,
        Layer::Reports,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Grids => "grids",
            Layer::Buildings => "buildings",
            Layer::Stations => "stations",
            Layer::Roads => "roads",
            Layer::Reports => "reports",
            Layer::Coverage => "coverage",
            Layer::Leaders => "leaders",
            Layer::Emergency => "emergency",
        }
    }

    pub fn from_name(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The table holding the geometry the layer draws (its `geom_3857` bounds an export).
    pub fn table(self) -> &'static str {
        match self {
            Layer::Grids | Layer::Coverage | Layer::Leaders | Layer::Emergency => "grid",
            Layer::Buildings => "building",
            Layer::Stations => "station",
            Layer::Roads => "road",
            Layer::Reports => "report",
        }
    }

    /// The tables whose change notifications redraw this layer (migration 0002's triggers
    /// name the table that changed). The two per-grid count layers also follow the grids and
    /// buildings they count: a building's households or a grid's outline change them too.
    pub fn announced_by(self) -> &'static [&'static str] {
        match self {
            Layer::Grids => &["grid"],
            Layer::Buildings => &["building"],
            Layer::Stations => &["station"],
            Layer::Roads => &["road"],
            Layer::Reports => &["report"],
            // Visits and terms announce themselves (migrations/functions/door_knocking.sql,
            // leaders.sql) with the boxes of the buildings and grids they change.
            Layer::Coverage => &["door_visit", "grid", "building"],
            Layer::Leaders => &["building_leader", "grid", "building"],
            // Mobilisations, check-ins, tasks and members announce themselves
            // (migrations/functions/emergency.sql) under `emergency`.
            Layer::Emergency => &["emergency", "grid"],
        }
    }

    /// The tables whose extent is where this layer can draw (TileJSON `bounds`, which a client
    /// requests no tile outside of). A report can be filed anywhere in the county (and its
    /// margin) or its grids: with few reports, or none yet, their own extent would hide the
    /// next one from a map that read the TileJSON earlier.
    pub fn extent_tables(self) -> &'static [&'static str] {
        match self {
            Layer::Reports => &["report", "grid", "area"],
            Layer::Grids | Layer::Coverage | Layer::Leaders | Layer::Emergency => &["grid"],
            Layer::Buildings => &["building"],
            Layer::Stations => &["station"],
            Layer::Roads => &["road"],
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Layer::Grids => 1,
            Layer::Buildings => 2,
            Layer::Stations => 4,
            Layer::Roads => 8,
            Layer::Reports => 16,
            Layer::Coverage => 32,
            Layer::Leaders => 64,
            Layer::Emergency => 128,
        }
    }

    /// The lowest zoom at which this layer puts anything in a tile.
    pub fn min_zoom(self) -> u8 {
        self.mvt_layers().map(MvtLayer::min_zoom).min().unwrap_or(0)
    }

    /// The MVT layers this layer yields ([`crate::schema`]).
    pub fn mvt_layers(self) -> impl Iterator<Item = &'static MvtLayer> {
        crate::schema::of(self)
    }
}

/// Why a `{layers}` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("unknown layer `{0}` (known: grids, buildings, stations, roads, reports, coverage, leaders, emergency)")]
    Unknown(String),
}

/// A set of layers (order-free: `grids,buildings` and `buildings,grids` are the same tiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LayerSet(u8);

impl LayerSet {
    pub const EMPTY: LayerSet = LayerSet(0);
    pub const ALL: LayerSet = LayerSet(0b1111_1111);
    /// The base map: every layer but reports and the field-work counts. Those change all day
    /// and are read from PostgreSQL per tile; kept in sources of their own, their churn does not
    /// evict the base map's tiles, and a base tile never waits for SQL the resident never sees.
    pub const BASE: LayerSet = LayerSet(
        Self::ALL.0 & !Layer::Reports.bit() & !Layer::Coverage.bit() & !Layer::Leaders.bit() & !Layer::Emergency.bit(),
    );
    /// Just the reports.
    pub const REPORTS: LayerSet = LayerSet::EMPTY.with(Layer::Reports);
    /// Just the door-knocking coverage.
    pub const COVERAGE: LayerSet = LayerSet::EMPTY.with(Layer::Coverage);
    /// Just the red building leader coverage.
    pub const LEADERS: LayerSet = LayerSet::EMPTY.with(Layer::Leaders);
    /// Just the emergency-mode counts.
    pub const EMERGENCY: LayerSet = LayerSet::EMPTY.with(Layer::Emergency);

    /// Parse `grids,buildings,stations`. Every name must be known; repeats are harmless.
    pub fn parse(list: &str) -> Result<LayerSet, LayerError> {
        let mut set = LayerSet::EMPTY;
        for name in list.split(',') {
            let layer = Layer::from_name(name.trim()).ok_or_else(|| LayerError::Unknown(name.to_string()))?;
            set = set.with(layer);
        }
        Ok(set)
    }

    #[must_use]
    pub const fn with(self, layer: Layer) -> LayerSet {
        LayerSet(self.0 | layer.bit())
    }

    pub const fn contains(self, layer: Layer) -> bool {
        self.0 & layer.bit() != 0
    }

    pub const fn intersects(self, other: LayerSet) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The layers of this set that draw anything at zoom `z`.
    #[must_use]
    pub fn drawn_at(self, z: u8) -> LayerSet {
        self.iter().filter(|l| l.min_zoom() <= z).fold(LayerSet::EMPTY, LayerSet::with)
    }

    /// The layers in drawing order.
    pub fn iter(self) -> impl Iterator<Item = Layer> {
        Layer::ALL.into_iter().filter(move |l| self.contains(*l))
    }

    /// One statement returning the whole tile as `bytea` (empty when nothing is in it), with
    /// PostGIS `ST_AsMVT`, derived from the same definitions as the Rust encoder's reads: the
    /// reference the tests compare it with, the benchmark's PostGIS floor and `--print-sql`.
    /// Concatenated `ST_AsMVT` results are a valid MVT: a tile is a sequence of layer messages.
    pub fn sql(self, z: u8) -> String {
        let parts: Vec<String> = crate::schema::drawn_at(self, z)
            .filter_map(|m| m.mvt_sql(z))
            .map(|sql| format!("coalesce({sql}, '')"))
            .collect();
        if parts.is_empty() {
            return "select ''::bytea".to_string();
        }
        format!("select {}", parts.join("\n || "))
    }
}

impl From<Layer> for LayerSet {
    fn from(layer: Layer) -> Self {
        LayerSet::EMPTY.with(layer)
    }
}

impl fmt::Display for LayerSet {
    /// The canonical comma list, in drawing order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, layer) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(layer.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_lists_parse_order_free_and_reject_unknown_names() {
        let a = LayerSet::parse("grids,buildings").expect("known");
        let b = LayerSet::parse("buildings,grids,grids").expect("known");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "grids,buildings");
        assert_eq!(LayerSet::parse("grids,parcels"), Err(LayerError::Unknown("parcels".into())));
        assert!(LayerSet::parse("").is_err());
    }

    #[test]
    fn buildings_are_left_out_below_their_zoom_and_labels_come_with_grids() {
        let set = LayerSet::parse("grids,buildings").expect("known");
        assert!(!set.sql(12).contains("'buildings'"));
        assert!(set.sql(14).contains("'buildings'"));
        assert!(set.sql(12).contains("'grid_labels'"));
        assert!(!set.sql(11).contains("'grid_labels'"));
        assert!(set.sql(10).contains("ST_Simplify"));
        assert!(!set.sql(15).contains("ST_Simplify"));
        assert!(!LayerSet::REPORTS.sql(11).contains("'reports'"));
        assert!(LayerSet::REPORTS.sql(12).contains("'reports'"));
        assert_eq!(
            LayerSet::ALL.drawn_at(13),
            LayerSet::parse("grids,stations,roads,reports,coverage,leaders,emergency").expect("known")
        );
        assert_eq!(LayerSet::BASE.drawn_at(13), LayerSet::parse("grids,stations,roads").expect("known"));
        assert_eq!(LayerSet::ALL.drawn_at(7), LayerSet::parse("grids,roads").expect("known"));
        assert!(set.sql(9).contains("'outlines'") && set.sql(9).contains("'community'"));
        assert!(set.sql(3).contains("'county'") && !set.sql(3).contains("'grids'"));
        assert!(!set.sql(10).contains("'outlines'"));
        assert_eq!(
            LayerSet::BASE.with(Layer::Reports).with(Layer::Coverage).with(Layer::Leaders).with(Layer::Emergency),
            LayerSet::ALL
        );
        // The base map reads no per-day SQL: a cold base tile is drawn from memory and outlines.
        assert!(!LayerSet::BASE.sql(15).contains("gridmap_leader_state"));
        assert!(LayerSet::LEADERS.sql(15).contains("'leader_gaps'"));
        assert!(!LayerSet::LEADERS.sql(11).contains("'leader_coverage'"));
    }

    #[test]
    fn tile_sql_never_reads_private_columns() {
        let sql = LayerSet::ALL.sql(16);
        for private in
            ["leader_name", "leader_phone", "phone", "host_org", "address", "reporter", "description", "input_l"]
        {
            assert!(!sql.contains(private), "{private} leaked into tile SQL");
        }
    }
}
