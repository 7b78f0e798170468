//! Tile service construction for `serve`, and `gridmap export-tiles`: every tile of the chosen
//! layers from z`minzoom` to z`maxzoom` over the data's extent, rendered exactly as the live
//! endpoint renders it, written to a PMTiles v3 archive for a static host or CDN.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use gridmap_tiles::tile::{BUFFER, EXTENT, mercator_to_lonlat, tiles_in_bbox};
use gridmap_tiles::{Bbox, LayerSet, TileConfig, TileCoord, TileService, tile_pool_options};
use pmtiles::{Compression, PmTilesWriter, TileType};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::{ExportTilesArgs, TileArgs};

/// The tile service `serve` uses: its own small pool whose connections carry the per-tile
/// statement timeout, so a burst of tile requests cannot take the API's connections.
pub fn tile_service(pool: &PgPool, args: &TileArgs) -> Arc<TileService> {
    let options = tile_pool_options(&pool.connect_options(), Duration::from_millis(args.tile_timeout_ms));
    let tile_pool = PgPoolOptions::new()
        .max_connections(args.tile_concurrency)
        // Kept open (TileService::warm_up opens them at start), so map views do not also wait
        // for connection set-up (TLS, authentication, PostGIS loading) on top of their renders.
        .min_connections(args.tile_concurrency)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // Best effort: with a very short GRIDMAP_TILE_TIMEOUT_MS the warm-up itself is
                // cancelled, and the connection is still good for tiles.
                if let Err(err) = sqlx::query(gridmap_tiles::TILE_CONNECTION_WARM_UP).execute(&mut *conn).await {
                    tracing::debug!(%err, "tile connection warm-up did not finish");
                }
                if let Err(err) = gridmap_tiles::warm_up_statements(conn).await {
                    tracing::debug!(%err, "tile statement warm-up did not finish");
                }
                Ok(())
            })
        })
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options);
    let config = TileConfig {
        cache_bytes: args.tile_cache_mb.saturating_mul(1 << 20),
        concurrency: args.tile_concurrency as usize,
        ..TileConfig::default()
    };
    Arc::new(TileService::new(tile_pool, config).with_load_pool(pool.clone()))
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub path: PathBuf,
    pub tiles: usize,
    pub empty_skipped: usize,
    pub bytes: u64,
    /// The largest tile, uncompressed (the size a client decodes; the 500 KB rule), and where.
    pub largest: Option<(usize, TileCoord)>,
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} tiles ({} empty skipped) to {} ({} bytes)",
            self.tiles,
            self.empty_skipped,
            self.path.display(),
            self.bytes
        )?;
        if let Some((bytes, tile)) = self.largest {
            write!(f, "; largest tile {tile}: {bytes} bytes uncompressed")?;
        }
        Ok(())
    }
}

/// The EPSG:3857 extent of the rows the layers draw, if there are any.
async fn data_extent(pool: &PgPool, layers: LayerSet) -> anyhow::Result<Option<Bbox>> {
    // Table names come from `Layer::table` (an allow-list), never from input.
    let union = layers
        .iter()
        .map(|l| format!("select ST_Extent(geom_3857) as e from {}", l.table()))
        .collect::<Vec<_>>()
        .join(" union all ");
    let sql = format!(
        "select ST_XMin(x), ST_YMin(x), ST_XMax(x), ST_YMax(x) from (select ST_Extent(e) as x from ({union}) u) s"
    );
    let row: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(&sql).fetch_one(pool).await?;
    Ok(match row {
        (Some(a), Some(b), Some(c), Some(d)) => Some(Bbox::new(a, b, c, d)),
        _ => None,
    })
}

/// Render every non-empty tile of `args.layers` in the data extent and write the archive.
pub async fn export_pmtiles(pool: &PgPool, args: &ExportTilesArgs) -> anyhow::Result<ExportReport> {
    let layers = LayerSet::parse(&args.layers).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.minzoom > args.maxzoom {
        bail!("--minzoom {} is above --maxzoom {}", args.minzoom, args.maxzoom);
    }
    let service = Arc::new(TileService::new(
        pool.clone(),
        TileConfig {
            concurrency: args.concurrency.max(1) as usize,
            queue_timeout: Duration::from_secs(3600),
            ..TileConfig::default()
        },
    ));
    let extent = data_extent(pool, layers).await?;
    let mut tiles: Vec<(u64, pmtiles::TileCoord, bytes::Bytes)> = Vec::new();
    let mut empty_skipped = 0;
    let mut largest: Option<(usize, TileCoord)> = None;
    if let Some(extent) = extent {
        for z in args.minzoom..=args.maxzoom {
            // A feature reaches into a neighbour tile through the render buffer.
            let margin = TileCoord::size_at(z) * f64::from(BUFFER) / f64::from(EXTENT);
            let mut jobs = tokio::task::JoinSet::new();
            for tile in tiles_in_bbox(&extent.expand(margin), z) {
                let service = Arc::clone(&service);
                jobs.spawn(async move { (tile, service.render(layers, tile).await) });
            }
            while let Some(joined) = jobs.join_next().await {
                let (tile, rendered) = joined.context("a tile render task failed")?;
                let rendered = rendered.with_context(|| format!("rendering tile {tile}"))?;
                if rendered.is_empty() {
                    empty_skipped += 1;
                    continue;
                }
                if largest.is_none_or(|(bytes, _)| rendered.raw_len > bytes) {
                    largest = Some((rendered.raw_len, tile));
                }
                let coord = pmtiles::TileCoord::new(tile.z, tile.x, tile.y).context("tile coordinate")?;
                tiles.push((pmtiles::TileId::from(coord).value(), coord, rendered.gzip));
            }
        }
    }
    // The spec recommends tiles in tile-id (Hilbert) order for clustered archives.
    tiles.sort_unstable_by_key(|(id, _, _)| *id);
    let metadata = serde_json::json!({
        "name": format!("gridmap {layers}"),
        "format": "pbf",
        "description": "gridmap vector tiles (Yiyuan urban grid governance)",
        "vector_layers": gridmap_tiles::schema::vector_layers_json(layers),
    })
    .to_string();
    let path = args.out.clone();
    let (minzoom, maxzoom) = (args.minzoom, args.maxzoom);
    let count = tiles.len();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = PmTilesWriter::new(TileType::Mvt)
            .precompressed(Compression::Gzip)
            .internal_compression(Compression::Gzip)
            .min_zoom(minzoom)
            .max_zoom(maxzoom)
            .metadata(metadata);
        if let Some(e) = extent {
            let (w, s) = mercator_to_lonlat(e.min_x, e.min_y);
            let (east, n) = mercator_to_lonlat(e.max_x, e.max_y);
            writer = writer
                .bounds(w, s, east, n)
                .center(f64::midpoint(w, east), f64::midpoint(s, n))
                .center_zoom(maxzoom.min(14));
        }
        let mut out = writer.create(std::io::BufWriter::new(file)).context("starting the PMTiles archive")?;
        for (_, coord, data) in &tiles {
            out.add_tile(*coord, data).context("writing a tile")?;
        }
        out.finalize().context("finishing the PMTiles archive")?;
        Ok(())
    })
    .await
    .context("the archive writer stopped")??;
    let bytes = std::fs::metadata(&args.out).map_or(0, |m| m.len());
    Ok(ExportReport { path: args.out.clone(), tiles: count, empty_skipped, bytes, largest })
}
