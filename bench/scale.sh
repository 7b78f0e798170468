#!/usr/bin/env bash
# Province scale (issue 22): for ×1, ×10, ×100 demo counties — seed time, then the server's
# start-up: time until /metrics says every in-memory tile layer is loaded
# (gridmap_tile_memory_loaded 1) and its RSS then; then the largest z0–z9 tile (outlines) over
# the whole province.
#
#   bash bench/scale.sh                 # SCALES="1 10 100", fresh databases bench_scale_x<N>
#   REUSE=1 bash bench/scale.sh         # keep a database that already holds its scale (no seed)
#
# Not yet here (issue 22 asks for them): Martin 1.14 on the same tables per zoom band, cold/warm
# tiles/s per band, intake and grid lookups/s at each scale (bench/tiles.sh and bench/reports.sh
# measure those at ×1/×10 today).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
SCALES=${SCALES:-1 10 100}
PREFIX=${PREFIX:-bench_scale_x}
PORT=${PORT:-18090}
GRIDMAP=${GRIDMAP:-target/release/gridmap}
OUT=${OUT:-bench/out/scale}
mkdir -p "$OUT"
[ -n "${GRIDMAP_PREBUILT:-}" ] || cargo build --release -p gridmap-server --bin gridmap

printf '%-6s %9s %11s %11s %9s %10s\n' scale grids buildings seed_s load_s rss_mib
for N in $SCALES; do
  DB=$PREFIX$N
  export DATABASE_URL=$PG/$DB
  seed_s=-
  if [ -z "${REUSE:-}" ] || ! psql -Atqc "select 1 from grid limit 1" "$DATABASE_URL" >/dev/null 2>&1; then
    psql -q "$PG/postgres" -c "drop database if exists $DB with (force)" -c "create database $DB"
    "$GRIDMAP" migrate >/dev/null
    t0=$(date +%s.%N)
    "$GRIDMAP" seed --demo --scale "$N" >"$OUT/seed.x$N.txt" 2>&1
    seed_s=$(echo "$(date +%s.%N) - $t0" | bc)
  fi
  read -r grids buildings < <(psql -Atq -F' ' -c "select (select count(*) from grid), (select count(*) from building)" "$DATABASE_URL")
  t0=$(date +%s.%N)
  GRIDMAP_LISTEN=127.0.0.1:$PORT RUST_LOG=warn,gridmap_tiles::store=info "$GRIDMAP" serve >"$OUT/serve.x$N.log" 2>&1 &
  PID=$!
  loaded=
  for _ in $(seq 1 1200); do
    if curl -fs "http://127.0.0.1:$PORT/metrics" 2>/dev/null | grep -q '^gridmap_tile_memory_loaded 1'; then loaded=1; break; fi
    sleep 0.1
  done
  load_s=$(echo "$(date +%s.%N) - $t0" | bc)
  [ -n "$loaded" ] || load_s="timeout"
  rss=$(ps -o rss= -p $PID | awk '{printf "%.0f", $1 / 1024}')
  curl -fs "http://127.0.0.1:$PORT/metrics" | grep '^gridmap_tile_memory_features' >"$OUT/memory.x$N.txt" || true
  kill "$PID"; wait "$PID" 2>/dev/null || true
  printf '%-6s %9s %11s %11s %9.1f %10s\n' "x$N" "$grids" "$buildings" "$seed_s" "$load_s" "$rss"
done
