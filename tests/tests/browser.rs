//! The web map in a real browser: Debian's Chromium headless, driven over WebDriver, against the
//! real `gridmap` binary serving a scratch database with the demo city. Screenshots go to
//! `docs/screenshots/`. Without Chromium/ChromeDriver each test prints SKIPPED and passes.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::Locator;
use gridmap_e2e::browser::{Browser, build_web_map, shipped_js_bytes, web_map_dir};
use gridmap_e2e::{Server, seeded_db};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots").join(name)
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
    let canvas = browser.js("const c = document.querySelector('#map canvas'); return c && c.width > 0 && c.height > 0;").await;
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
        assert!(names.contains(&"stations"), "tile layers rendered: {layers}");
    } else {
        // Until the tile server is merged the page must say so, not show a blank map.
        let status = browser.js("return document.querySelector('#status').textContent;").await;
        assert!(status.as_str().unwrap_or("").contains("底图瓦片服务暂不可用"), "status line: {status}");
        eprintln!("NOTE: /tiles/style.json is not served by this build (tiles not merged yet): tile layers not checked");
    }

    let first_paint = browser.js("return window.__firstPaint;").await;
    let fcp = browser
        .js("const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? Math.round(e.startTime) : null;")
        .await;
    let (js_bytes, files) = shipped_js_bytes();
    eprintln!("MEASURED: first contentful paint {fcp} ms; map drawn with all layers (first idle) {first_paint} ms after navigation start (tiles: {tiles})");
    eprintln!("MEASURED: shipped JS {:.1} KiB in {} files: {files:?}", js_bytes as f64 / 1024.0, files.len());

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
    let shown = browser.wait_for("document.querySelectorAll('#station-list li[data-id]').length", WAIT, "search results").await;
    let expected = browser.js("return __app.state.stations.filter((s) => s.services.includes('microwave')).length;").await;
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
    browser.wait_for("document.querySelector('#station-list').textContent.includes('没有匹配')", WAIT, "empty result").await;

    // Nearest: a real click on the map. Centre the map on a point, then click the canvas centre.
    let (lon, lat) = (118.1703, 36.1806);
    c.find(Locator::Css("#tabs [data-tab=nearest]")).await.expect("tab").click().await.expect("click");
    browser.js(&format!("__map.jumpTo({{ center: [{lon}, {lat}], zoom: 15 }}); return true;")).await;
    c.find(Locator::Css("#map canvas")).await.expect("canvas").click().await.expect("click the map");
    browser.wait_for("document.querySelectorAll('#nearest-list li').length === 5", WAIT, "five nearest stations").await;
    let listed = browser.js("return [...document.querySelectorAll('#nearest-list li')].map((li) => Number(li.dataset.id));").await;
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
    let distances = browser.js("return [...document.querySelectorAll('#nearest-list .dist')].map((e) => e.textContent);").await;
    assert!(distances[0].as_str().unwrap_or("").ends_with('米'), "{distances}");
    browser.screenshot(&screenshot_path("nearest.png")).await;

    // Which grid: click the map in the grid tab; the card matches the API and names no phone.
    c.find(Locator::Css("#tabs [data-tab=grid]")).await.expect("tab").click().await.expect("click");
    c.find(Locator::Css("#map canvas")).await.expect("canvas").click().await.expect("click the map");
    browser.wait_for("!document.querySelector('#grid-card').hidden && document.querySelector('#grid-card .grid-code')", WAIT, "the grid card").await;
    let code = c.find(Locator::Css("#grid-card .grid-code")).await.expect("code").text().await.expect("text");
    let api: Value = reqwest::get(server.url(&format!("/api/grids/at?lon={clon}&lat={clat}"))).await.expect("api").json().await.expect("json");
    assert_eq!(code, api["code"].as_str().expect("code"));
    let grid_text = c.find(Locator::Css("#grid-card")).await.expect("card").text().await.expect("text");
    assert!(grid_text.contains("网格员") && grid_text.contains("户"), "{grid_text}");
    assert!(!grid_text.contains("100"), "no private mobile number (the demo's start with 100): {grid_text}");
    browser.wait_for("__map.queryRenderedFeatures({ layers: ['gm-grid-line'] }).length > 0", WAIT, "the grid outline drawn").await;
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
    assert!(rects["panel"]["top"].as_f64() >= rects["map"]["bottom"].as_f64().map(|b| b - 1.0), "panel below map: {rects}");
    assert!((rects["panel"]["width"].as_f64().expect("w") - vw).abs() < 2.0, "full-width panel: {rects}");
    browser.screenshot(&screenshot_path("resident-phone.png")).await;
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

#[tokio::test]
async fn rider_logs_in_and_a_report_stays_queued_with_its_key_until_the_reports_api_answers() {
    build_web_map();
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let password = "browser-demo-pass";
    let db = seeded_db(password).await;
    let server = Server::start(&db, &[]).await;
    open(&browser, &server).await;
    let c = &browser.client;
    let reports_api = reqwest::get(server.url("/api/report-categories")).await.expect("probe").status().is_success();

    c.find(Locator::Css("#tabs [data-tab=report]")).await.expect("tab").click().await.expect("click");
    let form = c.find(Locator::Css("#login-form")).await.expect("login form");
    form.find(Locator::Css("[name=name]")).await.expect("name").send_keys("rider-01").await.expect("type");
    form.find(Locator::Css("[name=password]")).await.expect("password").send_keys("wrong password").await.expect("type");
    form.find(Locator::Css("button[type=submit]")).await.expect("submit").click().await.expect("click");
    browser.wait_for("document.querySelector('#login-error').textContent.includes('账号或密码错误')", WAIT, "the login error").await;
    let pw = form.find(Locator::Css("[name=password]")).await.expect("password");
    pw.clear().await.expect("clear");
    pw.send_keys(password).await.expect("type");
    form.find(Locator::Css("button[type=submit]")).await.expect("submit").click().await.expect("click");
    browser.wait_for("!document.querySelector('#rider').hidden", WAIT, "the rider view after login").await;
    assert!(c.find(Locator::Css("#rider-who")).await.expect("who").text().await.expect("text").contains("rider-01"));

    if reports_api {
        eprintln!("NOTE: the reports API is deployed; the outbox-while-absent path is not exercised here");
        browser.close().await;
        return;
    }
    // No reports API yet (issue 5): the view says so, and a report goes to the IndexedDB outbox.
    assert_eq!(browser.js("return document.querySelector('#report-unavailable').hidden;").await, false);
    // The category list comes from the absent API, so offer one by hand.
    browser.js("const s = document.querySelector('#category'); s.append(new Option('市容环境', 'city_appearance')); s.value = 'city_appearance'; return true;").await;
    c.find(Locator::Css("#report-form textarea")).await.expect("description").send_keys("井盖破损").await.expect("type");
    c.find(Locator::Css("#use-pin")).await.expect("pin").click().await.expect("click");
    c.find(Locator::Css("#report-form button[type=submit]")).await.expect("submit").click().await.expect("click");
    browser.wait_for("document.querySelectorAll('#outbox li[data-key]').length === 1", WAIT, "the queued report").await;
    let key = browser.js("return document.querySelector('#outbox li[data-key]').dataset.key;").await;
    assert_eq!(browser.js("return document.querySelector('#outbox li[data-key]').dataset.state;").await, "pending");
    browser.screenshot(&screenshot_path("rider-outbox.png")).await;

    // A reload (the phone's browser killed the tab) keeps it, with the same idempotency key.
    c.refresh().await.expect("reload");
    browser.wait_for("window.__appReady === true", WAIT, "the app after reload").await;
    c.find(Locator::Css("#tabs [data-tab=report]")).await.expect("tab").click().await.expect("click");
    let again = browser.wait_for("document.querySelector('#outbox li[data-key]')?.dataset.key", WAIT, "the outbox after reload").await;
    assert_eq!(again, key);
    assert_no_page_errors(&browser.js("return window.__errors;").await);
    browser.close().await;
}
