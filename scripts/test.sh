#!/usr/bin/env bash
# Builds and runs every test in each build flavour (release, ThreadSanitizer,
# AddressSanitizer + UBSan), then checks the installed package from a
# consumer project and builds the API reference without a warning.
# CONCUR_BUILDS="release" runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

builds=${CONCUR_BUILDS:-release tsan asan}
total_passed=0
total_failed=0
status=0
summary=()
for name in $builds; do
  start=$SECONDS
  echo "=== build: $name"
  if ! bash scripts/build.sh "$name"; then
    summary+=("$name: BUILD FAILED")
    status=1
    total_failed=$((total_failed + 1))
    continue
  fi
  echo "=== test: $name"
  log="build/$name.ctest.log"
  runner=()
  # ThreadSanitizer needs the address-space layout it was built for.
  if [ "$name" = tsan ]; then runner=(setarch "$(uname -m)" -R); fi
  "${runner[@]}" ctest --test-dir "build/$name" --output-on-failure -j "$(nproc)" --timeout 300 2>&1 | tee "$log"
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -1)
  failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
  all=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/')
  if [ -z "$line" ]; then failed=1; all=1; fi
  passed=$((all - failed))
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  [ "$failed" -eq 0 ] || status=1
  summary+=("$name: $passed passed, $failed failed in $((SECONDS - start)) s")
done

echo "=== fuzz"
start=$SECONDS
mkdir -p build
# The budget is split between the targets (one per decoder and parser).
if bash scripts/fuzz.sh "${CONCUR_FUZZ_SECONDS:-60}" 2>&1 | tee build/fuzz.log; then
  targets=$(sed -n 's/^fuzz: \([0-9]*\) targets ran.*/\1/p' build/fuzz.log | tail -1)
  summary+=("fuzz: ${targets:-?} targets ran ${CONCUR_FUZZ_SECONDS:-60} s in all without a finding in $((SECONDS - start)) s")
  total_passed=$((total_passed + 1))
else
  summary+=("fuzz: FAILED ($(grep '^fuzz: .* targets ran' build/fuzz.log | tail -1); the inputs are in build/fuzz/)")
  total_failed=$((total_failed + 1))
  status=1
fi

echo "=== consumer"
if bash scripts/check_consumer.sh; then
  summary+=("consumer: find_package, add_subdirectory and pkg-config builds ran")
  total_passed=$((total_passed + 1))
else
  summary+=("consumer: FAILED")
  total_failed=$((total_failed + 1))
  status=1
fi

echo "=== docs"
start=$SECONDS
if bash scripts/docs.sh; then
  pages=$(find build/docs/html -maxdepth 1 -name '*.html' | wc -l)
  summary+=("docs: Doxygen API reference built without warnings ($pages pages) in $((SECONDS - start)) s")
  total_passed=$((total_passed + 1))
else
  summary+=("docs: FAILED (undocumented public API or a bad comment; see bash scripts/docs.sh)")
  total_failed=$((total_failed + 1))
  status=1
fi

echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "$total_passed passed, $total_failed failed"
exit $status
