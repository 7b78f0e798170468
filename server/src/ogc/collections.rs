//! The published collections and the allow-list of their properties. Private columns
//! (a building's `leader_name`/`leader_phone`) are simply not listed, so no query can name them.

use serde::Serialize;

/// Which table a collection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Grids,
    Buildings,
    Stations,
    Reports,
}

/// The SQL type of a property, used to type-check filters and parse equality parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropType {
    Text,
    Integer,
    Timestamp,
    TextArray,
}

impl PropType {
    /// JSON Schema for `/queryables` and the OpenAPI document.
    pub fn schema(self) -> serde_json::Value {
        match self {
            Self::Text => serde_json::json!({"type": "string"}),
            Self::Integer => serde_json::json!({"type": "integer"}),
            Self::Timestamp => serde_json::json!({"type": "string", "format": "date-time"}),
            Self::TextArray => serde_json::json!({"type": "array", "items": {"type": "string"}}),
        }
    }
}

/// One published property.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    /// Name in GeoJSON `properties` and in filters.
    pub name: &'static str,
    /// The column (a static identifier, never client input).
    pub column: &'static str,
    pub ty: PropType,
    pub title: &'static str,
    /// Whether a client may set it (Part 4); derived values (households, version) are not.
    pub writable: bool,
    /// Required on create.
    pub required: bool,
}

/// A published collection.
#[derive(Debug)]
pub struct Collection {
    pub kind: Kind,
    pub id: &'static str,
    pub table: &'static str,
    /// What reads join to the table for derived properties (the county), or `""`. Each join's
    /// relation names only columns no published table has (`county_code`), so the table's own
    /// (`id`, `geom`, `updated_at` …) stay unambiguous in every statement that reads features.
    pub joins: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// GeoJSON geometry types accepted on write.
    pub geometry: crate::geo_input::Expected,
    pub geometry_format: &'static str,
    pub properties: &'static [Property],
    /// SQL (bigint) whose value is the strong ETag: a grid's edit `version`; elsewhere
    /// `updated_at` in microseconds (set by a trigger on every change).
    pub etag_sql: &'static str,
}

const fn p(
    name: &'static str,
    column: &'static str,
    ty: PropType,
    title: &'static str,
    writable: bool,
    required: bool,
) -> Property {
    Property { name, column, ty, title, writable, required }
}

use PropType::{Integer, Text, TextArray, Timestamp};

// The `county` property of each collection (issue 22): the code of the county a feature is in,
// read-only, filterable like any property (`?county=370323`, CQL2 `county = '370323'`); a code
// no county has matches nothing. A join, not a function per row, so that a filter on it is a
// hash join of a county's few grids or subdistricts with the table (at ×10, 150,000 buildings),
// not a lookup per row. A feature outside every county (a grid with no community, a station
// outside every boundary) has `county` null.

/// The column the county joins provide.
const COUNTY_COLUMN: &str = "county_code";

/// The join giving each grid's county (community → subdistrict → county), on `$grid`: the
/// grid id column of the table it joins.
macro_rules! county_of_grid {
    ($grid:literal) => {
        concat!(
            "left join (select g.id as county_grid_id, k.code as county_code
                   from grid g join community c on c.id = g.community_id
                   join subdistrict s on s.id = c.subdistrict_id join county k on k.id = s.county_id) county_of
         on county_of.county_grid_id = ",
            $grid
        )
    };
}

/// A grid's county.
const COUNTY_OF_GRID: &str = county_of_grid!("grid.id");

/// A building's county is its grid's (the grid covering its point on surface).
const COUNTY_OF_BUILDING: &str = county_of_grid!("building.grid_id");

/// A report's county is its subdistrict's, as `/api/stats?county=` counts it (an unassigned
/// report still has the subdistrict of the nearest grid).
const COUNTY_OF_REPORT: &str = r"left join (select s.id as county_subdistrict_id, k.code as county_code
                   from subdistrict s join county k on k.id = s.county_id) county_of
         on county_of.county_subdistrict_id = report.subdistrict_id";

/// A station has no grid (it may stand outside the urban area): the county whose boundary
/// covers it (the lowest code where boundaries overlap). A few hundred stations at ×10.
const COUNTY_OF_STATION: &str = r"left join lateral (select k.code as county_code
                   from area a join county k on k.id = a.county_id
                  where a.kind = 'county' and ST_Covers(a.geom, station.geom)
                  order by k.code limit 1) county_of on true";

pub static GRIDS: Collection = Collection {
    kind: Kind::Grids,
    id: "grids",
    table: "grid",
    joins: COUNTY_OF_GRID,
    title: "Grids (网格)",
    description: "The grids that partition the county seat, about 300 households each.",
    geometry: crate::geo_input::Expected::Polygonal,
    geometry_format: "geometry-multipolygon",
    properties: &[
        p("code", "code", Text, "Grid code", true, true),
        p("name", "name", Text, "Grid name", true, true),
        p("community_id", "community_id", Integer, "Community (社区) id", true, false),
        // Read-only, through the community's subdistrict (migration 0028).
        p("county", COUNTY_COLUMN, Text, "County (县) code, through the community", false, false),
        p("households", "households", Integer, "Resident households (derived from the buildings inside)", false, false),
        p("version", "version", Integer, "Edit version (the ETag)", false, false),
        p("source", "source", Text, "Data source", false, false),
        p("updated_at", "updated_at", Timestamp, "Last edit", false, false),
    ],
    etag_sql: "version::bigint",
};

pub static BUILDINGS: Collection = Collection {
    kind: Kind::Buildings,
    id: "buildings",
    table: "building",
    joins: COUNTY_OF_BUILDING,
    title: "Buildings (楼栋)",
    description: "Building footprints with floors, units and households; leaders' contacts are never published.",
    geometry: crate::geo_input::Expected::Polygonal,
    geometry_format: "geometry-multipolygon",
    properties: &[
        p("grid_id", "grid_id", Integer, "Grid the building belongs to (derived)", false, false),
        p("county", COUNTY_COLUMN, Text, "County (县) code, through the building's grid", false, false),
        p("floors", "floors", Integer, "Floors", true, false),
        p("units", "units", Integer, "Units (单元)", true, false),
        p("households", "households", Integer, "Households", true, false),
        p("use", "use", Text, "Use (residential, commercial, mixed, public, industrial, other)", true, false),
        p("name", "name", Text, "Name", true, false),
        p("external_id", "external_id", Text, "External id", true, false),
        p("source", "source", Text, "Data source", false, false),
        p("updated_at", "updated_at", Timestamp, "Last change", false, false),
    ],
    etag_sql: "(extract(epoch from updated_at) * 1000000)::bigint",
};

pub static STATIONS: Collection = Collection {
    kind: Kind::Stations,
    id: "stations",
    table: "station",
    joins: COUNTY_OF_STATION,
    title: "Warm-\"new\" stations (暖\"新\"驿站)",
    description: "Rest stations for delivery riders, couriers and drivers.",
    geometry: crate::geo_input::Expected::Point,
    geometry_format: "geometry-point",
    properties: &[
        p("name", "name", Text, "Name", true, true),
        p("address", "address", Text, "Address", true, false),
        p("opening_hours", "opening_hours", Text, "Opening hours", true, false),
        p("services", "services", TextArray, "Services offered", true, false),
        p("host_org", "host_org", Text, "Host organisation", true, false),
        p("county", COUNTY_COLUMN, Text, "County (县) code, whose boundary holds the station", false, false),
        p("phone", "phone", Text, "Public phone of the station", true, false),
        p("notice", "notice", Text, "The host's notice on the station card (at most 500 characters)", true, false),
        p("source", "source", Text, "Data source", false, false),
        p("updated_at", "updated_at", Timestamp, "Last change", false, false),
    ],
    etag_sql: "(extract(epoch from updated_at) * 1000000)::bigint",
};

/// Reports from the street, read-only here (they change through their own workflow at
/// `/api/reports/{id}/transitions`). Only what the public report list shows: never the
/// reporter, the idempotency key or the stored response, and not the raw input coordinates.
pub static REPORTS: Collection = Collection {
    kind: Kind::Reports,
    id: "reports",
    table: "report",
    joins: COUNTY_OF_REPORT,
    title: "Reports (事件上报)",
    description: "Street problems reported by riders and residents, assigned to the grid that contains them.",
    geometry: crate::geo_input::Expected::Point,
    geometry_format: "geometry-point",
    properties: &[
        p("category", "category", Text, "Category code (see /api/report-categories)", false, false),
        p("status", "status", Text, "Workflow status", false, false),
        p("description", "description", Text, "What the reporter saw", false, false),
        p("grid_id", "grid_id", Integer, "Grid the report is assigned to", false, false),
        p("county", COUNTY_COLUMN, Text, "County (县) code, through the report's subdistrict", false, false),
        p("assignment", "assignment", Text, "How it was assigned: covers, nearest or unassigned", false, false),
        p("photo_count", "photo_count", Integer, "Photos attached", false, false),
        p("version", "version", Integer, "Workflow version (the ETag)", false, false),
        p("created_at", "created_at", Timestamp, "Reported at", false, false),
        p("due_at", "due_at", Timestamp, "SLA deadline once dispatched", false, false),
        p("closed_at", "closed_at", Timestamp, "Closed at", false, false),
        p("updated_at", "updated_at", Timestamp, "Last change", false, false),
    ],
    etag_sql: "version::bigint",
};

pub static ALL: [&Collection; 4] = [&GRIDS, &BUILDINGS, &STATIONS, &REPORTS];

impl Collection {
    /// What `?datetime=` filters on: when a report was made; when anything else last changed.
    pub fn temporal_column(&self) -> &'static str {
        if self.kind == Kind::Reports { "created_at" } else { "updated_at" }
    }

    /// Whether OGC API Part 4 writes are offered (reports are read-only here).
    pub fn editable(&self) -> bool {
        self.kind != Kind::Reports
    }
}

pub fn find(id: &str) -> Option<&'static Collection> {
    ALL.iter().copied().find(|c| c.id == id)
}

impl Property {
    /// Whether the value comes from the collection's joins rather than its table.
    pub fn is_joined(&self) -> bool {
        self.column == COUNTY_COLUMN
    }
}

impl Collection {
    pub fn property(&self, name: &str) -> Option<&'static Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    pub fn property_names(&self) -> String {
        self.properties.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    }

    /// `/queryables`: a JSON Schema of the filterable properties (Part 3).
    pub fn queryables(&self, self_url: &str) -> serde_json::Value {
        let mut props = serde_json::Map::new();
        props.insert("id".into(), serde_json::json!({"title": "Feature id", "type": "integer"}));
        props.insert("geometry".into(), serde_json::json!({"title": "Geometry", "format": self.geometry_format}));
        for p in self.properties {
            let mut s = p.ty.schema();
            s["title"] = p.title.into();
            props.insert(p.name.into(), s);
        }
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": self_url,
            "type": "object",
            "title": self.title,
            "properties": props,
            "additionalProperties": false,
        })
    }
}
