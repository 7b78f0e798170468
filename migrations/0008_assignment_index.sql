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

-- The stored 201 body (replayed to resends) is 1–2 kB with twenty possible duplicates, so
-- PostgreSQL compresses it on every insert; lz4 does that several times faster than the default
-- pglz (measured: pglz was 2% of PostgreSQL's time under intake load).
-- A PostgreSQL built without lz4 keeps pglz.
do $$
begin
    alter table report alter column response set compression lz4;
exception when feature_not_supported then
    raise notice 'lz4 not available: report responses stay pglz-compressed';
end $$;

-- The report tile triggers skip the server's own sessions in a WHEN clause instead of inside
-- the function (migration 0006): the same rule, without a PL/pgSQL call per intake statement.
drop trigger report_tiles_insert on report;
drop trigger report_tiles_update on report;
drop trigger report_tiles_delete on report;
drop trigger report_tiles_truncate on report;
create trigger report_tiles_insert after insert on report
    referencing new table as new_rows for each statement
    when (current_setting('gridmap.report_tiles', true) is distinct from 'in_process')
    execute function gridmap_tiles_changed();
create trigger report_tiles_update after update on report
    referencing new table as new_rows old table as old_rows for each statement
    when (current_setting('gridmap.report_tiles', true) is distinct from 'in_process')
    execute function gridmap_tiles_changed();
create trigger report_tiles_delete after delete on report
    referencing old table as old_rows for each statement
    when (current_setting('gridmap.report_tiles', true) is distinct from 'in_process')
    execute function gridmap_tiles_changed();
create trigger report_tiles_truncate after truncate on report for each statement
    when (current_setting('gridmap.report_tiles', true) is distinct from 'in_process')
    execute function gridmap_tiles_changed();
