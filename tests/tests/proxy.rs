//! gridmap behind Debian's nginx, configured by the site file we ship (`deploy/nginx.conf`,
//! docs/deploy.md): TLS, HTTP/2, two instances, trusted-proxy headers, compression passed
//! through. The site file is used as written, with only its addresses, ports and certificate
//! paths replaced, so the test breaks when the shipped file does. curl is the client (HTTP/2
//! over TLS, as a phone's browser talks to the county's server).
//!
//! Without nginx, openssl or curl the test fails under `CI=true` and elsewhere prints SKIPPED
//! (`bash scripts/setup.sh test` installs nginx).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gridmap_e2e::{Server, free_port, seeded_db};

const HOST: &str = "map.example.gov.cn";

struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-QUIT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn shipped_site() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shipped site with this machine's ports and a throwaway certificate; everything else as
/// shipped.
fn site_for_test(upstreams: &[u16], http: u16, https: u16, cert: &Path, key: &Path) -> String {
    let mut out = Vec::new();
    let mut upstream_done = false;
    for line in shipped_site().lines() {
        let t = line.trim_start();
        if t.starts_with("server 127.0.0.1:") {
            // The shipped upstream lists example ports: replace them with ours, once.
            if !upstream_done {
                for port in upstreams {
                    out.push(format!("    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"));
                }
                upstream_done = true;
            }
        } else if t.starts_with("listen [::]") {
            // No IPv6 on every test machine.
        } else if t == "listen 80;" {
            out.push(format!("    listen 127.0.0.1:{http};"));
        } else if t.starts_with("listen 443 ssl") {
            out.push(line.replace("listen 443", &format!("listen 127.0.0.1:{https}")));
        } else if t.starts_with("ssl_certificate ") {
            out.push(format!("    ssl_certificate {};", cert.display()));
        } else if t.starts_with("ssl_certificate_key ") {
            out.push(format!("    ssl_certificate_key {};", key.display()));
        } else {
            out.push(line.to_string());
        }
    }
    assert!(upstream_done, "deploy/nginx.conf has no upstream servers to replace");
    out.join("\n")
}

fn have(program: &str) -> bool {
    Command::new(program).arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn nginx_binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists())
}

fn start_nginx(upstreams: &[u16]) -> Option<(Nginx, u16, u16)> {
    let Some(nginx) = nginx_binary() else {
        gridmap_e2e::cannot_run("nginx is not installed (run `bash scripts/setup.sh test`)");
        return None;
    };
    for tool in ["openssl", "curl"] {
        if !have(tool) {
            gridmap_e2e::cannot_run(&format!("{tool} is not installed"));
            return None;
        }
    }
    let dir = std::env::temp_dir().join(format!("gridmap-nginx-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj"])
        .arg(format!("/CN={HOST}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{HOST}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success(), "openssl could not make a certificate");
    let (http, https) = (free_port(), free_port());
    let site = site_for_test(upstreams, http, https, &cert, &key);
    // The main file Debian's nginx.conf would be, reduced to what a test needs: no daemon,
    // files under the scratch folder, workers as the current user.
    let main = format!(
        "pid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log warn;\nworker_processes 1;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {dir}/logs/access.log;\n  client_body_temp_path {dir}/body;\n\
         proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n\
         scgi_temp_path {dir}/scgi;\n  include /etc/nginx/mime.types;\n{site}\n}}\n",
        dir = dir.display()
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, main).expect("write nginx.conf");
    let check = Command::new(nginx).arg("-t").arg("-c").arg(&conf).arg("-p").arg(&dir).output().expect("nginx -t");
    assert!(check.status.success(), "nginx refuses the shipped site: {}", String::from_utf8_lossy(&check.stderr));
    let child = Command::new(nginx)
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&dir)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    let nginx = Nginx { child, dir };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", https)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "nginx did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((nginx, http, https))
}

/// One request through nginx with curl: (HTTP version, status, lower-cased headers, body).
struct Answer {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn curl(port: u16, scheme: &str, path: &str, args: &[&str]) -> Answer {
    let dir = std::env::temp_dir().join(format!("gridmap-curl-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("curl dir");
    let (head, body) = (dir.join("head"), dir.join("body"));
    let out = Command::new("curl")
        .args(["-sS", "-k", "--http2", "--max-time", "30", "--resolve"])
        .arg(format!("{HOST}:{port}:127.0.0.1"))
        .arg("-D")
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(format!("{scheme}://{HOST}:{port}{path}"))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    let head = std::fs::read_to_string(&head).expect("headers");
    let body = std::fs::read(&body).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default().to_string();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default().to_string();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer { version, status, headers, body }
}

#[tokio::test]
async fn behind_the_shipped_nginx_site_tls_http2_security_headers_trusted_proxy_and_compression_hold() {
    let db = seeded_db("proxy-demo-pass-1").await;
    // As docs/deploy.md says to run each instance behind nginx; writes limited hard so that the
    // per-address limit can be seen through the proxy.
    let env = [
        ("GRIDMAP_TRUSTED_PROXIES", "127.0.0.1"),
        ("GRIDMAP_PUBLIC_URL", "https://map.example.gov.cn"),
        ("GRIDMAP_RATE_WRITES", "1/6"),
    ];
    let first = Server::start(&db, &env).await;
    let second = Server::start(&db, &env).await;
    let Some((_nginx, http, https)) = start_nginx(&[first.port(), second.port()]) else { return };
    // Each instance grants its share once it has counted the other (every 2 s: limits.rs).
    let started = Instant::now();
    while !(instances_seen(&first).await == Some(2) && instances_seen(&second).await == Some(2)) {
        assert!(started.elapsed() < Duration::from_secs(15), "the instances never counted each other");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Plain HTTP is sent to HTTPS.
    let plain = curl(http, "http", "/", &[]);
    assert_eq!(plain.status, 301, "{}", plain.text());
    assert_eq!(plain.header("location"), Some(format!("https://{HOST}/").as_str()));

    // The page over TLS and HTTP/2, with gridmap's security headers passed through and nginx's HSTS.
    let page = curl(https, "https", "/", &[]);
    assert_eq!((page.version.as_str(), page.status), ("HTTP/2", 200), "{:?}", page.headers);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.header("strict-transport-security").is_some_and(|v| v.contains("max-age=")));

    // Absolute URLs: the public URL, whatever Host or X-Forwarded-Host the client forges.
    let style = curl(
        https,
        "https",
        "/tiles/style.json",
        &["-H", "X-Forwarded-Host: evil.example", "-H", "X-Forwarded-Proto: http"],
    );
    assert_eq!(style.status, 200);
    let text = style.text();
    assert!(!text.contains("evil.example"), "a forged host reached the style");
    assert!(text.contains("https://map.example.gov.cn/tiles/"), "tile URLs from GRIDMAP_PUBLIC_URL: {text:.400}");

    // Tiles keep gridmap's own compression: brotli asked, brotli given, not compressed again.
    let grid = sqlx::PgPool::connect(&db.url).await.expect("db");
    let (lon, lat): (f64, f64) =
        sqlx::query_as("select ST_X(c), ST_Y(c) from (select ST_PointOnSurface(geom) c from grid limit 1) s")
            .fetch_one(&grid)
            .await
            .expect("a grid");
    let path = tile_path("grids", 15, lon, lat);
    let tile = curl(https, "https", &path, &["-H", "Accept-Encoding: br"]);
    assert_eq!(tile.status, 200, "{:?}", tile.headers);
    assert_eq!(tile.header("content-encoding"), Some("br"), "{:?}", tile.headers);
    assert!(tile.header("etag").is_some(), "the ETag passes through: {:?}", tile.headers);

    // The web map's scripts: the brotli copy build.mjs wrote to a browser that takes brotli (18%
    // smaller than gzip for MapLibre), gzip to one that takes only gzip; the same bytes decoded.
    let script = "/vendor/maplibre-gl/maplibre-gl.mjs";
    let br = curl(https, "https", script, &["-H", "Accept-Encoding: gzip, deflate, br"]);
    assert_eq!((br.status, br.header("content-encoding")), (200, Some("br")), "{:?}", br.headers);
    let gz = curl(https, "https", script, &["-H", "Accept-Encoding: gzip"]);
    assert_eq!((gz.status, gz.header("content-encoding")), (200, Some("gzip")), "{:?}", gz.headers);
    assert!(br.body.len() < gz.body.len(), "brotli {} bytes, gzip {} bytes", br.body.len(), gz.body.len());
    let plain = curl(https, "https", script, &["--compressed"]);
    // The page's file (MapLibre is built into it, its worker's file and a shared chunk: build.mjs).
    assert!(plain.body.len() > 500_000 && plain.text().contains("maplibre"), "decoded: {} bytes", plain.body.len());
    // Asked for with its npm version, as the page and MapLibre ask (index.html, the worker's
    // `?v=`), a vendor file is immutable: no round trip before the worker starts. Without it, or
    // with another version, and for our own files, the browser asks each time.
    let page = curl(https, "https", "/", &[]).text();
    let cache_control = |path: &str| curl(https, "https", path, &[]).header("cache-control").map(str::to_string);
    let main = page
        .split('"')
        .find(|s| s.starts_with("/vendor/maplibre-gl/maplibre-gl.mjs?v="))
        .expect("index.html asks for MapLibre with its version")
        .to_string();
    // MapLibre asks for its worker beside itself with its own version.
    let worker = main.replace("maplibre-gl.mjs?", "maplibre-gl-worker.mjs?");
    assert_eq!(cache_control(&main).as_deref(), Some("public, max-age=31536000, immutable"), "{main}");
    assert_eq!(cache_control(&worker).as_deref(), Some("public, max-age=31536000, immutable"), "{worker}");
    // The chunk the page's file and the worker's share, preloaded by the page and imported by the
    // module worker: from the HTTP cache too.
    let shared = page
        .split('"')
        .find(|s| s.starts_with("/vendor/maplibre-gl/maplibre-gl-shared-") && s.contains(".mjs?v="))
        .expect("index.html preloads MapLibre's shared chunk with the version")
        .to_string();
    assert_eq!(cache_control(&shared).as_deref(), Some("public, max-age=31536000, immutable"), "{shared}");
    assert_eq!(cache_control(script).as_deref(), Some("no-cache"));
    assert_eq!(cache_control("/vendor/maplibre-gl/maplibre-gl.mjs?v=0.0.1").as_deref(), Some("no-cache"));
    assert_eq!(cache_control("/app.js").as_deref(), Some("no-cache"));

    // Bad input is a 4xx JSON error through the proxy too, never a 5xx.
    let nul = curl(https, "https", "/api/grids/at?lon=118.17&lat=36.1%00", &[]);
    assert_eq!(nul.status, 400, "{}", nul.text());
    assert!(nul.header("content-type").is_some_and(|v| v.starts_with("application/json")));

    // The client address is nginx's $remote_addr: a client writing its own X-Forwarded-For
    // each time gets no fresh budget (burst 6 over both instances).
    let mut limited = 0;
    for i in 0..12 {
        let forged = format!("X-Forwarded-For: 203.0.113.{i}");
        let r = curl(
            https,
            "https",
            "/api/reports",
            &["-X", "POST", "-H", &forged, "-H", "content-type: application/json", "-d", "{}"],
        );
        assert!(r.status < 500, "{} {}", r.status, r.text());
        if r.status == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 4, "forged X-Forwarded-For must not reset the limit: {limited} of 12 limited");
}

/// The `gridmap_instances` gauge of a server's /metrics.
async fn instances_seen(server: &Server) -> Option<u32> {
    let text = reqwest::get(server.url("/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("gridmap_instances ")).and_then(|n| n.trim().parse().ok())
}

/// The path of the `z` tile of `layer` holding a point (the XYZ scheme).
fn tile_path(layer: &str, z: u32, lon: f64, lat: f64) -> String {
    let n = f64::from(1_u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let y = ((1.0 - lat.to_radians().tan().asinh() / std::f64::consts::PI) / 2.0 * n).floor();
    format!("/tiles/{layer}/{z}/{x}/{y}.mvt")
}
