#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz/ (one per decoder and parser:
# *_fuzz.cpp) with clang (ASan + UBSan) and runs each from its seed corpus
# in tests/fuzz/corpus/NAME/ for an even share of a time budget.
# Usage: scripts/fuzz.sh [seconds for all targets together, default 60]
# Each target gets at least 1 s. mpi_wire needs Open MPI's compiler wrapper
# (mpicxx); without it that target is left out and the count says so.
# Exit status 0: no finding. Otherwise each crashing input is in build/fuzz/
# (crash-*, leak-*, oom-*, timeout-*); reproduce with build/fuzz/NAME FILE.
# The last line is "fuzz: N targets ran ..." (scripts/test.sh reads N).
set -eo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "fuzz.sh: the time must be a whole number of seconds, got '$seconds'" >&2
  exit 2
fi
command -v clang++ > /dev/null || { echo "fuzz.sh: clang++ is needed (libFuzzer)" >&2; exit 2; }
out=build/fuzz
mkdir -p "$out/obj"
flags=(-std=c++20 -O1 -g -fno-sanitize-recover=all -Iinclude)
sanitize=-fsanitize=address,undefined

# The library code the targets reach, compiled once (in parallel) into an
# archive; each target links only what it uses.
library=(src/frame.cpp src/connection.cpp src/futex.cpp src/queue.cpp src/cpu_count.cpp)
pids=()
for source in "${library[@]}"; do
  clang++ "${flags[@]}" "$sanitize,fuzzer-no-link" -c "$source" \
    -o "$out/obj/$(basename "$source" .cpp).o" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
rm -f "$out/libconcur_fuzz.a"
ar rcs "$out/libconcur_fuzz.a" "$out"/obj/*.o

# What each target needs beyond the archive.
targets=()
skipped=()
declare -A extra
for harness in tests/fuzz/*_fuzz.cpp; do
  name=$(basename "$harness" .cpp)
  extra[$name]=""
  if [ "$name" = mpi_wire_fuzz ]; then
    if ! command -v mpicxx > /dev/null; then
      skipped+=("$name (no mpicxx)")
      continue
    fi
    extra[$name]="$(mpicxx --showme:compile) src/mpi/pool.cpp $(mpicxx --showme:link)"
  fi
  targets+=("$name")
done

# Builds, two at a time.
build() {
  local name=$1
  # shellcheck disable=SC2086  # extra holds several words on purpose
  clang++ "${flags[@]}" "$sanitize,fuzzer" "tests/fuzz/$name.cpp" ${extra[$name]} \
    "$out/libconcur_fuzz.a" -pthread -o "$out/$name" > "$out/$name.build.log" 2>&1 ||
    { cat "$out/$name.build.log" >&2; return 1; }
}
pids=()
for name in "${targets[@]}"; do
  build "$name" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$(nproc)" ]; then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done

count=${#targets[@]}
share=$((seconds / count))
[ "$share" -ge 1 ] || share=1
echo "fuzz: $count targets, $share s each (${seconds} s in all)"
findings=()
runs=()
for name in "${targets[@]}"; do
  corpus="tests/fuzz/corpus/${name%_fuzz}"
  mkdir -p "$corpus"
  # New inputs go to a scratch directory; the kept seed corpus is only read.
  scratch=$(mktemp -d)
  status=0
  "$out/$name" -max_total_time="$share" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -artifact_prefix="$out/" -print_final_stats=1 \
    "$scratch" "$corpus" > "$out/$name.log" 2>&1 || status=$?
  rm -rf "$scratch"
  executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log" | tail -1)
  runs+=("${name%_fuzz}: ${executed:-?} runs")
  if [ "$status" -ne 0 ]; then
    tail -40 "$out/$name.log"
    echo "fuzz: $name found a problem (exit $status); see $out/$name.log and $out/" >&2
    findings+=("$name")
  else
    echo "fuzz: ${name%_fuzz}: ${executed:-?} runs in $share s"
  fi
done
[ ${#skipped[@]} -eq 0 ] || echo "fuzz: left out: ${skipped[*]}"
summary=$(IFS=,; echo "${runs[*]}")
if [ ${#findings[@]} -ne 0 ]; then
  echo "fuzz: $count targets ran, ${#findings[@]} with a finding: ${findings[*]}"
  exit 1
fi
echo "fuzz: $count targets ran $share s each without a finding (${summary//,/, })"
