#!/usr/bin/env bash
# Intake benchmark (issue 5): 50 concurrent clients for 60 s against the release binary, every
# 10th request re-sent with its key; then rows stored vs distinct keys accepted; then, in the same
# run, two floors through pgbench for the same duration: (a) the issue's floor, one INSERT per
# report from the same 50 clients; (b) the statement gridmap really sends — its group commit's
# multi-row INSERT, as many rows as gridmap's mean batch in this run, two batches in flight as
# in the server. Then the assignment micro-benchmark (criterion). Figures go to
# bench/RESULTS.md by hand.
#
#   bash bench/reports.sh            # CLIENTS=50 DURATION=60 by default, release build
#   PROFILE=dev bash bench/reports.sh   # the dev profile (deps at opt-level 2, our code at 0)
#
# bench/scale.sh runs it on a copy of a province database, without the floors and with the
# in-memory lookups of that database only: TEMPLATE=<database to copy instead of seeding the
# demo city> FLOORS=0 LOOKUPS=main DB=<name of the copy>; GRIDMAP_PREBUILT=1 skips the builds
# (the binaries are taken from CARGO_TARGET_DIR, else target/). The load starts once the server's
# grid index is built; EARLY=1 starts it at once (the first reports then go to PostGIS).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=${DB:-gridmap_bench}
CLIENTS=${CLIENTS:-50}
DURATION=${DURATION:-60}
PORT=${PORT:-8099}
OUT=${OUT:-$(pwd)/target/bench-reports}  # absolute: cargo bench runs in server/
PROFILE=${PROFILE:-release}
DIR=${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo release)
BIN=$DIR/gridmap
TEMPLATE=${TEMPLATE:-}
FLOORS=${FLOORS:-1}
LOOKUPS=${LOOKUPS:-all}
mkdir -p "$OUT"

if [ -z "${GRIDMAP_PREBUILT:-}" ]; then
  cargo build --profile "$PROFILE" -p gridmap-server --bin gridmap
  cargo bench --profile "$PROFILE" -p gridmap-server --no-run --bench reports_load --bench assign_index
fi
# The load and lookup binaries (BENCH_DIR: another profile's, e.g. target/debug — a load client
# built with opt-level 0 for our code; the lookups are then not representative).
bench_bin() { ls -t "${BENCH_DIR:-$DIR}"/deps/"$1"-* | grep -v '\.d$' | grep -v '\.rlib$' | head -n1; }

psql -q "$PG/postgres" -c "drop database if exists $DB with (force)" \
  -c "create database $DB${TEMPLATE:+ template $TEMPLATE}"
# Plain TCP on the loopback, for gridmap and pgbench alike: TLS there protects nothing and cost
# a fifth of intake throughput (sqlx's default sslmode=prefer encrypts when the server offers it).
SSLMODE=${SSLMODE:-disable}
export DATABASE_URL="$PG/$DB?sslmode=$SSLMODE"
$BIN migrate
[ -n "$TEMPLATE" ] || $BIN seed --demo > /dev/null
echo "bench-rider-password" | $BIN user add --role rider --name bench-rider --password-stdin

# A benchmark, not abuse: one rider token sends everything, so lift the per-token write limit.
GRIDMAP_RATE_WRITES=1000000/1000000 GRIDMAP_LISTEN=127.0.0.1:$PORT $BIN serve > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.2; done
# The steady state: the grid index the server builds at start-up (~25 s at ×100, a core's worth)
# is there before the load starts. Reports that arrive before it are assigned by PostGIS
# (reports/intake.rs assign_in_sql), measured apart by EARLY=1.
if [ -n "${EARLY:-}" ]; then
  echo "== not waiting for the grid index (EARLY=1)"
else
  t0=$(date +%s.%N)
  for _ in $(seq 1 1800); do
    curl -fs "http://127.0.0.1:$PORT/metrics" | grep -q '^gridmap_grid_index_loaded 1' && break
    sleep 0.1
  done
  echo "grid index built $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s after the server answered"
fi
TOKEN=$(curl -fs -X POST "http://127.0.0.1:$PORT/api/auth/login" -H 'content-type: application/json' \
  -d '{"name":"bench-rider","password":"bench-rider-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

echo "== gridmap intake: $CLIENTS clients, ${DURATION}s, every 10th request re-sent"
GRIDMAP_URL="http://127.0.0.1:$PORT" GRIDMAP_TOKEN="$TOKEN" CLIENTS=$CLIENTS SECONDS=$DURATION KEYS_FILE="$OUT/keys.txt" \
  "$(bench_bin reports_load)" --bench | tee "$OUT/load.json"
# The group committer's counters: reports per statement is the mean batch.
curl -fs "http://127.0.0.1:$PORT/metrics" > "$OUT/metrics.txt"
STATEMENTS=$(awk '$1 == "gridmap_intake_statements_total" {print $2}' "$OUT/metrics.txt")
REPORTS=$(awk '$1 == "gridmap_intake_reports_total" {print $2}' "$OUT/metrics.txt")
BATCH=$(( (REPORTS + STATEMENTS / 2) / (STATEMENTS > 0 ? STATEMENTS : 1) ))
[ "$BATCH" -ge 1 ] || BATCH=1
echo "group commit: $REPORTS reports in $STATEMENTS statements, mean batch $BATCH"
echo "resends answered from memory: $(awk '$1 == "gridmap_intake_resends_from_memory_total" {print $2}' "$OUT/metrics.txt");" \
  "points in no grid left to PostGIS: $(awk '$1 == "gridmap_assignments_in_sql_total" {print $2}' "$OUT/metrics.txt");" \
  "reads of the history by the live feed: $(awk '$1 == "gridmap_feed_reads_total" {print $2}' "$OUT/metrics.txt")"
kill $SERVER; wait $SERVER 2>/dev/null || true
trap - EXIT

ROWS=$(psql -tA "$DATABASE_URL" -c "select count(*) from report")
KEYS=$(wc -l < "$OUT/keys.txt")
psql -q "$DATABASE_URL" -c "create temp table k (key uuid)" -c "\copy k from '$OUT/keys.txt'" \
  -c "select count(*) as accepted_keys_missing from k where not exists (select 1 from report r where r.idempotency_key = k.key)" \
  -c "select count(*) - count(distinct idempotency_key) as duplicated_keys from report"
echo "rows in report: $ROWS; distinct keys accepted: $KEYS"

if [ "$LOOKUPS" = main ]; then
  echo "== assignment index on $DB (criterion, in-memory lookups only)"
  GRIDMAP_BENCH_DB="$DATABASE_URL" "$(bench_bin assign_index)" --bench --noplot in_memory 2>&1 | tee "$OUT/assign.txt"
fi
[ "$FLOORS" = 1 ] || exit 0

floor_percentiles() {
  # The floor's own latency percentiles (per-transaction log, 3rd column in µs), to set beside
  # gridmap's p50/p99: in a closed loop both are about clients ÷ throughput.
  cat "$OUT"/pgbench_log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {
    printf "floor latency: p50 %.1f ms, p99 %.1f ms (%d transactions)\n", a[int((NR-1)*0.50)+1]/1000, a[int((NR-1)*0.99)+1]/1000, NR}'
  rm -f "$OUT"/pgbench_log.*
}

echo "== floor (a): one INSERT per report through pgbench, $CLIENTS clients, ${DURATION}s"
# From the same empty report table gridmap started with (the duplicate search grows with it).
psql -q "$DATABASE_URL" -c "truncate report_event, report cascade"
# Like the server's sessions: prepared statements, and no report-tile NOTIFY (db::Session::Server, migration 0006).
PGOPTIONS="-c gridmap.report_tiles=in_process" \
  pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" -f bench/reports_insert.sql \
    -l --log-prefix="$OUT/pgbench_log" "$DATABASE_URL" | tee "$OUT/pgbench.txt"
floor_percentiles | tee -a "$OUT/pgbench.txt"

echo "== floor (b): gridmap's batched INSERT, $BATCH rows per statement, 2 in flight, ${DURATION}s"
psql -q "$DATABASE_URL" -c "truncate report_event, report cascade"
PGOPTIONS="-c gridmap.report_tiles=in_process" \
  pgbench -n -M prepared -c 2 -j 2 -T "$DURATION" -D rows="$BATCH" -f bench/reports_insert_batch.sql \
    -l --log-prefix="$OUT/pgbench_log" "$DATABASE_URL" | tee "$OUT/pgbench_batch.txt"
floor_percentiles | tee -a "$OUT/pgbench_batch.txt"
BATCH_ROWS=$(psql -tA "$DATABASE_URL" -c "select count(*) from report")
echo "floor (b): $BATCH_ROWS reports stored in ${DURATION}s = $(( BATCH_ROWS / DURATION )) reports/s" | tee -a "$OUT/pgbench_batch.txt"

echo "== assignment index vs one PostGIS query per point (criterion)"
if [ -z "${GRIDMAP_BENCH_DB_SCALE10:-}" ]; then
  # The 2,670-grid city too (issue 5 asks for both sizes).
  psql -q "$PG/postgres" -c "drop database if exists ${DB}10 with (force)" -c "create database ${DB}10"
  DATABASE_URL="$PG/${DB}10?sslmode=$SSLMODE" $BIN migrate
  DATABASE_URL="$PG/${DB}10?sslmode=$SSLMODE" $BIN seed --demo --scale 10 > /dev/null
  GRIDMAP_BENCH_DB_SCALE10="$PG/${DB}10?sslmode=$SSLMODE"
fi
# And the demo city with many-vertex grids (the same shapes, every edge cut into ~5 m pieces:
# ~220 vertices per grid), where a cell's share of the edges decides (server/src/reports/index.rs).
psql -q "$PG/postgres" -c "drop database if exists ${DB}_dense with (force)" -c "create database ${DB}_dense template $DB"
# Triggers off in this copy: the grid triggers would record history and re-assign the reports
# floor (b) left behind, none of which the lookup benchmark reads.
psql -q "$PG/${DB}_dense" -c "alter table grid disable trigger user" -c "update grid set geom = ST_Segmentize(geom, 0.00005)"
GRIDMAP_BENCH_DB_DENSE="$PG/${DB}_dense?sslmode=$SSLMODE"
GRIDMAP_BENCH_DB="$DATABASE_URL" GRIDMAP_BENCH_DB_SCALE10="$GRIDMAP_BENCH_DB_SCALE10" GRIDMAP_BENCH_DB_DENSE="$GRIDMAP_BENCH_DB_DENSE" \
  "$(bench_bin assign_index)" --bench --noplot 2>&1 | tee "$OUT/assign.txt"
