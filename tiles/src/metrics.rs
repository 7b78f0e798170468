//! Counters and latency histograms for the tile path, rendered as Prometheus text
//! (exposition format 0.0.4). Plain atomics: the hot path only ever adds.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A Prometheus histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Everything `/metrics` reports about tiles.
#[derive(Debug, Default)]
pub struct TileMetrics {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub not_modified: AtomicU64,
    pub empty: AtomicU64,
    pub errors: AtomicU64,
    pub busy: AtomicU64,
    pub cancelled: AtomicU64,
    pub stale_discarded: AtomicU64,
    pub invalidations: AtomicU64,
    pub invalidated_tiles: AtomicU64,
    pub cache_clears: AtomicU64,
    pub notifications: AtomicU64,
    /// Time to answer a tile request, hit or miss.
    pub request: Histogram,
    /// Time to render a tile in PostGIS and compress it (misses only).
    pub render: Histogram,
}

impl TileMetrics {
    /// Prometheus text for these metrics plus the cache's current size.
    pub fn render_prometheus(&self, cache_entries: u64, cache_bytes: u64, listening: bool) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 12] = [
            ("gridmap_tile_cache_hits_total", "Tile requests answered from the cache.", &self.hits),
            ("gridmap_tile_cache_misses_total", "Tile requests rendered in PostGIS.", &self.misses),
            ("gridmap_tile_not_modified_total", "Tile requests answered 304 (If-None-Match).", &self.not_modified),
            ("gridmap_tile_empty_total", "Tile requests answered 204 (no features).", &self.empty),
            ("gridmap_tile_errors_total", "Tile renders that failed.", &self.errors),
            ("gridmap_tile_busy_total", "Tile requests refused because every render slot stayed busy.", &self.busy),
            ("gridmap_tile_cancelled_total", "Tile renders abandoned because the client went away.", &self.cancelled),
            (
                "gridmap_tile_stale_discarded_total",
                "Rendered tiles not cached because the data changed meanwhile.",
                &self.stale_discarded,
            ),
            (
                "gridmap_tile_invalidations_total",
                "Area invalidations (API writes and database notifications).",
                &self.invalidations,
            ),
            ("gridmap_tile_invalidated_tiles_total", "Cached tiles dropped by invalidations.", &self.invalidated_tiles),
            (
                "gridmap_tile_cache_clears_total",
                "Whole-cache clears (listener reconnects, TRUNCATE).",
                &self.cache_clears,
            ),
            ("gridmap_tile_notifications_total", "Change notifications received from PostgreSQL.", &self.notifications),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Relaxed));
        }
        let gauges = [
            ("gridmap_tile_cache_entries", "Tiles held in the cache.", cache_entries),
            ("gridmap_tile_cache_bytes", "Compressed bytes held in the cache (with bookkeeping).", cache_bytes),
            ("gridmap_tile_listener_up", "1 while the change listener is connected.", u64::from(listening)),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        self.request.render("gridmap_tile_request_seconds", "Time to answer a tile request.", &mut out);
        self.render.render(
            "gridmap_tile_render_seconds",
            "Time to render and compress a tile on a cache miss.",
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(9));
        let mut out = String::new();
        h.render("t", "help", &mut out);
        assert!(out.contains("t_bucket{le=\"0.0005\"} 1\n"));
        assert!(out.contains("t_bucket{le=\"0.005\"} 2\n"));
        assert!(out.contains("t_bucket{le=\"5\"} 2\n"));
        assert!(out.contains("t_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("t_count 3\n"));
    }
}
