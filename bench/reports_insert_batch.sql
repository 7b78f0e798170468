-- The server's batched intake statement (server/src/reports/commit.rs, BATCH_SQL) for pgbench:
-- :rows reports in one statement and one commit, as the group committer writes them when that
-- many arrive together. bench/reports.sh sets :rows to the server's mean batch in the same run
-- (from /metrics), so this is the floor for what gridmap actually sends. Like the per-report
-- floor (reports_insert.sql): random points in the dense box, the grid from gridmap_grid_at
-- (pgbench has no in-memory index), the same fixed 20-entry duplicate list per report.
-- Like the server, the statement holds the grid index lock and reads the generation
-- (migration 0012); every row here is assigned in SQL anyway.
with gen as (select gridmap_index_generation((select generation from grid_index_generation)) as generation),
u as (
    select i as ord, 'exposed_garbage'::text as category, 'pgbench'::text as description,
           118.15 + random() * 0.04 as lon, 36.16 + random() * 0.04 as lat
      from generate_series(1, :rows) i
),
g0 as (select u.*, gridmap_grid_at(ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)) as grid_id from u, gen),
x as (
    select g0.*, nextval(pg_get_serial_sequence('report', 'id')) as id, g.id as gid, g.code, g.name,
           c.subdistrict_id as sd,
           '[{"id": 1000001, "status": "submitted", "created_at": "2026-11-29T05:00:00.000037+00:00", "distance_m": 12}, {"id": 1000002, "status": "submitted", "created_at": "2026-11-29T05:00:00.000074+00:00", "distance_m": 24}, {"id": 1000003, "status": "submitted", "created_at": "2026-11-29T05:00:00.000111+00:00", "distance_m": 36}, {"id": 1000004, "status": "submitted", "created_at": "2026-11-29T05:00:00.000148+00:00", "distance_m": 48}, {"id": 1000005, "status": "submitted", "created_at": "2026-11-29T05:00:00.000185+00:00", "distance_m": 60}, {"id": 1000006, "status": "submitted", "created_at": "2026-11-29T05:00:00.000222+00:00", "distance_m": 72}, {"id": 1000007, "status": "submitted", "created_at": "2026-11-29T05:00:00.000259+00:00", "distance_m": 84}, {"id": 1000008, "status": "submitted", "created_at": "2026-11-29T05:00:00.000296+00:00", "distance_m": 96}, {"id": 1000009, "status": "submitted", "created_at": "2026-11-29T05:00:00.000333+00:00", "distance_m": 108}, {"id": 1000010, "status": "submitted", "created_at": "2026-11-29T05:00:00.000370+00:00", "distance_m": 120}, {"id": 1000011, "status": "submitted", "created_at": "2026-11-29T05:00:00.000407+00:00", "distance_m": 132}, {"id": 1000012, "status": "submitted", "created_at": "2026-11-29T05:00:00.000444+00:00", "distance_m": 144}, {"id": 1000013, "status": "submitted", "created_at": "2026-11-29T05:00:00.000481+00:00", "distance_m": 156}, {"id": 1000014, "status": "submitted", "created_at": "2026-11-29T05:00:00.000518+00:00", "distance_m": 168}, {"id": 1000015, "status": "submitted", "created_at": "2026-11-29T05:00:00.000555+00:00", "distance_m": 180}, {"id": 1000016, "status": "submitted", "created_at": "2026-11-29T05:00:00.000592+00:00", "distance_m": 192}, {"id": 1000017, "status": "submitted", "created_at": "2026-11-29T05:00:00.000629+00:00", "distance_m": 204}, {"id": 1000018, "status": "submitted", "created_at": "2026-11-29T05:00:00.000666+00:00", "distance_m": 216}, {"id": 1000019, "status": "submitted", "created_at": "2026-11-29T05:00:00.000703+00:00", "distance_m": 228}, {"id": 1000020, "status": "submitted", "created_at": "2026-11-29T05:00:00.000740+00:00", "distance_m": 240}]'::jsonb as dups,
           (select coalesce(jsonb_agg(jsonb_build_object('display_name', coalesce(a.display_name, a.name))
                                      order by a.id), '[]'::jsonb)
              from grid_assignment ga
              cross join lateral (select a.id, a.display_name, a.name from account a
                                   where a.id = ga.account_id and a.role = 'grid_worker' and not a.disabled
                                  offset 0) a
             where ga.grid_id = g0.grid_id) as workers
      from g0 left join grid g on g.id = g0.grid_id left join community c on c.id = g.community_id
),
ins as (
    insert into report (id, category, description, geom, input_lon, input_lat, input_crs, accuracy_m,
                        location_suspect, grid_id, assignment, subdistrict_id, reporter_id, idempotency_key,
                        payload_hash, photo_count, created_at, updated_at, response)
    select x.id, x.category, x.description, ST_SetSRID(ST_MakePoint(x.lon, x.lat), 4326), x.lon, x.lat,
           'wgs84', 10, false, x.gid, 'covers', x.sd, null, gen_random_uuid(), sha256('x'::bytea), 0, now(), now(),
           '{"status": "submitted"}'::jsonb || jsonb_build_object('id', x.id, 'grid_id', x.gid, 'grid_code', x.code,
               'grid_name', x.name, 'subdistrict_id', x.sd, 'assigned_workers', x.workers, 'possible_duplicates', x.dups)
      from x
    on conflict on constraint report_idempotency_key_key do nothing
    returning id, grid_id
),
ev as (
    insert into report_event (report_id, action, to_status, actor, grid_id)
    select ins.id, 'submit', 'submitted', 'pgbench', ins.grid_id from ins
)
select count(*) from ins;
