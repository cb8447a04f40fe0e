#!/usr/bin/env python3
"""The observability stack against a real run: `rlhf local` on the stories260K fixture (learner,
two rollout workers, reward and reference as separate processes) scraped by a real Prometheus.

Checks, in order:
  1. every service's /metrics passes `promtool check metrics` and serves exactly the families of
     docs/metrics.md that belong to it, with the catalogue's type and label names;
  2. Prometheus, started from deploy/prometheus/prometheus-local.yml (the example config the
     README points local users to), discovers every process through the run directory's
     prometheus_targets.json and scrapes them all;
  3. every query of every dashboard in deploy/grafana/ (as `lint.py queries` prints them) parses
     and returns at least one sample;
  4. every alerting rule of deploy/prometheus/alerts.yml evaluates without error, and the alerts
     that mean "broken" (ServiceDown, LearnerStalled, LedgerNotBalancing) are not pending or
     firing on this healthy run.

usage: prometheus_e2e_test.py --rlhf build/release/cli/rlhf [--keep DIR]
Run from the repository root (the run config names ../shared and configs/ relative to it).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CATALOGUE = os.path.join(ROOT, "docs", "metrics.md")
PROMETHEUS_CONFIG = os.path.join(ROOT, "deploy", "prometheus", "prometheus-local.yml")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
LINT = os.path.join(ROOT, "deploy", "grafana", "lint.py")
RUN_CONFIG = os.path.join(ROOT, "configs", "local_stories260k.yaml")
PROCESSES = 5  # learner, reward, reference, 2 rollout workers
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape: at least 4 scrapes
BROKEN_ALERTS = {"ServiceDown", "LearnerStalled", "LedgerNotBalancing"}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", flush=True)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_for(what, predicate, timeout, procs):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}")
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def read_catalogue():
    """{name: (type, set(labels), set(services))} from the markdown table."""
    out = {}
    for line in open(CATALOGUE):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not cells[0].startswith("`rlhf_"):
            continue
        name = cells[0].strip("`")
        labels = {l.strip() for l in cells[3].split(",") if l.strip()}
        services = {s.strip() for s in cells[4].split(",") if s.strip()}
        if "all" in services:
            services = {"learner", "rollout", "reward", "reference"}
        out[name] = (cells[1], labels, services)
    if not out:
        raise RuntimeError(f"no metrics found in {CATALOGUE}")
    return out


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ")


def families(text):
    """{family: (type, set(label names))} of one scrape (histogram suffixes and `le` folded)."""
    types, labels = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            labels.setdefault(name, set())
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if not m:
                continue
            name = m.group(1)
            if name not in types:
                name = re.sub(r"_(bucket|sum|count)$", "", name)
            names = set(re.findall(r'(\w+)="', m.group(2) or "")) - {"le"}
            labels.setdefault(name, set()).update(names)
    return {n: (types.get(n, "untyped"), labels[n]) for n in labels}


def check_scrapes(targets, catalogue, keep):
    served_by_service = {}
    for group in targets:
        service, process = group["labels"]["service"], group["labels"]["process"]
        url = f"http://{group['targets'][0]}/metrics"
        body = http_get(url)
        if keep:
            with open(os.path.join(keep, f"scrape-{process}.txt"), "w") as f:
                f.write(body)
        if "# TYPE" not in body:
            fail(f"{process}: empty scrape at {url}")
            continue
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                              capture_output=True)
        if lint.returncode != 0 or lint.stdout.strip() or lint.stderr.strip():
            fail(f"{process}: promtool check metrics: {(lint.stdout + lint.stderr).strip()}")
        fams = families(body)
        served_by_service.setdefault(service, {}).update(fams)
        for name, (kind, labels) in sorted(fams.items()):
            if name not in catalogue:
                fail(f"{process}: serves {name} ({kind}), which docs/metrics.md does not list")
                continue
            want_kind, want_labels, services = catalogue[name]
            if kind != want_kind:
                fail(f"{process}: {name} is a {kind}, docs/metrics.md says {want_kind}")
            if labels != want_labels:
                fail(f"{process}: {name} has labels {sorted(labels)}, docs/metrics.md says "
                     f"{sorted(want_labels)}")
            if service not in services:
                fail(f"{process}: serves {name}, which docs/metrics.md lists for {sorted(services)}")
    for name, (_, _, services) in sorted(catalogue.items()):
        for service in sorted(services):
            if name not in served_by_service.get(service, {}):
                fail(f"docs/metrics.md lists {name} for {service}, which does not serve it")
    log(f"scrapes: {len(targets)} processes, {sum(len(v) for v in served_by_service.values())} "
        f"families checked against {len(catalogue)} catalogue entries and promtool")


def prometheus_config(run_dir, out_path):
    """deploy/prometheus/prometheus-local.yml with its file_sd and rule paths made absolute."""
    text = open(PROMETHEUS_CONFIG).read()
    text = text.replace("prometheus_targets.json",
                        os.path.join(run_dir, "prometheus_targets.json"))
    text = text.replace("alerts.yml", ALERTS)
    with open(out_path, "w") as f:
        f.write(text)


def query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        reply = json.loads(http_get(url))
    except urllib.error.HTTPError as e:
        reply = json.loads(e.read().decode())
    return reply


def dashboard_queries():
    out = subprocess.run([sys.executable, LINT, "queries", "--rate-interval", RATE_INTERVAL],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rlhf", required=True, help="the rlhf binary")
    parser.add_argument("--keep", help="keep the run directory, scrapes and Prometheus data here")
    args = parser.parse_args()
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: run scripts/setup.sh (Debian package prometheus)")
            return 1
    work = args.keep or tempfile.mkdtemp(prefix="rlhf-prometheus-e2e-")
    os.makedirs(work, exist_ok=True)
    run_dir = os.path.join(work, "run")
    shutil.rmtree(run_dir, ignore_errors=True)
    procs = {}
    logs = []
    try:
        catalogue = read_catalogue()
        # A run long enough for every check; stopped at the end.
        local_log = open(os.path.join(work, "rlhf-local.log"), "w")
        logs.append(local_log)
        procs["rlhf local"] = subprocess.Popen(
            [args.rlhf, "--threads", "1", "local", "--config", RUN_CONFIG, "--set",
             f"run_dir={run_dir}", "--set", "learner.total_steps=100000"],
            stdout=local_log, stderr=subprocess.STDOUT, cwd=ROOT)
        targets_path = os.path.join(run_dir, "prometheus_targets.json")

        def all_targets():
            t = json.load(open(targets_path))
            return t if len(t) == PROCESSES else None

        targets = wait_for("every process in prometheus_targets.json", all_targets, 180, procs)
        log(f"run up: {', '.join(g['labels']['process'] for g in targets)}")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config_path = os.path.join(work, "prometheus.yml")
        prometheus_config(run_dir, config_path)
        prom_log = open(os.path.join(work, "prometheus.log"), "w")
        logs.append(prom_log)
        procs["prometheus"] = subprocess.Popen(
            ["prometheus", f"--config.file={config_path}",
             f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=prom_log, stderr=subprocess.STDOUT)
        wait_for("Prometheus ready", lambda: http_get(f"{base}/-/ready"), 60, procs)

        def scraping_all():
            active = json.loads(http_get(f"{base}/api/v1/targets"))["data"]["activeTargets"]
            up = [t for t in active if t["health"] == "up"]
            return len(up) == PROCESSES

        wait_for("Prometheus scraping every process", scraping_all, 60, procs)
        log("Prometheus scrapes every process")
        # Let the learner train for a while first: PPO statistics exist after the first step,
        # and rate windows need several scrapes.
        wait_for("5 PPO steps in Prometheus", lambda: query(
            base, "sum(rlhf_learner_steps_total) >= 5")["data"]["result"], 180, procs)
        time.sleep(12)

        check_scrapes(targets, catalogue, args.keep)

        queries = dashboard_queries()
        if not queries:
            fail("lint.py queries printed no queries")
        empty = 0
        for q in queries:
            reply = query(base, q["expr"])
            where = f"{q['dashboard']} / {q['panel']!r}: {q['expr']}"
            if reply.get("status") != "success":
                fail(f"{where}: {reply.get('errorType')}: {reply.get('error')}")
            elif not reply["data"]["result"]:
                empty += 1
                fail(f"{where}: no data")
        log(f"dashboards: {len(queries)} queries, {len(queries) - empty} with data")

        groups = json.loads(http_get(f"{base}/api/v1/rules"))["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if not rules:
            fail(f"Prometheus loaded no rules from {ALERTS}")
        for r in rules:
            if r.get("health") != "ok":
                fail(f"rule {r['name']}: health {r.get('health')}: {r.get('lastError')}")
            if r["name"] in BROKEN_ALERTS and r.get("state") in ("pending", "firing"):
                fail(f"alert {r['name']} is {r['state']} on a healthy run")
        log(f"alert rules: {len(rules)} evaluated")
    except Exception as e:  # a setup failure is a test failure with its reason
        fail(str(e))
    finally:
        for name in ("prometheus", "rlhf local"):
            p = procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT if name == "rlhf local" else signal.SIGTERM)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
        for f in logs:
            f.close()
        if failures:
            for name in ("rlhf-local.log", "prometheus.log"):
                path = os.path.join(work, name)
                if os.path.exists(path):
                    tail = open(path).read()[-3000:]
                    print(f"--- tail of {name}\n{tail}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
