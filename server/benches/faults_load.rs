//! Mixed load for the fault scripts (bench/faults.sh): riders submit reports and **retry every
//! failure with the same key and payload until the server answers 201** (as the web map's
//! offline queue does), while readers fetch tiles and feature pages. Prints one JSON line with
//! what each side saw; the script compares the keys accepted with the rows stored.
//!
//! Env: `GRIDMAP_URL`, `GRIDMAP_TOKEN` (a rider), `RIDERS` (100), `READERS` (200), `SECONDS` (60),
//! `KEYS_FILE` (accepted keys, one a line), `GRACE` (seconds a rider keeps retrying its last
//! report after the deadline, 60), `RIDER_PACE_MS` / `READER_PACE_MS` (0: closed loop, each
//! client sends its next request as soon as the last one is answered — a saturation test whose
//! latency is mostly queueing; N: each client starts a request every N ms, an open-loop rate
//! closer to people on the street; a late request is sent at once, never skipped).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Default)]
struct Side {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<String, u64>,
    keys: Vec<String>,
    retries: u64,
}

impl Side {
    fn merge(&mut self, other: Side) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.keys.extend(other.keys);
        self.retries += other.retries;
    }

    fn summary(&mut self, seconds: f64) -> serde_json::Value {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| {
            let v = &self.latencies_us;
            if v.is_empty() { 0.0 } else { v[((v.len() - 1) as f64 * p) as usize] as f64 / 1000.0 }
        };
        serde_json::json!({
            "requests": self.latencies_us.len(), "per_second": self.latencies_us.len() as f64 / seconds,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
            "statuses": self.statuses, "retries": self.retries, "accepted_keys": self.keys.len(),
        })
    }
}

fn status_key(result: &Result<reqwest::Response, reqwest::Error>) -> String {
    match result {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) if e.is_connect() => "connect_error".into(),
        Err(e) if e.is_timeout() => "timeout".into(),
        Err(_) => "io_error".into(),
    }
}

/// Waits for the next slot of a client that starts a request every `pace` (no wait if zero).
/// Clients start at random offsets within one period, so they do not all fire together.
struct Pacer {
    next: Instant,
    pace: Duration,
}

impl Pacer {
    fn new(pace: Duration, rng: &mut ChaCha8Rng) -> Self {
        let offset = if pace.is_zero() { Duration::ZERO } else { pace.mul_f64(rng.random_range(0.0..1.0)) };
        Self { next: Instant::now() + offset, pace }
    }

    async fn wait(&mut self) {
        if self.pace.is_zero() {
            return;
        }
        tokio::time::sleep_until(self.next.into()).await;
        // After a late slot (the last request took longer than the pace) the cadence restarts
        // from now: no burst of catch-up requests.
        self.next = self.next.max(Instant::now()) + self.pace;
    }
}

async fn rider(
    http: reqwest::Client,
    url: String,
    token: String,
    seed: u64,
    deadline: Instant,
    grace: Duration,
    pace: Duration,
) -> Side {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut side = Side::default();
    let mut pacer = Pacer::new(pace, &mut rng);
    loop {
        pacer.wait().await;
        if Instant::now() >= deadline {
            break;
        }
        let key = uuid::Uuid::new_v4().to_string();
        let body = serde_json::json!({
            "category": "exposed_garbage", "description": "fault test",
            "location": {"lon": rng.random_range(118.150..118.190), "lat": rng.random_range(36.160..36.200), "crs": "wgs84", "accuracy_m": 10.0}
        });
        // Until the server says 201, the same key and payload: never a second report.
        loop {
            let started = Instant::now();
            let result = http
                .post(format!("{url}/api/reports"))
                .bearer_auth(&token)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await;
            side.latencies_us.push(started.elapsed().as_micros() as u64);
            let status = status_key(&result);
            *side.statuses.entry(status.clone()).or_default() += 1;
            if status == "201" {
                side.keys.push(key.clone());
                break;
            }
            if status.starts_with('4') && status != "429" {
                break; // a client error is a bug in this harness or the server: counted, not retried
            }
            side.retries += 1;
            if Instant::now() > deadline + grace {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    side
}

async fn reader(http: reqwest::Client, url: String, seed: u64, deadline: Instant, pace: Duration) -> Side {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut side = Side::default();
    let mut pacer = Pacer::new(pace, &mut rng);
    loop {
        pacer.wait().await;
        if Instant::now() >= deadline {
            break;
        }
        let target = if rng.random_bool(0.7) {
            // A tile over the county seat at z14–z16.
            let z: u32 = rng.random_range(14..=16);
            let (lon, lat) = (rng.random_range(118.150..118.190f64), rng.random_range(36.160..36.200f64));
            let n = f64::from(1u32 << z);
            let x = ((lon + 180.0) / 360.0 * n) as u32;
            let y = ((1.0 - (lat.to_radians().tan() + 1.0 / lat.to_radians().cos()).ln() / std::f64::consts::PI) / 2.0
                * n) as u32;
            format!("{url}/tiles/grids,buildings,stations/{z}/{x}/{y}.mvt")
        } else {
            let (lon, lat) = (rng.random_range(118.150..118.185f64), rng.random_range(36.160..36.195f64));
            format!("{url}/ogc/collections/grids/items?limit=100&bbox={lon},{lat},{},{}", lon + 0.005, lat + 0.005)
        };
        let started = Instant::now();
        let result = http.get(&target).header("Accept-Encoding", "gzip").send().await;
        let status = status_key(&result);
        if let Ok(r) = result {
            let _ = r.bytes().await;
        }
        side.latencies_us.push(started.elapsed().as_micros() as u64);
        *side.statuses.entry(status).or_default() += 1;
    }
    side
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let url = std::env::var("GRIDMAP_URL").unwrap_or_else(|_| "http://127.0.0.1:8099".into());
    let Ok(token) = std::env::var("GRIDMAP_TOKEN") else {
        eprintln!("SKIPPED: set GRIDMAP_TOKEN (bench/faults.sh does this)");
        return;
    };
    let (riders, readers, seconds, grace) =
        (env("RIDERS", 100), env("READERS", 200), env("SECONDS", 60), env("GRACE", 60));
    let (rider_pace, reader_pace) =
        (Duration::from_millis(env("RIDER_PACE_MS", 0)), Duration::from_millis(env("READER_PACE_MS", 0)));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host((riders + readers) as usize)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut rider_tasks = Vec::new();
    for i in 0..riders {
        rider_tasks.push(tokio::spawn(rider(
            http.clone(),
            url.clone(),
            token.clone(),
            i,
            deadline,
            Duration::from_secs(grace),
            rider_pace,
        )));
    }
    let mut reader_tasks = Vec::new();
    for i in 0..readers {
        reader_tasks.push(tokio::spawn(reader(http.clone(), url.clone(), i, deadline, reader_pace)));
    }
    let (mut riders_side, mut readers_side) = (Side::default(), Side::default());
    for t in rider_tasks {
        riders_side.merge(t.await.expect("rider task"));
    }
    for t in reader_tasks {
        readers_side.merge(t.await.expect("reader task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Ok(path) = std::env::var("KEYS_FILE") {
        let mut lines = riders_side.keys.join("\n");
        if !lines.is_empty() {
            lines.push('\n');
        }
        std::fs::write(&path, lines).expect("write keys");
    }
    println!(
        "{}",
        serde_json::json!({"seconds": elapsed, "rider_pace_ms": rider_pace.as_millis() as u64, "reader_pace_ms": reader_pace.as_millis() as u64,
                           "riders": riders_side.summary(elapsed), "readers": readers_side.summary(elapsed)})
    );
}
