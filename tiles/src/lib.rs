//! Tile math, MVT layer SQL and the tile cache. No HTTP here: the server crate owns the edge.
