#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer) over the unit and integration
# tests: builds the `asan` preset (GCC, Debug) and runs `ctest -L 'unit|integration'` on it with
# every report fatal. Not part of .ci/run (a cold build alone takes longer than the rest of CI);
# the README says when to run it.
#
#   scripts/asan.sh [CTEST_ARGS...]     e.g. -R learner
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[[ -f build/asan/build.ninja ]] || cmake --preset asan >/dev/null
start=$(date +%s)
cmake --build --preset asan
built=$(date +%s)
# halt_on_error: a UBSan finding fails its test instead of scrolling past in the log.
# LibTorch's own allocations are not ours to fix: tests/sanitizers/lsan.supp names them.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
status=0
ctest --preset asan -L 'unit|integration' -j2 --timeout 1200 "$@" || status=$?
echo "asan: build $((built - start)) s, tests $(( $(date +%s) - built )) s (status $status)" >&2
exit $status
