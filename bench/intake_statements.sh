#!/usr/bin/env bash
# Where PostgreSQL's time goes per report (bench/RESULTS.md, "×100 intake taken apart"): a
# diagnosis, not a benchmark. Starts gridmap on a copy of TEMPLATE (or a fresh ×1 demo city),
# waits for the grid index, sends N reports from each of 8 keep-alive clients (Python, points
# over the county seat as server/benches/reports_load.rs sends them), then prints
# pg_stat_statements for that database: calls, plans and planning time, total and mean running
# time, buffers per statement.
#
# Needs pg_stat_statements preloaded, which takes a PostgreSQL restart (undo it afterwards):
#   psql -c "alter system set shared_preload_libraries = 'pg_stat_statements'" && pg_ctlcluster 15 main restart
#   psql -c "alter system set pg_stat_statements.track_planning = on" -c "select pg_reload_conf()"
#     (after the restart: planning counted apart, the `plans` and `plan_ms` columns; optional)
#   psql -c "alter system reset pg_stat_statements.track_planning" \
#        -c "alter system reset shared_preload_libraries" && pg_ctlcluster 15 main restart
#
#   bash bench/intake_statements.sh                              # ×1 demo city
#   TEMPLATE=bench_scale_x100 bash bench/intake_statements.sh   # a copy of the ×100 database
#   RESET_STATS=1 TEMPLATE=…    # the report tables' statistics set back to "never analyzed"
#   PLAN_CACHE_MODE=force_custom_plan TEMPLATE=…
#   AUTO_EXPLAIN=1 TEMPLATE=…   # plans of statements over 3 ms in PostgreSQL's log
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=${DB:-gridmap_intake_statements}
PORT=${PORT:-8099}
N=${N:-500}
BIN=${GRIDMAP:-${CARGO_TARGET_DIR:-target}/release/gridmap}
TEMPLATE=${TEMPLATE:-}
psql -q "$PG/postgres" -c "drop database if exists $DB with (force)" -c "create database $DB${TEMPLATE:+ template $TEMPLATE}"
export DATABASE_URL="$PG/$DB?sslmode=disable"
if [ -n "${PLAN_CACHE_MODE:-}" ]; then
  psql -q "$PG/postgres" -c "alter database $DB set plan_cache_mode = $PLAN_CACHE_MODE"
fi
if [ -n "${AUTO_EXPLAIN:-}" ]; then
  psql -q "$PG/postgres" -c "alter database $DB set session_preload_libraries = 'auto_explain'" \
    -c "alter database $DB set auto_explain.log_min_duration = '3ms'" \
    -c "alter database $DB set auto_explain.log_analyze = on" -c "alter database $DB set auto_explain.log_buffers = on"
fi
if [ -n "${RESET_STATS:-}" ]; then
  psql -q "$DATABASE_URL" -c "update pg_class set reltuples = -1, relpages = 0
    where relname in ('report', 'report_event', 'report_photo', 'points_ledger')"
fi
$BIN migrate > /dev/null
[ -n "$TEMPLATE" ] || $BIN seed --demo > /dev/null
psql -q "$DATABASE_URL" -c "create extension if not exists pg_stat_statements"
echo "bench-rider-password" | $BIN user add --role rider --name bench-rider --password-stdin > /dev/null
GRIDMAP_RATE_WRITES=1000000/1000000 GRIDMAP_LISTEN=127.0.0.1:$PORT $BIN serve > "/tmp/$DB.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; psql -q "$PG/postgres" -c "drop database if exists $DB with (force)"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.2; done
for _ in $(seq 1 1800); do
  curl -fs "http://127.0.0.1:$PORT/metrics" | grep -q '^gridmap_grid_index_loaded 1' && break
  sleep 0.1
done
TOKEN=$(curl -fs -X POST "http://127.0.0.1:$PORT/api/auth/login" -H 'content-type: application/json' \
  -d '{"name":"bench-rider","password":"bench-rider-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
psql -q "$DATABASE_URL" -c "select pg_stat_statements_reset()" > /dev/null
PORT=$PORT TOKEN=$TOKEN N=$N python3 - <<'PY'
import http.client, json, os, random, threading, time, uuid
port, token, n = int(os.environ["PORT"]), os.environ["TOKEN"], int(os.environ["N"])
def run(seed):
    rng, c = random.Random(seed), http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(n):
        body = json.dumps({"category": "exposed_garbage", "description": "load test",
                           "location": {"lon": rng.uniform(118.150, 118.190), "lat": rng.uniform(36.160, 36.200),
                                        "crs": "wgs84", "accuracy_m": 10.0}})
        c.request("POST", "/api/reports", body, {"content-type": "application/json",
                  "authorization": "Bearer " + token, "idempotency-key": str(uuid.uuid4())})
        r = c.getresponse(); r.read()
        if r.status != 201: print("status", r.status)
t0 = time.time()
threads = [threading.Thread(target=run, args=(s,)) for s in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(f"{n * 8} reports in {time.time() - t0:.1f} s")
PY
curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^gridmap_intake_(statements|reports|tables_analyzed)_total'
psql "$DATABASE_URL" -c "select calls, plans, round(total_plan_time::numeric, 1) as plan_ms, round(total_exec_time::numeric, 1) as total_ms, round(mean_exec_time::numeric, 3) as mean_ms,
         rows, round(shared_blks_hit::numeric / greatest(calls, 1)) as hits_per_call,
         left(regexp_replace(query, '\s+', ' ', 'g'), 100) as query
    from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
   order by total_exec_time desc limit 12"
