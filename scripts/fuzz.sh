#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan + UBSan) and runs each for a
# bounded time. Usage: scripts/fuzz.sh [seconds per harness, default 60]
set -eo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=build/fuzz
mkdir -p "$out"
for harness in tests/fuzz/*_fuzz.cpp; do
  name=$(basename "$harness" .cpp)
  corpus="tests/fuzz/corpus/${name%_fuzz}"
  mkdir -p "$corpus"
  clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Iinclude "$harness" src/frame.cpp -o "$out/$name"
  echo "fuzz: $name for $seconds s"
  # A fresh directory for what this run finds; the kept corpus is read only.
  scratch=$(mktemp -d)
  "$out/$name" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -artifact_prefix="$out/" -print_final_stats=1 "$scratch" "$corpus" 2>&1 | tail -12
  rm -rf "$scratch"
done
