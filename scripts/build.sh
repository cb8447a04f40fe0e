#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then configures and builds a preset:
#   scripts/build.sh [ARGS...]         the release preset (Debian's CPU LibTorch 1.13)
#   scripts/build.sh --cuda [ARGS...]  the cuda preset (PyPI's LibTorch 2.11 for CUDA 13.0;
#                                      compiles and links with no GPU present)
# Extra arguments go to `cmake --build` (e.g. --target rlhf).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=release
SETUP_ARGS=()
if [[ ${1:-} == --cuda ]]; then
  PRESET=cuda
  SETUP_ARGS=(--cuda)
  shift
fi
bash scripts/setup.sh "${SETUP_ARGS[@]}"
if [[ ! -f build/$PRESET/build.ninja ]]; then
  cmake --preset "$PRESET" >/dev/null
fi
start=$(date +%s)
cmake --build --preset "$PRESET" "$@"
echo "build ($PRESET): $(( $(date +%s) - start )) s" >&2
