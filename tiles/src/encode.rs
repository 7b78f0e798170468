//! MVT encoding in Rust: features in EPSG:3857 → tile coordinates (transform, simplify, clip to
//! the buffered tile, snap to the 4096 grid, drop what collapsed, wind rings as MVT 2.1 wants)
//! → geozero's MVT geometry commands and prost `Tile`.
//!
//! Why not `ST_AsMVT` in PostgreSQL: on these machines the database's CPU is the bottleneck of a
//! cold tile, and `ST_AsMVTGeom` on every building was most of it. PostgreSQL now only finds the
//! rows (an index scan) and this module does the geometry work on the server's side. The output
//! follows `ST_AsMVTGeom` (same extent, buffer, simplification tolerance and clip box) and
//! `ST_AsMVT` (feature id from `id`, null properties left out, integers as uint/sint).

use geo::Simplify;
use geo_types::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use geozero::mvt::{Message, MvtWriter, Tile, tile};
use geozero::{ColumnValue, FeatureProcessor, GeozeroGeometry, PropertyProcessor};

use crate::tile::{EXTENT, TileCoord};

/// Where a tile sits in EPSG:3857 and how its features are cut.
#[derive(Debug, Clone, Copy)]
pub struct TileFrame {
    min_x: f64,
    max_y: f64,
    /// Tile units per metre.
    scale: f64,
    /// The clip box in tile units: `-buffer ..= EXTENT + buffer`.
    lo: f64,
    hi: f64,
    /// Douglas–Peucker tolerance in tile units, when this zoom simplifies.
    simplify: Option<f64>,
}

impl TileFrame {
    /// The frame of `tile` with `buffer` tile units around it; `simplify` in tile units.
    pub fn new(tile: TileCoord, buffer: u32, simplify: Option<f64>) -> Self {
        let b = tile.bounds();
        let extent = f64::from(EXTENT);
        Self {
            min_x: b.min_x,
            max_y: b.max_y,
            scale: extent / (b.max_x - b.min_x),
            lo: -f64::from(buffer),
            hi: extent + f64::from(buffer),
            simplify,
        }
    }

    /// The same tile with another buffer (label points use none: each is in exactly one tile).
    #[must_use]
    pub fn with_buffer(self, buffer: u32) -> Self {
        Self { lo: -f64::from(buffer), hi: f64::from(EXTENT) + f64::from(buffer), ..self }
    }

    fn project(&self, c: Coord) -> Coord {
        Coord { x: (c.x - self.min_x) * self.scale, y: (self.max_y - c.y) * self.scale }
    }

    fn inside(&self, c: Coord) -> bool {
        (self.lo..=self.hi).contains(&c.x) && (self.lo..=self.hi).contains(&c.y)
    }

    /// The geometry in tile units, ready to encode; `None` when nothing of it is left in the tile.
    pub fn geometry(&self, geom: &Geometry) -> Option<Geometry> {
        match geom {
            Geometry::Point(p) => self.points([p.0]),
            Geometry::MultiPoint(mp) => self.points(mp.0.iter().map(|p| p.0)),
            Geometry::LineString(l) => self.lines([l.0.as_slice()]),
            Geometry::MultiLineString(ml) => self.lines(ml.0.iter().map(|l| l.0.as_slice())),
            Geometry::Polygon(p) => self.polygons([rings_of(p)]),
            Geometry::MultiPolygon(mp) => self.polygons(mp.0.iter().map(rings_of)),
            // The tables hold points, lines and polygons only (typed geometry columns).
            _ => None,
        }
    }

    /// Points (EPSG:3857) in tile units: a point, several, or `None` when none is in the tile.
    pub fn points(&self, points: impl IntoIterator<Item = Coord>) -> Option<Geometry> {
        let mut kept: Vec<Point> =
            points.into_iter().map(|c| self.project(c)).filter(|c| self.inside(*c)).map(|c| Point(snap(c))).collect();
        match kept.len() {
            0 => None,
            1 => kept.pop().map(Geometry::Point),
            _ => Some(Geometry::MultiPoint(MultiPoint(kept))),
        }
    }

    /// Lines given as their coordinates (EPSG:3857), clipped into pieces in tile units. The
    /// in-memory store passes slices of its flat arrays: no `geo` geometry is built first.
    pub fn lines<'a>(&self, lines: impl IntoIterator<Item = &'a [Coord]>) -> Option<Geometry> {
        let mut out = Vec::new();
        for line in lines {
            let line = self.simplified(LineString(line.iter().map(|c| self.project(*c)).collect()));
            for piece in clip_line(&line.0, self.lo, self.hi) {
                let piece = snap_dedup(&piece);
                if piece.len() >= 2 {
                    out.push(LineString(piece));
                }
            }
        }
        match out.len() {
            0 => None,
            1 => out.pop().map(Geometry::LineString),
            _ => Some(Geometry::MultiLineString(MultiLineString(out))),
        }
    }

    /// Polygons given as their rings' coordinates (EPSG:3857; the exterior first, then the
    /// holes), as [`Self::lines`] takes lines.
    pub fn polygons<'a, R>(&self, polygons: impl IntoIterator<Item = R>) -> Option<Geometry>
    where
        R: IntoIterator<Item = &'a [Coord]>,
    {
        let mut out: Vec<Polygon> = Vec::new();
        for rings in polygons {
            let mut rings = rings.into_iter();
            let Some(exterior) = rings.next().and_then(|r| self.ring(r, true)) else { continue };
            let holes = rings.filter_map(|r| self.ring(r, false)).collect();
            out.push(Polygon::new(exterior, holes));
        }
        match out.len() {
            0 => None,
            1 => out.pop().map(Geometry::Polygon),
            _ => Some(Geometry::MultiPolygon(MultiPolygon(out))),
        }
    }

    /// One ring in tile units: simplified, clipped, snapped, wound (exterior: positive area in
    /// y-down tile coordinates, i.e. clockwise on screen; holes the other way). `None` when the
    /// ring has collapsed to no area.
    fn ring(&self, ring: &[Coord], exterior: bool) -> Option<LineString> {
        let ring = self.simplified(LineString(ring.iter().map(|c| self.project(*c)).collect()));
        let mut coords = clip_ring(&ring.0, self.lo, self.hi);
        if coords.is_empty() {
            return None;
        }
        coords = snap_dedup(&coords);
        // Closed, without repeating the first point at the end (the encoder closes it).
        while coords.len() > 1 && coords.first() == coords.last() {
            coords.pop();
        }
        if coords.len() < 3 {
            return None;
        }
        let area = signed_area(&coords);
        if area == 0.0 {
            return None;
        }
        if (area > 0.0) != exterior {
            coords.reverse();
        }
        let first = coords[0];
        coords.push(first);
        Some(LineString(coords))
    }

    /// Douglas–Peucker at low zoom; a line or ring that would collapse keeps its vertices
    /// (as `ST_Simplify(…, preserveCollapsed => true)`), and snapping decides.
    fn simplified(&self, line: LineString) -> LineString {
        match self.simplify {
            Some(tolerance) if line.0.len() > 4 => {
                let simple = line.simplify(tolerance);
                if simple.0.len() >= 4 || (simple.0.len() >= 2 && line.0.first() != line.0.last()) {
                    simple
                } else {
                    line
                }
            }
            _ => line,
        }
    }
}

/// A polygon's rings, the exterior first.
fn rings_of(p: &Polygon) -> impl Iterator<Item = &[Coord]> {
    std::iter::once(p.exterior().0.as_slice()).chain(p.interiors().iter().map(|r| r.0.as_slice()))
}

fn snap(c: Coord) -> Coord {
    Coord { x: c.x.round(), y: c.y.round() }
}

/// Snap to the integer grid and drop repeated points.
fn snap_dedup(coords: &[Coord]) -> Vec<Coord> {
    let mut out: Vec<Coord> = Vec::with_capacity(coords.len());
    for c in coords {
        let s = snap(*c);
        if out.last() != Some(&s) {
            out.push(s);
        }
    }
    out
}

/// Twice the surveyor's-formula area of an open ring (no repeated last point).
fn signed_area(ring: &[Coord]) -> f64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a.x * b.y - b.x * a.y
        })
        .sum()
}

/// A side of the clip box: is a point inside it, where a segment crosses it, and where it lies.
type Side = (fn(Coord, f64) -> bool, fn(Coord, Coord, f64) -> Coord, f64);

/// Sutherland–Hodgman against the square `lo..=hi` (convex, so one pass per side is exact for
/// the area; a concave ring leaving and re-entering gets zero-width edges along the clip box,
/// which lie in the buffer, outside what a map draws). Rings wholly inside are returned as they
/// are. The result is open (no repeated last point).
fn clip_ring(ring: &[Coord], lo: f64, hi: f64) -> Vec<Coord> {
    let mut points: Vec<Coord> = ring.to_vec();
    if points.len() > 1 && points.first() == points.last() {
        points.pop();
    }
    if points.iter().all(|c| (lo..=hi).contains(&c.x) && (lo..=hi).contains(&c.y)) {
        return points;
    }
    // Each side: is the point inside it, and where does the segment a→b cross it?
    let sides: [Side; 4] = [
        (|c, v| c.x >= v, cross_x, lo),
        (|c, v| c.x <= v, cross_x, hi),
        (|c, v| c.y >= v, cross_y, lo),
        (|c, v| c.y <= v, cross_y, hi),
    ];
    for (inside, cross, v) in sides {
        if points.is_empty() {
            break;
        }
        let mut next = Vec::with_capacity(points.len() + 4);
        for i in 0..points.len() {
            let cur = points[i];
            let prev = points[(i + points.len() - 1) % points.len()];
            match (inside(prev, v), inside(cur, v)) {
                (true, true) => next.push(cur),
                (true, false) => next.push(cross(prev, cur, v)),
                (false, true) => {
                    next.push(cross(prev, cur, v));
                    next.push(cur);
                }
                (false, false) => {}
            }
        }
        points = next;
    }
    points
}

fn cross_x(a: Coord, b: Coord, x: f64) -> Coord {
    let t = (x - a.x) / (b.x - a.x);
    Coord { x, y: a.y + t * (b.y - a.y) }
}

fn cross_y(a: Coord, b: Coord, y: f64) -> Coord {
    let t = (y - a.y) / (b.y - a.y);
    Coord { x: a.x + t * (b.x - a.x), y }
}

/// A line cut to the square `lo..=hi`: the pieces inside, each segment clipped with
/// Liang–Barsky.
fn clip_line(line: &[Coord], lo: f64, hi: f64) -> Vec<Vec<Coord>> {
    if line.iter().all(|c| (lo..=hi).contains(&c.x) && (lo..=hi).contains(&c.y)) {
        return vec![line.to_vec()];
    }
    let mut pieces: Vec<Vec<Coord>> = Vec::new();
    let mut current: Vec<Coord> = Vec::new();
    for w in line.windows(2) {
        if let Some((a, b, clipped_end)) = clip_segment(w[0], w[1], lo, hi) {
            if current.last() != Some(&a) {
                if current.len() >= 2 {
                    pieces.push(std::mem::take(&mut current));
                }
                current.clear();
                current.push(a);
            }
            current.push(b);
            if clipped_end {
                pieces.push(std::mem::take(&mut current));
            }
        } else {
            if current.len() >= 2 {
                pieces.push(std::mem::take(&mut current));
            }
            current.clear();
        }
    }
    if current.len() >= 2 {
        pieces.push(current);
    }
    pieces
}

/// Liang–Barsky: the part of a→b inside the square, and whether b itself was cut off.
fn clip_segment(a: Coord, b: Coord, lo: f64, hi: f64) -> Option<(Coord, Coord, bool)> {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
    for (p, q) in [(-dx, a.x - lo), (dx, hi - a.x), (-dy, a.y - lo), (dy, hi - a.y)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| Coord { x: a.x + t * dx, y: a.y + t * dy };
    Some((if t0 > 0.0 { at(t0) } else { a }, if t1 < 1.0 { at(t1) } else { b }, t1 < 1.0))
}

/// A property value as `ST_AsMVT` writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Prop {
    Str(String),
    Int(i64),
    Double(f64),
}

/// One layer of a tile being built: geozero's `MvtWriter` writes the geometry commands and the
/// key/value tables; one writer per layer (not per feature) keeps allocation low.
pub struct LayerBuilder {
    name: &'static str,
    writer: MvtWriter,
    ids: Vec<Option<u64>>,
}

impl LayerBuilder {
    pub fn new(name: &'static str) -> Self {
        Self { name, writer: MvtWriter::new_unscaled(EXTENT).expect("a non-zero extent"), ids: Vec::new() }
    }

    /// Add a feature whose geometry is already in tile units ([`TileFrame::geometry`]).
    /// Properties that are `None` are left out, as `ST_AsMVT` leaves out nulls.
    pub fn add<'k, 'p>(
        &mut self,
        id: i64,
        geometry: &Geometry,
        props: impl IntoIterator<Item = (&'k str, Option<&'p Prop>)>,
    ) {
        let idx = self.ids.len() as u64;
        let w = &mut self.writer;
        // Each feature's command cursor starts at 0,0 again (geometry_begin resets it).
        if w.feature_begin(idx).is_err() || w.geometry_begin().is_err() || geometry.process_geom(w).is_err() {
            return;
        }
        for (i, (key, value)) in props.into_iter().enumerate() {
            let value = match value {
                None => continue,
                Some(Prop::Str(s)) => ColumnValue::String(s),
                Some(Prop::Int(n)) => u64::try_from(*n).map_or(ColumnValue::Long(*n), ColumnValue::ULong),
                Some(Prop::Double(d)) => ColumnValue::Double(*d),
            };
            if w.property(i, key, &value).is_err() {
                return;
            }
        }
        if w.feature_end(idx).is_ok() {
            self.ids.push(u64::try_from(id).ok());
        }
    }

    /// The finished layer, or `None` when it holds no feature (`ST_AsMVT` of no rows).
    pub fn finish(self) -> Option<tile::Layer> {
        if self.ids.is_empty() {
            return None;
        }
        let mut layer = self.writer.layer(self.name);
        for (feature, id) in layer.features.iter_mut().zip(self.ids) {
            feature.id = id;
        }
        Some(layer)
    }
}

/// The tile's bytes (empty when no layer has a feature).
pub fn encode(layers: Vec<tile::Layer>) -> Vec<u8> {
    if layers.is_empty() {
        return Vec::new();
    }
    Tile { layers }.encode_to_vec()
}

#[cfg(test)]
// Snapped tile coordinates are whole numbers: exact comparison is the point.
#[allow(clippy::float_cmp)]
mod tests {
    use geo_types::{LineString, MultiPolygon, Point, Polygon, coord};
    use proptest::prelude::*;

    use super::*;

    fn frame(simplify: Option<f64>) -> TileFrame {
        // z0: the tile is the whole world, 4096 units across 2 · EARTH_HALF metres.
        TileFrame::new(TileCoord { z: 0, x: 0, y: 0 }, 64, simplify)
    }

    /// Metres of the z0 tile for a point given in tile units.
    fn m(x: f64, y: f64) -> Coord {
        let size = 2.0 * crate::tile::EARTH_HALF / 4096.0;
        Coord { x: -crate::tile::EARTH_HALF + x * size, y: crate::tile::EARTH_HALF - y * size }
    }

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon {
        Polygon::new(LineString(vec![m(x0, y0), m(x1, y0), m(x1, y1), m(x0, y1), m(x0, y0)]), vec![])
    }

    fn ring_of(g: &Geometry) -> Vec<Coord> {
        match g {
            Geometry::Polygon(p) => p.exterior().0.clone(),
            other => panic!("not a polygon: {other:?}"),
        }
    }

    #[test]
    fn a_square_inside_is_snapped_and_wound_clockwise_in_tile_units() {
        let g = frame(None).geometry(&Geometry::Polygon(square(10.2, 10.0, 20.0, 30.4))).expect("kept");
        let ring = ring_of(&g);
        assert_eq!(ring.first(), ring.last());
        assert!(ring.iter().all(|c| c.x.fract() == 0.0 && c.y.fract() == 0.0));
        assert!(signed_area(&ring[..ring.len() - 1]) > 0.0, "exterior must have positive area (MVT 2.1)");
        assert_eq!(signed_area(&ring[..ring.len() - 1]), 2.0 * 10.0 * 20.0);
    }

    #[test]
    fn a_polygon_crossing_the_edge_is_cut_at_the_buffer() {
        let g = frame(None).geometry(&Geometry::Polygon(square(4000.0, 100.0, 5000.0, 200.0))).expect("kept");
        let ring = ring_of(&g);
        let max_x = ring.iter().map(|c| c.x).fold(f64::MIN, f64::max);
        assert_eq!(max_x, 4096.0 + 64.0);
        assert_eq!(signed_area(&ring[..ring.len() - 1]), 2.0 * 160.0 * 100.0);
    }

    #[test]
    fn what_lies_outside_or_collapses_is_dropped() {
        assert!(frame(None).geometry(&Geometry::Polygon(square(5000.0, 100.0, 5100.0, 200.0))).is_none());
        // Smaller than one tile unit: nothing left after snapping.
        assert!(frame(None).geometry(&Geometry::Polygon(square(10.1, 10.1, 10.3, 10.3))).is_none());
        assert!(frame(None).geometry(&Geometry::Point(Point(m(-100.0, 5.0)))).is_none());
        let label = frame(None).with_buffer(0);
        assert!(label.geometry(&Geometry::Point(Point(m(-10.0, 5.0)))).is_none());
        assert!(label.geometry(&Geometry::Point(Point(m(10.0, 5.0)))).is_some());
    }

    #[test]
    fn holes_wind_the_other_way() {
        let outer = square(10.0, 10.0, 100.0, 100.0);
        let inner = square(40.0, 40.0, 60.0, 60.0);
        let p = Polygon::new(outer.exterior().clone(), vec![inner.exterior().clone()]);
        let Some(Geometry::Polygon(out)) = frame(None).geometry(&Geometry::Polygon(p)) else { panic!("kept") };
        let hole = &out.interiors()[0].0;
        assert!(signed_area(&hole[..hole.len() - 1]) < 0.0);
    }

    #[test]
    fn lines_are_cut_into_the_pieces_inside() {
        let line =
            LineString(vec![m(-500.0, 10.0), m(100.0, 10.0), m(100.0, -500.0), m(200.0, -500.0), m(200.0, 20.0)]);
        let Some(Geometry::MultiLineString(ml)) = frame(None).geometry(&Geometry::LineString(line)) else {
            panic!("two pieces")
        };
        assert_eq!(ml.0.len(), 2);
        assert_eq!(ml.0[0].0[0], coord! { x: -64.0, y: 10.0 });
        assert_eq!(ml.0[1].0.last(), Some(&coord! { x: 200.0, y: 20.0 }));
    }

    #[test]
    fn low_zoom_simplification_drops_vertices_but_keeps_the_shape() {
        // A square with a 1-unit wiggle on each side: below the 4-unit tolerance.
        let wiggly: Vec<Coord> = (0..=100)
            .map(|i| m(10.0 + f64::from(i), 10.0 + f64::from(i % 2)))
            .chain([m(110.0, 110.0), m(10.0, 110.0), m(10.0, 10.0)])
            .collect();
        let p = Polygon::new(LineString(wiggly), vec![]);
        let kept = ring_of(&frame(Some(4.0)).geometry(&Geometry::Polygon(p.clone())).expect("kept"));
        let full = ring_of(&frame(None).geometry(&Geometry::Polygon(p)).expect("kept"));
        assert!(kept.len() < 10 && full.len() > 100, "{} vs {}", kept.len(), full.len());
    }

    #[test]
    fn a_layer_round_trips_through_the_decoder() {
        let mut layer = LayerBuilder::new("grids");
        let g = frame(None)
            .geometry(&Geometry::MultiPolygon(MultiPolygon(vec![square(10.0, 10.0, 20.0, 20.0)])))
            .expect("kept");
        let props = [
            ("code", Some(Prop::Str("T-1".into()))),
            ("workers", Some(Prop::Int(2))),
            ("community", None),
            ("balance", Some(Prop::Double(1.5))),
        ];
        layer.add(7, &g, props.iter().map(|(k, v)| (*k, v.as_ref())));
        let bytes = encode(vec![layer.finish().expect("one feature")]);
        let tile = Tile::decode(bytes.as_slice()).expect("decodes");
        let l = &tile.layers[0];
        assert_eq!((l.name.as_str(), l.version, l.extent), ("grids", 2, Some(4096)));
        assert_eq!(l.features[0].id, Some(7));
        assert_eq!(l.keys, ["code", "workers", "balance"]);
        assert_eq!(l.values[1].uint_value, Some(2));
        assert!(LayerBuilder::new("empty").finish().is_none());
        assert!(encode(vec![]).is_empty());
    }

    proptest! {
        /// Whatever the input, every vertex that reaches the tile is inside the clip box and on
        /// the integer grid, and every kept ring has area with the right winding.
        #[test]
        fn output_stays_in_the_clip_box(pts in proptest::collection::vec((-3000.0f64..7000.0, -3000.0f64..7000.0), 3..12)) {
            let mut ring: Vec<Coord> = pts.iter().map(|(x, y)| m(*x, *y)).collect();
            ring.push(ring[0]);
            if let Some(g) = frame(None).geometry(&Geometry::Polygon(Polygon::new(LineString(ring), vec![]))) {
                let r = ring_of(&g);
                prop_assert!(r.iter().all(|c| (-64.0..=4160.0).contains(&c.x) && (-64.0..=4160.0).contains(&c.y)));
                prop_assert!(r.iter().all(|c| c.x.fract() == 0.0 && c.y.fract() == 0.0));
                prop_assert!(signed_area(&r[..r.len() - 1]) > 0.0);
            }
        }
    }
}
