//! One declarative definition per MVT layer ([`MVT_LAYERS`]): its source table and filter,
//! its columns and their MVT types, the zooms it draws at, its simplification and buffer, and
//! how the style draws it. Everything else is derived from these definitions:
//!
//! - the SELECT the in-memory loader and the per-tile reads run ([`MvtLayer::select_sql`]);
//! - the `ST_AsMVT` reference statement ([`crate::LayerSet::sql`]), which tests compare the
//!   Rust encoder with, and the benchmark's PostGIS floor;
//! - TileJSON's and PMTiles' `vector_layers` ([`vector_layers_json`]);
//! - the style's layer list ([`style_layers`]), in drawing order.
//!
//! Only these static fragments are ever formatted into SQL; z/x/y and boxes are bound.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::balance;
use crate::layer::{
    ALLEYS_MIN_ZOOM, BUILDINGS_MIN_ZOOM, GRID_LABELS_MIN_ZOOM, GRIDS_MIN_ZOOM, Layer, LayerSet, REPORTS_MIN_ZOOM,
    REPORTS_PER_TILE, STATIONS_MIN_ZOOM,
};
use crate::tile::{BUFFER, MAX_ZOOM};

/// The MVT value type of a column (and its TileJSON field type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any integer: read as `int8`, written as uint/sint as `ST_AsMVT` does.
    Int,
    /// `float8`, written as a double.
    Double,
    Text,
}

impl Kind {
    /// The SQL type every path casts the column to, so both encoders see the same value.
    const fn sql_type(self) -> &'static str {
        match self {
            Kind::Int => "int8",
            Kind::Double => "float8",
            Kind::Text => "text",
        }
    }

    /// TileJSON 3.0's field type.
    pub const fn tilejson(self) -> &'static str {
        match self {
            Kind::Int | Kind::Double => "Number",
            Kind::Text => "String",
        }
    }
}

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy)]
pub enum Expr {
    /// An SQL expression over the source's tables.
    Sql(&'static str),
    /// The household balance of this many households ([`balance::sql`]).
    Balance(&'static str),
    /// The balance class of this many households per grid ([`balance::class_sql`]).
    BalanceClass(&'static str),
}

impl Expr {
    pub fn sql(self) -> String {
        match self {
            Expr::Sql(s) => s.to_string(),
            Expr::Balance(h) => balance::sql(h),
            Expr::BalanceClass(h) => balance::class_sql(h),
        }
    }
}

/// One property of a layer's features; null values are left out of the tile.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub expr: Expr,
    pub kind: Kind,
}

const fn col(name: &'static str, sql: &'static str, kind: Kind) -> Column {
    Column { name, expr: Expr::Sql(sql), kind }
}

/// Rows of one table (with joins) that a layer draws at some zooms.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// `table alias [join …]`.
    pub from: &'static str,
    /// A condition on every row, if any.
    pub filter: Option<&'static str>,
}

/// Features whose text column equals a value are left out below a zoom (alleys below z14).
#[derive(Debug, Clone, Copy)]
pub struct HideBelow {
    pub zoom: u8,
    pub column: &'static str,
    pub value: &'static str,
}

/// A per-tile layer keeps the newest rows only: `order by … limit`.
#[derive(Debug, Clone, Copy)]
pub struct Newest {
    pub order_by: &'static str,
    pub limit: u32,
}

/// A layer of the style drawing this MVT layer. `source`, `source-layer` and the zoom range
/// come from the definition; `style` gives the rest (`paint`, `layout`).
#[derive(Debug, Clone, Copy)]
pub struct Draw {
    pub id: &'static str,
    pub kind: &'static str,
    /// Position in the style, bottom first: fills, roads, buildings, lines, labels, points.
    pub order: u8,
    /// Drawn from this zoom when that is later than the layer's own start.
    pub minzoom: Option<u8>,
    pub style: fn() -> Value,
}

/// One MVT layer of the tiles.
#[derive(Debug, Clone, Copy)]
pub struct MvtLayer {
    /// The MVT layer name (`source-layer` in a style).
    pub name: &'static str,
    /// The requestable layer (`{layers}` in the URL) that yields it.
    pub layer: Layer,
    pub description: &'static str,
    /// Where its rows come from, by zoom (the outlines change table with the zoom).
    pub sources: &'static [Source],
    /// The feature id (an `int8` expression).
    pub id: &'static str,
    /// The EPSG:3857 geometry expression.
    pub geom: &'static str,
    pub columns: &'static [Column],
    /// Douglas–Peucker to half a screen pixel below [`crate::layer::SIMPLIFY_BELOW_ZOOM`].
    pub simplify: bool,
    /// Tile units around the tile a feature is cut to (0 for label points: each is in one tile).
    pub buffer: u32,
    pub hide_below: Option<HideBelow>,
    pub newest: Option<Newest>,
    /// Held in memory ([`crate::store`]), or read from PostgreSQL per tile.
    pub in_memory: bool,
    pub draws: &'static [Draw],
}

/// Each grid with the leader states of its buildings that have households, counted.
const LEADER_COVERAGE_FROM: &str = "grid g cross join lateral (
    select count(*) as buildings,
           count(*) filter (where s.state = 'current') as led,
           count(*) filter (where s.state = 'expired') as expired
      from (select gridmap_leader_state(b.id) as state from building b
             where b.grid_id = g.id and b.households > 0) s) k";

/// The grids of active emergency episodes (migration 0037) with their counts: members
/// mobilised for the grid, those checked in, open tasks.
const EMERGENCY_FROM: &str = "grid g
      join (select t.grid_id, t.episode_id, count(*) filter (where t.done_at is null) as open_tasks
              from emergency_task t join emergency_episode e on e.id = t.episode_id and e.ended_at is null
             group by t.grid_id, t.episode_id) t on t.grid_id = g.id
      cross join lateral (
          select count(*) as members, count(*) filter (where m.state = 'checked_in') as volunteers
            from emergency_mobilisation m where m.episode_id = t.episode_id and m.grid_id = g.id) k";

const GRID_FROM: &str = "grid g left join community c on c.id = g.community_id";

/// The grids of running rounds with their door-knocking counts (migration 0034; the rule of a
/// done building is `crate`-independent: its visits' households, any outcome, reach its count).
const COVERAGE_FROM: &str = "grid g
      join door_round_grid rg on rg.grid_id = g.id
      join door_round r on r.id = rg.round_id and r.closed_at is null
      cross join lateral (
          select count(*) as buildings,
                 count(*) filter (where x.settled >= x.households) as buildings_done,
                 coalesce(sum(x.households), 0) as households,
                 coalesce(sum(least(x.settled, x.households)), 0) as households_settled
            from (select b.households,
                         (select coalesce(sum(v.households), 0) from door_visit v
                           where v.round_id = r.id and v.building_id = b.id) as settled
                    from building b where b.grid_id = g.id and b.households > 0) x) k";

const OUTLINE_COLUMNS: &[Column] = &[
    col("level", "o.level", Kind::Text),
    col("code", "n.code", Kind::Text),
    col("name", "n.name", Kind::Text),
    col("grids", "o.grids", Kind::Int),
    col("households", "o.households", Kind::Int),
    col("workers", "o.workers", Kind::Int),
    col("balance_min", "o.balance_min", Kind::Double),
    col("balance_max", "o.balance_max", Kind::Double),
    // The class of the outline's mean grid (households per grid).
    Column { name: "balance_class", expr: Expr::BalanceClass("o.households::float8 / o.grids"), kind: Kind::Text },
];

/// A `match` on `balance_class` giving each class its colour (grey for none). Every label is
/// an array: QGIS 3.22's converter reads match labels as lists only.
fn balance_colour() -> Value {
    let mut m = vec![json!("match"), json!(["get", "balance_class"])];
    for class in balance::CLASSES {
        m.push(json!([class.name]));
        m.push(json!(class.colour));
    }
    m.push(json!("#cccccc"));
    Value::Array(m)
}

const LABEL_PAINT: fn() -> Value =
    || json!({ "text-color": "#2d1b4e", "text-halo-color": "#ffffff", "text-halo-width": 1.5 });

/// Every MVT layer, in drawing order inside a tile (bottom first).
pub static MVT_LAYERS: [MvtLayer; 11] = [
    MvtLayer {
        name: "roads",
        layer: Layer::Roads,
        description: "Road network; alleys from z14",
        sources: &[Source { min_zoom: 0, max_zoom: MAX_ZOOM, from: "road r", filter: None }],
        id: "r.id",
        geom: "r.geom_3857",
        columns: &[col("name", "r.name", Kind::Text), col("class", "r.class", Kind::Text)],
        simplify: true,
        buffer: BUFFER,
        hide_below: Some(HideBelow { zoom: ALLEYS_MIN_ZOOM, column: "class", value: "alley" }),
        newest: None,
        in_memory: true,
        draws: &[Draw {
            id: "roads",
            kind: "line",
            order: 20,
            minzoom: None,
            style: || {
                json!({
                    "layout": { "line-cap": "round", "line-join": "round" },
                    "paint": {
                        "line-color": ["match", ["get", "class"], ["main"], "#ffffff", "#fbfaf7"],
                        "line-width": ["interpolate", ["exponential", 1.6], ["zoom"],
                            11, ["match", ["get", "class"], ["main"], 1.5, 0.5],
                            17, ["match", ["get", "class"], ["main"], 14, ["street"], 8, 4]]
                    }
                })
            },
        }],
    },
    MvtLayer {
        name: "outlines",
        layer: Layer::Grids,
        description: "Generalised outlines below z10, the union of their grids: counties (县) to z6, \
                      subdistricts (街道) z7–z8, communities (社区) z9; with grid count, households, \
                      workers, the spread of grid balance and the class of the mean grid",
        // The level drawn at each zoom, also the table its code and name come from: each level
        // from the zoom where its typical outline is ten or more pixels across (migration 0029).
        sources: &[
            Source {
                min_zoom: 0,
                max_zoom: 6,
                from: "outline o left join county n on n.id = o.key",
                filter: Some("o.level = 'county'"),
            },
            Source {
                min_zoom: 7,
                max_zoom: 8,
                from: "outline o left join subdistrict n on n.id = o.key",
                filter: Some("o.level = 'subdistrict'"),
            },
            Source {
                min_zoom: 9,
                max_zoom: GRIDS_MIN_ZOOM - 1,
                from: "outline o left join community n on n.id = o.key",
                filter: Some("o.level = 'community'"),
            },
        ],
        id: "o.key",
        geom: "o.geom_3857",
        columns: OUTLINE_COLUMNS,
        simplify: true,
        buffer: BUFFER,
        hide_below: None,
        newest: None,
        // Few rows, read per tile; a cached tile is only re-rendered after a change there.
        in_memory: false,
        draws: &[
            Draw {
                id: "outlines-fill",
                kind: "fill",
                order: 11,
                minzoom: None,
                style: || json!({ "paint": { "fill-color": balance_colour(), "fill-opacity": 0.35 } }),
            },
            Draw {
                id: "outlines-line",
                kind: "line",
                order: 41,
                minzoom: None,
                style: || {
                    json!({ "paint": {
                        "line-color": "#5b3a8c",
                        "line-width": ["match", ["get", "level"], ["county"], 1.5, ["subdistrict"], 1.2, 0.8]
                    } })
                },
            },
            Draw {
                id: "outlines-label",
                kind: "symbol",
                order: 50,
                minzoom: Some(5),
                // Text form (`{field}` tokens): QGIS 3.22 drops `format` labels.
                style: || {
                    json!({
                        "layout": {
                            "text-field": "{name}\n{grids} 网格",
                            "text-font": ["sans-serif"],
                            "text-size": 11,
                            "text-max-width": 8
                        },
                        "paint": LABEL_PAINT()
                    })
                },
            },
        ],
    },
    MvtLayer {
        name: "grids",
        layer: Layer::Grids,
        description: "Grid (网格) boundaries from z10; simplified below z14. balance = households / 300; \
                      balance_class: far_under (< 210 households), under (210–269), on_target (270–329), \
                      over (330–389), far_over (390 or more)",
        sources: &[Source { min_zoom: GRIDS_MIN_ZOOM, max_zoom: MAX_ZOOM, from: GRID_FROM, filter: None }],
        id: "g.id",
        geom: "g.geom_3857",
        columns: &[
            col("code", "g.code", Kind::Text),
            col("name", "g.name", Kind::Text),
            col("community", "c.name", Kind::Text),
            col("households", "g.households", Kind::Int),
            Column { name: "balance", expr: Expr::Balance("g.households"), kind: Kind::Double },
            Column { name: "balance_class", expr: Expr::BalanceClass("g.households"), kind: Kind::Text },
            col("workers", "(select count(*) from grid_assignment a where a.grid_id = g.id)", Kind::Int),
        ],
        simplify: true,
        buffer: BUFFER,
        hide_below: None,
        newest: None,
        in_memory: true,
        draws: &[
            Draw {
                id: "grids-fill",
                kind: "fill",
                order: 10,
                minzoom: None,
                style: || json!({ "paint": { "fill-color": balance_colour(), "fill-opacity": 0.45 } }),
            },
            Draw {
                id: "grids-outline",
                kind: "line",
                order: 40,
                minzoom: None,
                style: || {
                    json!({ "paint": {
                        "line-color": "#5b3a8c",
                        "line-width": ["interpolate", ["linear"], ["zoom"], 10, 0.5, 16, 2.5]
                    } })
                },
            },
        ],
    },
    MvtLayer {
        name: "grid_labels",
        layer: Layer::Grids,
        description: "One label point per grid (point on surface, always inside the grid), from z12",
        sources: &[Source { min_zoom: GRID_LABELS_MIN_ZOOM, max_zoom: MAX_ZOOM, from: "grid g", filter: None }],
        id: "g.id",
        geom: "g.label_3857",
        columns: &[
            col("code", "g.code", Kind::Text),
            col("name", "g.name", Kind::Text),
            col("households", "g.households", Kind::Int),
            Column { name: "balance", expr: Expr::Balance("g.households"), kind: Kind::Double },
        ],
        simplify: false,
        // Each label point belongs to exactly one tile, so it is placed once.
        buffer: 0,
        hide_below: None,
        newest: None,
        in_memory: true,
        draws: &[Draw {
            id: "grid-labels",
            kind: "symbol",
            order: 51,
            minzoom: Some(13),
            style: || {
                json!({
                    "layout": {
                        "text-field": "{name}\n{households} 户",
                        "text-font": ["sans-serif"],
                        "text-size": ["interpolate", ["linear"], ["zoom"], 13, 10, 17, 14],
                        "text-anchor": "center",
                        "text-justify": "center",
                        "text-max-width": 8
                    },
                    "paint": LABEL_PAINT()
                })
            },
        }],
    },
    // Issue 23 §2: per grid, the door-knocking progress of its running round — counts only,
    // never who visited or what was noted. Read per tile (visits change all day); drawn hidden,
    // the web map shows it to grid workers and planners.
    MvtLayer {
        name: "coverage",
        layer: Layer::Coverage,
        description: "Door-knocking (敲门行动) coverage per grid of its running round, from z10: buildings \
                      with households and those done (their visits recorded every household), households \
                      and households recorded; progress = buildings_done / buildings",
        sources: &[Source { min_zoom: GRIDS_MIN_ZOOM, max_zoom: MAX_ZOOM, from: COVERAGE_FROM, filter: None }],
        id: "g.id",
        geom: "g.geom_3857",
        columns: &[
            col("round_id", "rg.round_id", Kind::Int),
            col("buildings", "k.buildings", Kind::Int),
            col("buildings_done", "k.buildings_done", Kind::Int),
            col("households", "k.households", Kind::Int),
            col("households_settled", "k.households_settled", Kind::Int),
            col("progress", "case when k.buildings > 0 then k.buildings_done::float8 / k.buildings end", Kind::Double),
            col(
                "progress_class",
                "case when k.buildings = 0 or k.buildings_done = k.buildings then 'done' \
                      when k.buildings_done * 2 >= k.buildings then 'half' \
                      when k.households_settled > 0 then 'started' else 'none' end",
                Kind::Text,
            ),
        ],
        simplify: true,
        buffer: BUFFER,
        hide_below: None,
        newest: None,
        in_memory: false,
        draws: &[
            Draw {
                id: "coverage-fill",
                kind: "fill",
                order: 12,
                minzoom: None,
                style: || {
                    json!({
                        "layout": { "visibility": "none" },
                        "paint": {
                            "fill-color": ["match", ["get", "progress_class"],
                                ["done"], "#2e8b57", ["half"], "#9acd32", ["started"], "#f0c419", "#d9534f"],
                            "fill-opacity": 0.45
                        }
                    })
                },
            },
            Draw {
                id: "coverage-label",
                kind: "symbol",
                order: 52,
                minzoom: Some(13),
                style: || {
                    json!({
                        "layout": {
                            "visibility": "none",
                            "text-field": "{buildings_done}/{buildings}",
                            "text-font": ["sans-serif"],
                            "text-size": 12
                        },
                        "paint": LABEL_PAINT()
                    })
                },
            },
        ],
    },
    // Issue 24 §2: per grid of an active emergency episode, counts only — never a member's name,
    // phone or who checked in. Read per tile (check-ins come in all day); drawn hidden, the web
    // map shows the coverage choropleth and the grids without anyone checked in while an
    // episode is active.
    MvtLayer {
        name: "emergency",
        layer: Layer::Emergency,
        description: "Emergency mode (平急融合) per grid of an active episode, from z10: episode_id, members \
                      mobilised, volunteers checked in, households, per_100_households (volunteers per 100 \
                      households), open_tasks, coverage_class (none: nobody checked in; low < 1, fair < 3, \
                      good >= 3 per 100 households). Counts only",
        sources: &[Source { min_zoom: GRIDS_MIN_ZOOM, max_zoom: MAX_ZOOM, from: EMERGENCY_FROM, filter: None }],
        id: "g.id",
        geom: "g.geom_3857",
        columns: &[
            col("episode_id", "t.episode_id", Kind::Int),
            col("members", "k.members", Kind::Int),
            col("volunteers", "k.volunteers", Kind::Int),
            col("households", "g.households", Kind::Int),
            col(
                "per_100_households",
                "case when g.households > 0 then round(k.volunteers * 100.0 / g.households, 2) end",
                Kind::Double,
            ),
            col("open_tasks", "t.open_tasks", Kind::Int),
            col(
                "coverage_class",
                "case when k.volunteers = 0 then 'none' \
                      when g.households > 0 and k.volunteers * 100.0 / g.households < 1 then 'low' \
                      when g.households > 0 and k.volunteers * 100.0 / g.households < 3 then 'fair' else 'good' end",
                Kind::Text,
            ),
        ],
        simplify: true,
        buffer: BUFFER,
        hide_below: None,
        newest: None,
        in_memory: false,
        draws: &[
            Draw {
                id: "emergency-fill",
                kind: "fill",
                order: 13,
                minzoom: None,
                style: || {
                    json!({
                        "layout": { "visibility": "none" },
                        "paint": {
                            "fill-color": ["match", ["get", "coverage_class"],
                                ["good"], "#1b7837", ["fair"], "#7fbf7b", ["low"], "#f1a340", "#d7301f"],
                            "fill-opacity": 0.5
                        }
                    })
                },
            },
            Draw {
                id: "emergency-none",
                kind: "line",
                order: 33,
                minzoom: None,
                style: || {
                    json!({
                        "layout": { "visibility": "none" },
                        "filter": ["==", ["get", "coverage_class"], "none"],
                        "paint": { "line-color": "#b71c1c", "line-width": 3, "line-dasharray": [2, 1] }
                    })
                },
            },
            Draw {
                id: "emergency-label",
                kind: "symbol",
                order: 53,
                minzoom: Some(13),
                style: || {
                    json!({
                        "layout": {
                            "visibility": "none",
                            "text-field": "{volunteers}/{members} · {open_tasks}",
                            "text-font": ["sans-serif"],
                            "text-size": 12
                        },
                        "paint": LABEL_PAINT()
                    })
                },
            },
        ],
    },
    MvtLayer {
        name: "leader_coverage",
        layer: Layer::Leaders,
        description: "Red building leader (红色楼长) coverage per grid, at its label point, from z12: \
                      buildings with households, led (with a current leader), expired (the last term ran \
                      out), unled, coverage_class (full or gaps). Counts only: never a name or number",
        sources: &[Source {
            min_zoom: GRID_LABELS_MIN_ZOOM,
            max_zoom: MAX_ZOOM,
            from: LEADER_COVERAGE_FROM,
            filter: None,
        }],
        id: "g.id",
        geom: "g.label_3857",
        columns: &[
            col("buildings", "k.buildings", Kind::Int),
            col("led", "k.led", Kind::Int),
            col("expired", "k.expired", Kind::Int),
            col("unled", "k.buildings - k.led", Kind::Int),
            col("coverage_class", "case when k.led = k.buildings then 'full' else 'gaps' end", Kind::Text),
        ],
        simplify: false,
        buffer: 0,
        hide_below: None,
        newest: None,
        // Depends on the day (a term runs out at midnight) and on another table: read per tile.
        in_memory: false,
        draws: &[Draw {
            id: "leader-coverage",
            kind: "symbol",
            order: 52,
            minzoom: Some(13),
            // Hidden until the worker's or planner's view shows it (web-map/src/worker.js, planner.js).
            style: || {
                json!({
                    "layout": {
                        "visibility": "none",
                        "text-field": "楼长 {led}/{buildings}",
                        "text-font": ["sans-serif"],
                        "text-size": 11,
                        "text-offset": [0, 2.2],
                        "text-max-width": 10
                    },
                    "paint": {
                        "text-color": ["match", ["get", "coverage_class"], ["full"], "#2e7d32", "#c62828"],
                        "text-halo-color": "#ffffff",
                        "text-halo-width": 1.5
                    }
                })
            },
        }],
    },
    MvtLayer {
        name: "buildings",
        layer: Layer::Buildings,
        description: "Building (楼栋) footprints, from z14",
        sources: &[Source { min_zoom: BUILDINGS_MIN_ZOOM, max_zoom: MAX_ZOOM, from: "building b", filter: None }],
        id: "b.id",
        geom: "b.geom_3857",
        columns: &[
            col("floors", "b.floors", Kind::Int),
            col("households", "b.households", Kind::Int),
            col("use", "b.use", Kind::Text),
        ],
        simplify: true,
        buffer: BUFFER,
        hide_below: None,
        newest: None,
        in_memory: true,
        draws: &[Draw {
            id: "buildings",
            kind: "fill",
            order: 30,
            minzoom: None,
            style: || {
                json!({ "paint": {
                    "fill-color": ["match", ["get", "use"], ["residential"], "#cdbfae", ["commercial"], "#d9b3a3",
                                   ["public"], "#b9c7d6", ["industrial"], "#c4c0b9", "#d3cbc1"],
                    "fill-outline-color": "#9d8f80"
                } })
            },
        }],
    },
    MvtLayer {
        name: "leader_gaps",
        layer: Layer::Leaders,
        description: "Buildings with households but no current red building leader, from z14: \
                      leader_state (expired: the last term ran out; none: never led), households. \
                      Never a name or number",
        sources: &[Source {
            min_zoom: BUILDINGS_MIN_ZOOM,
            max_zoom: MAX_ZOOM,
            from: "building b",
            filter: Some("b.households > 0 and gridmap_leader_state(b.id) <> 'current'"),
        }],
        id: "b.id",
        geom: "b.geom_3857",
        columns: &[
            col("leader_state", "gridmap_leader_state(b.id)", Kind::Text),
            col("households", "b.households", Kind::Int),
        ],
        simplify: true,
        buffer: BUFFER,
        hide_below: None,
        newest: None,
        in_memory: false,
        draws: &[Draw {
            id: "leader-gaps",
            kind: "line",
            order: 31,
            minzoom: None,
            style: || {
                json!({
                    "layout": { "visibility": "none" },
                    "paint": {
                        "line-color": ["match", ["get", "leader_state"], ["expired"], "#ef6c00", "#c62828"],
                        "line-width": 2.5
                    }
                })
            },
        }],
    },
    MvtLayer {
        name: "stations",
        layer: Layer::Stations,
        description: "Warm-\"new\" stations (暖\"新\"驿站) for riders and couriers, from z8",
        sources: &[Source { min_zoom: STATIONS_MIN_ZOOM, max_zoom: MAX_ZOOM, from: "station s", filter: None }],
        id: "s.id",
        geom: "s.geom_3857",
        columns: &[
            col("name", "s.name", Kind::Text),
            col("services", "array_to_string(s.services, ',')", Kind::Text),
            col("opening_hours", "s.opening_hours", Kind::Text),
        ],
        simplify: false,
        buffer: BUFFER,
        hide_below: None,
        newest: None,
        in_memory: true,
        draws: &[
            Draw {
                id: "stations",
                kind: "circle",
                order: 70,
                minzoom: None,
                style: || {
                    json!({ "paint": {
                        "circle-color": "#e4572e",
                        "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 3, 16, 8],
                        "circle-stroke-color": "#ffffff",
                        "circle-stroke-width": 1.5
                    } })
                },
            },
            Draw {
                id: "stations-label",
                kind: "symbol",
                order: 71,
                minzoom: Some(14),
                style: || {
                    json!({
                        "layout": {
                            "text-field": "{name}",
                            "text-font": ["sans-serif"],
                            "text-size": 12,
                            "text-anchor": "top",
                            "text-offset": [0, 0.9],
                            "text-optional": true
                        },
                        "paint": { "text-color": "#9c2f12", "text-halo-color": "#ffffff", "text-halo-width": 1.5 }
                    })
                },
            },
        ],
    },
    MvtLayer {
        name: "reports",
        layer: Layer::Reports,
        description: "Street reports (事件上报) from z12, newest 4,000 per tile; cancelled ones left out. \
                      Public fields only: never the reporter, description or photos",
        sources: &[Source {
            min_zoom: REPORTS_MIN_ZOOM,
            max_zoom: MAX_ZOOM,
            from: "report r",
            filter: Some("r.status <> 'cancelled'"),
        }],
        id: "r.id",
        geom: "r.geom_3857",
        columns: &[
            col("category", "r.category", Kind::Text),
            col("status", "r.status", Kind::Text),
            col("grid_id", "r.grid_id", Kind::Int),
            // Local time (UTC+8, no daylight saving) to the minute: what a resident reads.
            col(
                "created_at",
                r#"to_char(r.created_at at time zone 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI"+08:00"')"#,
                Kind::Text,
            ),
        ],
        simplify: false,
        buffer: BUFFER,
        hide_below: None,
        // The newest per tile keeps a tile of a busy spot under 500 KB; the heatmap shows density.
        newest: Some(Newest { order_by: "r.created_at desc, r.id desc", limit: REPORTS_PER_TILE }),
        in_memory: false,
        // Open reports red, in hand amber, done green (closed and verified).
        draws: &[Draw {
            id: "reports",
            kind: "circle",
            order: 60,
            minzoom: Some(14),
            style: || {
                json!({ "paint": {
                    "circle-color": ["match", ["get", "status"],
                        ["submitted", "accepted", "rework"], "#c0392b",
                        ["dispatched", "handling", "feedback", "parked"], "#e6a100",
                        "#2e8b57"],
                    "circle-radius": ["interpolate", ["linear"], ["zoom"], 14, 3, 18, 6],
                    "circle-stroke-color": "#ffffff",
                    "circle-stroke-width": 1
                } })
            },
        }],
    },
];

/// The envelope the row reads bind (`$1..$4`, EPSG:3857).
pub const ENVELOPE: &str = "ST_MakeEnvelope($1, $2, $3, $4, 3857)";

impl MvtLayer {
    /// The zooms this layer draws at.
    pub fn min_zoom(&self) -> u8 {
        self.sources.iter().map(|s| s.min_zoom).min().unwrap_or(MAX_ZOOM)
    }

    pub fn max_zoom(&self) -> u8 {
        self.sources.iter().map(|s| s.max_zoom).max().unwrap_or(0)
    }

    /// Its source at zoom `z`, if it draws there.
    pub fn source_at(&self, z: u8) -> Option<&'static Source> {
        self.sources.iter().find(|s| (s.min_zoom..=s.max_zoom).contains(&z))
    }

    /// The columns as `(expr)::type as name`, comma-separated.
    fn columns_sql(&self) -> String {
        self.columns
            .iter()
            .map(|c| format!("({})::{} as {}", c.expr.sql(), c.kind.sql_type(), c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `where …` for the rows whose geometry's box meets `envelope`: the source's filter, and
    /// for a per-tile layer its newest rows only.
    fn where_sql(&self, source: &Source, envelope: &str) -> String {
        let mut sql = format!("where {} && {envelope}", self.geom);
        if let Some(filter) = source.filter {
            let _ = write!(sql, " and {filter}");
        }
        if let Some(n) = self.newest {
            let _ = write!(sql, " order by {} limit {}", n.order_by, n.limit);
        }
        sql
    }

    /// The rows of `source` whose box meets `$1..$4` (EPSG:3857): the id (`int8`), the columns
    /// in order, the geometry — what the loader and the per-tile reads decode.
    pub fn select_sql(&self, source: &Source) -> String {
        format!(
            "select ({})::int8, {}, {} from {} {}",
            self.id,
            self.columns_sql(),
            self.geom,
            source.from,
            self.where_sql(source, ENVELOPE)
        )
    }

    /// [`MvtLayer::select_sql`] for the rows whose id is in `$5 ..< $6` too: the in-memory
    /// loader reads a large layer in id ranges on several connections at once.
    pub fn select_range_sql(&self, source: &Source) -> String {
        assert!(self.newest.is_none(), "{}: a per-tile layer is not loaded in ranges", self.name);
        format!("{} and ({id})::int8 >= $5 and ({id})::int8 < $6", self.select_sql(source), id = self.id)
    }

    /// The least and greatest id of `source`'s rows (one row, nulls for none).
    pub fn id_range_sql(&self, source: &Source) -> String {
        let filter = source.filter.map(|f| format!(" where {f}")).unwrap_or_default();
        format!("select min(({id})::int8), max(({id})::int8) from {}{filter}", source.from, id = self.id)
    }

    /// `ST_AsMVT` of this layer for the tile `$1/$2/$3` at zoom `z` (`None` if it draws nothing
    /// there): the PostGIS reference the Rust encoder is tested against.
    pub fn mvt_sql(&self, z: u8) -> Option<String> {
        let source = self.source_at(z)?;
        let margin = f64::from(self.buffer) / f64::from(crate::tile::EXTENT);
        let envelope = format!("ST_TileEnvelope($1, $2, $3, margin => {margin})");
        let mut geom = self.geom.to_string();
        if self.simplify && z < crate::layer::SIMPLIFY_BELOW_ZOOM {
            // Half a screen pixel of a 512 px tile, as the Rust cut (render::frame).
            let tolerance = crate::tile::TileCoord::size_at(z) / 1024.0;
            geom = format!("ST_Simplify({geom}, {tolerance}, true)");
        }
        let mut filter = self.where_sql(source, &envelope);
        if let Some(h) = self.hide_below.filter(|h| z < h.zoom) {
            let column = self.columns.iter().find(|c| c.name == h.column).expect("hide_below names a column");
            // Before `order by`, which only per-tile layers have (checked by a test).
            let _ = write!(filter, " and ({}) <> '{}'", column.expr.sql(), h.value);
        }
        Some(format!(
            "(select ST_AsMVT(t, '{name}', {extent}, 'geom', 'id') from (
    select ({id})::int8 as id, {columns},
           ST_AsMVTGeom({geom}, ST_TileEnvelope($1, $2, $3), {extent}, {buffer}, true) as geom
      from {from}
     {filter}) t where t.geom is not null)",
            name = self.name,
            extent = crate::tile::EXTENT,
            id = self.id,
            columns = self.columns_sql(),
            buffer = self.buffer,
            from = source.from,
        ))
    }

    /// This layer in TileJSON's `vector_layers`.
    fn vector_layer_json(&self) -> Value {
        let fields: serde_json::Map<String, Value> =
            self.columns.iter().map(|c| (c.name.to_string(), json!(c.kind.tilejson()))).collect();
        json!({
            "id": self.name,
            "description": self.description,
            "minzoom": self.min_zoom(),
            "maxzoom": self.max_zoom(),
            "fields": fields,
        })
    }
}

/// The MVT layers of `layers` drawn at zoom `z`, in tile order.
pub fn drawn_at(layers: LayerSet, z: u8) -> impl Iterator<Item = &'static MvtLayer> {
    MVT_LAYERS.iter().filter(move |m| layers.contains(m.layer) && m.source_at(z).is_some())
}

/// The MVT layers `layer` yields.
pub fn of(layer: Layer) -> impl Iterator<Item = &'static MvtLayer> {
    MVT_LAYERS.iter().filter(move |m| m.layer == layer)
}

/// The `vector_layers` of TileJSON (and of PMTiles metadata) for a set of layers.
pub fn vector_layers_json(layers: LayerSet) -> Vec<Value> {
    MVT_LAYERS.iter().filter(|m| layers.contains(m.layer)).map(MvtLayer::vector_layer_json).collect()
}

/// The style source each requestable layer is drawn from: reports and the field-work counts
/// change all day, and in sources of their own their churn does not evict the base map's cached
/// tiles. A source whose style layers are all hidden is never requested (MapLibre skips unused
/// sources), so a resident's map asks for no count tiles at all.
pub const STYLE_SOURCES: [(&str, LayerSet); 5] = [
    ("gridmap", LayerSet::BASE),
    ("reports", LayerSet::REPORTS),
    ("coverage", LayerSet::COVERAGE),
    ("leaders", LayerSet::LEADERS),
    ("emergency", LayerSet::EMERGENCY),
];

fn style_source(layer: Layer) -> &'static str {
    STYLE_SOURCES.iter().find(|(_, set)| set.contains(layer)).map_or("gridmap", |(name, _)| name)
}

/// The style's layers drawing the tiles, in drawing order (bottom first), each with its
/// source, source-layer and zoom range from the definitions.
pub fn style_layers() -> Vec<Value> {
    let mut draws: Vec<(u8, Value)> = Vec::new();
    for m in &MVT_LAYERS {
        for d in m.draws {
            let mut layer =
                json!({ "id": d.id, "type": d.kind, "source": style_source(m.layer), "source-layer": m.name });
            let minzoom = d.minzoom.unwrap_or(0).max(m.min_zoom());
            if minzoom > 0 {
                layer["minzoom"] = json!(minzoom);
            }
            // A style layer's maxzoom is exclusive.
            if m.max_zoom() < MAX_ZOOM {
                layer["maxzoom"] = json!(m.max_zoom() + 1);
            }
            if let (Value::Object(target), Value::Object(rest)) = (&mut layer, (d.style)()) {
                target.extend(rest);
            }
            draws.push((d.order, layer));
        }
    }
    draws.sort_by_key(|(order, _)| *order);
    draws.into_iter().map(|(_, l)| l).collect()
}

/// The balance classes for a legend: name, fewest households, colour (style metadata).
pub fn balance_classes_json() -> Value {
    Value::Array(
        balance::CLASSES
            .iter()
            .map(|c| json!({ "class": c.name, "from_households": c.from_households, "colour": c.colour }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_requestable_layer_has_definitions_with_unique_names_and_ordered_sources() {
        for layer in Layer::ALL {
            assert!(of(layer).next().is_some(), "{layer:?} has no MVT layer");
        }
        let mut names: Vec<&str> = MVT_LAYERS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MVT_LAYERS.len());
        for m in &MVT_LAYERS {
            assert!(m.sources.windows(2).all(|w| w[0].max_zoom < w[1].min_zoom), "{}: overlapping sources", m.name);
            // The in-memory store reads one source; per-tile layers alone keep the newest.
            assert!(!m.in_memory || (m.sources.len() == 1 && m.newest.is_none()), "{}", m.name);
            // The alley rule is applied in SQL before `order by`, which per-tile layers have.
            assert!(m.hide_below.is_none() || m.newest.is_none(), "{}", m.name);
            if let Some(h) = m.hide_below {
                assert!(m.columns.iter().any(|c| c.name == h.column && c.kind == Kind::Text), "{}", m.name);
            }
        }
    }

    #[test]
    fn docs_tiles_md_names_every_layer_and_field() {
        let doc = include_str!("../../docs/tiles.md");
        for m in &MVT_LAYERS {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` | `{}` |", m.layer.name(), m.name)))
                .unwrap_or_else(|| panic!("docs/tiles.md has no row for {}", m.name));
            for c in m.columns {
                assert!(row.contains(&format!("`{}`", c.name)), "docs/tiles.md: {} lacks `{}`", m.name, c.name);
            }
        }
        for class in balance::CLASSES {
            assert!(doc.contains(&format!("| `{}` |", class.name)) && doc.contains(class.colour), "{}", class.name);
        }
    }

    #[test]
    fn outlines_change_level_with_the_zoom_and_stop_where_grids_start() {
        let outlines = of(Layer::Grids).find(|m| m.name == "outlines").expect("outlines");
        assert_eq!(outlines.source_at(3).and_then(|s| s.filter), Some("o.level = 'county'"));
        assert_eq!(outlines.source_at(8).and_then(|s| s.filter), Some("o.level = 'subdistrict'"));
        assert_eq!(outlines.source_at(9).and_then(|s| s.filter), Some("o.level = 'community'"));
        assert!(outlines.source_at(GRIDS_MIN_ZOOM).is_none());
        let at = |z| drawn_at(Layer::Grids.into(), z).map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(at(9), ["outlines"]);
        assert_eq!(at(10), ["grids"]);
        assert_eq!(at(12), ["grids", "grid_labels"]);
    }

    #[test]
    fn tilejson_fields_are_the_columns_with_their_types() {
        let layers = vector_layers_json(LayerSet::ALL);
        let ids: Vec<&str> = layers.iter().filter_map(|l| l["id"].as_str()).collect();
        assert_eq!(
            ids,
            [
                "roads",
                "outlines",
                "grids",
                "grid_labels",
                "coverage",
                "emergency",
                "leader_coverage",
                "buildings",
                "leader_gaps",
                "stations",
                "reports"
            ]
        );
        assert_eq!(layers[2]["fields"]["balance"], "Number");
        assert_eq!(layers[2]["fields"]["balance_class"], "String");
        assert_eq!((layers[1]["minzoom"].as_u64(), layers[1]["maxzoom"].as_u64()), (Some(0), Some(9)));
    }

    #[test]
    fn the_style_draws_every_layer_in_order_from_its_own_zoom_and_source() {
        let layers = style_layers();
        let ids: Vec<&str> = layers.iter().filter_map(|l| l["id"].as_str()).collect();
        assert_eq!(
            ids,
            [
                "grids-fill",
                "outlines-fill",
                "coverage-fill",
                "emergency-fill",
                "roads",
                "buildings",
                "leader-gaps",
                "emergency-none",
                "grids-outline",
                "outlines-line",
                "outlines-label",
                "grid-labels",
                "coverage-label",
                "leader-coverage",
                "emergency-label",
                "reports",
                "stations",
                "stations-label"
            ]
        );
        let by_id = |id: &str| layers.iter().find(|l| l["id"] == id).expect("drawn").clone();
        assert_eq!(by_id("buildings")["minzoom"], 14);
        assert_eq!(by_id("grids-fill")["minzoom"], 10);
        assert_eq!(by_id("outlines-fill")["maxzoom"], 10);
        assert_eq!(by_id("reports")["source"], "reports");
        assert_eq!(by_id("emergency-fill")["source"], "emergency");
        assert_eq!(by_id("grid-labels")["source"], "gridmap");
        assert_eq!(by_id("roads").get("minzoom"), None);
        // QGIS 3.22 keeps `match` colours with array labels and `{field}` text labels only.
        let fill = &by_id("grids-fill")["paint"]["fill-color"];
        assert_eq!(fill[0], "match");
        assert_eq!(fill[2], json!(["far_under"]));
        let text = serde_json::to_string(&layers).expect("json");
        assert!(!text.contains("\"format\"") && !text.contains("\"step\"") && !text.contains("\"case\""));
        for l in &layers {
            for colour in ["fill-color", "line-color", "circle-color", "text-color"] {
                let c = &l["paint"][colour];
                assert!(c.is_null() || c.is_string() || c[0] == "match", "{}: {colour} {c}", l["id"]);
            }
        }
    }
}
