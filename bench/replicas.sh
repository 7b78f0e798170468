#!/usr/bin/env bash
# Rolling restart of two gridmap instances behind Debian's nginx under load (issue 21), on the
# loopback: 50 riders each sending one report a second (50 reports/s; every failure retried with
# the same key and payload, as the web map's outbox does) and 50 readers each fetching a tile or a
# feature page every 100 ms (500 reads/s), all through nginx, for SECONDS_LOAD (40) seconds. At
# 10 s instance A gets SIGTERM (GRIDMAP_DRAIN_SECONDS=3) and a new A starts on its port once it
# has exited; then the same for B. Prints requests, failures (anything but 201 for a report,
# anything but 200/204/304 for a read), reports sent / stored / duplicated, p99 over the run
# (the restart is inside it) and the instances' exit statuses.
#
#   bash bench/replicas.sh                 # release build
#   SECONDS_LOAD=30 PROFILE=dev bash bench/replicas.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
DB=bench_replicas
PORT_A=${PORT_A:-18181}
PORT_B=${PORT_B:-18182}
PORT_LB=${PORT_LB:-18180}
URL=http://127.0.0.1:$PORT_LB
OUT=$ROOT/bench/out/replicas
SECONDS_LOAD=${SECONDS_LOAD:-40}
PROFILE=${PROFILE:-release}
BIN=$ROOT/target/$([ "$PROFILE" = dev ] && echo debug || echo release)/gridmap
mkdir -p "$OUT"
command -v nginx >/dev/null || { echo "nginx is missing: bash scripts/setup.sh test" >&2; exit 1; }

cargo build --profile "$PROFILE" -p gridmap-server --bin gridmap
cargo bench --profile "$PROFILE" -p gridmap-server --no-run --bench faults_load 2>/dev/null
LOAD=$(ls -t target/"$([ "$PROFILE" = dev ] && echo debug || echo release)"/deps/faults_load-* | grep -v '\.d$' | head -n1)

psql -q "$PG/postgres" -c "drop database if exists $DB with (force)" -c "create database $DB"
export DATABASE_URL="$PG/$DB"
"$BIN" migrate >/dev/null
"$BIN" seed --demo >/dev/null
echo "replicas-rider-password" | "$BIN" user add --role rider --name replicas-rider --password-stdin >/dev/null
# A benchmark, not abuse: lift the per-account quotas (one rider token sends every report).
export GRIDMAP_RATE_WRITES=1000000/1000000 GRIDMAP_RATE_HEAVY_READS=1000000/1000000 RUST_LOG=warn
export GRIDMAP_DRAIN_SECONDS=${GRIDMAP_DRAIN_SECONDS:-3} GRIDMAP_TRUSTED_PROXIES=127.0.0.1

# deploy/nginx.conf's upstream and proxy settings, without TLS, as an unprivileged nginx.
cat >"$OUT/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $OUT/nginx.pid;
error_log $OUT/nginx.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $OUT/tmp;
    proxy_temp_path $OUT/tmp;
    upstream gridmap {
        server 127.0.0.1:$PORT_A max_fails=1 fail_timeout=5s;
        server 127.0.0.1:$PORT_B max_fails=1 fail_timeout=5s;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$PORT_LB;
        gzip off;
        location / {
            proxy_pass http://gridmap;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
        }
    }
}
EOF
mkdir -p "$OUT/tmp"

declare -A PIDS
start() { # name port
  GRIDMAP_LISTEN=127.0.0.1:$2 "$BIN" serve >>"$OUT/server.$1.log" 2>&1 &
  PIDS[$1]=$!
  for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$2/readyz" && return 0; sleep 0.1; done
  echo "gridmap $1 did not start" >&2; exit 1
}
restart() { # name port
  local t0; t0=$(date +%s.%N)
  kill -TERM "${PIDS[$1]}"
  set +e; wait "${PIDS[$1]}"; local code=$?; set -e
  start "$1" "$2"
  printf '%s: exit status %s after SIGTERM; back and ready after %.1f s\n' "$1" "$code" "$(echo "$(date +%s.%N) - $t0" | bc)"
}
start a "$PORT_A"
start b "$PORT_B"
nginx -c "$OUT/nginx.conf" -p "$OUT" &
NGINX=$!
trap 'kill ${PIDS[a]} ${PIDS[b]} $NGINX 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs -o /dev/null "$URL/readyz" && break; sleep 0.1; done
TOKEN=$(curl -fs -X POST "$URL/api/auth/login" -H 'content-type: application/json' \
  -d '{"name":"replicas-rider","password":"replicas-rider-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
SINCE=$(psql -At "$DATABASE_URL" -c "select now()")

echo "== rolling restart under load: 50 riders x 1 report/s, 50 readers x 10 reads/s, ${SECONDS_LOAD}s, through nginx"
GRIDMAP_URL=$URL GRIDMAP_TOKEN=$TOKEN RIDERS=50 READERS=50 SECONDS=$SECONDS_LOAD RIDER_PACE_MS=1000 READER_PACE_MS=100 \
  GRACE=30 KEYS_FILE="$OUT/keys.txt" "$LOAD" >"$OUT/load.json" &
LOADPID=$!
sleep 10
restart a "$PORT_A"
sleep 5
restart b "$PORT_B"
wait $LOADPID

python3 - "$OUT/load.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for side, ok in (("riders", {"201"}), ("readers", {"200", "204", "304"})):
    s = d[side]
    failed = sum(v for k, v in s["statuses"].items() if k not in ok)
    print(f"{side}: {s['requests']} requests, {s['per_second']:.0f}/s, failed {failed}, p50 {s['p50_ms']:.1f} ms, "
          f"p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.0f} ms, statuses {s['statuses']}, retries {s['retries']}")
PY
psql -q "$DATABASE_URL" -c "create temp table k (key uuid)" -c "\copy k from '$OUT/keys.txt'" -At \
  -c "select 'reports: sent (accepted keys) ' || (select count(*) from k) ||
             ', stored ' || (select count(*) from report r where r.created_at >= '$SINCE') ||
             ', lost ' || (select count(*) from k where not exists (select 1 from report r where r.idempotency_key = k.key)) ||
             ', duplicated ' || (select count(*) from (select idempotency_key from report where created_at >= '$SINCE' group by 1 having count(*) > 1) d) ||
             ', stored but never confirmed ' || (select count(*) from report r where r.created_at >= '$SINCE' and not exists (select 1 from k where k.key = r.idempotency_key))"
