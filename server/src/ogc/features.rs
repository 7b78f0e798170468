//! Reading features (Part 1 items and item, Part 3 filters). GeoJSON is assembled by PostgreSQL
//! (`ST_AsGeoJSON` + `json_build_object`), so a page is one query and no geometry is decoded here.

use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};

use super::{Collection, Error, PropType, Property, Result, cql};

/// Default and largest page size. A larger `limit` is clamped to `MAX_LIMIT` (Part 1 allows
/// either; clamping keeps naive clients working), and the `next` link continues from there.
pub const DEFAULT_LIMIT: i64 = 10;
pub const MAX_LIMIT: i64 = 1000;

/// A parsed items request.
#[derive(Debug, Default)]
pub struct ItemsQuery {
    pub limit: i64,
    pub offset: i64,
    pub bbox: Option<[f64; 4]>,
    /// `?code=LS-001`: property equality filters (raw values, parsed per type).
    pub equals: Vec<(&'static Property, String)>,
    /// `?properties=a,b`: which properties to return (None: all).
    pub properties: Option<Vec<&'static Property>>,
    pub filter: Option<cql2::Expr>,
    /// `?datetime=`: on the collection's [`Collection::temporal_column`].
    pub datetime: Option<Interval>,
}

type Utc = chrono::DateTime<chrono::Utc>;

/// A `datetime` instant or interval: each bound is a time and whether it is included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: Option<(Utc, bool)>,
    pub end: Option<(Utc, bool)>,
}

/// Part 1 §7.15.4: an RFC 3339 date-time or date, or an interval `start/end` where either side
/// may be `..` or empty (open). A date stands for its whole (UTC) day, so `2026-12-05` and
/// `../2026-12-05` include every moment of the 5th.
pub fn parse_datetime(value: &str) -> Result<Interval> {
    let bad = || {
        Error::bad(format!(
            "datetime: `{value}` is not an RFC 3339 date-time or date, or an interval start/end with `..` for an open side"
        ))
    };
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().filter(|_| s.len() == 10);
    let midnight = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let instant = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc));
    // (start of the span, end of the span, whether the end is included)
    let span = |s: &str| -> Option<(Utc, Utc, bool)> {
        if let Some(t) = instant(s) {
            return Some((t, t, true));
        }
        let d = day(s)?;
        Some((midnight(d)?, midnight(d.succ_opt()?)?, false))
    };
    let interval = match value.split_once('/') {
        None => {
            let (start, end, included) = span(value).ok_or_else(bad)?;
            Interval { start: Some((start, true)), end: Some((end, included)) }
        }
        Some((a, b)) => {
            let open = |s: &str| s.is_empty() || s == "..";
            if open(a) && open(b) {
                return Err(Error::bad("datetime: an interval needs at least one bound (`../..` matches everything)"));
            }
            let start = if open(a) { None } else { Some(span(a).ok_or_else(bad)?).map(|(s, _, _)| (s, true)) };
            let end = if open(b) { None } else { Some(span(b).ok_or_else(bad)?).map(|(_, e, inc)| (e, inc)) };
            if let (Some((s, _)), Some((e, _))) = (start, end)
                && s > e
            {
                return Err(Error::bad(format!("datetime: the interval `{value}` ends before it starts")));
            }
            Interval { start, end }
        }
    };
    Ok(interval)
}

/// One page: each feature is GeoJSON text.
#[derive(Debug)]
pub struct Page {
    pub features: Vec<String>,
    pub number_matched: i64,
}

/// The GeoJSON Feature text of each row, for the given properties.
fn push_feature_sql(qb: &mut QueryBuilder<'_, Postgres>, properties: &[&Property]) {
    qb.push(r#"'{"type":"Feature","id":' || id || ',"geometry":' || ST_AsGeoJSON(geom, 7) || ',"properties":' || json_build_object("#);
    for (i, p) in properties.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        // Both the key and the column come from the static allow-list.
        qb.push("'").push(p.name).push("', ").push(p.column);
    }
    qb.push(")::text || '}'");
}

fn push_where(qb: &mut QueryBuilder<'_, Postgres>, coll: &Collection, q: &ItemsQuery) -> Result<()> {
    qb.push(" where true");
    if let Some(bbox) = q.bbox {
        qb.push(" and ST_Intersects(geom, ");
        cql::push_envelope(qb, bbox);
        qb.push(")");
    }
    for (p, value) in &q.equals {
        qb.push(" and ");
        match p.ty {
            PropType::Text => {
                qb.push(p.column).push(" = ").push_bind(value.clone());
            }
            PropType::Integer => {
                let n: i64 =
                    value.parse().map_err(|_| Error::bad(format!("`{}` must be an integer, got `{value}`", p.name)))?;
                qb.push(p.column).push(" = ").push_bind(n);
            }
            PropType::Timestamp => {
                let t = chrono::DateTime::parse_from_rfc3339(value)
                    .map_err(|_| Error::bad(format!("`{}` must be an RFC 3339 timestamp, got `{value}`", p.name)))?;
                qb.push(p.column).push(" = ").push_bind(t.with_timezone(&chrono::Utc));
            }
            PropType::TextArray => {
                qb.push_bind(value.clone()).push(" = any(").push(p.column).push(")");
            }
        }
    }
    if let Some(Interval { start, end }) = q.datetime {
        let column = coll.temporal_column();
        if let Some((t, included)) = start {
            qb.push(" and ").push(column).push(if included { " >= " } else { " > " }).push_bind(t);
        }
        if let Some((t, included)) = end {
            qb.push(" and ").push(column).push(if included { " <= " } else { " < " }).push_bind(t);
        }
    }
    if let Some(filter) = &q.filter {
        qb.push(" and ");
        cql::push_predicate(qb, coll, filter)?;
    }
    Ok(())
}

/// One page of features and the number matched. The page's ids are chosen first, from the
/// table alone unless a filter names a joined property (`county`), and only those rows are
/// turned into GeoJSON with the joins: at ×10 (144,582 buildings) joining before paging made
/// a deep `offset` page 2.5× slower, and GeoJSON was written for every row skipped.
pub async fn items(pool: &PgPool, coll: &Collection, q: &ItemsQuery) -> Result<Page> {
    let selected: Vec<&Property> = match &q.properties {
        Some(list) => list.clone(),
        None => coll.properties.iter().collect(),
    };
    let joined = filters_joined(coll, q);
    let joins = if joined { coll.joins } else { "" };
    let mut data = QueryBuilder::<Postgres>::new("select ");
    push_feature_sql(&mut data, &selected);
    data.push(" from ").push(coll.table).push(" ").push(coll.joins);
    data.push(" join (select id from ").push(coll.table).push(" ").push(joins);
    push_where(&mut data, coll, q)?;
    // A county's rows are contiguous in id order (a county is loaded or imported at once), which
    // the planner cannot know: it walked the primary key until ten matches turned up, reading
    // every county before (154 ms for the last of ten at ×10). `id + 0` takes the index away
    // from the ordering, so the county's rows are found through the join and sorted (5 ms).
    data.push(if joined { " order by id + 0" } else { " order by id" });
    data.push(" limit ").push_bind(q.limit).push(" offset ").push_bind(q.offset);
    data.push(") page using (id) order by id");

    let mut count = QueryBuilder::<Postgres>::new("select count(*) from ");
    count.push(coll.table).push(" ").push(joins);
    push_where(&mut count, coll, q)?;

    let (features, number_matched) = tokio::try_join!(
        data.build_query_scalar::<String>().fetch_all(pool),
        count.build_query_scalar::<i64>().fetch_one(pool),
    )
    .map_err(filter_error)?;
    Ok(Page { features, number_matched })
}

/// Whether a filter names a property the collection's joins provide.
fn filters_joined(coll: &Collection, q: &ItemsQuery) -> bool {
    q.equals.iter().any(|(p, _)| p.is_joined())
        || q.filter
            .as_ref()
            .is_some_and(|f| cql::names_property(f, &|name| coll.property(name).is_some_and(Property::is_joined)))
}

/// A filter that parsed but that PostgreSQL refuses (a malformed timestamp or WKT literal) is
/// the client's mistake: 400, not 500.
fn filter_error(err: sqlx::Error) -> Error {
    if let Some(fault) = crate::constraints::client_fault(&err) {
        return Error::bad(format!("the filter has an invalid value: {}", fault.message));
    }
    if err.as_database_error().and_then(sqlx::error::DatabaseError::code).as_deref() == Some("XX000") {
        return Error::bad("the filter has an invalid value (a geometry PostGIS cannot read)".to_string());
    }
    Error::Database(err)
}

/// One feature as GeoJSON text and its ETag value.
pub async fn one(executor: impl PgExecutor<'_>, coll: &Collection, id: i64) -> Result<Option<(String, i64)>> {
    let mut qb = QueryBuilder::<Postgres>::new("select ");
    let all: Vec<&Property> = coll.properties.iter().collect();
    push_feature_sql(&mut qb, &all);
    qb.push(", ").push(coll.etag_sql).push(" from ").push(coll.table).push(" ").push(coll.joins);
    qb.push(" where id = ").push_bind(id);
    Ok(qb.build_query_as::<(String, i64)>().fetch_optional(executor).await?)
}

/// Spatial extent of a collection (EPSG:4326), for the collection metadata.
pub async fn extent(pool: &PgPool, coll: &Collection) -> Result<Option<[f64; 4]>> {
    let sql = format!(
        "select array[ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)] from (select ST_Extent(geom) e from {}) s where e is not null",
        coll.table
    );
    let row: Option<Vec<f64>> = sqlx::query_scalar(&sql).fetch_optional(pool).await?;
    Ok(row.and_then(|v| v.try_into().ok()))
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn datetime_takes_instants_dates_and_half_open_intervals_and_refuses_the_rest() {
        let i = parse_datetime("2026-12-05T08:00:00+08:00").expect("instant");
        assert_eq!(i.start, i.end);
        assert_eq!(i.start.expect("start").0.to_rfc3339(), "2026-12-05T00:00:00+00:00");
        let day = parse_datetime("2026-12-05").expect("date");
        assert_eq!(day.end.map(|(t, inc)| (t.to_rfc3339(), inc)), Some(("2026-12-06T00:00:00+00:00".into(), false)));
        let open = parse_datetime("../2026-12-05").expect("open start");
        assert!(open.start.is_none() && open.end.is_some());
        assert!(parse_datetime("2026-12-05T00:00:00Z/").expect("open end").end.is_none());
        for bad in
            ["yesterday", "2026-13-01", "2026-12-05/2026-12-01", "../..", "/", "2026-12-05T25:00:00Z", "20261205"]
        {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }
}
