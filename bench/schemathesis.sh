#!/usr/bin/env bash
# Fuzz the HTTP API from its own OpenAPI document with Schemathesis (PyPI), the way an outside
# reviewer does: every operation of /api/openapi.json, generated valid and invalid inputs, checked
# for server errors (any 5xx) and for status codes the document does not list for that operation.
# Two passes against a fresh demo city: anonymous, then as an admin (who may call everything).
# The rate limits are lifted (GRIDMAP_RATE_*): a fuzzer is not abuse to throttle here.
#
#   bash bench/schemathesis.sh                       # about 5 minutes on 2 cores
#   MAX_EXAMPLES=50 MAX_TIME=600 bash bench/schemathesis.sh
#
# Exit status 1 when either pass finds a failure. The summary goes to bench/out/schemathesis.md
# (copy it into bench/RESULTS.md by hand); the reports (JUnit, NDJSON) to bench/out/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/gridmap_schemathesis}"
MAX_EXAMPLES="${MAX_EXAMPLES:-25}"
MAX_TIME="${MAX_TIME:-150}"   # seconds per pass
SEED="${SEED:-20261206}"
PORT="${PORT:-18190}"
VERSION=4.32.5
VENV="$HOME/.cache/gridmap-schemathesis-$VERSION"
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
fi

# The binary: GRIDMAP_BIN, else a debug build (the test suite's; speed is not measured here).
if [ -z "${GRIDMAP_BIN:-}" ]; then
  cargo build --quiet -p gridmap-server
  GRIDMAP_BIN=target/debug/gridmap
fi
psql "${DATABASE_URL%/*}/postgres" -qc "drop database if exists ${DATABASE_URL##*/} with (force)" \
  -c "create database ${DATABASE_URL##*/}"
export DATABASE_URL
"$GRIDMAP_BIN" migrate
GRIDMAP_DEMO_PASSWORD=fuzz-demo-password-1 "$GRIDMAP_BIN" seed --demo >/dev/null
# The fuzzing admin's id is far from the small ids the fuzzer tries, so that its random PATCHes
# and revocations of `/api/admin/accounts/{id}` do not end its own login halfway through.
psql "$DATABASE_URL" -qc "select setval(pg_get_serial_sequence('account', 'id'), 900000000)" >/dev/null
echo 'schemathesis-admin-pass-1' | "$GRIDMAP_BIN" user add --role admin --name fuzz-admin --password-stdin >/dev/null

LOG=$(mktemp)
cleanup() { kill "${PID:-}" 2>/dev/null || true; rm -f "$LOG"; }
trap cleanup EXIT
GRIDMAP_RATE_WRITES=1000000/1000000 GRIDMAP_RATE_HEAVY_READS=1000000/1000000 RUST_LOG=warn \
  "$GRIDMAP_BIN" serve --listen "127.0.0.1:$PORT" >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 1; done
TOKEN=$(curl -fs "http://127.0.0.1:$PORT/api/auth/login" -H 'content-type: application/json' \
  -d '{"name":"fuzz-admin","password":"schemathesis-admin-pass-1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

OUT=bench/out/schemathesis; mkdir -p "$OUT"
run() {  # run <name> [extra args...]
  local name=$1; shift
  set +e
  "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/openapi.json" \
    --checks not_a_server_error,status_code_conformance \
    --phases examples,coverage,fuzzing --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" \
    --seed "$SEED" --workers 2 --request-timeout 30 --no-color \
    --report junit,ndjson --report-junit-path "$OUT/$name.xml" --report-ndjson-path "$OUT/$name.ndjson" \
    "$@" >"$OUT/$name.txt" 2>&1
  local status=$?
  set -e
  tail -25 "$OUT/$name.txt"
  return $status
}
anonymous=0; admin=0
run anonymous || anonymous=$?
# As the admin: not logout (it would end the run's own login).
run admin -H "Authorization: Bearer $TOKEN" --exclude-path /api/auth/logout || admin=$?

summary() {  # operations tested, test cases and failures, from the run's summary
  local f="$OUT/$1.txt"
  echo "$(grep -E '^ *Tested: ' "$f" | tail -1 | sed 's/^ *Tested: //') operations; $(grep -E '[0-9]+ generated' "$f" | tail -1 | sed 's/^ *//'); $(grep -oE '[0-9]+ (failures?|warnings?) in [0-9.]+s' "$f" | tail -1)"
}
mkdir -p bench/out
{
  echo
  echo "## Schemathesis $VERSION against /api/openapi.json, $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD)"
  echo
  echo "Command: \`MAX_EXAMPLES=$MAX_EXAMPLES MAX_TIME=$MAX_TIME SEED=$SEED bash bench/schemathesis.sh\`"
  echo "(checks not_a_server_error, status_code_conformance; phases examples, coverage, fuzzing)"
  echo
  echo "| pass | exit | operations; cases; outcome |"
  echo "|---|---|---|"
  echo "| anonymous | $anonymous | $(summary anonymous) |"
  echo "| admin | $admin | $(summary admin) |"
} | tee -a bench/out/schemathesis.md
[ "$anonymous" -eq 0 ] && [ "$admin" -eq 0 ]
