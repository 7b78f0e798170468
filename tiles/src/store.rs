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

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rstar::{AABB, Envelope as _, RTree, RTreeObject};
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::layer::Layer;
use crate::render::{Feature, fetch};
use crate::schema::{MVT_LAYERS, MvtLayer};
use crate::tile::Bbox;

/// The MVT layers kept in memory (the others are read per tile from PostgreSQL).
pub fn in_memory() -> impl Iterator<Item = &'static MvtLayer> {
    MVT_LAYERS.iter().filter(|m| m.in_memory)
}

/// A feature in the R-tree, by its box.
#[derive(Debug, Clone)]
struct Item {
    envelope: AABB<[f64; 2]>,
    feature: Arc<Feature>,
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

fn item(feature: Feature) -> Option<Item> {
    use geo::BoundingRect as _;
    let r = feature.geom.bounding_rect()?;
    Some(Item {
        envelope: AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
        feature: Arc::new(feature),
    })
}

/// One layer: the current tree (swapped whole, so readers never wait) and the lock that makes
/// loads and refreshes take turns.
#[derive(Default)]
struct Slot {
    tree: ArcSwapOption<RTree<Item>>,
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

impl FeatureStore {
    /// Whether the store keeps any MVT layer of `layer`.
    pub fn keeps(layer: Layer) -> bool {
        layer.mvt_layers().any(|m| m.in_memory)
    }

    /// The features of `layer` whose box meets `bbox`, by id; loads the layer first if needed.
    pub async fn features_in(
        &self,
        pool: &PgPool,
        layer: &MvtLayer,
        bbox: &Bbox,
    ) -> Result<Vec<Arc<Feature>>, sqlx::Error> {
        let slot = &self.slots[index(layer).expect("an in-memory layer")];
        let tree = match slot.tree.load_full() {
            Some(tree) => tree,
            None => self.load(pool, layer).await?,
        };
        let mut found: Vec<Arc<Feature>> =
            tree.locate_in_envelope_intersecting(&aabb(bbox)).map(|i| Arc::clone(&i.feature)).collect();
        // Tree order depends on its history; id order makes a tile's bytes (and ETag) depend
        // on its content only.
        found.sort_unstable_by_key(|f| f.id);
        Ok(found)
    }

    /// Load `layer` unless another task did meanwhile.
    async fn load(&self, pool: &PgPool, layer: &MvtLayer) -> Result<Arc<RTree<Item>>, sqlx::Error> {
        let slot = &self.slots[index(layer).expect("an in-memory layer")];
        let _turn = slot.writer.lock().await;
        if let Some(tree) = slot.tree.load_full() {
            return Ok(tree);
        }
        let started = std::time::Instant::now();
        let mut conn = pool.acquire().await?;
        let features = fetch(&mut conn, layer, &layer.sources[0], None).await?;
        let tree = Arc::new(RTree::bulk_load(features.into_iter().filter_map(item).collect()));
        tracing::info!(
            layer = layer.name,
            features = tree.size(),
            ms = started.elapsed().as_millis() as u64,
            "tile layer loaded into memory"
        );
        slot.tree.store(Some(Arc::clone(&tree)));
        Ok(tree)
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
        for m in layer.mvt_layers() {
            let Some(i) = index(m) else { continue };
            let slot = &self.slots[i];
            let _turn = slot.writer.lock().await;
            let Some(tree) = slot.tree.load_full() else { continue };
            let mut conn = pool.acquire().await?;
            let mut fresh = Vec::new();
            for b in boxes {
                fresh.extend(fetch(&mut conn, m, &m.sources[0], Some(*b)).await?);
            }
            // A row meeting two boxes comes back twice; keep one.
            let mut seen = std::collections::HashSet::new();
            fresh.retain(|f| seen.insert(f.id));
            let touched = |e: &AABB<[f64; 2]>| boxes.iter().any(|b| aabb(b).intersects(e));
            let mut items: Vec<Item> =
                tree.iter().filter(|i| !touched(&i.envelope) && !seen.contains(&i.feature.id)).cloned().collect();
            items.extend(fresh.into_iter().filter_map(item));
            slot.tree.store(Some(Arc::new(RTree::bulk_load(items))));
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
        in_memory().zip(&self.slots).map(|(m, s)| (m.name, s.tree.load().as_ref().map(|t| t.size()))).collect()
    }
}
