#!/usr/bin/env python3
"""Writes the Grafana dashboards of this directory (overview, learner, rollout, reward, reference).

The JSON files are generated so that the five dashboards share one panel style, one RPC/process
section and one batcher section; edit this file, then run

    python3 deploy/grafana/generate.py          # rewrite the *.json files
    python3 deploy/grafana/generate.py --check  # exit 1 if a *.json file differs (the test does)

Every query follows the rules of lint.py (datasource variable, $__rate_interval, rate() only on
counters, units and descriptions everywhere) and is written to return a sample during a normal
PPO run: series that exist only after an error (a non-OK RPC code, a retry, a returned lease) are
completed with `or on() vector(0)`, and histograms that can be idle (RPC latency, the rollout
service's Generate batcher, which a PPO run never calls) fall back to 0 instead of NaN.
"""
import argparse
import json
import os
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"
# gRPC codes that are not server errors: a client cancelling a stream (WatchVersion ends that way)
# and NOT_FOUND, which the protocol documents as harmless (ReturnLease of an expired lease,
# GetWeights before the first version).
NOT_ERRORS = "OK|CANCELLED|NOT_FOUND"
HERE = os.path.dirname(os.path.abspath(__file__))


def rate(selector):
    return f"rate({selector}[{RI}])"


def quantile_or_zero(q, metric, matchers, by=""):
    """histogram_quantile that yields 0 (not NaN / nothing) while the histogram is idle."""
    group = f"le, {by}" if by else "le"
    return (f"histogram_quantile({q}, sum by ({group}) ({rate(metric + '_bucket' + matchers)}))"
            f" >= 0 or on() vector(0)")


def quantile(q, metric, matchers, by=""):
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) ({rate(metric + '_bucket' + matchers)}))"


def mean(metric, matchers, by=""):
    agg = f"sum by ({by}) " if by else "sum"
    return (f"{agg}({rate(metric + '_sum' + matchers)})"
            f" / {agg}({rate(metric + '_count' + matchers)})")


def mean_or_zero(metric, matchers, by=""):
    agg = f"sum by ({by}) " if by else "sum"
    return (f"{agg}({rate(metric + '_sum' + matchers)})"
            f" / clamp_min({agg}({rate(metric + '_count' + matchers)}), 1e-9)")


class Dashboard:
    """A Grafana 10 dashboard model with a simple left-to-right, top-to-bottom layout."""

    def __init__(self, uid, title, description, variables):
        self.uid = uid
        self.title = title
        self.description = description
        self.variables = variables
        self.panels = []
        self._x = 0
        self._y = 0
        self._h = 0

    def _next_id(self):
        return len(self.panels) + 1

    def row(self, title):
        if self._x:
            self._y += self._h
        self.panels.append({
            "type": "row", "title": title, "collapsed": False, "id": self._next_id(),
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y}, "panels": []})
        self._y += 1
        self._x = 0
        self._h = 0

    def _place(self, w, h):
        if self._x + w > 24:
            self._y += self._h
            self._x = 0
            self._h = 0
        pos = {"h": h, "w": w, "x": self._x, "y": self._y}
        self._x += w
        self._h = max(self._h, h)
        return pos

    @staticmethod
    def _targets(targets):
        out = []
        for i, (expr, legend) in enumerate(targets):
            out.append({"datasource": DS, "editorMode": "code", "expr": expr,
                        "legendFormat": legend, "range": True, "refId": chr(ord("A") + i)})
        return out

    def timeseries(self, title, description, unit, targets, w=8, h=8, stack=False, minimum=None,
                   maximum=None, decimals=None):
        defaults = {
            "unit": unit,
            "color": {"mode": "palette-classic"},
            "custom": {
                "drawStyle": "line", "lineInterpolation": "linear", "lineWidth": 1,
                "fillOpacity": 40 if stack else 10, "gradientMode": "none",
                "showPoints": "never", "pointSize": 4, "spanNulls": False,
                "axisPlacement": "auto", "axisLabel": "", "axisCenteredZero": False,
                "scaleDistribution": {"type": "linear"},
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                "thresholdsStyle": {"mode": "off"},
                "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            },
            "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
            "mappings": [],
        }
        if minimum is not None:
            defaults["min"] = minimum
        if maximum is not None:
            defaults["max"] = maximum
        if decimals is not None:
            defaults["decimals"] = decimals
        self.panels.append({
            "type": "timeseries", "title": title, "description": description, "datasource": DS,
            "id": self._next_id(), "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True,
                           "calcs": []},
                "tooltip": {"mode": "multi", "sort": "desc"},
            },
            "targets": self._targets(targets),
        })

    def stat(self, title, description, unit, targets, w=4, h=4, thresholds=None, decimals=None):
        steps = thresholds or [{"color": "green", "value": None}]
        defaults = {"unit": unit, "color": {"mode": "thresholds"}, "mappings": [],
                    "thresholds": {"mode": "absolute", "steps": steps}}
        if decimals is not None:
            defaults["decimals"] = decimals
        self.panels.append({
            "type": "stat", "title": title, "description": description, "datasource": DS,
            "id": self._next_id(), "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                "orientation": "auto", "textMode": "auto",
            },
            "targets": self._targets(targets),
        })

    def model(self):
        return {
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"}]},
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": [{"asDropdown": True, "icon": "external link", "includeVars": False,
                       "keepTime": True, "tags": ["rlhf"], "targetBlank": False,
                       "title": "RLHF dashboards", "tooltip": "", "type": "dashboards",
                       "url": ""}],
            "liveNow": False,
            "panels": self.panels,
            "refresh": "30s",
            "schemaVersion": 38,
            "tags": ["rlhf"],
            "templating": {"list": self.variables},
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "timezone": "",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }


def datasource_variable():
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "includeAll": False,
            "multi": False, "options": [], "refresh": 1, "regex": "", "skipUrlSync": False}


def query_variable(name, label, query):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "current": {}, "hide": 0, "includeAll": True, "allValue": ".*", "multi": True,
            "options": [], "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1}


def instance_variable(service):
    return query_variable("instance", "Instance",
                          f'label_values(up{{service="{service}"}}, instance)')


def ppo(stat):
    return f'avg(rlhf_ppo_stat{{stat="{stat}"}})'


# ---------------------------------------------------------------------------------------------
# Sections shared by the per-service dashboards.


def rpc_section(d, service):
    m = f'{{service="{service}", instance=~"$instance"}}'
    err = f'{{service="{service}", instance=~"$instance", code!~"{NOT_ERRORS}"}}'
    d.row("RPCs (server side)")
    d.timeseries(
        "RPC rate by method",
        f"Finished RPCs per second served by the {service} service, by gRPC method (all status "
        "codes; health checks included). 0 when the service answered nothing in the window.",
        "reqps",
        [(f"sum by (method) ({rate('rlhf_rpc_requests_total' + m)}) or on() vector(0)",
          "{{method}}")])
    d.timeseries(
        "RPC errors by method and code",
        "RPCs per second that ended with an error status, by method and code. OK, CANCELLED (a "
        "client closing a stream) and NOT_FOUND (documented as harmless) are not errors. 0 when "
        "there were none.",
        "reqps",
        [(f"sum by (method, code) ({rate('rlhf_rpc_requests_total' + err)}) or on() vector(0)",
          "{{method}} {{code}}")])
    d.timeseries(
        "RPC latency p50 / p99",
        "Server-side time from an RPC's arrival to its status, by method (for streams, the whole "
        "stream). Methods without RPCs in the window are not drawn; 0 when none had any.",
        "s",
        [(quantile_or_zero(0.5, "rlhf_rpc_latency_seconds", m, "method"), "p50 {{method}}"),
         (quantile_or_zero(0.99, "rlhf_rpc_latency_seconds", m, "method"), "p99 {{method}}")])


def process_section(d, service):
    m = f'{{service="{service}", instance=~"$instance"}}'
    d.row("Process")
    d.timeseries(
        "CPU", f"CPU time (user + system) of each {service} process per second of wall time: "
        "1 = 100% = one core busy.",
        "percentunit", [(f"{rate('rlhf_process_cpu_seconds_total' + m)}", "{{instance}}")],
        w=6, minimum=0)
    d.timeseries(
        "Resident memory", f"Resident set size of each {service} process.", "bytes",
        [(f"rlhf_process_resident_memory_bytes{m}", "{{instance}}")], w=6, minimum=0)
    d.timeseries(
        "Threads", f"OS threads of each {service} process.", "short",
        [(f"rlhf_process_threads{m}", "{{instance}}")], w=6, minimum=0)
    d.timeseries(
        "Uptime", f"Time since each {service} process started; a drop to 0 is a restart.", "s",
        [(f"time() - rlhf_process_start_time_seconds{m}", "{{instance}}")], w=6, minimum=0)


def batcher_section(d, service, batcher, what):
    m = f'{{service="{service}", instance=~"$instance", batcher="{batcher}"}}'
    d.row(f"Batcher ({batcher})")
    d.timeseries(
        "Items / s", f"{what} run through the {batcher} batcher per second, and items refused "
        "because its queue was full (RESOURCE_EXHAUSTED to the caller).",
        "ops",
        [(f"sum by (instance) ({rate('rlhf_batcher_items_total' + m)})", "batched {{instance}}"),
         (f"sum by (instance) ({rate('rlhf_batcher_rejected_items_total' + m)})",
          "rejected {{instance}}")], minimum=0)
    d.timeseries(
        "Queued items", f"{what} waiting for the next batch of the {batcher} batcher.",
        "short", [(f"sum by (instance) (rlhf_batcher_queued_items{m})", "{{instance}}")],
        minimum=0)
    d.timeseries(
        "Batch size", f"Mean and p90 items per batch of the {batcher} batcher, and the configured "
        "max_batch. 0 while no batch ran in the window.",
        "short",
        [(mean_or_zero("rlhf_batcher_batch_items", m, "instance"), "mean {{instance}}"),
         (quantile_or_zero(0.9, "rlhf_batcher_batch_items", m, "instance"), "p90 {{instance}}"),
         (f"max by (instance) (rlhf_batcher_max_batch_items{m})", "max_batch {{instance}}")],
        minimum=0)
    d.timeseries(
        "Batch occupancy", f"Mean batch size over the configured max_batch of the {batcher} "
        "batcher: low with a full queue means max_wait is too short; near 1 means batches are "
        "capped and max_batch could grow. 0 while no batch ran in the window.",
        "percentunit",
        [(f"({mean_or_zero('rlhf_batcher_batch_items', m, 'instance')})"
          f" / max by (instance) (rlhf_batcher_max_batch_items{m})", "{{instance}}")],
        minimum=0, maximum=1)
    d.timeseries(
        "Model call time p50 / p99", f"Time of one batch function call (the model forward) of the "
        f"{batcher} batcher. 0 while no batch ran in the window.",
        "s",
        [(quantile_or_zero(0.5, "rlhf_batcher_batch_seconds", m, "instance"), "p50 {{instance}}"),
         (quantile_or_zero(0.99, "rlhf_batcher_batch_seconds", m, "instance"),
          "p99 {{instance}}")], minimum=0)
    d.timeseries(
        "Batches / s", f"Batch function calls of the {batcher} batcher per second.", "ops",
        [(f"sum by (instance) ({rate('rlhf_batcher_batch_items_count' + m)})", "{{instance}}")],
        minimum=0)


# ---------------------------------------------------------------------------------------------
# Dashboards.


def overview():
    d = Dashboard(
        "rlhf-overview", "RLHF / Overview",
        "Is training healthy: PPO statistics, step time, throughput, the trajectory ledger, RPC "
        "errors and whether the rollout workers are blocked by the learner or starved of prompts.",
        [datasource_variable(),
         query_variable("service", "Service",
                        'label_values(up{service=~"learner|rollout|reward|reference"}, service)')])
    d.row("Training")
    d.timeseries("Reward mean", "Mean score of the trajectories in the last PPO step (reward "
                 "service score, before the KL penalty). It should rise.", "short",
                 [(ppo("reward_mean"), "reward mean")])
    d.timeseries("KL to the reference", "Mean KL between the policy and the reference model over "
                 "the last step's responses, in nats per sequence. A steady climb far above the "
                 "KL target is the KLExploding alert.", "short", [(ppo("kl_mean"), "KL mean")],
                 minimum=0)
    d.timeseries("KL coefficient", "The KL penalty coefficient of the last step; the adaptive "
                 "controller raises it while KL is above target.", "short",
                 [(ppo("kl_coef"), "kl_coef")], minimum=0)
    d.timeseries("Policy lag", "Policy versions between the version that generated a trajectory "
                 "and the version that trained on it (mean and p90 over consumed trajectories). "
                 "Bounded by max_policy_lag.", "short",
                 [(mean("rlhf_learner_policy_lag", ""), "mean"),
                  (quantile(0.9, "rlhf_learner_policy_lag", ""), "p90")], minimum=0)
    d.timeseries("PPO step time", "Wall time of one PPO step at the learner: mean and p90.", "s",
                 [(mean("rlhf_learner_step_seconds", ""), "mean"),
                  (quantile(0.9, "rlhf_learner_step_seconds", ""), "p90")], minimum=0)
    d.timeseries("Learner time by phase", "Share of the learner's wall time in each phase, "
                 "stacked (summed over ranks, so it tops out at the number of ranks): wait_data "
                 "is the learner starved of trajectories, the rest is the step itself "
                 "(forward_backward, allreduce, optimizer, publish).", "percentunit",
                 [(f"sum by (phase) ({rate('rlhf_learner_step_phase_seconds_total')})",
                   "{{phase}}")], stack=True, minimum=0)
    d.row("Throughput and ledger")
    d.timeseries("Trajectories / s", "Trajectories generated by all workers, accepted into the "
                 "learner's queue and consumed by PPO steps, per second.", "ops",
                 [(f"sum({rate('rlhf_rollout_trajectories_generated_total')})", "generated"),
                  ("sum(" + rate('rlhf_learner_trajectories_total{stage="accepted"}') + ")",
                   "accepted"),
                  ("sum(" + rate('rlhf_learner_trajectories_total{stage="consumed"}') + ")",
                   "consumed")],
                 minimum=0)
    d.timeseries("Tokens / s", "Response tokens generated by all workers and trained on by the "
                 "learner, per second.", "ops",
                 [(f"sum({rate('rlhf_rollout_tokens_generated_total')})", "generated"),
                  (f"sum({rate('rlhf_learner_tokens_trained_total')})", "trained")], minimum=0)
    d.timeseries("Ledger: trajectories / s by stage", "The learner's ledger, per second: "
                 "received = accepted + dropped(duplicate, invalid, stale on arrival); accepted = "
                 "consumed + dropped(stale at pop, cancelled) + queued. Workers' generated rate "
                 "for comparison (generated = received + in flight).", "ops",
                 [(f"sum by (stage) ({rate('rlhf_learner_trajectories_total')})", "{{stage}}"),
                  (f"sum({rate('rlhf_rollout_trajectories_generated_total')})",
                   "generated (workers)")], minimum=0)
    d.timeseries("Dropped trajectories / s by reason", "Trajectories the learner did not train "
                 "on, per second, stacked by reason: duplicate (re-sent after a reconnect), "
                 "invalid, stale (older than max_policy_lag versions), cancelled.", "ops",
                 [(f"sum by (reason) ({rate('rlhf_learner_trajectories_dropped_total')})",
                   "{{reason}}")], stack=True, minimum=0)
    d.timeseries("In flight", "Trajectories sent by the workers and not yet acked, trajectories "
                 "queued at the learner for training, and push streams parked by backpressure.",
                 "short",
                 [("sum(rlhf_rollout_unacked)", "unacked at workers"),
                  ("sum(rlhf_learner_queue_depth)", "queued at learner"),
                  ("sum(rlhf_learner_parked_streams)", "parked streams")], minimum=0)
    d.row("Health")
    d.stat("Services up", "Scrape targets up, by service (the Prometheus `up` series).", "short",
           [('sum by (service) (up{service=~"learner|rollout|reward|reference"})',
             "{{service}}")], w=6, h=8,
           thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}])
    all_rpcs = rate('rlhf_rpc_requests_total{service=~"$service"}')
    err_rpcs = rate('rlhf_rpc_requests_total{service=~"$service", code!~"' + NOT_ERRORS + '"}')
    d.timeseries("RPC error ratio by service", "Share of finished RPCs, per service, that ended "
                 "with an error status (OK, CANCELLED and NOT_FOUND are not errors). 0 when there "
                 "were none. Above 5% for 5 minutes is the HighRPCErrorRate alert.",
                 "percentunit",
                 [(f"(sum by (service) ({err_rpcs}) or 0 * sum by (service) ({all_rpcs}))"
                   f" / clamp_min(sum by (service) ({all_rpcs}), 1e-9)", "{{service}}")],
                 w=6, minimum=0)
    d.timeseries("Workers blocked vs starved", "Mean share of time a rollout worker spends "
                 "blocked by the learner's backpressure (unacked trajectories at max_unacked: "
                 "the learner is the bottleneck, more workers will not help) and waiting for "
                 "prompts (LeasePrompts: the learner holds max_prompts_in_flight or the pool is "
                 "empty).", "percentunit",
                 [(f"avg({rate('rlhf_rollout_push_blocked_seconds_total')})", "blocked"),
                  (f"avg({rate('rlhf_rollout_lease_wait_seconds_total')})", "starved")],
                 w=6, minimum=0, maximum=1)
    d.timeseries("Policy version", "Newest policy version published by the learner, and the "
                 "oldest version a worker generates with.", "short",
                 [("max(rlhf_learner_policy_version)", "learner"),
                  ("min(rlhf_rollout_policy_version)", "oldest worker")], w=6, decimals=0)
    return d


def learner():
    d = Dashboard(
        "rlhf-learner", "RLHF / Learner",
        "The learner: PPO statistics, step time and phases, policy lag, the trajectory ledger and "
        "queue, the prompt pool, weight serving, its RPCs and its processes.",
        [datasource_variable(), instance_variable("learner")])
    d.row("PPO")
    d.timeseries("Reward mean", "Mean score of the last step's trajectories (before the KL "
                 "penalty).", "short", [(ppo("reward_mean"), "reward mean")], w=6)
    d.timeseries("KL to the reference", "Mean KL to the reference model over the last step's "
                 "responses, in nats per sequence.", "short", [(ppo("kl_mean"), "KL mean")], w=6,
                 minimum=0)
    d.timeseries("KL coefficient", "The KL penalty coefficient of the last step (the adaptive "
                 "controller raises it while KL is above target).", "short",
                 [(ppo("kl_coef"), "kl_coef")], w=6, minimum=0)
    d.timeseries("Clip fraction and approx KL", "Share of tokens whose ratio was clipped, and the "
                 "approximate KL between the behaviour and the updated policy, over the last "
                 "step's minibatches.", "short",
                 [(ppo("clipfrac"), "clipfrac"), (ppo("approx_kl"), "approx_kl")], w=6, minimum=0)
    d.timeseries("Entropy", "Mean per-token entropy of the policy over the last step's "
                 "responses, in nats.", "short", [(ppo("entropy"), "entropy")], w=6, minimum=0)
    d.timeseries("Losses", "Policy (clipped surrogate) and value losses of the last step.",
                 "short", [(ppo("policy_loss"), "policy loss"), (ppo("value_loss"), "value loss")],
                 w=6)
    d.timeseries("Explained variance", "How much of the returns' variance the critic explains "
                 "(1 = perfect, 0 = no better than the mean).", "short",
                 [(ppo("explained_variance"), "explained variance")], w=6)
    d.timeseries("Response length", "Mean response length of the last step, in tokens.", "short",
                 [(ppo("response_length_mean"), "tokens")], w=6, minimum=0)
    d.row("Steps")
    m = '{instance=~"$instance"}'
    d.timeseries("Step time", "Wall time of one PPO step: mean, p50 and p99.", "s",
                 [(mean("rlhf_learner_step_seconds", m), "mean"),
                  (quantile(0.5, "rlhf_learner_step_seconds", m), "p50"),
                  (quantile(0.99, "rlhf_learner_step_seconds", m), "p99")], minimum=0)
    d.timeseries("Time by phase", "Share of wall time in each phase per learner rank, stacked: "
                 "wait_data (no batch ready: the learner waits for the workers), "
                 "forward_backward, allreduce, optimizer, publish (new weights out).",
                 "percentunit",
                 [("sum by (phase) (" + rate('rlhf_learner_step_phase_seconds_total' + m) + ")",
                   "{{phase}}")], stack=True, minimum=0)
    d.timeseries("Policy lag", "Versions between generation and training of each consumed "
                 "trajectory: mean, p50 and p99.", "short",
                 [(mean("rlhf_learner_policy_lag", m), "mean"),
                  (quantile(0.5, "rlhf_learner_policy_lag", m), "p50"),
                  (quantile(0.99, "rlhf_learner_policy_lag", m), "p99")], minimum=0)
    d.timeseries("Steps / s", "PPO steps finished per second.", "ops",
                 [(f"sum({rate('rlhf_learner_steps_total' + m)})", "steps/s")], w=9, minimum=0)
    d.timeseries("Tokens trained / s", "Response tokens in the batches trained on, per second.",
                 "ops", [(f"sum({rate('rlhf_learner_tokens_trained_total' + m)})", "tokens/s")],
                 w=9, minimum=0)
    d.stat("Policy version", "Newest policy version published by the learner (= PPO steps "
           "done).", "short",
           [(f"max(rlhf_learner_policy_version{m})", "version")], w=6, h=8, decimals=0)
    d.row("Trajectories and prompts")
    d.timeseries("Ledger by stage", "Trajectories received on the push streams, accepted into "
                 "the queue and consumed by steps, per second.", "ops",
                 [(f"sum by (stage) ({rate('rlhf_learner_trajectories_total' + m)})",
                   "{{stage}}")], minimum=0)
    d.timeseries("Dropped by reason", "Trajectories not trained on, per second, stacked by "
                 "reason (duplicate, invalid, stale, cancelled).", "ops",
                 [(f"sum by (reason) ({rate('rlhf_learner_trajectories_dropped_total' + m)})",
                   "{{reason}}")], stack=True, minimum=0)
    d.timeseries("Queue and streams", "Accepted trajectories waiting for the trainer, open "
                 "PushTrajectories streams, and streams parked because the queue is full "
                 "(backpressure on the workers).", "short",
                 [(f"sum(rlhf_learner_queue_depth{m})", "queue depth"),
                  (f"sum(rlhf_learner_push_streams{m})", "push streams"),
                  (f"sum(rlhf_learner_parked_streams{m})", "parked streams")], minimum=0)
    d.timeseries("Prompt pool events", "Prompts leased to workers, completed (a trajectory came "
                 "back), returned by a worker and expired (lease timed out), per second.", "ops",
                 [(f"sum by (event) ({rate('rlhf_learner_prompts_total' + m)})", "{{event}}")],
                 minimum=0)
    d.timeseries("Weight bytes served", "Weight payload bytes streamed to workers by GetWeights, "
                 "per second.", "Bps",
                 [(f"sum({rate('rlhf_learner_weight_bytes_sent_total' + m)})", "sent")],
                 minimum=0)
    rpc_section(d, "learner")
    process_section(d, "learner")
    return d


def rollout():
    d = Dashboard(
        "rlhf-rollout", "RLHF / Rollout workers",
        "The rollout workers: generation throughput and time, acks, flow control (blocked by the "
        "learner vs starved of prompts), retries, weight syncs, the Generate RPC batcher, RPCs "
        "and processes.",
        [datasource_variable(), instance_variable("rollout")])
    m = '{instance=~"$instance"}'
    d.row("Generation")
    d.timeseries("Trajectories generated / s", "Trajectories handed to the learner stream per "
                 "second, per worker.", "ops",
                 [(rate('rlhf_rollout_trajectories_generated_total' + m), "{{instance}}")],
                 minimum=0)
    d.timeseries("Tokens generated / s", "Response tokens generated per second, per worker.",
                 "ops", [(rate('rlhf_rollout_tokens_generated_total' + m), "{{instance}}")],
                 minimum=0)
    d.timeseries("Generation batch time", "Wall time of one generation batch over all workers: "
                 "mean, p50 and p99.", "s",
                 [(mean("rlhf_rollout_generation_seconds", m), "mean"),
                  (quantile(0.5, "rlhf_rollout_generation_seconds", m), "p50"),
                  (quantile(0.99, "rlhf_rollout_generation_seconds", m), "p99")], minimum=0)
    d.timeseries("Acks by outcome", "Acks from the learner per second, stacked by outcome: "
                 "accepted, duplicate, invalid, stale.", "ops",
                 [(f"sum by (outcome) ({rate('rlhf_rollout_acks_total' + m)})", "{{outcome}}")],
                 stack=True, minimum=0)
    d.timeseries("Unacked trajectories", "Trajectories sent or queued to the learner and not yet "
                 "acked, per worker (kept for re-sending after a reconnect).", "short",
                 [(f"rlhf_rollout_unacked{m}", "{{instance}}")], minimum=0)
    d.timeseries("Re-sent / s", "Trajectories written to the learner again after a reconnect, "
                 "per second.", "ops",
                 [(f"sum({rate('rlhf_rollout_resent_total' + m)})", "re-sent")], minimum=0)
    d.row("Flow control")
    d.timeseries("Blocked by the learner", "Share of time each worker waited because "
                 "max_unacked trajectories were unacked: the learner's backpressure. High on all "
                 "workers = the learner is the bottleneck (the WorkersBlocked alert).",
                 "percentunit",
                 [(rate('rlhf_rollout_push_blocked_seconds_total' + m), "{{instance}}")],
                 minimum=0, maximum=1)
    d.timeseries("Waiting for prompts", "Share of time each worker waited for LeasePrompts: "
                 "starved (the learner holds max_prompts_in_flight, or the pool is empty; the "
                 "WorkersStarved alert).", "percentunit",
                 [(rate('rlhf_rollout_lease_wait_seconds_total' + m), "{{instance}}")],
                 minimum=0, maximum=1)
    d.timeseries("Retries by call", "Calls retried after a retryable error, per second, by call "
                 "(wait_learner, lease, get_weights, ...). 0 when there were none.", "ops",
                 [(f"sum by (call) ({rate('rlhf_rollout_retries_total' + m)}) or on() vector(0)",
                   "{{call}}")], minimum=0)
    d.timeseries("Leases returned by reason", "Leases handed back without trajectories, per "
                 "second, by reason. 0 when there were none.", "ops",
                 [(f"sum by (reason) ({rate('rlhf_rollout_leases_returned_total' + m)})"
                   " or on() vector(0)", "{{reason}}")], minimum=0)
    d.row("Weights")
    d.timeseries("Policy version", "Policy version each worker generates with (-1 before the "
                 "first sync) and the learner's newest version.", "short",
                 [(f"rlhf_rollout_policy_version{m}", "{{instance}}"),
                  ("max(rlhf_learner_policy_version)", "learner")], decimals=0)
    d.timeseries("Version behind the learner", "Learner's newest version minus the version each "
                 "worker generates with.", "short",
                 [(f"scalar(max(rlhf_learner_policy_version)) - rlhf_rollout_policy_version{m}",
                   "{{instance}}")], minimum=0, decimals=0)
    d.timeseries("Weight syncs / s", "Policy versions fetched and swapped in per second, per "
                 "worker.", "ops",
                 [(rate('rlhf_rollout_weight_syncs_total' + m), "{{instance}}")], minimum=0)
    d.timeseries("Weight bytes received / s", "Weight bytes received from the learner per "
                 "second, over all workers (compare the learner's weight bytes served).", "Bps",
                 [(f"sum({rate('rlhf_rollout_weight_sync_bytes_total' + m)})", "received")],
                 minimum=0)
    d.timeseries("Weight sync time", "Wall time of one weight sync (fetch and install): mean, "
                 "p50 and p99.", "s",
                 [(mean("rlhf_rollout_weight_sync_seconds", m), "mean"),
                  (quantile(0.5, "rlhf_rollout_weight_sync_seconds", m), "p50"),
                  (quantile(0.99, "rlhf_rollout_weight_sync_seconds", m), "p99")], minimum=0)
    batcher_section(d, "rollout", "generate", "Prompts of the Generate RPC (jobs, not PPO)")
    rpc_section(d, "rollout")
    process_section(d, "rollout")
    return d


def scorer(service, title, what, rpc):
    d = Dashboard(
        f"rlhf-{service}", title,
        f"The {service} service: its batcher ({what}), its {rpc} RPCs and its processes.",
        [datasource_variable(), instance_variable(service)])
    batcher_section(d, service, service, what)
    rpc_section(d, service)
    process_section(d, service)
    return d


def dashboards():
    return {
        "overview.json": overview(),
        "learner.json": learner(),
        "rollout.json": rollout(),
        "reward.json": scorer("reward", "RLHF / Reward", "Responses to score", "Score"),
        "reference.json": scorer("reference", "RLHF / Reference",
                                 "Sequences to compute reference log-probs for", "LogProbs"),
    }


def render(d):
    return json.dumps(d.model(), indent=2, ensure_ascii=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a dashboard file is not what this script writes")
    parser.add_argument("--out", default=HERE, help="directory to write to (default: here)")
    args = parser.parse_args()
    stale = []
    for name, d in dashboards().items():
        path = os.path.join(args.out, name)
        text = render(d)
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except FileNotFoundError:
                current = None
            if current != text:
                stale.append(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if stale:
        for path in stale:
            print(f"{path}: differs from what generate.py writes; run "
                  "python3 deploy/grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
