#!/usr/bin/env bash
# Run every fuzz target for a fixed time and print executions and findings per target.
#   bash bench/fuzz.sh            # 300 s per target
#   SECONDS_PER_TARGET=60 bash bench/fuzz.sh
# Needs the nightly toolchain (rustup) and cargo-fuzz (installed here if missing). Seeds come
# from fuzz/seeds/<target>/ (committed); libFuzzer grows fuzz/corpus/<target>/ (not committed).
# A crash leaves its input in fuzz/artifacts/<target>/ and fails this script.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
T=${SECONDS_PER_TARGET:-300}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=(geojson_import cql2 tile_path report_body photo multipart)
cargo +nightly fuzz build 2>&1 | tail -n 3
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  log=$(mktemp)
  if cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$T" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FINDING; status=1
  fi
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || true)
  [ -n "$execs" ] || execs=$(grep -Eo '^#[0-9]+' "$log" | tail -n1 | tr -d '#')
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n1 | grep -Eo '[0-9]+' || echo '?')
  echo "FUZZ $t: ${T}s, executions ${execs:-?}, coverage ${cov}, result ${result}"
  [ "$result" = ok ] || tail -n 40 "$log"
  rm -f "$log"
done
exit $status
