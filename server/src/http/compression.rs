//! Compression of the answers the handlers build (JSON, GeoJSON, XML, HTML pages of the API):
//! brotli or gzip, whichever the client prefers, for bodies over 1 KiB.
//!
//! Why: a page of 100 buildings from `/ogc/collections/buildings/items` is ~60 KB of GeoJSON and
//! ~9 KB in brotli; the style the web map needs before it draws anything shrinks ~6×. On a
//! rider's 1.6 Mbit/s that is the difference between waiting and not (bench/web.sh).
//!
//! Left alone:
//! - anything already coded: tiles (gridmap compresses them once and caches the bytes, with one
//!   ETag per coding, `http/tiles.rs`) and the web map's files (precompressed by build.mjs);
//! - images and the live feed's `text/event-stream` (tower-http's default predicate);
//! - **answers with an ETag** (a single report, a feature, a grid write). Those tags are strong
//!   and the client sends them back in `If-Match`, where only a strong tag may match (RFC 9110
//!   §13.1.1): compressing would make the bytes differ per coding under one strong tag, and
//!   weakening the tag, as nginx does, would make every later `If-Match` fail. They are single
//!   features of a few KB; the pages of many features carry no ETag and are compressed.

use axum::http::{Response, header};
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

/// Compress when tower-http's default says so (not images, not event streams, not already
/// coded), the body is over 1 KiB, and the response has no ETag.
#[derive(Clone, Copy, Debug, Default)]
pub struct Compressible;

impl Predicate for Compressible {
    fn should_compress<B>(&self, response: &Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        !response.headers().contains_key(header::ETAG)
            && DefaultPredicate::new().should_compress(response)
            && SizeAbove::new(1024).should_compress(response)
    }
}

/// The layer, for `http::app`. Level 4 for both codings (tiles use brotli 5, once per cached tile):
/// brotli's top quality 11 costs tens of milliseconds per 60 KB of GeoJSON, which a busy server
/// should not spend on every request; 4 keeps most of the saving at a fraction of the CPU.
pub fn layer() -> CompressionLayer<Compressible> {
    CompressionLayer::new().br(true).gzip(true).quality(CompressionLevel::Precise(4)).compress_when(Compressible)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn response(content_type: &str, len: usize, etag: bool) -> Response<Body> {
        let mut r = Response::builder().header(header::CONTENT_TYPE, content_type);
        if etag {
            r = r.header(header::ETAG, "\"7\"");
        }
        r.header(header::CONTENT_LENGTH, len).body(Body::from(vec![b'x'; len])).expect("a response")
    }

    #[test]
    fn json_pages_are_compressed_and_tagged_or_tiny_or_streamed_answers_are_not() {
        assert!(Compressible.should_compress(&response("application/geo+json", 60_000, false)));
        assert!(Compressible.should_compress(&response("application/xml", 4_000, false)));
        assert!(!Compressible.should_compress(&response("application/geo+json", 60_000, true)));
        assert!(!Compressible.should_compress(&response("application/json", 200, false)));
        assert!(!Compressible.should_compress(&response("text/event-stream", 60_000, false)));
        assert!(!Compressible.should_compress(&response("image/jpeg", 60_000, false)));
    }
}
