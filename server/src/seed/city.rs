//! The synthetic Yiyuan county-seat demo city, generated in memory from a fixed seed, and its
//! synthetic copies: `seed --demo --scale N` stores county 1 (Yiyuan, in its real boundary) and
//! counties 2…N, each a city of its own (its own seed) in a synthetic county boundary, placed on
//! a lattice around Yiyuan nearest first, so a province's worth of data has the same shape as
//! one county's — and no copy is stretched beyond its boundary.
//!
//! Layout: an irregular urban outline around the real county seat (118.17 E, 36.18 N), cut by a
//! lattice of main roads and streets into blocks; apartment slabs near the centre, low-rise
//! houses further out, some public and commercial blocks. Grids come from a recursive balanced
//! bisection of the urban area by household count, cutting only where no building stands (road
//! gaps preferred), so the grids partition the urban area exactly, no building is cut, and each
//! grid holds about 300 households. The top split gives the two subdistricts, subtrees of about
//! eight grids the communities. Nothing here touches the database; `seed::mod` stores it.

use geo::{BooleanOps, Contains, Coord, LineString, MapCoords, MultiLineString, MultiPolygon, Point, Polygon, Rect};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::names;

/// Fixed seed: the same city on every run (Yiyuan's administrative code).
pub const SEED: u64 = 370_323;
/// The county seat, in EPSG:4326.
pub const CENTER: (f64, f64) = (118.170, 36.180);
/// Grids, workers, riders and stations at scale 1 — the county's own figures.
pub const GRIDS: usize = 267;
pub const GRID_WORKERS: usize = 988;
pub const RIDERS: usize = 51;
pub const STATIONS: usize = 48;
/// The grid size standard: about 300 resident households per grid.
pub const HOUSEHOLDS_PER_GRID: i64 = 300;

const M_PER_DEG_LAT: f64 = 110_574.0;

fn m_per_deg_lon() -> f64 {
    111_320.0 * CENTER.1.to_radians().cos()
}

/// Local metres (east, north of the centre) → lon/lat.
fn to_lonlat(c: Coord<f64>) -> Coord<f64> {
    Coord { x: CENTER.0 + c.x / m_per_deg_lon(), y: CENTER.1 + c.y / M_PER_DEG_LAT }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Residential,
    Commercial,
    Public,
}

impl Use {
    pub fn as_str(self) -> &'static str {
        match self {
            Use::Residential => "residential",
            Use::Commercial => "commercial",
            Use::Public => "public",
        }
    }
}

pub struct Building {
    /// Footprint in lon/lat.
    pub geom: Polygon<f64>,
    pub floors: i32,
    pub units: i32,
    pub households: i32,
    pub use_: Use,
    pub name: Option<String>,
    pub leader: Option<(String, String)>,
    /// Footprint in local metres (for the partition).
    rect_m: Rect<f64>,
}

pub struct Subdistrict {
    pub code: String,
    pub name: &'static str,
}

pub struct Community {
    pub code: String,
    pub name: String,
    pub subdistrict: usize,
}

pub struct Grid {
    pub code: String,
    pub name: String,
    pub community: usize,
    /// The grid's cell of the partition of the urban area's bounding box, in lon/lat. The
    /// grid is this cell ∩ the urban area; that clip is done by PostGIS when storing, in full
    /// double precision, so that the grids cover the urban area without a sliver of a gap.
    pub cell: Polygon<f64>,
    /// Households of the buildings inside (what PostGIS must recount to the same number).
    pub households: i64,
}

pub struct Station {
    pub name: String,
    pub address: String,
    pub point: Point<f64>,
    pub opening_hours: &'static str,
    pub services: Vec<&'static str>,
    pub host_org: &'static str,
    pub phone: String,
}

pub struct Road {
    pub name: String,
    pub class: &'static str,
    pub geom: MultiLineString<f64>,
}

pub struct Person {
    pub login: String,
    pub display_name: String,
    pub phone: String,
    pub grid: usize,
}

pub struct City {
    /// 1 = Yiyuan; 2… synthetic copies.
    pub county: u32,
    pub county_code: String,
    pub county_name: String,
    /// The county boundary; `None` for Yiyuan, whose real boundary is embedded (`seed::COUNTY_GEOJSON`).
    pub boundary: Option<MultiPolygon<f64>>,
    pub urban: MultiPolygon<f64>,
    pub subdistricts: Vec<Subdistrict>,
    pub communities: Vec<Community>,
    pub grids: Vec<Grid>,
    pub buildings: Vec<Building>,
    pub stations: Vec<Station>,
    pub roads: Vec<Road>,
    pub workers: Vec<Person>,
    pub riders: Vec<Person>,
}

struct Line {
    at: f64,
    width: f64,
    main: bool,
}

/// Most counties `seed --demo --scale N` makes (the lattice of places has this many slots).
pub const MAX_COUNTIES: u32 = 100;
/// Lattice spacing of the synthetic counties, in degrees: wider than Yiyuan's real boundary
/// (0.62° × 0.47°) plus a synthetic one (at most 0.6° × 0.43°), so no two overlap.
const LATTICE_DEG: (f64, f64) = (0.8, 0.6);

/// Where county `county` (1-based) lies: its offset from Yiyuan's seat in degrees. Yiyuan stays
/// at its real place; copies fill the lattice slots nearest first (ties: south to north, west
/// to east), so a small scale keeps its counties close together.
pub fn county_offset(county: u32) -> (f64, f64) {
    if county <= 1 {
        return (0.0, 0.0);
    }
    let mut slots: Vec<(i32, i32)> =
        (-4..=5).flat_map(|i| (-4..=5).map(move |j| (i, j))).filter(|&s| s != (0, 0)).collect();
    let distance = |(i, j): (i32, i32)| (f64::from(i) * LATTICE_DEG.0).powi(2) + (f64::from(j) * LATTICE_DEG.1).powi(2);
    slots.sort_by(|&a, &b| distance(a).total_cmp(&distance(b)).then(a.1.cmp(&b.1)).then(a.0.cmp(&b.0)));
    let (i, j) = slots[(county as usize - 2) % slots.len()];
    (f64::from(i) * LATTICE_DEG.0, f64::from(j) * LATTICE_DEG.1)
}

/// County `county`'s code: Yiyuan's national code, then clearly synthetic ones (S002…).
pub fn county_code(county: u32) -> String {
    if county <= 1 { "370323".to_string() } else { format!("S{county:03}") }
}

/// Generate county `county` (1 = Yiyuan's 267 grids in its real boundary; 2… synthetic copies
/// of the same size, each from its own seed).
pub fn generate(county: u32) -> City {
    let county = county.max(1);
    let k = county as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + u64::from(county));
    let (rx, ry) = (3_000.0, 2_000.0);
    let urban_m = outline(&mut rng, rx, ry);
    let xs = lattice(&mut rng, rx);
    let ys = lattice(&mut rng, ry);
    let mut buildings = blocks(&mut rng, &urban_m, &xs, &ys, rx, ry);
    calibrate_households(&mut buildings, HOUSEHOLDS_PER_GRID * GRIDS as i64);

    // Codes are unique across the database: a copy's carry its county's code in front.
    let prefix = if county == 1 { String::new() } else { format!("{}-", county_code(county)) };
    let mut tree = Partition { prefix: prefix.clone(), ..Partition::default() };
    let all: Vec<usize> = (0..buildings.len()).collect();
    let bounds = geo::BoundingRect::bounding_rect(&urban_m).expect("the outline is not empty");
    tree.split(&buildings, all, bounds, GRIDS, Level::County);

    let county_name = if county == 1 { "沂源县".to_string() } else { format!("演示县{county:03}") };
    let roads = roads(&urban_m, &xs, &ys, rx, ry);
    let stations = stations(&mut rng, &urban_m, &xs, &ys, STATIONS, &county_name);
    let (workers, riders) = people(&mut rng, tree.grids.len(), (k - 1) * GRID_WORKERS, (k - 1) * RIDERS);
    // The boundary has its own generator so that the city's draws stay those of its seed.
    let boundary = (county > 1).then(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED * 1_000 + u64::from(county));
        MultiPolygon(vec![outline(&mut rng, 25_000.0, 22_000.0)])
    });
    let mut city = City {
        county,
        county_code: county_code(county),
        county_name,
        boundary,
        urban: MultiPolygon(vec![urban_m]),
        subdistricts: vec![
            Subdistrict { code: format!("{prefix}NM"), name: "南麻街道" },
            Subdistrict { code: format!("{prefix}LS"), name: "历山街道" },
        ],
        communities: tree.communities,
        grids: tree.grids,
        buildings,
        stations,
        roads,
        workers,
        riders,
    };
    city.place();
    city
}

impl City {
    /// Local metres → lon/lat at this county's place (a whole-city translation, so the cells
    /// and the urban outline PostGIS clips them with still meet exactly).
    fn place(&mut self) {
        let (dx, dy) = county_offset(self.county);
        let f = |c: Coord<f64>| {
            let c = to_lonlat(c);
            Coord { x: c.x + dx, y: c.y + dy }
        };
        self.urban = self.urban.map_coords(f);
        self.boundary = self.boundary.take().map(|b| b.map_coords(f));
        for g in &mut self.grids {
            g.cell = g.cell.map_coords(f);
        }
        for b in &mut self.buildings {
            b.geom = b.geom.map_coords(f);
        }
        for s in &mut self.stations {
            s.point = Point(f(s.point.0));
        }
        for r in &mut self.roads {
            r.geom = r.geom.map_coords(f);
        }
    }
}

/// An irregular oval outline (the built-up area), in local metres.
fn outline(rng: &mut ChaCha8Rng, rx: f64, ry: f64) -> Polygon<f64> {
    let n = 18;
    let mut ring: Vec<Coord<f64>> = (0..n)
        .map(|i| {
            let t = std::f64::consts::TAU * f64::from(i) / f64::from(n);
            let r = rng.random_range(0.82..1.08);
            Coord { x: rx * r * t.cos(), y: ry * r * t.sin() }
        })
        .collect();
    ring.push(ring[0]);
    Polygon::new(LineString(ring), vec![])
}

/// Road centre lines across one axis: streets every 150–230 m, every fourth a main road.
fn lattice(rng: &mut ChaCha8Rng, half: f64) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut at = -half * 1.1;
    let mut k = 0;
    while at < half * 1.1 {
        let main = k % 4 == 0;
        lines.push(Line { at, width: if main { 24.0 } else { 12.0 }, main });
        at += rng.random_range(150.0..230.0);
        k += 1;
    }
    lines
}

/// The building lattice of one band of blocks. Every block in a band shares it, so rows and
/// columns line up across the whole town (as in a planned county seat): that leaves straight
/// gaps everywhere for grid boundaries, and house lots nest in slab lots (three houses to a
/// slab's width, two house rows to a slab row) so the gaps line up across block types too.
#[derive(Clone, Copy)]
struct Pitch {
    x: f64,
    y: f64,
}

/// Fill every block that lies wholly inside the outline.
fn blocks(rng: &mut ChaCha8Rng, urban: &Polygon<f64>, xs: &[Line], ys: &[Line], rx: f64, ry: f64) -> Vec<Building> {
    let x_pitches: Vec<f64> = xs.iter().map(|_| rng.random_range(45.0..56.0)).collect();
    let y_pitches: Vec<f64> = ys.iter().map(|_| rng.random_range(32.0..38.0)).collect();
    let mut out = Vec::new();
    let mut estate = 0;
    for (i, xw) in xs.windows(2).enumerate() {
        for (j, yw) in ys.windows(2).enumerate() {
            let block = Rect::new(
                Coord { x: xw[0].at + xw[0].width / 2.0, y: yw[0].at + yw[0].width / 2.0 },
                Coord { x: xw[1].at - xw[1].width / 2.0, y: yw[1].at - yw[1].width / 2.0 },
            );
            if !urban.contains(&block.to_polygon()) {
                continue;
            }
            let pitch = Pitch { x: x_pitches[i], y: y_pitches[j] };
            let c = block.center();
            let d = ((c.x / rx).powi(2) + (c.y / ry).powi(2)).sqrt() + rng.random_range(-0.12..0.12);
            let roll: f64 = rng.random();
            if roll < 0.08 {
                public_block(rng, block, pitch, &mut out);
            } else if d < 0.62 {
                estate += 1;
                apartment_block(rng, block, pitch, d, estate, &mut out);
            } else {
                house_block(rng, block, pitch, &mut out);
            }
        }
    }
    out
}

/// The lattice cells of a block: (column, row, lower-left corner).
fn cells(block: Rect<f64>, pitch: Pitch) -> impl Iterator<Item = (usize, usize, Coord<f64>)> {
    let origin = Coord { x: block.min().x + 5.0, y: block.min().y + 5.0 };
    let cols = ((block.max().x - 5.0 - origin.x) / pitch.x).floor().max(0.0) as usize;
    let rows = ((block.max().y - 5.0 - origin.y) / pitch.y).floor().max(0.0) as usize;
    (0..rows).flat_map(move |r| {
        (0..cols).map(move |c| (c, r, Coord { x: origin.x + c as f64 * pitch.x, y: origin.y + r as f64 * pitch.y }))
    })
}

fn building(rect_m: Rect<f64>, floors: i32, units: i32, households: i32, use_: Use, name: Option<String>) -> Building {
    Building { geom: rect_m.to_polygon(), floors, units, households, use_, name, leader: None, rect_m }
}

const ESTATES: [&str; 12] = [
    "阳光花园",
    "锦绣家园",
    "幸福里",
    "文化苑",
    "鲁山新村",
    "沂河小区",
    "振兴小区",
    "金桥花园",
    "凤凰城",
    "胜利小区",
    "新华苑",
    "春晖园",
];

/// South-facing slabs, one per lattice cell (6-storey walk-ups; 11–18 storeys near the centre);
/// some cells are left for green space and parking.
fn apartment_block(
    rng: &mut ChaCha8Rng,
    block: Rect<f64>,
    pitch: Pitch,
    d: f64,
    estate: usize,
    out: &mut Vec<Building>,
) {
    let round = estate / ESTATES.len();
    let estate_name = match round {
        0 => ESTATES[estate % ESTATES.len()].to_string(),
        r => format!("{}{}期", ESTATES[estate % ESTATES.len()], r + 1),
    };
    let len = pitch.x - 10.0;
    let units = (len / 13.0).floor() as i32;
    let mut number = 0;
    for (_, _, corner) in cells(block, pitch) {
        if rng.random::<f64>() < 0.12 {
            continue;
        }
        number += 1;
        let floors = if d < 0.3 { rng.random_range(11..=18) } else { rng.random_range(5..=7) };
        let rect = Rect::new(corner, Coord { x: corner.x + len, y: corner.y + 12.0 });
        let mut b = building(
            rect,
            floors,
            units,
            floors * units * 2,
            Use::Residential,
            Some(format!("{estate_name}{number}号楼")),
        );
        b.leader = Some((names::person(out.len() * 13 + 5), fake_mobile(out.len())));
        out.push(b);
    }
}

/// Courtyard houses of one or two storeys, six to a lattice cell (the older low-rise edge).
fn house_block(rng: &mut ChaCha8Rng, block: Rect<f64>, pitch: Pitch, out: &mut Vec<Building>) {
    let (w, h) = (pitch.x / 3.0 - 5.0, pitch.y / 2.0 - 4.5);
    for (_, _, corner) in cells(block, pitch) {
        for k in 0..6 {
            if rng.random::<f64>() < 0.1 {
                continue;
            }
            let x = corner.x + f64::from(k % 3) * pitch.x / 3.0;
            let y = corner.y + f64::from(k / 3) * pitch.y / 2.0;
            let floors = rng.random_range(1..=2);
            let households = if rng.random::<f64>() < 0.3 { 2 } else { 1 };
            let rect = Rect::new(Coord { x, y }, Coord { x: x + w, y: y + h });
            out.push(building(rect, floors, 1, households, Use::Residential, None));
        }
    }
}

/// A school, clinic, market or service centre (the first row) with shops behind: no households.
fn public_block(rng: &mut ChaCha8Rng, block: Rect<f64>, pitch: Pitch, out: &mut Vec<Building>) {
    let name = names::PUBLIC_BUILDINGS[rng.random_range(0..names::PUBLIC_BUILDINGS.len())];
    for (col, row, corner) in cells(block, pitch) {
        let rect = Rect::new(corner, Coord { x: corner.x + pitch.x - 10.0, y: corner.y + 12.0 });
        if row == 0 {
            let label = if col == 0 { Some(name.to_string()) } else { None };
            out.push(building(rect, rng.random_range(2..=5), 0, 0, Use::Public, label));
        } else if rng.random::<f64>() < 0.5 {
            out.push(building(rect, rng.random_range(1..=3), 1, 0, Use::Commercial, None));
        }
    }
}

/// Scale apartment households (some flats stand empty) so the city averages 300 per grid.
fn calibrate_households(buildings: &mut [Building], target: i64) {
    let flats: i64 =
        buildings.iter().filter(|b| b.floors > 2 && b.use_ == Use::Residential).map(|b| i64::from(b.households)).sum();
    let others: i64 = buildings
        .iter()
        .filter(|b| !(b.floors > 2 && b.use_ == Use::Residential))
        .map(|b| i64::from(b.households))
        .sum();
    let factor = ((target - others) as f64 / flats as f64).clamp(0.2, 1.0);
    let mut total = others;
    for b in buildings.iter_mut().filter(|b| b.floors > 2 && b.use_ == Use::Residential) {
        b.households = ((f64::from(b.households) * factor).round() as i32).max(1);
        total += i64::from(b.households);
    }
    // Settle the rounding remainder one household at a time over the largest buildings.
    let mut i = 0;
    let len = buildings.len();
    while total != target && i < len * 4 {
        let b = &mut buildings[i % len];
        if b.use_ == Use::Residential && b.households > 4 {
            let step = if total > target { -1 } else { 1 };
            b.households += step;
            total += i64::from(step);
        }
        i += 1;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    County,
    Subdistrict(usize),
    Community(usize, usize),
}

#[derive(Default)]
struct Partition {
    /// Put in front of community and grid codes (a synthetic county's code and a dash).
    prefix: String,
    communities: Vec<Community>,
    grids: Vec<Grid>,
    counters: [usize; 2],
    in_community: usize,
}

/// Grids per community subtree (about eight).
const COMMUNITY_GRIDS: usize = 10;

impl Partition {
    fn split(&mut self, b: &[Building], ids: Vec<usize>, rect: Rect<f64>, n: usize, level: Level) {
        let level = match level {
            Level::Subdistrict(s) if n <= COMMUNITY_GRIDS => {
                let k = self.communities.len();
                self.communities.push(Community {
                    code: format!("{}{}-C{:02}", self.prefix, ["NM", "LS"][s], k + 1),
                    name: names::community(k),
                    subdistrict: s,
                });
                self.in_community = 0;
                Level::Community(s, k)
            }
            other => other,
        };
        if n == 1 {
            self.leaf(b, &ids, rect, level);
            return;
        }
        let n_low = n / 2;
        // The first cut runs east–west: south of it 南麻, north of it 历山. Below that, cut
        // across the longer side (compact grids) unless the other side balances clearly better.
        let prefer_horizontal = level == Level::County || rect.height() > rect.width();
        let share = ids.iter().map(|&i| f64::from(b[i].households)).sum::<f64>() / n as f64;
        let preferred = best_cut(b, ids.clone(), n_low, n, prefer_horizontal);
        let other = if level == Level::County { None } else { best_cut(b, ids, n_low, n, !prefer_horizontal) };
        let chosen = match (preferred, other) {
            (Some(p), Some(o)) if p.error > 0.1 * share && o.error < p.error => o,
            (Some(p), _) => p,
            (None, Some(o)) => o,
            (None, None) => unreachable!("a block lattice always has a gap between buildings"),
        };
        let Cut { at: cut, low, high, horizontal, .. } = chosen;
        let (low_rect, high_rect) = if horizontal {
            (
                Rect::new(rect.min(), Coord { x: rect.max().x, y: cut }),
                Rect::new(Coord { x: rect.min().x, y: cut }, rect.max()),
            )
        } else {
            (
                Rect::new(rect.min(), Coord { x: cut, y: rect.max().y }),
                Rect::new(Coord { x: cut, y: rect.min().y }, rect.max()),
            )
        };
        let (low_level, high_level) = match level {
            Level::County => (Level::Subdistrict(0), Level::Subdistrict(1)),
            other => (other, other),
        };
        self.split(b, low, low_rect, n_low, low_level);
        self.split(b, high, high_rect, n - n_low, high_level);
    }

    fn leaf(&mut self, b: &[Building], ids: &[usize], rect: Rect<f64>, level: Level) {
        let Level::Community(s, community) = level else { unreachable!("communities are made above leaves") };
        self.counters[s] += 1;
        self.in_community += 1;
        let cell = rect.to_polygon();
        self.grids.push(Grid {
            code: format!("{}{}-{:03}", self.prefix, ["NM", "LS"][s], self.counters[s]),
            name: format!("{}第{}网格", self.communities[community].name, self.in_community),
            community,
            cell,
            households: ids.iter().map(|&i| i64::from(b[i].households)).sum(),
        });
    }
}

struct Cut {
    at: f64,
    low: Vec<usize>,
    high: Vec<usize>,
    horizontal: bool,
    /// How far the households below the cut miss their target.
    error: f64,
}

/// Where to cut a set of buildings so that `n_low / n` of the households fall below the cut:
/// only in a gap no building spans; among gaps within 10 % of a grid's share of the target,
/// the widest (a road) wins.
fn best_cut(b: &[Building], mut ids: Vec<usize>, n_low: usize, n: usize, horizontal: bool) -> Option<Cut> {
    let lo = |i: usize| if horizontal { b[i].rect_m.min().y } else { b[i].rect_m.min().x };
    let hi = |i: usize| if horizontal { b[i].rect_m.max().y } else { b[i].rect_m.max().x };
    ids.sort_by(|&p, &q| lo(p).total_cmp(&lo(q)).then(p.cmp(&q)));
    let total: i64 = ids.iter().map(|&i| i64::from(b[i].households)).sum();
    let target = total as f64 * n_low as f64 / n as f64;
    // Near the leaves balance matters more than following a road.
    let tolerance = if n <= 4 { 0.0 } else { (total as f64 / n as f64) * 0.10 };
    let mut reach = f64::NEG_INFINITY;
    let mut below = 0i64;
    // (error, -width, position, index)
    let mut best: Option<(f64, f64, f64, usize)> = None;
    for (k, &i) in ids.iter().enumerate() {
        if k > 0 && reach < lo(i) {
            let error = (below as f64 - target).abs();
            let width = lo(i) - reach;
            let candidate = (error, width, f64::midpoint(reach, lo(i)), k);
            best = Some(match best {
                None => candidate,
                Some(current) => {
                    let both_close = error <= tolerance && current.0 <= tolerance;
                    let better = if both_close { width > current.1 } else { error < current.0 };
                    if better { candidate } else { current }
                }
            });
        }
        reach = reach.max(hi(i));
        below += i64::from(b[i].households);
    }
    let (error, _, at, k) = best?;
    let high = ids.split_off(k);
    Some(Cut { at, low: ids, high, horizontal, error })
}

/// Road centre lines clipped to the urban outline.
fn roads(urban: &Polygon<f64>, xs: &[Line], ys: &[Line], rx: f64, ry: f64) -> Vec<Road> {
    let mut out = Vec::new();
    let mut k_main = 0;
    let mut k_street = 12;
    let lines = xs
        .iter()
        .map(|l| (l, LineString::from(vec![(l.at, -ry * 1.2), (l.at, ry * 1.2)])))
        .chain(ys.iter().map(|l| (l, LineString::from(vec![(-rx * 1.2, l.at), (rx * 1.2, l.at)]))));
    for (line, ls) in lines {
        let clipped = urban.clip(&MultiLineString(vec![ls]), false);
        if clipped.0.is_empty() {
            continue;
        }
        let name = if line.main {
            k_main += 1;
            names::road(k_main - 1)
        } else {
            k_street += 1;
            names::road(k_street - 1)
        };
        out.push(Road { name, class: if line.main { "main" } else { "street" }, geom: clipped });
    }
    out
}

/// Stations at road crossings on main roads, spread out by farthest-point sampling.
fn stations(
    rng: &mut ChaCha8Rng,
    urban: &Polygon<f64>,
    xs: &[Line],
    ys: &[Line],
    count: usize,
    county_name: &str,
) -> Vec<Station> {
    let mut candidates = Vec::new();
    for (ix, x) in xs.iter().enumerate() {
        for (iy, y) in ys.iter().enumerate() {
            if !(x.main || y.main) {
                continue;
            }
            // Stand on the block corner beside the crossing, not in the carriageway.
            let p = Coord { x: x.at + x.width / 2.0 + 2.0, y: y.at + y.width / 2.0 + 2.0 };
            if urban.contains(&Point(p)) && urban.contains(&Point(Coord { x: p.x + 30.0, y: p.y + 30.0 })) {
                candidates.push((p, ix, iy));
            }
        }
    }
    let mut chosen: Vec<(Coord<f64>, usize, usize)> = Vec::new();
    let mut nearest = vec![f64::INFINITY; candidates.len()];
    let mut next = candidates
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.0.x.hypot(a.1.0.y).total_cmp(&b.1.0.x.hypot(b.1.0.y)))
        .map(|(i, _)| i);
    while let Some(i) = next {
        if chosen.len() == count {
            break;
        }
        let c = candidates[i];
        chosen.push(c);
        for (j, other) in candidates.iter().enumerate() {
            nearest[j] = nearest[j].min((other.0.x - c.0.x).hypot(other.0.y - c.0.y));
        }
        next = nearest.iter().enumerate().filter(|(_, d)| **d > 0.0).max_by(|a, b| a.1.total_cmp(b.1)).map(|(j, _)| j);
    }
    chosen
        .into_iter()
        .enumerate()
        .map(|(k, (p, ix, _))| {
            let road = names::road(ix % names::ROADS.len());
            let mut services = vec!["rest", "water", "charging"];
            services.extend(names::STATION_EXTRA_SERVICES.iter().filter(|_| rng.random::<f64>() < 0.55));
            let subdistrict = if p.y < 0.0 { "南麻街道" } else { "历山街道" };
            Station {
                name: format!("暖“新”驿站·{road}{}号站", k + 1),
                address: format!("{county_name}{subdistrict}{road}{}号", 10 + (k * 37) % 290),
                point: Point(p),
                opening_hours: names::STATION_HOURS[rng.random_range(0..names::STATION_HOURS.len())],
                services,
                host_org: names::STATION_HOSTS[rng.random_range(0..names::STATION_HOSTS.len())],
                phone: format!("0533-0{:06}", 300_000 + k),
            }
        })
        .collect()
}

/// Clearly fictional mobile numbers: no real Chinese mobile number starts with 100.
fn fake_mobile(k: usize) -> String {
    format!("100{k:08}")
}

/// Grid workers spread over all grids (three or four each); riders on random grids. Logins and
/// phones are numbered on from the previous counties' (`first_worker`, `first_rider`).
fn people(rng: &mut ChaCha8Rng, grids: usize, first_worker: usize, first_rider: usize) -> (Vec<Person>, Vec<Person>) {
    let w = (first_worker..first_worker + GRID_WORKERS)
        .map(|k| Person {
            login: format!("gw-{:04}", k + 1),
            display_name: names::person(k),
            phone: fake_mobile(50_000_000 + k),
            grid: (k - first_worker) % grids,
        })
        .collect();
    let r = (first_rider..first_rider + RIDERS)
        .map(|k| Person {
            login: format!("rider-{:02}", k + 1),
            display_name: names::person(k * 31 + 7),
            phone: fake_mobile(60_000_000 + k),
            grid: rng.random_range(0..grids),
        })
        .collect();
    (w, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_city_has_the_countys_numbers_and_balanced_grids() {
        let city = generate(1);
        assert_eq!(city.grids.len(), GRIDS);
        assert_eq!(city.stations.len(), STATIONS);
        assert_eq!(city.workers.len(), GRID_WORKERS);
        assert_eq!(city.riders.len(), RIDERS);
        assert!(city.buildings.len() >= 10_000, "{} buildings", city.buildings.len());
        let mut sizes: Vec<i64> = city.grids.iter().map(|g| g.households).collect();
        sizes.sort_unstable();
        eprintln!(
            "{} buildings; households per grid min {} median {} max {}",
            city.buildings.len(),
            sizes[0],
            sizes[sizes.len() / 2],
            sizes[sizes.len() - 1]
        );
        for g in &city.grids {
            assert!((150..=450).contains(&g.households), "{} has {} households", g.code, g.households);
        }
        let total: i64 = city.grids.iter().map(|g| g.households).sum();
        let buildings: i64 = city.buildings.iter().map(|b| i64::from(b.households)).sum();
        assert_eq!(total, buildings);
        assert_eq!(city.subdistricts.len(), 2);
        assert!(city.communities.len() >= 20);
    }

    #[test]
    fn copies_are_separate_counties_in_places_of_their_own() {
        let places: std::collections::HashSet<(i64, i64)> = (1..=MAX_COUNTIES)
            .map(county_offset)
            .map(|(x, y)| ((x * 10.0).round() as i64, (y * 10.0).round() as i64))
            .collect();
        assert_eq!(places.len(), MAX_COUNTIES as usize, "every county has its own lattice slot");
        let copy = generate(2);
        assert_eq!(copy.county_code, "S002");
        assert_eq!(copy.grids.len(), GRIDS);
        assert!(copy.grids.iter().all(|g| g.code.starts_with("S002-")));
        assert!(copy.communities.iter().all(|c| c.code.starts_with("S002-")));
        let boundary =
            geo::BoundingRect::bounding_rect(copy.boundary.as_ref().expect("synthetic boundary")).expect("not empty");
        let urban = geo::BoundingRect::bounding_rect(&copy.urban).expect("not empty");
        assert!(boundary.min().x < urban.min().x && urban.max().x < boundary.max().x);
        assert!(boundary.min().y < urban.min().y && urban.max().y < boundary.max().y);
        // Not Yiyuan's box (117.898–118.517 E, 35.924–36.389 N).
        assert!(
            boundary.min().x > 118.517
                || boundary.max().x < 117.898
                || boundary.min().y > 36.389
                || boundary.max().y < 35.924
        );
        assert_eq!(copy.workers[0].login, format!("gw-{:04}", GRID_WORKERS + 1));
    }

    #[test]
    fn generation_is_deterministic() {
        let (a, b) = (generate(1), generate(1));
        assert_eq!(a.buildings.len(), b.buildings.len());
        assert_eq!(
            a.grids.iter().map(|g| g.households).collect::<Vec<_>>(),
            b.grids.iter().map(|g| g.households).collect::<Vec<_>>()
        );
        assert_eq!(a.grids[100].cell, b.grids[100].cell);
        assert_eq!(a.stations[7].name, b.stations[7].name);
    }
}
