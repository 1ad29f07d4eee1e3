#!/usr/bin/env bash
# Installs what is needed, builds, and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release -DCONCUR_BUILD_BENCH=OFF > build-demo.log 2>&1 || { cat build-demo.log; exit 1; }
rm -f build-demo.log
if [ -x build/release/examples/concur-demo ]; then
  exec build/release/examples/concur-demo
fi
exec build/release/examples/quickstart
