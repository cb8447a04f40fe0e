#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then configures and builds the release preset.
# Extra arguments go to `cmake --build` (e.g. --target rlhf).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ ! -f build/release/build.ninja ]]; then
  cmake --preset release >/dev/null
fi
start=$(date +%s)
cmake --build --preset release "$@"
echo "build: $(( $(date +%s) - start )) s" >&2
