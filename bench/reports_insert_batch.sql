-- The server's batched intake statement (server/src/reports/commit.rs: gridmap_intake_reports,
-- migrations/functions/reports.sql) for pgbench: :rows reports in one statement and one commit,
-- as the group committer writes them when that many arrive together. bench/reports.sh sets :rows
-- to the server's mean batch in the same run (from /metrics), so this is the floor for what
-- gridmap actually sends. Like the per-report floor (reports_insert.sql): random points in the
-- dense box, the grid from gridmap_grid_at (pgbench has no in-memory index) passed with the
-- current index generation, as the server passes its index's answer; the same fixed 20-entry
-- duplicate list per report.
with u as (
    select 118.15 + random() * 0.04 as lon, 36.16 + random() * 0.04 as lat from generate_series(1, :rows::int)
),
a as (
    select array_agg(lon) as lons, array_agg(lat) as lats,
           array_agg(gridmap_grid_at(ST_SetSRID(ST_MakePoint(lon, lat), 4326))) as grid_ids,
           array_agg(gen_random_uuid()) as idempotency_keys
      from u
)
select count(*)
  from a, gridmap_intake_reports(
      array_fill('exposed_garbage'::text, array[:rows::int]), array_fill('pgbench'::text, array[:rows::int]),
      a.lons, a.lats, a.lons, a.lats, array_fill('wgs84'::text, array[:rows::int]),
      array_fill(10::float8, array[:rows::int]), array_fill(false, array[:rows::int]), a.grid_ids,
      array_fill('covers'::text, array[:rows::int]), array_fill(null::int8, array[:rows::int]),
      array_fill(null::int8, array[:rows::int]), a.idempotency_keys, array_fill(sha256('x'::bytea), array[:rows::int]),
      array_fill(0, array[:rows::int]), array_fill(now(), array[:rows::int]),
      array_fill('{"status": "submitted"}'::jsonb, array[:rows::int]),
      array_fill('[{"id": 1000001, "status": "submitted", "created_at": "2026-11-29T05:00:00.000037+00:00", "distance_m": 12}, {"id": 1000002, "status": "submitted", "created_at": "2026-11-29T05:00:00.000074+00:00", "distance_m": 24}, {"id": 1000003, "status": "submitted", "created_at": "2026-11-29T05:00:00.000111+00:00", "distance_m": 36}, {"id": 1000004, "status": "submitted", "created_at": "2026-11-29T05:00:00.000148+00:00", "distance_m": 48}, {"id": 1000005, "status": "submitted", "created_at": "2026-11-29T05:00:00.000185+00:00", "distance_m": 60}, {"id": 1000006, "status": "submitted", "created_at": "2026-11-29T05:00:00.000222+00:00", "distance_m": 72}, {"id": 1000007, "status": "submitted", "created_at": "2026-11-29T05:00:00.000259+00:00", "distance_m": 84}, {"id": 1000008, "status": "submitted", "created_at": "2026-11-29T05:00:00.000296+00:00", "distance_m": 96}, {"id": 1000009, "status": "submitted", "created_at": "2026-11-29T05:00:00.000333+00:00", "distance_m": 108}, {"id": 1000010, "status": "submitted", "created_at": "2026-11-29T05:00:00.000370+00:00", "distance_m": 120}, {"id": 1000011, "status": "submitted", "created_at": "2026-11-29T05:00:00.000407+00:00", "distance_m": 132}, {"id": 1000012, "status": "submitted", "created_at": "2026-11-29T05:00:00.000444+00:00", "distance_m": 144}, {"id": 1000013, "status": "submitted", "created_at": "2026-11-29T05:00:00.000481+00:00", "distance_m": 156}, {"id": 1000014, "status": "submitted", "created_at": "2026-11-29T05:00:00.000518+00:00", "distance_m": 168}, {"id": 1000015, "status": "submitted", "created_at": "2026-11-29T05:00:00.000555+00:00", "distance_m": 180}, {"id": 1000016, "status": "submitted", "created_at": "2026-11-29T05:00:00.000592+00:00", "distance_m": 192}, {"id": 1000017, "status": "submitted", "created_at": "2026-11-29T05:00:00.000629+00:00", "distance_m": 204}, {"id": 1000018, "status": "submitted", "created_at": "2026-11-29T05:00:00.000666+00:00", "distance_m": 216}, {"id": 1000019, "status": "submitted", "created_at": "2026-11-29T05:00:00.000703+00:00", "distance_m": 228}, {"id": 1000020, "status": "submitted", "created_at": "2026-11-29T05:00:00.000740+00:00", "distance_m": 240}]'::jsonb, array[:rows::int]),
      array_fill('pgbench'::text, array[:rows::int]),
      array_fill((select generation from grid_index_generation), array[:rows::int]));
