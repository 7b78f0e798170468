//! Tile math, MVT layer SQL and the tile cache. No HTTP here: the server crate owns the edge.
//!
//! - [`tile`]: XYZ ↔ EPSG:3857 bounds.
//! - [`layer`]: the requestable layers (`{layers}` in a URL) and their zooms.
//! - [`schema`]: one declarative definition per MVT layer — table, columns and their types,
//!   zooms, filter, simplification, style — from which the reads, the `ST_AsMVT` reference
//!   statement (tests, the benchmark's PostGIS floor), TileJSON's `vector_layers` and the
//!   style's layer list are derived; [`balance`]: the household balance and its classes.
//! - [`store`]: grids, grid labels, buildings, stations and roads in memory (R-trees), kept current.
//! - [`render`] + [`encode`]: a tile cut and encoded in Rust from those features (reports: from
//!   their rows in PostgreSQL).
//! - [`cache`]: the byte-bounded cache of gzip tiles with exact, race-free invalidation.
//! - [`service`]: cache + bounded renders; [`TileService::changed`] for every data change.
//! - [`notify`]: the LISTEN side of migration 0002's change triggers.
//! - [`metrics`]: Prometheus counters and histograms.

pub mod balance;
pub mod cache;
mod compact;
pub mod encode;
pub mod layer;
pub mod metrics;
pub mod notify;
pub mod render;
pub mod schema;
pub mod service;
pub mod store;
pub mod tile;

pub use cache::{CachedTile, TileCache, TileKey};
pub use layer::{Layer, LayerError, LayerSet};
pub use notify::{ListenerHandle, spawn_day_turns, spawn_listener};
pub use service::{Served, TileConfig, TileError, TileService};
pub use tile::{Bbox, TileCoord, TileCoordError};

/// Connection options for a pool dedicated to tile renders: each statement is stopped after
/// `statement_timeout`, and a backend whose client hung up (an abandoned render) notices
/// within a second and stops too.
pub fn tile_pool_options(
    base: &sqlx::postgres::PgConnectOptions,
    statement_timeout: std::time::Duration,
) -> sqlx::postgres::PgConnectOptions {
    base.clone().options([
        ("statement_timeout", format!("{}", statement_timeout.as_millis())),
        ("client_connection_check_interval", "1000".to_string()),
        // A low-zoom tile's estimated cost passes jit_above_cost, and compiling the plan then
        // takes longer than running it (tens of ms for a query that runs in a few).
        ("jit", "off".to_string()),
        // Plan each tile statement once per connection. By default PostgreSQL re-plans a
        // prepared statement on each of its first five runs, and planning these statements
        // costs as much as running them for a small tile; the generic plan is as fast (the
        // bounding-box filter uses the GiST index either way; measured with pgbench).
        ("plan_cache_mode", "force_generic_plan".to_string()),
    ])
}

/// Run once on each new tile connection: PostgreSQL loads the PostGIS library into a backend on
/// its first PostGIS call (tens of milliseconds), and that should happen when the pool opens,
/// not inside the first map view's tile requests.
pub const TILE_CONNECTION_WARM_UP: &str = "select ST_AsMVT(t, 'warm_up') from (select ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(0, 0), 3857), ST_TileEnvelope(0, 0, 0)) as geom) t";

/// Run once on each new tile connection, after [`TILE_CONNECTION_WARM_UP`]: each per-tile
/// layer's read (outlines per level, reports, field-work counts) once with an empty box, so the
/// connection holds the statement prepared and planned (`plan_cache_mode` is generic) before a
/// map view needs it. On a server just started, a low-zoom tile's read was mostly that
/// preparation: at ×100 the 26 county-outline tiles of z0–7 came in at ~35 ms each (p50,
/// bench/scale.sh), against ~1 ms once warm.
pub async fn warm_up_statements(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    for layer in schema::MVT_LAYERS.iter().filter(|m| !m.in_memory) {
        for source in layer.sources {
            render::fetch(conn, layer, source, Some(Bbox::new(0.0, 0.0, 0.0, 0.0))).await?;
        }
    }
    Ok(())
}
