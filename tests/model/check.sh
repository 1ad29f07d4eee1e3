#!/usr/bin/env bash
# Checks the Promela models of the lock and semaphore protocols with Spin
# (Debian package spin): every interleaving of three threads, two rounds
# each. Fails on an assertion, an invalid end state (a lost wake-up), or a
# search that did not finish. Usage: check.sh MODEL.pml WORKDIR
set -euo pipefail
model=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$2
command -v spin > /dev/null || { echo "SKIPPED: spin is not installed (scripts/setup.sh installs it)"; exit 77; }
mkdir -p "$work"
cd "$work"
spin -a "$model" > spin.log
gcc -O2 -DSAFETY -DBITSTATE_OFF -o pan pan.c
./pan -m100000 > pan.log 2>&1 || true
cat pan.log | sed -n '1,40p'
grep -q "errors: 0" pan.log || { echo "the model has an error (see the trail above)"; exit 1; }
if grep -q "search depth too small\|max search depth too small" pan.log; then
  echo "the search was cut short"; exit 1
fi
echo "model ok: $(basename "$model")"
