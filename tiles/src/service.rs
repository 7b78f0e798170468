//! The tile service: cache lookup, a bounded number of concurrent renders (in-memory layers cut
//! in Rust, per-tile layers read from PostgreSQL), gzip, and [`TileService::changed`], the one
//! entry point through which every data change (API writes through the server's `changes`
//! module, the trigger listener in [`crate::notify`]) reaches the in-memory features and the
//! cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use tokio::sync::Semaphore;

use crate::cache::{CachedTile, TileCache, TileKey};
use crate::layer::LayerSet;
use crate::metrics::TileMetrics;
use crate::store::FeatureStore;
use crate::tile::{Bbox, TileCoord};

/// Settings of the tile service (the server fills them from its command line).
#[derive(Debug, Clone)]
pub struct TileConfig {
    /// Upper bound of the cache, in compressed bytes.
    pub cache_bytes: u64,
    /// Tile renders running at once; further requests wait for a slot.
    pub concurrency: usize,
    /// How long a request waits for a render slot before it is answered 503.
    pub queue_timeout: Duration,
    /// gzip level (0–9) for rendered tiles.
    pub gzip_level: u32,
}

impl Default for TileConfig {
    fn default() -> Self {
        Self { cache_bytes: 256 << 20, concurrency: 8, queue_timeout: Duration::from_secs(10), gzip_level: 6 }
    }
}

/// Why a tile could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    #[error("every tile render slot stayed busy")]
    Busy,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("compressing a tile failed: {0}")]
    Compress(#[from] std::io::Error),
}

/// A tile ready to send, and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct Served {
    pub tile: Arc<CachedTile>,
    pub hit: bool,
}

/// Renders, caches and invalidates tiles. Share it as `Arc<TileService>`.
pub struct TileService {
    pool: PgPool,
    cache: TileCache,
    limiter: Semaphore,
    config: TileConfig,
    pub metrics: TileMetrics,
    pub(crate) listening: AtomicBool,
    /// Grids, buildings, stations and roads in memory ([`FeatureStore`]).
    pub store: FeatureStore,
    /// Where the store reads whole layers and changed boxes: bulk reads, not tile renders, so
    /// not under the tile pool's per-render statement timeout.
    load_pool: PgPool,
}

impl TileService {
    /// A service rendering from `pool`. For production give it a pool of its own whose
    /// connections set `statement_timeout` and `client_connection_check_interval` (see
    /// [`tile_pool_options`](crate::tile_pool_options)), so a slow or abandoned render stops.
    pub fn new(pool: PgPool, config: TileConfig) -> Self {
        Self {
            load_pool: pool.clone(),
            pool,
            cache: TileCache::new(config.cache_bytes),
            limiter: Semaphore::new(config.concurrency.max(1)),
            config,
            metrics: TileMetrics::default(),
            listening: AtomicBool::new(false),
            store: FeatureStore::default(),
        }
    }

    /// Open every render connection now (each runs the pool's warm-up statement as it
    /// connects), so the first map views after a start wait for renders only. A failure is
    /// logged: the pool opens connections on demand anyway.
    pub async fn warm_up(&self) {
        let opened = futures::future::join_all((0..self.config.concurrency.max(1)).map(|_| self.pool.acquire())).await;
        let failed = opened.iter().filter(|c| c.is_err()).count();
        if failed > 0 {
            tracing::warn!(failed, "could not open every tile render connection at start");
        }
    }

    /// Read the in-memory layers through `pool` (the server's main pool) instead of the render pool.
    #[must_use]
    pub fn with_load_pool(mut self, pool: PgPool) -> Self {
        self.load_pool = pool;
        self
    }

    /// Load the in-memory layers once the change listener is listening (so no change can fall
    /// between the load and the first notification), waiting for it up to `wait`. A failure is
    /// logged: the first tile that needs a layer loads it.
    pub async fn preload(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while !self.is_listening() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(err) = self.store.load_all(&self.load_pool).await {
            tracing::warn!(%err, "could not load the tile layers into memory at start");
        }
    }

    pub fn config(&self) -> &TileConfig {
        &self.config
    }

    pub fn cache(&self) -> &TileCache {
        &self.cache
    }

    /// Whether the change listener is connected and `LISTEN`ing right now.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Relaxed)
    }

    /// The tile from the cache, or rendered (and cached unless the data changed meanwhile).
    /// Dropping the future (the client went away) abandons the render in PostgreSQL too.
    pub async fn tile(&self, layers: LayerSet, tile: TileCoord) -> Result<Served, TileError> {
        let started = Instant::now();
        let key = TileKey { layers, tile };
        if let Some(cached) = self.cache.get(&key) {
            self.metrics.hits.fetch_add(1, Relaxed);
            self.metrics.request.observe(started.elapsed());
            return Ok(Served { tile: cached, hit: true });
        }
        self.metrics.misses.fetch_add(1, Relaxed);
        let generation = self.cache.generation();
        let rendered = match self.render(layers, tile).await {
            Ok(t) => Arc::new(t),
            Err(err) => {
                match err {
                    TileError::Busy => self.metrics.busy.fetch_add(1, Relaxed),
                    _ => self.metrics.errors.fetch_add(1, Relaxed),
                };
                return Err(err);
            }
        };
        self.metrics.render.observe(started.elapsed());
        if !self.cache.insert_if_fresh(key, Arc::clone(&rendered), generation) {
            self.metrics.stale_discarded.fetch_add(1, Relaxed);
        }
        self.metrics.request.observe(started.elapsed());
        Ok(Served { tile: rendered, hit: false })
    }

    /// Render without touching the cache (the PMTiles export uses this too).
    pub async fn render(&self, layers: LayerSet, tile: TileCoord) -> Result<CachedTile, TileError> {
        let raw = self.render_mvt(layers, tile).await?;
        let level = self.config.gzip_level.min(9);
        let compressed = tokio_free_gzip(&raw, level)?;
        Ok(compressed)
    }

    /// The uncompressed MVT (empty when the tile holds no features): in-memory MVT layers cut
    /// from the store, per-tile ones (reports, outlines) from their rows in PostgreSQL
    /// ([`crate::render`]).
    pub async fn render_mvt(&self, layers: LayerSet, tile: TileCoord) -> Result<Vec<u8>, TileError> {
        let _permit = tokio::time::timeout(self.config.queue_timeout, self.limiter.acquire())
            .await
            .map_err(|_| TileError::Busy)?
            .map_err(|_| TileError::Busy)?;
        let within = tile.buffered_bounds();
        let mut out = Vec::new();
        for layer in crate::schema::drawn_at(layers, tile.z) {
            if layer.in_memory {
                let found = self.store.features_in(&self.load_pool, layer, &within).await?;
                out.extend(crate::render::cut(layer, found.views(), tile));
            } else {
                let source = layer.source_at(tile.z).expect("drawn_at yields layers drawn at this zoom");
                let mut guard = AbandonGuard { conn: Some(self.pool.acquire().await?), metrics: &self.metrics };
                let conn = guard.conn.as_mut().expect("set just above");
                let features = crate::render::fetch(conn, layer, source, Some(within)).await?;
                // Finished: the connection is healthy and goes back to the pool.
                drop(guard.conn.take());
                out.extend(crate::render::cut(layer, &features, tile));
            }
        }
        Ok(crate::encode::encode(out))
    }

    /// Data of `layers` changed inside `bbox` (EPSG:3857 metres; [`Bbox::from_lonlat`] for
    /// degrees), committed. The one entry point for every change: the service decides itself
    /// which of the layers it keeps in memory — those re-read their features there first — and
    /// then drops the touched tiles of all of them from the cache, so the very next tile request
    /// already shows the change. Returns how many cached tiles were dropped.
    pub async fn changed(&self, layers: LayerSet, bbox: Bbox) -> usize {
        self.changed_boxes(layers, &[bbox]).await
    }

    /// As [`TileService::changed`], for several boxes at once (one trigger notification).
    pub async fn changed_boxes(&self, layers: LayerSet, boxes: &[Bbox]) -> usize {
        for layer in layers.iter().filter(|l| FeatureStore::keeps(*l)) {
            if let Err(err) = self.store.refresh(&self.load_pool, layer, boxes).await {
                // Cannot tell what is current: forget the layer, the next tile reloads it.
                tracing::warn!(%err, layer = layer.name(), "re-reading changed features failed; reloading the layer");
                self.store.clear_layer(layer).await;
            }
        }
        boxes.iter().map(|b| self.invalidate_cached(layers, *b)).sum()
    }

    /// Drop the cached tiles of `layers` inside `bbox` — the cache only, for data the tiles read
    /// per render (the generalised outlines); everything else goes through [`TileService::changed`].
    pub(crate) fn invalidate_cached(&self, layers: LayerSet, bbox: Bbox) -> usize {
        let dropped = self.cache.invalidate(layers, bbox);
        self.metrics.invalidations.fetch_add(1, Relaxed);
        self.metrics.invalidated_tiles.fetch_add(dropped as u64, Relaxed);
        dropped
    }

    /// Drop every cached tile.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
        self.metrics.cache_clears.fetch_add(1, Relaxed);
    }

    /// `/metrics` text for the tile path.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write as _;
        let mut text =
            self.metrics.render_prometheus(self.cache.entry_count(), self.cache.weighted_size(), self.is_listening());
        let sizes = self.store.sizes();
        text.push_str(
            "# HELP gridmap_tile_memory_loaded Whether every in-memory tile layer is loaded (1) or not yet (0).\n",
        );
        text.push_str("# TYPE gridmap_tile_memory_loaded gauge\n");
        let _ = writeln!(text, "gridmap_tile_memory_loaded {}", u8::from(sizes.iter().all(|(_, n)| n.is_some())));
        text.push_str("# HELP gridmap_tile_memory_features Features held in memory per tile layer.\n");
        text.push_str("# TYPE gridmap_tile_memory_features gauge\n");
        for (layer, n) in sizes {
            if let Some(n) = n {
                let _ = writeln!(text, "gridmap_tile_memory_features{{layer=\"{layer}\"}} {n}");
            }
        }
        text
    }
}

/// gzip and fingerprint a rendered MVT. Small tiles compress in well under a millisecond,
/// so this runs inline rather than on the blocking pool.
fn tokio_free_gzip(raw: &[u8], level: u32) -> Result<CachedTile, std::io::Error> {
    let digest = hex_digest(raw);
    if raw.is_empty() {
        return Ok(CachedTile::new(bytes::Bytes::new(), digest, 0));
    }
    Ok(CachedTile::new(gzip(raw, level)?.into(), digest, raw.len()))
}

thread_local! {
    /// One deflate state per worker thread, reset between tiles. A fresh state is ~300 KB of
    /// zeroed tables; allocating one per tile was a sixth of the cold tile path's CPU (page
    /// clearing) in a profile.
    static DEFLATE: std::cell::RefCell<Option<(u32, flate2::Compress)>> = const { std::cell::RefCell::new(None) };
}

/// RFC 1952 gzip of `raw`: a 10-byte header, raw deflate, CRC-32 and length.
fn gzip(raw: &[u8], level: u32) -> Result<Vec<u8>, std::io::Error> {
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut out = Vec::with_capacity(raw.len() / 2 + 64);
    out.extend_from_slice(&HEADER);
    DEFLATE.with_borrow_mut(|slot| {
        let compress = match slot {
            Some((l, c)) if *l == level => {
                c.reset();
                c
            }
            _ => &mut slot.insert((level, flate2::Compress::new(flate2::Compression::new(level), false))).1,
        };
        let mut input = raw;
        loop {
            out.reserve(input.len() / 2 + 1024);
            let before = compress.total_in();
            let status = compress
                .compress_vec(input, &mut out, flate2::FlushCompress::Finish)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            input = &input[usize::try_from(compress.total_in() - before).unwrap_or(input.len())..];
            if status == flate2::Status::StreamEnd {
                return Ok::<_, std::io::Error>(());
            }
        }
    })?;
    let mut crc = flate2::Crc::new();
    crc.update(raw);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    Ok(out)
}

/// First 128 bits of SHA-256, hex: the strong validator of a tile's content.
pub fn hex_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hash[..16].iter().fold(String::with_capacity(32), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// If a render is dropped mid-query (the client disconnected), sqlx would return the
/// connection to the pool and wait there for the query to finish. Detaching and dropping it
/// instead closes the socket, and PostgreSQL (with `client_connection_check_interval`) stops
/// the query; the pool opens a fresh connection when it needs one.
struct AbandonGuard<'a> {
    conn: Option<PoolConnection<sqlx::Postgres>>,
    metrics: &'a TileMetrics,
}

impl Drop for AbandonGuard<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.metrics.cancelled.fetch_add(1, Relaxed);
            drop(conn.detach());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn gzip_round_trips_and_the_reused_state_carries_nothing_over() {
        let big: Vec<u8> = (0..300_000u32).flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()).collect();
        for (raw, level) in
            [(&b"hello tile"[..], 6), (&big[..], 6), (&b"again"[..], 6), (&big[..1000], 1), (&b"x"[..], 9)]
        {
            let gz = gzip(raw, level).expect("compress");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut back).expect("valid gzip");
            assert_eq!(back, raw);
        }
    }
}
