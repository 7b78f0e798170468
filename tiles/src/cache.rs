//! The in-memory tile cache: gzip-compressed tiles bounded by bytes (moka), invalidated exactly
//! by the changed area — and guarded against the race where a render that read the old data
//! finishes after the invalidation and would put a stale tile back.
//!
//! The guard: every invalidation gets a generation number and is kept in a short log. A render
//! notes the generation before it queries; when it finishes, its tile is cached only if no
//! invalidation logged since then touches it (or, if the log has been trimmed past that point,
//! not at all). The check and the insert happen under the log's lock, and an invalidation logs
//! itself under that lock before it scans the cache, so every interleaving ends fresh.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use crate::layer::LayerSet;
use crate::tile::{BUFFER, Bbox, EARTH_HALF, EXTENT, MAX_ZOOM, TileCoord};

/// How many invalidations are remembered for the race guard. A render slower than this many
/// invalidations simply is not cached.
const LOG_LEN: usize = 1024;
const BROTLI_QUALITY: u32 = 5;
/// 2^20 bytes: more than any tile (the 500 KB rule).
const BROTLI_WINDOW: u32 = 20;

/// Rough per-entry bookkeeping cost, so many tiny (empty) tiles still count against the bound.
const ENTRY_OVERHEAD: u32 = 128;

/// What a cache entry is for: a set of layers at one tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileKey {
    pub layers: LayerSet,
    pub tile: TileCoord,
}

/// A rendered tile: gzip bytes (empty for an empty tile), its strong validator, and its raw size.
#[derive(Debug)]
pub struct CachedTile {
    /// The MVT, gzip-compressed; empty when the tile holds no features.
    pub gzip: bytes::Bytes,
    /// Hex digest of the uncompressed MVT (the basis of the ETag).
    pub digest: String,
    /// Size of the uncompressed MVT in bytes.
    pub raw_len: usize,
    /// The MVT brotli-compressed, made on the first request that prefers brotli and kept with
    /// the entry (most clients only ever ask for gzip, so it is not made up front).
    pub brotli: OnceLock<bytes::Bytes>,
}

impl CachedTile {
    pub fn is_empty(&self) -> bool {
        self.raw_len == 0
    }

    /// A tile to cache: gzip bytes, the digest of the uncompressed MVT, its size.
    pub fn new(gzip: bytes::Bytes, digest: String, raw_len: usize) -> Self {
        Self { gzip, digest, raw_len, brotli: OnceLock::new() }
    }

    /// The MVT brotli-compressed (quality 5: about 10% smaller than gzip level 6 on tiles, at a
    /// similar cost), made once per cached tile.
    pub fn brotli(&self) -> std::io::Result<bytes::Bytes> {
        if let Some(b) = self.brotli.get() {
            return Ok(b.clone());
        }
        let raw = self.identity()?;
        let mut out = Vec::with_capacity(raw.len() / 2);
        {
            use std::io::Write as _;
            let mut writer = brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, BROTLI_WINDOW);
            writer.write_all(&raw)?;
        }
        let bytes = bytes::Bytes::from(out);
        // A concurrent request may have set it first; both made the same bytes.
        let _ = self.brotli.set(bytes.clone());
        Ok(bytes)
    }

    /// The uncompressed MVT, for the rare client that does not accept gzip.
    pub fn identity(&self) -> std::io::Result<Vec<u8>> {
        use std::io::Read as _;
        let mut raw = Vec::with_capacity(self.raw_len);
        if !self.gzip.is_empty() {
            flate2::read::GzDecoder::new(&self.gzip[..]).read_to_end(&mut raw)?;
        }
        Ok(raw)
    }
}

/// One logged invalidation.
#[derive(Debug, Clone, Copy)]
enum Change {
    All,
    Area { layers: LayerSet, bbox: Bbox },
}

impl Change {
    fn touches(&self, key: &TileKey) -> bool {
        match self {
            Change::All => true,
            // A layer that draws nothing at the tile's zoom (buildings below z14, reports below
            // z12) cannot have changed it: such tiles stay cached.
            Change::Area { layers, bbox } => {
                layers.intersects(key.layers.drawn_at(key.tile.z)) && key.tile.buffered_bounds().intersects(bbox)
            }
        }
    }
}

/// Keys an invalidation looks up rather than walking the cache, however few tiles it holds
/// (a point's tiles over all zooms and their render buffers are ~30–80).
const LOOKUPS_AT_LEAST: usize = 256;

/// Every tile, at every zoom, whose buffered bounds may touch `bbox` (a superset: callers
/// check [`Change::touches`]); `None` when there are more than `limit`.
fn tiles_near(bbox: Bbox, limit: usize) -> Option<Vec<TileCoord>> {
    let mut tiles = Vec::new();
    for z in 0..=MAX_ZOOM {
        let size = TileCoord::size_at(z);
        // The render buffer, plus a hair so a box exactly on an edge keeps both neighbours.
        let pad = size * (f64::from(BUFFER) / f64::from(EXTENT) + 1e-6);
        let last = (1u64 << z) - 1;
        let index = |metres: f64| -> u32 {
            // Clamped to the tile range first, so the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let i = (metres / size).floor().clamp(0.0, last as f64) as u32;
            i
        };
        let (x0, x1) = (index(bbox.min_x - pad + EARTH_HALF), index(bbox.max_x + pad + EARTH_HALF));
        let (y0, y1) = (index(EARTH_HALF - bbox.max_y - pad), index(EARTH_HALF - bbox.min_y + pad));
        let count = (u64::from(x1 - x0) + 1) * (u64::from(y1 - y0) + 1);
        if tiles.len() as u64 + count > limit as u64 {
            return None;
        }
        for x in x0..=x1 {
            for y in y0..=y1 {
                tiles.push(TileCoord { z, x, y });
            }
        }
    }
    Some(tiles)
}

#[derive(Debug, Default)]
struct Log {
    generation: u64,
    recent: VecDeque<(u64, Change)>,
}

/// The tile cache. Cheap to share (`Arc` inside moka); all methods take `&self`.
pub struct TileCache {
    tiles: moka::sync::Cache<TileKey, Arc<CachedTile>>,
    log: Mutex<Log>,
    /// Every layer set ever cached (a handful: the base map, reports, a client's own mix), so a
    /// small change can look up its few candidate keys instead of scanning the cache.
    layer_sets: RwLock<Vec<LayerSet>>,
}

impl TileCache {
    /// A cache holding at most `max_bytes` of compressed tiles.
    pub fn new(max_bytes: u64) -> Self {
        let tiles = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            // Twice the gzip size: room for the brotli copy an entry may gain later (never
            // larger than gzip on tiles), so the byte bound holds either way.
            .weigher(|_k: &TileKey, v: &Arc<CachedTile>| {
                u32::try_from(v.gzip.len()).unwrap_or(u32::MAX).saturating_mul(2).saturating_add(ENTRY_OVERHEAD)
            })
            .build();
        Self { tiles, log: Mutex::new(Log::default()), layer_sets: RwLock::default() }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log inconsistent (push/pop only).
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &TileKey) -> Option<Arc<CachedTile>> {
        self.tiles.get(key)
    }

    /// Note this before rendering; pass it to [`TileCache::insert_if_fresh`] afterwards.
    pub fn generation(&self) -> u64 {
        self.log().generation
    }

    /// Cache a tile rendered from data read after `started` — unless an invalidation since
    /// then touches it, in which case the tile may show old data and is not kept.
    /// Returns whether it was cached.
    pub fn insert_if_fresh(&self, key: TileKey, tile: Arc<CachedTile>, started: u64) -> bool {
        let log = self.log();
        if log.generation != started {
            let oldest_logged = log.recent.front().map_or(u64::MAX, |(g, _)| *g);
            if oldest_logged > started + 1 {
                return false; // the log no longer reaches back to the render's start
            }
            if log.recent.iter().any(|(g, change)| *g > started && change.touches(&key)) {
                return false;
            }
        }
        let known = self.layer_sets.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&key.layers);
        if !known {
            let mut sets = self.layer_sets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !sets.contains(&key.layers) {
                sets.push(key.layers);
            }
        }
        self.tiles.insert(key, tile);
        true
    }

    fn record(&self, change: Change) {
        let mut log = self.log();
        log.generation += 1;
        let generation = log.generation;
        log.recent.push_back((generation, change));
        while log.recent.len() > LOG_LEN {
            log.recent.pop_front();
        }
    }

    /// Drop every cached tile of `layers` whose buffered bounds touch `bbox` (EPSG:3857).
    /// Returns how many were dropped. Tiles elsewhere stay cached.
    pub fn invalidate(&self, layers: LayerSet, bbox: Bbox) -> usize {
        // A NaN box would intersect nothing; treat it as "somewhere" and be safe.
        if !bbox.is_finite() {
            self.invalidate_all();
            return 0;
        }
        let change = Change::Area { layers, bbox };
        self.record(change);
        // A report is a point: about 30 tiles over all zooms may hold it, per layer set. Look
        // those up rather than walk every cached tile (each report did, and a full cache holds
        // tens of thousands); a large change (a grid edit, an import) still walks the cache.
        // Up to LOOKUPS_AT_LEAST keys are looked up whatever the cache holds: walking moka's
        // segments costs the same for a nearly empty cache as for a full one, and with none or a
        // few tiles cached (a server just started, an intake benchmark) every report walked
        // them — 2.6% of the machine's CPU, a tenth of the server's, in bench/scale.sh ×100's
        // intake (perf record -a).
        let sets = self.layer_sets.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let limit =
            (usize::try_from(self.tiles.entry_count()).unwrap_or(usize::MAX) / sets.len().max(1)).max(LOOKUPS_AT_LEAST);
        match tiles_near(bbox, limit) {
            Some(tiles) => self.drop_listed(&change, &sets, &tiles),
            None => self.drop_scanning(&change),
        }
    }

    fn drop_listed(&self, change: &Change, sets: &[LayerSet], tiles: &[TileCoord]) -> usize {
        let mut dropped = 0;
        for &layers in sets {
            for &tile in tiles {
                let key = TileKey { layers, tile };
                if change.touches(&key) && self.tiles.remove(&key).is_some() {
                    dropped += 1;
                }
            }
        }
        dropped
    }

    fn drop_scanning(&self, change: &Change) -> usize {
        let mut dropped = 0;
        for (key, _) in &self.tiles {
            if change.touches(&key) {
                self.tiles.invalidate(key.as_ref());
                dropped += 1;
            }
        }
        dropped
    }

    /// Drop everything (a missed notification, a TRUNCATE).
    pub fn invalidate_all(&self) {
        self.record(Change::All);
        self.tiles.invalidate_all();
    }

    /// Number of cached tiles (approximate while moka runs its maintenance).
    pub fn entry_count(&self) -> u64 {
        self.tiles.run_pending_tasks();
        self.tiles.entry_count()
    }

    /// Bytes held (approximate, see [`TileCache::entry_count`]).
    pub fn weighted_size(&self) -> u64 {
        self.tiles.run_pending_tasks();
        self.tiles.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Layer;
    use crate::tile::tiles_in_bbox;

    fn tile(bytes: &[u8]) -> Arc<CachedTile> {
        Arc::new(CachedTile::new(bytes::Bytes::copy_from_slice(bytes), "d".into(), bytes.len()))
    }

    fn key(layers: LayerSet, z: u32, x: u32, y: u32) -> TileKey {
        TileKey { layers, tile: TileCoord::new(z, x, y).expect("valid") }
    }

    /// A nearly empty cache is not walked, and a tile cached a moment ago (before the cache has
    /// counted it) is still dropped by the lookups.
    #[test]
    fn a_tile_just_cached_is_dropped_by_a_report_beside_it() {
        let cache = TileCache::new(1 << 30);
        let here = crate::tile::Bbox::from_lonlat(118.1754, 36.1751, 118.1754, 36.1751);
        let at14 = tiles_near(here, usize::MAX).expect("tiles").into_iter().find(|t| t.z == 14).expect("z14");
        let key = TileKey { layers: LayerSet::REPORTS, tile: at14 };
        assert!(cache.insert_if_fresh(key, tile(b"x"), cache.generation()));
        assert_eq!(cache.invalidate(LayerSet::REPORTS, here), 1);
        assert!(cache.get(&key).is_none());
    }

    /// Looking up the few candidate keys drops exactly what walking the whole cache drops.
    #[test]
    fn listed_and_scanning_invalidation_drop_the_same_tiles() {
        let fill = || {
            let cache = TileCache::new(1 << 30);
            let started = cache.generation();
            let here = crate::tile::Bbox::from_lonlat(118.1754, 36.1751, 118.1754, 36.1751);
            for layers in [LayerSet::BASE, LayerSet::REPORTS, LayerSet::ALL] {
                for z in 0..=MAX_ZOOM {
                    // The tiles around the point, and a ring of neighbours, at every zoom.
                    let centre =
                        tiles_near(here, usize::MAX).expect("tiles").into_iter().find(|t| t.z == z).expect("zoom");
                    for dx in -2i64..=2 {
                        for dy in -2i64..=2 {
                            let (col, row) = (i64::from(centre.x) + dx, i64::from(centre.y) + dy);
                            let width = 1i64 << z;
                            if (0..width).contains(&col) && (0..width).contains(&row) {
                                let key = key(
                                    layers,
                                    u32::from(z),
                                    u32::try_from(col).expect("x"),
                                    u32::try_from(row).expect("y"),
                                );
                                assert!(cache.insert_if_fresh(key, tile(b"x"), started));
                            }
                        }
                    }
                }
            }
            cache.tiles.run_pending_tasks();
            cache
        };
        for (n, (lon, lat)) in
            [(118.1754, 36.1751), (0.0, 0.0), (-180.0, 85.0), (118.17, 36.17)].into_iter().enumerate()
        {
            let b = crate::tile::Bbox::from_lonlat(lon, lat, lon + 1e-5, lat + 1e-5);
            let change = Change::Area { layers: LayerSet::REPORTS, bbox: b };
            let (listed, scanned) = (fill(), fill());
            let sets = listed.layer_sets.read().expect("sets").clone();
            let tiles = tiles_near(b, usize::MAX).expect("tiles");
            let dropped = listed.drop_listed(&change, &sets, &tiles);
            assert_eq!(dropped, scanned.drop_scanning(&change), "at ({lon}, {lat})");
            if n == 0 {
                // At the filled spot. Reports draw from z12: the reports and all-layer tiles at z12..=z22, at least.
                assert!(dropped >= 22, "reports and all-layer tiles at every zoom they draw ({dropped})");
            }
            listed.tiles.run_pending_tasks();
            scanned.tiles.run_pending_tasks();
            let keys = |c: &TileCache| {
                let mut k: Vec<(u8, u32, u32, String)> =
                    c.tiles.iter().map(|(k, _)| (k.tile.z, k.tile.x, k.tile.y, format!("{:?}", k.layers))).collect();
                k.sort_unstable();
                k
            };
            assert_eq!(keys(&listed), keys(&scanned), "at ({lon}, {lat})");
        }
    }

    #[test]
    fn invalidation_drops_touched_tiles_of_the_changed_layer_only() {
        let cache = TileCache::new(1 << 20);
        let grids = LayerSet::from(Layer::Grids);
        let buildings = LayerSet::from(Layer::Buildings);
        let here = key(grids, 14, 13570, 6415);
        let far = key(grids, 14, 13580, 6415);
        let other_layer = key(buildings, 14, 13570, 6415);
        let g = cache.generation();
        for k in [here, far, other_layer] {
            assert!(cache.insert_if_fresh(k, tile(b"x"), g));
        }
        let b = here.tile.bounds();
        let centre = Bbox::new(b.min_x + 10.0, b.min_y + 10.0, b.min_x + 20.0, b.min_y + 20.0);
        assert_eq!(cache.invalidate(grids, centre), 1);
        assert!(cache.get(&here).is_none());
        assert!(cache.get(&far).is_some());
        assert!(cache.get(&other_layer).is_some());
    }

    #[test]
    fn a_change_near_the_edge_reaches_the_neighbour_through_the_buffer() {
        let cache = TileCache::new(1 << 20);
        let grids = LayerSet::from(Layer::Grids);
        let left = key(grids, 16, 100, 100);
        let right = key(grids, 16, 101, 100);
        let g = cache.generation();
        cache.insert_if_fresh(left, tile(b"l"), g);
        cache.insert_if_fresh(right, tile(b"r"), g);
        // A point just inside `right`, within the buffer of `left`.
        let edge = right.tile.bounds().min_x + 1.0;
        let y = right.tile.bounds().min_y + 100.0;
        cache.invalidate(grids, Bbox::new(edge, y, edge, y));
        assert!(cache.get(&left).is_none() && cache.get(&right).is_none());
    }

    #[test]
    fn a_render_that_started_before_an_invalidation_is_not_cached() {
        let cache = TileCache::new(1 << 20);
        let grids = LayerSet::from(Layer::Grids);
        let k = key(grids, 15, 27140, 12830);
        let started = cache.generation();
        cache.invalidate(grids, k.tile.bounds());
        assert!(!cache.insert_if_fresh(k, tile(b"stale"), started));
        assert!(cache.get(&k).is_none());
        // An unrelated invalidation does not stop an insert.
        let started = cache.generation();
        cache.invalidate(grids, key(grids, 15, 0, 0).tile.bounds());
        assert!(cache.insert_if_fresh(k, tile(b"fresh"), started));
    }

    #[test]
    fn a_render_older_than_the_log_is_not_cached() {
        let cache = TileCache::new(1 << 20);
        let grids = LayerSet::from(Layer::Grids);
        let started = cache.generation();
        let far = key(grids, 10, 0, 0).tile.bounds();
        for _ in 0..=LOG_LEN {
            cache.invalidate(grids, far);
        }
        let k = key(grids, 10, 800, 400);
        assert!(!cache.insert_if_fresh(k, tile(b"?"), started));
    }

    #[test]
    fn a_change_leaves_tiles_of_zooms_where_its_layer_draws_nothing() {
        let cache = TileCache::new(1 << 20);
        let g = cache.generation();
        let here = Bbox::from_lonlat(118.165, 36.172, 118.165, 36.172);
        let low = tiles_in_bbox(&here, 11).next().expect("tile");
        let high = tiles_in_bbox(&here, 12).next().expect("tile");
        for t in [low, high] {
            cache.insert_if_fresh(TileKey { layers: LayerSet::ALL, tile: t }, tile(b"t"), g);
        }
        assert_eq!(cache.invalidate(LayerSet::REPORTS, here), 1, "reports start at z12");
        assert!(cache.get(&TileKey { layers: LayerSet::ALL, tile: low }).is_some());
        assert!(cache.get(&TileKey { layers: LayerSet::ALL, tile: high }).is_none());
    }

    #[test]
    fn clear_drops_everything() {
        let cache = TileCache::new(1 << 20);
        let all = LayerSet::ALL;
        let g = cache.generation();
        let b = Bbox::from_lonlat(118.1, 36.1, 118.2, 36.2);
        for t in tiles_in_bbox(&b, 14) {
            cache.insert_if_fresh(TileKey { layers: all, tile: t }, tile(b"t"), g);
        }
        assert!(cache.entry_count() > 0);
        let started = cache.generation();
        cache.invalidate_all();
        assert_eq!(cache.entry_count(), 0);
        assert!(!cache.insert_if_fresh(key(all, 0, 0, 0), tile(b"z"), started));
    }
}
