#!/usr/bin/env bash
# The resident page on a phone network (issue 20 item 15): Chromium with a 390×844 phone profile,
# a cold cache (a fresh profile per run) and the page's network throttled by Chromium's own
# emulation to 1.6 Mbit/s down / 750 kbit/s up / 150 ms round trip. Prints, per run and as a
# median: first contentful paint, the map's first idle with every layer drawn, and the bytes
# transferred by type (from the page's resource timing).
#
#   bash bench/web.sh              # 3 runs against the release binary
#   RUNS=5 bash bench/web.sh
#   GRIDMAP_BIN=target/debug/gridmap bash bench/web.sh   # the debug binary (slower tiles)
#   GRIDMAP_BENCH_WEB_DIRS=/tmp/a/dist,/tmp/b/dist bash bench/web.sh
#                                  # two builds of the web map compared in one run (alternating)
#
# Needs Chromium and ChromeDriver (scripts/setup.sh test) and DATABASE_URL for the scratch
# database. Copy the MEASURED lines into bench/RESULTS.md with the date and the machine's load.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GRIDMAP_BIN:-}" ]; then
  cargo build --release -p gridmap-server
  export GRIDMAP_BIN="$PWD/target/release/gridmap"
fi
export GRIDMAP_BENCH_RUNS=${RUNS:-3}
# --workspace: the same features as the test build, so its dependencies are not built again.
cargo test --workspace --test web_bench -- --ignored --nocapture 2>&1 | grep -E '^MEASURED|panicked|test result'
