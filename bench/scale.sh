#!/usr/bin/env bash
# Province scale (issue 22): for ×1, ×10, ×100 demo counties, in one run —
#   - seed time (`gridmap seed --demo --scale N`; with REUSE=1 a database already holding its
#     scale is kept and no seed is timed);
#   - the server's start-up: time until /metrics says every in-memory tile layer is loaded
#     (gridmap_tile_memory_loaded 1) and its RSS then;
#   - per zoom band (z0–z7, z8–z11, z12–z14, z15–z17): the largest tile (uncompressed, all of
#     grids,buildings,stations), and cold and warm tiles/s of gridmap and of Martin 1.14 on the
#     same tables — Martin gets the same generalised outlines below z10 (one view per level, with
#     gridmap's zoom ranges), so the comparison is content for content;
#   - report intake (reports/s, p99) and grid lookups/s on one core, by bench/reports.sh on a
#     copy of the scale's database (no floors; TEMPLATE=… FLOORS=0 LOOKUPS=main).
#
#   bash bench/scale.sh                            # SCALES="1 10 100", fresh bench_scale_x<N>
#   REUSE=1 bash bench/scale.sh                    # keep databases that hold their scale
#   CARGO_TARGET_DIR=/work/reltarget GRIDMAP_PREBUILT=1 REUSE=1 SCALES=100 bash bench/scale.sh
#   TILES=0 INTAKE=0 bash bench/scale.sh           # seed, load and RSS only
#
# Tiles: per band the tiles holding each county's town (a point on its outline: the outlines
# are the union of the grids, which cover the towns) at every zoom of the band, then tiles
# holding data (5,000 buildings, 1,000 grid labels, every station) sampled deterministically
# as bench/tiles.sh does, PER_BAND (500) in all. Cold: the server just started (gridmap after
# its start-up load, which is not a tile cache) and each tile once; warm: the same list again;
# server/benches/tile_load.rs, 16 connections, Accept-Encoding: gzip. ROUNDS (1) rounds, the
# order of the two servers alternating, medians. Figures go to bench/out/scale/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
SCALES=${SCALES:-1 10 100}
PREFIX=${PREFIX:-bench_scale_x}
PORT=${PORT:-18090}
MARTIN_PORT=${MARTIN_PORT:-18091}
INTAKE_PORT=${INTAKE_PORT:-18092}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
GRIDMAP=${GRIDMAP:-$TARGET/release/gridmap}
OUT=${OUT:-$ROOT/bench/out/scale}
TILES=${TILES:-1}
INTAKE=${INTAKE:-1}
PER_BAND=${PER_BAND:-500}
ROUNDS=${ROUNDS:-1}
CONN=${BENCH_CONNECTIONS:-16}
INTAKE_SECONDS=${INTAKE_SECONDS:-30}
LAYERS=grids,buildings,stations
BANDS="0-7 8-11 12-14 15-17"
mkdir -p "$OUT"
if [ -z "${GRIDMAP_PREBUILT:-}" ]; then
  cargo build --release --workspace --bin gridmap
  cargo bench --workspace --no-run --bench tile_load --bench reports_load --bench assign_index
fi
# BENCH_DIR: where the load and lookup binaries are (default the release build's; passed on to
# bench/reports.sh).
export BENCH_DIR=${BENCH_DIR:-$TARGET/release}
LOAD=$(ls -t "$BENCH_DIR"/deps/tile_load-* | grep -v '\.d$' | head -n1)
if [ "$TILES" = 1 ] && ! command -v martin >/dev/null; then
  echo "martin 1.14 is needed: cargo install martin --version 1.14.0 --locked --no-default-features --features postgres" >&2
  exit 1
fi

wait_http() { for _ in $(seq 1 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

# gridmap's start-up: seconds until every in-memory layer is loaded, RSS (MiB) then. Leaves
# the server running ($GPID) for the tiles.
start_gridmap() { # log
  local t0; t0=$(date +%s.%N)
  GRIDMAP_LISTEN=127.0.0.1:$PORT GRIDMAP_TILE_CONCURRENCY=16 RUST_LOG=warn,gridmap_tiles::store=info \
    "$GRIDMAP" serve >"$1" 2>&1 &
  GPID=$!
  local loaded=
  for _ in $(seq 1 1200); do
    if curl -fs "http://127.0.0.1:$PORT/metrics" 2>/dev/null | grep -q '^gridmap_tile_memory_loaded 1'; then loaded=1; break; fi
    sleep 0.1
  done
  LOAD_S=$(echo "$(date +%s.%N) - $t0" | bc)
  LOAD_S=$(printf '%.1f' "$LOAD_S")
  [ -n "$loaded" ] || LOAD_S=timeout
  RSS=$(ps -o rss= -p "$GPID" | awk '{printf "%.0f", $1 / 1024}')
  # Then intake's grid index, built in the background at start-up: until it is, it takes a core
  # (at ×10 the cold tiles ran 30% slower beside it, bench/RESULTS.md), so no figure below is
  # taken before it is there.
  for _ in $(seq 1 1800); do
    curl -fs "http://127.0.0.1:$PORT/metrics" 2>/dev/null | grep -q '^gridmap_grid_index_loaded 1' && break
    sleep 0.1
  done
  INDEX_S=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
  echo "grid index built ${INDEX_S} s after start" >&2
}

# Martin's sources: the tables bench/tiles.sh gives it (EPSG:3857 columns, buildings from z14),
# each with gridmap's zoom range, and below z10 the outline views, one per level.
martin_config() { # dburl
  cat <<YAML
listen_addresses: '127.0.0.1:$MARTIN_PORT'
cache_size_mb: 512
postgres:
  connection_string: '$1'
  pool_size: 16
  auto_publish: false
  tables:
    counties: { schema: public, table: bench_outline_county, srid: 3857, geometry_column: geom_3857, geometry_type: MULTIPOLYGON, id_column: id, minzoom: 0, maxzoom: 6, properties: { level: text, code: text, name: text, grids: int4, households: int4, workers: int4, balance_min: float8, balance_max: float8, balance_class: text } }
    subdistricts: { schema: public, table: bench_outline_subdistrict, srid: 3857, geometry_column: geom_3857, geometry_type: MULTIPOLYGON, id_column: id, minzoom: 7, maxzoom: 8, properties: { level: text, code: text, name: text, grids: int4, households: int4, workers: int4, balance_min: float8, balance_max: float8, balance_class: text } }
    communities: { schema: public, table: bench_outline_community, srid: 3857, geometry_column: geom_3857, geometry_type: MULTIPOLYGON, id_column: id, minzoom: 9, maxzoom: 9, properties: { level: text, code: text, name: text, grids: int4, households: int4, workers: int4, balance_min: float8, balance_max: float8, balance_class: text } }
    grids: { schema: public, table: grid, srid: 3857, geometry_column: geom_3857, geometry_type: MULTIPOLYGON, id_column: id, minzoom: 10, properties: { code: text, name: text, households: int4 } }
    buildings: { schema: public, table: building, srid: 3857, geometry_column: geom_3857, geometry_type: MULTIPOLYGON, id_column: id, minzoom: 14, properties: { floors: int4, households: int4, use: text } }
    stations: { schema: public, table: station, srid: 3857, geometry_column: geom_3857, geometry_type: POINT, id_column: id, minzoom: 8, properties: { name: text, opening_hours: text } }
YAML
}

# The outline views Martin reads (the same rows, columns and class as gridmap's outlines layer).
outline_views() {
  for level in county subdistrict community; do
    cat <<SQL
create or replace view bench_outline_$level as
select o.key as id, o.level, n.code, n.name, o.grids, o.households, o.workers, o.balance_min, o.balance_max,
       case when o.households::float8 / o.grids < 210 then 'far_under' when o.households::float8 / o.grids < 270 then 'under'
            when o.households::float8 / o.grids < 330 then 'on_target' when o.households::float8 / o.grids < 390 then 'over'
            else 'far_over' end as balance_class,
       o.geom_3857
  from outline o left join $level n on n.id = o.key where o.level = '$level';
SQL
  done
}

# Per band, the tiles: every county's town at each zoom of the band first, then sampled data tiles.
tile_lists() { # dburl dir
  for band in $BANDS; do
    psql "$1" -Atc "
      with town as (select ST_PointOnSurface(geom_3857) as p from outline where level = 'county'),
      data as ((select ST_Transform(anchor, 3857) as p from building order by md5(id::text) limit 5000)
               union all (select label_3857 from grid where label_3857 is not null order by md5(id::text) limit 1000)
               union all select geom_3857 from station),
      tiles as (select distinct w, z, floor((ST_X(p) + 20037508.342789244) / (40075016.68557849 / 2^z))::int as x,
                                   floor((20037508.342789244 - ST_Y(p)) / (40075016.68557849 / 2^z))::int as y
                  from (select 0 as w, p from town union all select 1, p from data) pts,
                       generate_series(${band%-*}, ${band#*-}) z),
      best as (select distinct on (z, x, y) z, x, y, w from tiles order by z, x, y, w)
      select z || '/' || x || '/' || y from best order by w, md5(z || '/' || x || '/' || y) limit $PER_BAND" >"$2/tiles.$band.txt"
    sed "s#^#/tiles/$LAYERS/#; s#\$#.mvt#" "$2/tiles.$band.txt" >"$2/paths.gridmap.$band.txt"
    sed "s#^#/counties,subdistricts,communities,grids,buildings,stations/#" "$2/tiles.$band.txt" >"$2/paths.martin.$band.txt"
  done
}

# Each band cold, then warm, against a server just started.
run_bands() { # name base dir round
  for band in $BANDS; do
    for phase in cold warm; do
      CONNECTIONS=$CONN "$LOAD" "$2" "$3/paths.$1.$band.txt" >"$3/round$4.$1.$band.$phase.txt"
    done
  done
}

# Largest uncompressed tile per band (gridmap, every tile of the band's list).
largest_tiles() { # dir
  python3 - "$1" "http://127.0.0.1:$PORT" $BANDS <<'PY'
import sys, urllib.request
out, base, bands = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(f"{out}/largest.txt", "w") as f:
    for band in bands:
        best, where = 0, "-"
        for path in open(f"{out}/paths.gridmap.{band}.txt").read().split():
            req = urllib.request.Request(base + path, headers={"Accept-Encoding": "identity"})
            with urllib.request.urlopen(req) as r:
                n = len(r.read())
            if n > best:
                best, where = n, path
        print(f"{band} {best} {where}", file=f)
PY
}

printf '%-6s %7s %9s %8s %7s %8s %13s %9s %12s\n' scale grids buildings seed_s load_s rss_mib intake_rps p99_ms lookups_1core
BAND_TABLE="$OUT/bands.txt"
: >"$BAND_TABLE"
for N in $SCALES; do
  DB=$PREFIX$N
  DBURL=$PG/$DB
  export DATABASE_URL=$DBURL
  D=$OUT/x$N
  mkdir -p "$D"
  seed_s=-
  if [ -z "${REUSE:-}" ] || ! psql -Atqc "select 1 from grid limit 1" "$DATABASE_URL" >/dev/null 2>&1; then
    psql -q "$PG/postgres" -c "drop database if exists $DB with (force)" -c "create database $DB"
    "$GRIDMAP" migrate >/dev/null
    t0=$(date +%s.%N)
    "$GRIDMAP" seed --demo --scale "$N" >"$D/seed.txt" 2>&1
    seed_s=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
    psql -q "$DATABASE_URL" -c "vacuum analyze"
  fi
  "$GRIDMAP" migrate >/dev/null
  read -r grids buildings < <(psql -Atq -F' ' -c "select (select count(*) from grid), (select count(*) from building)" "$DATABASE_URL")

  # Start-up (and, with TILES=1, the first round's gridmap tiles from that same fresh server).
  if [ "$TILES" = 1 ]; then
    outline_views | psql -q "$DATABASE_URL"
    tile_lists "$DATABASE_URL" "$D"
    martin_config "$DATABASE_URL" >"$D/martin.yaml"
  fi
  start_gridmap "$D/serve.log"
  load_s=$LOAD_S rss=$RSS
  curl -fs "http://127.0.0.1:$PORT/metrics" | grep '^gridmap_tile_memory_features' >"$D/memory.txt" || true
  grep -o 'tile layer loaded into memory.*' "$D/serve.log" >>"$D/memory.txt" || true
  if [ "$TILES" = 1 ]; then
    for round in $(seq 1 "$ROUNDS"); do
      order="gridmap martin"; [ $((round % 2)) = 0 ] && order="martin gridmap"
      for server in $order; do
        if [ $server = gridmap ]; then
          [ -n "${GPID:-}" ] || start_gridmap "$D/serve.round$round.log"
          run_bands gridmap "http://127.0.0.1:$PORT" "$D" "$round"
          [ "$round" = 1 ] && largest_tiles "$D"
          kill "$GPID"; wait "$GPID" 2>/dev/null || true; GPID=
        else
          RUST_LOG=warn martin --config "$D/martin.yaml" >/dev/null 2>"$D/martin.log" &
          MPID=$!; wait_http "http://127.0.0.1:$MARTIN_PORT/health"
          sleep 1
          run_bands martin "http://127.0.0.1:$MARTIN_PORT" "$D" "$round"
          kill "$MPID"; wait "$MPID" 2>/dev/null || true
        fi
      done
    done
    python3 - "$D" "$ROUNDS" "x$N" $BANDS >>"$BAND_TABLE" <<'PY'
import re, statistics, sys
d, rounds, scale, bands = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
largest = {l.split()[0]: int(l.split()[1]) for l in open(f"{d}/largest.txt")}
def med(server, band, phase, key):
    vals = []
    for r in range(1, rounds + 1):
        text = open(f"{d}/round{r}.{server}.{band}.{phase}.txt").read()
        vals.append(float(re.search(rf"{key}=([\d.]+)", text).group(1)))
    return statistics.median(vals)
for band in bands:
    n = int(med("gridmap", band, "cold", "requests"))
    g, m = med("gridmap", band, "cold", "rps"), med("martin", band, "cold", "rps")
    gw, mw = med("gridmap", band, "warm", "rps"), med("martin", band, "warm", "rps")
    errs = sum(med(s, band, p, "errors") for s in ("gridmap", "martin") for p in ("cold", "warm"))
    print(f"{scale:<6} z{band:<6} {n:>6} {largest[band] / 1000:>9.1f} {g:>9.0f} {m:>9.0f} {g / m:>7.2f}x "
          f"{gw:>9.0f} {mw:>9.0f} {gw / mw:>7.2f}x {errs:>5.0f}")
PY
  else
    kill "$GPID"; wait "$GPID" 2>/dev/null || true; GPID=
  fi

  intake=- p99=- lookups=-
  if [ "$INTAKE" = 1 ]; then
    # A copy of this database (the source must have no connections while it is copied).
    OUT="$D/reports" TEMPLATE="$DB" DB="${PREFIX}${N}_intake" FLOORS=0 LOOKUPS=main GRIDMAP_PREBUILT=1 \
      DURATION=$INTAKE_SECONDS PORT=$INTAKE_PORT PG=$PG bash bench/reports.sh >"$D/reports.txt" 2>&1
    read -r intake p99 < <(python3 -c "
import json, sys
j = json.loads([l for l in open('$D/reports/load.json') if l.startswith('{')][-1])
print(f\"{j['created'] / j['seconds']:.0f} {j['p99_ms']:.1f}\")")
    # criterion: 'thrpt:  [low mid high]' of in_memory_index; the middle estimate.
    lookups=$(grep -o 'thrpt: *\[[^]]*\]' "$D/reports/assign.txt" | head -n1 | awk '{print $4 $5}')
    psql -q "$PG/postgres" -c "drop database if exists ${PREFIX}${N}_intake with (force)"
  fi
  printf '%-6s %7s %9s %8s %7s %8s %13s %9s %12s\n' "x$N" "$grids" "$buildings" "$seed_s" "$load_s" "$rss" "$intake" "$p99" "$lookups"
done
if [ "$TILES" = 1 ]; then
  echo
  printf '%-6s %-7s %6s %9s %9s %9s %8s %9s %9s %8s %5s\n' scale band tiles max_kb g_cold m_cold ratio g_warm m_warm ratio errs
  cat "$BAND_TABLE"
fi
