//! OGC API – Features (Parts 1, 3 and 4) over the public tables, and the planners' grid editing
//! that keeps the 267 grids a partition. No HTTP here: handlers in `http::ogc` and `http::grids`
//! turn these results and [`Error`]s into responses.
//!
//! Every column that reaches SQL is taken from the static allow-list in [`collections`]; every
//! value a client sends is bound as a parameter.

pub mod collections;
pub mod cql;
pub mod edit;
pub mod features;
pub mod grid_ops;

pub use collections::{Collection, Kind, PropType, Property};

/// What went wrong, phrased for the client; the HTTP edge maps each variant to a status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// The `If-Match` ETag is not the feature's current one.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The write names no version to check against (no `If-Match`, and no exception applies).
    #[error("{0}")]
    PreconditionRequired(String),
    #[error("{message}")]
    Unprocessable { message: String, details: serde_json::Value },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Error {
    pub fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn unprocessable(message: impl Into<String>, details: serde_json::Value) -> Self {
        Self::Unprocessable { message: message.into(), details }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a committed write touched: the tile cache and the report re-assignment need the area,
/// the in-memory grid index needs to know whether grids changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Changed {
    /// Bounding box (EPSG:4326) of the old and new geometries together.
    pub bbox: Option<[f64; 4]>,
    /// Grids whose geometry or attributes changed (created, updated, clipped, deleted).
    pub grid_ids: Vec<i64>,
    /// Which collection was written.
    pub kind: Option<Kind>,
}

impl Changed {
    pub fn extend_bbox(&mut self, other: Option<[f64; 4]>) {
        self.bbox = match (self.bbox, other) {
            (Some(a), Some(b)) => Some([a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]),
            (a, b) => a.or(b),
        };
    }
}
