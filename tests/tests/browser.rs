//! The web map in a real browser: Debian's Chromium headless, driven over WebDriver, against the
//! real `gridmap` binary serving a scratch database with the demo city. Screenshots go to
//! `target/screenshots/`, or to the folder in `GRIDMAP_SCREENSHOTS` (`docs/screenshots` to refresh
//! the documentation's: a test run must not rewrite tracked files). Without Chromium/ChromeDriver
//! each test fails under `CI=true`, and elsewhere prints SKIPPED and passes.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::Locator;
use gridmap_e2e::browser::{Browser, build_web_map, shipped_js_bytes, web_map_dir};
use gridmap_e2e::{Server, seeded_db};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn screenshot_path(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("GRIDMAP_SCREENSHOTS").map_or_else(|| root.join("target/screenshots"), |d| root.join(d));
    std::fs::create_dir_all(&dir).expect("create the screenshot folder");
    dir.join(name)
}

/// Whether the tile server (issue 3) is part of this build: its style answers.
async fn tiles_deployed(server: &Server) -> bool {
    reqwest::get(server.url("/tiles/style.json")).await.is_ok_and(|r| r.status().is_success())
}

async fn open(browser: &Browser, server: &Server) {
    browser.client.goto(&server.url("/")).await.expect("open the map page");
    browser.wait_for("window.__appReady === true", WAIT, "the app to start").await;
    browser.wait_for("window.__mapIdle === true", WAIT, "the map to finish drawing").await;
}

fn assert_no_page_errors(errors: &Value) {
    assert_eq!(errors.as_array().map_or(0, Vec::len), 0, "console errors or failed requests: {errors:#}");
}

#[tokio::test]
async fn resident_page_loads_without_errors_and_draws_the_stations() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db("browser-demo-pass").await;
    let server = Server::start(&db, &[]).await;
    let tiles = tiles_deployed(&server).await;
    open(&browser, &server).await;

    // The UI is there in Chinese, the list holds the 48 stations, the map canvas has drawn.
    assert_eq!(browser.js("return document.documentElement.lang;").await, "zh-CN");
    assert_eq!(browser.js("return document.querySelectorAll('#station-list li[data-id]').length;").await, 48);
    let canvas =
        browser.js("const c = document.querySelector('#map canvas'); return c && c.width > 0 && c.height > 0;").await;
    assert_eq!(canvas, true, "the map canvas is drawn");
    let drawn = browser.js("return __map.queryRenderedFeatures({ layers: ['gm-stations'] }).length;").await;
    assert!(drawn.as_u64().unwrap_or(0) >= 40, "stations drawn on the map: {drawn}");

    if tiles {
        // gridmap's own style and tiles: grids and stations come back from the rendered tiles.
        let layers = browser
            .js("const f = __map.queryRenderedFeatures(); return [...new Set(f.map((x) => x.sourceLayer).filter(Boolean))].sort();")
            .await;
        let names: Vec<&str> = layers.as_array().expect("array").iter().filter_map(Value::as_str).collect();
        assert!(names.contains(&"grids"), "tile layers rendered: {layers}");
        // Stations are drawn once: by our own layer (selection, nearest, offline cache); the
        // style's circle layer from the tiles is removed, its labels (z14+) stay.
        let circles = browser
            .js("return __map.getStyle().layers.filter((l) => l.type === 'circle' && (l.source === 'gm-stations' || l['source-layer'] === 'stations')).map((l) => l.id);")
            .await;
        assert_eq!(circles, json!(["gm-stations-hit", "gm-stations", "gm-stations-selected"]), "station circle layers");
        // The resident map (the default tab): no household choropleth, report dots or legend.
        let hidden = browser
            .js("return ['grids-fill', 'reports'].map((id) => __map.getLayoutProperty(id, 'visibility'));")
            .await;
        assert_eq!(hidden, json!(["none", "none"]), "resident mode");
        assert_eq!(browser.js("return document.querySelector('#legend').hidden;").await, json!(true));
        // The planners' tab brings them back, with the legend.
        browser.client.find(Locator::Css("#tabs [data-tab=plan]")).await.expect("tab").click().await.expect("click");
        browser.wait_for("!document.querySelector('#legend').hidden", WAIT, "the legend on the planners' map").await;
        let shown = browser
            .js("return ['grids-fill', 'reports'].map((id) => __map.getLayoutProperty(id, 'visibility'));")
            .await;
        assert_eq!(shown, json!(["visible", "visible"]), "the planners' map");
        assert_eq!(browser.js("return !!__map.getLayer('stations-label');").await, true);
        // The household-balance legend: the style's balance_class colours with each class's
        // household range (from the style's metadata).
        let legend = browser
            .js("return [...document.querySelectorAll('#legend-balance .legend-stop')].map((e) => Number(e.dataset.households));")
            .await;
        assert_eq!(legend, json!([0, 210, 270, 330, 390]), "legend classes");
        let labels = browser
            .js("return [...document.querySelectorAll('#legend-balance .legend-stop')].map((e) => e.textContent);")
            .await;
        assert_eq!(labels, json!(["<210", "210–269", "270–329", "330–389", "≥390"]), "legend ranges");
        let swatch = browser
            .js("return getComputedStyle(document.querySelector('#legend-balance .legend-stop i')).backgroundColor;")
            .await;
        assert_eq!(swatch, json!("rgb(69, 117, 180)"), "the far-under colour of the style's match");
        // Reports come from a tile source of their own (their churn must not evict base tiles),
        // drawn as status-coloured dots with a legend read from the same style layer.
        let reports = browser.js("return __map.getLayer('reports') ? __map.getSource('reports').type : null;").await;
        assert_eq!(reports, json!("vector"), "reports layer from its own vector source");
        let report_legend =
            browser.js("return document.querySelectorAll('#legend-reports .legend-stop').length;").await;
        assert_eq!(report_legend, json!(3), "open / in hand / done in the legend");
        let legend_text = browser.js("return document.querySelector('#legend').innerText;").await;
        assert!(!legend_text.as_str().unwrap_or("").contains("null"), "no stray null in the legend: {legend_text}");
    } else {
        // Until the tile server is merged the page must say so, not show a blank map.
        let status = browser.js("return document.querySelector('#status').textContent;").await;
        assert!(status.as_str().unwrap_or("").contains("底图瓦片服务暂不可用"), "status line: {status}");
        eprintln!(
            "NOTE: /tiles/style.json is not served by this build (tiles not merged yet): tile layers not checked"
        );
    }

    let first_paint = browser.js("return window.__firstPaint;").await;
    let fcp = browser
        .js("const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? Math.round(e.startTime) : null;")
        .await;
    let (js_bytes, files) = shipped_js_bytes();
    eprintln!(
        "MEASURED: first contentful paint {fcp} ms; map drawn with all layers (first idle) {first_paint} ms after navigation start (tiles: {tiles})"
    );
    let marks = browser
        .js("return Object.fromEntries(performance.getEntriesByType('mark').map((m) => [m.name, Math.round(m.startTime)]));")
        .await;
    eprintln!("MEASURED: milestones (ms after navigation start): {marks}");
    let slowest = browser
        .js("return performance.getEntriesByType('resource').sort((a, b) => b.responseEnd - a.responseEnd).slice(0, 4)
             .map((e) => `${new URL(e.name).pathname} ${Math.round(e.startTime)}→${Math.round(e.responseEnd)} ms`);")
        .await;
    eprintln!("MEASURED: last resources to arrive: {slowest}");
    eprintln!("MEASURED: shipped JS {:.1} KiB in {} files: {files:?}", js_bytes as f64 / 1024.0, files.len());
    // What this page really downloaded (Performance API resource timing): the planner's editor
    // (terra-draw) is imported only when the planner view opens.
    let loaded = browser
        .js(r"const s = performance.getEntriesByType('resource').filter((e) => /\.m?js(\?|$)/.test(e.name));
             return { files: s.map((e) => new URL(e.name).pathname), decoded: s.reduce((n, e) => n + e.decodedBodySize, 0), transferred: s.reduce((n, e) => n + e.transferSize, 0) };")
        .await;
    eprintln!(
        "MEASURED: the resident page loaded {} JS files, {:.1} KiB decoded, {:.1} KiB transferred",
        loaded["files"].as_array().map_or(0, Vec::len),
        loaded["decoded"].as_f64().unwrap_or(0.0) / 1024.0,
        loaded["transferred"].as_f64().unwrap_or(0.0) / 1024.0
    );
    assert!(!loaded["files"].to_string().contains("terra-draw"), "terra-draw loaded on the resident page: {loaded}");

    browser.screenshot(&screenshot_path("resident-desktop.png")).await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[tokio::test]
async fn station_search_nearest_list_and_grid_card_work() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db("browser-demo-pass").await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let c = &browser.client;

    // Search by a service in Chinese ("微波炉" = microwave): only stations offering it remain.
    let search = c.find(Locator::Css("#search")).await.expect("search box");
    search.send_keys("微波炉").await.expect("type");
    let shown =
        browser.wait_for("document.querySelectorAll('#station-list li[data-id]').length", WAIT, "search results").await;
    let expected =
        browser.js("return __app.state.stations.filter((s) => s.services.includes('microwave')).length;").await;
    assert_eq!(shown, expected);
    assert!(shown.as_u64().expect("n") > 0 && shown.as_u64().expect("n") < 48, "{shown}");
    // A station card: address, hours, open-now badge, services with labels.
    c.find(Locator::Css("#station-list li[data-id]")).await.expect("first result").click().await.expect("click");
    browser.wait_for("!document.querySelector('#station-card').hidden", WAIT, "the station card").await;
    let card = c.find(Locator::Css("#station-card")).await.expect("card").text().await.expect("text");
    assert!(card.contains("地址") && card.contains("沂源县") && card.contains("微波炉"), "{card}");
    assert!(card.contains("正在营业") || card.contains("已休息"), "open-now badge: {card}");
    browser.screenshot(&screenshot_path("station-card.png")).await;
    search.clear().await.expect("clear");
    search.send_keys("no-such-station").await.expect("type");
    browser
        .wait_for("document.querySelector('#station-list').textContent.includes('没有匹配')", WAIT, "empty result")
        .await;

    // Nearest: a real click on the map. Centre the map on a point, then click the canvas centre.
    let (lon, lat) = (118.1703, 36.1806);
    c.find(Locator::Css("#tabs [data-tab=nearest]")).await.expect("tab").click().await.expect("click");
    browser.js(&format!("__map.jumpTo({{ center: [{lon}, {lat}], zoom: 15 }}); return true;")).await;
    c.find(Locator::Css("#map canvas")).await.expect("canvas").click().await.expect("click the map");
    browser.wait_for("document.querySelectorAll('#nearest-list li').length === 5", WAIT, "five nearest stations").await;
    let listed = browser
        .js("return [...document.querySelectorAll('#nearest-list li')].map((li) => Number(li.dataset.id));")
        .await;
    let clicked = browser.js("return [__app.state.nearest.lon, __app.state.nearest.lat];").await;
    let (clon, clat) = (clicked[0].as_f64().expect("lon"), clicked[1].as_f64().expect("lat"));
    assert!((clon - lon).abs() < 1e-4 && (clat - lat).abs() < 1e-4, "clicked {clicked}");
    let api: Value = reqwest::get(server.url(&format!("/api/stations/nearest?lon={clon}&lat={clat}&limit=5")))
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    let want: Vec<Value> = api["stations"].as_array().expect("array").iter().map(|s| s["id"].clone()).collect();
    assert_eq!(listed, Value::Array(want), "the list is the server's KNN order");
    let distances =
        browser.js("return [...document.querySelectorAll('#nearest-list .dist')].map((e) => e.textContent);").await;
    assert!(distances[0].as_str().unwrap_or("").ends_with('米'), "{distances}");
    browser.screenshot(&screenshot_path("nearest.png")).await;

    // Which grid: click the map in the grid tab; the card matches the API and names no phone.
    // (The map moved to show the nearest stations: click the same spot where it is now.)
    c.find(Locator::Css("#tabs [data-tab=grid]")).await.expect("tab").click().await.expect("click");
    browser.wait_for("!__map.isMoving()", WAIT, "the map to settle").await;
    let at = browser
        .js(&format!(
            "const p = __map.project([{clon}, {clat}]); const r = __map.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y];"
        ))
        .await;
    click_at(&browser, at[0].as_f64().expect("x"), at[1].as_f64().expect("y")).await;
    browser
        .wait_for(
            "!document.querySelector('#grid-card').hidden && document.querySelector('#grid-card .grid-code')",
            WAIT,
            "the grid card",
        )
        .await;
    let code = c.find(Locator::Css("#grid-card .grid-code")).await.expect("code").text().await.expect("text");
    let api: Value = reqwest::get(server.url(&format!("/api/grids/at?lon={clon}&lat={clat}")))
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    assert_eq!(code, api["code"].as_str().expect("code"));
    let grid_text = c.find(Locator::Css("#grid-card")).await.expect("card").text().await.expect("text");
    assert!(grid_text.contains("网格员") && grid_text.contains("户"), "{grid_text}");
    let private: Vec<Option<String>> =
        sqlx::query_scalar("select phone from account").fetch_all(&db.pool().await).await.expect("phones");
    for phone in private.iter().flatten() {
        assert!(!grid_text.contains(phone.as_str()), "private number {phone} on the card: {grid_text}");
    }
    // No worker's phone is published in the demo: the card names the community's service centre.
    let centre = api["service_centre"]["phone"].as_str().expect("the demo's service centre phone");
    assert!(grid_text.contains(centre) && grid_text.contains("党群服务中心"), "{grid_text}");
    browser
        .wait_for(
            "__map.queryRenderedFeatures({ layers: ['gm-grid-line'] }).length > 0",
            WAIT,
            "the grid outline drawn",
        )
        .await;
    browser.screenshot(&screenshot_path("grid-card.png")).await;

    // English toggle: every static label switches.
    c.find(Locator::Css("#lang")).await.expect("lang").click().await.expect("click");
    let tab = c.find(Locator::Css("#tabs [data-tab=grid]")).await.expect("tab").text().await.expect("text");
    assert_eq!(tab, "My grid");
    assert_eq!(browser.js("return document.documentElement.lang;").await, "en");
    let grid_text = c.find(Locator::Css("#grid-card")).await.expect("card").text().await.expect("text");
    assert!(grid_text.contains("Grid workers"), "{grid_text}");

    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[tokio::test]
async fn phone_width_layout_puts_the_panel_under_the_map() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db("browser-demo-pass").await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let rects = browser
        .js(r"const r = (s) => document.querySelector(s).getBoundingClientRect();
              return { map: r('#map').toJSON(), panel: r('#panel').toJSON(), vw: innerWidth };")
        .await;
    let vw = rects["vw"].as_f64().expect("vw");
    assert!(vw <= 400.0, "phone viewport: {rects}");
    assert!(
        rects["panel"]["top"].as_f64() >= rects["map"]["bottom"].as_f64().map(|b| b - 1.0),
        "panel below map: {rects}"
    );
    assert!((rects["panel"]["width"].as_f64().expect("w") - vw).abs() < 2.0, "full-width panel: {rects}");
    browser.screenshot(&screenshot_path("resident-phone.png")).await;

    // The grid worker's view on a phone: the login, then their (empty) queue under the map.
    tab(&browser, "worker").await;
    log_in(&browser, "#view-worker", "gw-0001").await;
    browser
        .wait_for(
            "document.querySelector('#worker-summary').textContent.includes('待办 0 件')",
            WAIT,
            "the worker's queue",
        )
        .await;
    assert_tabs_fit_on_one_line_each(&browser).await;
    browser.screenshot(&screenshot_path("worker-phone.png")).await;

    // The rider's form on a phone: the submit button is in sight without scrolling the panel, and
    // the GPS / pin buttons are real buttons (bordered, a thumb's height).
    browser.js("document.querySelector('#worker-logout').click(); return true;").await;
    rider_log_in(&browser, "rider-01").await;
    let form = browser
        .js(r"const panel = document.querySelector('#panel').getBoundingClientRect();
              const submit = document.querySelector('#report-form button[type=submit]').getBoundingClientRect();
              const b = (s) => { const e = document.querySelector(s); const st = getComputedStyle(e);
                return { h: e.getBoundingClientRect().height, border: st.borderTopStyle, width: parseFloat(st.borderTopWidth) }; };
              return { panelTop: panel.top, panelBottom: panel.bottom, top: submit.top, bottom: submit.bottom,
                       scrolled: document.querySelector('#panel').scrollTop, gps: b('#use-gps'), pin: b('#use-pin') };")
        .await;
    let f = |k: &str| form[k].as_f64().unwrap_or(f64::NAN);
    assert!(f("scrolled") < 1.0, "the panel is not scrolled: {form}");
    assert!(f("top") >= f("panelTop") && f("bottom") <= f("panelBottom"), "submit within the visible panel: {form}");
    for button in ["gps", "pin"] {
        assert!(form[button]["h"].as_f64().unwrap_or(0.0) >= 44.0, "{button} button height: {form}");
        assert_eq!(form[button]["border"], "solid", "{button} button is styled: {form}");
    }
    browser.screenshot(&screenshot_path("rider-form-phone.png")).await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[test]
fn web_map_unit_tests_pass() {
    // The opening-hours ("open now") rules are plain JS: run them with node's own test runner.
    let out = std::process::Command::new("node")
        .args(["--test", "test/"])
        .current_dir(web_map_dir())
        .output()
        .expect("node is required (run `bash scripts/setup.sh test`)");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

const PASSWORD: &str = "browser-demo-pass";

/// Log in through the login form of a view (`#view-worker`, `#view-plan`).
async fn log_in(browser: &Browser, view: &str, name: &str) {
    let c = &browser.client;
    let form = c.find(Locator::Css(&format!("{view} form.login"))).await.expect("login form");
    form.find(Locator::Css("[name=name]")).await.expect("name").send_keys(name).await.expect("type");
    form.find(Locator::Css("[name=password]")).await.expect("password").send_keys(PASSWORD).await.expect("type");
    form.find(Locator::Css("button[type=submit]")).await.expect("submit").click().await.expect("click");
}

async fn tab(browser: &Browser, name: &str) {
    browser
        .client
        .find(Locator::Css(&format!("#tabs [data-tab={name}]")))
        .await
        .expect("tab")
        .click()
        .await
        .expect("click");
}

async fn api_login(server: &Server, name: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&json!({"name": name, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    body["token"].as_str().unwrap_or_else(|| panic!("login {name}: {body}")).to_string()
}

/// gw-0001's grid: its id and a point well inside it.
async fn worker_grid(pool: &sqlx::PgPool) -> (i64, f64, f64) {
    sqlx::query_as(
        "select g.id, ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom))
           from grid g join grid_assignment ga on ga.grid_id = g.id join account a on a.id = ga.account_id
          where a.name = 'gw-0001' order by g.id limit 1",
    )
    .fetch_one(pool)
    .await
    .expect("gw-0001 works a grid")
}

/// A report filed through the API (as a rider would), returning its id.
async fn file_report(server: &Server, token: &str, category: &str, lon: f64, lat: f64, text: &str) -> i64 {
    let reply = reqwest::Client::new()
        .post(server.url("/api/reports"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"category": category, "description": text, "location": {"lon": lon, "lat": lat, "crs": "wgs84", "accuracy_m": 8.0}}))
        .send()
        .await
        .expect("report");
    let status = reply.status();
    let body: Value = reply.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().expect("id")
}

async fn transition(server: &Server, token: &str, id: i64, version: i32, to: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(server.url(&format!("/api/reports/{id}/transitions")))
        .bearer_auth(token)
        .header("If-Match", format!("\"{version}\""))
        .json(&json!({"to": to}))
        .send()
        .await
        .expect("transition")
        .status()
}

#[tokio::test]
async fn rider_report_made_offline_is_queued_then_sent_once_when_the_network_returns() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let c = &browser.client;

    tab(&browser, "report").await;
    let form = c.find(Locator::Css("#login-form")).await.expect("login form");
    form.find(Locator::Css("[name=name]")).await.expect("name").send_keys("rider-01").await.expect("type");
    form.find(Locator::Css("[name=password]"))
        .await
        .expect("password")
        .send_keys("wrong password")
        .await
        .expect("type");
    form.find(Locator::Css("button[type=submit]")).await.expect("submit").click().await.expect("click");
    browser
        .wait_for(
            "document.querySelector('#login-error').textContent.includes('账号或密码错误')",
            WAIT,
            "the login error",
        )
        .await;
    let pw = form.find(Locator::Css("[name=password]")).await.expect("password");
    pw.clear().await.expect("clear");
    pw.send_keys(PASSWORD).await.expect("type");
    form.find(Locator::Css("button[type=submit]")).await.expect("submit").click().await.expect("click");
    browser.wait_for("!document.querySelector('#rider').hidden", WAIT, "the rider view after login").await;
    assert!(c.find(Locator::Css("#rider-who")).await.expect("who").text().await.expect("text").contains("rider-01"));
    assert_eq!(
        browser.js("return document.querySelector('#report-unavailable').hidden;").await,
        true,
        "the reports API is there"
    );

    // The categories come from the server (and are cached for offline use).
    browser
        .wait_for(
            "document.querySelectorAll('#category option[value]:not([value=\"\"])').length > 0",
            WAIT,
            "categories",
        )
        .await;
    let category: String = sqlx::query_scalar("select code from report_category order by sort limit 1")
        .fetch_one(&pool)
        .await
        .expect("category");
    c.find(Locator::Css("#category")).await.expect("select").select_by_value(&category).await.expect("choose");
    let (grid_id, lon, lat) = worker_grid(&pool).await;
    browser.js(&format!("__map.jumpTo({{ center: [{lon}, {lat}], zoom: 16 }}); return true;")).await;
    c.find(Locator::Css("#use-pin")).await.expect("pin").click().await.expect("click");
    // Let the map finish loading its tiles first: a tile cut off mid-flight is a map error.
    browser.wait_for("__map.loaded() && __map.areTilesLoaded()", WAIT, "the map's tiles").await;

    // Network cut: Chromium's own emulation, the server keeps running.
    browser.set_offline(true).await;
    browser.wait_for("navigator.onLine === false", WAIT, "the page to see it is offline").await;
    c.find(Locator::Css("#report-form textarea"))
        .await
        .expect("description")
        .send_keys("井盖破损（离线上报）")
        .await
        .expect("type");
    c.find(Locator::Css("#report-form button[type=submit]")).await.expect("submit").click().await.expect("click");
    browser.wait_for("document.querySelectorAll('#outbox li[data-key]').length === 1", WAIT, "the queued report").await;
    let key = browser.js("return document.querySelector('#outbox li[data-key]').dataset.key;").await;
    let key = uuid::Uuid::parse_str(key.as_str().expect("key")).expect("a UUID");
    assert_eq!(browser.js("return document.querySelector('#outbox li[data-key]').dataset.state;").await, "pending");
    // "Retry now" while still offline: the fetch fails, the report stays, same key.
    c.find(Locator::Css("#outbox li[data-key] button")).await.expect("retry").click().await.expect("click");
    browser
        .wait_for(
            "window.__lastFlush && window.__lastFlush.length === 1 && window.__lastFlush[0].status === 0",
            WAIT,
            "a failed retry",
        )
        .await;
    assert_eq!(browser.js("return document.querySelector('#outbox li[data-key]').dataset.key;").await, key.to_string());
    let stored: i64 = sqlx::query_scalar("select count(*) from report").fetch_one(&pool).await.expect("count");
    assert_eq!(stored, 0, "nothing reached the server while offline");
    browser.screenshot(&screenshot_path("rider-outbox.png")).await;

    // The worst case of a weak connection: a send reached the server but its answer was lost.
    // Replay exactly what the outbox holds, with its key and the rider's token, from outside.
    let item = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const token = JSON.parse(localStorage.getItem('gridmap.session')).token;
             // The outbox as queue.js keeps it: IndexedDB `gridmap-rider`, store `outbox`.
             const open = indexedDB.open('gridmap-rider');
             open.onsuccess = () => {
               const all = open.result.transaction('outbox').objectStore('outbox').getAll();
               all.onsuccess = () => done({ report: all.result[0].report, token });
             };",
            vec![],
        )
        .await
        .expect("read the outbox");
    let lost = reqwest::Client::new()
        .post(server.url("/api/reports"))
        .bearer_auth(item["token"].as_str().expect("token"))
        .header("Idempotency-Key", key.to_string())
        .json(&item["report"])
        .send()
        .await
        .expect("send");
    assert_eq!(lost.status(), 201);

    // Network back: the page's `online` event sends the outbox by itself, with the same key.
    browser.set_offline(false).await;
    browser.wait_for("navigator.onLine === true", WAIT, "the page to see it is online").await;
    browser
        .wait_for("document.querySelectorAll('#outbox li[data-key]').length === 0", WAIT, "the outbox to empty")
        .await;
    browser
        .wait_for(
            &format!("document.querySelector('#sent li[data-key=\"{key}\"]')"),
            WAIT,
            "the report under my reports",
        )
        .await;
    let rows: Vec<(i64, Option<i64>, String)> =
        sqlx::query_as("select id, grid_id, description from report where idempotency_key = $1")
            .bind(key)
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows.len(), 1, "stored exactly once: {rows:?}");
    assert_eq!(sqlx::query_scalar::<_, i64>("select count(*) from report").fetch_one(&pool).await.expect("count"), 1);
    assert_eq!(rows[0].1, Some(grid_id), "the report landed in the grid containing its point");
    assert_eq!(rows[0].2, "井盖破损（离线上报）");
    let sent =
        c.find(Locator::Css(&format!("#sent li[data-key=\"{key}\"]"))).await.expect("sent").text().await.expect("text");
    assert!(sent.contains(&format!("编号 {}", rows[0].0)), "the answer (replayed by the server) is shown: {sent}");
    browser.screenshot(&screenshot_path("rider-sent.png")).await;

    // A reload keeps "my reports" (IndexedDB) and the login.
    c.refresh().await.expect("reload");
    browser.wait_for("window.__appReady === true", WAIT, "the app after reload").await;
    tab(&browser, "report").await;
    browser
        .wait_for(&format!("document.querySelector('#sent li[data-key=\"{key}\"]')"), WAIT, "my reports after reload")
        .await;
    // "My reports" asks the server for the current status.
    browser
        .wait_for(
            &format!("document.querySelector('#sent li[data-key=\"{key}\"] .report-status[data-status=submitted]')"),
            WAIT,
            "the status",
        )
        .await;

    // Online, a second report of the same category at the same place, with a photo: the
    // possible-duplicate prompt names the first one; "send anyway" sends it as multipart
    // (`report` + `photo` parts) with the photo as the browser re-encoded it.
    browser
        .wait_for(
            "document.querySelectorAll('#category option[value]:not([value=\"\"])').length > 0",
            WAIT,
            "categories",
        )
        .await;
    c.find(Locator::Css("#category")).await.expect("select").select_by_value(&category).await.expect("choose");
    c.find(Locator::Css("#report-form textarea"))
        .await
        .expect("description")
        .send_keys("路灯不亮")
        .await
        .expect("type");
    browser.js(&format!("__map.jumpTo({{ center: [{lon}, {lat}], zoom: 16 }}); return true;")).await;
    c.find(Locator::Css("#use-pin")).await.expect("pin").click().await.expect("click");
    // A 2400×1800 camera-sized JPEG handed to the file input, as a picker would.
    c.execute_async(
        "const done = arguments[arguments.length - 1];
         const cv = document.createElement('canvas'); cv.width = 2400; cv.height = 1800;
         const g = cv.getContext('2d'); g.fillStyle = '#c33'; g.fillRect(0, 0, 2400, 1800); g.fillStyle = '#fff'; g.fillRect(200, 200, 800, 600);
         cv.toBlob((b) => { const dt = new DataTransfer(); dt.items.add(new File([b], 'lamp.jpg', { type: 'image/jpeg' }));
           const input = document.querySelector('#photos'); input.files = dt.files; input.dispatchEvent(new Event('change')); done(true); }, 'image/jpeg', 0.9);",
        vec![],
    )
    .await
    .expect("choose a photo");
    browser.wait_for("document.querySelectorAll('#photo-previews img').length === 1", WAIT, "the resized photo").await;
    c.find(Locator::Css("#report-form button[type=submit]")).await.expect("submit").click().await.expect("click");
    browser.wait_for(&format!("!document.querySelector('#duplicates').hidden && document.querySelector('#duplicates').textContent.includes('#{}')", rows[0].0), WAIT, "the possible duplicate").await;
    c.find(Locator::Css("#duplicates button.primary")).await.expect("send anyway").click().await.expect("click");
    browser
        .wait_for("document.querySelectorAll('#sent li[data-key]').length === 2", WAIT, "the second report sent")
        .await;
    let (photos, one_row): (i32, bool) = sqlx::query_as(
        "select r.photo_count, (select count(*) from report_photo p where p.report_id = r.id) = 1 from report r where r.description = '路灯不亮'",
    )
    .fetch_one(&pool)
    .await
    .expect("the photo report");
    assert_eq!((photos, one_row), (1, true), "the photo arrived as the server's `photo` part");
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[tokio::test]
async fn grid_worker_sees_their_grids_open_reports_with_deadlines_and_acts_with_if_match() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    let (grid_id, lon, lat) = worker_grid(&pool).await;
    let category: String = sqlx::query_scalar("select code from report_category order by sort limit 1")
        .fetch_one(&pool)
        .await
        .expect("category");
    let rider = api_login(&server, "rider-01").await;
    let admin = api_login(&server, "demo-admin").await;
    let late = file_report(&server, &rider, &category, lon, lat, "占道经营，已派遣未处理").await;
    let fresh = file_report(&server, &rider, &category, lon, lat, "垃圾堆放").await;
    // Another grid's report must not show up.
    let (other_lon, other_lat): (f64, f64) = sqlx::query_as(
        "select ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) from grid where id <> $1 order by id desc limit 1",
    )
    .bind(grid_id)
    .fetch_one(&pool)
    .await
    .expect("other grid");
    file_report(&server, &rider, &category, other_lon, other_lat, "别的网格").await;
    assert_eq!(transition(&server, &admin, late, 1, "accepted").await, 200);
    assert_eq!(transition(&server, &admin, late, 2, "dispatched").await, 200);
    // Its deadline passed two hours ago.
    sqlx::query("update report set due_at = now() - interval '2 hours' where id = $1")
        .bind(late)
        .execute(&pool)
        .await
        .expect("age it");

    open(&browser, &server).await;
    let c = &browser.client;
    tab(&browser, "worker").await;
    log_in(&browser, "#view-worker", "gw-0001").await;
    browser
        .wait_for(
            "document.querySelectorAll('#worker-list li[data-id]').length === 2",
            WAIT,
            "the grid's two open reports",
        )
        .await;
    let listed = browser.js("return [...document.querySelectorAll('#worker-list li[data-id]')].map((li) => [Number(li.dataset.id), li.dataset.deadline]);").await;
    assert_eq!(listed, json!([[late, "overdue"], [fresh, "none"]]), "overdue first, highlighted");
    let colour = browser.js("return getComputedStyle(document.querySelector('#worker-list li[data-deadline=overdue] .deadline')).color;").await;
    assert_eq!(colour, "rgb(217, 48, 37)", "overdue deadline in red");
    let text =
        c.find(Locator::Css("#worker-list li[data-deadline=overdue]")).await.expect("li").text().await.expect("text");
    assert!(text.contains("已超期"), "{text}");
    browser
        .wait_for("__map.queryRenderedFeatures({ layers: ['gm-work'] }).length === 2", WAIT, "the reports on the map")
        .await;
    browser
        .wait_for(
            "__map.queryRenderedFeatures({ layers: ['gm-work-grid'] }).length > 0",
            WAIT,
            "the worker's grid outlined",
        )
        .await;

    // Accept the fresh report from its card: only the allowed transitions are offered.
    c.find(Locator::Css(&format!("#worker-list li[data-id=\"{fresh}\"]")))
        .await
        .expect("li")
        .click()
        .await
        .expect("click");
    browser
        .wait_for(
            "!document.querySelector('#report-card').hidden && document.querySelector('#report-card [data-to]')",
            WAIT,
            "the card",
        )
        .await;
    let offered =
        browser.js("return [...document.querySelectorAll('#report-card [data-to]')].map((b) => b.dataset.to);").await;
    assert_eq!(offered, json!(["accepted", "cancelled"]));
    c.find(Locator::Css("#report-card textarea[name=note]"))
        .await
        .expect("note")
        .send_keys("已核实，立案")
        .await
        .expect("type");
    c.find(Locator::Css("#report-card [data-to=accepted]")).await.expect("accept").click().await.expect("click");
    browser
        .wait_for("document.querySelector('#report-message')?.textContent.includes('已立案')", WAIT, "accepted")
        .await;
    let (status, version): (String, i32) = sqlx::query_as("select status, version from report where id = $1")
        .bind(fresh)
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_eq!((status.as_str(), version), ("accepted", 2));
    let (actor, note): (String, Option<String>) =
        sqlx::query_as("select actor, note from report_event where report_id = $1 and to_status = 'accepted'")
            .bind(fresh)
            .fetch_one(&pool)
            .await
            .expect("event");
    assert_eq!((actor.as_str(), note.as_deref()), ("gw-0001", Some("已核实，立案")));
    let card = c.find(Locator::Css("#report-card")).await.expect("card").text().await.expect("text");
    assert!(card.contains("垃圾堆放") && !card.contains("null"), "card: {card}");
    browser.screenshot(&screenshot_path("worker.png")).await;

    // Someone else dispatches it behind the card's back; the card's If-Match is stale → 412 → reloaded.
    // (The live feed would show the change at once — `grid_worker_sees_a_new_report_…`; stopped
    // here, as when its event is still on the way, the step still cannot overwrite the other.)
    browser.js("window.__workerFeed.stopped = true; window.__workerFeed.controller?.abort();").await;
    assert_eq!(transition(&server, &admin, fresh, 2, "dispatched").await, 200);
    c.find(Locator::Css("#report-card [data-to=dispatched]")).await.expect("dispatch").click().await.expect("click");
    browser
        .wait_for(
            "document.querySelector('#report-message')?.textContent.includes('已被他人处理')",
            WAIT,
            "the conflict",
        )
        .await;
    let offered =
        browser.js("return [...document.querySelectorAll('#report-card [data-to]')].map((b) => b.dataset.to);").await;
    assert_eq!(offered, json!(["handling", "cancelled", "parked"]), "the card shows the report as it is now");
    let version: i32 =
        sqlx::query_scalar("select version from report where id = $1").bind(fresh).fetch_one(&pool).await.expect("v");
    assert_eq!(version, 3, "the stale click changed nothing");
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// Open the planner view logged in and select grid `id` by clicking it on the map; returns the
/// grid's outer ring as the editor holds it.
async fn planner_selects(browser: &Browser, pool: &sqlx::PgPool, id: i64) -> Vec<[f64; 2]> {
    tab(browser, "plan").await;
    log_in(browser, "#view-plan", "demo-planner").await;
    browser.wait_for("window.__plannerReady === true", WAIT, "the editor (terra-draw) to load").await;
    let (minx, miny, maxx, maxy, lon, lat): (f64, f64, f64, f64, f64, f64) = sqlx::query_as(
        "select ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom), ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) from grid where id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("grid");
    browser
        .js(&format!("__map.fitBounds([[{minx}, {miny}], [{maxx}, {maxy}]], {{ padding: 120, duration: 0 }}); __map.setCenter([{lon}, {lat}]); return true;"))
        .await;
    browser.client.find(Locator::Css("#map canvas")).await.expect("canvas").click().await.expect("click the grid");
    browser
        .wait_for(&format!("window.__plannerGrid && window.__plannerGrid.id === {id}"), WAIT, "the grid in the editor")
        .await;
    // Selecting is not editing: once the map has gone idle after a repaint, every event the
    // selection set off (Terra Draw's `change` among them) has run.
    browser
        .js("return new Promise((done) => { __map.once('idle', () => done(true)); __map.triggerRepaint(); });")
        .await;
    assert_eq!(
        browser.js("return document.querySelector('#dirty') === null;").await,
        true,
        "no unsaved change right after selecting"
    );
    let ring = browser
        .js("const f = __draw.getSnapshot().find((f) => f.geometry.type === 'Polygon'); return f.geometry.coordinates[0];")
        .await;
    serde_json::from_value(ring).expect("ring")
}

/// Drag the ring's vertex `i` with real pointer input to `fraction` of the way to the ring's
/// centre (negative: away from it). Returns (from, to) in lon/lat.
async fn drag_vertex(browser: &Browser, ring: &[[f64; 2]], i: usize, fraction: f64) -> ([f64; 2], [f64; 2]) {
    use fantoccini::actions::{InputSource, MouseActions, PointerAction};
    let n = ring.len() - 1;
    let (cx, cy) = ring[..n].iter().fold((0.0, 0.0), |(x, y), p| (x + p[0] / n as f64, y + p[1] / n as f64));
    let from = ring[i];
    let px = browser
        .js(&format!(
            "const r = document.querySelector('#map').getBoundingClientRect();
             const a = __map.project([{}, {}]); const c = __map.project([{cx}, {cy}]);
             return [r.left + a.x, r.top + a.y, r.left + c.x, r.top + c.y, r.left, r.top, r.right, r.bottom];",
            from[0], from[1]
        ))
        .await;
    let p: Vec<f64> = serde_json::from_value(px).expect("pixels");
    let (x0, y0) = (p[0].round(), p[1].round());
    // Stay on the map (a target outside the viewport is a WebDriver error).
    let x1 = (p[0] + (p[2] - p[0]) * fraction).round().clamp(p[4] + 10.0, p[6] - 10.0);
    let y1 = (p[1] + (p[3] - p[1]) * fraction).round().clamp(p[5] + 10.0, p[7] - 10.0);
    let step = Duration::from_millis(60);
    let mut mouse = MouseActions::new("planner".into())
        .then(PointerAction::MoveTo { duration: Some(step), x: x0, y: y0 })
        .then(PointerAction::Down { button: 0 });
    for k in 1..=8 {
        let f = f64::from(k) / 8.0;
        mouse =
            mouse.then(PointerAction::MoveTo { duration: Some(step), x: x0 + (x1 - x0) * f, y: y0 + (y1 - y0) * f });
    }
    mouse = mouse.then(PointerAction::Up { button: 0 });
    browser.client.perform_actions(mouse).await.expect("drag");
    let map_left_top =
        browser.js("const r = document.querySelector('#map').getBoundingClientRect(); return [r.left, r.top];").await;
    let to = browser
        .js(&format!(
            "const l = __map.unproject([{} - {}, {} - {}]); return [l.lng, l.lat];",
            x1, map_left_top[0], y1, map_left_top[1]
        ))
        .await;
    (from, serde_json::from_value(to).expect("lnglat"))
}

/// Which grid the map draws at a lon/lat (from the rendered tiles), or null.
fn grid_drawn_at(lon: f64, lat: f64) -> String {
    format!(
        "(() => {{ const p = __map.project([{lon}, {lat}]); const f = __map.queryRenderedFeatures(p, {{ layers: ['grids-fill'] }})[0]; return f ? f.id : null; }})()"
    )
}

fn near(a: [f64; 2], b: [f64; 2], tol: f64) -> bool {
    (a[0] - b[0]).abs() < tol && (a[1] - b[1]).abs() < tol
}

#[tokio::test]
async fn planner_moves_a_vertex_the_map_redraws_the_boundary_and_overlaps_are_drawn() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    if !tiles_deployed(&server).await {
        gridmap_e2e::cannot_run("no tile server in this build");
        return;
    }
    open(&browser, &server).await;
    // A grid in the middle of the town, so that a vertex pulled outwards meets neighbours, not the county line.
    let id: i64 = sqlx::query_scalar(
        "select id from grid order by ST_Distance(ST_Centroid(geom), (select ST_Centroid(ST_Collect(geom)) from grid)) limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("inner grid");
    let ring = planner_selects(&browser, &pool, id).await;
    // The vertex farthest from its neighbours (the easiest to grab), moved 30 % towards the centre.
    let n = ring.len() - 1;
    let i = (0..n)
        .max_by(|&a, &b| {
            let gap = |k: usize| {
                let (p, q, r) = (ring[(k + n - 1) % n], ring[k], ring[(k + 1) % n]);
                ((q[0] - p[0]).hypot(q[1] - p[1])).min((q[0] - r[0]).hypot(q[1] - r[1]))
            };
            gap(a).total_cmp(&gap(b))
        })
        .expect("a vertex");
    let gaps = || async {
        let body: Value = reqwest::get(server.url("/api/grids/gaps")).await.expect("gaps").json().await.expect("json");
        body["numberReturned"].as_u64().expect("n")
    };
    let gaps_before = gaps().await;
    let (from, to) = drag_vertex(&browser, &ring, i, 0.3).await;
    let mid = [f64::midpoint(from[0], to[0]), f64::midpoint(from[1], to[1])];
    // Before saving: the households the new shape holds and the gaps it would open.
    browser.wait_for("document.querySelector('#edit-households')", WAIT, "the edit's preview").await;
    let preview = browser.js("return window.__editPreview;").await;
    let previewed_gaps = preview["gaps"]["numberReturned"].as_u64().expect("gaps");
    if previewed_gaps > 0 {
        let listed = browser.js("return document.querySelectorAll('#edit-gaps li').length;").await;
        assert_eq!(listed, json!(previewed_gaps), "every gap listed");
        browser
            .wait_for("__map.queryRenderedFeatures({ layers: ['gm-gaps'] }).length > 0", WAIT, "the gaps drawn")
            .await;
    }
    browser.screenshot(&screenshot_path("planner-edit-preview.png")).await;
    assert_eq!(
        browser.js(&format!("return {};", grid_drawn_at(mid[0], mid[1]))).await,
        json!(id),
        "before: the map draws the grid there"
    );
    browser.wait_for("document.querySelector('#dirty')", WAIT, "the edit to register").await;
    let c = &browser.client;
    c.find(Locator::Css("#save-form [name=reason]"))
        .await
        .expect("reason")
        .send_keys("按新小区边界调整")
        .await
        .expect("type");
    c.find(Locator::Css("#save-form button[type=submit]")).await.expect("save").click().await.expect("click");
    browser.wait_for("window.__plannerSaved === 1", WAIT, "the save").await;
    let stored: i32 =
        sqlx::query_scalar("select households from grid where id = $1").bind(id).fetch_one(&pool).await.expect("hh");
    assert_eq!(json!(stored), preview["households"], "the save holds the households the preview showed");
    assert_eq!(gaps().await, gaps_before + previewed_gaps, "and leaves the gaps it showed");

    // The database and the feature endpoint hold the moved vertex; the history says who and why.
    let (version, author, reason): (i32, String, Option<String>) = sqlx::query_as(
        "select g.version, v.author, v.reason from grid g join grid_version v on v.grid_id = g.id and v.version = g.version where g.id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("grid");
    assert_eq!((version, author.as_str(), reason.as_deref()), (2, "demo-planner", Some("按新小区边界调整")));
    let item: Value = reqwest::get(server.url(&format!("/ogc/collections/grids/items/{id}")))
        .await
        .expect("item")
        .json()
        .await
        .expect("json");
    let stored: Vec<[f64; 2]> = serde_json::from_value(item["geometry"]["coordinates"][0][0].clone()).expect("ring");
    assert!(stored.iter().any(|p| near(*p, to, 2e-6)), "the new vertex {to:?} is stored: {stored:?}");
    assert!(!stored.iter().any(|p| near(*p, from, 1e-7)), "the old vertex {from:?} is gone");
    let message = c.find(Locator::Css("#editor-message")).await.expect("message").text().await.expect("text");
    assert!(message.contains("已保存") && message.contains("户"), "households after the edit shown: {message}");
    // The map shows the new boundary: the tiles were reloaded, and the place the vertex left is
    // no longer drawn as this grid.
    browser
        .wait_for(&format!("{} !== {id}", grid_drawn_at(mid[0], mid[1])), WAIT, "the map to draw the new boundary")
        .await;
    browser.screenshot(&screenshot_path("planner-saved.png")).await;

    // Dragging a vertex far out into the neighbours: 422, nothing saved, the overlaps drawn in red.
    let ring: Vec<[f64; 2]> = serde_json::from_value(
        browser
            .js("return __draw.getSnapshot().find((f) => f.geometry.type === 'Polygon').geometry.coordinates[0];")
            .await,
    )
    .expect("ring");
    drag_vertex(&browser, &ring, i, -0.8).await;
    browser.wait_for("document.querySelector('#dirty')", WAIT, "the edit to register").await;
    c.find(Locator::Css("#save-form [name=reason]")).await.expect("reason").send_keys("试探").await.expect("type");
    c.find(Locator::Css("#save-form button[type=submit]")).await.expect("save").click().await.expect("click");
    browser.wait_for("window.__plannerRefused", WAIT, "the refusal").await;
    let message = c.find(Locator::Css("#editor-message")).await.expect("message").text().await.expect("text");
    assert!(message.contains("重叠"), "{message}");
    let editor = c.find(Locator::Css("#editor")).await.expect("editor").text().await.expect("text");
    assert!(!editor.contains("null"), "no stray null in the editor: {editor}");
    let listed = browser.js("return document.querySelectorAll('#editor .overlaps li').length;").await;
    assert!(listed.as_u64().unwrap_or(0) >= 1, "overlapped neighbours listed: {listed}");
    browser
        .wait_for("__map.queryRenderedFeatures({ layers: ['gm-overlap'] }).length > 0", WAIT, "the overlaps drawn")
        .await;
    let version: i32 =
        sqlx::query_scalar("select version from grid where id = $1").bind(id).fetch_one(&pool).await.expect("v");
    assert_eq!(version, 2, "nothing written");
    browser.screenshot(&screenshot_path("planner-overlap.png")).await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[tokio::test]
async fn planner_save_after_a_change_behind_its_back_gets_412_reloads_and_can_revert() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let (id, lon, lat) = worker_grid(&pool).await;
    let original: String =
        sqlx::query_scalar("select name from grid where id = $1").bind(id).fetch_one(&pool).await.expect("name");
    let ring = planner_selects(&browser, &pool, id).await;

    // demo-admin renames the grid through the OGC API while the planner has it open.
    let admin = api_login(&server, "demo-admin").await;
    let reply = reqwest::Client::new()
        .patch(server.url(&format!("/ogc/collections/grids/items/{id}?reason=%E6%9B%B4%E5%90%8D")))
        .bearer_auth(&admin)
        .header("If-Match", "\"1\"")
        .json(&json!({"properties": {"name": "幸福里网格"}}))
        .send()
        .await
        .expect("patch");
    assert_eq!(reply.status(), 200);

    drag_vertex(&browser, &ring, 0, 0.2).await;
    browser.wait_for("document.querySelector('#dirty')", WAIT, "the edit to register").await;
    let c = &browser.client;
    c.find(Locator::Css("#save-form [name=reason]")).await.expect("reason").send_keys("微调").await.expect("type");
    c.find(Locator::Css("#save-form button[type=submit]")).await.expect("save").click().await.expect("click");
    browser.wait_for("window.__plannerConflict", WAIT, "the conflict").await;
    let conflict = c.find(Locator::Css("#conflict")).await.expect("conflict box").text().await.expect("text");
    assert!(
        conflict.contains("演示管理员")
            && !conflict.contains("demo-admin")
            && conflict.contains("幸福里网格")
            && conflict.contains(&original),
        "what changed: {conflict}"
    );
    assert_eq!(browser.js("return window.__plannerGrid.etag;").await, "\"2\"", "the editor reloaded the grid");
    let heading = c.find(Locator::Css("#editor h2")).await.expect("h2").text().await.expect("text");
    assert!(heading.contains("幸福里网格"), "{heading}");
    let version: i32 =
        sqlx::query_scalar("select version from grid where id = $1").bind(id).fetch_one(&pool).await.expect("v");
    assert_eq!(version, 2, "the stale save wrote nothing");
    browser
        .wait_for(
            "__map.queryRenderedFeatures({ layers: ['gm-mine'] }).length > 0",
            WAIT,
            "my draft drawn for reference",
        )
        .await;
    browser.screenshot(&screenshot_path("planner-conflict.png")).await;

    // History with revert: back to version 1 (a new version 3 with the old name).
    c.find(Locator::Css("#grid-history li[data-version=\"1\"] button"))
        .await
        .expect("revert")
        .click()
        .await
        .expect("click");
    browser.wait_for("window.__plannerGrid.etag === '\"3\"'", WAIT, "the revert").await;
    let (name, version): (String, i32) =
        sqlx::query_as("select name, version from grid where id = $1").bind(id).fetch_one(&pool).await.expect("row");
    assert_eq!((name.as_str(), version), (original.as_str(), 3));

    // The H3 heatmap of reports by period and category, with its legend.
    let rider = api_login(&server, "rider-01").await;
    let category: String = sqlx::query_scalar("select code from report_category order by sort limit 1")
        .fetch_one(&pool)
        .await
        .expect("category");
    for k in 0..3 {
        file_report(&server, &rider, &category, lon, lat + f64::from(k) * 0.00005, "热力图样本").await;
    }
    c.find(Locator::Css("#heatmap-form select[name=category]"))
        .await
        .expect("select")
        .select_by_value(&category)
        .await
        .expect("choose");
    c.find(Locator::Css("#heatmap-form button[type=submit]")).await.expect("show").click().await.expect("click");
    browser.wait_for("window.__heatmap && window.__heatmap.total === 3", WAIT, "the heatmap").await;
    browser.js(&format!("__map.jumpTo({{ center: [{lon}, {lat}], zoom: 14 }}); return true;")).await;
    browser.wait_for("__map.queryRenderedFeatures({ layers: ['gm-hex'] }).length > 0", WAIT, "hexagons drawn").await;
    assert_eq!(browser.js("return !!document.querySelector('#legend-hex');").await, true);
    // Its own ramp, the household colouring hidden while it is on, and a legend whose classes
    // count the cells: 3 reports in cells of 1–3, every cell in one class.
    assert_eq!(browser.js("return __map.getLayoutProperty('grids-fill', 'visibility');").await, json!("none"));
    assert_eq!(browser.js("return !!document.querySelector('#legend-balance');").await, json!(false));
    let cells = browser
        .js("return [...document.querySelectorAll('#legend-hex .legend-class')].reduce((s, e) => s + Number(e.dataset.cells), 0);")
        .await;
    assert_eq!(cells, json!(browser.js("return window.__heatmap.cells;").await), "the legend counts every cell");
    let hex_colours = browser.js("return JSON.stringify(__map.getPaintProperty('gm-hex', 'fill-color'));").await;
    let household_colours =
        browser.js("return JSON.stringify(__map.getPaintProperty('grids-fill', 'fill-color'));").await;
    for colour in ["#b3cde3", "#810f7c"] {
        assert!(hex_colours.as_str().unwrap_or("").contains(colour), "{hex_colours}");
        assert!(!household_colours.as_str().unwrap_or("").contains(colour), "a ramp of its own: {household_colours}");
    }
    browser.screenshot(&screenshot_path("planner-heatmap.png")).await;
    c.find(Locator::Css("#heatmap-clear")).await.expect("clear").click().await.expect("click");
    assert_eq!(browser.js("return __map.getLayoutProperty('grids-fill', 'visibility');").await, json!("visible"));
    assert_eq!(browser.js("return !!document.querySelector('#legend-balance');").await, json!(true));

    // English: the planner's strings switch too.
    c.find(Locator::Css("#lang")).await.expect("lang").click().await.expect("click");
    let tab_text = c.find(Locator::Css("#tabs [data-tab=plan]")).await.expect("tab").text().await.expect("text");
    assert_eq!(tab_text, "Planning");
    assert!(
        c.find(Locator::Css("#view-plan")).await.expect("view").text().await.expect("text").contains("Grid editor")
    );
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// A real click (pointer down/up) at viewport pixel `(x, y)`.
async fn click_at(browser: &Browser, x: f64, y: f64) {
    use fantoccini::actions::{InputSource, MouseActions, PointerAction};
    let mouse = MouseActions::new("click".into())
        .then(PointerAction::MoveTo { duration: Some(Duration::from_millis(50)), x: x.round(), y: y.round() })
        .then(PointerAction::Down { button: 0 })
        .then(PointerAction::Up { button: 0 });
    browser.client.perform_actions(mouse).await.expect("click");
    // Slower than a double click, which MapLibre would take as "zoom in".
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[tokio::test]
async fn planner_splits_a_grid_along_a_drawn_line_and_merges_it_back() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let id: i64 = sqlx::query_scalar(
        "select id from grid order by ST_Distance(ST_Centroid(geom), (select ST_Centroid(ST_Collect(geom)) from grid)) limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("inner grid");
    let grids_before: i64 = sqlx::query_scalar("select count(*) from grid").fetch_one(&pool).await.expect("count");
    planner_selects(&browser, &pool, id).await;
    let c = &browser.client;

    // Split: draw a line across the grid (west → east through its middle), click its end again.
    c.find(Locator::Css("#start-split")).await.expect("split").click().await.expect("click");
    browser.wait_for("__draw.getMode() === 'linestring'", WAIT, "line drawing").await;
    let (minx, maxx, lat): (f64, f64, f64) =
        sqlx::query_as("select ST_XMin(geom), ST_XMax(geom), ST_Y(ST_Centroid(geom)) from grid where id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("bbox");
    let px = browser
        .js(&format!(
            "const r = document.querySelector('#map').getBoundingClientRect();
             const a = __map.project([{minx}, {lat}]); const b = __map.project([{maxx}, {lat}]);
             return [r.left + a.x - 40, r.top + a.y, r.left + b.x + 40, r.top + b.y];"
        ))
        .await;
    let p: Vec<f64> = serde_json::from_value(px).expect("pixels");
    click_at(&browser, p[0], p[1]).await;
    click_at(&browser, p[2], p[3]).await;
    click_at(&browser, p[2], p[3]).await;
    browser.wait_for("document.querySelector('#split-form [name=reason]')", WAIT, "the finished line").await;
    // Before saving: each part's households against the 300 standard, flagged beyond ±15%.
    browser.wait_for("document.querySelector('#split-preview li')", WAIT, "the split preview").await;
    let preview = browser
        .js("return [...document.querySelectorAll('#split-preview li')].map((e) => [Number(e.dataset.households), e.dataset.warn === 'true']);")
        .await;
    let preview: Vec<(i64, bool)> = serde_json::from_value(preview).expect("parts");
    let households: i32 =
        sqlx::query_scalar("select households from grid where id = $1").bind(id).fetch_one(&pool).await.expect("hh");
    assert_eq!(preview.iter().map(|p| p.0).sum::<i64>(), i64::from(households), "every household in a part");
    for (n, warn) in &preview {
        assert_eq!(*warn, (*n as f64 - 300.0).abs() / 300.0 > 0.15, "part of {n} households");
    }
    if preview.iter().any(|p| p.1) {
        assert!(browser.js("return !!document.querySelector('#split-preview p.warn');").await == json!(true));
    }
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from grid").fetch_one(&pool).await.expect("count"),
        grids_before,
        "the preview stored nothing"
    );
    browser.screenshot(&screenshot_path("planner-split-preview.png")).await;
    c.find(Locator::Css("#split-form [name=reason]"))
        .await
        .expect("reason")
        .send_keys("新建道路分隔")
        .await
        .expect("type");
    c.find(Locator::Css("#split-form button[type=submit]")).await.expect("split").click().await.expect("click");
    browser.wait_for("window.__plannerSplit", WAIT, "the split").await;
    let stored = browser.js("return window.__plannerSplit.map((g) => g.households);").await;
    assert_eq!(
        stored,
        json!(preview.iter().map(|p| p.0).collect::<Vec<_>>()),
        "the split left what the preview showed"
    );
    let parts: Vec<(i64, String)> =
        sqlx::query_as("select id, code from grid where id = $1 or code like (select code from grid where id = $1) || '-S%' order by id")
            .bind(id)
            .fetch_all(&pool)
            .await
            .expect("parts");
    assert_eq!(parts.len(), 2, "two parts: {parts:?}");
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from grid").fetch_one(&pool).await.expect("count"),
        grids_before + 1
    );
    let message = c.find(Locator::Css("#editor-message")).await.expect("message").text().await.expect("text");
    assert!(message.contains("已拆分为 2 个网格") && message.contains(&parts[1].1), "{message}");
    browser.screenshot(&screenshot_path("planner-split.png")).await;

    // Merge the new part back: pick it on the map.
    let new_id = parts[1].0;
    let (nlon, nlat): (f64, f64) =
        sqlx::query_as("select ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) from grid where id = $1")
            .bind(new_id)
            .fetch_one(&pool)
            .await
            .expect("point");
    c.find(Locator::Css("#start-merge")).await.expect("merge").click().await.expect("click");
    let at = browser
        .js(&format!("const r = document.querySelector('#map').getBoundingClientRect(); const a = __map.project([{nlon}, {nlat}]); return [r.left + a.x, r.top + a.y];"))
        .await;
    click_at(&browser, at[0].as_f64().expect("x"), at[1].as_f64().expect("y")).await;
    browser.wait_for("document.querySelector('#merge-form [name=reason]')", WAIT, "the neighbour picked").await;
    c.find(Locator::Css("#merge-form [name=reason]"))
        .await
        .expect("reason")
        .send_keys("道路取消，恢复原网格")
        .await
        .expect("type");
    c.find(Locator::Css("#merge-form button[type=submit]")).await.expect("merge").click().await.expect("click");
    browser.wait_for("window.__plannerMerged", WAIT, "the merge").await;
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from grid").fetch_one(&pool).await.expect("count"),
        grids_before
    );
    let gone: i64 = sqlx::query_scalar("select count(*) from grid where id = $1")
        .bind(new_id)
        .fetch_one(&pool)
        .await
        .expect("gone");
    assert_eq!(gone, 0, "the merged part is gone");
    let reason: Option<String> =
        sqlx::query_scalar("select reason from grid_version where grid_id = $1 order by id desc limit 1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("reason");
    assert_eq!(reason.as_deref(), Some("道路取消，恢复原网格"));
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[tokio::test]
async fn planner_reverting_a_split_grid_is_offered_to_merge_the_split_off_part_back() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    let (id, version, minx, maxx, lat, area_before): (i64, i32, f64, f64, f64, f64) = sqlx::query_as(
        "select id, version, ST_XMin(geom), ST_XMax(geom), ST_Y(ST_Centroid(geom)), ST_Area(geom::geography) from grid
          order by ST_Distance(ST_Centroid(geom), (select ST_Centroid(ST_Collect(geom)) from grid)) limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("inner grid");
    let grids_before: i64 = sqlx::query_scalar("select count(*) from grid").fetch_one(&pool).await.expect("count");
    // Someone split the grid through the API.
    let planner = api_login(&server, "demo-planner").await;
    let reply = reqwest::Client::new()
        .post(server.url(&format!("/api/grids/{id}/split")))
        .bearer_auth(&planner)
        .header("If-Match", format!("\"{version}\""))
        .json(&json!({"line": {"type": "LineString", "coordinates": [[minx - 0.001, lat], [maxx + 0.001, lat]]}, "reason": "新建道路分隔"}))
        .send()
        .await
        .expect("split");
    let status = reply.status();
    let split: Value = reply.json().await.expect("json");
    assert_eq!(status, 200, "{split}");
    let part: i64 = sqlx::query_scalar("select max(id) from grid").fetch_one(&pool).await.expect("new part");
    let part_code: String =
        sqlx::query_scalar("select code from grid where id = $1").bind(part).fetch_one(&pool).await.expect("code");

    open(&browser, &server).await;
    planner_selects(&browser, &pool, id).await;
    let c = &browser.client;
    c.find(Locator::Css("#grid-history li[data-version=\"1\"] button"))
        .await
        .expect("revert")
        .click()
        .await
        .expect("click");
    // No bare overlap error: the page explains and offers to merge the split-off part back.
    browser.wait_for("document.querySelector('#revert-merge')", WAIT, "the merge-back offer").await;
    let offer = c.find(Locator::Css("#editor-message")).await.expect("message").text().await.expect("text");
    assert!(offer.contains(&part_code) && offer.contains("合并回来"), "{offer}");
    assert_eq!(
        browser.js("return document.querySelector('#editor-message').className;").await,
        json!("ok"),
        "an offer, not an error"
    );
    browser
        .wait_for("__map.queryRenderedFeatures({ layers: ['gm-overlap'] }).length > 0", WAIT, "the overlap drawn")
        .await;
    browser.screenshot(&screenshot_path("planner-revert-merge.png")).await;
    c.find(Locator::Css("#revert-merge")).await.expect("merge back").click().await.expect("click");
    browser.wait_for("window.__plannerMerged", WAIT, "the merge").await;
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from grid").fetch_one(&pool).await.expect("count"),
        grids_before
    );
    let (kept, area_after): (i64, f64) = sqlx::query_as(
        "select count(*) filter (where id = $1), coalesce(max(ST_Area(geom::geography)) filter (where id = $1), 0) from grid where id in ($1, $2)",
    )
    .bind(id)
    .bind(part)
    .fetch_one(&pool)
    .await
    .expect("grids");
    assert_eq!(kept, 1, "the grid keeps its id, the part is merged into it");
    assert!((area_after - area_before).abs() < 5.0, "the grid is whole again: {area_before} → {area_after} m²");
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// Log in through the rider view's own form.
async fn rider_log_in(browser: &Browser, name: &str) {
    let c = &browser.client;
    tab(browser, "report").await;
    let form = c.find(Locator::Css("#login-form")).await.expect("login form");
    form.find(Locator::Css("[name=name]")).await.expect("name").send_keys(name).await.expect("type");
    form.find(Locator::Css("[name=password]")).await.expect("password").send_keys(PASSWORD).await.expect("type");
    form.find(Locator::Css("button[type=submit]")).await.expect("submit").click().await.expect("click");
    browser.wait_for("!document.querySelector('#rider').hidden", WAIT, "the rider view after login").await;
    browser
        .wait_for(
            "document.querySelectorAll('#category option[value]:not([value=\"\"])').length > 0",
            WAIT,
            "categories",
        )
        .await;
}

/// Fill the report form as a rider does (category, text, the pin at the map's centre) and submit.
async fn fill_report(browser: &Browser, category: &str, text: &str) {
    let c = &browser.client;
    c.find(Locator::Css("#category")).await.expect("select").select_by_value(category).await.expect("choose");
    c.find(Locator::Css("#report-form textarea")).await.expect("description").send_keys(text).await.expect("type");
    // The rider scrolls the pin button up from under the sticky submit button, as a thumb would.
    browser.js("document.querySelector('#use-pin').scrollIntoView({ block: 'center' }); return true;").await;
    c.find(Locator::Css("#use-pin")).await.expect("pin").click().await.expect("click");
    c.find(Locator::Css("#report-form button[type=submit]")).await.expect("submit").click().await.expect("click");
}

#[tokio::test]
async fn rider_app_opens_offline_from_a_cold_start_and_its_outbox_sends_each_report_once() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let mut server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let c = &browser.client;

    // An installable app: Chromium finds the manifest, its icons and the service worker, and has
    // nothing against installing it; the worker takes control of the page.
    browser.wait_for("navigator.serviceWorker.controller !== null", WAIT, "the service worker to take control").await;
    let manifest = browser.cdp("Page.getAppManifest", json!({})).await;
    assert!(manifest["errors"].as_array().is_some_and(Vec::is_empty), "manifest errors: {manifest}");
    assert!(manifest["url"].as_str().is_some_and(|u| u.ends_with("/manifest.webmanifest")), "{manifest}");
    let installable = browser.cdp("Page.getInstallabilityErrors", json!({})).await;
    assert_eq!(installable["installabilityErrors"], json!([]), "installability: {installable}");

    // The rider logs in and works at their spot; one report goes out online and is delivered.
    rider_log_in(&browser, "rider-01").await;
    let category: String = sqlx::query_scalar("select code from report_category order by sort limit 1")
        .fetch_one(&pool)
        .await
        .expect("category");
    let (grid_id, lon, lat) = worker_grid(&pool).await;
    browser.js(&format!("__map.jumpTo({{ center: [{lon}, {lat}], zoom: 16 }}); return true;")).await;
    browser.wait_for("__map.loaded() && __map.areTilesLoaded()", WAIT, "the tiles of the rider's spot").await;
    fill_report(&browser, &category, "垃圾桶满溢（在线上报）").await;
    browser
        .wait_for(
            "document.querySelector('#report-result').dataset.state === 'sent'",
            WAIT,
            "the first report delivered",
        )
        .await;
    let first: i64 = sqlx::query_scalar("select id from report").fetch_one(&pool).await.expect("the first report");
    assert!(
        c.find(Locator::Css("#report-result"))
            .await
            .expect("result")
            .text()
            .await
            .expect("text")
            .contains(&format!("编号 {first}")),
        "the delivered report's number"
    );

    // A dead zone: the server is gone and the phone has no network. The app is reopened cold.
    let port = server.port();
    server.terminate();
    browser.set_offline(true).await;
    c.refresh().await.expect("reload offline");
    browser.wait_for("window.__appReady === true", WAIT, "the app to open offline").await;
    browser.wait_for("window.__mapIdle === true", WAIT, "the map to draw offline").await;
    assert_eq!(browser.js("return navigator.onLine;").await, false);
    // From the service worker's caches: the page, the stations, the categories, and the tiles the
    // rider saw (the map reopens where it was).
    assert_eq!(browser.js("return document.querySelectorAll('#station-list li[data-id]').length;").await, 48);
    let layers = browser
        .js("return [...new Set(__map.queryRenderedFeatures().map((f) => f.sourceLayer).filter(Boolean))].sort();")
        .await;
    assert!(layers.as_array().is_some_and(|l| l.contains(&json!("grids"))), "cached tiles drawn offline: {layers}");

    // The rider files a report: it waits in the outbox, and the page says so — not the earlier
    // report's "delivered" — and the banner counts it.
    tab(&browser, "report").await;
    browser.wait_for("!document.querySelector('#rider').hidden", WAIT, "still logged in").await;
    browser
        .wait_for(
            "document.querySelectorAll('#category option[value]:not([value=\"\"])').length > 0",
            WAIT,
            "cached categories",
        )
        .await;
    fill_report(&browser, &category, "井盖缺失（离线冷启动上报）").await;
    browser.wait_for("document.querySelectorAll('#outbox li[data-key]').length === 1", WAIT, "the queued report").await;
    let key = browser.js("return document.querySelector('#outbox li[data-key]').dataset.key;").await;
    let key = uuid::Uuid::parse_str(key.as_str().expect("key")).expect("a UUID");
    let result = c.find(Locator::Css("#report-result")).await.expect("result").text().await.expect("text");
    assert_eq!(result, "已保存，待发送", "the line under the form speaks of this report");
    let entry =
        c.find(Locator::Css("#outbox li[data-key] .entry-state")).await.expect("entry").text().await.expect("t");
    assert!(entry.starts_with("待发送"), "the entry's own state: {entry}");
    assert_eq!(browser.js("return document.querySelector('#outbox-banner').hidden;").await, false);
    assert_eq!(
        c.find(Locator::Css("#outbox-banner")).await.expect("banner").text().await.expect("t"),
        "1 条上报待发送"
    );
    let stored: i64 = sqlx::query_scalar("select count(*) from report").fetch_one(&pool).await.expect("count");
    assert_eq!(stored, 1, "nothing new reached the database while offline");
    browser.screenshot(&screenshot_path("rider-offline-phone.png")).await;

    // The network and the server come back (same origin): the outbox sends by itself, once.
    let _server = Server::start_at(&db, port, &[]).await;
    browser.set_offline(false).await;
    browser
        .wait_for("document.querySelectorAll('#outbox li[data-key]').length === 0", WAIT, "the outbox to empty")
        .await;
    browser.wait_for("document.querySelector('#report-result').dataset.state === 'sent'", WAIT, "delivered").await;
    let rows: Vec<(i64, Option<i64>)> = sqlx::query_as("select id, grid_id from report where idempotency_key = $1")
        .bind(key)
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "stored exactly once: {rows:?}");
    assert_eq!(rows[0].1, Some(grid_id), "in the grid under the pin");
    assert_eq!(sqlx::query_scalar::<_, i64>("select count(*) from report").fetch_one(&pool).await.expect("count"), 2);
    let result = c.find(Locator::Css("#report-result")).await.expect("result").text().await.expect("text");
    assert!(result.contains(&format!("编号 {}", rows[0].0)), "now delivered: {result}");
    assert_eq!(browser.js("return document.querySelector('#outbox-banner').hidden;").await, true);
    browser.screenshot(&screenshot_path("rider-delivered-phone.png")).await;
    browser.close().await;
}

#[tokio::test]
async fn grid_worker_card_offers_only_the_servers_allowed_steps_and_says_in_chinese_why_one_waits() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    let (grid_id, lon, lat) = worker_grid(&pool).await;
    let category: String = sqlx::query_scalar("select code from report_category order by sort limit 1")
        .fetch_one(&pool)
        .await
        .expect("category");
    let rider = api_login(&server, "rider-01").await;
    let admin = api_login(&server, "demo-admin").await;
    let worker = api_login(&server, "gw-0001").await;
    let id = file_report(&server, &rider, &category, lon, lat, "路面塌陷").await;
    for (version, to) in [(1, "accepted"), (2, "dispatched"), (3, "handling")] {
        assert_eq!(transition(&server, &admin, id, version, to).await, 200, "{to}");
    }
    let seen: Value = reqwest::Client::new()
        .get(server.url(&format!("/api/reports/{id}")))
        .bearer_auth(&worker)
        .send()
        .await
        .expect("report")
        .json()
        .await
        .expect("json");

    open(&browser, &server).await;
    let c = &browser.client;
    tab(&browser, "worker").await;
    log_in(&browser, "#view-worker", "gw-0001").await;
    let item = format!("#worker-list li[data-id=\"{id}\"]");
    browser.wait_for(&format!("document.querySelector('{item}')"), WAIT, "the report in the list").await;
    c.find(Locator::Css(&item)).await.expect("li").click().await.expect("click");
    browser.wait_for("document.querySelector('#report-card [data-to]')", WAIT, "the card's actions").await;
    let offered =
        browser.js("return [...document.querySelectorAll('#report-card [data-to]')].map((b) => b.dataset.to);").await;
    assert_eq!(offered, seen["allowed_next"], "exactly the server's allowed_next");

    // The report moves out of the worker's grid behind the card (a boundary edit): the server
    // refuses with a reason code, which the page says in Chinese — not the server's English.
    let (other,): (i64,) = sqlx::query_as("select id from grid where id <> $1 order by id desc limit 1")
        .bind(grid_id)
        .fetch_one(&pool)
        .await
        .expect("grid");
    sqlx::query("update report set grid_id = $2 where id = $1")
        .bind(id)
        .bind(other)
        .execute(&pool)
        .await
        .expect("move");
    c.find(Locator::Css("#report-card [data-to=feedback]")).await.expect("feedback").click().await.expect("click");
    browser.wait_for("document.querySelector('#report-message.error')", WAIT, "the refusal").await;
    let refusal = c.find(Locator::Css("#report-message")).await.expect("message").text().await.expect("text");
    assert_eq!(refusal, "操作未成功：该事件不属于您负责的网格");
    sqlx::query("update report set grid_id = $2 where id = $1")
        .bind(id)
        .bind(grid_id)
        .execute(&pool)
        .await
        .expect("back");

    // Feedback given: the same worker may not verify it (four eyes) — no 核查通过, and the card
    // says whom it waits for. (The list is below the card on a phone: scroll to it, as a thumb would.)
    browser.js(&format!("document.querySelector('{item}').scrollIntoView({{block: 'center'}});")).await;
    c.find(Locator::Css(&item)).await.expect("li").click().await.expect("click");
    browser.wait_for("!document.querySelector('#report-message')", WAIT, "the card reloaded").await;
    c.find(Locator::Css("#report-card [data-to=feedback]")).await.expect("feedback").click().await.expect("click");
    browser.wait_for("document.querySelector('#report-waiting')", WAIT, "the waiting step").await;
    assert_eq!(browser.js("return document.querySelectorAll('#report-card [data-to]').length;").await, 0);
    let waiting = c.find(Locator::Css("#report-waiting")).await.expect("waiting").text().await.expect("text");
    assert_eq!(waiting, "等待他人核查（反馈人不能核查自己的反馈）");
    let status: String =
        sqlx::query_scalar("select status from report where id = $1").bind(id).fetch_one(&pool).await.expect("status");
    assert_eq!(status, "feedback");
    let card = c.find(Locator::Css("#report-card")).await.expect("card").text().await.expect("text");
    // Account names are data (the reporter, the history's actors), not UI text.
    let latin = english_words(&card);
    assert!(latin.is_empty(), "no English inside the Chinese card: {latin:?} in {card}");
    browser.screenshot(&screenshot_path("worker-waiting-phone.png")).await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// The card's text without account names (data, not UI text): the Latin words left are English
/// leaking into the Chinese page.
fn english_words(card: &str) -> Vec<String> {
    let ui = card.replace("rider-01", "").replace("demo-admin", "").replace("gw-0001", "");
    ui.split(|ch: char| !ch.is_ascii_alphabetic()).filter(|w| w.len() >= 3).map(str::to_string).collect()
}

#[tokio::test]
async fn grid_worker_is_told_in_chinese_that_nobody_accepts_a_report_they_filed_themselves() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    let (_, lon, lat) = worker_grid(&pool).await;
    let category: String = sqlx::query_scalar("select code from report_category order by sort limit 1")
        .fetch_one(&pool)
        .await
        .expect("category");
    let worker = api_login(&server, "gw-0001").await;
    let rider = api_login(&server, "rider-01").await;
    let own = file_report(&server, &worker, &category, lon, lat, "井盖缺失").await;
    let other = file_report(&server, &rider, &category, lon + 0.0001, lat, "路灯不亮").await;

    open(&browser, &server).await;
    let c = &browser.client;
    tab(&browser, "worker").await;
    log_in(&browser, "#view-worker", "gw-0001").await;

    // Their own report: 注销 is theirs to do, 受理 is a colleague's — and the card says so.
    let item = format!("#worker-list li[data-id=\"{own}\"]");
    browser.wait_for(&format!("document.querySelector('{item}')"), WAIT, "the own report in the list").await;
    c.find(Locator::Css(&item)).await.expect("li").click().await.expect("click");
    browser.wait_for("document.querySelector('#report-waiting')", WAIT, "the waiting line").await;
    let offered =
        browser.js("return [...document.querySelectorAll('#report-card [data-to]')].map((b) => b.dataset.to);").await;
    assert_eq!(offered, json!(["cancelled"]), "no 受理 of one's own report");
    let waiting = c.find(Locator::Css("#report-waiting")).await.expect("waiting").text().await.expect("text");
    assert_eq!(waiting, "等待他人处理（不能受理、核查或结案自己上报的事件）");
    let card = c.find(Locator::Css("#report-card")).await.expect("card").text().await.expect("text");
    assert!(english_words(&card).is_empty(), "no English inside the Chinese card: {card}");
    browser.screenshot(&screenshot_path("worker-own-report-phone.png")).await;

    // A card opened before the report turned out to be theirs (the account that filed it is
    // linked behind the card): the server refuses with `own_report`, said in Chinese.
    let item = format!("#worker-list li[data-id=\"{other}\"]");
    c.find(Locator::Css(&item)).await.expect("li").click().await.expect("click");
    browser.wait_for("document.querySelector('#report-card [data-to=accepted]')", WAIT, "受理 offered").await;
    sqlx::query("update report set reporter_id = (select id from account where name = 'gw-0001') where id = $1")
        .bind(other)
        .execute(&pool)
        .await
        .expect("relink");
    c.find(Locator::Css("#report-card [data-to=accepted]")).await.expect("accept").click().await.expect("click");
    browser.wait_for("document.querySelector('#report-message.error')", WAIT, "the refusal").await;
    let refusal = c.find(Locator::Css("#report-message")).await.expect("message").text().await.expect("text");
    assert_eq!(refusal, "操作未成功：不能受理、核查或结案自己上报的事件，请由他人处理");
    let card = c.find(Locator::Css("#report-card")).await.expect("card").text().await.expect("text");
    assert!(english_words(&card).is_empty(), "no English inside the Chinese card: {card}");
    let status: String = sqlx::query_scalar("select status from report where id = $1")
        .bind(other)
        .fetch_one(&pool)
        .await
        .expect("status");
    assert_eq!(status, "submitted", "nothing stored");
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// A report with one photo, filed through the API as multipart (as the rider's page sends it).
async fn file_report_with_photo(server: &Server, token: &str, category: &str, lon: f64, lat: f64, photo: &[u8]) -> i64 {
    let boundary = "browser-test-boundary";
    let report = json!({"category": category, "description": "护栏倒伏", "location": {"lon": lon, "lat": lat, "crs": "wgs84", "accuracy_m": 6.0}});
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"report\"\r\nContent-Type: application/json\r\n\r\n{report}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"before.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(photo);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let reply = reqwest::Client::new()
        .post(server.url("/api/reports"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("report");
    let status = reply.status();
    let body: Value = reply.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["photo_count"], 1);
    body["id"].as_i64().expect("id")
}

#[tokio::test]
async fn grid_worker_sees_the_riders_photo_full_screen_and_attaches_an_after_photo_to_feedback() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    let (_, lon, lat) = worker_grid(&pool).await;
    let category: String = sqlx::query_scalar("select code from report_category order by sort limit 1")
        .fetch_one(&pool)
        .await
        .expect("category");
    // Real images: the app's own icons (drawn at build time).
    let icons = web_map_dir().join("dist/icons");
    let before = std::fs::read(icons.join("icon-192.png")).expect("icon");
    let rider = api_login(&server, "rider-01").await;
    let admin = api_login(&server, "demo-admin").await;
    let id = file_report_with_photo(&server, &rider, &category, lon, lat, &before).await;
    for (version, to) in [(1, "accepted"), (2, "dispatched"), (3, "handling")] {
        assert_eq!(transition(&server, &admin, id, version, to).await, 200, "{to}");
    }

    open(&browser, &server).await;
    let c = &browser.client;
    tab(&browser, "worker").await;
    log_in(&browser, "#view-worker", "gw-0001").await;
    let item = format!("#worker-list li[data-id=\"{id}\"]");
    browser.wait_for(&format!("document.querySelector('{item}')"), WAIT, "the report in the list").await;
    c.find(Locator::Css(&item)).await.expect("li").click().await.expect("click");
    // The thumbnail: fetched with the token (photos are never public), shown from a blob: URL.
    let thumb = "#report-card .thumbs[data-kind=photos_before] img.thumb";
    browser
        .wait_for(&format!("document.querySelector('{thumb}')?.naturalWidth > 0"), WAIT, "the photo's thumbnail")
        .await;
    let src = browser.js(&format!("return document.querySelector('{thumb}').src;")).await;
    assert!(src.as_str().is_some_and(|s| s.starts_with("blob:")), "{src}");
    c.find(Locator::Css("#report-card .thumb-button")).await.expect("thumb").click().await.expect("click");
    browser
        .wait_for("document.querySelector('#photo-viewer img')?.naturalWidth > 0", WAIT, "the full-screen view")
        .await;
    let covers = browser
        .js("const r = document.querySelector('#photo-viewer').getBoundingClientRect(); return r.width >= innerWidth && r.height >= innerHeight;")
        .await;
    assert_eq!(covers, json!(true), "the viewer covers the screen");
    browser.screenshot(&screenshot_path("worker-photo-full-phone.png")).await;
    c.find(Locator::Css("#photo-viewer .close")).await.expect("close").click().await.expect("click");
    browser.wait_for("!document.querySelector('#photo-viewer')", WAIT, "the viewer closed").await;

    // Feedback with an "after" photo chosen in the file picker.
    let after = icons.join("icon-512.png").canonicalize().expect("the icon");
    let input = c.find(Locator::Css("#report-card input[name=after_photo]")).await.expect("the after-photo picker");
    input.send_keys(after.to_str().expect("path")).await.expect("choose the file");
    c.find(Locator::Css("#report-card textarea[name=note]"))
        .await
        .expect("note")
        .send_keys("护栏已扶正")
        .await
        .expect("type");
    c.find(Locator::Css("#report-card [data-to=feedback]")).await.expect("feedback").click().await.expect("click");
    let after_thumb = "#report-card .thumbs[data-kind=photos_after] img.thumb";
    browser
        .wait_for(
            &format!("document.querySelector('{after_thumb}')?.naturalWidth > 0"),
            WAIT,
            "the after photo on the card",
        )
        .await;
    let (status, photos): (String, i64) = sqlx::query_as(
        "select r.status, (select count(*) from report_photo p join report_event e on e.id = p.event_id
                            where p.report_id = r.id and e.to_status = 'feedback')
           from report r where r.id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("report");
    assert_eq!((status.as_str(), photos), ("feedback", 1), "the step and its photo stored together");
    let width = browser.js(&format!("return document.querySelector('{after_thumb}').naturalWidth;")).await;
    assert_eq!(width, json!(512), "a 512 px image is stored at its size (the phone shrinks only above 1600 px)");
    browser.screenshot(&screenshot_path("worker-after-photo-phone.png")).await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[tokio::test]
async fn grid_worker_sees_a_new_report_and_its_next_step_arrive_live_and_catches_up_after_a_dead_zone() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    let (_, lon, lat) = worker_grid(&pool).await;
    let category: String = sqlx::query_scalar("select code from report_category order by sort limit 1")
        .fetch_one(&pool)
        .await
        .expect("category");
    let rider = api_login(&server, "rider-01").await;
    let admin = api_login(&server, "demo-admin").await;

    open(&browser, &server).await;
    let c = &browser.client;
    tab(&browser, "worker").await;
    log_in(&browser, "#view-worker", "gw-0001").await;
    browser.wait_for("document.querySelector('#worker-live.on')", WAIT, "the live feed connected").await;
    let loads = browser.js("return window.__workerLoaded;").await;

    // A rider files a report in the worker's grid: it appears on the open page, marked new,
    // without the list being read again.
    let id = file_report(&server, &rider, &category, lon, lat, "窨井冒水").await;
    let item = format!("#worker-list li[data-id=\"{id}\"]");
    browser.wait_for(&format!("document.querySelector('{item}.live-new')"), WAIT, "the new report on the page").await;
    assert_eq!(browser.js("return window.__workerLoaded;").await, loads, "no reload: it came through the feed");
    let text = c.find(Locator::Css(&item)).await.expect("li").text().await.expect("text");
    assert!(text.contains("窨井冒水"), "{text}");
    browser.screenshot(&screenshot_path("worker-live-phone.png")).await;

    // Someone else takes the next step: the item follows (受理 → 已立案) and the open card says so.
    c.find(Locator::Css(&item)).await.expect("li").click().await.expect("click");
    browser.wait_for("document.querySelector('#report-card [data-to]')", WAIT, "the card").await;
    assert_eq!(transition(&server, &admin, id, 1, "accepted").await, 200);
    browser
        .wait_for(&format!("document.querySelector('{item}[data-status=accepted]')"), WAIT, "the moved report")
        .await;
    browser.wait_for("document.querySelector('#report-message.ok')", WAIT, "the card's notice").await;
    let notice = c.find(Locator::Css("#report-message")).await.expect("notice").text().await.expect("text");
    assert!(notice.starts_with("该事件刚被更新"), "{notice}");
    let last = browser.js("return window.__workerFeed.lastEventId;").await;
    assert!(last.as_str().is_some_and(|s| !s.is_empty()), "the feed keeps the last event id to resume from: {last}");

    // A dead zone: the page loses the network, a report is filed meanwhile; when the network
    // comes back the feed connects again (sending Last-Event-ID) and the report is on the page.
    browser.set_offline(true).await;
    browser.wait_for("document.querySelector('#worker-live.off')", WAIT, "the feed noticed the dead zone").await;
    let missed = file_report(&server, &rider, &category, lon, lat, "路灯倒伏").await;
    browser.set_offline(false).await;
    browser.wait_for("window.__workerFeed.connects >= 2", WAIT, "the feed reconnected").await;
    browser
        .wait_for(
            &format!("document.querySelector('#worker-list li[data-id=\"{missed}\"]')"),
            WAIT,
            "the missed report",
        )
        .await;
    browser.wait_for("document.querySelector('#worker-live.on')", WAIT, "live again").await;
    let after = file_report(&server, &rider, &category, lon, lat, "井盖松动").await;
    browser
        .wait_for(
            &format!("document.querySelector('#worker-list li[data-id=\"{after}\"].live-new')"),
            WAIT,
            "live after the gap",
        )
        .await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// Whether every `[lon, lat]` in the JS array expression `points` is inside the map's view.
async fn in_view(browser: &Browser, points: &str) -> bool {
    browser.wait_for("!__map.isMoving()", WAIT, "the map to settle").await;
    browser.js(&format!("const b = __map.getBounds(); return ({points}).every((p) => b.contains(p));")).await
        == json!(true)
}

#[tokio::test]
async fn resident_on_a_phone_filters_open_stations_with_a_microwave_locates_themself_and_sees_their_grid_on_a_plain_map()
 {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    let (grid_id, lon, lat) = worker_grid(&pool).await;
    let grid_code: String =
        sqlx::query_scalar("select code from grid where id = $1").bind(grid_id).fetch_one(&pool).await.expect("code");
    let stations: Value = reqwest::get(server.url("/api/stations")).await.expect("api").json().await.expect("json");
    let microwave: Vec<i64> = stations["stations"]
        .as_array()
        .expect("stations")
        .iter()
        .filter(|s| s["services"].as_array().is_some_and(|v| v.iter().any(|c| c == "microwave")))
        .map(|s| s["id"].as_i64().expect("id"))
        .collect();
    assert!(!microwave.is_empty() && microwave.len() < 48, "the demo has stations with and without a microwave");
    open(&browser, &server).await;
    let c = &browser.client;

    // The resident map: no choropleth, report dots or legend; stations big enough to tap.
    let hidden =
        browser.js("return ['grids-fill', 'reports'].map((id) => __map.getLayoutProperty(id, 'visibility'));").await;
    assert_eq!(hidden, json!(["none", "none"]));
    assert_eq!(browser.js("return document.querySelector('#legend').hidden;").await, json!(true));
    let target = browser.js("return __map.getPaintProperty('gm-stations-hit', 'circle-radius') * 2;").await;
    assert!(target.as_f64().unwrap_or(0.0) >= 44.0, "station tap target {target} px");
    let labels = browser.js("return JSON.stringify(__map.getLayoutProperty('grid-labels', 'text-field'));").await;
    assert!(!labels.as_str().unwrap_or("").contains('户'), "no household counts on the resident map: {labels}");

    // 微波炉 chip: only stations with a microwave, in the list and on the map; 营业中 keeps the open ones.
    c.find(Locator::Css("#station-filters [data-filter=microwave]")).await.expect("chip").click().await.expect("click");
    let listed = browser.js("return [...document.querySelectorAll('#station-list li[data-id]')].map((e) => Number(e.dataset.id)).sort((a, b) => a - b);").await;
    let mut want = microwave.clone();
    want.sort_unstable();
    assert_eq!(listed, json!(want), "exactly the stations with a microwave");
    let on_map = browser.js("return __map.getSource('gm-stations').serialize().data.features.length;").await;
    assert_eq!(on_map, json!(microwave.len()), "the map shows the same stations");
    c.find(Locator::Css("#station-filters [data-filter=open]")).await.expect("chip").click().await.expect("click");
    let badges = browser
        .js("return [...document.querySelectorAll('#station-list li[data-id] .badge')].map((b) => b.dataset.open);")
        .await;
    assert!(badges.as_array().expect("badges").iter().all(|b| b == "true"), "only open stations: {badges}");
    let pressed = browser
        .js("return document.querySelector('#station-filters [data-filter=open]').getAttribute('aria-pressed');")
        .await;
    assert_eq!(pressed, json!("true"));
    c.find(Locator::Css("#station-filters [data-filter=open]")).await.expect("chip").click().await.expect("click");
    browser.screenshot(&screenshot_path("resident-filters-phone.png")).await;

    // A station's card is a bottom sheet; the list stays behind it, where it was.
    c.find(Locator::Css("#station-list li[data-id]")).await.expect("li").click().await.expect("click");
    browser.wait_for("!document.querySelector('#station-card').hidden", WAIT, "the card").await;
    let sheet = browser
        .js("const r = document.querySelector('#station-card').getBoundingClientRect(); return [getComputedStyle(document.querySelector('#station-card')).position, Math.round(r.bottom) === innerHeight, r.height < innerHeight];")
        .await;
    assert_eq!(sheet, json!(["fixed", true, true]), "a bottom sheet");
    let behind = browser
        .js("return [...document.querySelectorAll('#station-list li[data-id]')].filter((e) => e.offsetParent).length;")
        .await;
    assert_eq!(behind, json!(microwave.len()), "the list is still there behind the sheet");
    browser.screenshot(&screenshot_path("resident-sheet-phone.png")).await;
    c.find(Locator::Css("#station-card button.link")).await.expect("back").click().await.expect("click");

    // The locate button on the map: the nearest stations, and the map shows me and them.
    browser.cdp("Browser.grantPermissions", json!({"permissions": ["geolocation"], "origin": server.url("")})).await;
    browser.cdp("Emulation.setGeolocationOverride", json!({"latitude": lat, "longitude": lon, "accuracy": 10})).await;
    c.find(Locator::Css(".locate-button")).await.expect("locate").click().await.expect("click");
    browser.wait_for("document.querySelectorAll('#nearest-list li').length === 5", WAIT, "the nearest stations").await;
    let me = format!("[[{lon}, {lat}], ...__app.state.nearest.stations.map((s) => [s.lon, s.lat])]");
    assert!(in_view(&browser, &me).await, "me and the five stations in view");
    browser.screenshot(&screenshot_path("resident-nearest-phone.png")).await;

    // Which grid: located, the grid is highlighted and in view with whom to call.
    tab(&browser, "grid").await;
    c.find(Locator::Css(".locate-button")).await.expect("locate").click().await.expect("click");
    browser.wait_for("document.querySelector('#grid-card .grid-code')", WAIT, "the grid card").await;
    let code = c.find(Locator::Css("#grid-card .grid-code")).await.expect("code").text().await.expect("text");
    assert_eq!(code, grid_code);
    let ring = "__app.state.grid.card.geometry.coordinates.flat(2)";
    assert!(in_view(&browser, &format!("[[{lon}, {lat}], ...{ring}]")).await, "the whole grid in view");
    let highlighted = browser.js("return __map.queryRenderedFeatures({ layers: ['gm-grid-fill'] }).length > 0 && __map.getPaintProperty('gm-grid-fill', 'fill-opacity') >= 0.2;").await;
    assert_eq!(highlighted, json!(true));
    let card = c.find(Locator::Css("#grid-card")).await.expect("card").text().await.expect("text");
    assert!(card.contains("党群服务中心"), "whom to contact: {card}");
    browser.screenshot(&screenshot_path("resident-grid-phone.png")).await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[tokio::test]
async fn grid_worker_sees_two_reports_at_one_spot_as_a_cluster_in_the_legends_colours_and_cancels_one_as_a_duplicate() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    let (_, lon, lat) = worker_grid(&pool).await;
    let category: String = sqlx::query_scalar("select code from report_category order by sort limit 1")
        .fetch_one(&pool)
        .await
        .expect("category");
    let rider = api_login(&server, "rider-01").await;
    let first = file_report(&server, &rider, &category, lon, lat, "同一处：路面坑洼").await;
    let second = file_report(&server, &rider, &category, lon, lat, "同一处：路面坑洼（再报）").await;

    open(&browser, &server).await;
    let c = &browser.client;
    tab(&browser, "worker").await;
    log_in(&browser, "#view-worker", "gw-0001").await;
    browser.wait_for("document.querySelector('.report-cluster[data-count=\"2\"]')", WAIT, "the cluster's count").await;
    let ids = browser.js("return document.querySelector('.report-cluster').dataset.ids;").await;
    let mut got: Vec<i64> = ids.as_str().expect("ids").split(',').map(|x| x.parse().expect("id")).collect();
    got.sort_unstable();
    assert_eq!(got, vec![first, second]);
    // The dots use the colours the legend shows (read from the same style layer).
    let same = browser
        .js("return JSON.stringify(__map.getPaintProperty('gm-work', 'circle-color')) === JSON.stringify(__map.getPaintProperty('reports', 'circle-color'));")
        .await;
    assert_eq!(same, json!(true), "worker dots coloured like the legend");
    assert_eq!(browser.js("return document.querySelectorAll('#legend-reports .legend-stop').length;").await, json!(3));
    browser.screenshot(&screenshot_path("worker-cluster-phone.png")).await;

    // A tap on the cluster opens one; the card names the other at the same spot.
    c.find(Locator::Css(".report-cluster")).await.expect("cluster").click().await.expect("click");
    browser.wait_for("document.querySelector('#report-card .same-spot')", WAIT, "the same-spot line").await;
    let shown =
        browser.js("return Number(document.querySelector('#report-card h2').textContent.match(/#(\\d+)/)[1]);").await;
    let other = if shown == json!(first) { second } else { first };
    let shown = shown.as_i64().expect("id");
    let link =
        browser.js("return Number(document.querySelector('#report-card .same-spot [data-id]').dataset.id);").await;
    assert_eq!(link, json!(other));

    // 注销: the reason appears only once chosen; 重复上报 asks for the original.
    assert_eq!(browser.js("return document.querySelector('#report-card .cancel-reason').hidden;").await, json!(true));
    assert_eq!(browser.js("return document.querySelector('#report-card .duplicate-of').hidden;").await, json!(true));
    c.find(Locator::Css("#report-card [data-to=cancelled]")).await.expect("cancel").click().await.expect("click");
    assert_eq!(browser.js("return document.querySelector('#report-card .cancel-reason').hidden;").await, json!(false));
    let confirm =
        c.find(Locator::Css("#report-card [data-to=cancelled]")).await.expect("cancel").text().await.expect("text");
    assert_eq!(confirm, "确认注销");
    browser
        .js("const s = document.querySelector('#report-card [name=reason]'); s.value = 'duplicate'; s.dispatchEvent(new Event('change'));")
        .await;
    assert_eq!(browser.js("return document.querySelector('#report-card .duplicate-of').hidden;").await, json!(false));
    c.find(Locator::Css("#report-card [name=duplicate_of]"))
        .await
        .expect("dup")
        .send_keys(&other.to_string())
        .await
        .expect("type");
    c.find(Locator::Css("#report-card [data-to=cancelled]")).await.expect("confirm").click().await.expect("click");
    browser.wait_for("document.querySelector('#report-message.ok')", WAIT, "cancelled").await;
    let (status, reason, dup): (String, Option<String>, Option<i64>) =
        sqlx::query_as("select status, cancel_reason, duplicate_of from report where id = $1")
            .bind(shown)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!((status.as_str(), reason.as_deref(), dup), ("cancelled", Some("duplicate"), Some(other)));
    browser.wait_for("!document.querySelector('.report-cluster')", WAIT, "no cluster left").await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// Every tab of the bar is wholly inside the phone's width, its text neither cut off nor wrapped,
/// and at least 44 px tall to tap. A worker's or planner's bar holds more tabs than one row of a
/// phone takes: they wrap to a second row instead of scrolling out of sight.
async fn assert_tabs_fit_on_one_line_each(browser: &Browser) {
    let tabs = browser
        .js(r"return [...document.querySelectorAll('#tabs button')].filter((b) => !b.hidden).map((b) => {
                const r = b.getBoundingClientRect();
                return { text: b.textContent, inside: r.left >= -0.5 && r.right <= innerWidth + 0.5,
                         fits: b.scrollWidth <= b.clientWidth + 1, oneLine: r.height < 60, tall: r.height >= 43.5 };
              });")
        .await;
    for tab in tabs.as_array().expect("tabs") {
        assert_eq!(
            (tab["inside"].clone(), tab["fits"].clone(), tab["oneLine"].clone(), tab["tall"].clone()),
            (json!(true), json!(true), json!(true), json!(true)),
            "{tab}"
        );
    }
    let bar = browser.js("const t = document.querySelector('#tabs'); return t.scrollWidth <= t.clientWidth + 1;").await;
    assert_eq!(bar, true, "no tab is out of sight sideways");
}

#[tokio::test]
async fn english_view_on_a_phone_fits_its_tabs_each_on_one_line_and_its_map_labels_say_households_not_hu() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let c = &browser.client;
    c.find(Locator::Css("#lang")).await.expect("lang").click().await.expect("click");
    assert_eq!(browser.js("return document.documentElement.lang;").await, "en");
    assert_tabs_fit_on_one_line_each(&browser).await;
    // Map labels: the planners' map shows households in English; nowhere a 户.
    tab(&browser, "plan").await;
    let label = browser.js("return JSON.stringify(__map.getLayoutProperty('grid-labels', 'text-field'));").await;
    let label = label.as_str().expect("text-field");
    assert!(label.contains(" households") && !label.contains('户'), "{label}");
    browser.screenshot(&screenshot_path("english-phone.png")).await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[tokio::test]
async fn resident_finds_a_station_nearby_with_todays_hours_walking_time_and_navigation_in_each_apps_datum() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let c = &browser.client;

    // 附近: a tap on the map near the stations gives the nearest ones; the first opens its card.
    tab(&browser, "nearest").await;
    let centre = browser
        .js("const s = __app.state.stations[0]; __map.jumpTo({ center: [s.lon, s.lat], zoom: 15 });
             const r = document.querySelector('#map').getBoundingClientRect(); return [r.left + r.width / 2 + 30, r.top + r.height / 2 + 30];")
        .await;
    browser.wait_for("__map.loaded()", WAIT, "the map at the stations").await;
    click_at(&browser, centre[0].as_f64().expect("x"), centre[1].as_f64().expect("y")).await;
    browser
        .wait_for("document.querySelectorAll('#nearest-list li[data-id]').length === 5", WAIT, "the nearest five")
        .await;
    c.find(Locator::Css("#nearest-list li[data-id]")).await.expect("first").click().await.expect("tap");
    browser.wait_for("!document.querySelector('#station-card').hidden", WAIT, "the station card").await;

    let card = browser
        .js("const s = __app.state.stations.find((x) => x.id === __app.state.selected);
             const link = (app) => document.querySelector(`#station-card a.nav[data-app=${app}]`).href;
             return { lon: s.lon, lat: s.lat, hours: document.querySelector('#station-card .hours').firstChild.textContent,
                      walk: document.querySelector('#station-card .walk')?.textContent,
                      amap: link('amap'), baidu: link('baidu'), apple: link('apple') };")
        .await;
    let hours = card["hours"].as_str().expect("hours");
    assert!(hours.starts_with("今天") || hours == "全天 24 小时", "today's hours in Chinese: {hours}");
    let walk = card["walk"].as_str().unwrap_or_default();
    assert!(walk.starts_with("步行约 ") && walk.contains("分钟"), "walking time: {card}");

    // Amap gets GCJ-02 — about half a kilometre from the WGS84 point here — Baidu BD-09, Apple WGS84.
    let (lon, lat) = (card["lon"].as_f64().expect("lon"), card["lat"].as_f64().expect("lat"));
    let amap = card["amap"].as_str().expect("amap");
    let to: Vec<f64> = amap
        .split("to=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .map(|t| t.split(',').take(2).filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    assert_eq!(to.len(), 2, "{amap}");
    let metres = ((to[0] - lon) * 111_320.0 * lat.to_radians().cos()).hypot((to[1] - lat) * 111_320.0);
    assert!((400.0..700.0).contains(&metres), "GCJ-02 shift {metres} m: {amap}");
    assert!(amap.starts_with("https://uri.amap.com/navigation?"), "{amap}");
    let baidu = card["baidu"].as_str().expect("baidu");
    assert!(
        baidu.contains("coord_type=bd09ll") && !baidu.contains(&format!("{:.6}", to[1])),
        "BD-09, not GCJ-02: {baidu}"
    );
    let apple = card["apple"].as_str().expect("apple");
    assert!(apple.contains(&format!("daddr={lat:.6},{lon:.6}")), "Apple takes WGS84: {apple}");
    browser.screenshot(&screenshot_path("station-finder-phone.png")).await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// The Content-Security-Policy (`server/src/http/security_headers.rs`) is on the page, the page
/// and Swagger UI load under it with no violation, and the page's error hook does see one: an
/// `eval` and an image from another origin are blocked and recorded — so every browser test's
/// `assert_no_page_errors` also proves the policy holds for what that test did.
#[tokio::test]
async fn every_web_view_loads_under_the_content_security_policy_and_a_violation_would_be_caught() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db("browser-demo-pass").await;
    let server = Server::start(&db, &[]).await;
    let page = reqwest::get(server.url("/")).await.expect("GET /");
    let policy = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"), "policy: {policy:?}");
    assert!(policy.contains("'sha256-"), "the import map is allowed by its hash: {policy}");
    assert_eq!(
        page.headers().get("x-content-type-options").map(reqwest::header::HeaderValue::as_bytes),
        Some(&b"nosniff"[..])
    );

    open(&browser, &server).await;
    // Each view, logged in where it needs a login: what they load is under the policy too.
    tab(&browser, "nearest").await;
    tab(&browser, "grid").await;
    tab(&browser, "worker").await;
    log_in(&browser, "#view-worker", "gw-0001").await;
    browser.wait_for("document.querySelector('#worker-summary').textContent.includes('待办')", WAIT, "the queue").await;
    browser.js("document.querySelector('#worker-logout').click(); return true;").await;
    rider_log_in(&browser, "rider-01").await;
    tab(&browser, "plan").await;
    browser.wait_for("window.__mapIdle === true", WAIT, "the map to finish drawing").await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);

    // A violation is caught: an injected inline script does not run, a foreign image is not
    // loaded, and both are recorded. (Not `eval`: WebDriver's scripts run outside the page's
    // policy, so an eval there proves nothing; a script element is the page's own.)
    browser
        .js(r"const s = document.createElement('script'); s.textContent = 'window.__injectedRan = true;';
              document.body.append(s);
              const img = new Image(); img.src = 'http://198.51.100.7/pixel.png'; document.body.append(img);
              return true;")
        .await;
    let errors = browser
        .wait_for(
            "window.__errors.filter((e) => e.kind === 'csp').length >= 2 && window.__errors",
            WAIT,
            "the violations",
        )
        .await;
    let text = errors.to_string();
    assert!(text.contains("script-src") && text.contains("img-src") && text.contains("198.51.100.7"), "{errors:#}");
    assert_eq!(browser.js("return window.__injectedRan === undefined;").await, true, "the inline script was blocked");

    // Swagger UI (vendored, /api/docs) renders under the same policy: violations recorded from
    // the first script on.
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": "window.__csp = []; document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.effectiveDirective + ' ' + e.blockedURI));" }),
        )
        .await;
    browser.client.goto(&server.url("/api/docs/")).await.expect("open Swagger UI");
    browser
        .wait_for("document.querySelectorAll('.opblock').length > 10", WAIT, "Swagger UI to list the operations")
        .await;
    assert_eq!(browser.js("return window.__csp;").await, json!([]), "Swagger UI under the policy");
    browser.close().await;
}

/// Issue 23 §2: a grid worker on a phone records a door-knocking visit while offline; it waits in
/// the outbox (nothing reaches the server) and is sent exactly once when the network returns.
#[tokio::test]
async fn grid_worker_records_a_door_knocking_visit_offline_on_a_phone_and_it_is_sent_once_back_online() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let c = &browser.client;
    tab(&browser, "worker").await;
    log_in(&browser, "#view-worker", "gw-0001").await;
    // The seed's running round covers gw-0001's community: its grid's buildings not yet done.
    browser
        .wait_for("document.querySelectorAll('#round-buildings li[data-id]').length > 0", WAIT, "the round's buildings")
        .await;
    assert!(c.find(Locator::Css("#round-progress progress")).await.is_ok(), "a progress bar");
    let before: i64 = sqlx::query_scalar("select count(*) from door_visit").fetch_one(&pool).await.expect("count");

    browser.set_offline(true).await;
    browser.wait_for("navigator.onLine === false", WAIT, "the page to see it is offline").await;
    c.find(Locator::Css("#round-buildings li[data-id]")).await.expect("a building").click().await.expect("click");
    browser.wait_for("document.querySelector('#visit-form')", WAIT, "the visit form").await;
    c.find(Locator::Css("#visit-form [data-outcome=not_home]")).await.expect("不在家").click().await.expect("click");
    browser
        .wait_for("document.querySelector('#rounds-message')?.textContent.includes('离线')", WAIT, "queued offline")
        .await;
    let key = browser.js("return window.__lastVisitKey;").await;
    let key = uuid::Uuid::parse_str(key.as_str().expect("the visit's key")).expect("uuid");
    let stored: i64 = sqlx::query_scalar("select count(*) from door_visit where idempotency_key = $1")
        .bind(key)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 0, "nothing reached the server while offline");
    browser.screenshot(&screenshot_path("worker-round-offline-phone.png")).await;

    browser.set_offline(false).await;
    browser.wait_for("navigator.onLine === true", WAIT, "the page to see it is online").await;
    browser
        .wait_for("document.querySelector('#rounds-message')?.textContent.includes('已发送')", WAIT, "the visit sent")
        .await;
    let rows: Vec<(String,)> = sqlx::query_as("select outcome from door_visit where idempotency_key = $1")
        .bind(key)
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(rows, [("not_home".to_string(),)], "stored exactly once");
    // A later flush (the 30 s timer, another `online`) sends nothing again: wait for the flush
    // that `online` starts to end, then count.
    let flushes = browser.js("return window.__outboxFlushes ?? 0;").await.as_i64().unwrap_or(0);
    browser.js("window.dispatchEvent(new Event('online')); return true;").await;
    browser.wait_for(&format!("(window.__outboxFlushes ?? 0) > {flushes}"), WAIT, "the next flush to end").await;
    let after: i64 = sqlx::query_scalar("select count(*) from door_visit").fetch_one(&pool).await.expect("count");
    assert_eq!(after, before + 1, "one visit, once");
    assert_no_page_errors(&browser.js("return window.__errors;").await);
}

/// rider-01's counted visits at a station.
async fn rider_visits(pool: &sqlx::PgPool, station: i64) -> i64 {
    sqlx::query_scalar(
        "select count(*) from station_visit v join account a on a.id = v.account_id where a.name = 'rider-01' and v.station_id = $1",
    )
    .bind(station)
    .fetch_one(pool)
    .await
    .expect("count")
}

/// The text of an element (empty when there is none).
async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .js(&format!("return document.querySelector('{css}')?.textContent ?? '';"))
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn rider_on_a_phone_checks_in_at_a_station_from_its_qr_link_within_150_m_once_an_hour() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    let (station, lon, lat): (i64, f64, f64) =
        sqlx::query_as("select id, ST_X(geom), ST_Y(geom) from station order by id limit 1")
            .fetch_one(&pool)
            .await
            .expect("a station");
    // The demo seed may have had rider-01 here within the hour: start from a clean hour.
    sqlx::query(
        "delete from station_visit where counted_until > now() and account_id = (select id from account where name = 'rider-01')",
    )
    .execute(&pool)
    .await
    .expect("clean hour");
    let before = rider_visits(&pool, station).await;
    // The QR code printed at the station opens this page.
    let qr = reqwest::get(server.url(&format!("/api/stations/{station}/qr.svg"))).await.expect("qr");
    assert_eq!(qr.status(), reqwest::StatusCode::OK);

    // About 330 m north of the station: too far.
    browser.cdp("Browser.grantPermissions", json!({"permissions": ["geolocation"], "origin": server.url("")})).await;
    browser
        .cdp("Emulation.setGeolocationOverride", json!({"latitude": lat + 0.003, "longitude": lon, "accuracy": 10}))
        .await;
    browser.client.goto(&server.url(&format!("/#checkin/{station}"))).await.expect("open the check-in link");
    browser.wait_for("window.__appReady === true", WAIT, "the app to start").await;
    browser.wait_for("!document.querySelector('#view-checkin').hidden", WAIT, "the check-in page").await;
    log_in(&browser, "#view-checkin", "rider-01").await;
    browser.wait_for("document.querySelector('#checkin-button')", WAIT, "the check-in button after login").await;
    let c = &browser.client;
    c.find(Locator::Css("#checkin-button")).await.expect("button").click().await.expect("click");
    browser.wait_for("document.querySelector('#checkin-result.result-error')", WAIT, "the refusal").await;
    let far = text_of(&browser, "#checkin-result").await;
    assert!(far.contains("150 米") && far.contains("您距驿站约"), "too far, with the distance: {far}");
    assert_eq!(rider_visits(&pool, station).await, before, "nothing counted");

    // About 45 m away: counted.
    browser
        .cdp("Emulation.setGeolocationOverride", json!({"latitude": lat + 0.0004, "longitude": lon, "accuracy": 10}))
        .await;
    c.find(Locator::Css("#checkin-button")).await.expect("button").click().await.expect("click");
    browser.wait_for("document.querySelector('#checkin-result.result-ok')", WAIT, "the check-in").await;
    let done = text_of(&browser, "#checkin-result").await;
    assert!(done.contains("签到成功"), "{done}");
    assert_eq!(rider_visits(&pool, station).await, before + 1, "one visit counted");
    browser.screenshot(&screenshot_path("rider-checkin-phone.png")).await;

    // Again within the hour: told so, nothing more counted; in English after the switch.
    c.find(Locator::Css("#checkin-button")).await.expect("button").click().await.expect("click");
    browser
        .wait_for("document.querySelector('#checkin-result').textContent.includes('这一小时内')", WAIT, "the repeat")
        .await;
    assert_eq!(rider_visits(&pool, station).await, before + 1, "still one visit");
    c.find(Locator::Css("#lang")).await.expect("lang").click().await.expect("click");
    let english = text_of(&browser, "#checkin-result").await;
    assert!(english.contains("already checked in"), "{english}");
    c.find(Locator::Css("#lang")).await.expect("lang").click().await.expect("click");

    // A suggestion for the station's box; the rider sees it listed, waiting for an answer.
    c.find(Locator::Css("#suggest-form textarea"))
        .await
        .expect("text")
        .send_keys("浏览器测试：希望增加充电插座")
        .await
        .expect("type");
    c.find(Locator::Css("#suggest-form button[type=submit]")).await.expect("send").click().await.expect("click");
    browser
        .wait_for(
            "document.querySelectorAll('#my-suggestions li[data-status=open]').length >= 1",
            WAIT,
            "my suggestion",
        )
        .await;
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from station_suggestion where station_id = $1 and body = '浏览器测试：希望增加充电插座'",
    )
    .bind(station)
    .fetch_one(&pool)
    .await
    .expect("suggestion");
    assert_eq!(stored, 1);
    let width = browser.js("return document.documentElement.scrollWidth <= innerWidth;").await;
    assert_eq!(width, json!(true), "nothing wider than the phone");
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

#[tokio::test]
async fn planner_on_a_phone_sees_leader_coverage_and_renews_a_term_that_ran_out_from_the_map() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    // One of the demo's deliberately lapsed terms (every 500th building with households).
    let (id, lon, lat): (i64, f64, f64) = sqlx::query_as(
        "select b.id, ST_X(b.anchor), ST_Y(b.anchor) from building b
          where b.households > 0 and gridmap_leader_state(b.id) = 'expired' order by b.id limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("a building whose leader's term ran out");

    tab(&browser, "leaders").await;
    log_in(&browser, "#view-leaders", "demo-planner").await;
    browser.wait_for("document.querySelector('#leader-coverage-total')", WAIT, "the county's coverage").await;
    let total = browser.js("return document.querySelector('#leader-coverage-total').textContent;").await;
    assert!(total.as_str().expect("text").contains('%'), "{total}");
    // The leader layers are shown, and their tiles come from their own source.
    browser
        .wait_for("__map.getLayoutProperty('leader-gaps', 'visibility') === 'visible'", WAIT, "the gaps shown")
        .await;
    browser.js(&format!("__map.jumpTo({{ center: [{lon}, {lat}], zoom: 17 }}); return true;")).await;
    browser
        .wait_for(
            &format!(
                "__map.querySourceFeatures('leaders', {{ sourceLayer: 'leader_gaps' }}).some((f) => f.id === {id})"
            ),
            WAIT,
            "the lapsed building outlined as a gap",
        )
        .await;

    // Tap the building: its card says the term ran out; renew it for a year.
    let at = browser
        .js(&format!(
            "const p = __map.project([{lon}, {lat}]); const r = __map.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y];"
        ))
        .await;
    click_at(&browser, at[0].as_f64().expect("x"), at[1].as_f64().expect("y")).await;
    browser.wait_for("document.querySelector('#leader-card .leader-renew')", WAIT, "the building's card").await;
    let card = browser.js("return document.querySelector('#leader-card').textContent;").await;
    assert!(card.as_str().expect("text").contains("任期已满"), "{card}");
    browser.client.find(Locator::Css("#leader-card .leader-renew")).await.expect("renew").click().await.expect("click");
    browser
        .wait_for("document.querySelector('#leader-card .ok')?.textContent === '已保存'", WAIT, "the renewal saved")
        .await;
    let state: String =
        sqlx::query_scalar("select gridmap_leader_state($1)").bind(id).fetch_one(&pool).await.expect("state");
    assert_eq!(state, "current");
    // The leader tiles there are redrawn without the gap (the base map's stay cached).
    browser
        .wait_for(
            &format!(
                "__map.querySourceFeatures('leaders', {{ sourceLayer: 'leader_gaps' }}).every((f) => f.id !== {id})"
            ),
            WAIT,
            "the gap gone from the map",
        )
        .await;
    browser.screenshot(&screenshot_path("leaders-phone.png")).await;
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// The points market on a phone (issue 24 §3): a rider opens the points tab, logs in, redeems a
/// haircut voucher (理发券, at merchant-01) with the balance shown, sees it pending in their
/// list; the merchant logs in on the same phone and confirms the hand-over.
#[tokio::test]
async fn rider_redeems_an_item_on_a_phone() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let client = reqwest::Client::new();
    let rider = api_login(&server, "rider-01").await;
    let get = |path: &str, token: &str| {
        let request = client.get(server.url(path)).bearer_auth(token);
        async move { request.send().await.expect("get").json::<Value>().await.expect("json") }
    };
    let before = get("/api/points/me", &rider).await["balance"].as_i64().expect("balance");
    let catalogue = get("/api/points/catalogue", &rider).await;
    let item = catalogue
        .as_array()
        .expect("catalogue")
        .iter()
        .find(|i| i["name"] == "理发券")
        .cloned()
        .expect("the seeded haircut voucher");
    let (item_id, cost) = (item["id"].as_i64().expect("id"), item["cost"].as_i64().expect("cost"));
    assert!(before >= cost, "the seeded rider-01 can afford it: {before} < {cost}");

    tab(&browser, "points").await;
    browser
        .wait_for("document.querySelectorAll('#points-catalogue .points-item').length >= 15", WAIT, "the catalogue")
        .await;
    browser.js("document.querySelector('#points-login-open').click(); return true;").await;
    log_in(&browser, "#view-points", "rider-01").await;
    browser
        .wait_for(
            &format!("(document.querySelector('#points-balance')?.textContent ?? '').includes('{before}')"),
            WAIT,
            "the balance",
        )
        .await;
    let button = browser
        .js(&format!(
            r#"const b = document.querySelector('.points-item[data-item="{item_id}"] .points-redeem');
              b.scrollIntoView({{ block: 'center' }});
              const r = b.getBoundingClientRect();
              return {{ h: r.height, disabled: b.disabled, right: r.right, vw: innerWidth }};"#
        ))
        .await;
    assert_eq!(button["disabled"], false, "{button}");
    assert!(button["h"].as_f64().unwrap_or(0.0) >= 44.0, "a thumb-sized button: {button}");
    assert!(button["right"].as_f64() <= button["vw"].as_f64(), "inside the phone's width: {button}");
    browser
        .js(&format!(
            "document.querySelector('.points-item[data-item=\"{item_id}\"] .points-redeem').click(); return true;"
        ))
        .await;
    browser
        .wait_for(
            "(document.querySelector('#points-message')?.textContent ?? '').includes('#')",
            WAIT,
            "the redemption",
        )
        .await;
    let after = get("/api/points/me", &rider).await["balance"].as_i64().expect("balance");
    assert_eq!(after, before - cost, "debited once");
    let mine = get("/api/points/redemptions?status=pending", &rider).await;
    let redemption = mine
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["item_id"] == item_id && r["mine"] == true)
        .cloned()
        .expect("the new pending redemption");
    let id = redemption["id"].as_i64().expect("id");
    browser
        .wait_for(
            &format!("!!document.querySelector('#points-mine [data-id=\"{id}\"].points-pending')"),
            WAIT,
            "the redemption in my list",
        )
        .await;
    let pending = browser.js("return localStorage.getItem('gridmap.points.pending');").await;
    assert_eq!(pending, "{}", "the attempt's key is settled once answered");
    let tabs_fit =
        browser.js("const t = document.querySelector('#tabs'); return t.scrollWidth <= t.clientWidth + 1;").await;
    assert_eq!(tabs_fit, true, "every tab fits a phone's width");
    browser.screenshot(&screenshot_path("points-phone.png")).await;

    // The merchant confirms the hand-over on the same phone.
    browser.js("document.querySelector('#points-logout').click(); return true;").await;
    browser.wait_for("!!document.querySelector('#points-login-open')", WAIT, "logged out").await;
    browser.js("document.querySelector('#points-login-open').click(); return true;").await;
    log_in(&browser, "#view-points", "merchant-01").await;
    browser
        .wait_for(
            &format!("!!document.querySelector('#points-handover [data-id=\"{id}\"] .points-confirm')"),
            WAIT,
            "the hand-over list",
        )
        .await;
    browser
        .js(&format!(
            "document.querySelector('#points-handover [data-id=\"{id}\"] .points-confirm').click(); return true;"
        ))
        .await;
    browser
        .wait_for(
            &format!("!document.querySelector('#points-handover [data-id=\"{id}\"]')"),
            WAIT,
            "the confirmed hand-over",
        )
        .await;
    let merchant = api_login(&server, "merchant-01").await;
    let done = get(&format!("/api/points/redemptions/{id}"), &merchant).await;
    assert_eq!(done["status"], "handed_over", "{done}");
    browser.screenshot(&screenshot_path("points-merchant-phone.png")).await;

    // The county's admin doubles what an accepted report earns a rider, from the rules list.
    let rule: i64 =
        sqlx::query_scalar("select id from points_rule where event = 'report_accepted' and group_code = 'riders'")
            .fetch_one(&db.pool().await)
            .await
            .expect("the riders' report rule");
    assert!(
        browser.js(&format!("return !document.querySelector('#points-rules [data-rule=\"{rule}\"] input');")).await
            == true,
        "the public sees the rules, not a form"
    );
    browser.js("document.querySelector('#points-logout').click(); return true;").await;
    browser.wait_for("!!document.querySelector('#points-login-open')", WAIT, "logged out").await;
    browser.js("document.querySelector('#points-login-open').click(); return true;").await;
    log_in(&browser, "#view-points", "demo-admin").await;
    let row = format!("#points-rules [data-rule=\"{rule}\"]");
    browser.wait_for(&format!("!!document.querySelector('{row} .points-rule-points')"), WAIT, "the rule's form").await;
    browser
        .js(&format!(
            "const p = document.querySelector('{row} .points-rule-points'); p.value = '20'; \
             document.querySelector('{row} .points-rule-save').click(); return true;"
        ))
        .await;
    browser
        .wait_for("document.querySelector('#points-message')?.classList.contains('ok')", WAIT, "the rule saved")
        .await;
    let rules = get("/api/points/rules", &rider).await;
    let saved = rules["rules"].as_array().expect("rules").iter().find(|r| r["id"] == rule).cloned().expect("the rule");
    assert_eq!((saved["points"].as_i64(), saved["active"].as_bool()), (Some(20), Some(true)), "{saved}");
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// Issue 24 §1: on a phone, a resident publishes a micro-wish from the wishes tab (their home
/// building comes from their account); a volunteer then finds it on the board — without the
/// resident's name or building — claims it, and only then sees where to go and whom to call.
#[tokio::test]
async fn resident_publishes_a_wish_and_a_volunteer_claims_it_on_a_phone() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let c = &browser.client;
    tab(&browser, "wishes").await;
    browser.wait_for("document.querySelector('#view-wishes form.login')", WAIT, "the wishes login").await;
    log_in(&browser, "#view-wishes", "resident-0001").await;
    browser.wait_for("document.querySelector('#wish-form textarea')", WAIT, "the publish form").await;
    let text = "浏览器测试：楼道灯坏了，想请人帮忙换灯泡";
    c.find(Locator::Css("#wish-form textarea")).await.expect("text").send_keys(text).await.expect("type");
    browser
        .js("document.querySelector('#wish-form button[type=submit]').scrollIntoView({block: 'center'}); return true;")
        .await;
    c.find(Locator::Css("#wish-form button[type=submit]")).await.expect("publish").click().await.expect("click");
    browser.wait_for("document.querySelector('#wish-message.ok')", WAIT, "published").await;
    let (id, state, resident): (i64, String, String) = sqlx::query_as(
        "select w.id, w.state, a.name from wish w join account a on a.id = w.resident_id where w.body = $1",
    )
    .bind(text)
    .fetch_one(&pool)
    .await
    .expect("the wish is stored once, for the resident");
    assert_eq!((state.as_str(), resident.as_str()), ("published", "resident-0001"));
    browser
        .wait_for(&format!("document.querySelector('#wish-mine li[data-id=\"{id}\"]')"), WAIT, "the wish in my wishes")
        .await;

    // The volunteer, on the same phone.
    // The panel scrolled down with the form: bring the button out from under the sticky tabs.
    browser.js("document.querySelector('#wishes-logout').scrollIntoView({block: 'center'}); return true;").await;
    c.find(Locator::Css("#wishes-logout")).await.expect("logout").click().await.expect("click");
    browser.wait_for("document.querySelector('#view-wishes form.login')", WAIT, "logged out").await;
    log_in(&browser, "#view-wishes", "vol-001").await;
    let on_board = format!("#wish-board li[data-id=\"{id}\"]");
    browser
        .wait_for(
            &format!("document.querySelector('{on_board} button.wish-claimed')"),
            WAIT,
            "the claim button on the board",
        )
        .await;
    let card = text_of(&browser, &on_board).await;
    assert!(card.contains("浏览器测试") && !card.contains("演示居民") && !card.contains("10080000000"), "{card}");
    browser
        .js(&format!(
            "document.querySelector('{on_board} button.wish-claimed').scrollIntoView({{block: 'center'}}); return true;"
        ))
        .await;
    c.find(Locator::Css(&format!("{on_board} button.wish-claimed")))
        .await
        .expect("claim")
        .click()
        .await
        .expect("click");
    browser.wait_for("document.querySelector('#wish-message.ok')", WAIT, "claimed").await;
    let held = format!("#wish-mine li[data-id=\"{id}\"]");
    browser
        .wait_for(&format!("document.querySelector('{held} .wish-contact')"), WAIT, "the contact after the claim")
        .await;
    let contact = text_of(&browser, &format!("{held} .wish-contact")).await;
    assert!(contact.contains("10080000000"), "the volunteer now sees the resident's phone: {contact}");
    let (state, claimant): (String, String) =
        sqlx::query_as("select w.state, a.name from wish w join account a on a.id = w.claimant_id where w.id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("claimed");
    assert_eq!((state.as_str(), claimant.as_str()), ("claimed", "vol-001"));
    browser.screenshot(&screenshot_path("wishes-volunteer-phone.png")).await;
    let width = browser.js("return document.documentElement.scrollWidth <= innerWidth;").await;
    assert_eq!(width, json!(true), "nothing wider than the phone");
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// Emergency mode (issue 24 §2) on a phone: the admin switches gw-0001's community into
/// emergency mode with one button; gw-0001 opens the emergency tab and sees their grid's
/// volunteers; while the page is open, the demo volunteer (a registered member) checks in
/// themselves and the admin records another member: both appear checked in through the live
/// feed, without a reload.
#[tokio::test]
async fn admin_switches_a_community_into_emergency_mode_and_the_worker_sees_volunteers_check_in_on_a_phone() {
    build_web_map();
    let Some(browser) = Browser::start_phone(390, 844).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let c = &browser.client;
    let (grid, _, _) = worker_grid(&pool).await;
    let community: i64 = sqlx::query_scalar("select community_id from grid where id = $1")
        .bind(grid)
        .fetch_one(&pool)
        .await
        .expect("the worker's community");

    tab(&browser, "emergency").await;
    browser.wait_for("document.querySelector('#emergency-normal')", WAIT, "normal times").await;
    log_in(&browser, "#view-emergency", "demo-admin").await;
    browser.wait_for("document.querySelector('#emergency-community option')", WAIT, "the community picker").await;
    browser
        .js(&format!(
            "const s = document.querySelector('#emergency-community'); s.value = '{community}'; \
             s.scrollIntoView({{block: 'center'}}); return s.value;"
        ))
        .await;
    c.find(Locator::Css("#emergency-reason"))
        .await
        .expect("reason")
        .send_keys("浏览器测试：防汛应急")
        .await
        .expect("type");
    browser
        .js("document.querySelector('#emergency-start-button').scrollIntoView({block: 'center'}); return true;")
        .await;
    c.find(Locator::Css("#emergency-start-button")).await.expect("start").click().await.expect("click");
    browser.wait_for("document.querySelector('.emergency-episode')", WAIT, "the active episode").await;
    let (episode, area, members): (i64, i64, i64) = sqlx::query_as(
        r"select e.id, e.area_id, (select count(*) from emergency_mobilisation m where m.episode_id = e.id)
            from emergency_episode e where e.ended_at is null",
    )
    .fetch_one(&pool)
    .await
    .expect("one active episode");
    assert_eq!(area, community);
    assert!(members > 0, "the community's members are mobilised");
    browser.screenshot(&screenshot_path("emergency-admin-phone.png")).await;

    // The worker, on the same phone.
    browser.js("document.querySelector('#emergency-logout').scrollIntoView({block: 'center'}); return true;").await;
    c.find(Locator::Css("#emergency-logout")).await.expect("logout").click().await.expect("click");
    browser.wait_for("document.querySelector('#view-emergency form.login')", WAIT, "logged out").await;
    log_in(&browser, "#view-emergency", "gw-0001").await;
    let card = format!(".emergency-grid[data-grid=\"{grid}\"]");
    browser.wait_for(&format!("document.querySelector('{card} li.volunteer')"), WAIT, "the grid's volunteers").await;
    let waiting = browser.js(&format!("return document.querySelectorAll('{card} li.volunteer.waiting').length;")).await;
    assert!(waiting.as_i64().unwrap_or(0) >= 2, "nobody checked in yet: {waiting}");

    // vol-001 (a registered member of this grid) checks in; the admin records another member.
    let volunteer = api_login(&server, "vol-001").await;
    let http = reqwest::Client::new();
    let own = http
        .post(server.url(&format!("/api/emergency/{episode}/checkins")))
        .bearer_auth(&volunteer)
        .json(&json!({}))
        .send()
        .await
        .expect("check in");
    assert_eq!(own.status(), reqwest::StatusCode::CREATED, "{}", own.text().await.unwrap_or_default());
    let own_member: i64 = sqlx::query_scalar(
        "select p.id from party_member p join account a on a.id = p.account_id where a.name = 'vol-001'",
    )
    .fetch_one(&pool)
    .await
    .expect("vol-001 is a member");
    let other: i64 = sqlx::query_scalar(
        "select max(member_id) from emergency_mobilisation where episode_id = $1 and grid_id = $2 and state = 'mobilised'",
    )
    .bind(episode)
    .bind(grid)
    .fetch_one(&pool)
    .await
    .expect("another member");
    let admin = api_login(&server, "demo-admin").await;
    let recorded = http
        .post(server.url(&format!("/api/emergency/{episode}/checkins")))
        .bearer_auth(&admin)
        .json(&json!({"member_id": other}))
        .send()
        .await
        .expect("record");
    assert_eq!(recorded.status(), reqwest::StatusCode::CREATED);
    for member in [own_member, other] {
        browser
            .wait_for(
                &format!("document.querySelector('{card} li.volunteer.checked-in[data-member=\"{member}\"]')"),
                WAIT,
                "the check-in to arrive live",
            )
            .await;
    }
    let counts = text_of(&browser, &format!("{card} .emergency-grid-counts")).await;
    assert!(counts.contains("已报到 2/"), "{counts}");
    browser.screenshot(&screenshot_path("emergency-worker-phone.png")).await;
    let width = browser.js("return document.documentElement.scrollWidth <= innerWidth;").await;
    assert_eq!(width, json!(true), "nothing wider than the phone");
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}

/// Whether the map's centre lies in `[minx, miny, maxx, maxy]`.
async fn map_centre_in(browser: &Browser, bbox: [f64; 4]) -> bool {
    let [minx, miny, maxx, maxy] = bbox;
    browser
        .js(&format!(
            "const c = __map.getCenter(); return !__map.isMoving() && c.lng >= {minx} && c.lng <= {maxx} && c.lat >= {miny} && c.lat <= {maxy};"
        ))
        .await
        == json!(true)
}

#[tokio::test]
async fn a_county_planner_starts_on_their_county_and_the_stats_and_map_follow_the_county_picked() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let db = seeded_db(PASSWORD).await;
    let pool = db.pool().await;
    // A second county, S002, east of Yiyuan, with one (unassigned) report in its subdistrict, and
    // two reports in Yiyuan; demo-planner is scoped to S002.
    sqlx::query(
        r"with k as (insert into county (code, name) values ('S002', '演示县002') returning id),
               a as (insert into area (county_id, kind, name, geom, source)
                     select id, 'county', '演示县002', ST_Multi(ST_MakeEnvelope(119.5, 36.0, 119.7, 36.2, 4326)), 'test' from k),
               s as (insert into subdistrict (county_id, code, name) select id, 'S002-LS', '演示街道' from k returning id),
               p as (update account set county_id = (select id from k) where name = 'demo-planner')
          insert into report (category, geom, input_lon, input_lat, input_crs, subdistrict_id, assignment)
          select 'exposed_garbage', ST_SetSRID(ST_MakePoint(119.6, 36.1), 4326), 119.6, 36.1, 'wgs84', s.id, 'unassigned' from s",
    )
    .execute(&pool)
    .await
    .expect("a second county");
    sqlx::query(
        r"insert into report (category, geom, input_lon, input_lat, input_crs, grid_id, subdistrict_id, assignment)
          select 'exposed_garbage', ST_PointOnSurface(g.geom), 0, 0, 'wgs84', g.id, c.subdistrict_id, 'covers'
            from grid g join community c on c.id = g.community_id order by g.id limit 2",
    )
    .execute(&pool)
    .await
    .expect("two reports in Yiyuan");
    let yiyuan: Vec<f64> = sqlx::query_scalar(
        "select array[ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)] from (select ST_Extent(geom)::geometry e from area where kind = 'county' and county_id = (select id from county where code = '370323')) b",
    )
    .fetch_one(&pool)
    .await
    .expect("Yiyuan's extent");
    let yiyuan: [f64; 4] = yiyuan.try_into().expect("four numbers");
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    assert!(map_centre_in(&browser, yiyuan).await, "the map opens on Yiyuan");

    // The county planner logs in: the card shows S002's statistics and the map goes there.
    tab(&browser, "plan").await;
    log_in(&browser, "#view-plan", "demo-planner").await;
    browser.wait_for("window.__countyStats && window.__countyStats.code === 'S002'", WAIT, "S002's statistics").await;
    assert_eq!(browser.js("return window.__countyStats.reports;").await, json!(1));
    browser.wait_for("window.__countyFlown === 'S002' && !__map.isMoving()", WAIT, "the map to fly to S002").await;
    assert!(map_centre_in(&browser, [119.5, 36.0, 119.7, 36.2]).await, "the map shows S002");
    let c = &browser.client;
    let select = c.find(Locator::Css("#county-stats-plan select.county-select")).await.expect("the county picker");
    assert_eq!(select.prop("value").await.expect("value").as_deref(), Some("S002"));
    browser.screenshot(&screenshot_path("planner-county-stats.png")).await;

    // Yiyuan picked: its two reports, and the map flies back.
    select.select_by_value("370323").await.expect("pick Yiyuan");
    browser
        .wait_for("window.__countyStats && window.__countyStats.code === '370323'", WAIT, "Yiyuan's statistics")
        .await;
    assert_eq!(browser.js("return window.__countyStats.reports;").await, json!(2));
    browser.wait_for("window.__countyFlown === '370323' && !__map.isMoving()", WAIT, "the map to fly to Yiyuan").await;
    assert!(map_centre_in(&browser, yiyuan).await, "the map shows Yiyuan");
    let shown =
        c.find(Locator::Css("#county-stats-plan .stats-reports")).await.expect("count").text().await.expect("text");
    assert_eq!(shown, "2");
    // All counties: every report.
    let select = c.find(Locator::Css("#county-stats-plan select.county-select")).await.expect("the county picker");
    select.select_by_value("").await.expect("pick all");
    browser
        .wait_for("window.__countyStats && window.__countyStats.code === ''", WAIT, "every county's statistics")
        .await;
    assert_eq!(browser.js("return window.__countyStats.reports;").await, json!(3));
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}
