#!/usr/bin/env bash
# Builds the API reference from the public headers with Doxygen
# (docs/Doxyfile) into build/docs/html/ (open index.html). Fails on any
# warning: an undocumented public class, member or function, or a comment
# Doxygen cannot parse. Doxygen comes with scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v doxygen > /dev/null; then
  echo "docs.sh: doxygen is not installed; run bash scripts/setup.sh" >&2
  exit 1
fi
out=build/docs
rm -rf "$out/html"
mkdir -p "$out"
log="$out/warnings.log"
status=0
doxygen docs/Doxyfile 2> "$log" || status=$?
if [ "$status" -ne 0 ] || [ -s "$log" ]; then
  cat "$log" >&2
  echo "docs.sh: FAILED: $(grep -c . "$log" || true) warnings (exit status $status); document" \
    "each public symbol named above with a /// comment" >&2
  exit 1
fi
# The pages of public classes (not of the detail::*Api facades they inherit from).
classes=$(find "$out/html" -maxdepth 1 \( -name 'class*.html' -o -name 'struct*.html' \) \
  ! -name '*-members.html' ! -name '*_1_1detail_1_1*' | wc -l)
echo "docs.sh: $out/html/index.html: $classes public classes and structs, no warnings"
