#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz (README there) outside CI:
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--merge] [TARGET...]
# builds the fuzz preset (clang, ASan + UBSan), then runs each target (default: all) for N
# seconds (default 600), J at a time (default 1), from the regression corpus plus the fixtures
# of ../shared where there are some (copied into build/fuzz/work, never into the project).
# Prints one JSON line per target: executions, executions/s, coverage (edges) and features,
# corpus size, and crashes (each kept under build/fuzz/artifacts/<target>/). With --merge, the
# runs start from the regression corpus alone (no fixtures: nothing derived from ../shared may
# enter the project) and the inputs that add coverage (at most 16 KiB each) are merged into
# tests/fuzz/corpus/<target>.
# Exit status 1 when a target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=600
JOBS=1
MERGE=0
TARGETS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --merge) MERGE=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
ALL=(safetensors llama2c_model tokenizer tensor_codec weight_chunks journal config records)
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (${ALL[*]})" >&2; exit 2; }
done
bash scripts/setup.sh  # clang-14 and libclang-rt-14-dev among the rest
[[ -f build/fuzz/build.ninja ]] || cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
SHARED=${RLHF_SHARED_DIR:-$(cd .. && pwd)/shared}
WORK=build/fuzz/work

seed() {  # target -> extra seed files from the fixtures and the project's own configs
  case $1 in
    safetensors) ls "$SHARED"/models/stories260K-hf*/*.safetensors 2>/dev/null ;;
    tokenizer) ls "$SHARED"/models/tok512.bin "$SHARED"/models/tok512.model 2>/dev/null ;;
    config) ls configs/*.yaml deploy/k8s/base/configs/*.yaml 2>/dev/null ;;
  esac
}

run_one() {
  local t=$1 corpus=$WORK/$1/corpus art=build/fuzz/artifacts/$1/
  rm -rf "$WORK/$t" "$art"
  mkdir -p "$corpus" "$art"
  cp tests/fuzz/corpus/"$t"/* "$corpus"/
  if [[ $MERGE == 0 ]]; then
    for f in $(seed "$t"); do cp "$f" "$corpus/fixture-$(basename "$f")"; done
    case $t in records)  # the first records of the real data, not the whole files
      [[ -d $SHARED/data/hh ]] && head -c 4096 "$SHARED"/data/hh/red-team-prompts.jsonl > "$corpus/fixture-red-team" || true ;;
    esac
  fi
  local max_len=16384
  [[ $MERGE == 0 && ($t == safetensors || $t == tokenizer) ]] && max_len=65536
  local log=$WORK/$t/fuzz.log rc=0
  (cd "$WORK/$t" && TMPDIR=$PWD "$OLDPWD/build/fuzz/tests/fuzz/${t}_fuzz" corpus \
      -max_total_time="$SECONDS_PER" -max_len=$max_len -rss_limit_mb=4096 -timeout=30 \
      -print_final_stats=1 -artifact_prefix="$OLDPWD/$art" > fuzz.log 2>&1) || rc=$?
  local execs cov ft crashes
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | grep -o '[0-9]*' || echo 0)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n1 | grep -o '[0-9]*' || echo 0)
  crashes=$(find "$art" -type f | wc -l)
  printf '{"fuzz":"%s","seconds":%s,"execs":%s,"execs_per_s":%s,"cov":%s,"ft":%s,"corpus":%s,"crashes":%s,"exit":%s,"log":"%s"}\n' \
    "$t" "$SECONDS_PER" "${execs:-0}" "$(( ${execs:-0} / SECONDS_PER ))" "${cov:-0}" "${ft:-0}" \
    "$(ls "$corpus" | wc -l)" "$crashes" "$rc" "$log"
  if [[ $MERGE == 1 ]]; then
    "build/fuzz/tests/fuzz/${t}_fuzz" -merge=1 -max_len=16384 tests/fuzz/corpus/"$t" "$corpus" \
      > "$WORK/$t/merge.log" 2>&1 || true
    find tests/fuzz/corpus/"$t" -type f -size +16k -delete
  fi
}

export -f run_one seed
export SECONDS_PER WORK SHARED MERGE
status=0
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}' | tee build/fuzz/report.jsonl
grep -q '"crashes":0,' build/fuzz/report.jsonl && ! grep -q '"crashes":[1-9]' build/fuzz/report.jsonl || status=1
exit $status
