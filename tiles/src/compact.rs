//! Compact, immutable blocks of in-memory tile features ([`Chunk`]), as the
//! [`FeatureStore`](crate::store::FeatureStore) holds them: a province's 1.4 M buildings as a
//! few flat arrays instead of 1.4 M `geo` geometries, property vectors and strings.
//!
//! - Coordinates stay the database's `f64` EPSG:3857 values (a tile cut from memory must equal
//!   the `ST_AsMVT` reference to the unit at every zoom), in one array per chunk, with the ring
//!   and part structure as end offsets.
//! - Property values are interned per column: a building's `use` is one of five strings, its
//!   floors and households a few hundred numbers; each feature holds one `u32` per column.
//! - Rows are decoded straight from the EWKB PostgreSQL sends into these arrays, row by row as
//!   they stream in (no `Vec<PgRow>`, no intermediate geometry).
//!
//! A feature is turned back into a [`Feature`] (what the encoder cuts) only when a tile needs it.

use std::collections::HashMap;

use geo_types::{Coord, Geometry};
#[cfg(test)]
use geo_types::{LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use rstar::AABB;

use crate::encode::Prop;
#[cfg(test)]
use crate::render::Feature;
use crate::schema::{Kind, MvtLayer};

/// A column value absent from the row (SQL null): left out of the tile.
const NULL: u32 = u32::MAX;

/// The geometry type of a feature, as its EWKB says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Point,
    LineString,
    Polygon,
    MultiPoint,
    MultiLineString,
    MultiPolygon,
}

/// Features of one layer, read together (a load, or one refresh): never changed afterwards.
#[derive(Debug, Default)]
pub struct Chunk {
    ids: Vec<i64>,
    shapes: Vec<Shape>,
    /// Per feature, the end of its parts in `part_ends` (a point, a line, a polygon each).
    feature_ends: Vec<u32>,
    /// Per part, the end of its rings in `ring_ends` (a point and a line are one ring).
    part_ends: Vec<u32>,
    /// Per ring, the end of its coordinates in `coords`.
    ring_ends: Vec<u32>,
    coords: Vec<Coord<f64>>,
    /// `columns` indexes per feature into `values` (or [`NULL`]).
    props: Vec<u32>,
    columns: usize,
    /// Per column, its distinct values.
    values: Vec<Vec<Prop>>,
}

impl Chunk {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn id(&self, i: usize) -> i64 {
        self.ids[i]
    }

    fn parts(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.feature_ends[i - 1] as usize };
        start..self.feature_ends[i] as usize
    }

    fn rings(&self, part: usize) -> std::ops::Range<usize> {
        let start = if part == 0 { 0 } else { self.part_ends[part - 1] as usize };
        start..self.part_ends[part] as usize
    }

    fn ring(&self, ring: usize) -> &[Coord<f64>] {
        let start = if ring == 0 { 0 } else { self.ring_ends[ring - 1] as usize };
        &self.coords[start..self.ring_ends[ring] as usize]
    }

    #[cfg(test)]
    fn line(&self, part: usize) -> LineString {
        LineString(self.rings(part).flat_map(|r| self.ring(r).iter().copied()).collect())
    }

    #[cfg(test)]
    fn polygon(&self, part: usize) -> Polygon {
        let mut rings = self.rings(part).map(|r| LineString(self.ring(r).to_vec()));
        let exterior = rings.next().unwrap_or_else(|| LineString(Vec::new()));
        Polygon::new(exterior, rings.collect())
    }

    #[cfg(test)]
    fn point(&self, part: usize) -> Point {
        Point(
            self.rings(part)
                .next()
                .and_then(|r| self.ring(r).first().copied())
                .unwrap_or(Coord { x: f64::NAN, y: f64::NAN }),
        )
    }

    /// Feature `i` as a [`Feature`] of its own: the same geometry type, coordinates and
    /// properties the row decodes to (tiles cut [`View`]s instead).
    #[cfg(test)]
    pub fn feature(&self, i: usize, layer: &MvtLayer) -> Feature {
        let parts = self.parts(i);
        let geom = match self.shapes[i] {
            Shape::Point => Geometry::Point(self.point(parts.start)),
            Shape::LineString => Geometry::LineString(self.line(parts.start)),
            Shape::Polygon => Geometry::Polygon(self.polygon(parts.start)),
            Shape::MultiPoint => Geometry::MultiPoint(MultiPoint(parts.map(|p| self.point(p)).collect())),
            Shape::MultiLineString => Geometry::MultiLineString(MultiLineString(parts.map(|p| self.line(p)).collect())),
            Shape::MultiPolygon => Geometry::MultiPolygon(MultiPolygon(parts.map(|p| self.polygon(p)).collect())),
        };
        let props = &self.props[i * self.columns..(i + 1) * self.columns];
        let props = layer
            .columns
            .iter()
            .zip(props)
            .enumerate()
            .map(|(c, (column, &v))| (column.name, (v != NULL).then(|| self.values[c][v as usize].clone())))
            .collect();
        Feature { id: self.ids[i], geom, props }
    }

    /// Feature `i` as the tile cutter reads it, borrowing this chunk ([`View`]).
    pub fn view<'a>(&'a self, i: usize, layer: &'static MvtLayer) -> View<'a> {
        View { chunk: self, i, layer }
    }

    /// Bytes held (for the log line after a load).
    pub fn heap_bytes(&self) -> usize {
        self.ids.capacity() * 8
            + self.shapes.capacity()
            + (self.feature_ends.capacity() + self.part_ends.capacity() + self.ring_ends.capacity()) * 4
            + self.coords.capacity() * 16
            + self.props.capacity() * 4
    }
}

/// A feature of a [`Chunk`] cut into a tile straight from the chunk's arrays: the frame reads
/// its rings as slices and the encoder its interned values by reference, so a tile allocates
/// nothing per feature beyond what cutting it makes (see [`crate::render::Cut`]).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    chunk: &'a Chunk,
    i: usize,
    layer: &'static MvtLayer,
}

impl<'a> View<'a> {
    fn value(&self, column: usize) -> Option<&'a Prop> {
        let c = self.chunk;
        let v = c.props[self.i * c.columns + column];
        (v != NULL).then(|| &c.values[column][v as usize])
    }

    /// Each part's rings (one for a point or a line), as slices of the chunk's coordinates.
    fn rings_of(&self, part: usize) -> impl Iterator<Item = &'a [Coord<f64>]> {
        let c = self.chunk;
        c.rings(part).map(move |r| c.ring(r))
    }
}

impl crate::render::Cut for View<'_> {
    fn id(&self) -> i64 {
        self.chunk.ids[self.i]
    }

    fn geometry_in(&self, frame: &crate::encode::TileFrame) -> Option<Geometry> {
        let parts = self.chunk.parts(self.i);
        match self.chunk.shapes[self.i] {
            Shape::Point | Shape::MultiPoint => {
                frame.points(parts.filter_map(|p| self.rings_of(p).next().and_then(|r| r.first().copied())))
            }
            Shape::LineString | Shape::MultiLineString => frame.lines(parts.flat_map(|p| self.rings_of(p))),
            Shape::Polygon | Shape::MultiPolygon => frame.polygons(parts.map(|p| self.rings_of(p))),
        }
    }

    fn prop(&self, key: &str) -> Option<&Prop> {
        let column = self.layer.columns.iter().position(|c| c.name == key)?;
        self.value(column)
    }

    fn props(&self) -> impl Iterator<Item = (&'static str, Option<&Prop>)> {
        self.layer.columns.iter().enumerate().map(|(c, column)| (column.name, self.value(c)))
    }
}

/// A value as a map key (doubles by their bits: equal bits, equal value in the tile).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Str(String),
    Int(i64),
    Double(u64),
}

/// Builds a [`Chunk`] row by row.
#[derive(Debug)]
pub struct ChunkBuilder {
    chunk: Chunk,
    interned: Vec<HashMap<Key, u32>>,
}

/// One column value of a row being added.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    Double(f64),
}

impl ChunkBuilder {
    pub fn new(layer: &MvtLayer) -> Self {
        let columns = layer.columns.len();
        Self {
            chunk: Chunk { columns, values: vec![Vec::new(); columns], ..Chunk::default() },
            interned: vec![HashMap::new(); columns],
        }
    }

    pub fn len(&self) -> usize {
        self.chunk.len()
    }

    fn intern(&mut self, column: usize, value: Value<'_>) -> u32 {
        let key = match value {
            Value::Null => return NULL,
            Value::Str(s) => Key::Str(s.to_owned()),
            Value::Int(n) => Key::Int(n),
            Value::Double(d) => Key::Double(d.to_bits()),
        };
        let values = &mut self.chunk.values[column];
        *self.interned[column].entry(key).or_insert_with(|| {
            values.push(match value {
                Value::Str(s) => Prop::Str(s.to_owned()),
                Value::Int(n) => Prop::Int(n),
                Value::Double(d) => Prop::Double(d),
                Value::Null => unreachable!("returned above"),
            });
            (values.len() - 1) as u32
        })
    }

    /// Looks a string up before allocating a key (most values repeat).
    fn intern_str(&mut self, column: usize, s: &str) -> u32 {
        // HashMap<Key, _> cannot be probed with a &str; a short linear probe over few values
        // is cheaper than an allocation, and columns with many values go through the map.
        let values = &self.chunk.values[column];
        if values.len() <= 16
            && let Some(i) = values.iter().position(|v| matches!(v, Prop::Str(x) if x == s))
        {
            return i as u32;
        }
        self.intern(column, Value::Str(s))
    }

    /// Add a row: its id, column values in the definition's order, and EWKB geometry. Returns
    /// the feature's box, or `None` (and adds nothing) for a geometry that draws nothing
    /// (empty, or a type the tables do not hold).
    pub fn push(&mut self, id: i64, values: &[Value<'_>], ewkb: &[u8]) -> Option<AABB<[f64; 2]>> {
        let c = &mut self.chunk;
        let (parts, rings, coords) = (c.part_ends.len(), c.ring_ends.len(), c.coords.len());
        let shape = match Wkb::new(ewkb).geometry(c) {
            Some(shape) if c.coords.len() > coords => shape,
            _ => {
                c.part_ends.truncate(parts);
                c.ring_ends.truncate(rings);
                c.coords.truncate(coords);
                return None;
            }
        };
        let mut min = [f64::INFINITY; 2];
        let mut max = [f64::NEG_INFINITY; 2];
        for p in &c.coords[coords..] {
            min = [min[0].min(p.x), min[1].min(p.y)];
            max = [max[0].max(p.x), max[1].max(p.y)];
        }
        c.ids.push(id);
        c.shapes.push(shape);
        c.feature_ends.push(c.part_ends.len() as u32);
        for (i, v) in values.iter().enumerate() {
            let index = match v {
                Value::Str(s) => self.intern_str(i, s),
                other => self.intern(i, *other),
            };
            self.chunk.props.push(index);
        }
        Some(AABB::from_corners(min, max))
    }

    /// Copy feature `i` of `from` (a chunk of the same layer) into this one.
    pub fn copy(&mut self, from: &Chunk, i: usize) {
        let c = &mut self.chunk;
        for part in from.parts(i) {
            for ring in from.rings(part) {
                c.coords.extend_from_slice(from.ring(ring));
                c.ring_ends.push(c.coords.len() as u32);
            }
            c.part_ends.push(c.ring_ends.len() as u32);
        }
        c.ids.push(from.ids[i]);
        c.shapes.push(from.shapes[i]);
        c.feature_ends.push(c.part_ends.len() as u32);
        for (col, &v) in from.props[i * from.columns..(i + 1) * from.columns].iter().enumerate() {
            let value = match (v != NULL).then(|| &from.values[col][v as usize]) {
                None => Value::Null,
                Some(Prop::Str(s)) => Value::Str(s),
                Some(Prop::Int(n)) => Value::Int(*n),
                Some(Prop::Double(d)) => Value::Double(*d),
            };
            let index = match value {
                Value::Str(s) => self.intern_str(col, s),
                other => self.intern(col, other),
            };
            self.chunk.props.push(index);
        }
    }

    pub fn finish(mut self) -> Chunk {
        let c = &mut self.chunk;
        c.ids.shrink_to_fit();
        c.shapes.shrink_to_fit();
        c.feature_ends.shrink_to_fit();
        c.part_ends.shrink_to_fit();
        c.ring_ends.shrink_to_fit();
        c.coords.shrink_to_fit();
        c.props.shrink_to_fit();
        self.chunk
    }
}

/// The values of `layer`'s columns in a row of [`MvtLayer::select_sql`] (column `i + 1`).
pub fn row_values<'r>(layer: &MvtLayer, row: &'r sqlx::postgres::PgRow) -> Result<Vec<Value<'r>>, sqlx::Error> {
    use sqlx::Row as _;
    layer
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(match c.kind {
                Kind::Int => row.try_get::<Option<i64>, _>(i + 1)?.map_or(Value::Null, Value::Int),
                Kind::Double => row.try_get::<Option<f64>, _>(i + 1)?.map_or(Value::Null, Value::Double),
                Kind::Text => row.try_get::<Option<&str>, _>(i + 1)?.map_or(Value::Null, Value::Str),
            })
        })
        .collect()
}

/// A reader of PostGIS EWKB (and ISO/OGC WKB), 2D; Z and M are skipped as the tiles ignore them.
struct Wkb<'a> {
    bytes: &'a [u8],
    at: usize,
    little: bool,
}

impl<'a> Wkb<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0, little: true }
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.bytes.get(self.at..self.at + N)?;
        self.at += N;
        b.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take::<4>()?;
        Some(if self.little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }

    fn f64(&mut self) -> Option<f64> {
        let b = self.take::<8>()?;
        Some(if self.little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    }

    /// Byte order and type: the base type (1–7) and the number of ordinates.
    fn header(&mut self) -> Option<(u32, usize)> {
        let [order] = self.take::<1>()?;
        self.little = order == 1;
        let t = self.u32()?;
        if t & 0x2000_0000 != 0 {
            self.u32()?; // SRID
        }
        let iso = (t & 0xFFFF) / 1000;
        let z = t & 0x8000_0000 != 0 || iso == 1 || iso == 3;
        let m = t & 0x4000_0000 != 0 || iso == 2 || iso == 3;
        Some(((t & 0xFFFF) % 1000, 2 + usize::from(z) + usize::from(m)))
    }

    fn coords(&mut self, dims: usize, n: usize, out: &mut Chunk) -> Option<()> {
        // No more points than bytes left: a broken count must not reserve gigabytes.
        out.coords.reserve(n.min(self.bytes.len() / 16));
        for _ in 0..n {
            let c = Coord { x: self.f64()?, y: self.f64()? };
            for _ in 2..dims {
                self.f64()?;
            }
            out.coords.push(c);
        }
        out.ring_ends.push(out.coords.len() as u32);
        Some(())
    }

    /// One part of `base` type (point, line or polygon) after its header.
    fn part(&mut self, base: u32, dims: usize, out: &mut Chunk) -> Option<()> {
        match base {
            1 => {
                let start = out.coords.len();
                self.coords(dims, 1, out)?;
                // An empty point (NaN, NaN) draws nothing.
                if out.coords[start].x.is_nan() {
                    out.coords.truncate(start);
                    out.ring_ends.pop();
                    return None;
                }
            }
            2 => {
                let n = self.u32()? as usize;
                self.coords(dims, n, out)?;
            }
            3 => {
                for _ in 0..self.u32()? {
                    let n = self.u32()? as usize;
                    self.coords(dims, n, out)?;
                }
            }
            _ => return None,
        }
        out.part_ends.push(out.ring_ends.len() as u32);
        Some(())
    }

    fn geometry(&mut self, out: &mut Chunk) -> Option<Shape> {
        let (base, dims) = self.header()?;
        match base {
            1..=3 => {
                self.part(base, dims, out)?;
                Some([Shape::Point, Shape::LineString, Shape::Polygon][base as usize - 1])
            }
            4..=6 => {
                for _ in 0..self.u32()? {
                    let (sub, dims) = self.header()?;
                    if sub != base - 3 {
                        return None;
                    }
                    self.part(sub, dims, out)?;
                }
                Some([Shape::MultiPoint, Shape::MultiLineString, Shape::MultiPolygon][base as usize - 4])
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use geozero::ToWkb as _;

    use super::*;
    use crate::schema::MVT_LAYERS;

    fn layer(name: &str) -> &'static MvtLayer {
        MVT_LAYERS.iter().find(|m| m.name == name).expect("a layer")
    }

    fn ewkb(g: &Geometry) -> Vec<u8> {
        g.to_ewkb(geozero::CoordDimensions::xy(), Some(3857)).expect("ewkb")
    }

    #[test]
    fn features_come_back_as_the_geometry_and_values_they_went_in_as() {
        let square = |x: f64| {
            Polygon::new(
                LineString::from(vec![(x, 0.5), (x + 10.25, 0.5), (x + 10.25, 7.125), (x, 7.125), (x, 0.5)]),
                vec![LineString::from(vec![(x + 1.0, 1.0), (x + 2.0, 1.0), (x + 2.0, 2.0), (x + 1.0, 1.0)])],
            )
        };
        let buildings = layer("buildings");
        let mut b = ChunkBuilder::new(buildings);
        let geoms = [
            Geometry::MultiPolygon(MultiPolygon(vec![square(1_234_567.891), square(1_234_600.0)])),
            Geometry::Polygon(square(-5.0)),
            Geometry::Point(Point::new(13_000_000.123_456_79, 4_300_000.987_654_321)),
            Geometry::MultiLineString(MultiLineString(vec![
                LineString::from(vec![(0.0, 0.0), (1.0, 1.0)]),
                LineString::from(vec![(2.0, 2.0), (3.0, 3.0), (4.0, 2.0)]),
            ])),
            Geometry::LineString(LineString::from(vec![(9.0, 9.0), (8.0, 7.0)])),
            Geometry::MultiPoint(MultiPoint(vec![Point::new(1.0, 2.0), Point::new(3.0, 4.0)])),
        ];
        let uses = ["residential", "public", "residential", "commercial", "residential", "x"];
        for (i, g) in geoms.iter().enumerate() {
            let values = [Value::Int(i as i64 % 2), Value::Null, Value::Str(uses[i])];
            assert!(b.push(100 + i as i64, &values, &ewkb(g)).is_some());
        }
        // Nothing to draw: an empty polygon, a collection, bytes cut short.
        let empty = Geometry::MultiPolygon(MultiPolygon(vec![]));
        assert!(b.push(1, &[Value::Null; 3], &ewkb(&empty)).is_none());
        let bytes = ewkb(&geoms[0]);
        assert!(b.push(2, &[Value::Null; 3], &bytes[..bytes.len() - 3]).is_none());
        let chunk = b.finish();
        assert_eq!(chunk.len(), geoms.len());
        // Interned: two distinct floors, four distinct uses.
        assert_eq!((chunk.values[0].len(), chunk.values[2].len()), (2, 4));
        let mut copied = ChunkBuilder::new(buildings);
        for i in (0..chunk.len()).rev() {
            copied.copy(&chunk, i);
        }
        let copied = copied.finish();
        for (i, g) in geoms.iter().enumerate() {
            for (f, what) in
                [(chunk.feature(i, buildings), "read"), (copied.feature(geoms.len() - 1 - i, buildings), "copied")]
            {
                assert_eq!(f.id, 100 + i as i64, "{what}");
                assert_eq!(&f.geom, g, "{what}");
                assert_eq!(
                    f.props,
                    vec![
                        ("floors", Some(Prop::Int(i as i64 % 2))),
                        ("households", None),
                        ("use", Some(Prop::Str(uses[i].to_string())))
                    ],
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn the_box_is_that_of_every_coordinate() {
        let mut b = ChunkBuilder::new(layer("stations"));
        let line = Geometry::LineString(LineString::from(vec![(3.0, -1.0), (-2.0, 4.0), (1.0, 9.5)]));
        let values = vec![Value::Null; layer("stations").columns.len()];
        let aabb = b.push(1, &values, &ewkb(&line)).expect("a box");
        assert_eq!((aabb.lower(), aabb.upper()), ([-2.0, -1.0], [3.0, 9.5]));
    }
}
