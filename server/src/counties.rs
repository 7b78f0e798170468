//! Counties (县), the level above subdistricts (migration 0028): one database holds a
//! province's counties, each with a code (the national administrative code for a real one).

use sqlx::PgPool;

/// A county as the public list shows it.
#[derive(Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CountySummary {
    pub id: i64,
    /// e.g. `370323` (Yiyuan); synthetic demo counties are `S002`…
    pub code: String,
    pub name: String,
    pub subdistricts: i64,
    pub grids: i64,
    /// Sum of the grids' resident households.
    pub households: i64,
    /// Extent of the county boundary `[min lon, min lat, max lon, max lat]` (null when none is loaded).
    pub bbox: Option<Vec<f64>>,
}

/// The id of the county with this code.
pub async fn id_by_code(pool: &PgPool, code: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("select id from county where code = $1").bind(code).fetch_optional(pool).await
}

/// Every county, by code, with its counts.
pub async fn list(pool: &PgPool) -> Result<Vec<CountySummary>, sqlx::Error> {
    sqlx::query_as(
        r"select k.id, k.code, k.name,
                 (select count(*) from subdistrict s where s.county_id = k.id) as subdistricts,
                 coalesce(g.grids, 0) as grids, coalesce(g.households, 0) as households,
                 (select array[ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)]
                    from (select ST_Extent(a.geom)::geometry e from area a where a.county_id = k.id and a.kind = 'county') b
                   where e is not null) as bbox
            from county k
            left join lateral (
                select count(*) as grids, sum(gr.households)::bigint as households
                  from subdistrict s join community c on c.subdistrict_id = s.id join grid gr on gr.community_id = c.id
                 where s.county_id = k.id) g on true
           order by k.code",
    )
    .fetch_all(pool)
    .await
}

/// A county by its code: what Open311's `jurisdiction_id` names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct County {
    pub id: i64,
    pub code: String,
    pub name: String,
}

/// The county with this code, if any.
pub async fn by_code(pool: &PgPool, code: &str) -> Result<Option<County>, sqlx::Error> {
    sqlx::query_as("select id, code, name from county where code = $1").bind(code).fetch_optional(pool).await
}

/// Whether a WGS84 point lies in the county: within intake's margin
/// ([`crate::reports::COUNTY_MARGIN_M`]) of its boundary, which is where intake accepts reports.
/// A county without a boundary loaded holds the points intake would give one of its
/// subdistricts (the containing or nearest grid's).
pub async fn holds_point(pool: &PgPool, county_id: i64, lon: f64, lat: f64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        r"with p as (select ST_SetSRID(ST_MakePoint($2, $3), 4326) as g)
          select case when exists (select 1 from area where county_id = $1 and kind = 'county')
                      then exists (select 1 from area a, p
                                    where a.county_id = $1 and a.kind = 'county' and a.geom && ST_Expand(p.g, 0.01)
                                      and (ST_Covers(a.geom, p.g) or ST_DWithin(a.geom::geography, p.g::geography, $4)))
                      else coalesce((select s.county_id = $1
                                       from p cross join lateral gridmap_report_assignment(p.g) r
                                       join subdistrict s on s.id = r.subdistrict_id), false)
                 end",
    )
    .bind(county_id)
    .bind(lon)
    .bind(lat)
    .bind(crate::reports::COUNTY_MARGIN_M)
    .fetch_one(pool)
    .await
}
