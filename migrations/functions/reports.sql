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

-- Intake's statement (server/src/reports/commit.rs): grid and workers, the report rows and their
-- history rows, for one report or a group commit's batch. The arguments are arrays, one element
-- per report; each stored row comes back with its position (`ord`, from 1); a row whose key
-- already existed does not come back.
--
-- A function so that its plan is made once per session: sent as a statement, PostgreSQL planned
-- it again on every call (its arrays, seen as constants, always made a custom plan look cheaper
-- than the generic one), and planning cost it as much as running it — 0.80 ms of its 1.94 ms per
-- call at ×100 (pg_stat_statements with track_planning, bench/intake_statements.sh; bench/
-- RESULTS.md). `plan_cache_mode = force_generic_plan` holds only while the function runs. Its
-- generic plan reads grid, community, grid_assignment and account by primary key or index
-- (explain at ×100), the same as the custom plans did.
create or replace function gridmap_intake_reports(
    categories text[],
    descriptions text[],
    lons float8[],
    lats float8[],
    input_lons float8[],
    input_lats float8[],
    input_crss text[],
    accuracies float8[],
    suspects bool[],
    grid_ids int8[],
    assignments text[],
    subdistrict_ids int8[],
    reporter_ids int8[],
    idempotency_keys uuid[],
    payload_hashes bytea[],
    photo_counts int4[],
    created_ats timestamptz[],
    partials jsonb[],
    duplicate_lists jsonb[],
    actors text[],
    index_generations int8[])
returns table (ord bigint, id bigint, grid_id bigint, response text)
language plpgsql
set plan_cache_mode = force_generic_plan as $$
#variable_conflict use_column
begin
    return query
    with gen as (select gridmap_index_generation((select generation from grid_index_generation)) as generation),
    given as (
        select *
          from unnest(categories, descriptions, lons, lats, input_lons, input_lats, input_crss,
                      accuracies, suspects, grid_ids, assignments, subdistrict_ids, reporter_ids, idempotency_keys,
                      payload_hashes, photo_counts, created_ats, partials, duplicate_lists, actors, index_generations)
               with ordinality as given(category, description, lon, lat, input_lon, input_lat, input_crs, accuracy_m,
                                        location_suspect, grid_id, assignment, subdistrict_id, reporter_id,
                                        idempotency_key, payload_hash, photo_count, created_at, partial, dups, actor,
                                        index_generation, ord)
    ),
    -- A report assigned from an index older than the grids is assigned again here, by the same
    -- rules in SQL (migration 0012: this statement's snapshot is as new as the generation).
    -- `offset 0` keeps the lateral's condition inside it, where PostgreSQL tests it once per row
    -- before calling (a one-time filter); flattened, it became a join filter applied after
    -- calling the function for every row (measured: all of them assigned twice).
    checked as (
        select given.*, given.index_generation is not distinct from gen.generation as fresh from given, gen
    ),
    assigned as (
        select c.category, c.description, c.lon, c.lat, c.input_lon, c.input_lat, c.input_crs, c.accuracy_m,
               c.location_suspect,
               case when c.fresh then c.grid_id else again.grid_id end as grid_id,
               case when c.fresh then c.assignment else again.assignment end as assignment,
               case when c.fresh then c.subdistrict_id else again.subdistrict_id end as subdistrict_id,
               c.reporter_id, c.idempotency_key, c.payload_hash, c.photo_count, c.created_at, c.partial, c.dups,
               c.actor, c.ord
          from checked c
          left join lateral (select a.* from gridmap_report_assignment(ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326)) a
                              where not c.fresh offset 0) again on true
    ),
    -- The grid's few assignments drive, one account lookup each (`offset 0` keeps the planner from
    -- flattening the lateral): a plain join's generic plan on a freshly seeded database read every
    -- account and probed grid_assignment once per account (most of PostgreSQL's time in
    -- bench/reports.sh before this shape).
    placed as (
        select assigned.*, nextval(pg_get_serial_sequence('report', 'id')) as id, g.id as gid, g.code, g.name,
               coalesce(c.subdistrict_id, assigned.subdistrict_id) as sd,
               (select coalesce(jsonb_agg(jsonb_build_object('display_name', coalesce(a.display_name, '网格员'))
                                          order by a.id), '[]'::jsonb)
                  from grid_assignment ga
                  cross join lateral (select a.id, a.display_name from account a
                                       where a.id = ga.account_id and a.role = 'grid_worker' and not a.disabled
                                      offset 0) a
                 where ga.grid_id = assigned.grid_id) as workers
          from assigned left join grid g on g.id = assigned.grid_id left join community c on c.id = g.community_id
    ),
    ins as (
        insert into report (id, category, description, geom, input_lon, input_lat, input_crs, accuracy_m,
                            location_suspect, grid_id, assignment, subdistrict_id, reporter_id, idempotency_key,
                            payload_hash, photo_count, created_at, updated_at, response)
        select placed.id, placed.category, placed.description, ST_SetSRID(ST_MakePoint(placed.lon, placed.lat), 4326), placed.input_lon,
               placed.input_lat, placed.input_crs, placed.accuracy_m, placed.location_suspect, placed.gid, placed.assignment, placed.sd,
               placed.reporter_id, placed.idempotency_key, placed.payload_hash, placed.photo_count, placed.created_at, placed.created_at,
               placed.partial || jsonb_build_object('id', placed.id, 'assignment', placed.assignment, 'grid_id', placed.gid, 'grid_code', placed.code, 'grid_name', placed.name,
                                               'subdistrict_id', placed.sd, 'assigned_workers', placed.workers,
                                               'possible_duplicates', placed.dups)
          from placed
         order by placed.idempotency_key
        on conflict on constraint report_idempotency_key_key do nothing
        returning id, grid_id, response
    ),
    ev as (
        insert into report_event (report_id, action, to_status, actor_id, actor, grid_id, created_at)
        select ins.id, 'submit', 'submitted', placed.reporter_id, placed.actor, ins.grid_id, placed.created_at
          from ins join placed on placed.id = ins.id
    )
    select placed.ord, ins.id, ins.grid_id, ins.response::text from ins join placed on placed.id = ins.id;
end $$;
