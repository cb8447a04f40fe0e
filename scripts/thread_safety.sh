#!/usr/bin/env bash
# Compiles every translation unit of the tree with clang's lock analysis as errors
# (-Wthread-safety -Werror=thread-safety: the ABSL_GUARDED_BY / ABSL_*LOCKS_REQUIRED annotations
# are checked), without linking. Exit status 1 on any finding. Clang 14 comes from Debian
# (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh  # clang-14 among the rest
[[ -f build/thread-safety/build.ninja ]] || cmake --preset thread-safety >/dev/null
start=$(date +%s)
# Every object file (and the generated sources they need), none of the links.
mapfile -t objects < <(ninja -C build/thread-safety -t targets all | grep -o '^[^:]*\.o')
ninja -C build/thread-safety -j "${JOBS:-2}" -k 0 "${objects[@]}"
echo "thread-safety: ${#objects[@]} translation units clean in $(( $(date +%s) - start )) s" >&2
