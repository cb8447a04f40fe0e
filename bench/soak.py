#!/usr/bin/python3
"""Soak and chaos runs of `rlhf local` on the demo world (bench scripts, not CI).

  bench/soak.py soak  [--minutes 30]   a long run; RSS, open file descriptors and threads of every
                                       process sampled every --sample-seconds (10)
  bench/soak.py chaos [--minutes 10]   the same, while every --period seconds (10) a random
                                       non-learner process (a rollout worker, reward or reference)
                                       is SIGKILLed or SIGSTOPped (and SIGCONTed 1-5 s later), and
                                       every gRPC connection goes through a loopback proxy that
                                       delays each chunk by --delay-ms (+ up to as much again)

The world and its models come from `rlhf demo --quick` (made once under --out/demo): the SFT
policy, the harmlessness reward model, the world's tokenizer and training prompts, on which
`rlhf local` runs PPO with --workers rollout workers and a checkpoint every --checkpoint-every
steps (the newest 3 kept). After --minutes it gets SIGINT: the learner stops after its current
step, and `rlhf local` reconciles the ledger as at the end of a run (a short calibration run
first sizes total_steps so that the run does not end before).

The proxy is an HTTP CONNECT proxy that gRPC itself uses: `rlhf local` and every child get
grpc_proxy=http://127.0.0.1:<port> in their environment, so each channel (worker to learner,
reward and reference; the launcher's health checks) is a tunnel through it. Its connection and
byte counts are reported, so a run whose traffic bypassed it is visible.

Output: JSON lines on stdout, one per process name (rss/fds/threads after warm-up and at the end,
growth), then one summary line (steps, minutes, ledger, kills, stops, proxy traffic, verdict);
files under --out/<mode>/: samples.jsonl, rlhf-local.log, run/ (the run directory) and
rss.png (RSS of each process over time; needs python3-matplotlib). The exit status is 1 if the
run failed, its ledger did not balance, anything was consumed twice, or (soak) a process's RSS
grew by 5% or more after warm-up (the first --warmup-fraction of the run), or its file
descriptors or threads grew at all beyond a slack of 2.
"""
import argparse
import json
import os
import random
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"soak: {msg}", file=sys.stderr, flush=True)


# --- the world ------------------------------------------------------------------------------

def make_world(rlhf, out):
    demo = os.path.join(out, "demo")
    if not os.path.exists(os.path.join(demo, "rm_hh", "done.json")):
        log(f"making the demo world and its models (rlhf demo --quick --out {demo})")
        subprocess.run([rlhf, "demo", "--quick", "--out", demo], check=True,
                       stdout=subprocess.DEVNULL)
    paths = {
        "policy": os.path.join(demo, "sft", "model"),
        "reward": os.path.join(demo, "rm_hh", "rm"),
        "tokenizer": os.path.join(demo, "world", "tokenizer.model"),
        "prompts": os.path.join(demo, "world", "prompts_train.jsonl"),
    }
    for what, path in paths.items():
        if not os.path.exists(path):
            sys.exit(f"soak: {path} ({what}) missing after rlhf demo --quick")
    return paths


def local_config(world, run_dir, steps, args):
    return {
        "run_dir": run_dir,
        "rollout_workers": args.workers,
        "learner": {
            "policy": world["policy"], "tokenizer": world["tokenizer"],
            "prompts": world["prompts"], "total_steps": steps, "threads": 1,
            "checkpoint_every": args.checkpoint_every, "keep_checkpoints": 3,
            "lease_seconds": 20,
            "journal_sync": "BATCH",
            "ppo": {"batch_size": 16, "minibatch_size": 16, "epochs": 1,
                    "learning_rate": 1e-5, "seed": args.seed},
            "sampling": {"max_new_tokens": 32, "temperature": 1.0},
        },
        "rollout": {"model": world["policy"], "tokenizer": world["tokenizer"], "threads": 1,
                    "worker": {"batch_prompts": 8, "rpc_deadline_seconds": 10}},
        "reward": {"model": world["reward"], "threads": 1},
        "reference": {"model": world["policy"], "threads": 1},
    }


# --- the delay proxy ------------------------------------------------------------------------

class DelayProxy:
    """HTTP CONNECT proxy on loopback; each chunk is forwarded after delay..2*delay ms, in order."""

    def __init__(self, delay_ms, seed):
        self.delay = delay_ms / 1000.0
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.connections = 0
        self.bytes = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.sock.accept()
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return client.close()
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(line) < 2 or line[0] != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return client.close()
            host, port = line[1].rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
        except OSError:
            return client.close()
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            upstream.sendall(rest)
        with self.lock:
            self.connections += 1
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                with self.lock:
                    self.bytes += len(chunk)
                    delay = self.delay * (1 + self.rng.random())
                time.sleep(delay)
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --- processes ------------------------------------------------------------------------------

def children(pid):
    """{pid: name} of every descendant of pid; a child's name is its config's (rollout-3, ...)."""
    by_parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        by_parent.setdefault(ppid, []).append(int(entry))
    found, todo = {}, [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found[child] = process_name(child)
            todo.append(child)
    return found


def process_name(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "?"
    for i, arg in enumerate(argv):  # --config <run_dir>/<name>.json
        if arg == b"--config" and i + 1 < len(argv):
            return os.path.basename(argv[i + 1].decode()).removesuffix(".json")
        if arg.startswith(b"--config="):
            return os.path.basename(arg[9:].decode()).removesuffix(".json")
    return os.path.basename(argv[0].decode()) if argv and argv[0] else "?"


def sample(pid):
    try:
        status = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                status[key] = value.split()
        return {"rss_kib": int(status["VmRSS"][0]), "threads": int(status["Threads"][0]),
                "fds": len(os.listdir(f"/proc/{pid}/fd"))}
    except (OSError, KeyError, IndexError, ValueError):
        return None  # it exited between the listing and the read


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


# --- one run --------------------------------------------------------------------------------

def run_local(rlhf, config, out_dir, args, chaos, proxy):
    os.makedirs(out_dir, exist_ok=True)
    config_path = os.path.join(out_dir, "local.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2)
    env = dict(os.environ)
    for key in ("no_grpc_proxy", "no_proxy", "http_proxy", "https_proxy", "grpc_proxy"):
        env.pop(key, None)
    if proxy is not None:
        env["grpc_proxy"] = f"http://127.0.0.1:{proxy.port}"
    log_path = os.path.join(out_dir, "rlhf-local.log")
    logf = open(log_path, "w")
    proc = subprocess.Popen([rlhf, "local", "--config", config_path], stdout=subprocess.PIPE,
                            stderr=logf, env=env, text=True, bufsize=1)
    samples_path = os.path.join(out_dir, "samples.jsonl")
    samples = open(samples_path, "w")
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    next_sample = t0
    next_chaos = t0 + args.period
    stopped = {}  # pid -> time to SIGCONT
    events = {"kills": [], "stops": []}
    last_step = 0
    steps_started = None
    interrupted = False
    while True:
        now = time.monotonic()
        if not interrupted and now - t0 >= args.minutes * 60:
            # Ctrl-C: the learner stops after its current step; the ledger is reconciled.
            log(f"t={now - t0:.0f}s: time is up, SIGINT to rlhf local")
            proc.send_signal(signal.SIGINT)
            interrupted = True
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            logf.write(line)
            logf.flush()
            if line.startswith("step "):
                last_step = int(line[5:].split("/")[0])
                if steps_started is None:
                    steps_started = now
        for pid, when in list(stopped.items()):
            if now >= when:
                if pid_alive(pid):
                    os.kill(pid, signal.SIGCONT)
                del stopped[pid]
        if now >= next_sample:
            next_sample += args.sample_seconds
            row = {"t": round(now - t0, 1), "step": last_step, "processes": {}}
            procs = {proc.pid: "rlhf-local"}
            procs.update(children(proc.pid))
            for pid, name in procs.items():
                s = sample(pid)
                if s is not None:
                    row["processes"][name] = dict(s, pid=pid)
            row["run_dir_bytes"] = du(config["run_dir"])
            samples.write(json.dumps(row) + "\n")
            samples.flush()
        if chaos and now >= next_chaos and steps_started is not None and not interrupted:
            next_chaos += args.period
            victims = {pid: name for pid, name in children(proc.pid).items()
                       if name.startswith(("rollout-", "reward", "reference"))
                       and pid not in stopped}
            if victims:
                pid = rng.choice(sorted(victims))
                name = victims[pid]
                if rng.random() < 0.5:
                    os.kill(pid, signal.SIGKILL)
                    events["kills"].append({"t": round(now - t0, 1), "process": name})
                    log(f"t={now - t0:.0f}s SIGKILL {name} (pid {pid})")
                else:
                    pause = rng.uniform(1, 5)
                    os.kill(pid, signal.SIGSTOP)
                    stopped[pid] = now + pause
                    events["stops"].append({"t": round(now - t0, 1), "process": name,
                                            "seconds": round(pause, 1)})
                    log(f"t={now - t0:.0f}s SIGSTOP {name} (pid {pid}) for {pause:.1f} s")
    for pid in stopped:
        if pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
    code = proc.wait()
    samples.close()
    logf.close()
    return code, time.monotonic() - t0, events, samples_path, log_path


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def calibrate(rlhf, world, out, args):
    """Seconds per PPO step in steady state, from a short run (steps 5..20)."""
    run_dir = os.path.join(out, "calibrate", "run")
    subprocess.run(["rm", "-rf", os.path.join(out, "calibrate")], check=True)
    config = local_config(world, run_dir, 20, args)
    t_lines = {}
    os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    path = os.path.join(out, "calibrate", "local.json")
    with open(path, "w") as f:
        json.dump(config, f)
    proc = subprocess.Popen([rlhf, "local", "--config", path], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("step "):
            t_lines[int(line[5:].split("/")[0])] = time.monotonic()
    if proc.wait() != 0 or 5 not in t_lines or 20 not in t_lines:
        sys.exit("soak: the calibration run failed (see " + run_dir + ")")
    return (t_lines[20] - t_lines[5]) / 15


# --- analysis -------------------------------------------------------------------------------

def analyse(samples_path, warmup_fraction):
    rows = [json.loads(line) for line in open(samples_path)]
    if len(rows) < 6:
        return [], rows
    end_t = rows[-1]["t"]
    warm_t = end_t * warmup_fraction
    lines = []
    names = sorted({n for r in rows for n in r["processes"]})
    for name in names:
        series = [(r["t"], r["processes"][name]) for r in rows if name in r["processes"]]
        after = [s for t, s in series if t >= warm_t]
        if len(after) < 6:
            continue  # a short-lived process (chaos): nothing to say about growth
        k = max(3, len(after) // 10)
        first, last = after[:k], after[-k:]

        def med(xs, key):
            return statistics.median(x[key] for x in xs)
        line = {"bench": "soak_process", "process": name, "samples": len(series),
                "rss_mib_warm": round(med(first, "rss_kib") / 1024, 1),
                "rss_mib_end": round(med(last, "rss_kib") / 1024, 1),
                "rss_mib_max": round(max(s["rss_kib"] for _, s in series) / 1024, 1),
                "fds_warm": med(first, "fds"), "fds_end": med(last, "fds"),
                "fds_max": max(s["fds"] for _, s in series),
                "threads_warm": med(first, "threads"), "threads_end": med(last, "threads"),
                "threads_max": max(s["threads"] for _, s in series)}
        line["rss_growth"] = round(line["rss_mib_end"] / line["rss_mib_warm"] - 1, 4)
        line["ok"] = (line["rss_growth"] < 0.05 and line["fds_end"] <= line["fds_warm"] + 2
                      and line["threads_end"] <= line["threads_warm"] + 2)
        lines.append(line)
    return lines, rows


def plot(rows, events, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no matplotlib (python3-matplotlib): no plot")
        return
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=100)
    names = sorted({n for r in rows for n in r["processes"]})
    groups = {}  # restarted processes share a colour with their role
    for name in names:
        # rollout-7, reward-3 (restarted): the role's colour; learner ranks and rlhf-local: own.
        role = name if name.startswith(("learner", "rlhf-local")) else name.split("-")[0]
        groups.setdefault(role, []).append(name)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (role, members) in enumerate(sorted(groups.items())):
        for j, name in enumerate(members):
            pts = [(r["t"] / 60, r["processes"][name]["rss_kib"] / 1024) for r in rows
                   if name in r["processes"]]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colours[i % len(colours)],
                    linewidth=1.2, label=role if j == 0 else None)
    for e in events.get("kills", []):
        ax.axvline(e["t"] / 60, color="red", alpha=0.25, linewidth=0.8)
    for e in events.get("stops", []):
        ax.axvline(e["t"] / 60, color="grey", alpha=0.25, linewidth=0.8, linestyle="--")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right", ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    log(f"plot: {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["soak", "chaos"])
    p.add_argument("--minutes", type=float, default=None, help="30 (soak), 10 (chaos)")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "soak"))
    p.add_argument("--rlhf", default=os.path.join(ROOT, "build", "release", "cli", "rlhf"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--sample-seconds", type=float, default=10)
    p.add_argument("--warmup-fraction", type=float, default=0.2)
    p.add_argument("--period", type=float, default=10, help="chaos: seconds between actions")
    p.add_argument("--delay-ms", type=float, default=2, help="chaos: proxy delay per chunk")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", default=None, help="where rss.png goes (default: --out/<mode>/)")
    args = p.parse_args()
    if args.minutes is None:
        args.minutes = 30 if args.mode == "soak" else 10
    minutes = args.minutes
    if not os.access(args.rlhf, os.X_OK):
        sys.exit(f"soak: {args.rlhf} is not built (scripts/build.sh --target rlhf)")
    os.makedirs(args.out, exist_ok=True)
    world = make_world(args.rlhf, args.out)
    per_step = calibrate(args.rlhf, world, args.out, args)
    chaos = args.mode == "chaos"
    # More steps than the time allows: at --minutes the run is stopped (SIGINT, graceful).
    steps = max(20, int(minutes * 60 / per_step * 3))
    log(f"{per_step:.3f} s per step in calibration; up to {steps} steps, stopped after "
        f"{minutes:g} minutes")
    out_dir = os.path.join(args.out, args.mode)
    subprocess.run(["rm", "-rf", out_dir], check=True)
    proxy = DelayProxy(args.delay_ms, args.seed) if chaos else None
    config = local_config(world, os.path.join(out_dir, "run"), steps, args)
    code, seconds, events, samples_path, log_path = run_local(args.rlhf, config, out_dir, args,
                                                              chaos, proxy)
    lines, rows = analyse(samples_path, args.warmup_fraction)
    for line in lines:
        line["mode"] = args.mode
        print(json.dumps(line))
    report = {}
    report_path = os.path.join(config["run_dir"], "report.json")
    if os.path.exists(report_path):
        report = json.load(open(report_path))
    ledger = report.get("ledger", {})
    summary = {
        "bench": "soak", "mode": args.mode, "exit_code": code, "minutes": round(seconds / 60, 1),
        "steps": report.get("steps"), "workers_started": report.get("workers_started"),
        "ledger_balanced": ledger.get("balanced"), "consumed": ledger.get("consumed"),
        "consumed_twice": ledger.get("consumed_twice"), "generated": ledger.get("generated"),
        "dropped": ledger.get("dropped"),
        "in_flight_at_stop": ledger.get("in_flight_at_stop"),
        "duplicates_received": ledger.get("duplicates_received"),
        "kills": len(events["kills"]), "stops": len(events["stops"]),
        "run_dir_mib_end": round(rows[-1]["run_dir_bytes"] / 2**20, 1) if rows else None,
    }
    if proxy is not None:
        summary["proxy"] = {"connections": proxy.connections, "mib": round(proxy.bytes / 2**20, 1),
                            "delay_ms": args.delay_ms}
    ok = code == 0 and ledger.get("balanced") is True and ledger.get("consumed_twice") == 0
    if proxy is not None:
        ok = ok and proxy.connections > 0
    if not chaos:
        ok = ok and bool(lines) and all(line["ok"] for line in lines)
    summary["ok"] = ok
    print(json.dumps(summary), flush=True)
    with open(os.path.join(out_dir, "events.json"), "w") as f:
        json.dump(events, f)
    if rows:
        title = (f"rlhf local {args.mode}: {summary['steps']} PPO steps, "
                 f"{summary['minutes']} min, {args.workers} workers"
                 + (f"; {len(events['kills'])} SIGKILLs (red), {len(events['stops'])} SIGSTOPs"
                    f" (grey)" if chaos else ""))
        plot(rows, events, args.plot or os.path.join(out_dir, "rss.png"), title)
    if not ok:
        log(f"FAILED: see {log_path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
