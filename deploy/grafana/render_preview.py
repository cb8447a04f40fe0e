#!/usr/bin/env python3
"""Draws a Grafana dashboard's panels as one PNG from a real Prometheus's data, for the README
(Grafana itself does not run on the build machine). Each panel's queries (variables substituted
as `lint.py queries` does) are run with /api/v1/query_range over [start, end]; time series panels
become line charts with the panel's title and unit, stat panels show their last values.

usage: render_preview.py --prometheus http://127.0.0.1:9090 --start UNIX --end UNIX \\
           --out docs/images/overview.png [deploy/grafana/overview.json]
Needs matplotlib (Debian: python3-matplotlib); nothing else in the project does.
"""
import argparse
import json
import os
import sys
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from lint import substitute, walk_panels  # noqa: E402

UNIT_LABEL = {"s": "seconds", "bytes": "bytes", "percentunit": "fraction", "ops": "per second",
              "reqps": "requests / s", "Bps": "bytes / s", "short": ""}


def query_range(base, expr, start, end, step):
    url = f"{base}/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(url, timeout=30) as r:
        reply = json.loads(r.read().decode())
    return reply["data"]["result"] if reply.get("status") == "success" else []


def legend(fmt, metric):
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in metric.items() if k != "__name__") or "value"
    out = fmt
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v).replace("{{ " + k + " }}", v)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--end", type=float, required=True)
    parser.add_argument("--rate-interval", default="10s")
    parser.add_argument("--out", required=True)
    parser.add_argument("dashboard", nargs="?", default=os.path.join(HERE, "overview.json"))
    args = parser.parse_args()
    dashboard = json.load(open(args.dashboard))
    panels = [p for p in walk_panels(dashboard["panels"]) if p.get("type") != "row"]
    step = max(1.0, (args.end - args.start) / 200)
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 5.2, rows * 2.9), squeeze=False)
    fig.suptitle(f"{dashboard['title']} (rendered from a real `rlhf local` run)", fontsize=13)
    for ax, panel in zip(axes.flat, panels):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        ax.set_title(panel["title"], fontsize=10)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        lines = 0
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], args.rate_interval, "15s", "1h")
            for series in query_range(args.prometheus, expr, args.start, args.end, step):
                t = [float(v[0]) - args.start for v in series["values"]]
                y = [float(v[1]) for v in series["values"]]
                name = legend(target.get("legendFormat", ""), series["metric"])
                if panel.get("type") == "stat":
                    ax.bar(name, y[-1] if y else 0)
                else:
                    ax.plot(t, y, label=name, linewidth=1.2)
                lines += 1
        if panel.get("type") != "stat":
            ax.set_xlabel("seconds into the run", fontsize=7)
        if UNIT_LABEL.get(unit, unit):
            ax.set_ylabel(UNIT_LABEL.get(unit, unit), fontsize=7)
        if 0 < lines <= 6 and panel.get("type") != "stat":
            ax.legend(fontsize=6, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out} ({len(panels)} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
