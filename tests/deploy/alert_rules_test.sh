#!/usr/bin/env bash
# alert_rules: deploy/prometheus/alerts.yml is valid (promtool check rules), its unit tests pass
# (promtool test rules deploy/prometheus/alerts_test.yml: every alert fires on a bad synthetic
# series and stays silent on a healthy one), and the example local Prometheus config is valid.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null; then
  echo "FAIL: promtool not found: run scripts/setup.sh (it installs Debian's prometheus package)" >&2
  exit 1
fi
promtool --version 2>&1 | sed -n 1p

promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml

# Every alert in alerts.yml has a unit test.
missing=0
for alert in $(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' deploy/prometheus/alerts.yml); do
  if ! grep -q "alertname: $alert\$" deploy/prometheus/alerts_test.yml; then
    echo "FAIL: alert $alert has no test in deploy/prometheus/alerts_test.yml" >&2
    missing=1
  fi
done
[[ $missing == 0 ]]

# The example config for a local run: valid, with its rule file (prometheus_targets.json is
# written by `rlhf local` at run time; the example stands in for it here).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp deploy/prometheus/prometheus-local.yml deploy/prometheus/alerts.yml "$tmp/"
cp deploy/prometheus/prometheus_targets.example.json "$tmp/prometheus_targets.json"
promtool check config "$tmp/prometheus-local.yml"
echo "alert_rules: OK"
