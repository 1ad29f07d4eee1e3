#!/usr/bin/env bash
# Configures and builds one flavour into build/NAME: release, tsan or asan.
# Usage: scripts/build.sh NAME [extra cmake arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: build.sh release|tsan|asan [cmake args]}
shift
case "$name" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  tsan) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONCUR_SANITIZE=thread -DCONCUR_BUILD_BENCH=OFF) ;;
  asan) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONCUR_SANITIZE=address -DCONCUR_BUILD_BENCH=OFF) ;;
  *) echo "build.sh: unknown build '$name' (release, tsan, asan)" >&2; exit 2 ;;
esac
mkdir -p build
cmake -S . -B "build/$name" -G Ninja -DCONCUR_WERROR=ON "${flags[@]}" "$@" > "build/$name.configure.log" 2>&1 ||
  { mkdir -p build; cat "build/$name.configure.log"; exit 1; }
cmake --build "build/$name" -j "$(nproc)"
