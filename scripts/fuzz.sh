#!/usr/bin/env bash
# Builds the libFuzzer harnesses in tests/fuzz/ with clang (ASan + UBSan) and
# runs each for a bounded time, starting from its seed corpus.
# Usage: scripts/fuzz.sh [seconds per harness, default 60]
# Exit status 0: no finding. Otherwise the crashing input is in build/fuzz/
# (crash-*, leak-*, oom-*, timeout-*); reproduce with build/fuzz/NAME FILE.
set -eo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "fuzz.sh: the time must be a whole number of seconds, got '$seconds'" >&2
  exit 2
fi
command -v clang++ > /dev/null || { echo "fuzz.sh: clang++ is needed (libFuzzer)" >&2; exit 2; }
out=build/fuzz
mkdir -p "$out"
# What the harnesses link: the frame reader and the Connection around it.
sources=(src/frame.cpp src/connection.cpp src/futex.cpp)
for harness in tests/fuzz/*_fuzz.cpp; do
  name=$(basename "$harness" .cpp)
  corpus="tests/fuzz/corpus/${name%_fuzz}"
  mkdir -p "$corpus"
  clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Iinclude "$harness" "${sources[@]}" -pthread -o "$out/$name"
  echo "fuzz: $name for $seconds s"
  # New inputs go to a scratch directory; the kept seed corpus is only read.
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  status=0
  "$out/$name" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -artifact_prefix="$out/" -print_final_stats=1 \
    "$scratch" "$corpus" > "$out/$name.log" 2>&1 || status=$?
  tail -15 "$out/$name.log"
  rm -rf "$scratch"
  trap - EXIT
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $name found a problem (exit $status); see $out/$name.log and $out/" >&2
    exit 1
  fi
done
echo "fuzz: no findings"
