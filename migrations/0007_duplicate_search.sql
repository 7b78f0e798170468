-- Possible duplicates of a new report are the nearest open reports of its category within the
-- category's radius, at most 20 (reports/intake.rs). Searched nearest-first on this index (KNN,
-- `<->` in EPSG:3857; Web Mercator is conformal, so its distance order is the true one over a
-- few hundred metres), then the radius is checked geodesically on those 20: about 20 index
-- entries are read however many reports lie around the spot. Measuring the geodesic distance of
-- every report in the radius, as before, cost 4–5 ms of PostgreSQL CPU per report once a few
-- hundred open reports were within 250 m (bench/reports.sh's dense box).
create index report_open_geom_3857_idx on report using gist (geom_3857) where status not in ('cancelled', 'closed');

-- A function, so its plan can be pinned: on a young table (no statistics yet, or just after a
-- TRUNCATE) the planner prefers reading every report and sorting them, and connections keep
-- that plan while the table grows (measured: 505 → 150 inserts/s within 30 s of a fresh
-- database). With sequential and bitmap scans and sorts priced out, the only plan left is the
-- nearest-first index scan, which is the right one at any size.
create function gridmap_possible_duplicates(p_category text, p_lon float8, p_lat float8, p_radius_m float8)
returns jsonb
language plpgsql stable
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
declare
    result jsonb;
begin
    select coalesce(jsonb_agg(d order by d.distance_m, d.id), '[]'::jsonb) into result
      from (select c.id, c.status, c.created_at,
                   round(ST_Distance(c.geom::geography, ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326)::geography))::integer as distance_m
              from (select r.id, r.status, r.created_at, r.geom
                      from report r
                     where r.category = p_category and r.status not in ('cancelled', 'closed')
                     order by r.geom_3857 <-> ST_Transform(ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326), 3857)
                     limit 20) c
             where ST_DWithin(c.geom::geography, ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326)::geography, p_radius_m)) d;
    return result;
end $$;
