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

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gridmap_tiles::layer::VectorLayer;
use gridmap_tiles::{LayerSet, TileCoord, TileError, tile::MAX_ZOOM};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Path;
use super::urls::BaseUrl;

/// The registered media type for MVT.
pub const MVT_CONTENT_TYPE: &str = "application/vnd.mapbox-vector-tile";
/// Tiles are never stale in our cache, but a browser must ask again (cheaply, with its ETag).
const TILE_CACHE_CONTROL: &str = "public, max-age=0, must-revalidate";

pub fn router() -> Router<AppState> {
    Router::new().route("/tiles/{file}", get(get_tiles_document)).route("/tiles/{layers}/{z}/{x}/{file}", get(get_tile))
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

/// RFC 9110 §13.1.2: weak comparison for If-None-Match; `*` matches any current tile.
fn none_match(headers: &HeaderMap, digest: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
            // Every representation (brotli, gzip, identity) carries the same content: any tag matches.
            tag == "*"
                || tag == digest
                || tag.strip_suffix("-gzip") == Some(digest)
                || tag.strip_suffix("-br") == Some(digest)
        },
    )
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
        Coding::Brotli => format!("\"{}-br\"", tile.digest),
        Coding::Gzip => format!("\"{}-gzip\"", tile.digest),
        Coding::Identity => format!("\"{}\"", tile.digest),
    };
    let mut response = if none_match(&headers, &tile.digest) {
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
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex digest is a valid header value"));
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

/// The lon/lat extent of the data the layers draw (the whole world if there is none).
async fn data_bounds(state: &AppState, layers: LayerSet) -> ApiResult<[f64; 4]> {
    let tables: Vec<&str> = layers.iter().map(gridmap_tiles::Layer::table).collect();
    // Only allow-listed table names (from `Layer::table`) are formatted into the SQL.
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

fn vector_layer_json(layer: &VectorLayer) -> Value {
    let fields: serde_json::Map<String, Value> =
        layer.fields.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
    json!({
        "id": layer.id,
        "description": layer.description,
        "minzoom": layer.minzoom,
        "maxzoom": MAX_ZOOM,
        "fields": fields,
    })
}

/// The `vector_layers` of TileJSON (and of PMTiles metadata) for a set of layers.
pub fn vector_layers_json(layers: LayerSet) -> Vec<Value> {
    layers.iter().flat_map(gridmap_tiles::Layer::vector_layers).map(|l| vector_layer_json(&l)).collect()
}

/// TileJSON 3.0.0 (<https://github.com/mapbox/tilejson-spec/tree/master/3.0.0>).
async fn tilejson(state: &AppState, base: &str, layers: LayerSet) -> ApiResult<Value> {
    let bounds = data_bounds(state, layers).await?;
    let center = [f64::midpoint(bounds[0], bounds[2]), f64::midpoint(bounds[1], bounds[3]), 14.0];
    let vector_layers = vector_layers_json(layers);
    Ok(json!({
        "tilejson": "3.0.0",
        "name": format!("gridmap {layers}"),
        "description": "Yiyuan urban grid governance: grids, buildings, warm-\"new\" stations (synthetic demo data unless imported)",
        "version": env!("CARGO_PKG_VERSION"),
        "scheme": "xyz",
        "tiles": [tile_url(base, layers)],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "bounds": bounds,
        "center": center,
        "vector_layers": vector_layers,
    }))
}

/// A MapLibre style (spec v8) drawing every layer legibly with no internet access.
pub fn style(base: &str, basemap_url: Option<&str>) -> Value {
    let mut sources = json!({
        "gridmap": {
            "type": "vector",
            "tiles": [tile_url(base, LayerSet::BASE)],
            "minzoom": 0,
            "maxzoom": MAX_ZOOM,
            "attribution": "gridmap (synthetic demo data unless imported)",
        },
        // A source of their own: reports change all day, and their churn must not evict the
        // base map's cached tiles.
        "reports": {
            "type": "vector",
            "tiles": [tile_url(base, LayerSet::REPORTS)],
            "minzoom": gridmap_tiles::layer::REPORTS_MIN_ZOOM,
            "maxzoom": MAX_ZOOM,
        }
    });
    let mut layers =
        vec![json!({ "id": "background", "type": "background", "paint": { "background-color": "#f3f1ec" } })];
    if let Some(url) = basemap_url {
        sources["basemap"] = json!({ "type": "raster", "tiles": [url], "tileSize": 256 });
        layers.push(json!({ "id": "basemap", "type": "raster", "source": "basemap" }));
    }
    let text_font = json!(["sans-serif"]);
    // Household balance against the 300-household standard: blue = under, yellow = on
    // target, red = over (a diverging ColorBrewer RdYlBu ramp).
    let balance_colour = json!([
        "interpolate",
        ["linear"],
        ["coalesce", ["get", "balance"], 0],
        0.6,
        "#4575b4",
        0.85,
        "#91bfdb",
        1.0,
        "#ffffbf",
        1.15,
        "#fc8d59",
        1.4,
        "#d73027"
    ]);
    layers.extend([
        json!({
            "id": "grids-fill", "type": "fill", "source": "gridmap", "source-layer": "grids",
            "paint": { "fill-color": balance_colour, "fill-opacity": 0.45 }
        }),
        // Below z10 the grids source-layer is empty and the outlines (county → subdistrict →
        // community) take its place, coloured by their mean balance.
        json!({
            "id": "outlines-fill", "type": "fill", "source": "gridmap", "source-layer": "outlines",
            "paint": {
                "fill-color": ["interpolate", ["linear"],
                    ["/", ["coalesce", ["get", "households"], 0], ["*", 300, ["max", 1, ["coalesce", ["get", "grids"], 1]]]],
                    0.6, "#4575b4", 0.85, "#91bfdb", 1.0, "#ffffbf", 1.15, "#fc8d59", 1.4, "#d73027"],
                "fill-opacity": 0.35
            }
        }),
        json!({
            "id": "roads", "type": "line", "source": "gridmap", "source-layer": "roads",
            "layout": { "line-cap": "round", "line-join": "round" },
            "paint": {
                "line-color": ["match", ["get", "class"], "main", "#ffffff", "#fbfaf7"],
                "line-width": ["interpolate", ["exponential", 1.6], ["zoom"],
                    11, ["match", ["get", "class"], "main", 1.5, 0.5],
                    17, ["match", ["get", "class"], "main", 14, "street", 8, 4]]
            }
        }),
        json!({
            "id": "buildings", "type": "fill", "source": "gridmap", "source-layer": "buildings", "minzoom": 14,
            "paint": {
                "fill-color": ["match", ["get", "use"], "residential", "#cdbfae", "commercial", "#d9b3a3",
                               "public", "#b9c7d6", "industrial", "#c4c0b9", "#d3cbc1"],
                "fill-outline-color": "#9d8f80"
            }
        }),
        json!({
            "id": "grids-outline", "type": "line", "source": "gridmap", "source-layer": "grids",
            "paint": {
                "line-color": "#5b3a8c",
                "line-width": ["interpolate", ["linear"], ["zoom"], 10, 0.5, 16, 2.5]
            }
        }),
        json!({
            "id": "outlines-line", "type": "line", "source": "gridmap", "source-layer": "outlines",
            "paint": {
                "line-color": "#5b3a8c",
                "line-width": ["match", ["get", "level"], "county", 1.5, "subdistrict", 1.2, 0.8]
            }
        }),
        json!({
            "id": "outlines-label", "type": "symbol", "source": "gridmap", "source-layer": "outlines", "minzoom": 5,
            "layout": {
                "text-field": ["format", ["coalesce", ["get", "name"], ""], {}, "\n", {},
                               ["concat", ["to-string", ["get", "grids"]], " 网格"], { "font-scale": 0.8 }],
                "text-font": text_font,
                "text-size": 11,
                "text-max-width": 8
            },
            "paint": { "text-color": "#2d1b4e", "text-halo-color": "#ffffff", "text-halo-width": 1.5 }
        }),
        json!({
            "id": "grid-labels", "type": "symbol", "source": "gridmap", "source-layer": "grid_labels", "minzoom": 13,
            "layout": {
                "text-field": ["format", ["get", "name"], {}, "\n", {},
                               ["concat", ["to-string", ["get", "households"]], " 户"], { "font-scale": 0.8 }],
                "text-font": text_font,
                "text-size": ["interpolate", ["linear"], ["zoom"], 13, 10, 17, 14],
                "text-anchor": "center",
                "text-justify": "center",
                "text-max-width": 8
            },
            "paint": { "text-color": "#2d1b4e", "text-halo-color": "#ffffff", "text-halo-width": 1.5 }
        }),
        // Open reports red, in hand amber, done green (closed and verified).
        json!({
            "id": "reports", "type": "circle", "source": "reports", "source-layer": "reports", "minzoom": 14,
            "paint": {
                "circle-color": ["match", ["get", "status"],
                    ["submitted", "accepted", "rework"], "#c0392b",
                    ["dispatched", "handling", "feedback", "parked"], "#e6a100",
                    "#2e8b57"],
                "circle-radius": ["interpolate", ["linear"], ["zoom"], 14, 3, 18, 6],
                "circle-stroke-color": "#ffffff",
                "circle-stroke-width": 1
            }
        }),
        json!({
            "id": "stations", "type": "circle", "source": "gridmap", "source-layer": "stations",
            "paint": {
                "circle-color": "#e4572e",
                "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 3, 16, 8],
                "circle-stroke-color": "#ffffff",
                "circle-stroke-width": 1.5
            }
        }),
        json!({
            "id": "stations-label", "type": "symbol", "source": "gridmap", "source-layer": "stations", "minzoom": 14,
            "layout": {
                "text-field": ["get", "name"],
                "text-font": text_font,
                "text-size": 12,
                "text-anchor": "top",
                "text-offset": [0, 0.9],
                "text-optional": true
            },
            "paint": { "text-color": "#9c2f12", "text-halo-color": "#ffffff", "text-halo-width": 1.5 }
        }),
    ]);
    json!({
        "version": 8,
        "name": "gridmap",
        "metadata": { "gridmap:offline": true },
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
