//! Logging set-up: `RUST_LOG` filters, defaulting to info for gridmap and warnings elsewhere.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("gridmap_server=info,gridmap_tiles=info,tower_http=warn,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
