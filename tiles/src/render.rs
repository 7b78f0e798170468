//! Render a tile from features in EPSG:3857: each MVT layer's features come from the in-memory
//! [`FeatureStore`](crate::store::FeatureStore) or, for per-tile layers (reports, outlines), from
//! PostgreSQL; [`crate::encode`] cuts and encodes them. The rows are read with the SELECT its
//! definition derives ([`MvtLayer::select_sql`]), the same columns and filters as the
//! `ST_AsMVT` reference statement ([`crate::LayerSet::sql`]).

use geo_types::Geometry;
use geozero::mvt::tile;
use geozero::wkb::Decode;
use sqlx::{PgConnection, Row as _};

use crate::encode::{LayerBuilder, Prop, TileFrame};
use crate::layer::SIMPLIFY_BELOW_ZOOM;
use crate::schema::{Kind, MvtLayer, Source};
use crate::tile::{Bbox, EXTENT, TileCoord};

type Geom = Decode<Geometry<f64>>;

/// One row of a tile table, ready to cut into any tile.
#[derive(Debug, Clone)]
pub struct Feature {
    pub id: i64,
    /// EPSG:3857.
    pub geom: Geometry,
    /// In the definition's column order; `None` is left out of the tile.
    pub props: Vec<(&'static str, Option<Prop>)>,
}

/// What [`cut`] needs of a feature: its id, its geometry cut by a tile's frame, and its
/// properties. A [`Feature`] read per tile is one; so is a feature of the in-memory store
/// ([`crate::compact::View`]), cut straight from its flat arrays without copying each ring and
/// text value into a [`Feature`] first. Measured at ×10 (`bench/tiles.sh demo10`, 2026-12-07,
/// bench/RESULTS.md): cold tiles from the compact store this way, 3,055 tiles/s, against
/// 3,125–3,270 from the store of `geo` geometries it replaced (b6ddecc), within noise.
pub trait Cut {
    fn id(&self) -> i64;
    fn geometry_in(&self, frame: &TileFrame) -> Option<Geometry>;
    fn prop(&self, key: &str) -> Option<&Prop>;
    /// In the definition's column order; `None` is left out of the tile.
    fn props(&self) -> impl Iterator<Item = (&'static str, Option<&Prop>)>;
}

impl Cut for &Feature {
    fn id(&self) -> i64 {
        self.id
    }

    fn geometry_in(&self, frame: &TileFrame) -> Option<Geometry> {
        frame.geometry(&self.geom)
    }

    fn prop(&self, key: &str) -> Option<&Prop> {
        self.props.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.as_ref())
    }

    fn props(&self) -> impl Iterator<Item = (&'static str, Option<&Prop>)> {
        self.props.iter().map(|(k, v)| (*k, v.as_ref()))
    }
}

/// The frame a tile's features of `layer` are cut with at its zoom.
pub fn frame(layer: &MvtLayer, tile: TileCoord) -> TileFrame {
    // Half a screen pixel of a 512 px tile, as the SQL path's ST_Simplify tolerance.
    let simplify = (layer.simplify && tile.z < SIMPLIFY_BELOW_ZOOM).then_some(f64::from(EXTENT) / 1024.0);
    TileFrame::new(tile, layer.buffer, simplify)
}

/// The MVT layer `layer` of `tile`, from its features that reach the buffered tile (`None`
/// when none is left in it).
pub fn cut<F: Cut>(layer: &MvtLayer, features: impl IntoIterator<Item = F>, tile: TileCoord) -> Option<tile::Layer> {
    let frame = frame(layer, tile);
    let hide = layer.hide_below.filter(|h| tile.z < h.zoom);
    let mut out = LayerBuilder::new(layer.name);
    for f in features {
        if let Some(h) = hide
            && matches!(f.prop(h.column), Some(Prop::Str(v)) if v == h.value)
        {
            continue;
        }
        if let Some(g) = f.geometry_in(&frame) {
            out.add(f.id(), &g, f.props());
        }
    }
    out.finish()
}

/// The features of `layer` from `source` whose geometry's box meets `within` (EPSG:3857), all
/// of them for `None`. Per-tile layers with [`crate::schema::Newest`] give their newest rows.
pub async fn fetch(
    conn: &mut PgConnection,
    layer: &MvtLayer,
    source: &Source,
    within: Option<Bbox>,
) -> Result<Vec<Feature>, sqlx::Error> {
    // The whole Web Mercator square and more: every row.
    let b = within.unwrap_or(Bbox::new(-1e9, -1e9, 1e9, 1e9));
    let sql = layer.select_sql(source);
    let rows = sqlx::query(&sql).bind(b.min_x).bind(b.min_y).bind(b.max_x).bind(b.max_y).fetch_all(&mut *conn).await?;
    let geom_at = layer.columns.len() + 1;
    let mut features = Vec::with_capacity(rows.len());
    for row in rows {
        let mut props = Vec::with_capacity(layer.columns.len());
        for (i, c) in layer.columns.iter().enumerate() {
            let value = match c.kind {
                Kind::Int => row.try_get::<Option<i64>, _>(i + 1)?.map(Prop::Int),
                Kind::Double => row.try_get::<Option<f64>, _>(i + 1)?.map(Prop::Double),
                Kind::Text => row.try_get::<Option<String>, _>(i + 1)?.map(Prop::Str),
            };
            props.push((c.name, value));
        }
        // A null geometry (a grid without a label point) draws nothing.
        let geom: Option<Geom> = row.try_get(geom_at)?;
        if let Some(geom) = geom.and_then(|g| g.geometry) {
            features.push(Feature { id: row.try_get(0)?, geom, props });
        }
    }
    Ok(features)
}
