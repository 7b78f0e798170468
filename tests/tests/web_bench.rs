//! The resident page on a phone network, for `bench/web.sh` (a benchmark, not a test: ignored
//! unless asked for, and it asserts nothing about time). Each run is a fresh Chromium profile
//! (cold HTTP cache, no service worker) with a 390×844 phone profile and the page's network
//! throttled by Chromium's own emulation to 1.6 Mbit/s down, 750 kbit/s up, 150 ms round trip.
//! It prints first contentful paint, the map's first `idle` with every layer drawn (both from
//! navigation start), and the bytes transferred by type from the page's resource timing.
//!
//! `GRIDMAP_BENCH_WEB_DIRS=dirA,dirB` compares builds of the web map in one run: one server per
//! directory on the same database, runs alternating between them, a median per directory. On a
//! shared machine only a comparison made this way, under the same load, says which is faster.

use std::collections::BTreeMap;
use std::time::Duration;

use gridmap_e2e::browser::{Browser, build_web_map};
use gridmap_e2e::{Server, seeded_db};
use serde_json::Value;

const DOWN_BYTES_PER_S: u32 = 1_600_000 / 8;
const UP_BYTES_PER_S: u32 = 750_000 / 8;
const RTT_MS: u32 = 150;

#[tokio::test]
#[ignore = "a benchmark: run by bench/web.sh"]
async fn resident_page_on_a_throttled_phone_network() {
    let runs: usize = std::env::var("GRIDMAP_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dirs: Vec<String> = if let Ok(list) = std::env::var("GRIDMAP_BENCH_WEB_DIRS") {
        list.split(',').map(str::to_string).collect()
    } else {
        build_web_map();
        vec![String::new()]
    };
    let db = seeded_db("bench-web-pass").await;
    let mut servers = Vec::new();
    for dir in &dirs {
        let env: Vec<(&str, &str)> = if dir.is_empty() { vec![] } else { vec![("GRIDMAP_WEB_DIR", dir.as_str())] };
        servers.push(Server::start(&db, &env).await);
    }
    let mut fcps = vec![Vec::new(); dirs.len()];
    let mut idles = vec![Vec::new(); dirs.len()];
    for run in 1..=runs {
        for (variant, server) in servers.iter().enumerate() {
            let label = if dirs[variant].is_empty() { String::new() } else { format!(" [{}]", dirs[variant]) };
            let Some(browser) = Browser::start_phone(390, 844).await else { return };
            browser.throttle(RTT_MS, DOWN_BYTES_PER_S, UP_BYTES_PER_S).await;
            browser.client.goto(&server.url("/")).await.expect("open the page");
            browser.wait_for("window.__mapIdle === true", Duration::from_secs(180), "the map to finish drawing").await;
            let m: Value = browser
            .js(r"const paint = performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint');
                  const nav = performance.getEntriesByType('navigation')[0];
                  const kind = (e) => {
                    const path = new URL(e.name).pathname;
                    if (/\.m?js$/.test(path)) return 'js';
                    if (path.endsWith('.css')) return 'css';
                    if (path.startsWith('/tiles/') && /\.(pbf|mvt)$/.test(path)) return 'tiles';
                    if (path.startsWith('/api/') || path.endsWith('.json') || path.endsWith('.webmanifest')) return 'data';
                    if (/\.(png|svg|jpg|webp|ico)$/.test(path)) return 'images';
                    return 'other';
                  };
                  const bytes = { document: nav.transferSize };
                  const files = [];
                  for (const e of performance.getEntriesByType('resource')) {
                    bytes[kind(e)] = (bytes[kind(e)] ?? 0) + e.transferSize;
                    files.push({ path: new URL(e.name).pathname + new URL(e.name).search, start: e.startTime, end: e.responseEnd, bytes: e.transferSize });
                  }
                  const marks = Object.fromEntries(performance.getEntriesByType('mark').map((m) => [m.name, m.startTime]));
                  return { fcp: paint ? paint.startTime : null, idle: window.__firstPaint, bytes, files, marks };")
            .await;
            let fcp = m["fcp"].as_f64().unwrap_or(f64::NAN);
            let idle = m["idle"].as_f64().unwrap_or(f64::NAN);
            let bytes: BTreeMap<String, u64> = serde_json::from_value(m["bytes"].clone()).expect("bytes");
            let total: u64 = bytes.values().sum();
            let kib = |k: &str| bytes.get(k).copied().unwrap_or(0) as f64 / 1024.0;
            println!(
                "MEASURED run {run}{label}: fcp_ms={fcp:.0} map_idle_ms={idle:.0} js_kib={:.1} css_kib={:.1} data_kib={:.1} tiles_kib={:.1} images_kib={:.1} document_kib={:.1} other_kib={:.1} total_kib={:.1}",
                kib("js"),
                kib("css"),
                kib("data"),
                kib("tiles"),
                kib("images"),
                kib("document"),
                kib("other"),
                total as f64 / 1024.0
            );
            let files = m["files"].as_array().cloned().unwrap_or_default();
            let editor = files.iter().filter_map(|f| f["path"].as_str()).any(|f| f.contains("terra-draw"));
            if run == 1 {
                println!("MEASURED first run{label}:");
                // The waterfall of the first run: what waits for what on this network.
                for f in &files {
                    println!(
                        "MEASURED waterfall: {:>5.0}–{:>5.0} ms {:>7.1} KiB {}",
                        f["start"].as_f64().unwrap_or(f64::NAN),
                        f["end"].as_f64().unwrap_or(f64::NAN),
                        f["bytes"].as_f64().unwrap_or(0.0) / 1024.0,
                        f["path"].as_str().unwrap_or_default()
                    );
                }
                println!("MEASURED marks: {}", m["marks"]);
            }
            println!(
                "MEASURED run {run}{label}: planner editor (terra-draw) loaded: {editor}; {} files fetched by the page",
                files.len()
            );
            fcps[variant].push(fcp);
            idles[variant].push(idle);
            browser.close().await;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (variant, dir) in dirs.iter().enumerate() {
        let label = if dir.is_empty() { String::new() } else { format!(" [{dir}]") };
        println!(
            "MEASURED median of {runs}{label}: fcp_ms={:.0} map_idle_ms={:.0} (targets: FCP <= 1500 ms, map idle <= 3000 ms, JS <= 500 KB)",
            median(&mut fcps[variant]),
            median(&mut idles[variant])
        );
    }
}
