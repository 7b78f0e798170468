//! Render a tile from features in EPSG:3857: each layer's features come from the in-memory
//! [`FeatureStore`](crate::store::FeatureStore) (grids, buildings, stations, roads) or, for
//! reports, from PostgreSQL per tile; [`crate::encode`] cuts and encodes them. Same content,
//! properties and zoom rules as the `ST_AsMVT` statement ([`LayerSet::sql`], still used for the
//! benchmark's PostGIS floor and `--print-sql`).

use geo_types::Geometry;
use geozero::mvt::tile;
use geozero::wkb::Decode;
use sqlx::PgConnection;

use crate::encode::{LayerBuilder, Prop, TileFrame};
use crate::layer::{ALLEYS_MIN_ZOOM, GRID_LABELS_MIN_ZOOM, Layer, REPORTS_PER_TILE, SIMPLIFY_BELOW_ZOOM};
use crate::tile::{BUFFER, Bbox, EXTENT, TileCoord};

type Geom = Decode<Geometry<f64>>;

/// One row of a tile table, ready to cut into any tile.
#[derive(Debug, Clone)]
pub struct Feature {
    pub id: i64,
    /// EPSG:3857.
    pub geom: Geometry,
    /// A grid's label point (EPSG:3857).
    pub label: Option<Geometry>,
    /// In `ST_AsMVT` column order; `None` is left out of the tile.
    pub props: Vec<(&'static str, Option<Prop>)>,
}

impl Feature {
    fn prop(&self, key: &str) -> Option<&Prop> {
        self.props.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.as_ref())
    }
}

/// The frame a tile's features are cut with at its zoom.
pub fn frame(tile: TileCoord) -> TileFrame {
    // Half a screen pixel of a 512 px tile, as the SQL path's ST_Simplify tolerance.
    let simplify = (tile.z < SIMPLIFY_BELOW_ZOOM).then_some(f64::from(EXTENT) / 1024.0);
    TileFrame::new(tile, BUFFER, simplify)
}

/// The MVT layers `layer` contributes to `tile`, from its features that reach the buffered tile.
pub fn layers_of<'a>(
    layer: Layer,
    features: impl IntoIterator<Item = &'a Feature>,
    tile: TileCoord,
) -> Vec<tile::Layer> {
    let frame = frame(tile);
    let mut main = LayerBuilder::new(layer.name());
    let mut labels = LayerBuilder::new("grid_labels");
    // Buffer 0: each label point belongs to exactly one tile, so it is placed once.
    let label_frame = frame.with_buffer(0);
    let with_labels = layer == Layer::Grids && tile.z >= GRID_LABELS_MIN_ZOOM;
    for f in features {
        if layer == Layer::Roads
            && tile.z < ALLEYS_MIN_ZOOM
            && matches!(f.prop("class"), Some(Prop::Str(c)) if c == "alley")
        {
            continue;
        }
        if let Some(g) = frame.geometry(&f.geom) {
            main.add(f.id, &g, &f.props);
        }
        if with_labels && let Some(p) = f.label.as_ref().and_then(|l| label_frame.geometry(l)) {
            let props: Vec<_> = f
                .props
                .iter()
                .filter(|(k, _)| matches!(*k, "code" | "name" | "households" | "balance"))
                .cloned()
                .collect();
            labels.add(f.id, &p, &props);
        }
    }
    main.finish().into_iter().chain(labels.finish()).collect()
}

/// The `outlines` MVT layer of `tile` (below [`crate::layer::GRIDS_MIN_ZOOM`]), from
/// [`fetch_outlines`].
pub fn outline_layers(features: &[Feature], tile: TileCoord) -> Vec<tile::Layer> {
    let frame = frame(tile);
    let mut outlines = LayerBuilder::new("outlines");
    for f in features {
        if let Some(g) = frame.geometry(&f.geom) {
            outlines.add(f.id, &g, &f.props);
        }
    }
    outlines.finish().into_iter().collect()
}

type OutlineRow = (i64, Option<String>, Option<String>, i32, i32, i32, f64, f64, Geom);

/// The generalised outlines of `level` (`county`, `subdistrict` or `community`, migration 0029)
/// whose box meets `within` (EPSG:3857), with their names and aggregates. Read per tile: there
/// are few of them, and a cached tile is only re-rendered after a change there.
pub async fn fetch_outlines(
    conn: &mut PgConnection,
    level: &'static str,
    within: Bbox,
) -> Result<Vec<Feature>, sqlx::Error> {
    // `level` is one of outline_level's three names, which are also the tables of the names.
    let sql = format!(
        "select o.key, n.code, n.name, o.grids, o.households, o.workers, o.balance_min, o.balance_max, o.geom_3857
           from outline o left join {level} n on n.id = o.key
          where o.level = '{level}' and o.geom_3857 && {ENVELOPE}"
    );
    let rows: Vec<OutlineRow> = bind_env(sqlx::query_as(&sql), within).fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, code, name, grids, households, workers, balance_min, balance_max, geom)| {
            let props = vec![
                ("level", Some(Prop::Str(level.to_string()))),
                ("code", text(code)),
                ("name", text(name)),
                ("grids", Some(Prop::Int(i64::from(grids)))),
                ("households", Some(Prop::Int(i64::from(households)))),
                ("workers", Some(Prop::Int(i64::from(workers)))),
                ("balance_min", Some(Prop::Double(balance_min))),
                ("balance_max", Some(Prop::Double(balance_max))),
            ];
            feature(id, geom, props)
        })
        .collect())
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
    b: Bbox,
) -> sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(b.min_x).bind(b.min_y).bind(b.max_x).bind(b.max_y)
}

/// The features of `layer` whose geometry's box meets `within` (EPSG:3857), all of them for
/// `None`. Reports are newest first and at most [`REPORTS_PER_TILE`], cancelled ones left out.
pub async fn fetch(conn: &mut PgConnection, layer: Layer, within: Option<Bbox>) -> Result<Vec<Feature>, sqlx::Error> {
    // The whole Web Mercator square and more: every row.
    let b = within.unwrap_or(Bbox::new(-1e9, -1e9, 1e9, 1e9));
    Ok(match layer {
        Layer::Grids => grids(conn, b).await?,
        Layer::Buildings => buildings(conn, b).await?,
        Layer::Stations => stations(conn, b).await?,
        Layer::Roads => roads(conn, b).await?,
        Layer::Reports => reports(conn, b).await?,
    })
}

fn feature(id: i64, geom: Geom, props: Vec<(&'static str, Option<Prop>)>) -> Option<Feature> {
    geom.geometry.map(|geom| Feature { id, geom, label: None, props })
}

type GridRow = (i64, String, String, Option<String>, i32, i32, Geom, Option<Geom>);

async fn grids(conn: &mut PgConnection, b: Bbox) -> Result<Vec<Feature>, sqlx::Error> {
    let sql = format!(
        "select g.id, g.code, g.name, c.name, g.households,
                (select count(*) from grid_assignment a where a.grid_id = g.id)::int4,
                g.geom_3857, g.label_3857
           from grid g left join community c on c.id = g.community_id
          where g.geom_3857 && {ENVELOPE}"
    );
    let rows: Vec<GridRow> = bind_env(sqlx::query_as(&sql), b).fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, code, name, community, households, workers, geom, label)| {
            let props = vec![
                ("code", Some(Prop::Str(code))),
                ("name", Some(Prop::Str(name))),
                ("community", text(community)),
                ("households", Some(Prop::Int(i64::from(households)))),
                ("balance", Some(balance(households))),
                ("workers", Some(Prop::Int(i64::from(workers)))),
            ];
            let label = label.and_then(|l| l.geometry);
            feature(id, geom, props).map(|f| Feature { label, ..f })
        })
        .collect())
}

async fn buildings(conn: &mut PgConnection, b: Bbox) -> Result<Vec<Feature>, sqlx::Error> {
    let sql = format!(
        "select b.id, b.floors, b.households, b.use, b.geom_3857 from building b where b.geom_3857 && {ENVELOPE}"
    );
    let rows: Vec<(i64, Option<i32>, i32, String, Geom)> =
        bind_env(sqlx::query_as(&sql), b).fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, floors, households, use_, geom)| {
            let props = vec![
                ("floors", int(floors.map(i64::from))),
                ("households", Some(Prop::Int(i64::from(households)))),
                ("use", Some(Prop::Str(use_))),
            ];
            feature(id, geom, props)
        })
        .collect())
}

async fn stations(conn: &mut PgConnection, b: Bbox) -> Result<Vec<Feature>, sqlx::Error> {
    let sql = format!(
        "select s.id, s.name, array_to_string(s.services, ','), s.opening_hours, s.geom_3857
           from station s where s.geom_3857 && {ENVELOPE}"
    );
    let rows: Vec<(i64, String, String, String, Geom)> =
        bind_env(sqlx::query_as(&sql), b).fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, name, services, hours, geom)| {
            let props = vec![
                ("name", Some(Prop::Str(name))),
                ("services", Some(Prop::Str(services))),
                ("opening_hours", Some(Prop::Str(hours))),
            ];
            feature(id, geom, props)
        })
        .collect())
}

async fn roads(conn: &mut PgConnection, b: Bbox) -> Result<Vec<Feature>, sqlx::Error> {
    let sql = format!("select r.id, r.name, r.class, r.geom_3857 from road r where r.geom_3857 && {ENVELOPE}");
    let rows: Vec<(i64, Option<String>, String, Geom)> =
        bind_env(sqlx::query_as(&sql), b).fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, name, class, geom)| {
            feature(id, geom, vec![("name", text(name)), ("class", Some(Prop::Str(class)))])
        })
        .collect())
}

async fn reports(conn: &mut PgConnection, b: Bbox) -> Result<Vec<Feature>, sqlx::Error> {
    // Local time (UTC+8, no daylight saving) to the minute: what a resident reads.
    let sql = format!(
        r#"select r.id, r.category, r.status, r.grid_id,
                  to_char(r.created_at at time zone 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI"+08:00"'), r.geom_3857
             from report r
            where r.geom_3857 && {ENVELOPE} and r.status <> 'cancelled'
            order by r.created_at desc, r.id desc
            limit {REPORTS_PER_TILE}"#
    );
    let rows: Vec<(i64, String, String, Option<i64>, String, Geom)> =
        bind_env(sqlx::query_as(&sql), b).fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, category, status, grid_id, created_at, geom)| {
            let props = vec![
                ("category", Some(Prop::Str(category))),
                ("status", Some(Prop::Str(status))),
                ("grid_id", int(grid_id)),
                ("created_at", Some(Prop::Str(created_at))),
            ];
            feature(id, geom, props)
        })
        .collect())
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
