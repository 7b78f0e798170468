//! Rules 2 and 3 of assignment, and the county margin, from memory — for a point the index found
//! in no grid. PostgreSQL answers these on the spheroid (`ST_DWithin`/`ST_Distance` on geography)
//! and in planar degrees (`<->`); here distances are measured in a local metric frame around the
//! point (WGS84's meridian and prime-vertical radii at its latitude), which differs from PostGIS's
//! geodesic figure by at most a few centimetres within a few hundred metres. So memory answers only when the
//! answer cannot depend on that difference: every comparison must clear [`band`]. A point within
//! the band of 150 m, of 500 m, or of a tie gets `None` and goes to PostGIS, which stays the
//! authority; the test `intake_assignment_matches_the_sql_rules_and_the_county_margin` checks that
//! every answer given here equals PostGIS's.

use super::index::{GridIndex, GridShape};
use super::{COUNTY_MARGIN_M, NEAREST_GRID_M};

/// What rules 2–3 decide for a point in no grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fringe {
    /// Rule 2: this grid is the nearest within 150 m.
    Nearest(i64),
    /// Rule 3: no grid within 150 m; the queue of this subdistrict (the planar-nearest grid's).
    Unassigned(Option<i64>),
}

/// The county margin check for a point outside the county polygon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Margin {
    Inside,
    Outside,
}

/// How far apart two distances must be (metres) before memory trusts their order: 1 m plus 1 %,
/// against a largest disagreement with PostGIS's geodesic `ST_Distance` of 2.4 cm on 2,914 points
/// up to 600 m from the demo grids (`the_fringe_band_is_ten_times_the_measured_distance_error`
/// prints it and fails if the band were ever within 10× of it).
pub fn band(metres: f64) -> f64 {
    1.0 + 0.01 * metres
}

/// A local metric frame at a point: metres per degree east and north on the WGS84 ellipsoid.
#[derive(Debug, Clone, Copy)]
struct Frame {
    lon: f64,
    lat: f64,
    east: f64,
    north: f64,
}

impl Frame {
    fn at(lon: f64, lat: f64) -> Self {
        const A: f64 = 6_378_137.0;
        const F: f64 = 1.0 / 298.257_223_563;
        let e2 = F * (2.0 - F);
        let phi = lat.to_radians();
        let w2 = 1.0 - e2 * phi.sin().powi(2);
        let meridian = A * (1.0 - e2) / (w2 * w2.sqrt());
        let prime_vertical = A / w2.sqrt();
        let per_degree = std::f64::consts::PI / 180.0;
        Self { lon, lat, east: prime_vertical * phi.cos() * per_degree, north: meridian * per_degree }
    }

    fn xy(&self, p: [f64; 2]) -> [f64; 2] {
        [(p[0] - self.lon) * self.east, (p[1] - self.lat) * self.north]
    }

    /// A lower bound of the distance (metres) to anything inside `bbox`, for pruning.
    fn bbox_metres(&self, bbox: [f64; 4]) -> f64 {
        let dx = (bbox[0] - self.lon).max(self.lon - bbox[2]).max(0.0) * self.east;
        let dy = (bbox[1] - self.lat).max(self.lat - bbox[3]).max(0.0) * self.north;
        dx.hypot(dy)
    }

    /// Distance (metres) from the frame's origin to the shape's nearest edge.
    fn shape_metres(&self, shape: &GridShape) -> f64 {
        shape
            .segments()
            .map(|(a, b)| segment_distance([0.0, 0.0], self.xy(a), self.xy(b)))
            .fold(f64::INFINITY, f64::min)
    }
}

/// Metres from the point to the shape's nearest edge, in the point's local frame (exposed for
/// the test that measures it against PostGIS).
pub fn metres(shape: &GridShape, lon: f64, lat: f64) -> f64 {
    Frame::at(lon, lat).shape_metres(shape)
}

/// Euclidean distance from `p` to the segment a–b.
fn segment_distance(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    (p[0] - (a[0] + t * dx)).hypot(p[1] - (a[1] + t * dy))
}

/// Distance in degrees as PostGIS's planar `<->` measures it (rule 3).
fn planar_degrees(shape: &GridShape, p: [f64; 2]) -> f64 {
    shape.segments().map(|(a, b)| segment_distance(p, a, b)).fold(f64::INFINITY, f64::min)
}

/// Within this many metres of the point a shape's distance must be measured (the bbox lower
/// bound is in the same frame, so it prunes exactly what could matter).
fn candidates(frame: &Frame, shapes: &[GridShape], within: f64) -> Vec<(f64, usize)> {
    shapes
        .iter()
        .enumerate()
        .filter(|(_, s)| frame.bbox_metres(s.bbox) <= within)
        .map(|(k, s)| (frame.shape_metres(s), k))
        .filter(|(d, _)| *d <= within)
        .collect()
}

impl GridIndex {
    /// [`candidates`] among the grids, from the R-tree: only grids whose box meets the degrees
    /// that `within` metres span in the frame (the same scale [`Frame::bbox_metres`] uses, so
    /// every grid the bbox filter keeps is among them), ordered by distance, then position.
    fn near_grids(&self, frame: &Frame, within: f64) -> Vec<(f64, usize)> {
        // (A millionth wider: a box exactly `within` away is not lost to rounding.)
        let (dlon, dlat) = (within * 1.000_001 / frame.east, within * 1.000_001 / frame.north);
        let envelope =
            rstar::AABB::from_corners([frame.lon - dlon, frame.lat - dlat], [frame.lon + dlon, frame.lat + dlat]);
        let grids = self.grids();
        let mut near: Vec<(f64, usize)> = self
            .boxes
            .locate_in_envelope_intersecting(&envelope)
            .map(|b| b.data)
            .filter(|&k| frame.bbox_metres(grids[k].bbox) <= within)
            .map(|k| (frame.shape_metres(&grids[k]), k))
            .filter(|(d, _)| *d <= within)
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        near
    }

    /// Rules 2–3 for a point that no grid covers, or `None` when the answer is too close to
    /// call here (PostGIS decides).
    pub fn fringe(&self, lon: f64, lat: f64) -> Option<Fringe> {
        let frame = Frame::at(lon, lat);
        let reach = NEAREST_GRID_M + band(NEAREST_GRID_M);
        let near = self.near_grids(&frame, reach);
        if let Some(&(best, k)) = near.first() {
            if best > NEAREST_GRID_M - band(NEAREST_GRID_M) {
                return None; // about 150 m away: inside or outside rule 2's reach?
            }
            // A runner-up within the band might really be the nearer one (or tie to a lower id).
            let clear = near.get(1).is_none_or(|&(second, _)| second - best > band(best) + band(second));
            return clear.then(|| Fringe::Nearest(self.grids()[k].id));
        }
        self.nearest_subdistrict(lon, lat)
    }

    /// Rule 3: the subdistrict of the grid nearest in planar degrees, as `<->` orders them.
    /// `None` when two grids of different subdistricts are too close to a tie to call.
    fn nearest_subdistrict(&self, lon: f64, lat: f64) -> Option<Fringe> {
        // Rule 3 applies beyond 150 m (~1.4e-3°), where both sides round distances to ~1e-11
        // relative; 1e-7 is far above that and far below any real gap between two grids.
        const TIE: f64 = 1e-7;
        let bbox_degrees =
            |b: [f64; 4]| (b[0] - lon).max(lon - b[2]).max(0.0).hypot((b[1] - lat).max(lat - b[3]).max(0.0));
        // The grids nearest first by their box (the R-tree's order: the same distance, squared;
        // the outcome below does not depend on the order among equal bounds).
        let grids = self.grids();
        let order =
            self.boxes.nearest_neighbor_iter(&[lon, lat]).map(|b| (bbox_degrees(grids[b.data].bbox), &grids[b.data]));
        let mut best: Option<(f64, &GridShape)> = None;
        // The nearest grid of another subdistrict than the best's: only a near-tie matters.
        let mut rival = f64::INFINITY;
        for (bound, shape) in order {
            if best.is_some_and(|(b, _)| bound > b * (1.0 + 2.0 * TIE)) {
                break; // farther than any tie with the best
            }
            let d = planar_degrees(shape, [lon, lat]);
            match best {
                None => best = Some((d, shape)),
                Some((b, current)) if d < b => {
                    if current.subdistrict_id != shape.subdistrict_id {
                        rival = b; // the old best is now the nearest of another subdistrict
                    }
                    best = Some((d, shape));
                }
                Some((_, current)) if current.subdistrict_id != shape.subdistrict_id => rival = rival.min(d),
                Some(_) => {}
            }
        }
        let Some((b, shape)) = best else {
            return Some(Fringe::Unassigned(None)); // no grids at all: SQL has no subdistrict either
        };
        (rival - b > TIE * b).then_some(Fringe::Unassigned(shape.subdistrict_id))
    }

    /// The county's 500 m margin for a point outside the county polygon, or `None` when the
    /// point is too near 500 m to call here (or no county boundary is loaded).
    pub fn county_margin(&self, lon: f64, lat: f64) -> Option<Margin> {
        if self.county().is_empty() {
            return None;
        }
        if self.inside_county(lon, lat) {
            return Some(Margin::Inside);
        }
        let frame = Frame::at(lon, lat);
        let reach = COUNTY_MARGIN_M + band(COUNTY_MARGIN_M);
        let nearest =
            candidates(&frame, self.county(), reach).into_iter().map(|(d, _)| d).fold(f64::INFINITY, f64::min);
        if nearest < COUNTY_MARGIN_M - band(COUNTY_MARGIN_M) {
            Some(Margin::Inside)
        } else if nearest > reach {
            Some(Margin::Outside)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::{LineString, MultiPolygon, Polygon};

    fn square(id: i64, subdistrict: i64, x0: f64, y0: f64, size: f64) -> GridShape {
        let ring = LineString::from(vec![(x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size), (x0, y0)]);
        GridShape::new(id, &MultiPolygon(vec![Polygon::new(ring, vec![])])).with_subdistrict(Some(subdistrict))
    }

    /// At 36.18° N a degree of latitude is ~110.96 km and of longitude ~89.9 km.
    const LAT_DEG_M: f64 = 110_960.0;

    #[test]
    fn rule_two_and_three_and_the_bands() {
        // Two grids 0.01° wide, 200 m apart east-west (0.002225°).
        let index = GridIndex::build(vec![square(1, 10, 118.17, 36.18, 0.01), square(2, 20, 118.182_225, 36.18, 0.01)]);
        // 50 m south of grid 1's bottom edge: rule 2, grid 1.
        assert_eq!(index.fringe(118.175, 36.18 - 50.0 / LAT_DEG_M), Some(Fringe::Nearest(1)));
        // 300 m south: rule 3, grid 1's subdistrict.
        assert_eq!(index.fringe(118.175, 36.18 - 300.0 / LAT_DEG_M), Some(Fringe::Unassigned(Some(10))));
        // 150 m south: too close to call.
        assert_eq!(index.fringe(118.175, 36.18 - 150.0 / LAT_DEG_M), None);
        // Midway in the gap: a tie, too close to call.
        assert_eq!(index.fringe(118.181_112_5, 36.185), None);
        // A quarter into the gap: grid 1, clearly.
        assert_eq!(index.fringe(118.180_556, 36.185), Some(Fringe::Nearest(1)));
        // Far south of the gap's middle: equidistant in degrees from two subdistricts.
        assert_eq!(index.fringe(118.181_112_5, 36.17), None);
    }

    #[test]
    fn the_frame_matches_known_distances() {
        // One arc-second of latitude at 36° is 30.822 m; of longitude, 25.045 m (WGS84).
        let f = Frame::at(118.0, 36.0);
        assert!((f.xy([118.0, 36.0 + 1.0 / 3600.0])[1] - 30.822).abs() < 0.005);
        assert!((f.xy([118.0 + 1.0 / 3600.0, 36.0])[0] - 25.045).abs() < 0.005);
    }
}
