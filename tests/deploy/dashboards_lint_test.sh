#!/usr/bin/env bash
# dashboards_lint: the Grafana dashboards in deploy/grafana/
#   1. are what deploy/grafana/generate.py writes;
#   2. pass deploy/grafana/lint.py;
#   3. the lint rejects each bad dashboard of deploy/grafana/testdata/ with the expected message
#      (and accepts testdata/ok.json, the template they are made from);
#   4. `lint.py queries` prints every target, one JSON object per line, with no variable left;
#   5. every query parses and returns a number (not nothing, not NaN) against a synthetic healthy
#      PPO run in promtool (tests/deploy/dashboard_queries_check.py).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
LINT=deploy/grafana/lint.py
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# 1. Generated files are current.
if ! "$PY" deploy/grafana/generate.py --check; then
  fail "deploy/grafana/*.json differ from generate.py's output: run $PY deploy/grafana/generate.py"
fi

# 2. The dashboards pass.
if ! "$PY" "$LINT" deploy/grafana/*.json; then
  fail "deploy/grafana dashboards have lint problems (above)"
fi

# 3. Each bad dashboard fails with its message (and only that problem).
declare -A expect=(
  [rate_on_gauge.json]='panel "Steps / s": rate() on gauge rlhf_learner_queue_depth'
  [hardcoded_range.json]='not the hard-coded range [5m]'
  [hardcoded_over_time.json]='hard-coded range [10m]'
  [missing_unit.json]='panel "Steps / s": no unit'
  [missing_description.json]='panel "Steps / s": no description'
  [missing_title.json]='panel "#1": no title'
  [unknown_metric.json]='unknown metric rlhf_learner_bogus_total'
  [hardcoded_datasource.json]='panel datasource is {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}'
  [variable_equals.json]='variable $instance in instance="$instance": use =~'
  [quantile_not_bucket.json]='histogram_quantile() over rlhf_learner_step_seconds_sum, not a _bucket series'
)
for f in deploy/grafana/testdata/*.json; do
  name=$(basename "$f")
  set +e
  out=$("$PY" "$LINT" "$f" 2>&1)
  rc=$?
  set -e
  if [[ $name == ok.json ]]; then
    [[ $rc == 0 ]] || fail "$f should pass the lint, got rc=$rc: $out"
    continue
  fi
  if [[ -z ${expect[$name]+x} ]]; then
    fail "$f has no expected message in $0"
    continue
  fi
  want=${expect[$name]}
  if [[ $rc != 1 ]]; then
    fail "$f: lint exit status $rc, want 1; output: $out"
  elif ! grep -qF -- "$f: " <<<"$out" || ! grep -qF -- "$want" <<<"$out"; then
    fail "$f: lint output lacks '$want'; output: $out"
  elif [[ $(grep -c . <<<"$out") != 1 ]]; then
    fail "$f: want exactly one problem, got: $out"
  else
    echo "ok: $name rejected: $out"
  fi
done
for name in "${!expect[@]}"; do
  [[ -f deploy/grafana/testdata/$name ]] || fail "deploy/grafana/testdata/$name is missing"
done

# 4. The queries mode.
queries=$("$PY" "$LINT" queries --rate-interval 1m)
count=$(grep -c . <<<"$queries" || true)
if [[ $count -lt 50 ]]; then
  fail "lint.py queries printed $count queries, expected all the dashboards' targets"
fi
if ! "$PY" -c '
import json, sys
seen = set()
for line in sys.stdin:
    q = json.loads(line)
    assert set(q) >= {"dashboard", "panel", "expr"}, q
    assert "$" not in q["expr"] and "[[" not in q["expr"], q
    seen.add(q["dashboard"])
want = {"overview", "learner", "rollout", "reward", "reference"}
assert seen == want, seen
' <<<"$queries"; then
  fail "lint.py queries output is not one JSON object per line with every variable substituted"
fi
echo "queries per dashboard:"
"$PY" -c '
import collections, json, sys
c = collections.Counter(json.loads(l)["dashboard"] for l in sys.stdin)
for d, n in sorted(c.items()):
    print(f"  {d}: {n}")
' <<<"$queries"

# 5. Against a synthetic run in promtool.
if ! command -v promtool >/dev/null; then
  fail "promtool not found: run scripts/setup.sh (it installs Debian's prometheus package)"
elif ! "$PY" tests/deploy/dashboard_queries_check.py <<<"$queries"; then
  fail "dashboard queries failed against the synthetic run (above)"
fi

if [[ $failures != 0 ]]; then
  echo "dashboards_lint: $failures failure(s)" >&2
  exit 1
fi
echo "dashboards_lint: OK"
