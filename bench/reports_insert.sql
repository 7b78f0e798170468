-- The intake's INSERT statement (server/src/reports/intake.rs, INSERT_SQL) for pgbench: the same
-- duplicate search, grid/worker lookup, report row and history row in one statement. pgbench
-- has no in-memory index, so the grid comes from gridmap_grid_at (that costs the floor a little).
\set x random(118150000, 118190000)
\set y random(36160000, 36200000)
with p as (select ST_SetSRID(ST_MakePoint(:x / 1e6, :y / 1e6), 4326) as g),
dups as (select gridmap_possible_duplicates('exposed_garbage', :x / 1e6, :y / 1e6, 250) as list),
g as (select g.id, g.code, g.name, c.subdistrict_id from grid g left join community c on c.id = g.community_id, p
       where g.id = gridmap_grid_at(p.g)),
workers as (
    select coalesce(jsonb_agg(jsonb_build_object('display_name', coalesce(a.display_name, a.name)) order by a.id), '[]'::jsonb) as list
      from g join grid_assignment ga on ga.grid_id = g.id
      cross join lateral (select a.id, a.display_name, a.name from account a
                           where a.id = ga.account_id and a.role = 'grid_worker' and not a.disabled offset 0) a
),
new as (select nextval(pg_get_serial_sequence('report', 'id')) as id),
ins as (
    insert into report (id, category, description, geom, input_lon, input_lat, input_crs, accuracy_m,
                        location_suspect, grid_id, assignment, subdistrict_id, reporter_id, idempotency_key,
                        payload_hash, photo_count, created_at, updated_at, response)
    select new.id, 'exposed_garbage', 'pgbench', p.g, :x / 1e6, :y / 1e6, 'wgs84', 10, false, g.id, 'covers',
           g.subdistrict_id, null, gen_random_uuid(), sha256('x'::bytea), 0, now(), now(),
           '{"status": "submitted"}'::jsonb || jsonb_build_object('id', new.id, 'grid_id', g.id, 'grid_code', g.code,
               'grid_name', g.name, 'assigned_workers', workers.list, 'possible_duplicates', dups.list)
      from new cross join p cross join dups cross join workers left join g on true
    on conflict on constraint report_idempotency_key_key do nothing
    returning id, grid_id
),
ev as (insert into report_event (report_id, action, to_status, actor, grid_id) select id, 'submit', 'submitted', 'pgbench', grid_id from ins)
select id from ins;
