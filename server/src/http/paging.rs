//! Offsets of every paged list (`GET /api/reports`, OGC items, Open311 requests) are checked
//! here, once: an integer from 0 to [`MAX_OFFSET`], else a 400 naming `offset`. A bound keeps
//! `offset + limit` far from overflow (a wrapped sum gave a negative `next` offset) and keeps
//! PostgreSQL from skipping an absurd number of rows for one request; ten million is more rows
//! than any collection here holds, so a client paging through all of them never meets it.

use super::error::ApiError;

/// Largest offset accepted.
pub const MAX_OFFSET: i64 = 10_000_000;

/// An offset from a typed query (`None` → 0).
pub fn offset(value: Option<i64>) -> Result<i64, ApiError> {
    let n = value.unwrap_or(0);
    if (0..=MAX_OFFSET).contains(&n) { Ok(n) } else { Err(out_of_range()) }
}

/// An offset from raw query text.
pub fn parse_offset(text: &str) -> Result<i64, ApiError> {
    offset(Some(text.trim().parse().map_err(|_| out_of_range())?))
}

/// The offset of the next page, if rows remain after `returned` rows from `offset`.
pub fn next_offset(offset: i64, returned: i64, total: i64) -> Option<i64> {
    offset.checked_add(returned).filter(|next| *next < total)
}

fn out_of_range() -> ApiError {
    ApiError::field("offset", format!("must be an integer from 0 to {MAX_OFFSET}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_bounded_and_the_next_offset_never_wraps() {
        assert_eq!(offset(None).ok(), Some(0));
        assert_eq!(parse_offset("10000000").ok(), Some(MAX_OFFSET));
        for bad in ["-1", "10000001", "9223372036854775807", "99999999999999999999", "x", ""] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
        assert_eq!(next_offset(i64::MAX, 500, i64::MAX), None, "no wrap to a negative offset");
        assert_eq!(next_offset(0, 50, 120), Some(50));
        assert_eq!(next_offset(100, 20, 120), None);
    }
}
