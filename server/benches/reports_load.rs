//! Sustained intake load: N concurrent clients for D seconds POST reports (with assignment and a
//! durable commit) to a running gridmap; every 10th request re-sends the previous report with
//! its key, as a rider's offline queue does. Prints req/s, p50/p99 and the keys accepted, as
//! JSON, for bench/reports.sh (which compares the rows stored with the distinct keys accepted).
//!
//! Env: `GRIDMAP_URL` (`http://127.0.0.1:8099`), `GRIDMAP_TOKEN` (a rider's bearer token),
//! `CLIENTS` (50), `SECONDS` (60), `KEYS_FILE` (where to write the accepted keys, one a line).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    created: u64,
    replays: u64,
    errors: u64,
    keys: Vec<String>,
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench --list`
    }
    let url = std::env::var("GRIDMAP_URL").unwrap_or_else(|_| "http://127.0.0.1:8099".into());
    let Ok(token) = std::env::var("GRIDMAP_TOKEN") else {
        eprintln!("SKIPPED: set GRIDMAP_TOKEN (bench/reports.sh does this)");
        return;
    };
    let clients: usize = std::env::var("CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let seconds: u64 = std::env::var("SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().expect("client");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = http.clone();
        let url = format!("{url}/api/reports");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(c as u64);
            let mut tally = Tally::default();
            let mut last: Option<(String, String)> = None;
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let resend = n.is_multiple_of(10) && last.is_some();
                let (key, body) = if resend {
                    last.clone().expect("checked")
                } else {
                    let body = serde_json::json!({
                        "category": "exposed_garbage",
                        "description": "load test",
                        "location": {"lon": rng.random_range(118.150..118.190), "lat": rng.random_range(36.160..36.200),
                                     "crs": "wgs84", "accuracy_m": 10.0}
                    })
                    .to_string();
                    (uuid::Uuid::new_v4().to_string(), body)
                };
                let t = Instant::now();
                let reply = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .header("idempotency-key", &key)
                    .body(body.clone())
                    .send()
                    .await;
                tally.latencies_us.push(t.elapsed().as_micros() as u64);
                match reply {
                    Ok(r) if r.status().as_u16() == 201 => {
                        if r.headers().contains_key("idempotent-replayed") {
                            tally.replays += 1;
                        } else {
                            tally.created += 1;
                        }
                        tally.keys.push(key.clone());
                        last = Some((key, body));
                    }
                    Ok(_) | Err(_) => tally.errors += 1,
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.expect("client task");
        all.latencies_us.extend(t.latencies_us);
        all.created += t.created;
        all.replays += t.replays;
        all.errors += t.errors;
        all.keys.extend(t.keys);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |p: f64| {
        all.latencies_us.get(((all.latencies_us.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0) as f64 / 1000.0
    };
    let distinct: HashSet<&String> = all.keys.iter().collect();
    if let Ok(path) = std::env::var("KEYS_FILE") {
        let text: String = distinct.iter().fold(String::new(), |mut acc, k| {
            acc.push_str(k);
            acc.push('\n');
            acc
        });
        std::fs::write(path, text).expect("write keys");
    }
    let requests = all.latencies_us.len();
    println!(
        "{}",
        serde_json::json!({
            "clients": clients, "seconds": elapsed, "requests": requests,
            "requests_per_s": requests as f64 / elapsed,
            "created": all.created, "replayed": all.replays, "errors": all.errors,
            "distinct_keys_accepted": distinct.len(),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        })
    );
}
