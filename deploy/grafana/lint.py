#!/usr/bin/env python3
"""Lints the Grafana dashboards, or prints their queries for a real Prometheus.

    lint.py [lint] [--catalogue FILE] [DASHBOARD.json ...]
        Checks every dashboard (default: deploy/grafana/*.json) and prints one line per problem,
        `file: panel "title": problem` (or `file: problem` for the dashboard itself); exit 1 if
        there is any. The rules:
          - a datasource template variable (type datasource, query prometheus) and every panel,
            target and query variable using it: {"type": "prometheus", "uid": "${datasource}"};
          - every panel (rows excepted) has a non-empty title, description and unit
            (fieldConfig.defaults.unit, a Grafana unit id) and at least one target;
          - every metric in a query is in the catalogue docs/metrics.md (`up` is Prometheus's
            own);
          - rate(), irate() and increase() only on counters (`_total`, or a histogram's
            `_bucket`/`_sum`/`_count`), with the range [$__rate_interval];
          - no hard-coded range anywhere ([5m]): Grafana's interval variables only;
          - histogram_quantile() only over `_bucket` series;
          - template variables only in =~ / !~ matchers (they may be multi-valued or All) and only
            variables the dashboard defines.

    lint.py queries [--rate-interval 30s] [--interval 15s] [--range 1h] [DASHBOARD.json ...]
        Prints every panel target, one JSON object per line:
        {"dashboard": "overview", "panel": "Reward mean", "refId": "A", "expr": "..."}, with
        $__rate_interval / $__interval / $__range replaced by the given durations and every other
        template variable ($service, $instance, ...) by `.*` (they only appear in =~ matchers), so
        that each expression can be sent to a Prometheus as it is.

Python 3 standard library only.
"""
import argparse
import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOCS_CATALOGUE = os.path.join(ROOT, "docs", "metrics.md")

# Series every Prometheus makes itself for each target.
BUILTIN_METRICS = {"up": "gauge", "scrape_duration_seconds": "gauge",
                   "scrape_samples_scraped": "gauge"}
COUNTER_FUNCS = {"rate", "irate", "increase"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = LABEL_LIST_KEYWORDS | {"bool", "and", "or", "unless", "offset", "atan2"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
GRAFANA_INTERVALS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s",
                     "__range_ms"}
# Grafana unit ids (the common ones; custom units are prefix:/suffix:/si:/count:/currency...).
UNITS = {
    "none", "short", "percent", "percentunit", "humidity", "dB", "hex0x", "hex", "sci", "locale",
    "pixel", "ns", "µs", "us", "ms", "s", "m", "h", "d", "dtdurationms", "dtdurations",
    "dthms", "dtdhms", "timeticks", "clockms", "clocks", "bits", "bytes", "kbytes", "mbytes",
    "gbytes", "tbytes", "pbytes", "decbits", "decbytes", "deckbytes", "decmbytes", "decgbytes",
    "dectbytes", "decpbytes", "bps", "Bps", "binbps", "binBps", "Kbits", "KBs", "Mbits", "MBs",
    "Gbits", "GBs", "Tbits", "TBs", "Pbits", "PBs", "pps", "ops", "reqps", "rps", "wps",
    "iops", "opm", "rpm", "wpm", "cps", "eps", "mps", "hertz", "flops", "mflops", "gflops",
    "tflops", "bool", "bool_yes_no", "bool_on_off", "dateTimeAsIso", "dateTimeFromNow",
}
UNIT_PREFIXES = ("prefix:", "suffix:", "si:", "count:", "currency", "time:")

TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[A-Za-z0-9_:.]+\]\])
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:[a-zA-Z]+\d*)*)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<matchers>\{)
  | (?P<range>\[)
  | (?P<comma>,)
  | (?P<op>[-+*/%^=!<>~@]+|:)
""", re.VERBOSE)
MATCHER_RE = re.compile(r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*
    ("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(?:,|$)""", re.VERBOSE)
VAR_RE = re.compile(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}"        # ${name} ${name:fmt}
                    r"|\$([A-Za-z_][A-Za-z0-9_]*)"               # $name
                    r"|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]")     # [[name]]
DURATION_RE = re.compile(r"\d+(?:ms|[smhdwy])")


class Selector:
    def __init__(self, metric, matchers, rng, funcs):
        self.metric = metric        # None when the selector has no metric name
        self.matchers = matchers    # [(label, op, value)]
        self.range = rng            # the text inside [...] or None
        self.funcs = funcs          # the enclosing function names, innermost last


def _closing(expr, start, open_ch, close_ch):
    """Index just past the bracket matching expr[start] (strings skipped), or -1."""
    depth = 0
    i = start
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            m = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`').match(expr, i)
            if not m:
                return -1
            i = m.end()
            continue
        if c == open_ch:
            depth += 1
        elif c == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def tokenize(expr):
    """[(kind, text)], with {...} and [...] each one token holding its inside."""
    tokens = []
    i = 0
    while i < len(expr):
        m = TOKEN_RE.match(expr, i)
        if not m:
            raise ValueError(f"cannot parse the query at {expr[i:i + 20]!r}")
        kind = m.lastgroup
        if kind in ("matchers", "range"):
            end = _closing(expr, i, *("{}" if kind == "matchers" else "[]"))
            if end < 0:
                raise ValueError(f"unbalanced {expr[i]} in the query")
            tokens.append((kind, expr[i + 1:end - 1]))
            i = end
            continue
        if kind not in ("space", "comment"):
            tokens.append((kind, m.group()))
        i = m.end()
    return tokens


def parse_matchers(text):
    out = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = MATCHER_RE.match(text, pos)
        if not m:
            raise ValueError(f"cannot parse the label matchers {{{text}}}")
        out.append((m.group(1), m.group(2), m.group(3)[1:-1]))
        pos = m.end()
    return out


def selectors(expr):
    """The series selectors of a PromQL expression, with their enclosing functions."""
    tokens = tokenize(expr)
    out = []
    stack = []          # one entry per open parenthesis: the function it calls, or ""
    pending = ""        # a function or aggregation name waiting for its "("
    i = 0

    def skip_group(j):
        """j is at "(": index of the matching ")"."""
        depth = 0
        while j < len(tokens):
            if tokens[j][0] == "open":
                depth += 1
            elif tokens[j][0] == "close":
                depth -= 1
                if depth == 0:
                    return j
            j += 1
        raise ValueError("unbalanced ( in the query")

    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else (None, None)
        if kind == "ident":
            if text in LABEL_LIST_KEYWORDS:
                if nxt[0] == "open":
                    i = skip_group(i + 1)
                i += 1
                continue
            if text in KEYWORDS or text.lower() in ("inf", "nan"):
                i += 1
                continue
            if nxt[0] == "open" or (text in AGGREGATIONS and nxt[1] in ("by", "without")):
                pending = text
                i += 1
                continue
            matchers, rng, j = [], None, i + 1
            if j < len(tokens) and tokens[j][0] == "matchers":
                matchers = parse_matchers(tokens[j][1])
                j += 1
            if j < len(tokens) and tokens[j][0] == "range":
                rng = tokens[j][1]
                j += 1
            out.append(Selector(text, matchers, rng, list(stack)))
            i = j
            continue
        if kind == "matchers":
            matchers = parse_matchers(text)
            name = next((v for (l, op, v) in matchers if l == "__name__" and op == "="), None)
            rng, j = None, i + 1
            if j < len(tokens) and tokens[j][0] == "range":
                rng = tokens[j][1]
                j += 1
            out.append(Selector(name, matchers, rng, list(stack)))
            i = j
            continue
        if kind == "open":
            stack.append(pending)
            pending = ""
        elif kind == "close":
            if not stack:
                raise ValueError("unbalanced ) in the query")
            stack.pop()
        elif kind == "range":
            # A subquery: (expr)[range:step].
            out.append(Selector(None, [], text, list(stack)))
        i += 1
    if stack:
        raise ValueError("unbalanced ( in the query")
    return out


# ---------------------------------------------------------------------------------------------
# The metric catalogue.


def _type_of(text):
    for t in ("counter", "gauge", "histogram", "summary"):
        if t in text.lower():
            return t
    return None


def read_catalogue(path):
    """{metric name: type or None} from docs/metrics.md (a markdown table whose first column is
    the name in backticks; a column headed "type" gives the type)."""
    names = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    type_col = None
    for line in lines:
        line = line.strip()
        if not line.startswith("|"):
            type_col = None  # a new table needs its own header
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(re.fullmatch(r":?-{3,}:?", c) for c in cells if c):
            continue
        found = re.findall(r"`([A-Za-z_:][A-Za-z0-9_:]*)", cells[0])
        if not found:
            heads = [c.lower().strip("* ") for c in cells]
            type_col = heads.index("type") if "type" in heads else type_col
            continue
        t = _type_of(cells[type_col]) if type_col is not None and type_col < len(cells) \
            else None
        for name in found:
            if t is None and name.endswith("_total"):
                names[name] = "counter"
            else:
                names[name] = t
    return names


def default_catalogue():
    return DOCS_CATALOGUE


def resolve(metric, catalogue):
    """(base name, type, is_histogram_part) or None when unknown."""
    if metric in catalogue:
        return metric, catalogue[metric], False
    for suffix in HISTOGRAM_SUFFIXES:
        if metric.endswith(suffix):
            base = metric[: -len(suffix)]
            if base in catalogue and catalogue[base] in ("histogram", "summary", None):
                if suffix == "_bucket" and catalogue[base] == "summary":
                    return None
                return base, catalogue[base], True
    return None


# ---------------------------------------------------------------------------------------------
# The lint.


def variables_in(text):
    return [a or b or c for a, b, c in VAR_RE.findall(text)]


def is_counter(metric, catalogue):
    r = resolve(metric, catalogue)
    if r is None:
        return metric.endswith("_total") or metric.endswith(HISTOGRAM_SUFFIXES)
    base, mtype, histogram_part = r
    if histogram_part:
        return True
    if mtype is not None:
        return mtype == "counter"
    return metric.endswith("_total")


def check_expr(expr, catalogue, defined_vars):
    problems = []
    try:
        sels = selectors(expr)
    except ValueError as e:
        return [str(e)]
    if not any(s.metric for s in sels):
        problems.append("query reads no metric")
    for name in variables_in(expr):
        if name not in defined_vars and name not in GRAFANA_INTERVALS:
            problems.append(f"undefined variable ${name}")
    for s in sels:
        func = s.funcs[-1] if s.funcs else ""
        if s.metric is not None:
            r = resolve(s.metric, catalogue) or (
                (s.metric, BUILTIN_METRICS[s.metric], False) if s.metric in BUILTIN_METRICS
                else None)
            if r is None:
                problems.append(f"unknown metric {s.metric} (not in the catalogue "
                                f"{os.path.relpath(CATALOGUE_PATH[0], ROOT)})")
            if func in COUNTER_FUNCS and not is_counter(s.metric, catalogue):
                kind = "gauge" if (r and r[1] == "gauge") else "non-counter"
                problems.append(f"{func}() on {kind} {s.metric}: {func}() needs a counter "
                                "(_total) or a histogram's _bucket/_sum/_count")
            if func in COUNTER_FUNCS and s.range is None:
                problems.append(f"{func}() on {s.metric} without a range selector")
            if "histogram_quantile" in s.funcs and not s.metric.endswith("_bucket"):
                problems.append(f"histogram_quantile() over {s.metric}, not a _bucket series")
        for label, op, value in s.matchers:
            for name in variables_in(value):
                if op not in ("=~", "!~") and name not in GRAFANA_INTERVALS:
                    problems.append(f'variable ${name} in {label}{op}"{value}": use =~ '
                                    "(a variable can be multi-valued or All)")
        if s.range is not None:
            rng = s.range.strip()
            if func in COUNTER_FUNCS and s.metric is not None:
                if rng not in ("$__rate_interval", "${__rate_interval}"):
                    problems.append(f"{func}({s.metric}[{rng}]): use [$__rate_interval]"
                                    + (f", not the hard-coded range [{rng}]"
                                       if DURATION_RE.search(rng) else ""))
            elif DURATION_RE.search(rng):
                problems.append(f"hard-coded range [{rng}]: use $__rate_interval, $__interval "
                                "or $__range")
    return problems


CATALOGUE_PATH = [""]


def walk_panels(panels):
    for p in panels or []:
        yield p
        if p.get("type") == "row":
            yield from walk_panels(p.get("panels"))


def lint_dashboard(path, catalogue, seen_uids):
    problems = []

    def report(panel, msg):
        if panel is None:
            problems.append(f"{path}: {msg}")
        else:
            title = str(panel.get("title") or "").strip() or f"#{panel.get('id')}"
            problems.append(f'{path}: panel "{title}": {msg}')

    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        return [f"{path}: cannot read the dashboard: {e}"]
    if not isinstance(d, dict):
        return [f"{path}: not a dashboard object"]
    if not str(d.get("title", "")).strip():
        report(None, "dashboard has no title")
    uid = d.get("uid")
    if not uid:
        report(None, "dashboard has no uid")
    elif uid in seen_uids:
        report(None, f"uid {uid} is also used by {seen_uids[uid]}")
    else:
        seen_uids[uid] = path
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 38:
        report(None, f"schemaVersion {d.get('schemaVersion')} is older than 38 (Grafana 10)")

    variables = (d.get("templating") or {}).get("list") or []
    defined = {v.get("name") for v in variables}
    ds_vars = [v for v in variables if v.get("type") == "datasource"]
    ds_uids = set()
    if not ds_vars:
        report(None, 'no datasource template variable (type "datasource", query "prometheus")')
    for v in ds_vars:
        if v.get("query") != "prometheus":
            report(None, f'datasource variable ${v.get("name")} has query {v.get("query")!r}, '
                         'not "prometheus"')
        ds_uids |= {"${%s}" % v.get("name"), "$%s" % v.get("name")}
    want = '{"type": "prometheus", "uid": "${datasource}"}'

    def datasource_ok(ds):
        return isinstance(ds, dict) and ds.get("type") == "prometheus" and ds.get("uid") in ds_uids

    for v in variables:
        if v.get("type") == "query":
            if not datasource_ok(v.get("datasource")):
                report(None, f"query variable ${v.get('name')} does not use the datasource "
                             f"variable: set its datasource to {want}")
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            m = re.match(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", q)
            inner = m.group(1) if m else (None if q.strip().startswith(
                ("label_names", "metrics(", "query_result(")) else q)
            if inner:
                for msg in check_expr(inner, catalogue, defined):
                    report(None, f"query variable ${v.get('name')}: {msg}")

    ids = set()
    panels = list(walk_panels(d.get("panels")))
    if not [p for p in panels if p.get("type") != "row"]:
        report(None, "dashboard has no panels")
    for p in panels:
        if p.get("id") in ids:
            report(p, f"panel id {p.get('id')} is used twice")
        ids.add(p.get("id"))
        if not str(p.get("title", "")).strip():
            report(p, "no title")
        if "gridPos" not in p:
            report(p, "no gridPos")
        if p.get("type") == "row":
            continue
        if not str(p.get("description", "")).strip():
            report(p, "no description: say what the panel shows and how to read it")
        unit = ((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if not unit or not str(unit).strip():
            report(p, "no unit: set fieldConfig.defaults.unit (s, bytes, percentunit, short, "
                      "ops, reqps, ...)")
        elif unit not in UNITS and not str(unit).startswith(UNIT_PREFIXES):
            report(p, f"unit {unit!r} is not a Grafana unit id")
        if not datasource_ok(p.get("datasource")):
            report(p, f"panel datasource is {json.dumps(p.get('datasource'))}, want {want}")
        targets = p.get("targets") or []
        if not targets:
            report(p, "no targets")
        refs = set()
        for t in targets:
            ref = t.get("refId")
            if not ref or ref in refs:
                report(p, f"target refId {ref!r} missing or repeated")
            refs.add(ref)
            if not datasource_ok(t.get("datasource")):
                report(p, f"target {ref} datasource is {json.dumps(t.get('datasource'))}, "
                          f"want {want}")
            expr = t.get("expr", "")
            if not str(expr).strip():
                report(p, f"target {ref} has no expr")
                continue
            for msg in check_expr(expr, catalogue, defined):
                report(p, msg)
    return problems


def dashboards_from(args):
    files = args or sorted(glob.glob(os.path.join(HERE, "*.json")))
    return files


def cmd_lint(argv):
    parser = argparse.ArgumentParser(prog="lint.py [lint]")
    parser.add_argument("--catalogue", help="the metric catalogue (default: docs/metrics.md)")
    parser.add_argument("dashboards", nargs="*")
    args = parser.parse_args(argv)
    CATALOGUE_PATH[0] = args.catalogue or default_catalogue()
    catalogue = read_catalogue(CATALOGUE_PATH[0])
    if not catalogue:
        print(f"{CATALOGUE_PATH[0]}: no metric names found", file=sys.stderr)
        return 1
    files = dashboards_from(args.dashboards)
    if not files:
        print("no dashboards to lint", file=sys.stderr)
        return 1
    problems = []
    seen = {}
    for path in files:
        problems += lint_dashboard(path, catalogue, seen)
    for line in problems:
        print(line)
    if problems:
        return 1
    print(f"{len(files)} dashboards OK (catalogue {os.path.relpath(CATALOGUE_PATH[0], ROOT)}, "
          f"{len(catalogue)} metrics)", file=sys.stderr)
    return 0


def substitute(expr, rate_interval, interval, rng):
    values = {"__rate_interval": rate_interval, "__interval": interval, "__range": rng}

    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, ".*")

    return VAR_RE.sub(repl, expr)


def cmd_queries(argv):
    parser = argparse.ArgumentParser(prog="lint.py queries")
    parser.add_argument("--rate-interval", default="30s", help="value of $__rate_interval")
    parser.add_argument("--interval", default="15s", help="value of $__interval")
    parser.add_argument("--range", default="1h", help="value of $__range")
    parser.add_argument("dashboards", nargs="*")
    args = parser.parse_args(argv)
    for path in dashboards_from(args.dashboards):
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        name = os.path.splitext(os.path.basename(path))[0]
        for p in walk_panels(d.get("panels")):
            for t in p.get("targets") or []:
                if not str(t.get("expr", "")).strip():
                    continue
                print(json.dumps({
                    "dashboard": name, "panel": p.get("title", ""), "refId": t.get("refId", ""),
                    "expr": substitute(t["expr"], args.rate_interval, args.interval, args.range),
                }))
    return 0


def main(argv):
    if argv and argv[0] == "queries":
        return cmd_queries(argv[1:])
    if argv and argv[0] == "lint":
        argv = argv[1:]
    return cmd_lint(argv)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # `lint.py queries | head`
        sys.stderr.close()
        sys.exit(0)
