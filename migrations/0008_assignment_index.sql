-- Rules 2 and 3 of the assignment (reports/mod.rs) on indexes. Same rules, same answers; only
-- the search changes. Measured on the demo city (bench/reports.sh's box, where about a quarter
-- of the points lie outside every grid): 2.1 ms → well under 0.1 ms of PostgreSQL CPU per
-- uncovered point, which had made PostgreSQL spend twice as long per report for the server as
-- for the pgbench floor.

-- Rule 2 casts to geography (a geodesic 150 m); without an index on that expression every
-- grid's geodesic distance was computed. ST_DWithin on geography uses this index by itself.
create index grid_geog_idx on grid using gist ((geom::geography));

create or replace function gridmap_report_assignment(p geometry, out grid_id bigint, out assignment text, out subdistrict_id bigint)
language plpgsql stable as $$
declare
    nearest float8;
begin
    grid_id := gridmap_grid_at(p);
    assignment := 'covers';
    if grid_id is null then
        select g.id into grid_id
          from grid g
         where ST_DWithin(g.geom::geography, p::geography, 150)
         order by ST_Distance(g.geom::geography, p::geography), g.id
         limit 1;
        assignment := case when grid_id is null then 'unassigned' else 'nearest' end;
    end if;
    if grid_id is null then
        -- Rule 3: the nearest grid's subdistrict, ties to the lowest id. `order by g.geom <-> p,
        -- g.id` cannot use the index (the second key makes it a full sort of every grid), so
        -- find the distance nearest-first, then the lowest id at exactly that distance.
        select g.geom <-> p into nearest from grid g order by g.geom <-> p limit 1;
        if nearest is null then
            return;
        end if;
        select g.id into grid_id
          from grid g
         where ST_DWithin(g.geom, p, nearest) and g.geom <-> p = nearest
         order by g.id limit 1;
        select c.subdistrict_id into subdistrict_id
          from grid g join community c on c.id = g.community_id where g.id = grid_id;
        grid_id := null;
    else
        select c.subdistrict_id into subdistrict_id
          from grid g join community c on c.id = g.community_id where g.id = grid_id;
    end if;
end $$;

-- Every report paid for a fourth GiST index that only the re-assignment after a grid edit could
-- use (open reports near the edited grids): `report_geom_idx` serves that rare query as well,
-- and the duplicate search has its own open-report index (migration 0007).
drop index report_open_geom_idx;
