//! Driving Debian's Chromium headless through its own `chromedriver` (W3C WebDriver, fantoccini):
//! each `Browser` starts a chromedriver on a free port with a fresh profile and ends both on drop.
//! Absent binaries fail the test under `CI=true`; elsewhere `Browser::start` returns `None` after
//! printing `SKIPPED`, so a machine without Chromium still runs the rest of the suite
//! (`scripts/setup.sh test` installs them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use crate::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The flags from docs/STACK.md §5: headless, no sandbox (containers), nothing phoning home.
const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_url: String,
    profile: PathBuf,
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

impl Browser {
    /// A fresh browser `width`×`height` CSS pixels, or `None` without Chromium (a failure under
    /// `CI=true`, else a printed `SKIPPED`: [`crate::cannot_run`]).
    pub async fn start(width: u32, height: u32) -> Option<Self> {
        Self::launch(width, height, false).await
    }

    /// A phone: Chromium's device emulation, since a headless window cannot be narrower than 500 px.
    pub async fn start_phone(width: u32, height: u32) -> Option<Self> {
        Self::launch(width, height, true).await
    }

    async fn launch(width: u32, height: u32, phone: bool) -> Option<Self> {
        let chromium = env_path("GRIDMAP_CHROMIUM", CHROMIUM);
        let chromedriver = env_path("GRIDMAP_CHROMEDRIVER", CHROMEDRIVER);
        for binary in [&chromium, &chromedriver] {
            if !binary.exists() {
                crate::cannot_run(&format!("{} is not installed (run `bash scripts/setup.sh test`)", binary.display()));
                return None;
            }
        }
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = std::env::temp_dir().join(format!("gridmap-chromium-{}", uuid::Uuid::new_v4().simple()));
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={width},{height}"));
        args.push("--lang=zh-CN".into());
        let mut caps = serde_json::Map::new();
        let mut options = json!({ "binary": chromium, "args": args });
        if phone {
            options["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0, "touch": true } });
        }
        caps.insert("goog:chromeOptions".into(), options);
        // Two crypto back ends are compiled in (ring, aws-lc-rs), so rustls wants one chosen; the
        // WebDriver link is plain HTTP on loopback anyway. A second install is a harmless error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::rustls().expect("rustls roots").capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(err) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("chromedriver did not start a session: {err}"),
            }
        };
        Some(Self { client, driver, driver_url: url, profile })
    }

    /// Run `script` (a function body; `arguments` available) and return its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Poll `expression` until it is truthy; panic with `what` and the page's error log after `limit`.
    pub async fn wait_for(&self, expression: &str, limit: Duration, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(&format!("return {expression};")).await;
            if !(value.is_null() || value == json!(false) || value == json!(0) || value == json!("")) {
                return value;
            }
            if started.elapsed() > limit {
                let errors = self.js("return window.__errors || [];").await;
                panic!("timed out after {limit:?} waiting for {what} ({expression}); page errors: {errors}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Cut or restore the page's network with Chromium's own network emulation (the Chrome `DevTools` protocol,
    /// `Network.emulateNetworkConditions`, through `ChromeDriver`'s `chromium/network_conditions`
    /// endpoint): offline, every request of the page fails at the network layer and
    /// `navigator.onLine` turns false; restoring it fires the page's `online` event. The server
    /// keeps running, so the test can look at the database meanwhile.
    pub async fn set_offline(&self, offline: bool) {
        // Throughput -1 = not throttled; ChromeDriver wants every field.
        self.network_conditions(
            json!({ "offline": offline, "latency": 0, "download_throughput": -1, "upload_throughput": -1 }),
        )
        .await;
    }

    /// Throttle the page's network like a phone's (bench/web.sh): `latency_ms` added to every
    /// request (the round trip), throughputs in bytes per second.
    pub async fn throttle(&self, latency_ms: u32, download_bytes_per_s: u32, upload_bytes_per_s: u32) {
        self.network_conditions(json!({ "offline": false, "latency": latency_ms,
            "download_throughput": download_bytes_per_s, "upload_throughput": upload_bytes_per_s }))
            .await;
    }

    async fn network_conditions(&self, conditions: Value) {
        let session = self.client.session_id().await.expect("session id").expect("a session");
        let url = format!("{}/session/{session}/chromium/network_conditions", self.driver_url);
        let body = json!({ "network_conditions": conditions });
        let reply = reqwest::Client::new().post(&url).json(&body).send().await.expect("chromedriver answers");
        let status = reply.status();
        let text = reply.text().await.unwrap_or_default();
        assert!(status.is_success(), "network emulation refused: {status} {text}");
    }

    /// A Chrome `DevTools` protocol command on the page (`ChromeDriver`'s `goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let session = self.client.session_id().await.expect("session id").expect("a session");
        let url = format!("{}/session/{session}/goog/cdp/execute", self.driver_url);
        let reply = reqwest::Client::new()
            .post(&url)
            .json(&json!({ "cmd": cmd, "params": params }))
            .send()
            .await
            .expect("chromedriver answers");
        let status = reply.status();
        let body: Value = reply.json().await.unwrap_or_default();
        assert!(status.is_success(), "{cmd} refused: {status} {body}");
        body["value"].clone()
    }

    /// Save a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Also on a failed assertion: chromedriver ends its Chromium when it goes.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `web-map/`, next to this crate.
pub fn web_map_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web-map")
}

/// Build `web-map/dist` from the current sources once per test process, so a browser test never
/// runs against a stale build (the page under test is exactly what is committed).
pub fn build_web_map() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new("node")
            .arg("build.mjs")
            .current_dir(web_map_dir())
            .stdout(Stdio::null())
            .status()
            .expect("node is required to build web-map (run `bash scripts/setup.sh test`)");
        assert!(status.success(), "web-map build failed (run `npm ci` in web-map/)");
    });
}

/// Total bytes of the JavaScript in `web-map/dist` (our modules and the vendored libraries).
pub fn shipped_js_bytes() -> (u64, Vec<(String, u64)>) {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, u64)>) {
        for entry in std::fs::read_dir(dir).expect("read dist").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "js" || e == "mjs") {
                let size = entry.metadata().map_or(0, |m| m.len());
                out.push((path.strip_prefix(root).unwrap_or(&path).display().to_string(), size));
            }
        }
    }
    let root = web_map_dir().join("dist");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    (files.iter().map(|(_, s)| s).sum(), files)
}
