#!/usr/bin/env bash
# Benchmark gridmap's /ogc against tipg (PyPI `tipg` served by uvicorn) on the same database, in
# the same run: items pages (limit=100), random bboxes in the city, and a CQL2 filter.
# Prints req/s and p99 latency per scenario (wrk --latency) and appends a table to bench/out/ogc.md.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/gridmap_bench bash bench/ogc.sh
#
# The database is dropped, created and seeded with the demo city (`gridmap seed --demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/gridmap_bench}"
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-8}"
GRIDMAP_PORT=18080
TIPG_PORT=18081
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null

# A fresh database every run: the same demo city (deterministic seed) for both servers.
psql "${DATABASE_URL%/*}/postgres" -qc "drop database if exists ${DATABASE_URL##*/} with (force)" \
  -c "create database ${DATABASE_URL##*/}"
cargo build --release -p gridmap-server
BIN=target/release/gridmap
DATABASE_URL="$DATABASE_URL" "$BIN" migrate
DATABASE_URL="$DATABASE_URL" "$BIN" seed --demo >/dev/null

if [ ! -x bench/.venv-tipg/bin/uvicorn ]; then
  python3 -m venv bench/.venv-tipg
  bench/.venv-tipg/bin/pip install --quiet tipg uvicorn
fi

cleanup() { kill "${GM_PID:-}" "${TIPG_PID:-}" 2>/dev/null || true; }
trap cleanup EXIT
# A benchmark, not abuse: lift gridmap's per-client limit on heavy reads (tipg has none).
DATABASE_URL="$DATABASE_URL" GRIDMAP_RATE_HEAVY_READS=1000000/1000000 RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$GRIDMAP_PORT" >/dev/null 2>&1 &
GM_PID=$!
DATABASE_URL="$DATABASE_URL" TIPG_NAME="tipg" bench/.venv-tipg/bin/uvicorn tipg.main:app --port "$TIPG_PORT" --log-level warning >/dev/null 2>&1 &
TIPG_PID=$!
for url in "http://127.0.0.1:$GRIDMAP_PORT/readyz" "http://127.0.0.1:$TIPG_PORT/collections"; do
  for _ in $(seq 1 120); do curl -fs "$url" >/dev/null && break; sleep 1; done
done

# Random bboxes (~400 m) inside the demo city's extent.
read -r X0 Y0 X1 Y1 < <(psql "$DATABASE_URL" -qtAF' ' -c "select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) from (select ST_Extent(geom) e from grid) s")
cat > /tmp/gridmap-bbox.lua <<LUA
math.randomseed(42)
request = function()
  local x = $X0 + math.random() * ($X1 - $X0 - 0.004)
  local y = $Y0 + math.random() * ($Y1 - $Y0 - 0.004)
  return wrk.format("GET", wrk.path .. string.format("&bbox=%.5f,%.5f,%.5f,%.5f", x, y, x + 0.004, y + 0.004))
end
LUA

FILTER='households%20%3E%20300%20AND%20code%20LIKE%20%27LS-%25%27'
declare -A PATHS=(
  [gridmap_items]="/ogc/collections/buildings/items?limit=100"
  [tipg_items]="/collections/public.building/items?limit=100"
  [gridmap_bbox]="/ogc/collections/buildings/items?limit=100"
  [tipg_bbox]="/collections/public.building/items?limit=100"
  [gridmap_cql2]="/ogc/collections/grids/items?limit=100&filter-lang=cql2-text&filter=$FILTER"
  [tipg_cql2]="/collections/public.grid/items?limit=100&filter-lang=cql2-text&filter=$FILTER"
)
declare -A PORTS=([gridmap]=$GRIDMAP_PORT [tipg]=$TIPG_PORT)

mkdir -p bench/out; RESULTS=bench/out/ogc.md  # copy into bench/RESULTS.md by hand
{
  echo
  echo "## OGC API – Features vs tipg, $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores"
  echo
  echo "Command: \`DATABASE_URL=$DATABASE_URL DURATION=$DURATION CONNECTIONS=$CONNECTIONS bash bench/ogc.sh\`"
  echo "(wrk -t2 -c$CONNECTIONS -d$DURATION --latency; tipg $(bench/.venv-tipg/bin/pip show tipg | awk '/^Version/{print $2}'))"
  echo
  echo "| scenario | server | req/s | p99 |"
  echo "|---|---|---|---|"
} >> "$RESULTS"
for scenario in items bbox cql2; do
  for server in gridmap tipg; do
    url="http://127.0.0.1:${PORTS[$server]}${PATHS[${server}_${scenario}]}"
    status=$(curl -s -o /dev/null -w '%{http_code}' "$url")
    [ "$status" = 200 ] || { echo "$server $scenario: HTTP $status for $url"; exit 1; }
    script=()
    [ "$scenario" = bbox ] && script=(-s /tmp/gridmap-bbox.lua)
    out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "${script[@]}" "$url")
    if grep -q "Non-2xx" <<<"$out"; then echo "$server $scenario: non-2xx answers"; grep Non-2xx <<<"$out"; exit 1; fi
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    echo "$scenario $server: $rps req/s, p99 $p99"
    echo "| $scenario | $server | $rps | $p99 |" >> "$RESULTS"
  done
done
