//! GCJ-02 ("Mars coordinates", used by Amap and Tencent maps) ↔ WGS84. GCJ-02 shifts points in
//! this county by about 465–556 m — more than a grid is wide — so a report given in GCJ-02 must be
//! converted before it is assigned. The forward transform is the published one; the inverse is
//! iterated until the round trip agrees to 1e-9° (≈ 0.1 mm), well under a metre.

use std::f64::consts::PI;

const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;

/// The GCJ-02 obfuscation applies inside mainland China only (the usual rough box).
fn outside_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS84 → GCJ-02 (lon, lat in degrees).
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let d_lat = transform_lat(lon - 105.0, lat - 35.0);
    let d_lon = transform_lon(lon - 105.0, lat - 35.0);
    let rad_lat = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    let d_lat = (d_lat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let d_lon = (d_lon * 180.0) / (A / sqrt_magic * rad_lat.cos() * PI);
    (lon + d_lon, lat + d_lat)
}

/// GCJ-02 → WGS84 by fixed-point iteration on the forward transform (converges in a few steps;
/// the result round-trips to within 1e-9°).
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let (mut w_lon, mut w_lat) = (lon, lat);
    for _ in 0..30 {
        let (g_lon, g_lat) = wgs84_to_gcj02(w_lon, w_lat);
        let (e_lon, e_lat) = (g_lon - lon, g_lat - lat);
        w_lon -= e_lon;
        w_lat -= e_lat;
        if e_lon.abs() < 1e-10 && e_lat.abs() < 1e-10 {
            break;
        }
    }
    (w_lon, w_lat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
        let k = 111_320.0;
        (((a.0 - b.0) * k * (a.1.to_radians().cos())).powi(2) + ((a.1 - b.1) * k).powi(2)).sqrt()
    }

    #[test]
    fn offset_in_yiyuan_is_about_half_a_kilometre() {
        let wgs = (118.170, 36.180);
        let gcj = wgs84_to_gcj02(wgs.0, wgs.1);
        let d = metres(wgs, gcj);
        assert!((400.0..650.0).contains(&d), "offset {d} m");
    }

    /// The published reference pair every GCJ-02 implementation is checked against (the
    /// wandergis/coordtransform README, also eviltransform's tests): an independent answer, so
    /// this does not only test the transform against itself.
    #[test]
    fn the_published_beijing_pair_in_both_directions() {
        let (wgs, gcj) = ((116.404, 39.915), (116.410_244_499_169_38, 39.916_404_281_501_64));
        let forward = wgs84_to_gcj02(wgs.0, wgs.1);
        assert!((forward.0 - gcj.0).abs() < 1e-12 && (forward.1 - gcj.1).abs() < 1e-12, "{forward:?}");
        let back = gcj02_to_wgs84(gcj.0, gcj.1);
        assert!(metres(back, wgs) < 0.001, "{back:?}");
    }

    #[test]
    fn outside_china_is_unchanged() {
        assert_eq!(wgs84_to_gcj02(9.5, 47.1), (9.5, 47.1));
        assert_eq!(gcj02_to_wgs84(9.5, 47.1), (9.5, 47.1));
    }

    proptest! {
        #[test]
        fn inverse_round_trips_below_a_millimetre(lon in 117.8f64..118.6, lat in 35.9f64..36.4) {
            let (g_lon, g_lat) = wgs84_to_gcj02(lon, lat);
            let back = gcj02_to_wgs84(g_lon, g_lat);
            prop_assert!(metres((lon, lat), back) < 0.001, "{:?} vs {:?}", (lon, lat), back);
        }
    }
}
