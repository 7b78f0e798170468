-- Tile cache invalidation: announce every change to a table that tiles draw.
--
-- After each statement that writes grid, building, station, road or report, pg_notify on channel
-- 'gridmap_tiles' carries the EPSG:3857 boxes of the old and new rows, so the server drops
-- exactly the cached tiles they touch — also for an operator's plain SQL or a bulk import done
-- behind the server's back. Notifications are delivered on commit (never for a rollback).
-- Payload (JSON, well under the 8,000-byte limit):
--   {"table": "grid", "boxes": [[min_x, min_y, max_x, max_y], ...]}   or   {"table": "grid", "all": true}
-- Up to 64 rows are sent box by box; a larger statement sends one box per ~2.4 km cell
-- (a z14 tile) it touched, or a single overall box when that is still more than 64.
-- A grid's tile properties also show its community's name and its number of workers, so
-- community renames and grid_assignment changes announce the grids concerned.
-- The server's own sessions (`gridmap.report_tiles = 'in_process'`) drop the report tiles they
-- touch themselves and are not announced (migrations 0006 and 0008: NOTIFY serialises commits).

create or replace function gridmap_tiles_announce(tbl text, boxes box2d[]) returns void
language plpgsql as $$
declare
    n integer := coalesce(cardinality(boxes), 0);
    payload json;
begin
    if n = 0 then
        return;
    end if;
    if n > 64 then
        -- Group by the z14-sized cell of each box's lower-left corner.
        boxes := array(
            select ST_Extent(b::geometry)::box2d
              from unnest(boxes) b
             group by floor(ST_XMin(b) / 2445.984905), floor(ST_YMin(b) / 2445.984905));
        if cardinality(boxes) > 64 then
            boxes := array(select ST_Extent(b::geometry)::box2d from unnest(boxes) b);
        end if;
    end if;
    -- Whole metres, rounded outwards, keep the payload short without shrinking any box.
    select json_build_object('table', tbl, 'boxes', json_agg(json_build_array(x0, y0, x1, y1)))
      into payload
      from (select distinct floor(ST_XMin(b)) as x0, floor(ST_YMin(b)) as y0,
                            ceil(ST_XMax(b)) as x1, ceil(ST_YMax(b)) as y1
              from unnest(boxes) b
             where b is not null) d;
    perform pg_notify('gridmap_tiles', payload::text);
end $$;

-- One trigger function for the five tile tables (all keep their tile geometry in geom_3857).
-- Each branch reads only the transition tables its operation defines. (The report triggers also
-- skip the server's sessions in their WHEN clause, migration 0008; the first test here is the
-- older form of the same rule.)
create or replace function gridmap_tiles_changed() returns trigger language plpgsql as $$
begin
    if tg_table_name = 'report' and current_setting('gridmap.report_tiles', true) = 'in_process' then
        return null;
    end if;
    if tg_op = 'TRUNCATE' then
        perform pg_notify('gridmap_tiles', json_build_object('table', tg_table_name, 'all', true)::text);
    elsif tg_op = 'INSERT' then
        perform gridmap_tiles_announce(tg_table_name, array(select box2d(geom_3857) from new_rows));
    elsif tg_op = 'UPDATE' then
        perform gridmap_tiles_announce(tg_table_name, array(
            select box2d(geom_3857) from new_rows union all select box2d(geom_3857) from old_rows));
    else
        perform gridmap_tiles_announce(tg_table_name, array(select box2d(geom_3857) from old_rows));
    end if;
    return null;
end $$;

-- Worker counts (grid_assignment) and community names are grid tile properties.
create or replace function gridmap_tiles_assignment_changed() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        perform gridmap_tiles_announce('grid', array(
            select box2d(g.geom_3857) from grid g where g.id in (select grid_id from new_rows)));
    elsif tg_op = 'UPDATE' then
        perform gridmap_tiles_announce('grid', array(
            select box2d(g.geom_3857) from grid g
             where g.id in (select grid_id from new_rows union select grid_id from old_rows)));
    else
        perform gridmap_tiles_announce('grid', array(
            select box2d(g.geom_3857) from grid g where g.id in (select grid_id from old_rows)));
    end if;
    return null;
end $$;

create or replace function gridmap_tiles_community_changed() returns trigger language plpgsql as $$
begin
    perform gridmap_tiles_announce('grid', array(
        select box2d(g.geom_3857) from grid g
          join new_rows n on n.id = g.community_id
          join old_rows o on o.id = n.id
         where n.name is distinct from o.name));
    return null;
end $$;
