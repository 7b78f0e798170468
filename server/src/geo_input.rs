//! Checking GeoJSON geometry that comes from outside (imports, the API) before it reaches the
//! database: the expected type, no empty parts, finite WGS84 coordinates, a sane vertex count.
//! Topological validity (self-intersections) is judged by PostGIS, the engine that stores it.

use geojson::{Geometry, GeometryValue, Position};

/// What a target table stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Polygon or MultiPolygon (grids, buildings).
    Polygonal,
    /// Point (stations, reports).
    Point,
}

/// Most vertices one feature may have: a grid boundary traced in great detail has a few
/// thousand; a million is an attack or a mistake.
pub const MAX_VERTICES: usize = 100_000;

/// The county's bounding box (CGCS2000 ≈ WGS84), from the embedded boundary file.
pub const COUNTY_BBOX: [f64; 4] = [117.898, 35.924, 118.517, 36.389];
/// Margin around the county box, in degrees (~1 km), for GPS noise and boundary generalisation.
pub const COUNTY_MARGIN_DEG: f64 = 0.01;

/// Why a geometry was refused, phrased for the person who sent it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GeometryError {
    #[error("geometry is missing")]
    Missing,
    #[error("geometry type {found} is not allowed here (expected {expected})")]
    WrongType { found: &'static str, expected: &'static str },
    #[error("geometry is empty")]
    Empty,
    #[error("coordinate {0:?} is not a finite longitude/latitude in range")]
    BadCoordinate(Vec<f64>),
    #[error("a polygon ring needs at least 4 positions and must be closed")]
    BadRing,
    #[error("geometry has {0} vertices; the limit is {MAX_VERTICES}")]
    TooManyVertices(usize),
    #[error("geometry lies outside the county (bbox {0:?})")]
    OutsideCounty([f64; 4]),
}

/// Check a parsed GeoJSON geometry; returns its bounding box [minx, miny, maxx, maxy].
pub fn check(geometry: Option<&Geometry>, expected: Expected) -> Result<[f64; 4], GeometryError> {
    let geometry = geometry.ok_or(GeometryError::Missing)?;
    let value = &geometry.value;
    let ok_type = match expected {
        Expected::Polygonal => matches!(value, GeometryValue::Polygon { .. } | GeometryValue::MultiPolygon { .. }),
        Expected::Point => matches!(value, GeometryValue::Point { .. }),
    };
    if !ok_type {
        let expected = match expected {
            Expected::Polygonal => "Polygon or MultiPolygon",
            Expected::Point => "Point",
        };
        return Err(GeometryError::WrongType { found: value.type_name(), expected });
    }
    let mut bbox = Bbox::default();
    match value {
        GeometryValue::Point { coordinates } => bbox.add(coordinates)?,
        GeometryValue::Polygon { coordinates } => check_polygon(coordinates, &mut bbox)?,
        GeometryValue::MultiPolygon { coordinates } => {
            if coordinates.is_empty() {
                return Err(GeometryError::Empty);
            }
            for polygon in coordinates {
                check_polygon(polygon, &mut bbox)?;
            }
        }
        _ => unreachable!("type checked above"),
    }
    Ok(bbox.finish())
}

/// Whether a bbox lies within the county box (with margin).
pub fn inside_county(bbox: [f64; 4]) -> bool {
    inside_box(bbox, COUNTY_BBOX)
}

fn inside_box(bbox: [f64; 4], county: [f64; 4]) -> bool {
    let [minx, miny, maxx, maxy] = county;
    bbox[0] >= minx - COUNTY_MARGIN_DEG
        && bbox[1] >= miny - COUNTY_MARGIN_DEG
        && bbox[2] <= maxx + COUNTY_MARGIN_DEG
        && bbox[3] <= maxy + COUNTY_MARGIN_DEG
}

/// Whether a bbox lies within one of the county boxes (with margin). A quick check before
/// PostGIS judges the exact boundary; a feature across two neighbouring counties' boxes is
/// refused here, as a grid must belong to one county.
pub fn inside_any_county(bbox: [f64; 4], counties: &[[f64; 4]]) -> bool {
    counties.iter().any(|&c| inside_box(bbox, c))
}

/// The boxes of the counties geometry may lie in: Yiyuan's (so an empty database takes its
/// data, as before counties existed) and every loaded county boundary's (migration 0028).
pub async fn county_boxes<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<Vec<[f64; 4]>, sqlx::Error> {
    let rows: Vec<(f64, f64, f64, f64)> = sqlx::query_as(
        "select ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) from area where kind = 'county' order by id",
    )
    .fetch_all(db)
    .await?;
    let mut boxes = vec![COUNTY_BBOX];
    boxes.extend(rows.into_iter().map(|(a, b, c, d)| [a, b, c, d]));
    Ok(boxes)
}

fn check_polygon(rings: &[Vec<Position>], bbox: &mut Bbox) -> Result<(), GeometryError> {
    if rings.is_empty() {
        return Err(GeometryError::Empty);
    }
    for ring in rings {
        if ring.len() < 4 || ring.first().map(Position::as_slice) != ring.last().map(Position::as_slice) {
            return Err(GeometryError::BadRing);
        }
        for position in ring {
            bbox.add(position)?;
        }
    }
    Ok(())
}

#[derive(Default)]
struct Bbox {
    min: [f64; 2],
    max: [f64; 2],
    count: usize,
}

impl Bbox {
    fn add(&mut self, position: &Position) -> Result<(), GeometryError> {
        let c = position.as_slice();
        let (Some(&x), Some(&y)) = (c.first(), c.get(1)) else {
            return Err(GeometryError::BadCoordinate(c.to_vec()));
        };
        if !(x.is_finite() && y.is_finite() && (-180.0..=180.0).contains(&x) && (-90.0..=90.0).contains(&y)) {
            return Err(GeometryError::BadCoordinate(c.to_vec()));
        }
        if self.count == 0 {
            self.min = [x, y];
            self.max = [x, y];
        } else {
            self.min = [self.min[0].min(x), self.min[1].min(y)];
            self.max = [self.max[0].max(x), self.max[1].max(y)];
        }
        self.count += 1;
        if self.count > MAX_VERTICES {
            return Err(GeometryError::TooManyVertices(self.count));
        }
        Ok(())
    }

    fn finish(&self) -> [f64; 4] {
        [self.min[0], self.min[1], self.max[0], self.max[1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Geometry {
        serde_json::from_str(json).expect("valid GeoJSON in test")
    }

    #[test]
    fn accepts_a_polygon_and_returns_its_bbox() {
        let g = parse(r#"{"type":"Polygon","coordinates":[[[118.1,36.1],[118.2,36.1],[118.2,36.2],[118.1,36.1]]]}"#);
        assert_eq!(check(Some(&g), Expected::Polygonal), Ok([118.1, 36.1, 118.2, 36.2]));
    }

    #[test]
    fn refuses_wrong_type_open_ring_out_of_range_and_empty() {
        let point = parse(r#"{"type":"Point","coordinates":[118.1,36.1]}"#);
        assert!(matches!(check(Some(&point), Expected::Polygonal), Err(GeometryError::WrongType { .. })));
        let open = parse(r#"{"type":"Polygon","coordinates":[[[1,1],[2,1],[2,2],[1,2]]]}"#);
        assert_eq!(check(Some(&open), Expected::Polygonal), Err(GeometryError::BadRing));
        let far = parse(r#"{"type":"Point","coordinates":[181,36.1]}"#);
        assert!(matches!(check(Some(&far), Expected::Point), Err(GeometryError::BadCoordinate(_))));
        let empty = parse(r#"{"type":"MultiPolygon","coordinates":[]}"#);
        assert_eq!(check(Some(&empty), Expected::Polygonal), Err(GeometryError::Empty));
        assert_eq!(check(None, Expected::Point), Err(GeometryError::Missing));
    }

    #[test]
    fn county_box_has_a_margin() {
        assert!(inside_county([118.17, 36.18, 118.18, 36.19]));
        assert!(!inside_county([9.5, 47.1, 9.6, 47.2]));
        let second = [118.9, 36.0, 119.5, 36.4];
        assert!(inside_any_county([119.0, 36.1, 119.1, 36.2], &[COUNTY_BBOX, second]));
        assert!(!inside_any_county([118.4, 36.1, 119.1, 36.2], &[COUNTY_BBOX, second]), "across two counties");
    }
}
