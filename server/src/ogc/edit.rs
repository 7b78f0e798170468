//! Part 4 writes (create, replace, merge-patch update, delete) with optimistic locking, and the
//! checks that keep grids a partition: a valid polygon (repaired with a warning), inside the
//! county, and no overlap with another grid beyond 1 m² unless the neighbours are clipped in the
//! same transaction. Every write runs in one transaction that sets `gridmap.actor` and
//! `gridmap.reason`, so the history trigger records who and why.

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use super::collections::GRIDS;
use super::{Changed, Collection, Error, Kind, PropType, Property, Result, features};
use crate::geo_input;

/// Overlaps and leftovers below this area (m²) are digitising noise, not a planning decision.
pub const OVERLAP_TOLERANCE_M2: f64 = 1.0;

/// Who writes, and why (stored in `grid_version`).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub reason: Option<&'a str>,
    /// A county-scoped planner's county: their grid writes are held to it (migration 0028).
    pub county_id: Option<i64>,
}

/// What a replace or update is checked against before it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The ETag value of `If-Match`: the write happens only if the feature still has it.
    IfMatch(i64),
    /// No `If-Match`, from a desktop GIS (an API key with scope `ogc_edit`, its id here): QGIS
    /// ≥ 3.32 edits through Part 4 but never sends `If-Match`, and its PATCH carries only the
    /// changed attributes. A grid body that carries `version` (a PUT of the feature as read) is
    /// checked against it (409 when the grid has moved on); one that carries none is written and
    /// recorded in the grid's history as unchecked, with the key. Buildings and stations keep no
    /// history, so they still need a version: `If-Match` (428 without).
    DesktopKey(i64),
}

/// A committed write: the feature as stored (households recomputed), its new ETag value,
/// warnings (e.g. a repaired geometry) and what changed.
#[derive(Debug)]
pub struct Written {
    pub id: i64,
    pub etag: i64,
    pub feature: String,
    pub warnings: Vec<String>,
    pub changed: Changed,
}

struct Input {
    geometry: String,
    properties: Vec<(&'static Property, Value)>,
}

fn parse_feature(coll: &Collection, body: &Value, counties: &[[f64; 4]]) -> Result<Input> {
    let Some(object) = body.as_object() else { return Err(Error::bad("the body must be a GeoJSON Feature object")) };
    if let Some(t) = object.get("type")
        && t != "Feature"
    {
        return Err(Error::bad("the body must be a GeoJSON Feature (\"type\": \"Feature\")"));
    }
    let geometry = match object.get("geometry") {
        None | Some(Value::Null) => return Err(Error::bad("`geometry` is required")),
        Some(g) => g,
    };
    let parsed: geojson::Geometry = serde_json::from_value(geometry.clone())
        .map_err(|e| Error::bad(format!("`geometry` is not valid GeoJSON: {e}")))?;
    let bbox = geo_input::check(Some(&parsed), coll.geometry)
        .map_err(|e| Error::unprocessable(format!("geometry: {e}"), json!({"field": "geometry"})))?;
    if !geo_input::inside_any_county(bbox, counties) {
        return Err(Error::unprocessable(
            "geometry lies outside the county",
            json!({"field": "geometry", "bbox": bbox}),
        ));
    }
    let mut properties = Vec::new();
    match object.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let p = coll.property(name).ok_or_else(|| {
                    Error::bad(format!(
                        "unknown property `{name}`; the properties of `{}` are: {}",
                        coll.id,
                        coll.property_names()
                    ))
                })?;
                if !p.writable {
                    continue; // derived values (households, version) are read back, never written
                }
                let ok = match (p.ty, value) {
                    (_, Value::Null) | (PropType::Text, Value::String(_)) => true,
                    (PropType::Integer, v) => v.as_i64().is_some(),
                    (PropType::TextArray, Value::Array(items)) => items.iter().all(Value::is_string),
                    _ => false,
                };
                if !ok {
                    return Err(Error::bad(format!("property `{name}` must be {}", p.ty.schema())));
                }
                properties.push((p, value.clone()));
            }
        }
        Some(_) => return Err(Error::bad("`properties` must be an object")),
    }
    for p in coll.properties.iter().filter(|p| p.required) {
        if !properties.iter().any(|(q, v)| q.name == p.name && !v.is_null()) {
            return Err(Error::bad(format!("property `{}` is required", p.name)));
        }
    }
    Ok(Input { geometry: geometry.to_string(), properties })
}

fn push_json_value(qb: &mut QueryBuilder<'_, Postgres>, p: &Property, value: &Value) {
    match (p.ty, value) {
        (PropType::Text, Value::String(s)) => {
            qb.push_bind(s.clone());
        }
        (PropType::Integer, v) if v.as_i64().is_some() => {
            qb.push_bind(v.as_i64());
        }
        (PropType::TextArray, Value::Array(items)) => {
            qb.push_bind(items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>());
        }
        _ => {
            qb.push("null");
        }
    }
}

fn push_geometry(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, geojson: &str) {
    match coll.geometry {
        geo_input::Expected::Polygonal => {
            qb.push("ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(").push_bind(geojson.to_string()).push("), 4326))")
        }
        geo_input::Expected::Point => {
            qb.push("ST_SetSRID(ST_GeomFromGeoJSON(").push_bind(geojson.to_string()).push("), 4326)")
        }
    };
}

pub async fn set_actor(conn: &mut PgConnection, actor: Actor<'_>) -> Result<()> {
    sqlx::query(
        "select set_config('gridmap.actor', $1, true), set_config('gridmap.reason', $2, true),
                set_config('gridmap.county', coalesce($3::text, ''), true)",
    )
    .bind(actor.name)
    .bind(actor.reason.unwrap_or(""))
    .bind(actor.county_id.map(|c| c.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Map a refused statement to a client error: named constraints, bad values (`crate::constraints`),
/// and PostGIS refusing a geometry (XX000), in our words.
pub fn db_error(err: sqlx::Error) -> Error {
    use crate::constraints::{FaultKind, client_fault};
    // A county-scoped planner touched a grid outside their county (trigger grid_county_scope).
    if let Some(db) = err.as_database_error()
        && db.code().as_deref() == Some("42501")
    {
        return Error::Forbidden(db.message().to_string());
    }
    if let Some(fault) = client_fault(&err) {
        let message = fault.field.map_or_else(|| fault.message.clone(), |f| format!("{f}: {}", fault.message));
        return match fault.kind {
            FaultKind::Conflict => Error::Conflict(message),
            _ => Error::unprocessable(message, json!({"field": fault.field})),
        };
    }
    if err.as_database_error().and_then(sqlx::error::DatabaseError::code).as_deref() == Some("XX000") {
        return Error::unprocessable("the geometry is not valid for this collection".to_string(), json!({}));
    }
    Error::Database(err)
}

pub async fn bbox_of(conn: &mut PgConnection, table: &str, id: i64) -> Result<Option<[f64; 4]>> {
    // `table` comes from a static collection definition.
    let sql = format!(
        "select array[ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)] from (select geom::box2d b from {table} where id = $1) s"
    );
    let row: Option<Vec<f64>> = sqlx::query_scalar(&sql).bind(id).fetch_optional(conn).await?;
    Ok(row.and_then(|v| v.try_into().ok()))
}

/// Create a feature (Part 4 POST).
pub async fn create(pool: &PgPool, coll: &Collection, body: &Value, actor: Actor<'_>, clip: bool) -> Result<Written> {
    let counties = geo_input::county_boxes(pool).await?;
    let input = parse_feature(coll, body, &counties)?;
    let mut tx = pool.begin().await?;
    set_actor(&mut tx, actor).await?;
    let mut changed = Changed { kind: Some(coll.kind), ..Changed::default() };
    let warnings = if coll.kind == Kind::Grids {
        grid_checks(&mut tx, &input.geometry, None, clip, &mut changed).await?
    } else {
        Vec::new()
    };
    let mut qb = QueryBuilder::<Postgres>::new("insert into ");
    qb.push(coll.table).push(" (geom");
    for (p, _) in &input.properties {
        qb.push(", ").push(p.column);
    }
    qb.push(") values (");
    push_geometry(&mut qb, coll, &input.geometry);
    for (p, v) in &input.properties {
        qb.push(", ");
        push_json_value(&mut qb, p, v);
    }
    qb.push(") returning id");
    let id: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await.map_err(db_error)?;
    finish(tx, coll, id, changed, warnings).await
}

async fn finish(
    mut tx: sqlx::Transaction<'_, Postgres>,
    coll: &Collection,
    id: i64,
    mut changed: Changed,
    warnings: Vec<String>,
) -> Result<Written> {
    // Read back after the statement: the household and building triggers have run.
    let (feature, etag) =
        features::one(&mut *tx, coll, id).await?.ok_or_else(|| Error::NotFound(format!("{} {id}", coll.id)))?;
    changed.extend_bbox(bbox_of(&mut tx, coll.table, id).await?);
    if coll.kind == Kind::Grids && !changed.grid_ids.contains(&id) {
        changed.grid_ids.push(id);
    }
    tx.commit().await?;
    Ok(Written { id, etag, feature, warnings, changed })
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Replace (PUT) or merge-patch (PATCH) a feature. `etag` is the `If-Match` value; the
/// version check and the write are the same `update … where id = $ and <etag> = $`.
#[allow(clippy::too_many_arguments)] // one call per HTTP verb; every argument is distinct input
pub async fn replace(
    pool: &PgPool,
    coll: &Collection,
    id: i64,
    precondition: Precondition,
    body: &Value,
    patch: bool,
    actor: Actor<'_>,
    clip: bool,
) -> Result<Written> {
    // The version to check: If-Match's, else (a desktop key) the one the client's own body
    // names — read before a PATCH is merged into the stored feature, which has the current one.
    let (etag, desktop_key) = match precondition {
        Precondition::IfMatch(etag) => (Some(etag), None),
        Precondition::DesktopKey(key) if coll.kind == Kind::Grids => (body_version(body)?, Some(key)),
        Precondition::DesktopKey(_) => {
            return Err(Error::PreconditionRequired(format!(
                "send If-Match with the feature's ETag: {} keep no history, so a desktop GIS edit without one is refused",
                coll.id
            )));
        }
    };
    let mut tx = pool.begin().await?;
    set_actor(&mut tx, actor).await?;
    if let Some(key) = desktop_key {
        sqlx::query("select set_config('gridmap.api_key', $1, true), set_config('gridmap.unchecked', $2, true)")
            .bind(key.to_string())
            .bind(if etag.is_none() { "true" } else { "false" })
            .execute(&mut *tx)
            .await?;
    }
    let (current, _) =
        features::one(&mut *tx, coll, id).await?.ok_or_else(|| Error::NotFound(format!("{} {id}", coll.id)))?;
    let body = if patch {
        let mut merged: Value =
            serde_json::from_str(&current).map_err(|e| Error::Database(sqlx::Error::Decode(e.into())))?;
        merge_patch(&mut merged, body);
        merged
    } else {
        body.clone()
    };
    let counties = geo_input::county_boxes(&mut *tx).await?;
    let input = parse_feature(coll, &body, &counties)?;
    let mut changed = Changed { kind: Some(coll.kind), ..Changed::default() };
    changed.extend_bbox(bbox_of(&mut tx, coll.table, id).await?);
    let warnings = if coll.kind == Kind::Grids {
        grid_checks(&mut tx, &input.geometry, Some(id), clip, &mut changed).await?
    } else {
        Vec::new()
    };
    let mut qb = QueryBuilder::<Postgres>::new("update ");
    qb.push(coll.table).push(" set geom = ");
    push_geometry(&mut qb, coll, &input.geometry);
    for p in coll.properties.iter().filter(|p| p.writable) {
        qb.push(", ").push(p.column).push(" = ");
        match input.properties.iter().find(|(q, _)| q.name == p.name) {
            Some((p, v)) => push_json_value(&mut qb, p, v),
            // PUT replaces the whole feature: an absent property goes back to its default.
            None => {
                qb.push("default");
            }
        }
    }
    qb.push(" where id = ").push_bind(id);
    if let Some(etag) = etag {
        qb.push(" and ").push(coll.etag_sql).push(" = ").push_bind(etag);
    }
    qb.push(" returning id");
    let updated: Option<i64> = qb.build_query_scalar().fetch_optional(&mut *tx).await.map_err(db_error)?;
    if updated.is_none() {
        return Err(match (desktop_key, etag) {
            (Some(_), Some(version)) => Error::Conflict(format!(
                "{} {id} has changed since version {version} was read: reload the layer and edit again",
                coll.id
            )),
            _ => stale(coll, id),
        });
    }
    finish(tx, coll, id, changed, warnings).await
}

/// The `version` a desktop client's body names (`properties.version`), if any.
fn body_version(body: &Value) -> Result<Option<i64>> {
    match body.get("properties").and_then(|p| p.get("version")) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().filter(|v| *v >= 1).map(Some).ok_or_else(|| {
            Error::unprocessable(
                "properties.version: the grid's version as read, a whole number ≥ 1",
                json!({"field": "version"}),
            )
        }),
    }
}

fn stale(coll: &Collection, id: i64) -> Error {
    Error::PreconditionFailed(format!(
        "{} {id} has changed since you read it: fetch it again for the current ETag",
        coll.id
    ))
}

/// Delete a feature if `etag` is still current (one statement).
pub async fn delete(pool: &PgPool, coll: &Collection, id: i64, etag: i64, actor: Actor<'_>) -> Result<Changed> {
    let mut tx = pool.begin().await?;
    set_actor(&mut tx, actor).await?;
    let mut changed = Changed { kind: Some(coll.kind), ..Changed::default() };
    changed.extend_bbox(bbox_of(&mut tx, coll.table, id).await?);
    let sql = format!("delete from {} where id = $1 and {} = $2 returning id", coll.table, coll.etag_sql);
    let deleted: Option<i64> =
        sqlx::query_scalar(&sql).bind(id).bind(etag).fetch_optional(&mut *tx).await.map_err(db_error)?;
    if deleted.is_none() {
        return Err(if changed.bbox.is_some() {
            stale(coll, id)
        } else {
            Error::NotFound(format!("{} {id}", coll.id))
        });
    }
    if coll.kind == Kind::Grids {
        changed.grid_ids.push(id);
    }
    tx.commit().await?;
    Ok(changed)
}

/// The repaired form of a client's grid geometry, as SQL over bind `$1`.
const NEW_GRID_SQL: &str = "gridmap_valid_multipolygon(ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON($1), 4326)))";

/// Validate a grid's new shape inside the write's transaction; with `clip`, cut it out of the
/// overlapped neighbours (each gets its own history row through the trigger).
pub async fn grid_checks(
    conn: &mut PgConnection,
    geojson: &str,
    self_id: Option<i64>,
    clip: bool,
    changed: &mut Changed,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let (valid, reason, empty, area): (bool, String, bool, f64) = sqlx::query_as(&format!(
        "select ST_IsValid(g), ST_IsValidReason(g), ST_IsEmpty(r), coalesce(ST_Area(r::geography), 0)
           from (select ST_SetSRID(ST_GeomFromGeoJSON($1), 4326) g) s, lateral (select {NEW_GRID_SQL} r) t"
    ))
    .bind(geojson)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error)?;
    if empty || area < OVERLAP_TOLERANCE_M2 {
        return Err(Error::unprocessable(
            format!("the grid geometry is invalid ({reason}) and no polygon is left after repair"),
            json!({"field": "geometry", "reason": reason}),
        ));
    }
    if !valid {
        warnings.push(format!("the geometry was invalid ({reason}) and was repaired (ST_MakeValid)"));
    }
    // With many counties the grid must lie within the union of the boundaries it touches (a
    // grid on a county line is refused by the partition rules, not here); none touched and at
    // least one loaded: it lies wholly outside.
    let outside: Option<f64> = sqlx::query_scalar(&format!(
        "select ST_Area(ST_Difference(n.r, coalesce(
                    (select ST_Union(a.geom) from area a where a.kind = 'county' and a.geom && n.r),
                    'SRID=4326;POLYGON EMPTY'::geometry))::geography)
           from (select {NEW_GRID_SQL} r) n
          where exists (select 1 from area where kind = 'county')"
    ))
    .bind(geojson)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    if let Some(outside) = outside
        && outside > OVERLAP_TOLERANCE_M2
    {
        return Err(Error::unprocessable(
            format!("the grid reaches {outside:.0} m² outside the county boundary"),
            json!({"field": "geometry", "outside_county_m2": outside}),
        ));
    }
    let overlaps: Vec<(i64, String, f64, f64, sqlx::types::Json<Value>)> = sqlx::query_as(&format!(
        "select g.id, g.code, ST_Area(ST_Intersection(g.geom, n.r)::geography), ST_Area(ST_Difference(g.geom, n.r)::geography),
                ST_AsGeoJSON(ST_CollectionExtract(ST_Intersection(g.geom, n.r), 3), 7)::json
           from grid g, (select {NEW_GRID_SQL} r) n
          where g.geom && n.r and ST_Intersects(g.geom, n.r) and ($2::bigint is null or g.id <> $2)
          order by g.id"
    ))
    .bind(geojson)
    .bind(self_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let overlaps: Vec<_> = overlaps.into_iter().filter(|o| o.2 > OVERLAP_TOLERANCE_M2).collect();
    if overlaps.is_empty() {
        return Ok(warnings);
    }
    let neighbours: Vec<Value> =
        overlaps.iter().map(|(id, code, overlap, _, shape)| json!({"id": id, "code": code, "overlap_m2": (overlap * 10.0).round() / 10.0, "overlap": shape.0})).collect();
    if !clip {
        return Err(Error::unprocessable(
            format!("the grid overlaps {} other grid(s) by more than {OVERLAP_TOLERANCE_M2} m²", overlaps.len()),
            json!({"neighbours": neighbours, "hint": "move the boundary, or send ?clip=neighbours to cut this shape out of them"}),
        ));
    }
    if let Some((id, code, ..)) = overlaps.iter().find(|o| o.3 < OVERLAP_TOLERANCE_M2) {
        return Err(Error::unprocessable(
            format!("clipping would erase grid {code} (id {id}) entirely; merge the grids instead"),
            json!({"neighbours": neighbours}),
        ));
    }
    let ids: Vec<i64> = overlaps.iter().map(|o| o.0).collect();
    for id in &ids {
        changed.extend_bbox(bbox_of(conn, GRIDS.table, *id).await?);
    }
    sqlx::query(&format!(
        "update grid g set geom = ST_Multi(ST_CollectionExtract(ST_Difference(g.geom, n.r), 3))
           from (select {NEW_GRID_SQL} r) n where g.id = any($2)"
    ))
    .bind(geojson)
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    changed.grid_ids.extend(&ids);
    warnings.push(format!(
        "clipped {} neighbouring grid(s): {}",
        ids.len(),
        overlaps.iter().map(|o| o.1.as_str()).collect::<Vec<_>>().join(", ")
    ));
    Ok(warnings)
}
