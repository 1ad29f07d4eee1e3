#!/usr/bin/env bash
# Builds tests/consumer against concur three ways: the installed CMake
# package, add_subdirectory, and pkg-config.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake -S "$root" -B "$work/concur" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCONCUR_BUILD_TESTS=OFF -DCONCUR_BUILD_BENCH=OFF -DCONCUR_BUILD_EXAMPLES=OFF \
  -DCMAKE_INSTALL_PREFIX="$work/prefix" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
cmake --build "$work/concur" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
cmake --install "$work/concur" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }

for mode in package subdirectory; do
  cmake -S "$root/tests/consumer" -B "$work/consumer-$mode" -G Ninja -DCONSUMER_MODE=$mode \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DCONCUR_SOURCE_DIR="$root" > "$work/log" 2>&1 ||
    { cat "$work/log"; exit 1; }
  cmake --build "$work/consumer-$mode" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  echo "consumer ($mode): $("$work/consumer-$mode/consumer")"
done

export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
g++ "$root/tests/consumer/main.cpp" -o "$work/consumer-pkgconfig" $(pkg-config --cflags --libs concur)
echo "consumer (pkg-config): $("$work/consumer-pkgconfig")"
