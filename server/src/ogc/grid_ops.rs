//! Planners' operations on the partition as a whole: history and revert, split by a line,
//! merge by ids, the gaps left inside the urban area, and the household balance.
//!
//! Code rule for new grids: a split keeps the original id, code and name on its largest part;
//! each other part gets the first free code `<code>-S<n>` (n = 1, 2, …) and the name
//! `<name> (<n+1>)`. A merge keeps the lowest id with its code and name; the others are deleted
//! (their history stays in `grid_version`).

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::collections::GRIDS;
use super::edit::{self, Actor, Written, bbox_of, db_error, set_actor};
use super::{Changed, Error, Kind, Result};

/// One entry of a grid's history.
// `GridVersion` in the OpenAPI document: schema names are global, and reports have a
// `HistoryEntry` of their own.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = GridVersion)]
pub struct HistoryEntry {
    pub version: i32,
    /// `insert`, `update` or `delete`.
    pub op: String,
    pub code: String,
    pub name: String,
    pub community_id: Option<i64>,
    pub author: String,
    pub reason: Option<String>,
    /// Written by a desktop GIS without a version check (docs/ogc.md): the edit may have
    /// overwritten a change made after the desktop read the grid.
    pub unchecked: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub area_m2: f64,
    /// The geometry at this version (GeoJSON); the previous entry holds the old one.
    #[schema(value_type = Object)]
    pub geometry: sqlx::types::Json<Value>,
}

pub async fn history(pool: &PgPool, id: i64) -> Result<Vec<HistoryEntry>> {
    let rows: Vec<HistoryEntry> = sqlx::query_as(
        // The history is public: an author is shown by display name or a neutral label of the
        // role (规划人员), never by login name; an edit made in SQL (author: a database role) is 系统.
        r"select v.version, v.op, v.code, v.name, v.community_id,
                 coalesce(a.display_name, case a.role when 'planner' then '规划人员' when 'admin' then '管理员'
                                                     when 'grid_worker' then '网格员' end,
                          '系统') as author,
                 v.reason, v.unchecked, v.created_at, ST_Area(v.geom::geography) as area_m2, ST_AsGeoJSON(v.geom, 7)::json as geometry
            from grid_version v left join account a on a.name = v.author
           where v.grid_id = $1 order by v.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Err(Error::NotFound(format!("grid {id} has no history")));
    }
    Ok(rows)
}

/// Put a grid back to an earlier version (a new version; the same checks as any edit).
pub async fn revert(
    pool: &PgPool,
    id: i64,
    etag: i64,
    to_version: i32,
    actor: Actor<'_>,
    clip: bool,
) -> Result<Written> {
    let row: Option<(String, String, Option<i64>, String)> = sqlx::query_as(
        "select code, name, community_id, ST_AsGeoJSON(geom) from grid_version
          where grid_id = $1 and version = $2 and op <> 'delete' order by id desc limit 1",
    )
    .bind(id)
    .bind(to_version)
    .fetch_optional(pool)
    .await?;
    let Some((code, name, community_id, geometry)) = row else {
        return Err(Error::NotFound(format!("grid {id} has no version {to_version}")));
    };
    let geometry: Value =
        serde_json::from_str(&geometry).map_err(|e| Error::Database(sqlx::Error::Decode(e.into())))?;
    let body = json!({"type": "Feature", "geometry": geometry, "properties": {"code": code, "name": name, "community_id": community_id}});
    let reason = actor.reason.map_or_else(|| format!("revert to version {to_version}"), str::to_string);
    edit::replace(
        pool,
        &GRIDS,
        id,
        edit::Precondition::IfMatch(etag),
        &body,
        false,
        Actor { name: actor.name, reason: Some(&reason), county_id: actor.county_id },
        clip,
    )
    .await
}

/// A grid as returned by split and merge.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct GridSummary {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub version: i32,
    pub households: i32,
    pub area_m2: f64,
}

async fn summaries(conn: &mut sqlx::PgConnection, ids: &[i64]) -> Result<Vec<GridSummary>> {
    Ok(sqlx::query_as(
        "select id, code, name, version, households, ST_Area(geom::geography) as area_m2 from grid where id = any($1) order by id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// Split a grid by a line (GeoJSON LineString/MultiLineString) into two or more grids. With
/// `dry_run` every check and write runs and the transaction is rolled back: the planner sees the
/// parts and their households exactly as the split would leave them (the same SQL, the same
/// household trigger), and nothing is stored.
pub async fn split(
    pool: &PgPool,
    id: i64,
    etag: i64,
    line: &Value,
    actor: Actor<'_>,
    dry_run: bool,
) -> Result<(Vec<GridSummary>, Changed)> {
    let parsed: geojson::Geometry =
        serde_json::from_value(line.clone()).map_err(|e| Error::bad(format!("`line` is not GeoJSON: {e}")))?;
    if !matches!(
        parsed.value,
        geojson::GeometryValue::LineString { .. } | geojson::GeometryValue::MultiLineString { .. }
    ) {
        return Err(Error::bad("`line` must be a LineString or MultiLineString"));
    }
    let mut tx = pool.begin().await?;
    set_actor(&mut tx, actor).await?;
    let current: Option<(String, String, Option<i64>)> =
        sqlx::query_as("select code, name, community_id from grid where id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((code, name, community_id)) = current else { return Err(Error::NotFound(format!("grid {id}"))) };
    let parts: Vec<String> = sqlx::query_scalar(
        r"select ST_AsGeoJSON(d.geom) from (
              select (ST_Dump(ST_CollectionExtract(ST_Split(g.geom, ST_SetSRID(ST_GeomFromGeoJSON($2), 4326)), 3))).geom
                from grid g where g.id = $1) d
           order by ST_Area(d.geom::geography) desc",
    )
    .bind(id)
    .bind(line.to_string())
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    if parts.len() < 2 {
        return Err(Error::unprocessable(
            "the line does not cut the grid into two or more parts",
            json!({"parts": parts.len()}),
        ));
    }
    let mut changed = Changed { kind: Some(Kind::Grids), ..Changed::default() };
    changed.extend_bbox(bbox_of(&mut tx, "grid", id).await?);
    let updated: Option<i64> =
        sqlx::query_scalar("update grid set geom = ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON($3), 4326)) where id = $1 and version = $2 returning id")
            .bind(id)
            .bind(etag)
            .bind(&parts[0])
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
    if updated.is_none() {
        return Err(Error::PreconditionFailed(format!(
            "grid {id} has changed since you read it: fetch it again for the current ETag"
        )));
    }
    let mut ids = vec![id];
    let mut n = 0;
    for (i, part) in parts.iter().enumerate().skip(1) {
        let new_code = loop {
            n += 1;
            let candidate = format!("{code}-S{n}");
            let taken: bool = sqlx::query_scalar("select exists (select 1 from grid where code = $1)")
                .bind(&candidate)
                .fetch_one(&mut *tx)
                .await?;
            if !taken {
                break candidate;
            }
        };
        let new_id: i64 = sqlx::query_scalar(
            "insert into grid (code, name, community_id, geom) values ($1, $2, $3, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON($4), 4326))) returning id",
        )
        .bind(&new_code)
        .bind(format!("{name} ({})", i + 1))
        .bind(community_id)
        .bind(part)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        ids.push(new_id);
    }
    let result = summaries(&mut tx, &ids).await?;
    changed.grid_ids = ids;
    if dry_run {
        tx.rollback().await?;
        return Ok((result, Changed::default()));
    }
    tx.commit().await?;
    Ok((result, changed))
}

/// Merge adjacent grids, each given with the version the planner saw.
pub async fn merge(pool: &PgPool, grids: &[(i64, i64)], actor: Actor<'_>) -> Result<(GridSummary, Changed)> {
    let mut ids: Vec<i64> = grids.iter().map(|g| g.0).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() < 2 || ids.len() != grids.len() {
        return Err(Error::bad("merge needs two or more distinct grids"));
    }
    if ids.len() > 50 {
        return Err(Error::bad("merge takes at most 50 grids"));
    }
    let mut tx = pool.begin().await?;
    set_actor(&mut tx, actor).await?;
    // The assignment index's lock before any grid row lock (migration 0012): intake holds it
    // shared while its report's foreign key waits on a grid row, so the other order deadlocks.
    sqlx::query("select pg_advisory_xact_lock(gridmap_index_lock_key())").execute(&mut *tx).await?;
    // Lock the rows first: between this check and the writes below nobody else can change them.
    let rows: Vec<(i64, i32)> =
        sqlx::query_as("select id, version from grid where id = any($1) order by id for update")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
    for (id, version) in grids {
        match rows.iter().find(|r| r.0 == *id) {
            None => return Err(Error::NotFound(format!("grid {id}"))),
            Some(r) if i64::from(r.1) != *version => {
                return Err(Error::PreconditionFailed(format!("grid {id} is at version {}, not {version}", r.1)));
            }
            Some(_) => {}
        }
    }
    let (parts, union): (i32, String) = sqlx::query_as(
        "select ST_NumGeometries(u), ST_AsGeoJSON(u) from (select ST_Multi(ST_UnaryUnion(ST_Collect(geom))) u from grid where id = any($1)) s",
    )
    .bind(&ids)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    if parts != 1 {
        return Err(Error::unprocessable(
            "the grids are not adjacent: their union is not one polygon",
            json!({"parts": parts}),
        ));
    }
    let mut changed = Changed { kind: Some(Kind::Grids), ..Changed::default() };
    for id in &ids {
        changed.extend_bbox(bbox_of(&mut tx, "grid", *id).await?);
    }
    let keep = ids[0];
    sqlx::query("delete from grid where id = any($1)").bind(&ids[1..]).execute(&mut *tx).await.map_err(db_error)?;
    sqlx::query("update grid set geom = ST_SetSRID(ST_GeomFromGeoJSON($2), 4326) where id = $1")
        .bind(keep)
        .bind(&union)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let mut result = summaries(&mut tx, &[keep]).await?;
    changed.grid_ids = ids;
    tx.commit().await?;
    result.pop().map(|g| (g, changed)).ok_or_else(|| Error::NotFound(format!("grid {keep}")))
}

/// Holes in the partition: parts of the urban area no grid covers, larger than `min_m2`.
pub async fn gaps(pool: &PgPool, min_m2: f64) -> Result<Value> {
    let rows: Vec<(String, f64)> = sqlx::query_as(
        r"with u as (select a.id, ST_UnaryUnion(ST_Collect(g.geom)) g
                       from area a left join grid g on g.geom && a.geom where a.kind = 'urban' group by a.id),
               d as (select (ST_Dump(ST_Difference(a.geom, coalesce(u.g, 'SRID=4326;POLYGON EMPTY'::geometry)))).geom g
                       from area a join u using (id))
          select ST_AsGeoJSON(g, 7), ST_Area(g::geography) from d where ST_Area(g::geography) > $1 order by 2 desc",
    )
    .bind(min_m2)
    .fetch_all(pool)
    .await?;
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let features: Vec<Value> = rows
        .into_iter()
        .map(|(g, area)| {
            let geometry: Value = serde_json::from_str(&g).unwrap_or(Value::Null);
            json!({"type": "Feature", "geometry": geometry, "properties": {"area_m2": (area * 10.0).round() / 10.0}})
        })
        .collect();
    Ok(
        json!({"type": "FeatureCollection", "numberReturned": features.len(), "total_area_m2": total, "features": features}),
    )
}

/// What saving `geometry` as grid `id`'s shape would leave, without saving it: the grid's
/// households (buildings whose point on surface the new shape covers, as the building trigger
/// counts them) and the holes in the urban area it would open (what the grid gives up that no
/// other grid covers, larger than `min_m2`) — the `/api/grids/gaps` the edit would add.
pub async fn preview(pool: &PgPool, id: i64, geometry: &Value, min_m2: f64) -> Result<Value> {
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from grid where id = $1)").bind(id).fetch_one(pool).await?;
    if !exists {
        return Err(Error::NotFound(format!("grid {id}")));
    }
    let rows: Vec<(i64, Option<String>, Option<f64>)> = sqlx::query_as(
        r"with n as (select gridmap_valid_multipolygon(ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON($2), 4326))) g),
               hh as (select coalesce(sum(b.households), 0)::bigint total from building b, n
                       where ST_Covers(n.g, ST_PointOnSurface(b.geom))),
               lost as (select ST_Difference(o.geom, n.g) g from grid o, n where o.id = $1),
               others as (select ST_UnaryUnion(ST_Collect(g.geom)) g from grid g, lost
                           where g.id <> $1 and g.geom && lost.g),
               holes as (select (ST_Dump(ST_Intersection(a.geom,
                                    ST_Difference(lost.g, coalesce(others.g, 'SRID=4326;POLYGON EMPTY'::geometry))))).geom g
                           from area a, lost, others where a.kind = 'urban' and a.geom && lost.g)
          select hh.total, ST_AsGeoJSON(h.g, 7), ST_Area(h.g::geography)
            from hh left join holes h on ST_Dimension(h.g) = 2 and ST_Area(h.g::geography) > $3
           order by 3 desc nulls last",
    )
    .bind(id)
    .bind(geometry.to_string())
    .bind(min_m2)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let households = rows.first().map_or(0, |r| r.0);
    let features: Vec<Value> = rows
        .iter()
        .filter_map(|(_, g, area)| {
            let geometry: Value = serde_json::from_str(g.as_deref()?).ok()?;
            Some(json!({"type": "Feature", "geometry": geometry, "properties": {"area_m2": (area.unwrap_or(0.0) * 10.0).round() / 10.0}}))
        })
        .collect();
    let total: f64 = rows.iter().filter_map(|r| r.2).sum();
    Ok(json!({
        "households": households,
        "gaps": {"type": "FeatureCollection", "numberReturned": features.len(), "total_area_m2": (total * 10.0).round() / 10.0, "features": features},
    }))
}

/// Grids whose households fall outside `[min, max]`, each with its edge-sharing neighbours.
pub async fn balance(pool: &PgPool, min: i32, max: i32) -> Result<Value> {
    let rows: Vec<sqlx::types::Json<Value>> = sqlx::query_scalar(
        r"select json_build_object(
                 'id', g.id, 'code', g.code, 'name', g.name, 'households', g.households,
                 'status', case when g.households < $1 then 'under' else 'over' end,
                 'neighbours', coalesce((select json_agg(json_build_object('id', n.id, 'code', n.code, 'households', n.households) order by n.id)
                                          from grid n where n.id <> g.id and n.geom && g.geom and ST_Relate(n.geom, g.geom, '****1****')), '[]'::json))
            from grid g where g.households < $1 or g.households > $2 order by g.id",
    )
    .bind(min)
    .bind(max)
    .fetch_all(pool)
    .await?;
    let grids: Vec<Value> = rows.into_iter().map(|r| r.0).collect();
    Ok(json!({"min": min, "max": max, "count": grids.len(), "grids": grids}))
}
