//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): every parser that takes bytes from
//! outside, run exactly as the server runs it, minus the database. Each returns nothing; a fuzz
//! finding is a panic, a hang or a crash inside.

use std::sync::LazyLock;

use crate::geo_input::{self, Expected};
use crate::ogc::{collections, cql};
use crate::reports::Category;

/// GeoJSON import: the collection parse and the geometry checks `gridmap import` and OGC writes
/// run before PostGIS sees anything.
pub fn geojson_import(bytes: &[u8]) {
    if let Ok(features) = crate::import::parse_collection(bytes) {
        for feature in &features {
            for expected in [Expected::Point, Expected::Polygonal] {
                if let Ok(bbox) = geo_input::check(feature.geometry.as_ref(), expected) {
                    let _ = geo_input::inside_county(bbox);
                }
            }
        }
    }
}

/// CQL2 text or JSON: parse, check against every collection's allow-list, build the SQL.
pub fn cql2(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    for lang in [cql::Lang::Text, cql::Lang::Json] {
        if let Ok(expr) = cql::parse(text, lang) {
            for coll in collections::ALL {
                let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new("select 1 where ");
                let _ = cql::push_predicate(&mut qb, coll, &expr);
            }
        }
    }
}

/// A tile path `{layers}/{z}/{x}/{y}.mvt`.
pub fn tile_path(bytes: &[u8]) {
    let Ok(path) = std::str::from_utf8(bytes) else { return };
    let _ = crate::http::tiles::parse_tile_path(path);
}

static CATEGORIES: LazyLock<Vec<Category>> = LazyLock::new(|| {
    [("road_damage", true), ("illegal_construction", false)]
        .into_iter()
        .map(|(code, anonymous_allowed)| Category {
            code: code.into(),
            kind: "facility".into(),
            group_code: "roads_traffic".into(),
            group_zh: "道路交通".into(),
            group_en: "Roads & traffic".into(),
            name_zh: "道路破损".into(),
            name_en: "Damaged road".into(),
            sla_hours: 72,
            duplicate_radius_m: 250,
            anonymous_allowed,
        })
        .collect()
});

/// A report's JSON body, validated as `POST /api/reports` does (GCJ-02 conversion included).
pub fn report_body(bytes: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let _ = crate::reports::intake::validate(&value, &CATEGORIES);
    }
}

/// An uploaded photo: type sniffing and metadata stripping (hand-written container walking).
pub fn photo(bytes: &[u8]) {
    if let Ok(photo) = crate::reports::photos::check_and_strip(bytes) {
        // The stripped copy must itself be accepted: stripping twice is the same as once.
        let again = crate::reports::photos::check_and_strip(&photo.bytes).expect("a stripped photo is still a photo");
        assert_eq!(again.bytes, photo.bytes, "stripping is idempotent");
    }
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime"));

/// A multipart report upload (`report` JSON part + `photos` parts), boundary `fuzz`.
pub fn multipart(bytes: &[u8]) {
    let request = axum::http::Request::post("/api/reports")
        .header(axum::http::header::CONTENT_TYPE, "multipart/form-data; boundary=fuzz")
        .body(axum::body::Body::from(bytes.to_vec()))
        .expect("a valid request");
    let _ = RUNTIME.block_on(crate::http::reports::read_multipart(request, &CATEGORIES));
}
