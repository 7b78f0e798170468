-- Reports: append-only history, assignment to a grid in SQL (the in-memory index answers rule 1
-- in the server; these are the reference and the path for rules 2 and 3), and open reports
-- following a re-drawn grid.

create or replace function report_event_append_only() returns trigger language plpgsql as $$
begin
    raise exception using errcode = '42501', message = 'report history is append-only',
          constraint = 'report_event_append_only';
end $$;

-- Whether a report still needs work: every status but closed and cancelled. The duplicate search,
-- re-assignment after a grid edit and Open311's open/closed all ask this; the Rust copy is
-- `ReportStatus::is_open` (server/tests/api/open_reports.rs checks that they agree). An SQL
-- function this simple is inlined into the queries that call it.
create or replace function gridmap_report_is_open(status text) returns boolean
language sql immutable parallel safe as $$
    select status not in ('cancelled', 'closed')
$$;

-- Rules 2 and 3 of report assignment on their own (reports/mod.rs). The server answers rule 1
-- from its in-memory index, which agrees with `gridmap_grid_at` (a property test), so for a
-- point the index found in no grid it asks only for these; re-running rule 1 in SQL was a third
-- of the cost of every such report (bench/reports.sh: a quarter of its points lie in no grid).
create or replace function gridmap_nearest_assignment(p geometry, out grid_id bigint, out assignment text, out subdistrict_id bigint)
language plpgsql stable as $$
declare
    nearest float8;
begin
    -- Rule 2: the nearest grid within 150 m (geodesic), ties to the lowest id.
    select g.id into grid_id
      from grid g
     where ST_DWithin(g.geom::geography, p::geography, 150)
     order by ST_Distance(g.geom::geography, p::geography), g.id
     limit 1;
    if grid_id is not null then
        assignment := 'nearest';
        select c.subdistrict_id into subdistrict_id
          from grid g join community c on c.id = g.community_id where g.id = grid_id;
        return;
    end if;
    -- Rule 3: the nearest grid's subdistrict, ties to the lowest id. `order by g.geom <-> p,
    -- g.id` cannot use the index (the second key makes it a full sort of every grid), so find
    -- the distance nearest-first, then the lowest id at exactly that distance.
    assignment := 'unassigned';
    select g.geom <-> p into nearest from grid g order by g.geom <-> p limit 1;
    if nearest is null then
        return;
    end if;
    select c.subdistrict_id into subdistrict_id
      from grid g join community c on c.id = g.community_id
     where g.id = (select g2.id from grid g2
                    where ST_DWithin(g2.geom, p, nearest) and g2.geom <-> p = nearest
                    order by g2.id limit 1);
end $$;

-- The whole rule set for SQL callers: rule 1, the grid covering the point (the lowest id on a
-- shared edge), else rules 2 and 3 above.
create or replace function gridmap_report_assignment(p geometry, out grid_id bigint, out assignment text, out subdistrict_id bigint)
language plpgsql stable as $$
begin
    grid_id := gridmap_grid_at(p);
    if grid_id is not null then
        assignment := 'covers';
        select c.subdistrict_id into subdistrict_id
          from grid g join community c on c.id = g.community_id where g.id = grid_id;
        return;
    end if;
    select a.grid_id, a.assignment, a.subdistrict_id into grid_id, assignment, subdistrict_id
      from gridmap_nearest_assignment(p) a;
end $$;

-- The live feed (GET /api/reports/stream) tells workers about re-assigned reports too: when a
-- grid is re-drawn — through the API, an import or plain SQL — the open reports that change
-- grid are announced on `gridmap_reports_reassigned` with the range of history ids this call
-- wrote (`{"first": …, "last": …}`). NOTIFY is delivered at commit, so a server reads exactly
-- committed moves; a payload names a range, not every id, because a re-drawn district can move
-- thousands of reports and a payload holds 8,000 bytes.
create or replace function gridmap_reassign_reports(area geometry) returns integer language plpgsql as $$
declare
    moved integer := 0;
    r record;
    a record;
    event_id bigint;
    first_event bigint;
begin
    if area is null then
        return 0;
    end if;
    for r in select id, geom, grid_id, assignment, status from report
              where geom && ST_Expand(area, 0.002) and gridmap_report_is_open(status)
              for update
    loop
        a := gridmap_report_assignment(r.geom);
        if a.grid_id is distinct from r.grid_id or a.assignment <> r.assignment then
            update report set grid_id = a.grid_id, assignment = a.assignment, subdistrict_id = a.subdistrict_id,
                   version = version + 1
             where id = r.id;
            insert into report_event (report_id, action, from_status, to_status, actor, note, grid_id)
            values (r.id, 'reassign', r.status, r.status, gridmap_actor(),
                    format('grid changed: %s -> %s (%s)', coalesce(r.grid_id::text, 'none'),
                           coalesce(a.grid_id::text, 'none'), a.assignment),
                    a.grid_id)
            returning id into event_id;
            first_event := coalesce(first_event, event_id);
            moved := moved + 1;
        end if;
    end loop;
    if moved > 0 then
        perform pg_notify('gridmap_reports_reassigned',
                          json_build_object('first', first_event, 'last', event_id)::text);
    end if;
    return moved;
end $$;

-- Whichever path changes grids (the API, an import, plain SQL), open reports follow and the
-- servers' in-memory indexes are told to reload.
create or replace function grid_reports_after_insert() returns trigger language plpgsql as $$
begin
    perform gridmap_reassign_reports((select ST_SetSRID(ST_Extent(geom)::geometry, 4326) from new_rows));
    perform pg_notify('gridmap_grids_changed', '');
    return null;
end $$;

create or replace function grid_reports_after_update() returns trigger language plpgsql as $$
begin
    perform gridmap_reassign_reports((
        select ST_SetSRID(ST_Extent(g)::geometry, 4326) from (
            select n.geom as g from new_rows n join old_rows o using (id) where n.geom is distinct from o.geom
            union all
            select o.geom from new_rows n join old_rows o using (id) where n.geom is distinct from o.geom
        ) changed));
    perform pg_notify('gridmap_grids_changed', '');
    return null;
end $$;

create or replace function grid_reports_after_delete() returns trigger language plpgsql as $$
begin
    perform gridmap_reassign_reports((select ST_SetSRID(ST_Extent(geom)::geometry, 4326) from old_rows));
    perform pg_notify('gridmap_grids_changed', '');
    return null;
end $$;
