//! The public tile layers, what each one holds at which zoom, and the one SQL statement that
//! renders any set of them for a tile with PostGIS `ST_AsMVT`.
//!
//! Everything reads the precomputed, repaired `geom_3857` / `label_3857` columns, so a tile
//! request never reprojects or repairs. Only allow-listed fragments are formatted into SQL;
//! z/x/y are always bound (`$1`, `$2`, `$3`).

use std::fmt;
use std::fmt::Write as _;

use crate::tile::{BUFFER, EXTENT, TileCoord};

/// Zoom from which building footprints are drawn: below it a building is a few pixels.
pub const BUILDINGS_MIN_ZOOM: u8 = 14;
/// Zoom from which single grids are drawn: a grid of ~300 households is a few hundred metres
/// across, 4–5 pixels at z10. Further out the grids layer draws generalised outlines instead
/// (migration 0029), so a province of ~26,700 grids still makes small low-zoom tiles.
pub const GRIDS_MIN_ZOOM: u8 = 10;
/// Zoom from which stations are drawn: further out a province's thousands of stations would be
/// one smear of dots (and hundreds of KB per tile); the station finder lists the nearest ones.
pub const STATIONS_MIN_ZOOM: u8 = 8;

/// The outline level drawn at zoom `z` (below [`GRIDS_MIN_ZOOM`]), also the table its code and
/// name come from: counties to z6, subdistricts z7–z8, communities z9 — each level from the
/// zoom where its typical outline is ten or more pixels across.
pub const fn outline_level(z: u8) -> Option<&'static str> {
    match z {
        0..=6 => Some("county"),
        7..=8 => Some("subdistrict"),
        9 => Some("community"),
        _ => None,
    }
}

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
}

impl Layer {
    /// In drawing order (bottom first); also the order of the layers inside a tile.
    pub const ALL: [Layer; 5] = [Layer::Roads, Layer::Grids, Layer::Buildings, Layer::Stations, Layer::Reports];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Grids => "grids",
            Layer::Buildings => "buildings",
            Layer::Stations => "stations",
            Layer::Roads => "roads",
            Layer::Reports => "reports",
        }
    }

    pub fn from_name(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The table whose rows the layer draws (used by change notifications).
    pub fn table(self) -> &'static str {
        match self {
            Layer::Grids => "grid",
            Layer::Buildings => "building",
            Layer::Stations => "station",
            Layer::Roads => "road",
            Layer::Reports => "report",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Layer::Grids => 1,
            Layer::Buildings => 2,
            Layer::Stations => 4,
            Layer::Roads => 8,
            Layer::Reports => 16,
        }
    }

    /// The lowest zoom at which this layer puts anything in a tile.
    pub const fn min_zoom(self) -> u8 {
        match self {
            Layer::Buildings => BUILDINGS_MIN_ZOOM,
            Layer::Reports => REPORTS_MIN_ZOOM,
            Layer::Stations => STATIONS_MIN_ZOOM,
            Layer::Grids | Layer::Roads => 0,
        }
    }

    /// The vector layers this layer puts in a tile, with their fields — for TileJSON.
    pub fn vector_layers(self) -> Vec<VectorLayer> {
        match self {
            Layer::Grids => vec![
                VectorLayer {
                    id: "outlines",
                    description: "Generalised outlines below z10, the union of their grids: counties (县) to z6, \
                                  subdistricts (街道) z7–z8, communities (社区) z9; with grid count, households, \
                                  workers and the spread of grid balance",
                    minzoom: 0,
                    fields: &[
                        ("id", "Number"),
                        ("level", "String"),
                        ("code", "String"),
                        ("name", "String"),
                        ("grids", "Number"),
                        ("households", "Number"),
                        ("workers", "Number"),
                        ("balance_min", "Number"),
                        ("balance_max", "Number"),
                    ],
                },
                VectorLayer {
                    id: "grids",
                    description: "Grid (网格) boundaries from z10; simplified below z14",
                    minzoom: GRIDS_MIN_ZOOM,
                    fields: &[
                        ("id", "Number"),
                        ("code", "String"),
                        ("name", "String"),
                        ("community", "String"),
                        ("households", "Number"),
                        ("balance", "Number"),
                        ("workers", "Number"),
                    ],
                },
                VectorLayer {
                    id: "grid_labels",
                    description: "One label point per grid (point on surface, always inside the grid), from z12",
                    minzoom: GRID_LABELS_MIN_ZOOM,
                    fields: &[
                        ("id", "Number"),
                        ("code", "String"),
                        ("name", "String"),
                        ("households", "Number"),
                        ("balance", "Number"),
                    ],
                },
            ],
            Layer::Buildings => vec![VectorLayer {
                id: "buildings",
                description: "Building (楼栋) footprints, from z14",
                minzoom: BUILDINGS_MIN_ZOOM,
                fields: &[("id", "Number"), ("floors", "Number"), ("households", "Number"), ("use", "String")],
            }],
            Layer::Stations => vec![VectorLayer {
                id: "stations",
                description: "Warm-\"new\" stations (暖\"新\"驿站) for riders and couriers, from z8",
                minzoom: STATIONS_MIN_ZOOM,
                fields: &[("id", "Number"), ("name", "String"), ("services", "String"), ("opening_hours", "String")],
            }],
            Layer::Roads => vec![VectorLayer {
                id: "roads",
                description: "Road network; alleys from z14",
                minzoom: 0,
                fields: &[("id", "Number"), ("name", "String"), ("class", "String")],
            }],
            Layer::Reports => vec![VectorLayer {
                id: "reports",
                description: "Street reports (事件上报) from z12, newest 4,000 per tile; cancelled ones left out. \
                              Public fields only: never the reporter, description or photos",
                minzoom: REPORTS_MIN_ZOOM,
                fields: &[
                    ("id", "Number"),
                    ("category", "String"),
                    ("status", "String"),
                    ("grid_id", "Number"),
                    ("created_at", "String"),
                ],
            }],
        }
    }

    /// `select ST_AsMVT(...)` for this layer at zoom `z`; the statement binds z, x, y as $1..$3.
    fn sql(self, z: u8, out: &mut String) {
        let env = "ST_TileEnvelope($1, $2, $3)";
        let margin = f64::from(BUFFER) / f64::from(EXTENT);
        let env_buffered = format!("ST_TileEnvelope($1, $2, $3, margin => {margin})");
        // Half a screen pixel of a 512 px tile: invisible, but it drops most vertices of
        // polygons that cover only a few pixels at low zoom.
        let tolerance = TileCoord::size_at(z) / 1024.0;
        let simplified = |col: &str| {
            if z < SIMPLIFY_BELOW_ZOOM { format!("ST_Simplify({col}, {tolerance}, true)") } else { col.to_string() }
        };
        let mvt_geom =
            |col: &str, buffer: u32| format!("ST_AsMVTGeom({}, {env}, {EXTENT}, {buffer}, true)", simplified(col));
        match self {
            Layer::Grids => {
                if let Some(level) = outline_level(z) {
                    let _ = write!(
                        out,
                        r"(select ST_AsMVT(t, 'outlines', {EXTENT}, 'geom', 'id') from (
    select o.key as id, o.level, n.code, n.name, o.grids, o.households, o.workers, o.balance_min, o.balance_max,
           {geom} as geom
      from outline o left join {level} n on n.id = o.key
     where o.level = '{level}' and o.geom_3857 && {env_buffered}) t where t.geom is not null)",
                        geom = mvt_geom("o.geom_3857", BUFFER),
                    );
                    return;
                }
                let _ = write!(
                    out,
                    r"(select ST_AsMVT(t, 'grids', {EXTENT}, 'geom', 'id') from (
    select g.id, g.code, g.name, c.name as community, g.households,
           round(g.households / 300.0, 3)::float8 as balance,
           (select count(*) from grid_assignment a where a.grid_id = g.id)::int4 as workers,
           {geom} as geom
      from grid g left join community c on c.id = g.community_id
     where g.geom_3857 && {env_buffered}) t where t.geom is not null)",
                    geom = mvt_geom("g.geom_3857", BUFFER),
                );
                if z >= GRID_LABELS_MIN_ZOOM {
                    // Buffer 0: each label point belongs to exactly one tile, so it is placed once.
                    let _ = write!(
                        out,
                        r" || coalesce((select ST_AsMVT(t, 'grid_labels', {EXTENT}, 'geom', 'id') from (
    select g.id, g.code, g.name, g.households, round(g.households / 300.0, 3)::float8 as balance,
           ST_AsMVTGeom(g.label_3857, {env}, {EXTENT}, 0, true) as geom
      from grid g
     where g.label_3857 && {env}) t where t.geom is not null), '')"
                    );
                }
            }
            Layer::Buildings => {
                if z < BUILDINGS_MIN_ZOOM {
                    out.push_str("''::bytea");
                    return;
                }
                let _ = write!(
                    out,
                    r"(select ST_AsMVT(t, 'buildings', {EXTENT}, 'geom', 'id') from (
    select b.id, b.floors, b.households, b.use, {geom} as geom
      from building b
     where b.geom_3857 && {env_buffered}) t where t.geom is not null)",
                    geom = mvt_geom("b.geom_3857", BUFFER),
                );
            }
            Layer::Stations => {
                if z < STATIONS_MIN_ZOOM {
                    out.push_str("''::bytea");
                    return;
                }
                let _ = write!(
                    out,
                    r"(select ST_AsMVT(t, 'stations', {EXTENT}, 'geom', 'id') from (
    select s.id, s.name, array_to_string(s.services, ',') as services, s.opening_hours,
           ST_AsMVTGeom(s.geom_3857, {env}, {EXTENT}, {BUFFER}, true) as geom
      from station s
     where s.geom_3857 && {env_buffered}) t where t.geom is not null)"
                );
            }
            Layer::Roads => {
                let alleys = if z < ALLEYS_MIN_ZOOM { " and r.class <> 'alley'" } else { "" };
                let _ = write!(
                    out,
                    r"(select ST_AsMVT(t, 'roads', {EXTENT}, 'geom', 'id') from (
    select r.id, r.name, r.class, {geom} as geom
      from road r
     where r.geom_3857 && {env_buffered}{alleys}) t where t.geom is not null)",
                    geom = mvt_geom("r.geom_3857", BUFFER),
                );
            }
            Layer::Reports => {
                if z < REPORTS_MIN_ZOOM {
                    out.push_str("''::bytea");
                    return;
                }
                // Local time (UTC+8, no daylight saving) to the minute: what a resident reads.
                let _ = write!(
                    out,
                    r#"(select ST_AsMVT(t, 'reports', {EXTENT}, 'geom', 'id') from (
    select r.id, r.category, r.status, r.grid_id,
           to_char(r.created_at at time zone 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI"+08:00"') as created_at,
           ST_AsMVTGeom(r.geom_3857, {env}, {EXTENT}, {BUFFER}, true) as geom
      from report r
     where r.geom_3857 && {env_buffered} and r.status <> 'cancelled'
     order by r.created_at desc, r.id desc
     limit {REPORTS_PER_TILE}) t where t.geom is not null)"#
                );
            }
        }
    }
}

/// A layer of a tile as TileJSON describes it.
#[derive(Debug, Clone)]
pub struct VectorLayer {
    pub id: &'static str,
    pub description: &'static str,
    pub minzoom: u8,
    pub fields: &'static [(&'static str, &'static str)],
}

/// Why a `{layers}` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("unknown layer `{0}` (known: grids, buildings, stations, roads, reports)")]
    Unknown(String),
}

/// A set of layers (order-free: `grids,buildings` and `buildings,grids` are the same tiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LayerSet(u8);

impl LayerSet {
    pub const EMPTY: LayerSet = LayerSet(0);
    pub const ALL: LayerSet = LayerSet(0b1_1111);
    /// The base map: every layer but reports. Reports change every minute; kept in a source of
    /// their own, their churn does not evict the base map's tiles.
    pub const BASE: LayerSet = LayerSet(Self::ALL.0 & !Layer::Reports.bit());
    /// Just the reports.
    pub const REPORTS: LayerSet = LayerSet::EMPTY.with(Layer::Reports);

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

    /// One statement returning the whole tile as `bytea` (empty when nothing is in it).
    /// Concatenated `ST_AsMVT` results are a valid MVT: a tile is a sequence of layer messages.
    pub fn sql(self, z: u8) -> String {
        let mut sql = String::from("select ");
        for (i, layer) in self.iter().enumerate() {
            if i > 0 {
                sql.push_str("\n || ");
            }
            sql.push_str("coalesce(");
            layer.sql(z, &mut sql);
            sql.push_str(", '')");
        }
        if self.is_empty() {
            sql.push_str("''::bytea");
        }
        sql
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
        assert_eq!(LayerSet::ALL.drawn_at(13), LayerSet::parse("grids,stations,roads,reports").expect("known"));
        assert_eq!(LayerSet::ALL.drawn_at(7), LayerSet::parse("grids,roads").expect("known"));
        assert!(set.sql(9).contains("'outlines'") && set.sql(9).contains("'community'"));
        assert!(set.sql(3).contains("'county'") && !set.sql(3).contains("'grids'"));
        assert!(!set.sql(10).contains("'outlines'"));
        assert_eq!(LayerSet::BASE.with(Layer::Reports), LayerSet::ALL);
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
