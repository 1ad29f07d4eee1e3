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
failures=()

# The last lines that each failed test printed, so that a failure shows in
# the tail of a long log (CI keeps only that).
tail_of_failures() {
  awk '
    function flush() { if (name != "") { print "[" name "]"; n = (count < 25) ? count : 25;
                         for (i = count - n + 1; i <= count; i++) print buf[i % 25] } name = "" }
    /^ *[0-9]+\/[0-9]+ Test +#[0-9]+: / {
      flush()
      if ($0 !~ /Passed|Not Run|Skipped/) { name = $0; count = 0 }
      next
    }
    /^ +Start +[0-9]+: / || /tests passed, / { flush(); next }
    name != "" { count++; buf[count % 25] = $0 }
    END { flush() }' "$1"
}
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
  if [ "$failed" -ne 0 ]; then
    failures+=("--- $name: $(tail_of_failures "$log")")
  fi
done

# One more step: counts as one test, passed or failed, with its line.
step_passed() {
  summary+=("$1")
  total_passed=$((total_passed + 1))
}
step_failed() {
  summary+=("$1")
  total_failed=$((total_failed + 1))
  status=1
}

echo "=== fuzz"
start=$SECONDS
mkdir -p build
# The budget is split between the targets (one per decoder and parser).
if bash scripts/fuzz.sh "${CONCUR_FUZZ_SECONDS:-60}" 2>&1 | tee build/fuzz.log; then
  targets=$(sed -n 's/^fuzz: \([0-9]*\) targets ran.*/\1/p' build/fuzz.log | tail -1)
  step_passed "fuzz: ${targets:-?} targets ran ${CONCUR_FUZZ_SECONDS:-60} s in all without a finding in $((SECONDS - start)) s"
else
  step_failed "fuzz: FAILED ($(grep '^fuzz: .* targets ran' build/fuzz.log | tail -1); the inputs are in build/fuzz/)"
fi

echo "=== consumer"
if bash scripts/check_consumer.sh; then
  step_passed "consumer: find_package, add_subdirectory and pkg-config builds ran"
else
  step_failed "consumer: FAILED"
fi

echo "=== docs"
start=$SECONDS
if bash scripts/docs.sh; then
  pages=$(find build/docs/html -maxdepth 1 -name '*.html' | wc -l)
  step_passed "docs: Doxygen API reference built without warnings ($pages pages) in $((SECONDS - start)) s"
else
  step_failed "docs: FAILED (undocumented public API or a bad comment; see bash scripts/docs.sh)"
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo "=== failures"
  printf '%s\n' "${failures[@]}"
fi
echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "$total_passed passed, $total_failed failed"
exit $status
