//! The household balance, the core planning metric: a grid's households against the standard of
//! about 300 per grid (DOMAIN.md), and the five classes the map colours it by.
//!
//! Computed in one place: this module renders it as SQL, and every tile path (the in-memory
//! loader, the per-tile reads, the `ST_AsMVT` reference statement) selects that SQL, so the value
//! in a tile is PostgreSQL's `numeric` rounding whichever path made it. The classes are an
//! attribute of their own (`balance_class`) because desktop clients colour by a `match` on a
//! value but not by an `interpolate` over one (QGIS 3.22's style converter drops those colours,
//! issue 25 item 8); the style and the web map's legend read the same [`CLASSES`].

use std::fmt::Write as _;

/// The grid size standard: about 300 resident households per grid.
pub const HOUSEHOLDS_PER_GRID: u32 = 300;

/// A band of households per grid, drawn in one colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceClass {
    /// The `balance_class` value in tiles.
    pub name: &'static str,
    /// The fewest households per grid in this class (the class runs up to the next one's).
    pub from_households: u32,
    /// Its fill colour (`ColorBrewer` `RdYlBu`, diverging: blue under, yellow on target, red over).
    pub colour: &'static str,
}

/// From the emptiest to the fullest; the middle one is the standard ±10% (270–329 households),
/// each other band 20% of the standard wide.
pub const CLASSES: [BalanceClass; 5] = [
    BalanceClass { name: "far_under", from_households: 0, colour: "#4575b4" },
    BalanceClass { name: "under", from_households: 210, colour: "#91bfdb" },
    BalanceClass { name: "on_target", from_households: 270, colour: "#ffffbf" },
    BalanceClass { name: "over", from_households: 330, colour: "#fc8d59" },
    BalanceClass { name: "far_over", from_households: 390, colour: "#d73027" },
];

/// `households / 300` to three decimals, as SQL over the expression `households` (an integer
/// column or aggregate). `numeric` division and rounding: the same value on every path.
pub fn sql(households: &str) -> String {
    format!("round({households} / {HOUSEHOLDS_PER_GRID}.0, 3)::float8")
}

/// The [`CLASSES`] name of `households` per grid (any number: a grid's count, or an outline's
/// mean), as SQL.
pub fn class_sql(households: &str) -> String {
    let mut sql = String::from("case");
    for class in CLASSES.iter().rev() {
        if class.from_households == 0 {
            let _ = write!(sql, " else '{}' end", class.name);
        } else {
            let _ = write!(sql, " when {households} >= {} then '{}'", class.from_households, class.name);
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_rise_from_zero_and_their_names_are_sql_safe() {
        assert_eq!(CLASSES[0].from_households, 0);
        assert!(CLASSES.windows(2).all(|w| w[0].from_households < w[1].from_households));
        assert!(CLASSES.iter().all(|c| c.name.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')));
        let on_target = CLASSES.iter().find(|c| c.name == "on_target").expect("a target class");
        assert!(on_target.from_households <= HOUSEHOLDS_PER_GRID);
    }

    #[test]
    fn the_class_sql_tests_the_fullest_band_first() {
        assert_eq!(
            class_sql("g.households"),
            "case when g.households >= 390 then 'far_over' when g.households >= 330 then 'over' \
             when g.households >= 270 then 'on_target' when g.households >= 210 then 'under' else 'far_under' end"
        );
        assert_eq!(sql("g.households"), "round(g.households / 300.0, 3)::float8");
    }
}
