-- The `reports` tile layer: reports get the same ready-for-tiles EPSG:3857 column as the other
-- tile tables, and announce their changes on 'gridmap_tiles' like them (migration 0002).
--
-- One exception keeps intake fast: NOTIFY takes a cluster-wide lock at commit, which serialises
-- every committing transaction that sent one (measured here: 1,117 → 795 report inserts/s).
-- The gridmap server drops the touched report tiles itself, in process, before it answers, so
-- its own sessions set `gridmap.report_tiles = 'in_process'` and the trigger stays silent for
-- them. Every other writer — psql, QGIS, a script — is announced as for any tile table.
-- (Caveat, documented in README: a second gridmap instance on the same database does not hear
-- the first one's report writes; its report tiles can then lag until their tiles are evicted.)

alter table report
    add column geom_3857 geometry(Point, 3857) generated always as (ST_Transform(geom, 3857)) stored;
-- Tiles never draw cancelled reports (duplicates, invalid, withdrawn).
create index report_geom_3857_idx on report using gist (geom_3857) where status <> 'cancelled';

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

create trigger report_tiles_insert after insert on report
    referencing new table as new_rows for each statement execute function gridmap_tiles_changed();
create trigger report_tiles_update after update on report
    referencing new table as new_rows old table as old_rows for each statement execute function gridmap_tiles_changed();
create trigger report_tiles_delete after delete on report
    referencing old table as old_rows for each statement execute function gridmap_tiles_changed();
create trigger report_tiles_truncate after truncate on report
    for each statement execute function gridmap_tiles_changed();
