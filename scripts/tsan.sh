#!/usr/bin/env bash
# ThreadSanitizer over the concurrency libraries that run no OpenMP kernels (the dynamic batcher,
# the prompt pool with its lease gate, the trajectory queue, the journal and its sync thread) and
# their tests. Not part of .ci/run (about 10 minutes cold); the README says when to run it.
#
# An uninstrumented absl::Mutex is invisible to TSan (every field it guards would "race"), and
# Debian ships Abseil uninstrumented, so this script first builds Debian's own Abseil source
# package (same version, same patches, same inline namespace) with -fsanitize=thread as shared
# libraries under build/tsan-absl/, and runs the tests with those first on LD_LIBRARY_PATH: our
# code, gRPC and protobuf then all lock through the instrumented Mutex.
#
#   scripts/tsan.sh [--repeat N]   every test N times (default 3); exit 1 on any report
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=3
if [[ ${1:-} == --repeat ]]; then REPEAT=$2; shift 2; fi
bash scripts/setup.sh  # clang-14 among the rest
start=$(date +%s)

ABSL_DIR=build/tsan-absl
version=$(dpkg-query -W -f='${Version}' libabsl-dev)  # e.g. 20220623.1-1+deb12u2
upstream=${version%-*}
if [[ ! -f $ABSL_DIR/lib/.done-$version ]]; then
  echo "tsan: building Abseil $version with -fsanitize=thread (once)" >&2
  rm -rf "$ABSL_DIR"
  mkdir -p "$ABSL_DIR/download"
  pool=http://deb.debian.org/debian/pool/main/a/abseil
  for f in "abseil_${version}.dsc" "abseil_${upstream}.orig.tar.gz" \
           "abseil_${version}.debian.tar.xz"; do
    curl -sSfL -o "$ABSL_DIR/download/$f" "$pool/$f"
  done
  # dpkg-source checks every file against the .dsc's checksums and applies Debian's patches.
  dpkg-source -x "$ABSL_DIR/download/abseil_${version}.dsc" "$ABSL_DIR/src" >/dev/null
  cmake -S "$ABSL_DIR/src" -B "$ABSL_DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" -DBUILD_TESTING=OFF >/dev/null
  # The libraries our code, gRPC and protobuf lock through; the rest stay Debian's.
  ninja -C "$ABSL_DIR/build" -j "${JOBS:-2}" synchronization status statusor \
    time strings str_format_internal cord base >/dev/null
  mkdir -p "$ABSL_DIR/lib"
  # Named as Debian names them, so that the dynamic loader takes them in place of Debian's.
  for lib in "$ABSL_DIR"/build/absl/*/libabsl_*.so; do
    base=$(basename "$lib")
    debian=$(ls /usr/lib/x86_64-linux-gnu/"$base".* 2>/dev/null | head -1 || true)
    [[ -n $debian ]] || continue
    soname=$(objdump -p "$debian" | awk '/SONAME/ {print $2}')
    cp "$lib" "$ABSL_DIR/lib/$soname"
  done
  touch "$ABSL_DIR/lib/.done-$version"
fi
ABSL_LIB=$(cd "$ABSL_DIR/lib" && pwd)

TESTS=(dynamic_batcher_test prompt_pool_test trajectory_queue_test trajectory_journal_test)
[[ -f build/tsan/build.ninja ]] || cmake --preset tsan >/dev/null
cmake --build build/tsan -j "${JOBS:-2}" --target "${TESTS[@]}"

export LD_LIBRARY_PATH=$ABSL_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4 suppressions=$PWD/tests/sanitizers/tsan.supp ${TSAN_OPTIONS:-}"
status=0
for t in "${TESTS[@]}"; do
  bin=$(find build/tsan -name "$t" -type f -executable | head -1)
  # The instrumented Mutex must be the one loaded, or the run proves nothing.
  libs=$(ldd "$bin")
  if [[ $libs != *"libabsl_synchronization.so.20220623 => $ABSL_LIB/"* ]]; then
    echo "tsan: $t does not load $ABSL_LIB/libabsl_synchronization" >&2
    exit 1
  fi
  for ((i = 1; i <= REPEAT; ++i)); do
    if ! "$bin" --gtest_brief=1 >"build/tsan/$t.$i.log" 2>&1; then
      echo "tsan: $t (run $i) failed; build/tsan/$t.$i.log:" >&2
      grep -A30 "WARNING: ThreadSanitizer" "build/tsan/$t.$i.log" | head -60 >&2 || \
        tail -30 "build/tsan/$t.$i.log" >&2
      status=1
      break
    fi
  done
  [[ $status == 0 ]] && echo "tsan: $t clean in $REPEAT runs" >&2
done
echo "tsan: done in $(( $(date +%s) - start )) s (status $status)" >&2
exit $status
