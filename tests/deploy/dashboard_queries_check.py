#!/usr/bin/env python3
"""Every dashboard query returns a number against a synthetic PPO run, checked with promtool.

Reads the queries that `deploy/grafana/lint.py queries --rate-interval 1m` prints (stdin), and
writes a `promtool test rules` file whose input series model ten minutes of a healthy PPO run
the way the services export it (one learner, two rollout workers, reward and reference, every
series with its `service` and `instance` labels), including what such a run does NOT export:
no error codes, no retries, no returned leases, no Generate RPCs (the rollout service's
"generate" batcher and RPC histograms stay at zero). Each query must then give at least one
sample that is not NaN at the end of the run: `count((QUERY) >= -Inf)` is compared with 1
(clamped). So a query whose vector matching is wrong, whose labels do not exist, or which is
empty or NaN when nothing went wrong fails here, long before a real Prometheus sees it.

usage: lint.py queries --rate-interval 1m | dashboard_queries_check.py [--keep DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

STEPS = 40  # samples after the first, 15 s apart: 10 minutes

SERIES = []


def labels(**kv):
    return "{" + ", ".join(f'{k}="{v}"' for k, v in kv.items()) + "}"


def series(name, lbls, values):
    SERIES.append({"series": name + lbls, "values": values})


def counter(name, per_step, **lbls):
    series(name, labels(**lbls), f"0+{per_step}x{STEPS}")


def gauge(name, value, **lbls):
    series(name, labels(**lbls), f"{value}+0x{STEPS}")


def histogram(name, buckets, per_step, value, **lbls):
    """per_step observations of `value` every 15 s (0 = an idle histogram)."""
    for le in list(buckets) + ["+Inf"]:
        inc = per_step if le == "+Inf" or value <= le else 0
        series(name + "_bucket", labels(**lbls, le=le), f"0+{inc}x{STEPS}")
    series(name + "_sum", labels(**lbls), f"0+{per_step * value}x{STEPS}")
    series(name + "_count", labels(**lbls), f"0+{per_step}x{STEPS}")


RPC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
HEALTH = "/grpc.health.v1.Health/Check"


def rpc(svc, inst, method, per_step, latency):
    counter("rlhf_rpc_requests_total", per_step, service=svc, instance=inst, job="rlhf",
            method=method, code="OK")
    histogram("rlhf_rpc_latency_seconds", RPC_BUCKETS, per_step, latency, service=svc,
              instance=inst, job="rlhf", method=method)


def health_checked_once(svc, inst):
    # The launcher's readiness probe at start, then nothing.
    series("rlhf_rpc_requests_total",
           labels(service=svc, instance=inst, job="rlhf", method=HEALTH, code="OK"),
           f"1+0x{STEPS}")
    for le in RPC_BUCKETS + ["+Inf"]:
        series("rlhf_rpc_latency_seconds_bucket",
               labels(service=svc, instance=inst, job="rlhf", method=HEALTH, le=le),
               f"1+0x{STEPS}")
    series("rlhf_rpc_latency_seconds_sum",
           labels(service=svc, instance=inst, job="rlhf", method=HEALTH), f"0.0005+0x{STEPS}")
    series("rlhf_rpc_latency_seconds_count",
           labels(service=svc, instance=inst, job="rlhf", method=HEALTH), f"1+0x{STEPS}")


def process(svc, inst):
    lb = dict(service=svc, instance=inst, job="rlhf")
    series("up", labels(**lb), f"1+0x{STEPS}")
    counter("rlhf_process_cpu_seconds_total", 9, **lb)
    gauge("rlhf_process_resident_memory_bytes", 300e6, **lb)
    gauge("rlhf_process_virtual_memory_bytes", 2e9, **lb)
    gauge("rlhf_process_threads", 12, **lb)
    gauge("rlhf_process_start_time_seconds", 0, **lb)


BATCH_ITEMS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
BATCH_SECONDS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10]


def batcher(svc, inst, name, batches_per_step, items_per_batch, seconds, max_batch):
    lb = dict(service=svc, instance=inst, job="rlhf", batcher=name)
    gauge("rlhf_batcher_queued_items", 0, **lb)
    counter("rlhf_batcher_items_total", batches_per_step * items_per_batch, **lb)
    counter("rlhf_batcher_rejected_items_total", 0, **lb)
    histogram("rlhf_batcher_batch_items", BATCH_ITEMS, batches_per_step, items_per_batch, **lb)
    histogram("rlhf_batcher_batch_seconds", BATCH_SECONDS, batches_per_step, seconds, **lb)
    gauge("rlhf_batcher_max_batch_items", max_batch, **lb)


def ppo_run():
    learner, reward, reference = "127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103"
    workers = ["127.0.0.1:9104", "127.0.0.1:9105"]
    for svc, inst in [("learner", learner), ("reward", reward), ("reference", reference)] + [
            ("rollout", w) for w in workers]:
        process(svc, inst)
        health_checked_once(svc, inst)

    # Learner.
    lb = dict(service="learner", instance=learner, job="rlhf")
    rpc("learner", learner, "/rlhf.v1.Learner/LeasePrompts", 4, 0.02)
    rpc("learner", learner, "/rlhf.v1.Learner/GetWeights", 2, 0.05)
    for stage in ("received", "accepted", "consumed"):
        counter("rlhf_learner_trajectories_total", 16, stage=stage, **lb)
    for reason, n in (("duplicate", 0), ("invalid", 0), ("stale", 1), ("cancelled", 0)):
        counter("rlhf_learner_trajectories_dropped_total", n, reason=reason, **lb)
    gauge("rlhf_learner_queue_depth", 8, **lb)
    gauge("rlhf_learner_parked_streams", 0, **lb)
    gauge("rlhf_learner_push_streams", 2, **lb)
    for event, n in (("leased", 16), ("completed", 16), ("returned", 0), ("expired", 0)):
        counter("rlhf_learner_prompts_total", n, event=event, **lb)
    series("rlhf_learner_policy_version", labels(**lb), f"0+1x{STEPS}")
    counter("rlhf_learner_weight_bytes_sent_total", 2e6, **lb)
    counter("rlhf_learner_steps_total", 1, **lb)
    counter("rlhf_learner_tokens_trained_total", 384, **lb)
    histogram("rlhf_learner_step_seconds", [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100], 1, 9, **lb)
    for phase, s in (("wait_data", 5), ("forward_backward", 7), ("allreduce", 0),
                     ("optimizer", 2), ("publish", 1)):
        counter("rlhf_learner_step_phase_seconds_total", s, phase=phase, **lb)
    histogram("rlhf_learner_policy_lag", [0, 1, 2, 3, 4, 8, 16], 16, 1, **lb)
    for stat, v in (("reward_mean", 0.5), ("kl_mean", 3.2), ("kl_coef", 0.1),
                    ("clipfrac", 0.2), ("entropy", 2.7), ("value_loss", 0.05),
                    ("policy_loss", -0.01), ("explained_variance", 0.3),
                    ("approx_kl", 0.01), ("response_length_mean", 24)):
        gauge("rlhf_ppo_stat", v, stat=stat, **lb)

    # Reward and reference.
    rpc("reward", reward, "/rlhf.v1.Reward/Score", 4, 0.004)
    batcher("reward", reward, "reward", 2, 16, 0.002, 64)
    rpc("reference", reference, "/rlhf.v1.Reference/LogProbs", 4, 0.03)
    batcher("reference", reference, "reference", 2, 16, 0.02, 64)

    # Rollout workers: PPO only, nobody calls their Generate RPC.
    for w in workers:
        lb = dict(service="rollout", instance=w, job="rlhf")
        batcher("rollout", w, "generate", 0, 0, 0, 16)
        counter("rlhf_rollout_trajectories_generated_total", 8, **lb)
        counter("rlhf_rollout_tokens_generated_total", 192, **lb)
        counter("rlhf_rollout_resent_total", 0, **lb)
        counter("rlhf_rollout_weight_syncs_total", 1, **lb)
        counter("rlhf_rollout_weight_sync_bytes_total", 1e6, **lb)
        series("rlhf_rollout_policy_version", labels(**lb), f"-1+1x{STEPS}")
        gauge("rlhf_rollout_unacked", 4, **lb)
        counter("rlhf_rollout_push_blocked_seconds_total", 3, **lb)
        counter("rlhf_rollout_lease_wait_seconds_total", 1.5, **lb)
        for outcome, n in (("accepted", 8), ("duplicate", 0), ("invalid", 0), ("stale", 0)):
            counter("rlhf_rollout_acks_total", n, outcome=outcome, **lb)
        histogram("rlhf_rollout_generation_seconds",
                  [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100], 1, 2, **lb)
        histogram("rlhf_rollout_weight_sync_seconds",
                  [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30], 1, 0.05, **lb)
        # No rlhf_rollout_retries_total, no rlhf_rollout_leases_returned_total: created on the
        # first retry / returned lease, which a healthy run does not have.


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", help="write the promtool test file into this directory and "
                        "keep it")
    parser.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    args = parser.parse_args()
    queries = [json.loads(line) for line in sys.stdin if line.strip()]
    if not queries:
        print("no queries on stdin", file=sys.stderr)
        return 1
    ppo_run()
    tests = []
    for q in queries:
        where = f"{q['dashboard']} / {q['panel']} / {q.get('refId', '')}"
        tests.append({
            # The comment names the panel in promtool's failure report.
            "expr": f"clamp_max(count(({q['expr']}) >= -Inf), 1)\n# {where}",
            "eval_time": f"{STEPS * 15}s",
            "exp_samples": [{"labels": "{}", "value": 1}],
        })
    doc = {"rule_files": [], "evaluation_interval": "15s",
           "tests": [{"interval": "15s", "input_series": SERIES, "promql_expr_test": tests}]}
    out_dir = args.keep or tempfile.mkdtemp(prefix="dashboard-queries-")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "dashboard_queries_test.yml")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)  # JSON is YAML
    try:
        r = subprocess.run([args.promtool, "test", "rules", path], capture_output=True,
                           text=True)
    finally:
        if not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    if r.returncode != 0:
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        print(f"FAIL: some dashboard queries return nothing or NaN on a synthetic healthy run "
              f"({len(queries)} queries checked)", file=sys.stderr)
        return 1
    print(f"{len(queries)} dashboard queries return a number on a synthetic PPO run "
          f"(promtool test rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
