#!/usr/bin/env bash
# Proves the models can fail: each mutant breaks the protocol the way a real
# bug would (a release that forgets to wake a sleeper; a waiter that sleeps
# without announcing itself), and Spin must find the error.
# Usage: mutants.sh WORKDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$1
command -v spin > /dev/null || { echo "SKIPPED: spin is not installed (scripts/setup.sh installs it)"; exit 77; }
mkdir -p "$work"
failed=0
mutate() {  # name model sed-expression
  local name=$1 model=$2 expr=$3
  sed "$expr" "$here/$model" > "$work/$name.pml"
  if cmp -s "$here/$model" "$work/$name.pml"; then
    echo "mutant $name: the edit did not apply"; failed=1; return
  fi
  if bash "$here/check.sh" "$work/$name.pml" "$work/$name" > "$work/$name.out" 2>&1; then
    echo "mutant $name: NOT caught"; failed=1
  else
    echo "mutant $name: caught ($(grep -o 'pan:1: [^(]*' "$work/$name.out" | head -1))"
  fi
}
mutate lock_release_forgets_wake lock.pml 's/:: (old \& W) != 0 -> futex_wake_one()/:: false -> futex_wake_one()/'
mutate lock_sleeps_without_waiters_bit lock.pml 's/word == v -> word = v | W } ; futex_wait(v | W)/word == v -> word = v } ; futex_wait(v)/'
mutate semaphore_release_forgets_wake semaphore.pml 's/:: (v \& W) != 0 -> futex_wake_all()/:: false -> futex_wake_all()/'
mutate semaphore_takes_without_count semaphore.pml 's/:: (v \& (W - 1)) != 0 ->$/:: true ->/'
exit $failed
