#!/usr/bin/env bash
# Faults and load (issue 7), against the release binary on a fresh demo database:
#   1. PostgreSQL restarted in the middle of a report load: gridmap keeps running, /readyz goes
#      red then green, riders retrying with their idempotency keys end with every report stored
#      exactly once;
#   2. SIGTERM during load: in-flight requests finish, the process exits 0, nothing half-written;
#      riders keep retrying until a new process is up, and still every report lands once;
#   3. a tile query past its statement timeout answers 503 quickly and frees its connection;
#   4. 100 riders + 200 readers (tiles and feature pages) for 60 s, closed loop (saturation):
#      5xx count, p50/p99, peak RSS, reports lost or duplicated;
#   5. the same clients paced like people (a report every 2 s per rider, a request every 200 ms
#      per reader): the latency a street sees when the server is not saturated.
#
#   bash bench/faults.sh                 # all five
#   SECONDS_LOAD=20 bash bench/faults.sh # a shorter load phase
# Needs root (it restarts PostgreSQL with pg_ctlcluster). Output: bench/out/faults/*.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
DB=bench_faults
PORT=${PORT:-18090}
URL=http://127.0.0.1:$PORT
OUT=$ROOT/bench/out/faults
SECONDS_LOAD=${SECONDS_LOAD:-60}
PROFILE=${PROFILE:-release}
BIN=$ROOT/target/$([ "$PROFILE" = dev ] && echo debug || echo release)/gridmap
CLUSTER=$(ls /etc/postgresql | sort -V | tail -n1)
mkdir -p "$OUT"

cargo build --profile "$PROFILE" -p gridmap-server --bin gridmap
cargo bench --profile "$PROFILE" -p gridmap-server --no-run --bench faults_load 2>/dev/null
LOAD=$(ls -t target/"$([ "$PROFILE" = dev ] && echo debug || echo release)"/deps/faults_load-* | grep -v '\.d$' | head -n1)

psql -q "$PG/postgres" -c "drop database if exists $DB with (force)" -c "create database $DB"
export DATABASE_URL="$PG/$DB"
"$BIN" migrate >/dev/null
"$BIN" seed --demo >/dev/null
echo "faults-rider-password" | "$BIN" user add --role rider --name faults-rider --password-stdin >/dev/null
# Benchmarks, not abuse: lift the per-token quotas.
export GRIDMAP_RATE_WRITES=1000000/1000000 GRIDMAP_RATE_HEAVY_READS=1000000/1000000 RUST_LOG=warn

start_server() {
  GRIDMAP_LISTEN=127.0.0.1:$PORT "$BIN" serve >>"$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 200); do curl -fs -o /dev/null "$URL/readyz" && return 0; sleep 0.1; done
  echo "gridmap did not start" >&2; exit 1
}
token() {
  curl -fs -X POST "$URL/api/auth/login" -H 'content-type: application/json' \
    -d '{"name":"faults-rider","password":"faults-rider-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
check_keys() { # label keys-file since
  psql -q "$DATABASE_URL" -c "create temp table k (key uuid)" -c "\copy k from '$2'" -At \
    -c "select '$1: accepted keys ' || (select count(*) from k) ||
               ', of them not stored ' || (select count(*) from k where not exists (select 1 from report r where r.idempotency_key = k.key)) ||
               ', stored more than once ' || (select count(*) from (select idempotency_key from report where idempotency_key in (select key from k) group by 1 having count(*) > 1) d) ||
               ', stored but never confirmed to a client ' || (select count(*) from report r where r.created_at >= '$3' and not exists (select 1 from k where k.key = r.idempotency_key))"
}
since() { psql -At "$DATABASE_URL" -c "select now()"; }
poll_ready() { # file seconds
  local end=$((SECONDS + $2))
  while [ $SECONDS -lt $end ]; do
    printf '%s %s\n' "$(date +%s.%N | cut -c1-14)" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/readyz")" >>"$1"
    sleep 0.25
  done
}

start_server
TOKEN=$(token)
trap 'kill $SERVER 2>/dev/null || true' EXIT

T1=$(since)
echo "== 1. PostgreSQL stopped for 3 s in the middle of a report load (20 riders, 20 readers, 30 s; stop at 10 s)"
: >"$OUT/ready1.txt"
poll_ready "$OUT/ready1.txt" 40 &
POLL=$!
GRIDMAP_URL=$URL GRIDMAP_TOKEN=$TOKEN RIDERS=20 READERS=20 SECONDS=30 KEYS_FILE="$OUT/keys1.txt" "$LOAD" >"$OUT/load1.json" &
LOADPID=$!
sleep 10
pg_ctlcluster --skip-systemctl-redirect "$CLUSTER" main stop -m fast
sleep 3
pg_ctlcluster --skip-systemctl-redirect "$CLUSTER" main start
wait $LOADPID
wait $POLL
kill -0 "$SERVER" && echo "gridmap still running (pid $SERVER)"
echo "readyz over time (status×polls, in order): $(awk '{print $2}' "$OUT/ready1.txt" | uniq -c | awk '{printf "%s×%s ", $2, $1}')"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("riders:", d["riders"]["statuses"], "retries", d["riders"]["retries"]); print("readers:", d["readers"]["statuses"])' "$OUT/load1.json"
check_keys "restart" "$OUT/keys1.txt" "$T1"

T2=$(since)
echo "== 2. SIGTERM during load (20 riders, 15 s; SIGTERM at 5 s, a new process at 8 s)"
GRIDMAP_URL=$URL GRIDMAP_TOKEN=$TOKEN RIDERS=20 READERS=0 SECONDS=15 KEYS_FILE="$OUT/keys2.txt" "$LOAD" >"$OUT/load2.json" &
LOADPID=$!
sleep 5
kill -TERM "$SERVER"
set +e; wait "$SERVER"; CODE=$?; set -e
echo "gridmap exited with status $CODE after SIGTERM (0: in-flight requests finished, then a clean stop)"
sleep 3
start_server
wait $LOADPID
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("riders:", d["riders"]["statuses"], "retries", d["riders"]["retries"])' "$OUT/load2.json"
check_keys "sigterm" "$OUT/keys2.txt" "$T2"

echo "== 3. a tile past its statement timeout (GRIDMAP_TILE_TIMEOUT_MS=1)"
kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true
GRIDMAP_TILE_TIMEOUT_MS=1 start_server
# Base-map layers are cut from memory; the reports layer (thousands of reports by now from
# scenarios 1-2) is the part of a tile that still queries PostgreSQL under the timeout.
curl -s -o "$OUT/timeout.json" -w 'tile z12 with reports: HTTP %{http_code} in %{time_total} s\n' "$URL/tiles/grids,buildings,stations,reports/12/3392/1605.mvt"
cat "$OUT/timeout.json"; echo
curl -s -o /dev/null -w 'then /readyz: HTTP %{http_code}\n' "$URL/readyz"
kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true

# Load with RIDER_PACE_MS / READER_PACE_MS (0: closed loop) and report p50/p99, 5xx, RSS, keys.
load_phase() { # name rider_pace_ms reader_pace_ms
  local name=$1
  local t; t=$(since)
  GRIDMAP_URL=$URL GRIDMAP_TOKEN=$TOKEN RIDERS=100 READERS=200 SECONDS=$SECONDS_LOAD RIDER_PACE_MS=$2 READER_PACE_MS=$3 \
    KEYS_FILE="$OUT/keys.$name.txt" "$LOAD" >"$OUT/load.$name.json" &
  local loadpid=$!
  local peak=0 rss
  while kill -0 $loadpid 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/"$SERVER"/status); [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 1
  done
  wait $loadpid
  python3 - "$OUT/load.$name.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for side in ("riders", "readers"):
    s = d[side]
    fivexx = sum(v for k, v in s["statuses"].items() if k.startswith("5"))
    print(f"{side}: {s['requests']} requests, {s['per_second']:.0f}/s, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
          f"max {s['max_ms']:.0f} ms, 5xx {fivexx}, statuses {s['statuses']}")
PY
  echo "gridmap RSS: peak sampled $((peak / 1024)) MiB, high-water mark $(( $(awk '/VmHWM/ {print $2}' /proc/"$SERVER"/status) / 1024 )) MiB"
  check_keys "$name" "$OUT/keys.$name.txt" "$t"
}

echo "== 4. saturation: 100 riders + 200 readers for ${SECONDS_LOAD} s, closed loop (each sends again as soon as answered)"
start_server
TOKEN=$(token)
load_phase saturation 0 0

# People, not a loop: a rider files a report every 2 s (50/s in all, ~10× Yiyuan's 51 riders
# at their busiest) and a reader asks for a tile or page every 200 ms (1,000/s in all).
echo "== 5. paced: 100 riders (a report every 2 s each) + 200 readers (a request every 200 ms each) for ${SECONDS_LOAD} s"
load_phase paced 2000 200
