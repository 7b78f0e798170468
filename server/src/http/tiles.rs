//! `/tiles/…`: vector tiles (Mapbox Vector Tile 2.1), TileJSON 3.0.0 and an offline MapLibre style.
//!
//! - `GET /tiles/{layers}/{z}/{x}/{y}.mvt` — `{layers}` is a comma list of `grids`, `buildings`,
//!   `stations`, `roads`; asking for `grids` also yields the `grid_labels` point layer from z12.
//!   Unknown layer → 404, bad z/x/y → 400 (JSON errors); a tile without features → 204.
//!   brotli or gzip as `Accept-Encoding` prefers, strong ETag per coding, `If-None-Match` → 304.
//! - `GET /tiles/{layers}.json` — TileJSON 3.0.0 with absolute tile URLs (MapLibre needs them),
//!   from `GRIDMAP_PUBLIC_URL` or else the request's Host (`http::urls`).
//! - `GET /tiles/style.json` — MapLibre style spec v8 that needs no internet: no glyphs (MapLibre
//!   ≥ 5.11 draws text with local fonts), no sprite, and a raster basemap only when
//!   `GRIDMAP_BASEMAP_URL` is set.
//!
//! matchit 0.8 (axum 0.8) cannot match a parameter followed by a suffix (`{y}.mvt`) or tell
//! `{layers}.json` from `style.json`, so the last segment is captured whole and parsed here.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridmap_tiles::schema::{STYLE_SOURCES, balance_classes_json, style_layers, vector_layers_json};
use gridmap_tiles::{LayerSet, TileCoord, TileError, tile::MAX_ZOOM};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::etag;
use super::extract::Path;
use super::routes::plain_routes;
use super::urls::BaseUrl;

/// The registered media type for MVT.
pub const MVT_CONTENT_TYPE: &str = "application/vnd.mapbox-vector-tile";
/// Tiles are never stale in our cache, but a browser must ask again (cheaply, with its ETag).
const TILE_CACHE_CONTROL: &str = "public, max-age=0, must-revalidate";

pub fn router() -> OpenApiRouter<AppState> {
    plain_routes!(OpenApiRouter::new(),
        "/tiles/{file}" => get(get_tiles_document),
        "/tiles/{layers}/{z}/{x}/{file}" => get(get_tile),
    )
}

fn parse_layers(list: &str) -> ApiResult<LayerSet> {
    LayerSet::parse(list).map_err(|err| ApiError::not_found(err.to_string()))
}

/// `{layers}/{z}/{x}/{y}.mvt` as the router splits it (for the fuzz target; the handler gets the
/// parts from the router).
pub(crate) fn parse_tile_path(path: &str) -> ApiResult<(LayerSet, TileCoord)> {
    let mut parts = path.splitn(4, '/');
    let (Some(layers), Some(z), Some(x), Some(file)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::bad_request("expected {layers}/{z}/{x}/{y}.mvt"));
    };
    parse_tile(layers, z, x, file)
}

/// The layers and tile of a request, each part checked: unknown layer → 404, bad numbers → 400.
fn parse_tile(layers: &str, z: &str, x: &str, file: &str) -> ApiResult<(LayerSet, TileCoord)> {
    let layers = parse_layers(layers)?;
    let Some(y) = file.strip_suffix(".mvt") else {
        return Err(ApiError::not_found(format!("tiles are served as {{y}}.mvt, not `{file}`")));
    };
    Ok((layers, parse_coord(z, x, y)?))
}

fn parse_coord(z: &str, x: &str, y: &str) -> ApiResult<TileCoord> {
    let number = |name: &str, value: &str| {
        value.parse::<u32>().map_err(|_| ApiError::field(name, format!("`{value}` is not a non-negative integer")))
    };
    TileCoord::new(number("z", z)?, number("x", x)?, number("y", y)?)
        .map_err(|err| ApiError::bad_request(err.to_string()))
}

/// How a tile goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Brotli,
    Gzip,
    Identity,
}

/// The coding `Accept-Encoding` prefers among brotli, gzip and none: the highest q wins, brotli
/// on a tie (it is smaller); `q=0` refuses a coding; `*` stands for any coding not named.
fn preferred_coding(headers: &HeaderMap) -> Coding {
    let (mut br, mut gzip, mut any) = (None::<f32>, None::<f32>, None::<f32>);
    for item in
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let q = parts.find_map(|p| p.strip_prefix("q=")).map_or(Some(1.0), |q| q.parse::<f32>().ok()).unwrap_or(0.0);
        if coding.eq_ignore_ascii_case("br") {
            br = Some(q);
        } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q);
        } else if coding == "*" {
            any = Some(q);
        }
    }
    let (br, gzip) = (br.or(any).unwrap_or(0.0), gzip.or(any).unwrap_or(0.0));
    if br > 0.0 && br >= gzip {
        Coding::Brotli
    } else if gzip > 0.0 {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// Whether an `If-None-Match` tag names this tile (http/etag.rs compares weakly). Every
/// representation (brotli, gzip, identity) carries the same content: any of their tags matches.
fn names_tile(tag: &str, digest: &str) -> bool {
    tag == digest || tag.strip_suffix("-gzip") == Some(digest) || tag.strip_suffix("-br") == Some(digest)
}

/// GET /tiles/{layers}/{z}/{x}/{y}.mvt — MVT 2.1 (extent 4096, 64-unit buffer), XYZ, EPSG:3857.
async fn get_tile(
    State(state): State<AppState>,
    Path((layers, z, x, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (layers, coord) = parse_tile(&layers, &z, &x, &file)?;
    let served = state.tiles.tile(layers, coord).await.map_err(|err| match err {
        TileError::Busy => ApiError::Unavailable("the tile renderer is busy; retry shortly".into()),
        TileError::Database(err) => ApiError::Database(err),
        TileError::Compress(err) => ApiError::Internal(err.into()),
    })?;
    let tile = served.tile;
    let coding = preferred_coding(&headers);
    // Strong ETags differ per content coding (RFC 9110 §8.8.3).
    let etag = match coding {
        Coding::Brotli => etag::strong(format_args!("{}-br", tile.digest)),
        Coding::Gzip => etag::strong(format_args!("{}-gzip", tile.digest)),
        Coding::Identity => etag::strong(&tile.digest),
    };
    let mut response = if etag::none_match(&headers, |tag| names_tile(tag, &tile.digest)) {
        state.tiles.metrics.not_modified.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StatusCode::NOT_MODIFIED.into_response()
    } else if tile.is_empty() {
        state.tiles.metrics.empty.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StatusCode::NO_CONTENT.into_response()
    } else if coding == Coding::Brotli {
        let mut r = tile.brotli().map_err(|err| ApiError::Internal(err.into()))?.into_response();
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        r
    } else if coding == Coding::Gzip {
        let mut r = tile.gzip.clone().into_response();
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        tile.identity().map_err(|err| ApiError::Internal(err.into()))?.into_response()
    };
    let h = response.headers_mut();
    if !tile.is_empty() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MVT_CONTENT_TYPE));
    }
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(TILE_CACHE_CONTROL));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert("x-tile-cache", HeaderValue::from_static(if served.hit { "hit" } else { "miss" }));
    Ok(response)
}

/// GET /tiles/style.json and GET /tiles/{layers}.json.
async fn get_tiles_document(
    State(state): State<AppState>,
    Path(file): Path<String>,
    BaseUrl(base): BaseUrl,
) -> ApiResult<Response> {
    let body = if file == "style.json" {
        style(&base, state.urls.basemap_url.as_deref())
    } else if let Some(list) = file.strip_suffix(".json") {
        let layers = parse_layers(list)?;
        tilejson(&state, &base, layers).await?
    } else {
        return Err(ApiError::not_found(format!("no tile document `{file}` (try style.json or grids.json)")));
    };
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

fn tile_url(base: &str, layers: LayerSet) -> String {
    format!("{base}/tiles/{layers}/{{z}}/{{x}}/{{y}}.mvt")
}

/// The lon/lat extent where the layers can draw (`Layer::extent_tables`; the whole world only
/// when the database holds none of it).
async fn data_bounds(state: &AppState, layers: LayerSet) -> ApiResult<[f64; 4]> {
    let mut tables: Vec<&str> = layers.iter().flat_map(gridmap_tiles::Layer::extent_tables).copied().collect();
    tables.sort_unstable();
    tables.dedup();
    // Only allow-listed table names (from `Layer::extent_tables`) are formatted into the SQL.
    let union =
        tables.iter().map(|t| format!("select ST_Extent(geom) as e from {t}")).collect::<Vec<_>>().join(" union all ");
    let sql = format!(
        "select ST_XMin(x), ST_YMin(x), ST_XMax(x), ST_YMax(x) from (select ST_Extent(e) as x from ({union}) u) s"
    );
    let row: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(&sql).fetch_one(&state.pool).await?;
    Ok(match row {
        (Some(a), Some(b), Some(c), Some(d)) => [a, b, c, d],
        _ => [-180.0, -85.051_128_78, 180.0, 85.051_128_78],
    })
}

/// TileJSON 3.0.0 (<https://github.com/mapbox/tilejson-spec/tree/master/3.0.0>). Every tile
/// URL inside `bounds` and `minzoom`–`maxzoom` answers 200 with an MVT, or 204 No Content when
/// none of the layers has a feature in that tile (docs/tiles.md).
async fn tilejson(state: &AppState, base: &str, layers: LayerSet) -> ApiResult<Value> {
    let bounds = data_bounds(state, layers).await?;
    let minzoom = layers.iter().map(gridmap_tiles::Layer::min_zoom).min().unwrap_or(0);
    // The middle of the data, at a zoom that shows single grids and reports.
    let center = [f64::midpoint(bounds[0], bounds[2]), f64::midpoint(bounds[1], bounds[3]), 14.0];
    let vector_layers = vector_layers_json(layers);
    Ok(json!({
        "tilejson": "3.0.0",
        "name": format!("gridmap {layers}"),
        "description": "Yiyuan urban grid governance: grids, buildings, warm-\"new\" stations (synthetic demo data unless imported)",
        "version": env!("CARGO_PKG_VERSION"),
        "scheme": "xyz",
        "tiles": [tile_url(base, layers)],
        "minzoom": minzoom,
        "maxzoom": MAX_ZOOM,
        "bounds": bounds,
        "center": center,
        "vector_layers": vector_layers,
    }))
}

/// A MapLibre style (spec v8) drawing every layer legibly with no internet access. Its layers
/// come from the layer definitions (`gridmap_tiles::schema`); QGIS 3.22's style converter reads
/// it too (`match` colours with array labels, `{field}` text labels).
pub fn style(base: &str, basemap_url: Option<&str>) -> Value {
    let mut sources = serde_json::Map::new();
    for (name, layers) in STYLE_SOURCES {
        let minzoom = layers.iter().map(gridmap_tiles::Layer::min_zoom).min().unwrap_or(0);
        let mut source = json!({
            "type": "vector",
            "tiles": [tile_url(base, layers)],
            "minzoom": minzoom,
            "maxzoom": MAX_ZOOM,
        });
        if layers == LayerSet::BASE {
            source["attribution"] = json!("gridmap (synthetic demo data unless imported)");
        }
        sources.insert(name.to_string(), source);
    }
    let mut layers =
        vec![json!({ "id": "background", "type": "background", "paint": { "background-color": "#f3f1ec" } })];
    if let Some(url) = basemap_url {
        sources.insert("basemap".to_string(), json!({ "type": "raster", "tiles": [url], "tileSize": 256 }));
        layers.push(json!({ "id": "basemap", "type": "raster", "source": "basemap" }));
    }
    layers.extend(style_layers());
    json!({
        "version": 8,
        "name": "gridmap",
        // The balance classes' household ranges, for a legend (the web map's reads them).
        "metadata": { "gridmap:offline": true, "gridmap:balance_classes": balance_classes_json() },
        "center": [118.17, 36.18],
        "zoom": 13,
        "sources": sources,
        "layers": layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_coding_follows_q_values_with_brotli_on_a_tie() {
        let coding = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            preferred_coding(&h)
        };
        assert_eq!(preferred_coding(&HeaderMap::new()), Coding::Identity);
        assert_eq!(coding("gzip, deflate, br, zstd"), Coding::Brotli);
        assert_eq!(coding("br;q=0.5, gzip;q=0.8"), Coding::Gzip);
        assert_eq!(coding("gzip"), Coding::Gzip);
        assert_eq!(coding("br;q=0, gzip"), Coding::Gzip);
        assert_eq!(coding("gzip;q=0, identity"), Coding::Identity);
        assert_eq!(coding("*"), Coding::Brotli);
        assert_eq!(coding("*;q=0.1, gzip"), Coding::Gzip);
    }

    #[test]
    fn style_is_offline_by_default() {
        let s = style("http://h", None);
        assert!(s.get("glyphs").is_none() && s.get("sprite").is_none());
        assert!(s["sources"].get("basemap").is_none());
        let with = style("http://h", Some("https://t{s}.example/{z}/{x}/{y}.png"));
        assert_eq!(with["sources"]["basemap"]["type"], "raster");
    }
}
