//! Tile load for bench/tiles.sh: `CONNECTIONS` clients share one list of tile paths and together
//! request **each path exactly once** (cold: the server's cache is empty; run it again for warm).
//! Prints one line `RESULT requests=… seconds=… rps=… p50_ms=… p99_ms=… mean_bytes=… errors=…`
//! where seconds is the wall time from the first request to the last answer and bytes are the
//! body bytes as sent (gzip when the server offers it: `Accept-Encoding: gzip`).
//!
//! Usage: `tile_load BASE_URL PATHS_FILE` (env `CONNECTIONS`, default 16). wrk cannot do this:
//! it always runs for its whole `-d` duration, so "each tile once" gives no throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if std::env::args().any(|a| a == "--list") || args.len() < 2 {
        eprintln!("usage: tile_load BASE_URL PATHS_FILE   (bench/tiles.sh runs it)");
        return;
    }
    let (base, file) = (args[0].clone(), &args[1]);
    let paths: Arc<Vec<String>> =
        Arc::new(std::fs::read_to_string(file).expect("paths file").lines().map(str::to_string).collect());
    let connections: usize = std::env::var("CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    // No automatic decompression: count the bytes on the wire, as a browser's network tab does.
    let http = reqwest::Client::builder().pool_max_idle_per_host(connections).no_gzip().build().expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (http, paths, next, base) = (http.clone(), Arc::clone(&paths), Arc::clone(&next), base.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies_us, mut bytes, mut errors) = (Vec::new(), 0u64, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else { break };
                let t = Instant::now();
                let response = http.get(format!("{base}{path}")).header("Accept-Encoding", "gzip").send().await;
                match response {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(body) => bytes += body.len() as u64,
                        Err(_) => errors += 1,
                    },
                    _ => errors += 1,
                }
                latencies_us.push(t.elapsed().as_micros() as u64);
            }
            (latencies_us, bytes, errors)
        }));
    }
    let (mut latencies_us, mut bytes, mut errors) = (Vec::new(), 0u64, 0u64);
    for t in tasks {
        let (l, b, e) = t.await.expect("client task");
        latencies_us.extend(l);
        bytes += b;
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    let pct = |p: f64| {
        latencies_us.get(((latencies_us.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(0) as f64 / 1000.0
    };
    let n = latencies_us.len();
    println!(
        "RESULT requests={n} seconds={seconds:.3} rps={:.1} p50_ms={:.2} p99_ms={:.2} mean_bytes={:.0} errors={errors}",
        n as f64 / seconds,
        pct(0.50),
        pct(0.99),
        bytes as f64 / n.max(1) as f64
    );
}
