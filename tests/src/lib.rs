//! Helpers for the end-to-end tests: find the real `gridmap` binary, make a scratch database,
//! start the server on a free port and wait until it is ready.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether this run is CI's (`CI=true`, as CI services set it): there a test that cannot run
/// fails, since a green CI run must mean that every test ran.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A test that cannot run on this machine (`reason`: what is missing and how to get it): under
/// CI that is a failure; elsewhere it prints `SKIPPED: reason` and the caller returns, passing.
pub fn cannot_run(reason: &str) {
    assert!(!in_ci(), "CI=true, yet this test cannot run: {reason}");
    eprintln!("SKIPPED: {reason}");
}

/// The server the tests use to create scratch databases (the suite's `DATABASE_URL`).
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `postgres://…/NAME` on the same server as `admin_url()`.
pub fn url_for(db: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
    format!("{base}/{db}")
}

/// The `gridmap` binary under test: `GRIDMAP_BIN` if set (e.g. `target/release/gridmap`, to
/// measure first paint on a release build), else the debug build of this workspace
/// (scripts/test.sh builds it first).
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("GRIDMAP_BIN") {
        // A relative path is taken from the workspace root (cargo runs tests in `tests/`).
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(bin);
        assert!(path.exists(), "GRIDMAP_BIN={} does not exist", path.display());
        return std::fs::canonicalize(&path).unwrap_or(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    let path = target.join("debug/gridmap");
    assert!(path.exists(), "{} is missing: run `cargo build -p gridmap-server` first", path.display());
    path
}

pub fn gridmap(database_url: &str) -> Command {
    let mut command = Command::new(binary());
    command.env("DATABASE_URL", database_url).env("RUST_LOG", "warn").stdin(Stdio::null());
    command
}

/// A database created for one test and dropped when it goes out of scope.
pub struct ScratchDb {
    pub name: String,
    pub url: String,
}

impl ScratchDb {
    pub async fn new(with_postgis: bool) -> Self {
        let name = format!("gridmap_e2e_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url()).await.expect("connect to the test server");
        sqlx::query(&format!("create database {name}")).execute(&admin).await.expect("create database");
        let url = url_for(&name);
        if with_postgis {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            sqlx::query("create extension postgis").execute(&pool).await.expect("postgis");
            pool.close().await;
        }
        admin.close().await;
        Self { name, url }
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url).await.expect("connect to scratch db")
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        // Drop is synchronous; psql is on every machine that runs PostgreSQL.
        let _ = Command::new("psql")
            .arg(admin_url())
            .args(["-qc", &format!("drop database if exists {} with (force)", self.name)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A running `gridmap serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub async fn start(db: &ScratchDb, extra_env: &[(&str, &str)]) -> Self {
        Self::start_at(db, free_port(), extra_env).await
    }

    /// A server on a given port: a restarted server keeps its origin, which is what a browser's
    /// service worker, storage and outbox are tied to.
    pub async fn start_at(db: &ScratchDb, port: u16, extra_env: &[(&str, &str)]) -> Self {
        let mut command = gridmap(&db.url);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("GRIDMAP_WEB_DIR", PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web-map/dist"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start gridmap");
        let server = Self { child, base: format!("http://127.0.0.1:{port}") };
        server.wait_ready(Duration::from_secs(120)).await;
        server
    }

    async fn wait_ready(&self, limit: Duration) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("gridmap did not become ready within {limit:?}");
    }

    /// The port this server listens on.
    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("base ends in a port")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send SIGTERM (via `kill`, to stay free of unsafe code) and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().expect("wait for gridmap")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod browser;
pub mod georeport;

/// A scratch database with the demo city loaded by the real binary (`gridmap seed --demo`).
pub async fn seeded_db(password: &str) -> ScratchDb {
    let db = ScratchDb::new(true).await;
    let out = gridmap(&db.url)
        .args(["seed", "--demo"])
        .env("GRIDMAP_DEMO_PASSWORD", password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run gridmap seed --demo");
    assert!(out.status.success(), "seed failed: {}", String::from_utf8_lossy(&out.stderr));
    db
}
