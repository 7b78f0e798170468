#!/usr/bin/env bash
# Tile server benchmark: gridmap vs Martin 1.14 on the same PostGIS, same data, one run.
#
#   bash bench/tiles.sh                 # all data sets: demo1 demo10 liechtenstein
#   bash bench/tiles.sh demo1           # one data set
#   BENCH_PG=postgres://postgres@127.0.0.1:5443 BENCH_GRIDMAP_PORT=18380 BENCH_MARTIN_PORT=18381 \
#     bash bench/tiles.sh demo1         # another PostgreSQL cluster and other ports
#
# For each data set: a fresh database, 2,000 distinct z10–z16 tiles that hold data (all of them
# where fewer exist), then for gridmap and Martin: cold (server just started, empty tile cache,
# each tile once; gridmap's features are in memory once its start-up load is done, which the
# script waits for and records in memory.txt) and warm (the same list again). Load comes from server/benches/tile_load.rs (each
# tile exactly once per run, 16 connections, Accept-Encoding: gzip). The PostGIS floor is
# the same tiles' ST_AsMVT statement (gridmap's SQL) run by pgbench with 16 clients.
# Figures go to bench/out/<set>/*.txt; copy the summary into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PGURL_BASE=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
SETS=${*:-demo1 demo10 liechtenstein}
LAYERS=grids,buildings,stations
CONN=${BENCH_CONNECTIONS:-16}
ROUNDS=${ROUNDS:-3}
# Ports of the two servers (several people benchmark on one machine: give each their own).
GRIDMAP_PORT=${BENCH_GRIDMAP_PORT:-18080}
MARTIN_PORT=${BENCH_MARTIN_PORT:-13000}
OSM="$ROOT/../shared/data/osm-liechtenstein/buildings.geojson"

command -v martin >/dev/null || cargo install martin --version 1.14.0 --locked --no-default-features --features postgres
cargo build --release -p gridmap-server
# CARGO_TARGET_DIR is honoured (a release build kept apart from the debug one the tests use).
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# GRIDMAP_BIN: another build of gridmap to measure (two builds compared in one session, each
# against Martin in its own run: only the ratios compare across runs on a shared machine).
GRIDMAP=${GRIDMAP_BIN:-$TARGET/release/gridmap}
cargo bench -p gridmap-server --no-run --bench tile_load 2>/dev/null
LOAD=$(ls -t "$TARGET"/release/deps/tile_load-* | grep -v '\.d$' | head -n1)

wait_http() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

# Each tile of the list exactly once over $CONN connections (server/benches/tile_load.rs).
run_load() { # name base-url paths
  local name=$1 base=$2 paths=$3
  CONNECTIONS=$CONN "$LOAD" "$base" "$paths" | tee "$OUT/$name.txt" | grep RESULT | sed "s/^RESULT/$name/"
}

for SET in $SETS; do
  OUT="$ROOT/bench/out/$SET"; mkdir -p "$OUT"
  DB="bench_tiles_$SET"
  DBURL="$PGURL_BASE/$DB"
  psql "$PGURL_BASE/postgres" -qc "drop database if exists $DB with (force)" -c "create database $DB"
  export DATABASE_URL=$DBURL
  "$GRIDMAP" migrate >/dev/null
  case $SET in
    demo1) "$GRIDMAP" seed --demo --scale 1 >/dev/null ;;
    demo10) "$GRIDMAP" seed --demo --scale 10 >/dev/null ;;
    liechtenstein)
      [ -f "$OSM" ] || { echo "SKIPPED liechtenstein: $OSM is missing"; continue; }
      "$GRIDMAP" import buildings "$OSM" --allow-outside-county >/dev/null ;;
  esac
  psql "$DBURL" -qc "vacuum analyze"

  # 2,000 distinct tiles z10–z16 that hold data (sampled deterministically).
  psql "$DBURL" -Atc "
    with pts as (select anchor as p from building union all select ST_PointOnSurface(geom) from grid union all select geom from station),
    t as (select distinct z, floor((ST_X(ST_Transform(p, 3857)) + 20037508.342789244) / (40075016.68557849 / 2^z))::int as x,
                              floor((20037508.342789244 - ST_Y(ST_Transform(p, 3857))) / (40075016.68557849 / 2^z))::int as y
            from pts, generate_series(10, 16) z)
    select z || '/' || x || '/' || y from t order by md5(z || '/' || x || '/' || y) limit 2000" > "$OUT/tiles.txt"
  echo "== $SET: $(wc -l < "$OUT/tiles.txt") tiles"
  sed "s#^#/tiles/$LAYERS/#; s#\$#.mvt#" "$OUT/tiles.txt" > "$OUT/paths.gridmap.txt"
  sed "s#^#/$LAYERS/#" "$OUT/tiles.txt" > "$OUT/paths.martin.txt"

  # Martin, two ways. `martin`: the same three layers from the same precomputed EPSG:3857
  # columns as gridmap (the strongest set-up we could give it). `martin4326`: the EPSG:4326
  # `geom` columns, which is what Martin's auto-publishing serves (it reprojects per tile).
  # Both with buildings from z14, as gridmap.
  martin_sources() { # suffix column srid
    cat <<YAML
    grids$1: { schema: public, table: grid, srid: $3, geometry_column: $2, geometry_type: MULTIPOLYGON, id_column: id, properties: { code: text, name: text, households: int4 } }
    buildings$1: { schema: public, table: building, srid: $3, geometry_column: $2, geometry_type: MULTIPOLYGON, id_column: id, minzoom: 14, properties: { floors: int4, households: int4, use: text } }
    stations$1: { schema: public, table: station, srid: $3, geometry_column: $2, geometry_type: POINT, id_column: id, properties: { name: text, opening_hours: text } }
YAML
  }
  { cat <<YAML
listen_addresses: '127.0.0.1:$MARTIN_PORT'
cache_size_mb: 512
postgres:
  connection_string: '$DBURL'
  pool_size: 16
  auto_publish: false
  tables:
YAML
    martin_sources "" geom_3857 3857
    martin_sources "_4326" geom 4326
  } > "$OUT/martin.yaml"
  sed "s#^#/grids_4326,buildings_4326,stations_4326/#" "$OUT/tiles.txt" > "$OUT/paths.martin4326.txt"

  # Largest tile at any zoom (the 500 KB rule), measured over the same tiles plus z0–z9 parents.
  "$GRIDMAP" export-tiles --layers "$LAYERS" --minzoom 0 --maxzoom 16 --concurrency 2 "$OUT/all.pmtiles" | tee "$OUT/export.txt"

  # PostGIS floor first (it also brings the tables into PostgreSQL's buffers, so no server is
  # measured against a colder database than the others): gridmap's statement per zoom, a random
  # tile of the list per transaction.
  psql "$DBURL" -qc "drop table if exists bench_tile; create table bench_tile (i int, z int, x int, y int)"
  awk -F/ '{print NR-1 "\t" $1 "\t" $2 "\t" $3}' "$OUT/tiles.txt" | psql "$DBURL" -qc "copy bench_tile from stdin"
  psql "$DBURL" -qc "create index on bench_tile (z, i)"
  args=()
  for z in 10 11 12 13 14 15 16; do
    n=$(awk -F/ -v z=$z '$1==z' "$OUT/tiles.txt" | wc -l); [ "$n" -gt 0 ] || continue
    { echo "\\set k random(0, $((n - 1)))"
      echo "select z, x, y from bench_tile where z = $z order by i offset :k limit 1 \\gset"
      "$GRIDMAP" export-tiles --layers "$LAYERS" --print-sql "$z" | sed 's/\$1/:z/g; s/\$2/:x/g; s/\$3/:y/g' | tr '\n' ' '
      echo ";"
    } > "$OUT/floor.z$z.sql"
    args+=(-f "$OUT/floor.z$z.sql@$n")
  done
  # Prepared statements, as a server runs them (parse and plan once per connection).
  pgbench -n -M prepared -c "$CONN" -j 2 -t $((2000 / CONN)) "${args[@]}" "$DBURL" > "$OUT/floor.txt" 2>&1 || true
  grep -E "^(tps|latency average)" "$OUT/floor.txt" | sed "s/^/floor: /"

  # ROUNDS rounds; the order of the servers rotates each round, so none always goes first.
  servers=(gridmap martin martin4326)
  for round in $(seq 1 "$ROUNDS"); do
    for k in 0 1 2; do
      server=${servers[$(( (k + round - 1) % 3 ))]}
      if [ $server = gridmap ]; then
        GRIDMAP_LISTEN=127.0.0.1:$GRIDMAP_PORT GRIDMAP_TILE_CONCURRENCY=16 RUST_LOG=warn,gridmap_tiles::store=info "$GRIDMAP" serve >/dev/null 2>"$OUT/gridmap.log" &
        PID=$!; BASE=http://127.0.0.1:$GRIDMAP_PORT; wait_http "$BASE/readyz"
        # Its features in memory (loaded at start; that is not a tile cache, which is empty).
        for _ in $(seq 1 300); do curl -fs "$BASE/metrics" | grep -q '^gridmap_tile_memory_loaded 1' && break; sleep 0.1; done
        # And intake's grid index, which `serve` builds in the background at start-up (since
        # 4bc283e): building it took a core through the whole cold run at ×10 (cold 2,200 instead
        # of 3,100 tiles/s, bench/RESULTS.md). An older binary has no such metric: skip the wait.
        if curl -fs "$BASE/metrics" | grep -q '^gridmap_grid_index_loaded'; then
          for _ in $(seq 1 600); do curl -fs "$BASE/metrics" | grep -q '^gridmap_grid_index_loaded 1' && break; sleep 0.1; done
        fi
        curl -fs "$BASE/metrics" | grep '^gridmap_tile_memory_features' | tr '\n' ' ' > "$OUT/memory.txt"
        grep -o 'tile layer loaded into memory.*' "$OUT/gridmap.log" | tail -n 4 >> "$OUT/memory.txt" || true
        ps -o rss= -p $PID | awk '{print "\nrss_kib_after_load " $1}' >> "$OUT/memory.txt"
      else
        RUST_LOG=warn martin --config "$OUT/martin.yaml" >/dev/null 2>"$OUT/martin.log" &
        PID=$!; BASE=http://127.0.0.1:$MARTIN_PORT; wait_http "$BASE/health"
      fi
      sleep 1 # both servers open their pools at start: let them
      run_load "round$round.$server.cold" "$BASE" "$OUT/paths.$server.txt"
      run_load "round$round.$server.warm" "$BASE" "$OUT/paths.$server.txt"
      kill "$PID"; wait "$PID" 2>/dev/null || true
    done
  done
  # Medians over the rounds, and gridmap's ratios to each Martin set-up and to the floor.
  python3 - "$OUT" "$ROUNDS" "$SET" <<'PY'
import re, statistics, sys
out, rounds, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def runs(server, phase):
    rows = []
    for r in range(1, rounds + 1):
        text = open(f"{out}/round{r}.{server}.{phase}.txt").read()
        rows.append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", text)})
    return rows
floor = float(re.search(r"tps = ([\d.]+)", open(f"{out}/floor.txt").read()).group(1))
med = {}
for server in ("gridmap", "martin", "martin4326"):
    for phase in ("cold", "warm"):
        rows = runs(server, phase)
        m = {k: statistics.median(r[k] for r in rows) for k in ("rps", "p50_ms", "p99_ms", "mean_bytes", "errors")}
        med[server, phase] = m
        print(f"SUMMARY {name} {server} {phase}: median of {rounds} rounds {m['rps']:.0f} tiles/s, p50 {m['p50_ms']:.1f} ms, "
              f"p99 {m['p99_ms']:.1f} ms, mean {m['mean_bytes']:.0f} B, errors {m['errors']:.0f}; rounds: "
              + ", ".join(f"{r['rps']:.0f}" for r in rows))
g = med["gridmap", "cold"]["rps"]
print(f"SUMMARY {name} ratios: cold gridmap/martin {g / med['martin', 'cold']['rps']:.2f}x, "
      f"cold gridmap/martin4326 {g / med['martin4326', 'cold']['rps']:.2f}x, cold gridmap/floor {g / floor:.0%} "
      f"(floor {floor:.0f}/s), warm gridmap/martin {med['gridmap', 'warm']['rps'] / med['martin', 'warm']['rps']:.2f}x, "
      f"warm gridmap/martin4326 {med['gridmap', 'warm']['rps'] / med['martin4326', 'warm']['rps']:.2f}x")
PY
done
