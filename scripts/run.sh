#!/usr/bin/env bash
# Run gridmap with the Yiyuan demo city at http://127.0.0.1:8080 (GRIDMAP_LISTEN to change).
# Installs what is missing, creates the database, applies migrations, loads the demo city into an
# empty database, then serves until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh run
# Plain TCP on the loopback (TLS there protects nothing and costs a fifth of intake throughput);
# for a database on another host, set DATABASE_URL with ?sslmode=verify-full.
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/gridmap?sslmode=disable}"
db="${DATABASE_URL##*/}"; db="${db%%\?*}"
base="${DATABASE_URL%/*}"
if ! psql "$base/postgres" -Atqc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
  echo "run: creating database $db"
  psql "$base/postgres" -qc "create database \"$db\""
fi
cargo build --release -p gridmap-server
./target/release/gridmap migrate
./target/release/gridmap seed --demo
exec ./target/release/gridmap serve "$@"
