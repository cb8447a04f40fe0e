#!/usr/bin/env bash
# Strict offline validation of the Kubernetes manifests (deploy/k8s), no cluster, no network:
#   bash tests/deploy/k8s_manifests_test.sh build/release/cli/rlhf
# For every overlay (deploy/k8s/overlays/*): render with `kubectl kustomize` (no flags), check
# the schemas (deploy/k8s/validate/validate.py: the Kubernetes 1.36 JSON schemas of the PyPI
# package kubernetes-validate, strict) and the policy (policy.py, which runs `rlhf check-config`
# on every embedded service config); the same for the optional PodMonitor component and the
# prometheus-adapter rules; the scrape config and adapter rules against promtool and the
# rendered pods (prometheus.py); the dashboards list; the Dockerfile's user and binaries; and
# the negative cases (run_testdata.py): each deliberately broken manifest must be rejected with
# its expected message. The validator runs with the Python of its venv, which scripts/setup.sh
# makes (deploy/k8s/validate/venv.sh); nothing here reaches the network. Prints one line per
# check and a summary; exits 1 on any failure.
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 PATH/TO/rlhf" >&2
  exit 2
fi
RLHF=$(realpath -m "$1")
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
K8S=deploy/k8s
V=$K8S/validate
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# check-config results shared by the runs below (each run of rlhf costs about a second).
CACHE=$WORK/check-config-cache

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [[ -n ${2:-} && -s $2 ]] && sed 's/^/    /' "$2"; }
# run NAME CMD...: one check; its output is shown when it fails.
run() {
  local name=$1; shift
  local log="$WORK/log.$((passed + failed))"
  if "$@" >"$log" 2>&1; then pass "$name: $(tail -n 1 "$log")"; else fail "$name (exit $?)" "$log"; fi
}

# --- tools (no silent skips: a missing tool is a failure that says how to get it) ----------------
missing=0
for tool in kubectl promtool; do
  if ! command -v "$tool" >/dev/null; then
    fail "tool $tool not found: run scripts/setup.sh"
    missing=1
  fi
done
# shellcheck source=deploy/k8s/validate/venv.sh
source "$V/venv.sh"
PY=$K8S_VALIDATE_PYTHON
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
if [[ ! -x $PY ]]; then
  fail "the validator's venv $K8S_VALIDATE_VENV is missing: run scripts/setup.sh (it installs $V/requirements.txt there)"
  missing=1
elif ! "$PY" -c 'import yaml, jsonschema, kubernetes_validate' 2>"$WORK/venv.err"; then
  fail "the validator's venv $K8S_VALIDATE_VENV lacks its packages: run scripts/setup.sh" "$WORK/venv.err"
  missing=1
elif ! cmp -s "$V/requirements.txt" "$K8S_VALIDATE_VENV/requirements.installed.txt"; then
  fail "the validator's venv $K8S_VALIDATE_VENV was made from other requirements than $V/requirements.txt: run scripts/setup.sh"
  missing=1
fi
if [[ ! -x $RLHF ]]; then
  fail "rlhf binary $RLHF not found: build it (scripts/build.sh)"
  missing=1
fi
if ((missing)); then
  echo "k8s_manifests: $passed passed, $failed failed"
  exit 1
fi

# --- render and check every overlay ---------------------------------------------------------------
rendered=()
for dir in "$K8S"/overlays/*/; do
  o=$(basename "$dir")
  out="$WORK/$o.yaml"
  if kubectl kustomize "$dir" >"$out" 2>"$WORK/render.err"; then
    pass "render overlays/$o: $(grep -c '^kind:' "$out") objects"
    rendered+=("$out")
    run "schemas overlays/$o" "$PY" "$V/validate.py" "$out"
    run "policy overlays/$o" "$PY" "$V/policy.py" --rlhf "$RLHF" --cache-dir "$CACHE" "$out"
  else
    fail "render overlays/$o" "$WORK/render.err"
  fi
done
if ((${#rendered[@]} == 0)); then fail "no overlay rendered"; fi

# The optional PodMonitor component, on top of the gpu overlay (as an overlay would add it).
mkdir -p "$WORK/podmonitor"
rel=$(realpath --relative-to="$WORK/podmonitor" "$ROOT/$K8S")
cat >"$WORK/podmonitor/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: rlhf
resources: [$rel/overlays/gpu]
components: [$rel/components/podmonitor]
EOF
if kubectl kustomize "$WORK/podmonitor" >"$WORK/podmonitor.yaml" 2>"$WORK/render.err"; then
  if grep -q '^kind: PodMonitor' "$WORK/podmonitor.yaml"; then
    pass "render overlays/gpu + components/podmonitor"
    run "schemas overlays/gpu + components/podmonitor" "$PY" "$V/validate.py" "$WORK/podmonitor.yaml"
    run "policy overlays/gpu + components/podmonitor" "$PY" "$V/policy.py" --rlhf "$RLHF" --cache-dir "$CACHE" "$WORK/podmonitor.yaml"
  else
    fail "components/podmonitor rendered no PodMonitor"
  fi
else
  fail "render overlays/gpu + components/podmonitor" "$WORK/render.err"
fi

# The prometheus-adapter rules ConfigMap.
if kubectl kustomize "$K8S/prometheus-adapter" >"$WORK/adapter.yaml" 2>"$WORK/render.err"; then
  pass "render prometheus-adapter"
  run "schemas prometheus-adapter" "$PY" "$V/validate.py" "$WORK/adapter.yaml"
else
  fail "render prometheus-adapter" "$WORK/render.err"
fi

# The models loader pod (applied by hand, README.md).
run "schemas tools/models-loader.yaml" "$PY" "$V/validate.py" "$K8S/tools/models-loader.yaml"

# Scrape config, adapter rules and HPA metrics, against promtool and the rendered pods.
run "prometheus scrape config + adapter rules" "$PY" "$V/prometheus.py" --promtool "$(command -v promtool)" \
  --source-root "$ROOT" --scrape-config "$K8S/prometheus/scrape-config.yaml" \
  --adapter-config "$K8S/prometheus-adapter/config.yaml" "${rendered[@]}"

# --- the dashboards component lists exactly deploy/grafana/*.json ----------------------------------
check_dashboards() {
  local listed present
  listed=$(grep -oE 'files: \[[^]]+\]' deploy/grafana/kustomization.yaml | sed -E 's/files: \[(.*)\]/\1/' | tr ',' '\n' | tr -d ' ' | sort)
  present=$(cd deploy/grafana && ls -1 -- *.json 2>/dev/null | sort)
  if [[ -z $present ]]; then echo "deploy/grafana has no dashboard (*.json)"; return 1; fi
  if [[ $listed != "$present" ]]; then
    echo "deploy/grafana/kustomization.yaml lists:"; echo "$listed" | sed 's/^/  /'
    echo "deploy/grafana has:"; echo "$present" | sed 's/^/  /'
    echo "add a configMapGenerator entry per dashboard (or remove the stale one)"
    return 1
  fi
  local out f
  for out in "${rendered[@]}"; do
    for f in $present; do
      if ! grep -q "name: rlhf-dashboard-${f%.json}\$" "$out"; then echo "$(basename "$out"): no ConfigMap rlhf-dashboard-${f%.json}"; return 1; fi
    done
  done
  echo "$(echo "$present" | wc -l) dashboards, each a ConfigMap labelled grafana_dashboard=1"
}
run "dashboards component" check_dashboards

# --- the Dockerfile makes the image the manifests run ---------------------------------------------
check_dockerfile() {
  local uid bad=0
  uid=$(grep -hoE 'runAsUser: [0-9]+' "${rendered[@]}" | sort -u)
  if [[ $(echo "$uid" | wc -l) -ne 1 ]]; then echo "manifests use several runAsUser values: $uid"; return 1; fi
  uid=${uid#runAsUser: }
  grep -qE "^USER ${uid}(:[0-9]+)?\$" Dockerfile || { echo "Dockerfile has no 'USER $uid' (the manifests' runAsUser)"; bad=1; }
  for b in $(grep -hoE '/opt/rlhf/bin/[a-z]+' "${rendered[@]}" | sort -u); do
    grep -q "$b" Dockerfile || { echo "Dockerfile does not install $b (a container command)"; bad=1; }
  done
  [[ -f .dockerignore ]] || { echo "no .dockerignore"; bad=1; }
  ((bad == 0)) && echo "USER $uid and every container command in the image"
}
run "Dockerfile" check_dockerfile

# --- negative cases: the validators must reject each broken manifest with its message -------------
run "negative and control cases ($V/testdata)" "$PY" "$V/run_testdata.py" --rlhf "$RLHF" --cache-dir "$CACHE"

echo "k8s_manifests: $passed passed, $failed failed"
((failed == 0))
