//! The `gridmap` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a cold tile allocates per feature (decoded rows, clipped
/// rings, MVT commands), and glibc's allocator was a fifth of the tile path's CPU in a profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = gridmap_server::config::Cli::parse();
    gridmap_server::telemetry::init();
    match gridmap_server::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One clear line (with its causes) for the operator, never a panic backtrace.
            eprintln!("gridmap: {err:#}");
            ExitCode::FAILURE
        }
    }
}
