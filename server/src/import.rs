//! `gridmap import grids|buildings|stations FILE.geojson`: a GeoJSON FeatureCollection loaded in
//! one transaction. Any bad feature rejects the whole file with its index and the reason, and
//! nothing is stored. Property mapping (also in docs/import.md):
//!
//! - grids: `code` (required, e.g. `LS-001`; an existing code is updated), `name` (required),
//!   `community` (optional: an existing community's code or name).
//! - buildings: `floors` (or OSM `building:levels`), `units`, `households` (default 0), `use`
//!   (residential|commercial|mixed|public|industrial|other; OSM `building` values are mapped),
//!   `name`, `external_id` (or the OSM id), `leader_name`, `leader_phone` (private).
//! - stations: `name` (required), `address`, `opening_hours`, `services` (array of known codes),
//!   `host_org`, `phone`, `external_id` (or the OSM id).
//!
//! Buildings and stations with an external id (`--id-property NAME` picks the property) are
//! upserted by it, as grids are by code: a re-import of an unchanged file changes no row.

use std::collections::HashSet;
use std::fmt;

use geojson::Feature;
use serde_json::{Map, Value};
use sqlx::{PgPool, Postgres, Transaction};

use crate::config::ImportTarget;
use crate::geo_input::{self, Expected};

pub struct ImportOptions {
    pub target: ImportTarget,
    pub allow_outside_county: bool,
    pub source: String,
    /// The property that holds each feature's external id (buildings, stations); `None`:
    /// `external_id`, else the OSM id.
    pub id_property: Option<String>,
}

impl ImportOptions {
    /// Defaults of the command line: inside the county, ids from `external_id` or OSM.
    pub fn new(target: ImportTarget, source: impl Into<String>) -> Self {
        Self { target, allow_outside_county: false, source: source.into(), id_property: None }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct ImportReport {
    pub target: &'static str,
    pub inserted: u64,
    pub updated: u64,
    /// Features whose row already held exactly these values: not written at all.
    pub unchanged: u64,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "imported {} {} ({} new, {} updated, {} unchanged)",
            self.inserted + self.updated + self.unchanged,
            self.target,
            self.inserted,
            self.updated,
            self.unchanged
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not a GeoJSON FeatureCollection: {0}")]
    NotACollection(String),
    #[error("feature {index}: {reason}; nothing was imported")]
    Feature { index: usize, reason: String },
    #[error("the database refused the import: {0}")]
    Database(#[from] sqlx::Error),
}

fn bad(index: usize, reason: impl Into<String>) -> ImportError {
    ImportError::Feature { index, reason: reason.into() }
}

/// Parse, check and store a FeatureCollection; all or nothing.
pub async fn import_geojson(pool: &PgPool, bytes: &[u8], options: &ImportOptions) -> Result<ImportReport, ImportError> {
    let features = parse_collection(bytes)?;
    let expected = match options.target {
        ImportTarget::Stations => Expected::Point,
        ImportTarget::Grids | ImportTarget::Buildings => Expected::Polygonal,
    };
    let counties = geo_input::county_boxes(pool).await?;
    let mut geometries = Vec::with_capacity(features.len());
    for (index, feature) in features.iter().enumerate() {
        let bbox = geo_input::check(feature.geometry.as_ref(), expected).map_err(|e| bad(index, e.to_string()))?;
        if !options.allow_outside_county && !geo_input::inside_any_county(bbox, &counties) {
            return Err(bad(
                index,
                format!(
                    "{} (use --allow-outside-county for data from elsewhere)",
                    geo_input::GeometryError::OutsideCounty(bbox)
                ),
            ));
        }
        geometries.push(serde_json::to_string(&feature.geometry).expect("a parsed geometry serialises"));
    }
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('gridmap.actor', 'import', true), set_config('gridmap.reason', $1, true)")
        .bind(format!("gridmap import ({})", options.source))
        .execute(&mut *tx)
        .await?;
    check_validity(&mut tx, &geometries).await?;
    let report = match options.target {
        ImportTarget::Grids => import_grids(&mut tx, &features, &geometries, &options.source).await?,
        ImportTarget::Buildings => import_buildings(&mut tx, &features, &geometries, options).await?,
        ImportTarget::Stations => import_stations(&mut tx, &features, &geometries, options).await?,
    };
    tx.commit().await?;
    Ok(report)
}

/// Each feature is parsed on its own so that an error can name its index.
pub(crate) fn parse_collection(bytes: &[u8]) -> Result<Vec<Feature>, ImportError> {
    let root: Value =
        serde_json::from_slice(bytes).map_err(|e| ImportError::NotACollection(format!("invalid JSON: {e}")))?;
    if root.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(ImportError::NotACollection("top-level `type` must be \"FeatureCollection\"".into()));
    }
    let Some(Value::Array(items)) = root.get("features") else {
        return Err(ImportError::NotACollection("`features` must be an array".into()));
    };
    if items.is_empty() {
        return Err(ImportError::NotACollection("`features` is empty".into()));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            if item.get("type").and_then(Value::as_str) != Some("Feature") {
                return Err(bad(index, "`type` must be \"Feature\""));
            }
            serde_json::from_value::<Feature>(item.clone())
                .map_err(|e| bad(index, format!("not a valid GeoJSON feature: {e}")))
        })
        .collect()
}

/// PostGIS decides validity (self-intersections, ring orientation problems, spikes).
async fn check_validity(tx: &mut Transaction<'_, Postgres>, geometries: &[String]) -> Result<(), ImportError> {
    let invalid: Option<(i64, String)> = sqlx::query_as(
        r"select (t.idx - 1)::bigint, ST_IsValidReason(g.geom)
            from unnest($1::text[]) with ordinality as t(gj, idx)
            cross join lateral (select ST_GeomFromGeoJSON(t.gj) as geom) g
           where ST_IsEmpty(g.geom) or not ST_IsValid(g.geom)
           order by t.idx limit 1",
    )
    .bind(geometries)
    .fetch_optional(&mut **tx)
    .await?;
    match invalid {
        Some((index, reason)) => Err(bad(index as usize, format!("invalid geometry: {reason}"))),
        None => Ok(()),
    }
}

fn props(feature: &Feature) -> Map<String, Value> {
    feature.properties.clone().unwrap_or_default()
}

/// A text property; numbers are accepted and rendered (OSM ids, numeric codes).
fn text(p: &Map<String, Value>, index: usize, keys: &[&str]) -> Result<Option<String>, ImportError> {
    for key in keys {
        match p.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(Value::String(s)) => {
                if s.chars().count() > 500 {
                    return Err(bad(index, format!("property `{key}` is longer than 500 characters")));
                }
                return Ok(Some(s.trim().to_string()));
            }
            Some(Value::Number(n)) => return Ok(Some(n.to_string())),
            Some(_) => return Err(bad(index, format!("property `{key}` must be a string"))),
        }
    }
    Ok(None)
}

fn required_text(p: &Map<String, Value>, index: usize, key: &str) -> Result<String, ImportError> {
    text(p, index, &[key])?.ok_or_else(|| bad(index, format!("required property `{key}` is missing")))
}

/// An integer property within a range; OSM stores numbers as strings ("3"), which we accept.
fn int(
    p: &Map<String, Value>,
    index: usize,
    keys: &[&str],
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i32>, ImportError> {
    for key in keys {
        let value = match p.get(*key) {
            None | Some(Value::Null) => continue,
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        return match value {
            Some(v) if range.contains(&v) => Ok(Some(v as i32)),
            _ => Err(bad(index, format!("property `{key}` must be an integer in {}..={}", range.start(), range.end()))),
        };
    }
    Ok(None)
}

async fn import_grids(
    tx: &mut Transaction<'_, Postgres>,
    features: &[Feature],
    geometries: &[String],
    source: &str,
) -> Result<ImportReport, ImportError> {
    let code_pattern = |c: &str| {
        (2..=32).contains(&c.len())
            && c.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '-')
            && !c.starts_with('-')
    };
    let mut seen = HashSet::new();
    let (mut codes, mut names, mut communities) = (Vec::new(), Vec::new(), Vec::new());
    for (index, feature) in features.iter().enumerate() {
        let p = props(feature);
        let code = required_text(&p, index, "code")?;
        if !code_pattern(&code) {
            return Err(bad(index, format!("property `code` {code:?} must be 2–32 of A–Z, 0–9 and -")));
        }
        if !seen.insert(code.clone()) {
            return Err(bad(index, format!("grid code {code} appears twice in the file")));
        }
        let community = match text(&p, index, &["community"])? {
            None => None,
            Some(c) => {
                let id: Option<i64> =
                    sqlx::query_scalar("select id from community where code = $1 or name = $1 order by id limit 1")
                        .bind(&c)
                        .fetch_optional(&mut **tx)
                        .await?;
                Some(id.ok_or_else(|| bad(index, format!("unknown community {c:?}")))?)
            }
        };
        codes.push(code);
        names.push(required_text(&p, index, "name")?);
        communities.push(community);
    }
    let rows: Vec<bool> = sqlx::query_scalar(
        r"insert into grid (code, name, community_id, geom, source)
          select t.code, t.name, t.community, ST_Multi(ST_GeomFromGeoJSON(t.gj)), $5
            from unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) as t(code, name, community, gj)
          on conflict on constraint grid_code_key do update
             set name = excluded.name, community_id = excluded.community_id, geom = excluded.geom
          returning (xmax = 0)",
    )
    .bind(&codes)
    .bind(&names)
    .bind(&communities)
    .bind(geometries)
    .bind(source)
    .fetch_all(&mut **tx)
    .await?;
    Ok(counted("grids", &rows, rows.len()))
}

/// `inserted_flags` has one entry per row written (`true`: new); the rest of `total` were
/// already stored with the same values.
fn counted(target: &'static str, inserted_flags: &[bool], total: usize) -> ImportReport {
    let inserted = inserted_flags.iter().filter(|&&new| new).count() as u64;
    let written = inserted_flags.len() as u64;
    ImportReport { target, inserted, updated: written - inserted, unchanged: total as u64 - written }
}

/// A feature's external id: the `--id-property` if given, else `external_id`, else the OSM id
/// as `type/number` (OSM numbers ways, relations and nodes separately: `way/114` and
/// `relation/114` are different objects). `osm_way_id` is what GDAL's OSM driver writes for a
/// closed way in its `multipolygons` layer, where `osm_id` is then a relation's.
fn external_id(p: &Map<String, Value>, index: usize, id_property: Option<&str>) -> Result<Option<String>, ImportError> {
    if let Some(name) = id_property {
        return text(p, index, &[name]);
    }
    if let Some(id) = text(p, index, &["external_id", "@id"])? {
        return Ok(Some(id));
    }
    if let Some(way) = text(p, index, &["osm_way_id"])? {
        return Ok(Some(format!("way/{way}")));
    }
    let Some(id) = text(p, index, &["osm_id"])? else { return Ok(None) };
    Ok(Some(match text(p, index, &["osm_type"])? {
        Some(kind) => format!("{kind}/{id}"),
        None => id,
    }))
}

/// The same external id twice would make the upsert touch one row twice (and the file is
/// ambiguous about which values win).
fn check_unique_ids(ids: &[Option<String>]) -> Result<(), ImportError> {
    let mut seen = std::collections::HashMap::new();
    for (index, id) in ids.iter().enumerate() {
        if let Some(id) = id
            && let Some(first) = seen.insert(id.as_str(), index)
        {
            return Err(bad(index, format!("external id {id:?} appears twice in the file (first at feature {first})")));
        }
    }
    Ok(())
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

#[derive(Default)]
struct BuildingColumns {
    floors: Vec<Option<i32>>,
    units: Vec<Option<i32>>,
    households: Vec<i32>,
    uses: Vec<String>,
    names: Vec<Option<String>>,
    external_ids: Vec<Option<String>>,
    leader_names: Vec<Option<String>>,
    leader_phones: Vec<Option<String>>,
}

async fn import_buildings(
    tx: &mut Transaction<'_, Postgres>,
    features: &[Feature],
    geometries: &[String],
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut c = BuildingColumns::default();
    for (index, feature) in features.iter().enumerate() {
        let p = props(feature);
        let use_ = match text(&p, index, &["use"])? {
            Some(u) if BUILDING_USES.contains(&u.as_str()) => u,
            Some(u) => {
                return Err(bad(index, format!("property `use` {u:?} must be one of {}", BUILDING_USES.join(", "))));
            }
            None => building_use(text(&p, index, &["building"])?.as_deref()).to_string(),
        };
        c.floors.push(int(&p, index, &["floors", "building:levels"], 0..=200)?);
        c.units.push(int(&p, index, &["units"], 0..=100)?);
        c.households.push(int(&p, index, &["households"], 0..=10_000)?.unwrap_or(0));
        c.uses.push(use_);
        c.names.push(text(&p, index, &["name"])?);
        c.external_ids.push(external_id(&p, index, options.id_property.as_deref())?);
        c.leader_names.push(text(&p, index, &["leader_name"])?);
        c.leader_phones.push(text(&p, index, &["leader_phone"])?);
    }
    check_unique_ids(&c.external_ids)?;
    let mut rows: Vec<bool> = Vec::with_capacity(geometries.len());
    // Batches keep each statement's parameter arrays (and its trigger work) bounded.
    for start in (0..geometries.len()).step_by(5_000) {
        let end = (start + 5_000).min(geometries.len());
        let r = start..end;
        // An unchanged row is not written at all (the `where` of the update), so a re-import
        // moves no `updated_at`, evicts no tile and recounts no household. The geometry is
        // compared after `building_before_write` repaired it, as `excluded` holds it then.
        let written: Vec<bool> = sqlx::query_scalar(
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
        .bind(&geometries[r.clone()])
        .bind(&c.floors[r.clone()])
        .bind(&c.units[r.clone()])
        .bind(&c.households[r.clone()])
        .bind(&c.uses[r.clone()])
        .bind(&c.names[r.clone()])
        .bind(&c.external_ids[r.clone()])
        .bind(&c.leader_names[r.clone()])
        .bind(&c.leader_phones[r])
        .bind(&options.source)
        .fetch_all(&mut **tx)
        .await?;
        rows.extend(written);
    }
    Ok(counted("buildings", &rows, geometries.len()))
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

async fn import_stations(
    tx: &mut Transaction<'_, Postgres>,
    features: &[Feature],
    geometries: &[String],
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let (mut names, mut addresses, mut hours, mut services, mut hosts, mut phones, mut ids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, feature) in features.iter().enumerate() {
        let p = props(feature);
        names.push(required_text(&p, index, "name")?);
        addresses.push(text(&p, index, &["address"])?.unwrap_or_default());
        hours.push(text(&p, index, &["opening_hours"])?.unwrap_or_default());
        hosts.push(text(&p, index, &["host_org"])?.unwrap_or_default());
        phones.push(text(&p, index, &["phone"])?.unwrap_or_default());
        ids.push(external_id(&p, index, options.id_property.as_deref())?);
        let list = match p.get("services") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) if STATION_SERVICES.contains(&s) => Ok(s.to_string()),
                    _ => Err(bad(index, format!("property `services` may hold only {}", STATION_SERVICES.join(", ")))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(bad(index, "property `services` must be an array of strings")),
        };
        // Postgres arrays of arrays must be rectangular, so services travel as JSON text.
        services.push(serde_json::to_string(&list).expect("strings serialise"));
    }
    check_unique_ids(&ids)?;
    let rows: Vec<bool> = sqlx::query_scalar(
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
    .bind(&names)
    .bind(&addresses)
    .bind(&hours)
    .bind(&services)
    .bind(&hosts)
    .bind(&phones)
    .bind(geometries)
    .bind(&options.source)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    Ok(counted("stations", &rows, geometries.len()))
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
}
