//! The in-memory assignment index: which grid covers a point, without a database round trip.
//!
//! H3 cells (resolution 11, ~25 m edges) map to grids. A cell that lies wholly inside one grid,
//! with a safety margin, and near no other grid answers directly; any other cell keeps a short
//! list of candidate grids (sorted by id) that are decided by an exact point-in-polygon test.
//! That test runs on the cell's own share of each candidate's edges ([`LocalRing`]): edges
//! that cannot change the answer anywhere in the cell are dropped when the index is built, and
//! edges that change it the same way everywhere in the cell are counted then — a grid bordered
//! by a few hundred vertices is decided by the two or three edges that cross the cell's rows.
//!
//! The exact test is a port of PostGIS's own point-in-polygon short-circuit that `ST_Covers`
//! uses for (polygon, point) (`point_in_ring` / `point_in_multipolygon` in
//! `postgis/lwgeom_geos.c`): the same double-precision side determinant, the same on-segment
//! check, the same winding rule. A robust predicate (geo's `orient2d`) would be *more* exact but
//! would disagree with PostGIS on points within ~1e-15° of an edge, and the contract is to agree
//! with `gridmap_grid_at` 100 %: boundary counts as inside, the lowest grid id wins. Geometries are
//! read from PostGIS as WKB, so both sides see bit-identical coordinates.
//!
//! The index is immutable; [`GridIndexHandle`] swaps a freshly built one in atomically
//! (`arc-swap`) when grids change, so lookups never block.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use geo_types::{Geometry, MultiPolygon};
use h3o::geom::{ContainmentMode, TilerBuilder};
use h3o::{CellIndex, LatLng, Resolution};
use sqlx::PgPool;

/// The H3 resolution of the index: ~25 m edges, so a ~300-household grid holds dozens of cells.
pub const RESOLUTION: Resolution = Resolution::Eleven;
/// Margin (degrees, ~0.1 m) by which a cell must clear every grid edge to answer directly; it
/// absorbs the difference between H3's geodesic cell edges and straight lines in lon/lat.
const MARGIN_DEG: f64 = 1e-6;

type Ring = Vec<[f64; 2]>;

/// One grid's polygons as PostGIS stores them: polygons → rings (exterior first) → points.
#[derive(Debug, Clone)]
pub struct GridShape {
    pub id: i64,
    pub bbox: [f64; 4],
    /// The subdistrict of the grid's community: rule 3's queue for a point nearest this grid.
    pub subdistrict_id: Option<i64>,
    polygons: Vec<Vec<Ring>>,
}

impl GridShape {
    pub fn new(id: i64, geometry: &MultiPolygon<f64>) -> Self {
        let mut bbox = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
        let polygons = geometry
            .0
            .iter()
            .map(|polygon| {
                std::iter::once(polygon.exterior())
                    .chain(polygon.interiors())
                    .map(|ring| {
                        ring.0
                            .iter()
                            .map(|c| {
                                bbox = [bbox[0].min(c.x), bbox[1].min(c.y), bbox[2].max(c.x), bbox[3].max(c.y)];
                                [c.x, c.y]
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Self { id, bbox, subdistrict_id: None, polygons }
    }

    #[must_use]
    pub fn with_subdistrict(mut self, subdistrict_id: Option<i64>) -> Self {
        self.subdistrict_id = subdistrict_id;
        self
    }

    /// `ST_Covers(grid, point)` exactly as PostGIS decides it (boundary counts as inside).
    pub fn covers(&self, x: f64, y: f64) -> bool {
        self.bbox_covers(x, y) && point_in_multipolygon(&self.polygons, [x, y]) != -1
    }

    /// Whether a cell's share of its edges is worth cutting out (see [`LocalGrid`]).
    fn is_large(&self) -> bool {
        self.segments().nth(CUT_ABOVE_EDGES).is_some()
    }

    /// PostGIS's first test: outside the bounding box is outside, whatever the rings say.
    fn bbox_covers(&self, x: f64, y: f64) -> bool {
        !(x < self.bbox[0] || x > self.bbox[2] || y < self.bbox[1] || y > self.bbox[3])
    }

    /// Every edge of every ring, as (start, end).
    pub fn segments(&self) -> impl Iterator<Item = ([f64; 2], [f64; 2])> + '_ {
        self.polygons.iter().flatten().flat_map(|ring| ring.windows(2).map(|w| (w[0], w[1])))
    }
}

// ---- A port of PostGIS's point-in-polygon (lwgeom_geos.c); keep the arithmetic identical. ----

fn determine_side(seg1: [f64; 2], seg2: [f64; 2], point: [f64; 2]) -> f64 {
    (seg2[0] - seg1[0]) * (point[1] - seg1[1]) - (point[0] - seg1[0]) * (seg2[1] - seg1[1])
}

fn is_on_segment(seg1: [f64; 2], seg2: [f64; 2], point: [f64; 2]) -> bool {
    let (min_x, max_x) = if seg1[0] > seg2[0] { (seg2[0], seg1[0]) } else { (seg1[0], seg2[0]) };
    let (min_y, max_y) = if seg1[1] > seg2[1] { (seg2[1], seg1[1]) } else { (seg1[1], seg2[1]) };
    !(point[0] < min_x || point[0] > max_x || point[1] < min_y || point[1] > max_y)
}

/// PostGIS skips edges shorter than 1e-12 (repeated points).
fn is_degenerate(seg1: [f64; 2], seg2: [f64; 2]) -> bool {
    (seg2[0] - seg1[0]) * (seg2[0] - seg1[0]) + (seg2[1] - seg1[1]) * (seg2[1] - seg1[1]) < 1e-12 * 1e-12
}

/// One edge's change to the winding number, or `None` when the point lies on the edge.
fn winding_step(seg1: [f64; 2], seg2: [f64; 2], point: [f64; 2]) -> Option<i32> {
    let side = determine_side(seg1, seg2, point);
    #[allow(clippy::float_cmp)] // PostGIS compares with exactly 0.0 (see its ticket #852)
    if side == 0.0 && is_on_segment(seg1, seg2, point) {
        return None;
    }
    Some(if seg1[1] <= point[1] && point[1] < seg2[1] && side > 0.0 {
        1
    } else if seg2[1] <= point[1] && point[1] < seg1[1] && side < 0.0 {
        -1
    } else {
        0
    })
}

/// PostGIS's winding count over `edges`, starting from `wn`: 1 inside, 0 on an edge, -1 outside.
fn winding(mut wn: i32, edges: impl IntoIterator<Item = ([f64; 2], [f64; 2])>, point: [f64; 2]) -> i32 {
    for (seg1, seg2) in edges {
        match winding_step(seg1, seg2, point) {
            Some(step) => wn += step,
            None => return 0,
        }
    }
    if wn == 0 { -1 } else { 1 }
}

/// 1 inside, 0 on the boundary, -1 outside.
fn point_in_ring(ring: &[[f64; 2]], point: [f64; 2]) -> i32 {
    winding(0, ring.windows(2).map(|w| (w[0], w[1])).filter(|(a, b)| !is_degenerate(*a, *b)), point)
}

fn point_in_multipolygon(polygons: &[Vec<Ring>], point: [f64; 2]) -> i32 {
    locate_in_polygons(polygons, |ring| point_in_ring(ring, point))
}

/// PostGIS's multipolygon rule over rings located by `locate` (exterior first, then holes):
/// on any ring's edge is 0, inside an exterior and no hole is 1, else -1.
fn locate_in_polygons<P: AsRef<[R]>, R>(polygons: &[P], locate: impl Fn(&R) -> i32) -> i32 {
    let mut result = -1;
    for polygon in polygons {
        let polygon = polygon.as_ref();
        let Some(exterior) = polygon.first() else { continue };
        let in_ring = locate(exterior);
        if in_ring == -1 {
            continue;
        }
        if in_ring == 0 {
            return 0;
        }
        result = in_ring;
        for hole in &polygon[1..] {
            match locate(hole) {
                1 => {
                    result = -1;
                    break;
                }
                0 => return 0,
                _ => {}
            }
        }
        if result != -1 {
            return result;
        }
    }
    result
}

// ---------------------------------------------------------------------------------------------

/// A multiplicative hasher for H3 indexes: their low bits are constant (unused digits are 7), so
/// an identity hash would collide; `SipHash` would be correct but needlessly slow here.
#[derive(Default)]
pub struct CellHasher(u64);

impl Hasher for CellHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

#[derive(Debug, Clone)]
enum Entry {
    /// The whole cell (plus margin) is inside this grid (index into `grids`) and near no other.
    Interior(u32),
    /// Grids (indexes into `grids`, ascending id) that may cover a point of this cell, each
    /// tested whole: none of them has more than [`CUT_ABOVE_EDGES`] edges.
    Candidates(Box<[u32]>),
    /// The same where some candidate has more: each cut down to the cell.
    Cut(Box<[LocalGrid]>),
}

/// Grids with at most this many edges are tested whole: cutting a rectangle down to a cell
/// saves nothing, and carrying cut grids in every cell cost the demo city's 5-vertex grids
/// 5–8 % of lookups (bench/reports.sh, criterion).
const CUT_ABOVE_EDGES: usize = 32;

/// A candidate grid as seen from inside one cell: its polygons → rings, each ring reduced to
/// what decides PostGIS's winding test for points in the cell (`None`: test the whole grid).
#[derive(Debug, Clone)]
struct LocalGrid {
    /// Index into `GridIndex::grids`.
    grid: u32,
    polygons: Option<Box<[Box<[LocalRing]>]>>,
}

/// One ring of a grid, for points inside one cell's box `r` (the cell's vertices plus margin).
///
/// [`point_in_ring`] looks at an edge only if the point's y lies in the edge's y-range: an edge
/// wholly above or below the box, or wholly left of it, adds nothing to the winding number and
/// cannot hold the point, for any point in the box. An edge wholly right of the box whose
/// half-open y-range spans the box's rows adds the same ±1 for every point in it (the margin
/// keeps the side determinant's sign far from rounding). So the winding starts from `wn` and
/// only `edges` are tested, with PostGIS's arithmetic unchanged: the same answer as the whole
/// ring, bit for bit.
#[derive(Debug, Clone)]
struct LocalRing {
    wn: i32,
    edges: Box<[[[f64; 2]; 2]]>,
}

impl LocalRing {
    fn new(ring: &[[f64; 2]], r: [f64; 4]) -> Self {
        let mut wn = 0;
        let mut edges = Vec::new();
        for w in ring.windows(2) {
            let (a, b) = (w[0], w[1]);
            if is_degenerate(a, b) || a[1].max(b[1]) < r[1] || a[1].min(b[1]) > r[3] || a[0].max(b[0]) < r[0] {
                continue;
            }
            let spans_rows = if a[1] < b[1] { a[1] <= r[1] && r[3] < b[1] } else { b[1] <= r[1] && r[3] < a[1] };
            if a[0].min(b[0]) > r[2] && spans_rows {
                wn += if a[1] < b[1] { 1 } else { -1 };
            } else {
                edges.push([a, b]);
            }
        }
        Self { wn, edges: edges.into_boxed_slice() }
    }

    /// [`point_in_ring`] for a point inside the box this ring was cut for.
    fn locate(&self, point: [f64; 2]) -> i32 {
        winding(self.wn, self.edges.iter().map(|&[a, b]| (a, b)), point)
    }
}

impl LocalGrid {
    fn new(grid: u32, shape: &GridShape, r: [f64; 4]) -> Self {
        let polygons = shape.is_large().then(|| {
            shape.polygons.iter().map(|polygon| polygon.iter().map(|ring| LocalRing::new(ring, r)).collect()).collect()
        });
        Self { grid, polygons }
    }

    /// `ST_Covers(grid, point)` for a point in the cell this was cut for.
    fn covers(&self, shape: &GridShape, point: [f64; 2]) -> bool {
        match &self.polygons {
            None => shape.covers(point[0], point[1]),
            Some(polygons) => {
                shape.bbox_covers(point[0], point[1]) && locate_in_polygons(polygons, |ring| ring.locate(point)) != -1
            }
        }
    }
}

/// A grid's box in the index's R-tree, with the grid's position in [`GridIndex::grids`].
pub(super) type GridBox = rstar::primitives::GeomWithData<rstar::primitives::Rectangle<[f64; 2]>, usize>;

/// An immutable snapshot of the grids, ready for lookups.
#[derive(Debug)]
pub struct GridIndex {
    grids: Vec<GridShape>,
    cells: HashMap<u64, Entry, BuildHasherDefault<CellHasher>>,
    interior_cells: usize,
    /// The grids' boxes (lon/lat), for rules 2–3 (`fringe.rs`): the grids near a point in no
    /// grid, and the grids in order of their box's distance. A scan of every grid per such
    /// point (and a sort of all of them for rule 3) was most of intake's CPU at ×100 (26,700
    /// grids: 1,100 reports/s against 2,900 at ×1, bench/scale.sh).
    pub(super) boxes: rstar::RTree<GridBox>,
    /// The county boundary, for a quick "certainly inside" before PostGIS's margin check.
    county: Vec<GridShape>,
    /// The database's `grid_index_generation` this was read at (migration 0012); `None` for an
    /// index built elsewhere, which intake treats as outdated.
    generation: Option<i64>,
}

impl GridIndex {
    /// Build from grids (any order); the edge rule needs them sorted by id, which this does.
    pub fn build(mut grids: Vec<GridShape>) -> Self {
        grids.sort_by_key(|g| g.id);
        let mut candidates: HashMap<u64, Vec<u32>, BuildHasherDefault<CellHasher>> = HashMap::default();
        for (k, grid) in grids.iter().enumerate() {
            let mut tiler = TilerBuilder::new(RESOLUTION).containment_mode(ContainmentMode::Covers).build();
            for polygon in &grid.polygons {
                let rings: Vec<geo_types::LineString<f64>> = polygon
                    .iter()
                    .map(|ring| ring.iter().map(|c| geo_types::Coord { x: c[0], y: c[1] }).collect())
                    .collect();
                let mut rings = rings.into_iter();
                let Some(exterior) = rings.next() else { continue };
                let _ = tiler.add(geo_types::Polygon::new(exterior, rings.collect()));
            }
            let mut cells: Vec<CellIndex> = tiler.into_coverage().collect();
            // A tiny grid (or one h3o rejected) still gets the cells around its vertices.
            cells.extend(
                grid.polygons
                    .iter()
                    .flatten()
                    .flatten()
                    .filter_map(|c| LatLng::new(c[1], c[0]).ok().map(|ll| ll.to_cell(RESOLUTION))),
            );
            // Dilate by one ring so that the candidate lists never depend on h3o's polyfill
            // being exact at the grid's edge: extra candidates only cost an exact test.
            let mut dilated: Vec<u64> = cells.iter().flat_map(|c| c.grid_disk::<Vec<_>>(1)).map(u64::from).collect();
            dilated.sort_unstable();
            dilated.dedup();
            for cell in dilated {
                candidates.entry(cell).or_default().push(k as u32);
            }
        }
        let mut cells: HashMap<u64, Entry, BuildHasherDefault<CellHasher>> = HashMap::default();
        cells.reserve(candidates.len());
        let mut interior_cells = 0;
        for (cell, list) in candidates {
            let Some(rect) = cell_rect(cell) else { continue };
            let entry = match list.as_slice() {
                [only] if Self::cell_is_interior(&grids, *only as usize, cell, rect) => {
                    interior_cells += 1;
                    Entry::Interior(*only)
                }
                _ if list.iter().all(|&k| !grids[k as usize].is_large()) => Entry::Candidates(list.into_boxed_slice()),
                _ => Entry::Cut(list.iter().map(|&k| LocalGrid::new(k, &grids[k as usize], rect)).collect()),
            };
            cells.insert(cell, entry);
        }
        let boxes = rstar::RTree::bulk_load(
            grids
                .iter()
                .enumerate()
                .map(|(k, g)| {
                    let [x0, y0, x1, y1] = g.bbox;
                    GridBox::new(rstar::primitives::Rectangle::from_corners([x0, y0], [x1, y1]), k)
                })
                .collect(),
        );
        Self { grids, cells, interior_cells, boxes, county: Vec::new(), generation: None }
    }

    /// The same index, knowing the county boundary.
    #[must_use]
    pub fn with_county(mut self, county: Vec<GridShape>) -> Self {
        self.county = county;
        self
    }

    /// Whether the point lies in the county polygon, by the same planar test as `covers`.
    /// Inside in lon/lat means within the county's 500 m margin on the spheroid too: a
    /// boundary edge and the geodesic between its ends part by metres at most. `false` means
    /// "ask PostGIS" (outside, near the edge, or no boundary loaded).
    pub fn inside_county(&self, lon: f64, lat: f64) -> bool {
        self.county.iter().any(|c| c.covers(lon, lat))
    }

    /// The cell's bounding box (plus margin) is crossed by no edge of the grid, its centre is
    /// strictly inside, and no other grid's box comes near it.
    fn cell_is_interior(grids: &[GridShape], k: usize, cell: u64, rect: [f64; 4]) -> bool {
        let Ok(cell) = CellIndex::try_from(cell) else { return false };
        let grid = &grids[k];
        let centre = LatLng::from(cell);
        if point_in_multipolygon(&grid.polygons, [centre.lng(), centre.lat()]) != 1 {
            return false;
        }
        if grid.segments().any(|(a, b)| segment_hits_rect(a, b, rect)) {
            return false;
        }
        // Other grids whose box comes near: none of their edges may touch the box and the
        // centre must be outside them (so they do not reach into the cell at all).
        !grids.iter().enumerate().any(|(j, g)| {
            j != k
                && g.bbox[0] <= rect[2]
                && g.bbox[2] >= rect[0]
                && g.bbox[1] <= rect[3]
                && g.bbox[3] >= rect[1]
                && (point_in_multipolygon(&g.polygons, [centre.lng(), centre.lat()]) != -1
                    || g.segments().any(|(a, b)| segment_hits_rect(a, b, rect)))
        })
    }

    /// The grid covering the point by the edge rule (lowest id on a shared edge), or `None`.
    pub fn lookup(&self, lon: f64, lat: f64) -> Option<i64> {
        let cell = LatLng::new(lat, lon).ok()?.to_cell(RESOLUTION);
        match self.cells.get(&u64::from(cell))? {
            Entry::Interior(k) => Some(self.grids[*k as usize].id),
            Entry::Candidates(list) => {
                list.iter().map(|k| &self.grids[*k as usize]).find(|g| g.covers(lon, lat)).map(|g| g.id)
            }
            Entry::Cut(list) => list.iter().find_map(|local| {
                let grid = &self.grids[local.grid as usize];
                local.covers(grid, [lon, lat]).then_some(grid.id)
            }),
        }
    }

    /// The same answer without the H3 shortcut: every grid, lowest id first (for tests).
    pub fn lookup_brute_force(&self, lon: f64, lat: f64) -> Option<i64> {
        self.grids.iter().find(|g| g.covers(lon, lat)).map(|g| g.id)
    }

    pub fn grid_count(&self) -> usize {
        self.grids.len()
    }

    /// (cells answered directly, all cells) — how much the H3 shortcut saves.
    pub fn cell_stats(&self) -> (usize, usize) {
        (self.interior_cells, self.cells.len())
    }

    pub fn grids(&self) -> &[GridShape] {
        &self.grids
    }

    /// The county boundary's polygons (empty when none is loaded).
    pub fn county(&self) -> &[GridShape] {
        &self.county
    }

    /// Read every grid from PostGIS (as WKB, so coordinates are bit-identical) and build.
    pub async fn load(pool: &PgPool) -> Result<Self, sqlx::Error> {
        // One snapshot for the grids, the county and the generation they are at.
        let mut tx = pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
        let generation: i64 =
            sqlx::query_scalar("select generation from grid_index_generation").fetch_one(&mut *tx).await?;
        let grids: Vec<(i64, Vec<u8>, Option<i64>)> = sqlx::query_as(
            r"select g.id, ST_AsBinary(g.geom), c.subdistrict_id
                from grid g left join community c on c.id = g.community_id order by g.id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let county: Vec<(i64, Vec<u8>, Option<i64>)> =
            sqlx::query_as("select 0::int8, ST_AsBinary(geom), null::int8 from area where kind = 'county'")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let build = move || Self::build(shapes_from_wkb(grids)).with_county(shapes_from_wkb(county));
        let mut index = tokio::task::spawn_blocking(build)
            .await
            .map_err(|e| sqlx::Error::Protocol(format!("index build task failed: {e}")))?;
        index.generation = Some(generation);
        Ok(index)
    }

    /// The grid generation this index was read at (`None`: built elsewhere, treat as outdated).
    pub fn generation(&self) -> Option<i64> {
        self.generation
    }
}

/// The cell's box in lon/lat: its vertices' extent plus the margin, which covers the geodesic
/// bulge of its edges and the rounding of `to_cell` many times over.
fn cell_rect(cell: u64) -> Option<[f64; 4]> {
    let cell = CellIndex::try_from(cell).ok()?;
    let mut rect = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    for v in cell.boundary().iter() {
        rect = [rect[0].min(v.lng()), rect[1].min(v.lat()), rect[2].max(v.lng()), rect[3].max(v.lat())];
    }
    Some([rect[0] - MARGIN_DEG, rect[1] - MARGIN_DEG, rect[2] + MARGIN_DEG, rect[3] + MARGIN_DEG])
}

/// Polygonal WKB rows as shapes; anything else is logged and left out.
fn shapes_from_wkb(rows: Vec<(i64, Vec<u8>, Option<i64>)>) -> Vec<GridShape> {
    use geozero::ToGeo;
    rows.into_iter()
        .filter_map(|(id, wkb, subdistrict)| match geozero::wkb::Wkb(wkb).to_geo() {
            Ok(Geometry::MultiPolygon(mp)) => Some(GridShape::new(id, &mp).with_subdistrict(subdistrict)),
            Ok(Geometry::Polygon(p)) => Some(GridShape::new(id, &MultiPolygon(vec![p])).with_subdistrict(subdistrict)),
            other => {
                tracing::error!(id, ?other, "geometry is not polygonal; left out of the index");
                None
            }
        })
        .collect()
}

/// Liang–Barsky: does the segment a–b touch the rectangle [minx, miny, maxx, maxy]?
fn segment_hits_rect(a: [f64; 2], b: [f64; 2], r: [f64; 4]) -> bool {
    if a[0].max(b[0]) < r[0] || a[0].min(b[0]) > r[2] || a[1].max(b[1]) < r[1] || a[1].min(b[1]) > r[3] {
        return false;
    }
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
    for (p, q) in [(-dx, a[0] - r[0]), (dx, r[2] - a[0]), (-dy, a[1] - r[1]), (dy, r[3] - a[1])] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

/// The current index, swapped atomically when grids change; loaded on first use.
#[derive(Default)]
pub struct GridIndexHandle {
    current: ArcSwapOption<GridIndex>,
    loading: tokio::sync::Mutex<()>,
    /// A background build started by [`GridIndexHandle::ready`] is running.
    building: std::sync::atomic::AtomicBool,
}

impl GridIndexHandle {
    /// The index if it is built; else `None`, with a build started in the background (unless
    /// one runs already), so the caller answers from PostGIS meanwhile instead of waiting. At
    /// ×100 (26,700 grids) the build takes ~25 s after a start (bench/scale.sh): reports that
    /// waited for it were answered after 46 s, past any phone's patience.
    pub fn ready(self: &Arc<Self>, pool: &PgPool) -> Option<Arc<GridIndex>> {
        use std::sync::atomic::Ordering;
        if let Some(index) = self.current.load_full() {
            return Some(index);
        }
        if !self.building.swap(true, Ordering::AcqRel) {
            let (handle, pool) = (Arc::clone(self), pool.clone());
            tokio::spawn(async move {
                if let Err(err) = handle.get(&pool).await {
                    tracing::warn!(%err, "building the grid index failed; the next report tries again");
                }
                handle.building.store(false, Ordering::Release);
            });
        }
        None
    }

    /// The current index (built from the database on first use).
    pub async fn get(&self, pool: &PgPool) -> Result<Arc<GridIndex>, sqlx::Error> {
        if let Some(index) = self.current.load_full() {
            return Ok(index);
        }
        let _guard = self.loading.lock().await;
        if let Some(index) = self.current.load_full() {
            return Ok(index);
        }
        self.load_and_store(pool).await
    }

    /// Rebuild from the database and swap it in; lookups in flight finish on the old snapshot.
    /// Call after changing grids (the server also reloads on `NOTIFY gridmap_grids_changed`).
    pub async fn reload(&self, pool: &PgPool) -> Result<Arc<GridIndex>, sqlx::Error> {
        let _guard = self.loading.lock().await;
        self.load_and_store(pool).await
    }

    /// The index, as new as the grids: built if there is none, rebuilt if the grids' generation
    /// (migration 0012) moved on since it was read. The listener calls this when it (re)connects,
    /// as changes made while it was not listening sent it nothing. It used to rebuild
    /// unconditionally: at start-up that was a second build right after the first (~25 s of a
    /// core at ×100), under the first reports and tiles (bench/scale.sh: intake at ×100 fell to
    /// half, the build 88% of the server's samples).
    pub async fn refresh(&self, pool: &PgPool) -> Result<Arc<GridIndex>, sqlx::Error> {
        let generation: i64 =
            sqlx::query_scalar("select generation from grid_index_generation").fetch_one(pool).await?;
        let fresh = |index: &Option<Arc<GridIndex>>| {
            index.as_ref().filter(|i| i.generation().is_some_and(|g| g >= generation)).cloned()
        };
        if let Some(index) = fresh(&self.current.load_full()) {
            return Ok(index);
        }
        let _guard = self.loading.lock().await;
        // A build that finished while we waited may have read this generation or a later one.
        if let Some(index) = fresh(&self.current.load_full()) {
            return Ok(index);
        }
        self.load_and_store(pool).await
    }

    /// Build from the database and swap it in (the caller holds `loading`).
    async fn load_and_store(&self, pool: &PgPool) -> Result<Arc<GridIndex>, sqlx::Error> {
        let index = Arc::new(GridIndex::load(pool).await?);
        self.current.store(Some(index.clone()));
        Ok(index)
    }

    /// Whether an index is built (`gridmap_grid_index_loaded` on `/metrics`: a benchmark waits
    /// for it, as the index built at start-up takes a core for a second at ×10).
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Swap in an index built elsewhere (tests, benchmarks).
    pub fn replace(&self, index: GridIndex) {
        self.current.store(Some(Arc::new(index)));
    }
}

impl std::fmt::Debug for GridIndexHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridIndexHandle").field("loaded", &self.current.load().is_some()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::{LineString, Polygon};

    fn square(id: i64, x0: f64, y0: f64, size: f64) -> GridShape {
        let ring = LineString::from(vec![(x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size), (x0, y0)]);
        GridShape::new(id, &MultiPolygon(vec![Polygon::new(ring, vec![])]))
    }

    #[test]
    fn shared_edge_and_vertex_go_to_the_lowest_id() {
        let index = GridIndex::build(vec![square(7, 118.17, 36.18, 0.01), square(3, 118.18, 36.18, 0.01)]);
        assert_eq!(index.lookup(118.18, 36.185), Some(3), "shared edge: lower id");
        assert_eq!(index.lookup(118.18, 36.18), Some(3), "shared vertex: lower id");
        assert_eq!(index.lookup(118.175, 36.185), Some(7));
        assert_eq!(index.lookup(118.17, 36.18), Some(7), "outer vertex is covered");
        assert_eq!(index.lookup(118.169_99, 36.185), None);
        assert_eq!(index.lookup(f64::NAN, 36.185), None);
    }

    #[test]
    fn interior_cells_answer_directly_and_agree_with_brute_force() {
        let index = GridIndex::build(vec![square(1, 118.17, 36.18, 0.02), square(2, 118.19, 36.18, 0.02)]);
        let (interior, all) = index.cell_stats();
        assert!(interior > all / 3, "{interior} of {all} cells are interior");
        let mut state = 12345_u64;
        for _ in 0..20_000 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let x = 118.165 + (state >> 11) as f64 / (1u64 << 53) as f64 * 0.05;
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let y = 36.175 + (state >> 11) as f64 / (1u64 << 53) as f64 * 0.03;
            assert_eq!(index.lookup(x, y), index.lookup_brute_force(x, y), "({x}, {y})");
        }
    }

    /// A star-shaped ring of `n` vertices with a zig-zag radius around (x0, y0), counter-clockwise.
    fn star(x0: f64, y0: f64, r: f64, n: usize) -> LineString<f64> {
        let mut points: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let t = i as f64 / n as f64 * std::f64::consts::TAU;
                let radius = if i % 2 == 0 { r } else { r * 0.93 };
                (x0 + radius * t.cos() * 1.24, y0 + radius * t.sin())
            })
            .collect();
        points.push(points[0]);
        LineString::from(points)
    }

    #[test]
    fn the_cells_share_of_the_edges_decides_like_the_whole_rings() {
        // Many-vertex grids with holes, sharing nothing: most cells hold candidates, and a cell's
        // rings are cut down to a few edges. Every vertex, every edge midpoint and random points
        // must get the answer of the whole-ring test (`lookup_brute_force`).
        let (x0, y0) = (118.17, 36.18);
        let outer = star(x0, y0, 0.006, 600);
        let hole = LineString::from(star(x0 + 0.001, y0, 0.002, 301).0.into_iter().rev().collect::<Vec<_>>());
        let a = GridShape::new(5, &MultiPolygon(vec![Polygon::new(outer.clone(), vec![hole.clone()])]));
        let b = GridShape::new(2, &MultiPolygon(vec![Polygon::new(star(x0 + 0.001, y0, 0.0019, 97), vec![])]));
        let index = GridIndex::build(vec![a, b]);
        let mut points: Vec<(f64, f64)> = Vec::new();
        for ring in [&outer, &hole] {
            for w in ring.0.windows(2) {
                points.push((w[0].x, w[0].y));
                points.push((f64::midpoint(w[0].x, w[1].x), f64::midpoint(w[0].y, w[1].y)));
                points.push((w[0].x, f64::midpoint(w[0].y, w[1].y)));
            }
        }
        let mut state = 99_u64;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..50_000 {
            points.push((x0 - 0.008 + next() * 0.016, y0 - 0.007 + next() * 0.014));
        }
        let (mut inside, mut in_hole_grid) = (0, 0);
        for (x, y) in points {
            let expected = index.lookup_brute_force(x, y);
            assert_eq!(index.lookup(x, y), expected, "({x}, {y})");
            inside += usize::from(expected == Some(5));
            in_hole_grid += usize::from(expected == Some(2));
        }
        assert!(inside > 10_000 && in_hole_grid > 1_000, "{inside} / {in_hole_grid}: the points reach both grids");
    }

    #[test]
    fn a_hole_is_outside_and_its_edge_is_covered() {
        let outer = LineString::from(vec![(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)]);
        let hole = LineString::from(vec![(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0), (4.0, 4.0)]);
        let g = GridShape::new(1, &MultiPolygon(vec![Polygon::new(outer, vec![hole])]));
        assert!(g.covers(1.0, 1.0));
        assert!(!g.covers(5.0, 5.0));
        assert!(g.covers(4.0, 5.0));
        assert!(g.covers(0.0, 5.0));
        assert!(!g.covers(-0.1, 5.0));
    }
}
