//! The features of the base-map MVT layers (grids, grid labels, buildings, stations, roads —
//! those whose definition says `in_memory`) held in memory, one R-tree per MVT layer, so a cold
//! tile is cut from memory without a database round trip.
//!
//! Why: on a 2-core machine PostgreSQL's CPU was half the cost of a cold tile even after the
//! MVT encoding moved into Rust (index scan, row output, EWKB decoding). Reports stay per-tile
//! SQL: they change every minute, and their tiles are a source of their own.
//!
//! Never stale: every change the cache hears of (an API write before it answers; the triggers'
//! NOTIFY boxes for SQL behind the server's back) first re-reads the changed boxes into the
//! store, then drops the cached tiles. Within a layer, loads and refreshes take turns under one
//! lock, so a refresh announced during a load is applied after it. A layer is loaded when a
//! tile first needs it (or at start, `TileService::warm_up`); after a lost LISTEN connection
//! the store is emptied and reloads.
//!
//! Compact (issue 22: a province's 1.4 M buildings): a layer is a few immutable [`Chunk`]s —
//! flat `f64` coordinates and interned property values, decoded from the rows as they stream
//! in — and an R-tree of (box, chunk, index). The load reads id ranges over several
//! connections at once, so PostgreSQL and the decoding use both cores. A refresh adds a chunk
//! of the re-read rows and rebuilds the tree; the chunks are compacted once replaced features
//! are a quarter of what they hold.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use futures::TryStreamExt as _;
use rstar::{AABB, Envelope as _, RTree, RTreeObject};
use sqlx::{PgPool, Row as _};
use tokio::sync::Mutex;

use crate::compact::{Chunk, ChunkBuilder, View, row_values};
use crate::layer::Layer;
use crate::schema::{MVT_LAYERS, MvtLayer};
use crate::tile::Bbox;

/// The MVT layers kept in memory (the others are read per tile from PostgreSQL).
pub fn in_memory() -> impl Iterator<Item = &'static MvtLayer> {
    MVT_LAYERS.iter().filter(|m| m.in_memory)
}

/// A feature in the R-tree: its box and where it is held.
#[derive(Debug, Clone, Copy)]
struct Item {
    envelope: AABB<[f64; 2]>,
    chunk: u32,
    index: u32,
}

impl RTreeObject for Item {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

fn aabb(b: &Bbox) -> AABB<[f64; 2]> {
    AABB::from_corners([b.min_x, b.min_y], [b.max_x, b.max_y])
}

/// A loaded layer: its chunks and the tree over the features that are current.
struct Loaded {
    chunks: Vec<Arc<Chunk>>,
    tree: RTree<Item>,
}

impl Loaded {
    fn id(&self, item: &Item) -> i64 {
        self.chunks[item.chunk as usize].id(item.index as usize)
    }

    /// Features held in the chunks, current or replaced.
    fn held(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }
}

/// One layer: the current tree (swapped whole, so readers never wait) and the lock that makes
/// loads and refreshes take turns.
#[derive(Default)]
struct Slot {
    tree: ArcSwapOption<Loaded>,
    writer: Mutex<()>,
}

/// The in-memory features of the [`in_memory`] MVT layers, one slot each in that order.
pub struct FeatureStore {
    slots: Vec<Slot>,
}

impl Default for FeatureStore {
    fn default() -> Self {
        Self { slots: in_memory().map(|_| Slot::default()).collect() }
    }
}

fn index(layer: &MvtLayer) -> Option<usize> {
    in_memory().position(|m| m.name == layer.name)
}

/// Rows of `layer` whose box meets `within` (all for `None`) and, with `ids`, whose id is in
/// that half-open range, into one chunk (a row seen in `seen` before is skipped), with the
/// items for `chunk`.
async fn read_chunk(
    pool: &PgPool,
    layer: &'static MvtLayer,
    within: &[Bbox],
    ids: Option<(i64, i64)>,
    chunk: u32,
) -> Result<(Chunk, Vec<Item>), sqlx::Error> {
    let source = &layer.sources[0];
    let sql = match ids {
        None => layer.select_sql(source),
        Some(_) => layer.select_range_sql(source),
    };
    let everything = [Bbox::new(-1e9, -1e9, 1e9, 1e9)];
    let boxes = if within.is_empty() { &everything[..] } else { within };
    let mut conn = pool.acquire().await?;
    let mut builder = ChunkBuilder::new(layer);
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let geom_at = layer.columns.len() + 1;
    for b in boxes {
        let mut query = sqlx::query(&sql).bind(b.min_x).bind(b.min_y).bind(b.max_x).bind(b.max_y);
        if let Some((from, to)) = ids {
            query = query.bind(from).bind(to);
        }
        let mut rows = query.fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let id: i64 = row.try_get(0)?;
            // A row meeting two boxes comes back twice; keep one.
            if boxes.len() > 1 && !seen.insert(id) {
                continue;
            }
            let values = row_values(layer, &row)?;
            // The EWKB as sent (geometry's binary form); a null geometry draws nothing.
            let Some(ewkb) = row.try_get_unchecked::<Option<&[u8]>, _>(geom_at)? else { continue };
            let index = builder.len() as u32;
            if let Some(envelope) = builder.push(id, &values, ewkb) {
                items.push(Item { envelope, chunk, index });
            }
        }
    }
    Ok((builder.finish(), items))
}

/// Layers with more rows than this are read in id ranges over several connections at once.
const PARALLEL_FROM: i64 = 50_000;

/// Every row of `layer`, as chunks and their items.
async fn read_layer(pool: &PgPool, layer: &'static MvtLayer) -> Result<(Vec<Chunk>, Vec<Item>), sqlx::Error> {
    let (lo, hi): (Option<i64>, Option<i64>) =
        sqlx::query_as(&layer.id_range_sql(&layer.sources[0])).fetch_one(pool).await?;
    let ranges: Vec<Option<(i64, i64)>> = match (lo, hi) {
        (Some(lo), Some(hi)) if hi - lo >= PARALLEL_FROM => {
            // Two ranges per core: while one connection's rows are decoded another's are read.
            let parts = 2 * std::thread::available_parallelism().map_or(2, usize::from).clamp(1, 4) as i64;
            let step = (hi - lo) / parts + 1;
            (0..parts).map(|i| Some((lo + i * step, (lo + (i + 1) * step).min(hi + 1)))).collect()
        }
        _ => vec![None],
    };
    let tasks: Vec<_> = ranges
        .into_iter()
        .enumerate()
        .map(|(i, ids)| {
            let pool = pool.clone();
            tokio::spawn(async move { read_chunk(&pool, layer, &[], ids, i as u32).await })
        })
        .collect();
    let mut chunks = Vec::new();
    let mut items = Vec::new();
    for task in tasks {
        let (chunk, mut more) = task.await.map_err(|e| sqlx::Error::Protocol(format!("tile layer load: {e}")))??;
        chunks.push(chunk);
        items.append(&mut more);
    }
    Ok((chunks, items))
}

/// Bulk-load a tree off the async workers (a province's buildings take a second or more).
async fn build_tree(items: Vec<Item>) -> RTree<Item> {
    tokio::task::spawn_blocking(move || RTree::bulk_load(items)).await.expect("building the R-tree does not panic")
}

/// The features of a layer that meet a tile, by id: the layer as it was when asked (a refresh
/// meanwhile swaps in a new one and leaves this intact) and where each feature is in it.
pub struct Found {
    loaded: Arc<Loaded>,
    items: Vec<Item>,
    layer: &'static MvtLayer,
}

impl Found {
    /// Each feature, to cut into the tile without copying it out of the store.
    pub fn views(&self) -> impl Iterator<Item = View<'_>> {
        self.items.iter().map(|i| self.loaded.chunks[i.chunk as usize].view(i.index as usize, self.layer))
    }
}

impl FeatureStore {
    /// Whether the store keeps any MVT layer of `layer`.
    pub fn keeps(layer: Layer) -> bool {
        layer.mvt_layers().any(|m| m.in_memory)
    }

    /// The features of `layer` whose box meets `bbox`, by id; loads the layer first if needed.
    pub async fn features_in(
        &self,
        pool: &PgPool,
        layer: &'static MvtLayer,
        bbox: &Bbox,
    ) -> Result<Found, sqlx::Error> {
        let slot = &self.slots[index(layer).expect("an in-memory layer")];
        let loaded = match slot.tree.load_full() {
            Some(loaded) => loaded,
            None => self.load(pool, layer).await?,
        };
        let mut found: Vec<(i64, Item)> =
            loaded.tree.locate_in_envelope_intersecting(&aabb(bbox)).map(|i| (loaded.id(i), *i)).collect();
        // Tree order depends on its history; id order makes a tile's bytes (and ETag) depend
        // on its content only.
        found.sort_unstable_by_key(|(id, _)| *id);
        Ok(Found { loaded, items: found.into_iter().map(|(_, i)| i).collect(), layer })
    }

    /// Load `layer` unless another task did meanwhile.
    async fn load(&self, pool: &PgPool, layer: &'static MvtLayer) -> Result<Arc<Loaded>, sqlx::Error> {
        let slot = &self.slots[index(layer).expect("an in-memory layer")];
        let _turn = slot.writer.lock().await;
        if let Some(loaded) = slot.tree.load_full() {
            return Ok(loaded);
        }
        let started = std::time::Instant::now();
        let (chunks, items) = read_layer(pool, layer).await?;
        let read_ms = started.elapsed().as_millis() as u64;
        let tree = build_tree(items).await;
        let loaded = Arc::new(Loaded { chunks: chunks.into_iter().map(Arc::new).collect(), tree });
        tracing::info!(
            layer = layer.name,
            features = loaded.tree.size(),
            chunks = loaded.chunks.len(),
            mib = loaded.chunks.iter().map(|c| c.heap_bytes()).sum::<usize>() >> 20,
            read_ms,
            ms = started.elapsed().as_millis() as u64,
            "tile layer loaded into memory"
        );
        slot.tree.store(Some(Arc::clone(&loaded)));
        Ok(loaded)
    }

    /// Load every in-memory layer now (at start, so the first map views do not wait for it).
    pub async fn load_all(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        for layer in in_memory() {
            self.load(pool, layer).await?;
        }
        Ok(())
    }

    /// Re-read the rows of every in-memory MVT layer of `layer` inside `boxes` (EPSG:3857) from
    /// the database: features whose old box meets a box are replaced by what the database holds
    /// there now. The triggers announce both the old and the new box of a changed row, so moved,
    /// new and deleted rows all end up right. A layer not loaded yet is left alone (its load
    /// reads current data).
    pub async fn refresh(&self, pool: &PgPool, layer: Layer, boxes: &[Bbox]) -> Result<(), sqlx::Error> {
        if boxes.is_empty() {
            return Ok(());
        }
        for m in layer.mvt_layers() {
            let Some(i) = index(m) else { continue };
            let slot = &self.slots[i];
            let _turn = slot.writer.lock().await;
            let Some(old) = slot.tree.load_full() else { continue };
            let (fresh, fresh_items) = read_chunk(pool, m, boxes, None, old.chunks.len() as u32).await?;
            let seen: HashSet<i64> = (0..fresh.len()).map(|i| fresh.id(i)).collect();
            let touched = |e: &AABB<[f64; 2]>| boxes.iter().any(|b| aabb(b).intersects(e));
            let mut items: Vec<Item> =
                old.tree.iter().filter(|i| !touched(&i.envelope) && !seen.contains(&old.id(i))).copied().collect();
            let mut chunks = old.chunks.clone();
            if !fresh.is_empty() {
                chunks.push(Arc::new(fresh));
                items.extend(fresh_items);
            }
            let mut loaded = Loaded { chunks, tree: RTree::new() };
            // Replaced features stay in their chunk until a quarter of what is held is such.
            if (loaded.held() - items.len()) * 4 > loaded.held() {
                let mut builder = ChunkBuilder::new(m);
                for (n, item) in items.iter_mut().enumerate() {
                    builder.copy(&loaded.chunks[item.chunk as usize], item.index as usize);
                    *item = Item { chunk: 0, index: n as u32, ..*item };
                }
                loaded.chunks = vec![Arc::new(builder.finish())];
            }
            loaded.tree = build_tree(items).await;
            slot.tree.store(Some(Arc::new(loaded)));
        }
        Ok(())
    }

    /// Forget every layer (after a gap in change notifications): the next tile reloads them.
    pub async fn clear(&self) {
        for slot in &self.slots {
            let _turn = slot.writer.lock().await;
            slot.tree.store(None);
        }
    }

    /// Forget one layer (a TRUNCATE, or too many changes to say where).
    pub async fn clear_layer(&self, layer: Layer) {
        for i in layer.mvt_layers().filter_map(index) {
            let _turn = self.slots[i].writer.lock().await;
            self.slots[i].tree.store(None);
        }
    }

    /// Features held, per in-memory MVT layer (None: not loaded).
    pub fn sizes(&self) -> Vec<(&'static str, Option<usize>)> {
        in_memory().zip(&self.slots).map(|(m, s)| (m.name, s.tree.load().as_ref().map(|t| t.tree.size()))).collect()
    }
}
