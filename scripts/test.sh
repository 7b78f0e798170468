#!/usr/bin/env bash
# Run every test against a real PostGIS: installs what is missing (PostGIS, Chromium, GDAL, npm
# packages), then the unit, API (a fresh database per test), end-to-end and browser tests, then
# clippy with warnings denied and cargo-deny (licences, bans, sources). Tests that need
# ../shared/data say so and skip where it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# sqlx::test creates a fresh database per test on this server.
export DATABASE_URL="${GRIDMAP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A clean clone builds once: incremental caches would only add gigabytes to its target directory.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi
# Formatting first: it is the cheapest check and fails in seconds (rustfmt.toml).
cargo fmt --all --check
# The web map's JavaScript: eslint with web-map/eslint.config.js (pinned in package-lock.json).
(cd web-map && npm run --silent lint)
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
# sqlx::test keeps the databases of failed tests; drop them all so runs do not pile them up
# (re-run the failing test to inspect its database).
psql "$DATABASE_URL" -Atqc "select 'drop database \"' || datname || '\";' from pg_database where datname like '_sqlx_test_%'" \
  | psql "$DATABASE_URL" -q >/dev/null 2>&1 || true
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Licences, banned crates and sources (deny.toml). Offline: the advisory database needs GitHub,
# which CI cannot reach (docs/security.md says how to run that check elsewhere).
command -v cargo-deny >/dev/null || cargo install cargo-deny --locked --quiet
cargo deny --log-level error check licenses bans sources
passed=$(grep -Eo '[0-9]+ passed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
ignored=$(grep -Eo '[0-9]+ ignored' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "gridmap: $passed passed, $failed failed, $ignored skipped"
