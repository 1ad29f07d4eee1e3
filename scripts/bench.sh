#!/usr/bin/env bash
# Builds the release flavour and runs every benchmark, 5 repetitions each,
# writing JSON to bench/results/, then the CPython side-by-side scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
mkdir -p bench/results
for b in build/release/bench/bench_*; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  "$b" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="bench/results/$name.json" --benchmark_out_format=json "$@"
done
for py in bench/*.py; do
  [ -f "$py" ] || continue
  case "$py" in *compare.py | *_report.py) continue ;; esac
  python3 "$py"
done
python3 bench/pool_report.py
