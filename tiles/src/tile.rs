//! Tile math for the XYZ scheme in EPSG:3857 (Web Mercator): a tile's bounds, the tiles a box
//! touches, and lon/lat → metres. Pure functions, so the invalidation logic can be property-tested.

use std::fmt;

/// Half the width of the Web Mercator square, in metres (π · 6 378 137).
pub const EARTH_HALF: f64 = 20_037_508.342_789_244;
/// Highest zoom the server renders (the contract says z 0–22).
pub const MAX_ZOOM: u8 = 22;
/// MVT extent: tile coordinates run 0..4096 (MVT 2.1 default).
pub const EXTENT: u32 = 4096;
/// Pixels of the extent rendered beyond each tile edge, so lines and outlines join seamlessly.
pub const BUFFER: u32 = 64;
/// Latitude limit of Web Mercator.
const MAX_LAT: f64 = 85.051_128_779_806_59;

/// A box in EPSG:3857 metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bbox {
    pub min_x: f64,
    pub min_y: f64,
    pub max_x: f64,
    pub max_y: f64,
}

impl Bbox {
    /// The whole Web Mercator square.
    pub const WORLD: Bbox =
        Bbox::new(-20_037_508.342_789_244, -20_037_508.342_789_244, 20_037_508.342_789_244, 20_037_508.342_789_244);

    pub const fn new(min_x: f64, min_y: f64, max_x: f64, max_y: f64) -> Self {
        Self { min_x, min_y, max_x, max_y }
    }

    /// A lon/lat box (EPSG:4326 degrees) in Web Mercator metres; latitudes are clamped to the
    /// projection's limit so a box reaching a pole still maps to finite metres.
    pub fn from_lonlat(min_lon: f64, min_lat: f64, max_lon: f64, max_lat: f64) -> Self {
        let (min_x, min_y) = lonlat_to_mercator(min_lon, min_lat);
        let (max_x, max_y) = lonlat_to_mercator(max_lon, max_lat);
        Self::new(min_x.min(max_x), min_y.min(max_y), min_x.max(max_x), min_y.max(max_y))
    }

    /// Boxes that touch (share an edge) count as intersecting: a feature on a tile edge is drawn
    /// in both tiles.
    pub fn intersects(&self, other: &Bbox) -> bool {
        self.min_x <= other.max_x && other.min_x <= self.max_x && self.min_y <= other.max_y && other.min_y <= self.max_y
    }

    /// Grow by `margin` on every side.
    #[must_use]
    pub fn expand(&self, margin: f64) -> Bbox {
        Bbox::new(self.min_x - margin, self.min_y - margin, self.max_x + margin, self.max_y + margin)
    }

    pub fn is_finite(&self) -> bool {
        [self.min_x, self.min_y, self.max_x, self.max_y].iter().all(|v| v.is_finite())
    }
}

/// Degrees → Web Mercator metres.
pub fn lonlat_to_mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-MAX_LAT, MAX_LAT);
    let x = lon.clamp(-180.0, 180.0) * EARTH_HALF / 180.0;
    let y = (std::f64::consts::FRAC_PI_4 + lat.to_radians() / 2.0).tan().ln() * EARTH_HALF / std::f64::consts::PI;
    (x, y)
}

/// Web Mercator metres → degrees.
pub fn mercator_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = x * 180.0 / EARTH_HALF;
    let lat = (2.0 * (y * std::f64::consts::PI / EARTH_HALF).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees();
    (lon, lat)
}

/// Why a z/x/y is not a tile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileCoordError {
    #[error("zoom {0} is out of range 0..={MAX_ZOOM}")]
    Zoom(u32),
    #[error("x {x} or y {y} is out of range 0..{size} at zoom {z}")]
    Range { z: u8, x: u32, y: u32, size: u64 },
}

/// One XYZ tile (y grows southwards, as in every web map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileCoord {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileCoord {
    /// A checked tile: z ≤ 22 and x, y < 2^z.
    pub fn new(z: u32, x: u32, y: u32) -> Result<Self, TileCoordError> {
        if z > u32::from(MAX_ZOOM) {
            return Err(TileCoordError::Zoom(z));
        }
        let z = z as u8;
        let size = 1u64 << z;
        if u64::from(x) >= size || u64::from(y) >= size {
            return Err(TileCoordError::Range { z, x, y, size });
        }
        Ok(Self { z, x, y })
    }

    /// Width of a tile at zoom `z`, in metres.
    pub fn size_at(z: u8) -> f64 {
        2.0 * EARTH_HALF / f64::from(1u32 << z)
    }

    /// The tile's square in metres (what `ST_TileEnvelope(z, x, y)` returns).
    pub fn bounds(&self) -> Bbox {
        let size = Self::size_at(self.z);
        let min_x = -EARTH_HALF + f64::from(self.x) * size;
        let max_y = EARTH_HALF - f64::from(self.y) * size;
        Bbox::new(min_x, max_y - size, min_x + size, max_y)
    }

    /// The bounds grown by the render buffer: a feature touching this box may appear in the tile.
    pub fn buffered_bounds(&self) -> Bbox {
        self.bounds().expand(Self::size_at(self.z) * f64::from(BUFFER) / f64::from(EXTENT))
    }

    /// The parent tile one zoom up (None at z0).
    pub fn parent(&self) -> Option<TileCoord> {
        (self.z > 0).then(|| TileCoord { z: self.z - 1, x: self.x / 2, y: self.y / 2 })
    }
}

impl fmt::Display for TileCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

/// Every tile at zoom `z` whose square intersects `bbox` (edges included), row by row.
/// Boxes outside the world are clamped to it.
pub fn tiles_in_bbox(bbox: &Bbox, z: u8) -> impl Iterator<Item = TileCoord> + use<> {
    let size = TileCoord::size_at(z);
    let n = 1u32 << z;
    let col = |x: f64| (((x + EARTH_HALF) / size).floor().clamp(0.0, f64::from(n - 1))) as u32;
    let row = |y: f64| (((EARTH_HALF - y) / size).floor().clamp(0.0, f64::from(n - 1))) as u32;
    let (x0, x1) = (col(bbox.min_x), col(bbox.max_x));
    let (y0, y1) = (row(bbox.max_y), row(bbox.min_y));
    (y0..=y1).flat_map(move |y| (x0..=x1).map(move |x| TileCoord { z, x, y }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn z0_covers_the_whole_mercator_square() {
        let b = TileCoord::new(0, 0, 0).expect("z0").bounds();
        assert!((b.min_x + EARTH_HALF).abs() < 1e-6 && (b.max_y - EARTH_HALF).abs() < 1e-6);
        assert!((b.max_x - EARTH_HALF).abs() < 1e-6 && (b.min_y + EARTH_HALF).abs() < 1e-6);
    }

    #[test]
    fn out_of_range_tiles_are_rejected() {
        assert_eq!(TileCoord::new(23, 0, 0), Err(TileCoordError::Zoom(23)));
        assert!(TileCoord::new(1, 2, 0).is_err());
        assert!(TileCoord::new(1, 0, 2).is_err());
        assert!(TileCoord::new(22, (1 << 22) - 1, (1 << 22) - 1).is_ok());
    }

    #[test]
    fn yiyuan_county_seat_lands_in_the_expected_z14_tile() {
        // 118.17°E 36.18°N — computed independently with the slippy-map formulas.
        let (x, y) = lonlat_to_mercator(118.17, 36.18);
        let tiles: Vec<_> = tiles_in_bbox(&Bbox::new(x, y, x, y), 14).collect();
        assert_eq!(tiles, vec![TileCoord { z: 14, x: 13570, y: 6423 }]);
    }

    fn tile() -> impl Strategy<Value = TileCoord> {
        (0u8..=MAX_ZOOM).prop_flat_map(|z| {
            let n = 1u32 << z;
            (Just(z), 0..n, 0..n).prop_map(|(z, x, y)| TileCoord { z, x, y })
        })
    }

    proptest! {
        #[test]
        fn a_tiles_inner_box_maps_back_to_exactly_that_tile(t in tile()) {
            let b = t.bounds();
            let inset = TileCoord::size_at(t.z) * 0.01;
            let inner = Bbox::new(b.min_x + inset, b.min_y + inset, b.max_x - inset, b.max_y - inset);
            let found: Vec<_> = tiles_in_bbox(&inner, t.z).collect();
            prop_assert_eq!(found, vec![t]);
        }

        #[test]
        fn children_tile_their_parent(t in tile()) {
            prop_assume!(t.z > 0);
            let parent = t.parent().expect("z > 0");
            let (c, p) = (t.bounds(), parent.bounds());
            let eps = 1e-6 * TileCoord::size_at(t.z);
            prop_assert!(c.min_x >= p.min_x - eps && c.max_x <= p.max_x + eps);
            prop_assert!(c.min_y >= p.min_y - eps && c.max_y <= p.max_y + eps);
        }

        #[test]
        fn every_tile_found_for_a_box_intersects_it_and_no_intersecting_tile_is_missed(
            lon in -179.0f64..179.0, lat in -80.0f64..80.0, w in 0.0f64..0.5, h in 0.0f64..0.5, z in 0u8..=16,
        ) {
            let bbox = Bbox::from_lonlat(lon, lat, lon + w, lat + h);
            let found: Vec<_> = tiles_in_bbox(&bbox, z).collect();
            prop_assert!(!found.is_empty());
            for t in &found {
                prop_assert!(t.bounds().intersects(&bbox), "{t} does not touch the box");
            }
            // The ring of tiles just outside the found block does not overlap the box's interior.
            let (min_x, max_x) = (found[0].x, found[found.len() - 1].x);
            let (min_y, max_y) = (found[0].y, found[found.len() - 1].y);
            let n = 1u32 << z;
            for x in min_x.saturating_sub(1)..=(max_x + 1).min(n - 1) {
                for y in min_y.saturating_sub(1)..=(max_y + 1).min(n - 1) {
                    let t = TileCoord { z, x, y };
                    let b = t.bounds();
                    let strictly = b.min_x < bbox.max_x && bbox.min_x < b.max_x && b.min_y < bbox.max_y && bbox.min_y < b.max_y;
                    if strictly {
                        prop_assert!(found.contains(&t), "{t} overlaps the box but was missed");
                    }
                }
            }
        }

        #[test]
        fn lonlat_mercator_round_trip(lon in -180.0f64..180.0, lat in -85.0f64..85.0) {
            let (x, y) = lonlat_to_mercator(lon, lat);
            let (lon2, lat2) = mercator_to_lonlat(x, y);
            prop_assert!((lon - lon2).abs() < 1e-9 && (lat - lat2).abs() < 1e-9);
        }
    }
}
