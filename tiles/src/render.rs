//! Render a tile: PostgreSQL finds each layer's rows in the buffered tile (a `GiST` index scan on
//! the precomputed `geom_3857` columns, geometry sent as EWKB) and [`crate::encode`] cuts and
//! encodes them. Same content, properties and zoom rules as the `ST_AsMVT` statement
//! ([`LayerSet::sql`], still used for the benchmark's PostGIS floor and `--print-sql`).

use geo_types::Geometry;
use geozero::wkb::Decode;
use sqlx::PgConnection;

use crate::encode::{LayerBuilder, Prop, TileFrame, encode};
use crate::layer::{ALLEYS_MIN_ZOOM, GRID_LABELS_MIN_ZOOM, Layer, LayerSet, REPORTS_PER_TILE, SIMPLIFY_BELOW_ZOOM};
use crate::tile::{BUFFER, EXTENT, TileCoord};

type Geom = Decode<Geometry<f64>>;

/// The whole tile, uncompressed (empty when nothing is in it). Layers in drawing order.
pub async fn render(conn: &mut PgConnection, layers: LayerSet, tile: TileCoord) -> Result<Vec<u8>, sqlx::Error> {
    // Half a screen pixel of a 512 px tile, as the SQL path's ST_Simplify tolerance.
    let simplify = (tile.z < SIMPLIFY_BELOW_ZOOM).then_some(f64::from(EXTENT) / 1024.0);
    let frame = TileFrame::new(tile, BUFFER, simplify);
    let b = tile.buffered_bounds();
    let env = [b.min_x, b.min_y, b.max_x, b.max_y];
    let mut out = Vec::new();
    for layer in layers.drawn_at(tile.z).iter() {
        match layer {
            Layer::Grids => grids(conn, env, &frame, tile, &mut out).await?,
            Layer::Buildings => buildings(conn, env, &frame, &mut out).await?,
            Layer::Stations => stations(conn, env, &frame, &mut out).await?,
            Layer::Roads => roads(conn, env, &frame, tile, &mut out).await?,
            Layer::Reports => reports(conn, env, &frame, &mut out).await?,
        }
    }
    Ok(encode(out))
}

fn text(s: Option<String>) -> Option<Prop> {
    s.map(Prop::Str)
}

fn int(i: Option<i64>) -> Option<Prop> {
    i.map(Prop::Int)
}

/// `round(households / 300.0, 3)` as the SQL path computes it: households·10/3 is never a
/// half, so rounding the float agrees with PostgreSQL's numeric rounding.
fn balance(households: i32) -> Prop {
    Prop::Double((f64::from(households) * 10.0 / 3.0).round() / 1000.0)
}

const ENVELOPE: &str = "ST_MakeEnvelope($1, $2, $3, $4, 3857)";

fn bind_env<O>(
    q: sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    env: [f64; 4],
) -> sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(env[0]).bind(env[1]).bind(env[2]).bind(env[3])
}

type GridRow = (i64, String, String, Option<String>, i32, i32, Geom, Option<Geom>);

async fn grids(conn: &mut PgConnection, env: [f64; 4], frame: &TileFrame, tile: TileCoord, out: &mut Vec<geozero::mvt::tile::Layer>) -> Result<(), sqlx::Error> {
    let sql = format!(
        "select g.id, g.code, g.name, c.name, g.households,
                (select count(*) from grid_assignment a where a.grid_id = g.id)::int4,
                g.geom_3857, g.label_3857
           from grid g left join community c on c.id = g.community_id
          where g.geom_3857 && {ENVELOPE}"
    );
    let rows: Vec<GridRow> = bind_env(sqlx::query_as(&sql), env).fetch_all(&mut *conn).await?;
    let mut polygons = LayerBuilder::new("grids");
    let mut labels = LayerBuilder::new("grid_labels");
    // Buffer 0: each label point belongs to exactly one tile, so it is placed once.
    let label_frame = frame.with_buffer(0);
    for (id, code, name, community, households, workers, geom, label) in rows {
        if let Some(g) = geom.geometry.as_ref().and_then(|g| frame.geometry(g)) {
            polygons.add(
                id,
                &g,
                vec![
                    ("code", Some(Prop::Str(code.clone()))),
                    ("name", Some(Prop::Str(name.clone()))),
                    ("community", text(community)),
                    ("households", Some(Prop::Int(i64::from(households)))),
                    ("balance", Some(balance(households))),
                    ("workers", Some(Prop::Int(i64::from(workers)))),
                ],
            );
        }
        if tile.z >= GRID_LABELS_MIN_ZOOM
            && let Some(p) = label.and_then(|l| l.geometry).as_ref().and_then(|g| label_frame.geometry(g))
        {
            labels.add(
                id,
                &p,
                vec![
                    ("code", Some(Prop::Str(code))),
                    ("name", Some(Prop::Str(name))),
                    ("households", Some(Prop::Int(i64::from(households)))),
                    ("balance", Some(balance(households))),
                ],
            );
        }
    }
    out.extend(polygons.finish());
    out.extend(labels.finish());
    Ok(())
}

async fn buildings(conn: &mut PgConnection, env: [f64; 4], frame: &TileFrame, out: &mut Vec<geozero::mvt::tile::Layer>) -> Result<(), sqlx::Error> {
    let sql = format!("select b.id, b.floors, b.households, b.use, b.geom_3857 from building b where b.geom_3857 && {ENVELOPE}");
    let rows: Vec<(i64, Option<i32>, i32, String, Geom)> = bind_env(sqlx::query_as(&sql), env).fetch_all(&mut *conn).await?;
    let mut layer = LayerBuilder::new("buildings");
    for (id, floors, households, use_, geom) in rows {
        if let Some(g) = geom.geometry.as_ref().and_then(|g| frame.geometry(g)) {
            layer.add(
                id,
                &g,
                vec![
                    ("floors", int(floors.map(i64::from))),
                    ("households", Some(Prop::Int(i64::from(households)))),
                    ("use", Some(Prop::Str(use_))),
                ],
            );
        }
    }
    out.extend(layer.finish());
    Ok(())
}

async fn stations(conn: &mut PgConnection, env: [f64; 4], frame: &TileFrame, out: &mut Vec<geozero::mvt::tile::Layer>) -> Result<(), sqlx::Error> {
    let sql = format!(
        "select s.id, s.name, array_to_string(s.services, ','), s.opening_hours, s.geom_3857
           from station s where s.geom_3857 && {ENVELOPE}"
    );
    let rows: Vec<(i64, String, String, String, Geom)> = bind_env(sqlx::query_as(&sql), env).fetch_all(&mut *conn).await?;
    let mut layer = LayerBuilder::new("stations");
    for (id, name, services, hours, geom) in rows {
        if let Some(g) = geom.geometry.as_ref().and_then(|g| frame.geometry(g)) {
            layer.add(
                id,
                &g,
                vec![("name", Some(Prop::Str(name))), ("services", Some(Prop::Str(services))), ("opening_hours", Some(Prop::Str(hours)))],
            );
        }
    }
    out.extend(layer.finish());
    Ok(())
}

async fn roads(conn: &mut PgConnection, env: [f64; 4], frame: &TileFrame, tile: TileCoord, out: &mut Vec<geozero::mvt::tile::Layer>) -> Result<(), sqlx::Error> {
    let alleys = if tile.z < ALLEYS_MIN_ZOOM { " and r.class <> 'alley'" } else { "" };
    let sql = format!("select r.id, r.name, r.class, r.geom_3857 from road r where r.geom_3857 && {ENVELOPE}{alleys}");
    let rows: Vec<(i64, Option<String>, String, Geom)> = bind_env(sqlx::query_as(&sql), env).fetch_all(&mut *conn).await?;
    let mut layer = LayerBuilder::new("roads");
    for (id, name, class, geom) in rows {
        if let Some(g) = geom.geometry.as_ref().and_then(|g| frame.geometry(g)) {
            layer.add(id, &g, vec![("name", text(name)), ("class", Some(Prop::Str(class)))]);
        }
    }
    out.extend(layer.finish());
    Ok(())
}

async fn reports(conn: &mut PgConnection, env: [f64; 4], frame: &TileFrame, out: &mut Vec<geozero::mvt::tile::Layer>) -> Result<(), sqlx::Error> {
    // Local time (UTC+8, no daylight saving) to the minute: what a resident reads.
    let sql = format!(
        r#"select r.id, r.category, r.status, r.grid_id,
                  to_char(r.created_at at time zone 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI"+08:00"'), r.geom_3857
             from report r
            where r.geom_3857 && {ENVELOPE} and r.status <> 'cancelled'
            order by r.created_at desc, r.id desc
            limit {REPORTS_PER_TILE}"#
    );
    let rows: Vec<(i64, String, String, Option<i64>, String, Geom)> = bind_env(sqlx::query_as(&sql), env).fetch_all(&mut *conn).await?;
    let mut layer = LayerBuilder::new("reports");
    for (id, category, status, grid_id, created_at, geom) in rows {
        if let Some(g) = geom.geometry.as_ref().and_then(|g| frame.geometry(g)) {
            layer.add(
                id,
                &g,
                vec![
                    ("category", Some(Prop::Str(category))),
                    ("status", Some(Prop::Str(status))),
                    ("grid_id", int(grid_id)),
                    ("created_at", Some(Prop::Str(created_at))),
                ],
            );
        }
    }
    out.extend(layer.finish());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_rounds_as_postgres_numeric() {
        assert_eq!(balance(300), Prop::Double(1.0));
        assert_eq!(balance(1), Prop::Double(0.003));
        assert_eq!(balance(2), Prop::Double(0.007));
        assert_eq!(balance(451), Prop::Double(1.503));
    }
}
