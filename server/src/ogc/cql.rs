//! CQL2 (text and JSON, parsed by the `cql2` crate) → a parameterised SQL predicate.
//! The AST is walked here: property names are looked up in the collection's allow-list
//! (unknown → 400 naming the property), every literal is a bind parameter, and the size of a
//! filter is bounded before and after parsing.

use cql2::Expr;
use sqlx::{Postgres, QueryBuilder};

use super::{Collection, Error, PropType, Result};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;
/// Deepest nesting of brackets / operations.
pub const MAX_DEPTH: usize = 24;
/// Most AST nodes (operations, properties, literals) in one filter.
pub const MAX_NODES: usize = 400;
/// Deepest nesting of parentheses in a cql2-text filter. The `cql2` crate's text grammar (pest)
/// backtracks exponentially when an expression inside nested parentheses does not parse: found
/// by the `cql2` fuzz target (`p4<---((((…((0<---00`, 24 levels, ran for longer than the 10 s
/// fuzz timeout); measured on the fuzz build, the cost doubles per level — 30 ms at 10, 0.45 s at
/// 14, 3.7 s at 16. Real filters nest a few levels; 8 keeps the worst case to milliseconds.
/// Counted on the raw text, quotes ignored, so no literal can hide parentheses from this check.
pub const MAX_TEXT_PAREN_DEPTH: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Text,
    Json,
}

impl Lang {
    pub fn from_param(value: Option<&str>) -> Result<Self> {
        match value {
            // `cql-text` is the Part 3 draft's name; GDAL's OAPIF driver (to 3.7) sends only
            // that, and the comparisons, AND/OR/NOT, LIKE and IS NULL it writes are cql2-text.
            None | Some("cql2-text" | "cql-text") => Ok(Self::Text),
            Some("cql2-json") => Ok(Self::Json),
            Some(other) => {
                Err(Error::bad(format!("filter-lang `{other}` is not supported (use cql2-text or cql2-json)")))
            }
        }
    }
}

/// Parse a filter, refusing oversized or deeply nested ones before the parser sees them
/// (a recursive-descent parser must not be handed unbounded nesting).
pub fn parse(filter: &str, lang: Lang) -> Result<Expr> {
    if filter.len() > MAX_FILTER_BYTES {
        return Err(Error::bad(format!("filter is {} bytes; the limit is {MAX_FILTER_BYTES}", filter.len())));
    }
    if bracket_depth(filter) > MAX_DEPTH {
        return Err(Error::bad(format!("filter nests deeper than {MAX_DEPTH} levels")));
    }
    if lang == Lang::Text && paren_depth(filter) > MAX_TEXT_PAREN_DEPTH {
        return Err(Error::bad(format!(
            "cql2-text filter nests parentheses deeper than {MAX_TEXT_PAREN_DEPTH} levels"
        )));
    }
    let expr = match lang {
        Lang::Text => cql2::parse_text(filter).map_err(|e| Error::bad(format!("invalid cql2-text filter: {e}")))?,
        Lang::Json => cql2::parse_json(filter).map_err(|e| Error::bad(format!("invalid cql2-json filter: {e}")))?,
    };
    let nodes = count_nodes(&expr, 0)?;
    if nodes > MAX_NODES {
        return Err(Error::bad(format!("filter has {nodes} terms; the limit is {MAX_NODES}")));
    }
    Ok(expr)
}

fn bracket_depth(s: &str) -> usize {
    let (mut depth, mut max, mut quote) = (0usize, 0usize, None::<char>);
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => {
                depth += 1;
                max = max.max(depth);
            }
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Deepest run of open parentheses, literals included (see [`MAX_TEXT_PAREN_DEPTH`]).
fn paren_depth(s: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in s.bytes() {
        match b {
            b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn count_nodes(expr: &Expr, depth: usize) -> Result<usize> {
    if depth > MAX_DEPTH {
        return Err(Error::bad(format!("filter nests deeper than {MAX_DEPTH} levels")));
    }
    let children: usize = match expr {
        Expr::Operation { args, .. }
        | Expr::Array(args)
        | Expr::BBox { bbox: args }
        | Expr::Interval { interval: args } => {
            let mut n = 0;
            for a in args {
                n += count_nodes(a, depth + 1)?;
            }
            n
        }
        _ => 0,
    };
    Ok(children + 1)
}

/// Whether the filter names a property for which `wanted` holds anywhere in it.
pub fn names_property(expr: &Expr, wanted: &dyn Fn(&str) -> bool) -> bool {
    match expr {
        Expr::Property { property } => wanted(property),
        Expr::Operation { args, .. }
        | Expr::Array(args)
        | Expr::BBox { bbox: args }
        | Expr::Interval { interval: args } => args.iter().any(|a| names_property(a, wanted)),
        _ => false,
    }
}

/// The type of a value expression, for type checks before SQL sees a mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Text,
    Number,
    Bool,
    Time,
    Geometry,
    Null,
    TextArray,
}

fn compatible(a: Ty, b: Ty) -> bool {
    a == b || a == Ty::Null || b == Ty::Null
}

fn prop_ty(ty: PropType) -> Ty {
    match ty {
        PropType::Text => Ty::Text,
        PropType::Integer => Ty::Number,
        PropType::Timestamp => Ty::Time,
        PropType::TextArray => Ty::TextArray,
    }
}

/// Append `expr` (a predicate) to the query.
pub fn push_predicate(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, expr: &Expr) -> Result<()> {
    match expr {
        Expr::Bool(b) => {
            qb.push(if *b { "true" } else { "false" });
            Ok(())
        }
        Expr::Operation { op, args } => push_operation(qb, coll, op, args),
        Expr::Property { property } => Err(Error::bad(format!("property `{property}` is not a boolean predicate"))),
        _ => Err(Error::bad("the filter must be a predicate (a comparison, a spatial test, AND/OR/NOT …)")),
    }
}

fn arity(op: &str, args: &[Box<Expr>], n: usize) -> Result<()> {
    if args.len() == n { Ok(()) } else { Err(Error::bad(format!("`{op}` takes {n} arguments, got {}", args.len()))) }
}

/// One operation of a predicate: logical, comparison or spatial (Part 3's conformance classes).
fn push_operation(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, op: &str, args: &[Box<Expr>]) -> Result<()> {
    match op {
        "and" | "or" | "not" => push_logical(qb, coll, op, args),
        "=" | "<>" | "<" | "<=" | ">" | ">=" => {
            arity(op, args, 2)?;
            qb.push("(");
            let (l, r) = push_pair(qb, coll, &args[0], &args[1], op)?;
            if matches!(l, Ty::Geometry | Ty::TextArray) || matches!(r, Ty::Geometry | Ty::TextArray) {
                return Err(Error::bad(format!(
                    "`{op}` cannot compare geometries or arrays; use S_* or A_* functions"
                )));
            }
            qb.push(")");
            Ok(())
        }
        "like" => push_like(qb, coll, args),
        "between" => push_between(qb, coll, args),
        "in" => push_in(qb, coll, args),
        "isNull" => {
            arity(op, args, 1)?;
            qb.push("(");
            push_value(qb, coll, &args[0], None)?;
            qb.push(" is null)");
            Ok(())
        }
        spatial if spatial.starts_with("s_") => push_spatial(qb, coll, spatial, args),
        other => Err(Error::bad(format!("operator `{other}` is not supported by this server (see /ogc/conformance)"))),
    }
}

/// `and`, `or` (one or more predicates) and `not`.
fn push_logical(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, op: &str, args: &[Box<Expr>]) -> Result<()> {
    if op == "not" {
        arity(op, args, 1)?;
        qb.push("(not ");
        push_predicate(qb, coll, &args[0])?;
        qb.push(")");
        return Ok(());
    }
    if args.is_empty() {
        return Err(Error::bad(format!("`{op}` needs arguments")));
    }
    qb.push("(");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            qb.push(if op == "and" { " and " } else { " or " });
        }
        push_predicate(qb, coll, a)?;
    }
    qb.push(")");
    Ok(())
}

fn push_like(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, args: &[Box<Expr>]) -> Result<()> {
    arity("like", args, 2)?;
    qb.push("(");
    let l = push_value(qb, coll, &args[0], Some(Ty::Text))?;
    qb.push(" like ");
    let r = push_value(qb, coll, &args[1], Some(Ty::Text))?;
    if l != Ty::Text || r != Ty::Text {
        return Err(Error::bad("LIKE compares text with a text pattern"));
    }
    qb.push(")");
    Ok(())
}

fn push_between(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, args: &[Box<Expr>]) -> Result<()> {
    arity("between", args, 3)?;
    let hint = static_ty(coll, &args[0]);
    qb.push("(");
    let a = push_value(qb, coll, &args[0], None)?;
    qb.push(" between ");
    let b = push_value(qb, coll, &args[1], hint)?;
    qb.push(" and ");
    let c = push_value(qb, coll, &args[2], hint)?;
    if !(compatible(a, b) && compatible(a, c) && matches!(a, Ty::Number | Ty::Time | Ty::Text)) {
        return Err(Error::bad("BETWEEN needs a number, text or time and two bounds of the same type"));
    }
    qb.push(")");
    Ok(())
}

/// `x IN (…)`; an empty list matches nothing.
fn push_in(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, args: &[Box<Expr>]) -> Result<()> {
    arity("in", args, 2)?;
    let Expr::Array(items) = &*args[1] else {
        return Err(Error::bad("IN needs a list of values"));
    };
    if items.is_empty() {
        qb.push("false");
        return Ok(());
    }
    let hint = static_ty(coll, &args[0]);
    qb.push("(");
    let a = push_value(qb, coll, &args[0], None)?;
    qb.push(" in (");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        let t = push_value(qb, coll, item, hint)?;
        if !compatible(a, t) {
            return Err(Error::bad("IN list values must have the type of the property"));
        }
    }
    qb.push("))");
    Ok(())
}

/// `S_INTERSECTS(a, b)` and the other spatial comparisons of two geometries, as PostGIS calls.
fn push_spatial(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, op: &str, args: &[Box<Expr>]) -> Result<()> {
    arity(op, args, 2)?;
    let function = match op {
        "s_intersects" => "ST_Intersects",
        "s_equals" => "ST_Equals",
        "s_disjoint" => "ST_Disjoint",
        "s_touches" => "ST_Touches",
        "s_within" => "ST_Within",
        "s_overlaps" => "ST_Overlaps",
        "s_crosses" => "ST_Crosses",
        "s_contains" => "ST_Contains",
        other => return Err(Error::bad(format!("spatial operator `{other}` is not supported"))),
    };
    qb.push(function).push("(");
    let a = push_value(qb, coll, &args[0], None)?;
    qb.push(", ");
    let b = push_value(qb, coll, &args[1], None)?;
    qb.push(")");
    if a != Ty::Geometry || b != Ty::Geometry {
        return Err(Error::bad(format!("`{op}` compares two geometries")));
    }
    Ok(())
}

/// Push `a <op> b`, giving each literal the other side's type so that `updated_at > '2026-01-01'`
/// binds a timestamp; returns both types after checking they are comparable.
fn push_pair(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, a: &Expr, b: &Expr, op: &str) -> Result<(Ty, Ty)> {
    let (ha, hb) = (static_ty(coll, b), static_ty(coll, a));
    let l = push_value(qb, coll, a, ha)?;
    qb.push(" ").push(op).push(" ");
    let r = push_value(qb, coll, b, hb)?;
    if !compatible(l, r) {
        return Err(Error::bad(format!("`{op}` compares values of different types ({l:?} and {r:?})")));
    }
    Ok((l, r))
}

fn static_ty(coll: &Collection, expr: &Expr) -> Option<Ty> {
    match expr {
        Expr::Property { property } => match property.as_str() {
            "id" => Some(Ty::Number),
            "geometry" => Some(Ty::Geometry),
            name => coll.property(name).map(|p| prop_ty(p.ty)),
        },
        Expr::Float(_) => Some(Ty::Number),
        Expr::Literal(_) => Some(Ty::Text),
        Expr::Bool(_) => Some(Ty::Bool),
        Expr::Timestamp { .. } | Expr::Date { .. } => Some(Ty::Time),
        Expr::Geometry(_) | Expr::BBox { .. } => Some(Ty::Geometry),
        Expr::Operation { op, .. } if op == "casei" => Some(Ty::Text),
        _ => None,
    }
}

fn literal_text(expr: &Expr) -> Result<&str> {
    match expr {
        Expr::Literal(s) => Ok(s),
        _ => Err(Error::bad("TIMESTAMP()/DATE() take a string")),
    }
}

/// Append a value expression; returns its type. `hint` is the type of the other operand.
fn push_value(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, expr: &Expr, hint: Option<Ty>) -> Result<Ty> {
    Ok(match expr {
        Expr::Property { property } => push_property(qb, coll, property)?,
        Expr::Float(f) => {
            if !f.is_finite() {
                return Err(Error::bad("numbers must be finite"));
            }
            qb.push("(").push_bind(*f).push("::float8)");
            Ty::Number
        }
        Expr::Literal(s) if hint == Some(Ty::Time) => {
            qb.push("(").push_bind(s.clone()).push("::timestamptz)");
            Ty::Time
        }
        Expr::Literal(s) => {
            qb.push("(").push_bind(s.clone()).push("::text)");
            Ty::Text
        }
        Expr::Bool(b) => {
            qb.push("(").push_bind(*b).push("::boolean)");
            Ty::Bool
        }
        Expr::Timestamp { timestamp } => {
            qb.push("(").push_bind(literal_text(timestamp)?.to_string()).push("::timestamptz)");
            Ty::Time
        }
        Expr::Date { date } => {
            qb.push("(").push_bind(literal_text(date)?.to_string()).push("::date)");
            Ty::Time
        }
        Expr::Geometry(g) => {
            let wkt = g.to_wkt().map_err(|e| Error::bad(format!("invalid geometry in filter: {e}")))?;
            qb.push("ST_GeomFromText(").push_bind(wkt).push(", 4326)");
            Ty::Geometry
        }
        Expr::BBox { bbox } => push_bbox(qb, bbox)?,
        Expr::Null => {
            qb.push("null");
            Ty::Null
        }
        Expr::Operation { op, args } if op == "casei" => {
            arity(op, args, 1)?;
            qb.push("lower(");
            let t = push_value(qb, coll, &args[0], Some(Ty::Text))?;
            qb.push(")");
            if t != Ty::Text {
                return Err(Error::bad("CASEI takes text"));
            }
            Ty::Text
        }
        Expr::Operation { op, .. } => {
            return Err(Error::bad(format!("`{op}` is not supported as a value here (see /ogc/conformance)")));
        }
        _ => return Err(Error::bad("this kind of value is not supported in filters")),
    })
}

/// A queryable property (`id`, `geometry` or a published column); an unknown one is a 400 that
/// lists the queryables.
fn push_property(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, name: &str) -> Result<Ty> {
    Ok(match name {
        "id" => {
            qb.push("id");
            Ty::Number
        }
        "geometry" => {
            qb.push("geom");
            Ty::Geometry
        }
        name => {
            let p = coll.property(name).ok_or_else(|| {
                Error::bad(format!(
                    "unknown property `{name}` in filter; the queryables of `{}` are: id, geometry, {}",
                    coll.id,
                    coll.property_names()
                ))
            })?;
            qb.push(p.column);
            prop_ty(p.ty)
        }
    })
}

/// `BBOX(x0, y0, x1, y1)` (or with two heights, which are dropped) as a CRS84 envelope.
fn push_bbox(qb: &mut QueryBuilder<'_, Postgres>, bbox: &[Box<Expr>]) -> Result<Ty> {
    let nums: Vec<f64> = bbox
        .iter()
        .map(|b| match **b {
            Expr::Float(f) if f.is_finite() => Ok(f),
            _ => Err(Error::bad("BBOX takes numbers")),
        })
        .collect::<Result<_>>()?;
    let [x0, y0, x1, y1] = match nums.as_slice() {
        [x0, y0, x1, y1] | [x0, y0, _, x1, y1, _] => [*x0, *y0, *x1, *y1],
        _ => return Err(Error::bad("BBOX takes 4 (or 6) numbers")),
    };
    push_envelope(qb, [x0, y0, x1, y1]);
    Ok(Ty::Geometry)
}

/// `ST_MakeEnvelope(x0, y0, x1, y1, 4326)` with the corners bound (a filter's `BBOX`, the
/// `bbox` parameter).
pub(super) fn push_envelope(qb: &mut QueryBuilder<'_, Postgres>, [x0, y0, x1, y1]: [f64; 4]) {
    qb.push("ST_MakeEnvelope(")
        .push_bind(x0)
        .push(", ")
        .push_bind(y0)
        .push(", ")
        .push_bind(x1)
        .push(", ")
        .push_bind(y1)
        .push(", 4326)");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogc::collections::GRIDS;

    #[test]
    fn nested_parentheses_that_make_the_text_parser_backtrack_are_refused_first() {
        // The input the cql2 fuzz target found (it never finished within the 10 s timeout).
        let found = "p4<---((((((((((((((((((((((((0<---00";
        let err = parse(found, Lang::Text).expect_err("refused");
        assert!(err.to_string().contains("parentheses deeper than 8"), "{err}");
        let hidden = format!("name = '{}'", "(".repeat(9));
        assert!(parse(&hidden, Lang::Text).is_err(), "a literal cannot hide the parentheses");
        // Eight levels of a real filter still parse.
        let ok = format!("{}households > 300{}", "(".repeat(8), ")".repeat(8));
        assert!(parse(&ok, Lang::Text).is_ok());
    }

    fn sql(filter: &str, lang: Lang) -> Result<String> {
        let expr = parse(filter, lang)?;
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_predicate(&mut qb, &GRIDS, &expr)?;
        Ok(qb.sql().to_string())
    }

    #[test]
    fn values_become_parameters_never_sql_text() {
        let s = sql("code = 'x''; drop table grid; --' and households > 200", Lang::Text).expect("parses");
        assert!(!s.contains("drop"), "{s}");
        assert!(s.contains("code = ($1::text)") && s.contains("households > ($2::float8)"), "{s}");
    }

    #[test]
    fn unknown_property_is_named() {
        let err = sql("leader_phone = '1'", Lang::Text).expect_err("private column");
        assert!(err.to_string().contains("`leader_phone`"), "{err}");
    }

    #[test]
    fn json_and_text_give_the_same_sql() {
        let t = sql("code IN ('A','B') AND NOT (name LIKE 'x%')", Lang::Text).expect("text");
        let j = sql(
            r#"{"op":"and","args":[{"op":"in","args":[{"property":"code"},["A","B"]]},{"op":"not","args":[{"op":"like","args":[{"property":"name"},"x%"]}]}]}"#,
            Lang::Json,
        )
        .expect("json");
        assert_eq!(t, j);
    }

    #[test]
    fn type_mismatch_and_deep_nesting_are_400() {
        assert!(sql("households = 'many'", Lang::Text).is_err());
        let deep = format!("{}code = 'a'{}", "(".repeat(40), ")".repeat(40));
        assert!(sql(&deep, Lang::Text).expect_err("too deep").to_string().contains("deeper"));
    }

    #[test]
    fn filters_over_16_kib_or_400_terms_are_refused_with_the_limit_named() {
        let long = format!("code = '{}'", "a".repeat(MAX_FILTER_BYTES));
        assert!(parse(&long, Lang::Text).expect_err("too long").to_string().contains("16384"));
        // 201 comparisons joined by OR: 401 terms or more.
        let many = vec!["households = 1"; 201].join(" OR ");
        assert!(many.len() < MAX_FILTER_BYTES);
        assert!(parse(&many, Lang::Text).expect_err("too many").to_string().contains("terms"));
        let fine = vec!["households = 1"; 50].join(" OR ");
        assert!(parse(&fine, Lang::Text).is_ok());
    }
}
