//! `gridmap import grids|buildings|stations FILE`: features loaded in one transaction, a chunk
//! of [`CHUNK`] features at a time. Property mapping (also in docs/import.md):
//!
//! - grids: `code` (required, e.g. `LS-001`; an existing code is updated), `name` (required),
//!   `community` (optional: an existing community's code or name).
//! - buildings: `floors` (or OSM `building:levels`), `units`, `households` (or OSM
//!   `building:flats`; default 0), `use` (residential|commercial|mixed|public|industrial|other;
//!   OSM `building` values are mapped), `name`, `external_id` (or the OSM id), `leader_name`,
//!   `leader_phone` (private).
//! - stations: `name` (required), `address`, `opening_hours`, `services` (array of known codes),
//!   `host_org`, `phone`, `external_id` (or the OSM id).
//!
//! Buildings and stations with an external id (`--id-property NAME` picks the property) are
//! upserted by it, as grids are by code: a re-import of an unchanged file changes no row.
//!
//! Grids are all or nothing: a grid left out is a hole in the county's partition. Buildings and
//! stations — mostly OpenStreetMap data, drawn and tagged by hand — are imported leniently
//! unless `--strict`: a geometry PostGIS finds invalid is repaired (`ST_MakeValid`, its polygonal
//! parts kept, slivers under [`SLIVER_M2`] dropped), a free-text number (`"3.5"`, `""`) is
//! rounded or left empty with a warning, and a feature that cannot be used is skipped with its
//! reason. The report names each repaired, skipped and warned-about feature by index.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::ops::RangeInclusive;

use geojson::{Feature, Geometry, GeometryValue};
use serde_json::{Map, Value};
use sqlx::{PgPool, Postgres, Transaction};

use crate::config::ImportTarget;
use crate::geo_input::{self, Expected};

/// Features per statement: bounds each statement's parameter arrays, its trigger work and the
/// memory a streamed file needs.
const CHUNK: usize = 5_000;
/// A polygon part smaller than this (m², on the ellipsoid) left by a repair is a sliver — the
/// sliver of a self-intersection, a spike — and is dropped. A valid geometry is never trimmed.
pub const SLIVER_M2: f64 = 1.0;
/// Notes kept per kind for the summary; the rest are counted.
const MAX_NOTES: usize = 10_000;

pub struct ImportOptions {
    pub target: ImportTarget,
    pub allow_outside_county: bool,
    pub source: String,
    /// The property that holds each feature's external id (buildings, stations); `None`:
    /// `external_id`, else the OSM id.
    pub id_property: Option<String>,
    /// All or nothing for buildings and stations too: the first feature that would be
    /// repaired, skipped or read leniently rejects the file (grids always are).
    pub strict: bool,
}

impl ImportOptions {
    /// Defaults of the command line: inside the county, ids from `external_id` or OSM, lenient.
    pub fn new(target: ImportTarget, source: impl Into<String>) -> Self {
        Self { target, allow_outside_county: false, source: source.into(), id_property: None, strict: false }
    }

    fn lenient(&self) -> bool {
        !self.strict && self.target != ImportTarget::Grids
    }
}

/// Features of one kind (repaired, skipped, warned about), by index in the file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    pub count: u64,
    /// The first [`MAX_NOTES`]: (feature index, what happened).
    pub list: Vec<(usize, String)>,
}

impl Notes {
    fn push(&mut self, index: usize, text: String) {
        self.count += 1;
        if self.list.len() < MAX_NOTES {
            self.list.push((index, text));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub target: &'static str,
    pub inserted: u64,
    pub updated: u64,
    /// Features whose row already held exactly these values: not written at all.
    pub unchanged: u64,
    /// Stored after a repair of their geometry.
    pub repaired: Notes,
    /// Not stored, with the reason.
    pub skipped: Notes,
    /// Stored with a value read leniently (a free-text number rounded or left empty).
    pub warnings: Notes,
}

impl ImportReport {
    fn new(target: ImportTarget) -> Self {
        let target = match target {
            ImportTarget::Grids => "grids",
            ImportTarget::Buildings => "buildings",
            ImportTarget::Stations => "stations",
        };
        Self {
            target,
            inserted: 0,
            updated: 0,
            unchanged: 0,
            repaired: Notes::default(),
            skipped: Notes::default(),
            warnings: Notes::default(),
        }
    }

    /// Features stored (new, updated or already stored unchanged).
    pub fn imported(&self) -> u64 {
        self.inserted + self.updated + self.unchanged
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "imported {} {} ({} new, {} updated, {} unchanged); {} repaired, {} skipped, {} warnings",
            self.imported(),
            self.target,
            self.inserted,
            self.updated,
            self.unchanged,
            self.repaired.count,
            self.skipped.count,
            self.warnings.count
        )?;
        for (kind, notes) in [("repaired", &self.repaired), ("skipped", &self.skipped), ("warning", &self.warnings)] {
            for (index, text) in &notes.list {
                write!(f, "\n  feature {index}: {kind}: {text}")?;
            }
            if notes.count > notes.list.len() as u64 {
                write!(f, "\n  … and {} more {kind}", notes.count - notes.list.len() as u64)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not a GeoJSON FeatureCollection: {0}")]
    NotACollection(String),
    #[error("feature {index}: {reason}; nothing was imported")]
    Feature { index: usize, reason: String },
    #[error("none of the features could be imported; nothing was stored. {0}")]
    NothingImported(Box<ImportReport>),
    #[error("{0}")]
    Gdal(String),
    #[error("the database refused the import: {0}")]
    Database(#[from] sqlx::Error),
}

fn bad(index: usize, reason: impl Into<String>) -> ImportError {
    ImportError::Feature { index, reason: reason.into() }
}

/// Parse, check and store a FeatureCollection (see the module header for what is lenient).
pub async fn import_geojson(pool: &PgPool, bytes: &[u8], options: &ImportOptions) -> Result<ImportReport, ImportError> {
    let items = parse_items(bytes)?;
    import_features(pool, Source::Items(items.into_iter()), options).await
}

/// How `gridmap import` reads FILE: a `.geojson`/`.json` FeatureCollection itself; any other
/// file GDAL reads (`.osm.pbf`, GeoPackage, Shapefile, …) streamed through `ogr2ogr -f
/// GeoJSONSeq` (reprojected to EPSG:4326), one feature per line, so a large file never sits in
/// memory. `layer` picks the layer; OSM files default to `multipolygons` with `building` set
/// (buildings) or `points` (stations).
pub async fn import_file(
    pool: &PgPool,
    path: &std::path::Path,
    layer: Option<&str>,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    if ext == "geojson" || ext == "json" {
        let bytes =
            std::fs::read(path).map_err(|e| ImportError::Gdal(format!("cannot read {}: {e}", path.display())))?;
        return import_geojson(pool, &bytes, options).await;
    }
    let osm = ext == "pbf" || ext == "osm";
    let mut command = tokio::process::Command::new("ogr2ogr");
    command.args(["-f", "GeoJSONSeq", "/vsistdout/", "-t_srs", "EPSG:4326"]);
    let (layer, osm_kind) = match (layer, osm, options.target) {
        (Some(l), _, _) => (Some(l), if l == "points" { "node" } else { "relation" }),
        (None, true, ImportTarget::Stations) => (Some("points"), "node"),
        (None, true, ImportTarget::Buildings) => {
            command.args(["-where", "building IS NOT NULL"]);
            (Some("multipolygons"), "relation")
        }
        (None, true, ImportTarget::Grids) => (Some("multipolygons"), "relation"),
        (None, false, _) => (None, "relation"),
    };
    command.arg(path);
    if let Some(layer) = layer {
        command.arg(layer);
    }
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child =
        command.spawn().map_err(|e| ImportError::Gdal(format!("cannot run ogr2ogr (install gdal-bin): {e}")))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // GDAL's warnings go to stderr while it writes: read them alongside so the pipe never fills.
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::BufReader::new(stderr), &mut text).await;
        text
    });
    let lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let source = Source::Gdal { lines, child, errors, osm_kind: osm.then_some(osm_kind) };
    import_features(pool, source, options).await
}

/// Where features come from, one at a time.
#[allow(clippy::large_enum_variant, reason = "one per import, never moved around")]
enum Source {
    /// The `features` of a FeatureCollection read whole.
    Items(std::vec::IntoIter<Value>),
    /// `ogr2ogr -f GeoJSONSeq` output; `osm_kind` is what an `osm_id` numbers (OSM files).
    Gdal {
        lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
        child: tokio::process::Child,
        errors: tokio::task::JoinHandle<String>,
        osm_kind: Option<&'static str>,
    },
}

impl Source {
    /// The next feature as JSON, or why it could not be read.
    async fn next(&mut self) -> Result<Option<Result<Value, String>>, ImportError> {
        match self {
            Self::Items(items) => Ok(items.next().map(Ok)),
            Self::Gdal { lines, osm_kind, .. } => loop {
                let line =
                    lines.next_line().await.map_err(|e| ImportError::Gdal(format!("reading ogr2ogr's output: {e}")))?;
                let Some(line) = line else { return Ok(None) };
                let line = line.trim_start_matches('\u{1e}').trim();
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(
                    serde_json::from_str::<Value>(line)
                        .map(|v| match *osm_kind {
                            Some(kind) => osm_feature(v, kind),
                            None => v,
                        })
                        .map_err(|e| format!("ogr2ogr wrote a line that is not JSON: {e}")),
                ));
            },
        }
    }

    /// After the last feature: GDAL must have succeeded, or nothing is stored.
    async fn finish(self) -> Result<(), ImportError> {
        if let Self::Gdal { mut child, errors, .. } = self {
            let status = child.wait().await.map_err(|e| ImportError::Gdal(format!("waiting for ogr2ogr: {e}")))?;
            let text = errors.await.unwrap_or_default();
            if !status.success() {
                return Err(ImportError::Gdal(format!("ogr2ogr failed ({status}): {}", text.trim())));
            }
        }
        Ok(())
    }
}

/// GDAL's OSM driver puts the tags it has no column for into `other_tags`
/// (`"building:levels"=>"3","addr:street"=>"Kauppatori"`): they become properties (a column
/// wins), and an `osm_id` gets its type (`relation` in `multipolygons`, `node` in `points`).
fn osm_feature(mut feature: Value, osm_kind: &str) -> Value {
    let Some(properties) = feature.get_mut("properties").and_then(Value::as_object_mut) else { return feature };
    if let Some(Value::String(tags)) = properties.remove("other_tags") {
        for (key, value) in hstore_pairs(&tags) {
            properties.entry(key).or_insert(Value::String(value));
        }
    }
    let has_way = properties.get("osm_way_id").is_some_and(|v| !v.is_null());
    if !has_way && properties.get("osm_id").is_some_and(|v| !v.is_null()) {
        properties.entry("osm_type").or_insert(Value::String(osm_kind.to_string()));
    }
    feature
}

/// `"k"=>"v","k2"=>"v2"` with `\"` and `\\` escapes, as GDAL writes `other_tags`.
fn hstore_pairs(text: &str) -> Vec<(String, String)> {
    let mut strings = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.extend(chars.next()),
                '"' => break,
                c => s.push(c),
            }
        }
        strings.push(s);
    }
    strings.chunks_exact(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect()
}

async fn import_features(
    pool: &PgPool,
    mut source: Source,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut importer = Importer {
        options,
        counties: geo_input::county_boxes(pool).await?,
        report: ImportReport::new(options.target),
        seen: HashMap::new(),
        pending: Vec::new(),
    };
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('gridmap.actor', 'import', true), set_config('gridmap.reason', $1, true)")
        .bind(format!("gridmap import ({})", options.source))
        .execute(&mut *tx)
        .await?;
    let mut index = 0;
    while let Some(item) = source.next().await? {
        importer.accept(index, item)?;
        index += 1;
        if importer.pending.len() >= CHUNK {
            importer.flush(&mut tx).await?;
        }
    }
    importer.flush(&mut tx).await?;
    source.finish().await?;
    let mut report = importer.report;
    // Skips found in PostGIS come after those found here within a chunk: report in file order.
    for notes in [&mut report.repaired, &mut report.skipped, &mut report.warnings] {
        notes.list.sort_by_key(|(index, _)| *index);
    }
    if report.imported() == 0 {
        return Err(ImportError::NothingImported(Box::new(report)));
    }
    tx.commit().await?;
    Ok(report)
}

/// The `features` array of a FeatureCollection, each item still JSON (so that one bad feature
/// is named by its index, and skipped or refused on its own).
fn parse_items(bytes: &[u8]) -> Result<Vec<Value>, ImportError> {
    let root: Value =
        serde_json::from_slice(bytes).map_err(|e| ImportError::NotACollection(format!("invalid JSON: {e}")))?;
    if root.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(ImportError::NotACollection("top-level `type` must be \"FeatureCollection\"".into()));
    }
    let Value::Object(mut root) = root else { unreachable!("an object has a `type`") };
    let Some(Value::Array(items)) = root.remove("features") else {
        return Err(ImportError::NotACollection("`features` must be an array".into()));
    };
    if items.is_empty() {
        return Err(ImportError::NotACollection("`features` is empty".into()));
    }
    Ok(items)
}

/// Each feature is parsed on its own so that an error can name its index.
pub(crate) fn parse_collection(bytes: &[u8]) -> Result<Vec<Feature>, ImportError> {
    parse_items(bytes)?
        .into_iter()
        .enumerate()
        .map(|(index, item)| parse_feature(item).map_err(|reason| bad(index, reason)))
        .collect()
}

fn parse_feature(item: Value) -> Result<Feature, String> {
    if item.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err("`type` must be \"Feature\"".into());
    }
    serde_json::from_value::<Feature>(item).map_err(|e| format!("not a valid GeoJSON feature: {e}"))
}

/// A feature that passed the checks made without the database, waiting for its chunk.
struct Pending {
    index: usize,
    /// GeoJSON of the geometry to store (replaced by the repaired one after the chunk's check).
    geometry: String,
    /// Set when the geometry was already changed here (the polygons of a `GeometryCollection`).
    repaired: Option<String>,
    warnings: Vec<String>,
    row: Row,
}

enum Row {
    Grid { code: String, name: String, community: Option<String> },
    Building(BuildingRow),
    Station(StationRow),
}

struct BuildingRow {
    floors: Option<i32>,
    units: Option<i32>,
    households: i32,
    use_: String,
    name: Option<String>,
    external_id: Option<String>,
    leader_name: Option<String>,
    leader_phone: Option<String>,
}

struct StationRow {
    name: String,
    address: String,
    opening_hours: String,
    /// JSON text: Postgres arrays of arrays must be rectangular.
    services: String,
    host_org: String,
    phone: String,
    external_id: Option<String>,
}

struct Importer<'o> {
    options: &'o ImportOptions,
    counties: Vec<[f64; 4]>,
    report: ImportReport,
    /// Grid codes or external ids met so far → the feature that had it first.
    seen: HashMap<String, usize>,
    pending: Vec<Pending>,
}

impl Importer<'_> {
    /// A feature that cannot be stored: skipped with its reason, or (strict) the end.
    fn refuse(&mut self, index: usize, reason: String) -> Result<(), ImportError> {
        if self.options.lenient() {
            self.report.skipped.push(index, reason);
            Ok(())
        } else {
            Err(bad(index, reason))
        }
    }

    fn accept(&mut self, index: usize, item: Result<Value, String>) -> Result<(), ImportError> {
        match self.prepare(index, item) {
            Ok(pending) => {
                self.pending.push(pending);
                Ok(())
            }
            Err(reason) => self.refuse(index, reason),
        }
    }

    /// Everything that can be checked without the database.
    fn prepare(&mut self, index: usize, item: Result<Value, String>) -> Result<Pending, String> {
        let feature = parse_feature(item?)?;
        let (geometry, repaired) = self.geometry(feature.geometry)?;
        let p = feature.properties.unwrap_or_default();
        let mut props = Props { p: &p, lenient: self.options.lenient(), warnings: Vec::new() };
        let (row, key) = match self.options.target {
            ImportTarget::Grids => {
                let code = props.required_text("code")?;
                if !grid_code_ok(&code) {
                    return Err(format!("property `code` {code:?} must be 2–32 of A–Z, 0–9 and -"));
                }
                let row = Row::Grid {
                    code: code.clone(),
                    name: props.required_text("name")?,
                    community: props.text(&["community"])?,
                };
                (row, Some(code))
            }
            ImportTarget::Buildings => {
                let row = building_row(&mut props, self.options.id_property.as_deref())?;
                let key = row.external_id.clone();
                (Row::Building(row), key)
            }
            ImportTarget::Stations => {
                let row = station_row(&mut props, self.options.id_property.as_deref())?;
                let key = row.external_id.clone();
                (Row::Station(row), key)
            }
        };
        if let Some(key) = key {
            // The upsert would touch one row twice, and the file is ambiguous about which wins.
            if let Some(first) = self.seen.get(&key) {
                return Err(match self.options.target {
                    ImportTarget::Grids => {
                        format!("grid code {key} appears twice in the file (first at feature {first})")
                    }
                    _ => format!("external id {key:?} appears twice in the file (first at feature {first})"),
                });
            }
            self.seen.insert(key, index);
        }
        Ok(Pending { index, geometry, repaired, warnings: props.warnings, row })
    }

    /// The geometry checks made here (type, coordinates, rings, size, county); the polygons of a
    /// `GeometryCollection` (what `ogr2ogr -makevalid` can leave) are kept when lenient.
    fn geometry(&self, geometry: Option<Geometry>) -> Result<(String, Option<String>), String> {
        let expected = match self.options.target {
            ImportTarget::Stations => Expected::Point,
            ImportTarget::Grids | ImportTarget::Buildings => Expected::Polygonal,
        };
        let (geometry, repaired) = match geometry {
            Some(g) if self.options.lenient() && expected == Expected::Polygonal => {
                let (g, note) = polygonal_parts(g)?;
                (Some(g), note)
            }
            other => (other, None),
        };
        let bbox = geo_input::check(geometry.as_ref(), expected).map_err(|e| e.to_string())?;
        if !self.options.allow_outside_county && !geo_input::inside_any_county(bbox, &self.counties) {
            return Err(format!(
                "{} (use --allow-outside-county for data from elsewhere)",
                geo_input::GeometryError::OutsideCounty(bbox)
            ));
        }
        Ok((serde_json::to_string(&geometry).expect("a parsed geometry serialises"), repaired))
    }

    /// Checks the chunk's geometries in PostGIS (repairing when lenient) and stores the chunk.
    async fn flush(&mut self, tx: &mut Transaction<'_, Postgres>) -> Result<(), ImportError> {
        let mut pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        if self.options.target != ImportTarget::Stations {
            pending = self.repair(tx, pending).await?;
        }
        for p in &mut pending {
            if let Some(note) = p.repaired.take() {
                self.report.repaired.push(p.index, note);
            }
            for warning in std::mem::take(&mut p.warnings) {
                self.report.warnings.push(p.index, warning);
            }
        }
        let written = match self.options.target {
            ImportTarget::Grids => upsert_grids(tx, &pending, &self.options.source).await?,
            ImportTarget::Buildings => upsert_buildings(tx, &pending, &self.options.source).await?,
            ImportTarget::Stations => upsert_stations(tx, &pending, &self.options.source).await?,
        };
        let inserted = written.iter().filter(|&&new| new).count() as u64;
        self.report.inserted += inserted;
        self.report.updated += written.len() as u64 - inserted;
        self.report.unchanged += (pending.len() - written.len()) as u64;
        Ok(())
    }

    /// PostGIS decides validity (self-intersections, ring orientation problems, spikes). Strict:
    /// the first invalid geometry rejects the file. Lenient: `ST_MakeValid`, then the polygonal
    /// parts of at least [`SLIVER_M2`] are kept; nothing left → skipped.
    async fn repair(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        pending: Vec<Pending>,
    ) -> Result<Vec<Pending>, ImportError> {
        let geometries: Vec<&str> = pending.iter().map(|p| p.geometry.as_str()).collect();
        let checked: Vec<Checked> = sqlx::query_as(
            r"select (t.idx - 1)::bigint, v.reason, r.parts, r.slivers, ST_AsGeoJSON(r.fixed, 15)
                from unnest($1::text[]) with ordinality as t(gj, idx)
                cross join lateral (select ST_GeomFromGeoJSON(t.gj) as geom) g
                cross join lateral (select case when ST_IsEmpty(g.geom) then 'empty'
                                                when not ST_IsValid(g.geom) then ST_IsValidReason(g.geom) end as reason) v
                left join lateral (
                     select count(*) as parts,
                            count(*) filter (where ST_Area(d.geom::geography) < $2) as slivers,
                            ST_Multi(ST_Collect(d.geom) filter (where ST_Area(d.geom::geography) >= $2)) as fixed
                       from ST_Dump(ST_CollectionExtract(ST_MakeValid(g.geom), 3)) d
                ) r on $3 and v.reason is not null
               where v.reason is not null
               order by t.idx",
        )
        .bind(&geometries)
        .bind(SLIVER_M2)
        .bind(self.options.lenient())
        .fetch_all(&mut **tx)
        .await?;
        let mut fixes: HashMap<usize, (String, Option<String>, i64, i64)> = HashMap::new();
        for (position, reason, parts, slivers, fixed) in checked {
            let position = position as usize;
            let index = pending[position].index;
            let reason = reason.unwrap_or_default();
            if !self.options.lenient() {
                return Err(bad(index, format!("invalid geometry: {reason}")));
            }
            fixes.insert(position, (reason, fixed, parts.unwrap_or(0), slivers.unwrap_or(0)));
        }
        let mut kept = Vec::with_capacity(pending.len());
        for (position, mut p) in pending.into_iter().enumerate() {
            let Some((reason, fixed, parts, slivers)) = fixes.remove(&position) else {
                kept.push(p);
                continue;
            };
            let Some(fixed) = fixed else {
                self.report.skipped.push(
                    p.index,
                    format!(
                        "invalid geometry ({reason}) with no polygon of at least {SLIVER_M2} m² after ST_MakeValid"
                    ),
                );
                continue;
            };
            let mut note = format!("invalid geometry ({reason}) made valid: {} polygon(s) kept", parts - slivers);
            if slivers > 0 {
                let _ = write!(note, ", {slivers} sliver(s) under {SLIVER_M2} m² dropped");
            }
            if let Some(earlier) = p.repaired.take() {
                note = format!("{earlier}; {note}");
            }
            p.geometry = fixed;
            p.repaired = Some(note);
            kept.push(p);
        }
        Ok(kept)
    }
}

/// Position in the chunk, invalidity reason, parts after `ST_MakeValid`, slivers among them,
/// the repaired geometry (GeoJSON).
type Checked = (i64, Option<String>, Option<i64>, Option<i64>, Option<String>);

/// A `GeometryCollection` becomes the `MultiPolygon` of its polygons (nested collections too); a
/// collection with none is refused with what it held. Other geometries pass unchanged.
fn polygonal_parts(geometry: Geometry) -> Result<(Geometry, Option<String>), String> {
    fn collect(value: GeometryValue, polygons: &mut Vec<geojson::PolygonType>, dropped: &mut Vec<&'static str>) {
        match value {
            GeometryValue::Polygon { coordinates } => polygons.push(coordinates),
            GeometryValue::MultiPolygon { coordinates } => polygons.extend(coordinates),
            GeometryValue::GeometryCollection { geometries } => {
                for g in geometries {
                    collect(g.value, polygons, dropped);
                }
            }
            other => dropped.push(other.type_name()),
        }
    }
    if !matches!(geometry.value, GeometryValue::GeometryCollection { .. }) {
        return Ok((geometry, None));
    }
    let (mut polygons, mut dropped) = (Vec::new(), Vec::new());
    collect(geometry.value, &mut polygons, &mut dropped);
    dropped.sort_unstable();
    dropped.dedup();
    if polygons.is_empty() {
        return Err(format!("a GeometryCollection without a polygon (it holds {})", dropped.join(", ")));
    }
    let mut note = format!("kept the {} polygon(s) of a GeometryCollection", polygons.len());
    if !dropped.is_empty() {
        let _ = write!(note, ", dropped its {}", dropped.join(", "));
    }
    Ok((Geometry::new(GeometryValue::MultiPolygon { coordinates: polygons }), Some(note)))
}

fn grid_code_ok(code: &str) -> bool {
    (2..=32).contains(&code.len())
        && code.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '-')
        && !code.starts_with('-')
}

/// A feature's properties as read, with the warnings of lenient reading.
struct Props<'a> {
    p: &'a Map<String, Value>,
    lenient: bool,
    warnings: Vec<String>,
}

impl Props<'_> {
    /// A text property; numbers are accepted and rendered (OSM ids, numeric codes).
    fn text(&self, keys: &[&str]) -> Result<Option<String>, String> {
        for key in keys {
            match self.p.get(*key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.trim().is_empty() => {}
                Some(Value::String(s)) => {
                    if s.chars().count() > 500 {
                        return Err(format!("property `{key}` is longer than 500 characters"));
                    }
                    return Ok(Some(s.trim().to_string()));
                }
                Some(Value::Number(n)) => return Ok(Some(n.to_string())),
                Some(_) => return Err(format!("property `{key}` must be a string")),
            }
        }
        Ok(None)
    }

    fn required_text(&self, key: &str) -> Result<String, String> {
        self.text(&[key])?.ok_or_else(|| format!("required property `{key}` is missing"))
    }

    /// An integer property within a range; OSM stores numbers as strings (`"3"`). Strict: any
    /// other value is an error. Lenient (OSM values are free text): a decimal (`"3.5"`, `"3,5"`)
    /// is rounded and anything else (`""`, `"3-4"`, out of range) left empty, with a warning.
    fn int(&mut self, keys: &[&str], range: RangeInclusive<i64>) -> Result<Option<i32>, String> {
        for key in keys {
            let raw = match self.p.get(*key) {
                None | Some(Value::Null) => continue,
                Some(raw) => raw,
            };
            let exact = match raw {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            if let Some(v) = exact.filter(|v| range.contains(v)) {
                return Ok(Some(v as i32));
            }
            let wanted = format!("an integer in {}..={}", range.start(), range.end());
            if !self.lenient {
                return Err(format!("property `{key}` must be {wanted}"));
            }
            let approx = match raw {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().replace(',', ".").parse::<f64>().ok(),
                _ => None,
            }
            .filter(|f| f.is_finite())
            .map(f64::round);
            return Ok(match approx {
                Some(r) if range.contains(&(r as i64)) => {
                    self.warnings.push(format!("`{key}` {raw} read as {r}"));
                    Some(r as i32)
                }
                _ => {
                    self.warnings.push(format!("`{key}` {raw} is not {wanted}: left empty"));
                    None
                }
            });
        }
        Ok(None)
    }
}

/// A feature's external id: the `--id-property` if given, else `external_id` (or `@id`, as
/// osmtogeojson writes it), else the OSM id as `type/number` (OSM numbers ways, relations and
/// nodes separately: `way/114` and `relation/114` are different objects). `osm_way_id` is what
/// GDAL's OSM driver writes for a closed way in its `multipolygons` layer.
fn external_id(props: &Props<'_>, id_property: Option<&str>) -> Result<Option<String>, String> {
    if let Some(name) = id_property {
        return props.text(&[name]);
    }
    if let Some(id) = props.text(&["external_id", "@id"])? {
        return Ok(Some(id));
    }
    if let Some(way) = props.text(&["osm_way_id"])? {
        return Ok(Some(format!("way/{way}")));
    }
    let Some(id) = props.text(&["osm_id"])? else { return Ok(None) };
    Ok(Some(match props.text(&["osm_type"])? {
        Some(kind) => format!("{kind}/{id}"),
        None => id,
    }))
}

/// OSM `building=*` values → our `use` classes.
fn building_use(value: Option<&str>) -> &'static str {
    match value.unwrap_or("yes") {
        "residential" | "apartments" | "house" | "detached" | "semidetached_house" | "terrace" | "dormitory"
        | "bungalow" | "farm" => "residential",
        "commercial" | "retail" | "office" | "supermarket" | "hotel" | "kiosk" => "commercial",
        "mixed" => "mixed",
        "public" | "school" | "kindergarten" | "hospital" | "church" | "civic" | "government" | "university"
        | "college" | "train_station" | "chapel" => "public",
        "industrial" | "warehouse" | "factory" | "manufacture" => "industrial",
        _ => "other",
    }
}

const BUILDING_USES: [&str; 6] = ["residential", "commercial", "mixed", "public", "industrial", "other"];

fn building_row(props: &mut Props<'_>, id_property: Option<&str>) -> Result<BuildingRow, String> {
    let use_ = match props.text(&["use"])? {
        Some(u) if BUILDING_USES.contains(&u.as_str()) => u,
        Some(u) => return Err(format!("property `use` {u:?} must be one of {}", BUILDING_USES.join(", "))),
        None => building_use(props.text(&["building"])?.as_deref()).to_string(),
    };
    Ok(BuildingRow {
        floors: props.int(&["floors", "building:levels"], 0..=200)?,
        units: props.int(&["units"], 0..=100)?,
        households: props.int(&["households", "building:flats"], 0..=10_000)?.unwrap_or(0),
        use_,
        name: props.text(&["name"])?,
        external_id: external_id(props, id_property)?,
        leader_name: props.text(&["leader_name"])?,
        leader_phone: props.text(&["leader_phone"])?,
    })
}

/// Service codes a station may offer (the `station_services_known` constraint).
pub const STATION_SERVICES: [&str; 12] = [
    "rest",
    "water",
    "charging",
    "microwave",
    "toilet",
    "first_aid",
    "policy_advice",
    "repair",
    "umbrella",
    "wifi",
    "reading",
    "legal_aid",
];

fn station_row(props: &mut Props<'_>, id_property: Option<&str>) -> Result<StationRow, String> {
    let services = match props.p.get("services") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v.as_str() {
                Some(s) if STATION_SERVICES.contains(&s) => Ok(s.to_string()),
                _ => Err(format!("property `services` may hold only {}", STATION_SERVICES.join(", "))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("property `services` must be an array of strings".into()),
    };
    Ok(StationRow {
        name: props.required_text("name")?,
        address: props.text(&["address"])?.unwrap_or_default(),
        opening_hours: props.text(&["opening_hours"])?.unwrap_or_default(),
        services: serde_json::to_string(&services).expect("strings serialise"),
        host_org: props.text(&["host_org"])?.unwrap_or_default(),
        phone: props.text(&["phone"])?.unwrap_or_default(),
        external_id: external_id(props, id_property)?,
    })
}

async fn upsert_grids(
    tx: &mut Transaction<'_, Postgres>,
    pending: &[Pending],
    source: &str,
) -> Result<Vec<bool>, ImportError> {
    let (mut indices, mut geometries, mut codes, mut names, mut communities) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in pending {
        if let Row::Grid { code, name, community } = &p.row {
            indices.push(p.index);
            geometries.push(p.geometry.as_str());
            codes.push(code.as_str());
            names.push(name.as_str());
            communities.push(community.as_deref());
        }
    }
    let unknown: Option<(i64, String)> = sqlx::query_as(
        r"select (t.idx - 1)::bigint, t.c from unnest($1::text[]) with ordinality as t(c, idx)
           where t.c is not null and not exists (select 1 from community where code = t.c or name = t.c)
           order by t.idx limit 1",
    )
    .bind(&communities)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((position, community)) = unknown {
        return Err(bad(indices[position as usize], format!("unknown community {community:?}")));
    }
    Ok(sqlx::query_scalar(
        r"insert into grid (code, name, community_id, geom, source)
          select t.code, t.name,
                 (select c.id from community c where c.code = t.community or c.name = t.community order by c.id limit 1),
                 ST_Multi(ST_GeomFromGeoJSON(t.gj)), $5
            from unnest($1::text[], $2::text[], $3::text[], $4::text[]) as t(code, name, community, gj)
          on conflict on constraint grid_code_key do update
             set name = excluded.name, community_id = excluded.community_id, geom = excluded.geom
          returning (xmax = 0)",
    )
    .bind(&codes)
    .bind(&names)
    .bind(&communities)
    .bind(&geometries)
    .bind(source)
    .fetch_all(&mut **tx)
    .await?)
}

async fn upsert_buildings(
    tx: &mut Transaction<'_, Postgres>,
    pending: &[Pending],
    source: &str,
) -> Result<Vec<bool>, ImportError> {
    let rows: Vec<(&str, &BuildingRow)> = pending
        .iter()
        .filter_map(|p| match &p.row {
            Row::Building(b) => Some((p.geometry.as_str(), b)),
            _ => None,
        })
        .collect();
    let column = |f: fn(&BuildingRow) -> Option<&str>| rows.iter().map(|(_, b)| f(b)).collect::<Vec<_>>();
    // An unchanged row is not written at all (the `where` of the update), so a re-import moves
    // no `updated_at`, evicts no tile and recounts no household. The geometry is compared after
    // `building_before_write` repaired it, as `excluded` holds it then.
    Ok(sqlx::query_scalar(
        r"insert into building (geom, floors, units, households, use, name, external_id, leader_name, leader_phone, source)
          select ST_Multi(ST_GeomFromGeoJSON(t.gj)), t.floors, t.units, t.households, t.use, t.name, t.ext, t.ln, t.lp, $10
            from unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
                 as t(gj, floors, units, households, use, name, ext, ln, lp)
          on conflict (external_id) where external_id is not null do update
             set geom = excluded.geom, floors = excluded.floors, units = excluded.units,
                 households = excluded.households, use = excluded.use, name = excluded.name,
                 leader_name = excluded.leader_name, leader_phone = excluded.leader_phone, source = excluded.source
           where not ST_OrderingEquals(building.geom, excluded.geom)
              or (building.floors, building.units, building.households, building.use, building.name,
                  building.leader_name, building.leader_phone, building.source)
                 is distinct from
                 (excluded.floors, excluded.units, excluded.households, excluded.use, excluded.name,
                  excluded.leader_name, excluded.leader_phone, excluded.source)
          returning (xmax = 0)",
    )
    .bind(rows.iter().map(|(g, _)| *g).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, b)| b.floors).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, b)| b.units).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, b)| b.households).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, b)| b.use_.as_str()).collect::<Vec<_>>())
    .bind(column(|b| b.name.as_deref()))
    .bind(column(|b| b.external_id.as_deref()))
    .bind(column(|b| b.leader_name.as_deref()))
    .bind(column(|b| b.leader_phone.as_deref()))
    .bind(source)
    .fetch_all(&mut **tx)
    .await?)
}

async fn upsert_stations(
    tx: &mut Transaction<'_, Postgres>,
    pending: &[Pending],
    source: &str,
) -> Result<Vec<bool>, ImportError> {
    let rows: Vec<(&str, &StationRow)> = pending
        .iter()
        .filter_map(|p| match &p.row {
            Row::Station(s) => Some((p.geometry.as_str(), s)),
            _ => None,
        })
        .collect();
    let column = |f: fn(&StationRow) -> &str| rows.iter().map(|(_, s)| f(s)).collect::<Vec<_>>();
    Ok(sqlx::query_scalar(
        r"insert into station (name, address, opening_hours, services, host_org, phone, geom, source, external_id)
          select t.name, t.address, t.hours, array(select jsonb_array_elements_text(t.services::jsonb)), t.host, t.phone,
                 ST_GeomFromGeoJSON(t.gj), $8, t.ext
            from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $9::text[])
                 as t(name, address, hours, services, host, phone, gj, ext)
          on conflict (external_id) where external_id is not null do update
             set name = excluded.name, address = excluded.address, opening_hours = excluded.opening_hours,
                 services = excluded.services, host_org = excluded.host_org, phone = excluded.phone,
                 geom = excluded.geom, source = excluded.source
           where not ST_OrderingEquals(station.geom, excluded.geom)
              or (station.name, station.address, station.opening_hours, station.services, station.host_org,
                  station.phone, station.source)
                 is distinct from
                 (excluded.name, excluded.address, excluded.opening_hours, excluded.services, excluded.host_org,
                  excluded.phone, excluded.source)
          returning (xmax = 0)",
    )
    .bind(column(|s| s.name.as_str()))
    .bind(column(|s| s.address.as_str()))
    .bind(column(|s| s.opening_hours.as_str()))
    .bind(column(|s| s.services.as_str()))
    .bind(column(|s| s.host_org.as_str()))
    .bind(column(|s| s.phone.as_str()))
    .bind(rows.iter().map(|(g, _)| *g).collect::<Vec<_>>())
    .bind(source)
    .bind(rows.iter().map(|(_, s)| s.external_id.as_deref()).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_feature_is_named_by_index() {
        let json = br#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}},
            {"type":"Nope"}]}"#;
        match parse_collection(json) {
            Err(ImportError::Feature { index: 1, .. }) => {}
            other => panic!("expected feature 1 to be refused, got {other:?}"),
        }
    }

    #[test]
    fn osm_building_values_map_to_uses() {
        assert_eq!(building_use(Some("apartments")), "residential");
        assert_eq!(building_use(Some("retail")), "commercial");
        assert_eq!(building_use(Some("yes")), "other");
        assert_eq!(building_use(None), "other");
    }

    #[test]
    fn free_text_numbers_are_rounded_or_left_empty_with_a_warning_and_refused_when_strict() {
        let p: Map<String, Value> = serde_json::from_str(
            r#"{"a": "3.5", "b": "", "c": "2-3", "d": 4, "e": "7", "f": "3,4", "g": 500, "h": 2.4}"#,
        )
        .expect("json");
        let mut lenient = Props { p: &p, lenient: true, warnings: Vec::new() };
        let read: Vec<Option<i32>> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|k| lenient.int(&[k], 0..=200).expect("lenient"))
            .collect();
        assert_eq!(read, [Some(4), None, None, Some(4), Some(7), Some(3), None, Some(2)]);
        assert_eq!(lenient.warnings.len(), 6, "{:?}", lenient.warnings);
        assert!(lenient.warnings[0].contains(r#"`a` "3.5" read as 4"#), "{:?}", lenient.warnings);
        let mut strict = Props { p: &p, lenient: false, warnings: Vec::new() };
        assert_eq!(strict.int(&["e"], 0..=200), Ok(Some(7)));
        for key in ["a", "b", "c", "f", "g", "h"] {
            assert!(strict.int(&[key], 0..=200).is_err(), "{key} is refused when strict");
        }
    }

    #[test]
    fn a_geometry_collection_keeps_its_polygons() {
        let g: Geometry = serde_json::from_str(
            r#"{"type": "GeometryCollection", "geometries": [
                {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]]]},
                {"type": "LineString", "coordinates": [[0,0],[2,2]]}]}"#,
        )
        .expect("json");
        let (kept, note) = polygonal_parts(g).expect("a polygon");
        assert!(matches!(kept.value, GeometryValue::MultiPolygon { ref coordinates } if coordinates.len() == 1));
        assert!(note.expect("noted").contains("dropped its LineString"));
        let lines: Geometry = serde_json::from_str(
            r#"{"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [0,0]}]}"#,
        )
        .expect("json");
        assert!(polygonal_parts(lines).expect_err("nothing polygonal").contains("Point"));
    }
}
