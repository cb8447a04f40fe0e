#!/usr/bin/env python3
"""Checks the monitoring side of the manifests offline:

  $VENV/bin/python deploy/k8s/validate/prometheus.py --promtool /usr/bin/promtool --source-root . \\
      --scrape-config deploy/k8s/prometheus/scrape-config.yaml \\
      --adapter-config deploy/k8s/prometheus-adapter/config.yaml  RENDERED.yaml ...

- the scrape config: only known keys; `promtool check config` accepts it (with its
  kubernetes_sd_configs swapped for static targets: Debian's Prometheus is built without
  Kubernetes discovery); and its relabeling, run here on the targets Kubernetes service
  discovery would make of every pod template in RENDERED (one per container port), keeps one
  target per rlhf pod, at <pod ip>:<prometheus.io/port><prometheus.io/path>, labelled
  service=<app.kubernetes.io/component>, namespace and pod, and nothing else;
- the prometheus-adapter rules: only known keys; every query, with the adapter's template
  filled in, passes `promtool check rules`; resources map labels the scrape config sets;
  every rlhf_* metric they read is registered somewhere in the C++ sources;
- every HPA in RENDERED asks for a Pods/Object metric that an adapter rule serves.
Exit status 0, 1 (problems), 2 (usage / set-up).
"""
import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

from lib import (get, is_object, join_path, js_eq, js_json, js_number_of, js_str, parse_args, parse_documents, parse_one, read_inputs,
                 require_deps, Report, truthy, UNDEF, YamlTimestamp)

USAGE = ('usage: prometheus.py --promtool PATH --source-root DIR --scrape-config FILE --adapter-config FILE '
         '[RENDERED.yaml ...]')

# Known keys of the parts of the two configs we use (a key outside these is a typo or a feature
# this check does not model: both are problems).
SCRAPE_KEYS = {
    'root': ['global', 'scrape_configs'],
    'scrape': ['job_name', 'scrape_interval', 'scrape_timeout', 'metrics_path', 'scheme', 'honor_labels',
               'kubernetes_sd_configs', 'relabel_configs', 'metric_relabel_configs'],
    'sd': ['role', 'namespaces', 'selectors'],
    'relabel': ['source_labels', 'separator', 'regex', 'target_label', 'replacement', 'action'],
}
ADAPTER_KEYS = {
    'root': ['rules', 'externalRules', 'resourceRules'],
    'rule': ['seriesQuery', 'seriesFilters', 'resources', 'name', 'metricsQuery'],
    'resources': ['overrides', 'template'],
    'name': ['matches', 'as'],
}


def arr(v):
    return v if truthy(v) else []


def nn(v, default):
    """`v ?? default`."""
    return default if v is None or v is UNDEF else v


def check_keys(obj, allowed, where, add):
    if not is_object(obj):
        add(where, 'expected a map')
        return False
    for k in obj:
        if k not in allowed:
            add(join_path(where, k), f'unknown key "{k}"')
    return True


def relabel(labels, configs, add, where):
    """Prometheus relabeling (the actions the scrape config uses), on one target's label set."""
    out = dict(labels)
    for i, c in enumerate(configs):
        action = get(c, 'action') if truthy(get(c, 'action')) else 'replace'
        value = js_str(nn(get(c, 'separator'), ';')).join(js_str(nn(out.get(k), '')) for k in arr(get(c, 'source_labels')))
        rx = re.compile(f'(?:{js_str(nn(get(c, "regex"), "(.*)"))})')
        if action == 'keep':
            if not rx.fullmatch(value):
                return None
            continue
        if action == 'drop':
            if rx.fullmatch(value):
                return None
            continue
        if action != 'replace':
            add(f'{where}[{i}].action', f'action {js_str(action)} is not modelled by this check')
            return None
        m = rx.fullmatch(value)
        if not m:
            continue

        def group(g, m=m):
            n = int(g.group(1))
            return (m.group(n) or '') if n <= (rx.groups or 0) else ''
        v = re.sub(r'\$\{?(\d+)\}?', group, js_str(nn(get(c, 'replacement'), '$1')))
        target = js_str(get(c, 'target_label'))
        if v == '':
            out.pop(target, None)
        else:
            out[target] = v
    return out


def sanitize(s):
    return re.sub(r'[^a-zA-Z0-9_]', '_', s)


def pod_targets(pod):
    """The targets Kubernetes pod discovery makes of one pod (one per declared container port)."""
    base = {
        '__meta_kubernetes_namespace': pod['namespace'],
        '__meta_kubernetes_pod_name': pod['name'],
        '__meta_kubernetes_pod_ip': pod['ip'],
        '__meta_kubernetes_pod_phase': 'Running',
    }
    for k, v in pod['labels'].items():
        base[f'__meta_kubernetes_pod_label_{sanitize(k)}'] = v
    for k, v in pod['annotations'].items():
        base[f'__meta_kubernetes_pod_annotation_{sanitize(k)}'] = v
    targets = []
    for c in pod['containers']:
        for p in arr(c.get('ports')):
            port = js_str(p.get('containerPort', UNDEF))
            targets.append({
                **base, '__address__': f'{pod["ip"]}:{port}', '__metrics_path__': '/metrics', '__scheme__': 'http',
                '__meta_kubernetes_pod_container_name': c.get('name', UNDEF),
                '__meta_kubernetes_pod_container_port_name': p['name'] if truthy(p.get('name')) else '',
                '__meta_kubernetes_pod_container_port_number': port,
            })
    return targets


def pods_of(docs):
    """Pods (one per Job index) of the workloads in the rendered manifests."""
    pods = []
    ip = 1
    for d in docs:
        o = d['obj']
        if not is_object(o) or o.get('kind') not in ('Deployment', 'StatefulSet', 'DaemonSet', 'Job'):
            continue
        t = get(o, 'spec', 'template')
        if not is_object(t):
            continue
        indexed = o['kind'] == 'Job' and o['spec'].get('completionMode') == 'Indexed'
        n = js_number_of(o['spec']['completions']) if indexed and truthy(o['spec'].get('completions')) else 1
        for i in range(math.ceil(n) if math.isfinite(n) else 0):
            labels = dict(arr(get(t, 'metadata', 'labels')))
            if indexed:
                labels['batch.kubernetes.io/job-completion-index'] = str(i)
            name = js_str(o['metadata']['name'])
            pods.append({
                'owner': f'{o["kind"]}/{name}', 'namespace': o['metadata']['namespace'] if truthy(o['metadata'].get('namespace')) else 'default',
                'name': f'{name}-{i}-abcde', 'ip': f'10.0.0.{ip}', 'labels': labels,
                'annotations': arr(get(t, 'metadata', 'annotations')), 'containers': arr(t['spec'].get('containers')),
            })
            ip += 1
    return pods


def promtool(promtool_path, args, add, id_):
    try:
        r = subprocess.run([promtool_path] + args, capture_output=True, text=True, errors='replace', stdin=subprocess.DEVNULL)
    except OSError as e:
        add(id_, '', f'cannot run {promtool_path}: {e}')
        return False
    if r.returncode != 0:
        out = ' | '.join(f'{r.stdout}{r.stderr}'.strip().split('\n')[-4:])
        status = 'null' if r.returncode < 0 else r.returncode  # a signal, as Node reports it
        add(id_, '', f'promtool {args[0]} {args[1]} failed (exit {status}): {out}')
        return False
    return True


def write_yaml(path, obj):
    """YAML.stringify: JSON is YAML, and leaves no string for promtool to read as another type."""
    def plain(v):
        return v.text if isinstance(v, YamlTimestamp) else str(v)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=plain)


def check_scrape(flags, add, tmp, rendered):
    """The scrape config; returns the labels its relabeling sets."""
    scrape_file = flags['--scrape-config']
    sid = f'scrape-config {os.path.basename(scrape_file)}'
    with open(scrape_file, encoding='utf-8', errors='replace') as f:
        scrape = parse_one(f.read())
    produced = {}  # an ordered set

    def sadd(p, m):
        add(sid, p, m)
    if not check_keys(scrape, SCRAPE_KEYS['root'], '', sadd):
        return produced
    jobs = arr(scrape.get('scrape_configs'))
    for ji, job in enumerate(jobs):
        jp = f'scrape_configs[{ji}]'
        check_keys(job, SCRAPE_KEYS['scrape'], jp, sadd)
        for i, sd in enumerate(arr(get(job, 'kubernetes_sd_configs'))):
            check_keys(sd, SCRAPE_KEYS['sd'], f'{jp}.kubernetes_sd_configs[{i}]', sadd)
        for i, r in enumerate(arr(get(job, 'relabel_configs'))):
            check_keys(r, SCRAPE_KEYS['relabel'], f'{jp}.relabel_configs[{i}]', sadd)
            tl = get(r, 'target_label')
            if truthy(tl) and not js_str(tl).startswith('__'):
                produced[tl] = True
    # promtool on a copy with static targets in place of Kubernetes discovery.
    static = copy.deepcopy(scrape)
    for job in arr(static.get('scrape_configs')):
        if is_object(job) and truthy(job.get('kubernetes_sd_configs')):
            del job['kubernetes_sd_configs']
            job['static_configs'] = [{'targets': ['127.0.0.1:9090']}]
    copy_file = os.path.join(tmp, 'scrape-config.static.yaml')
    write_yaml(copy_file, static)
    promtool(flags['--promtool'], ['check', 'config', copy_file], add, sid)

    # Relabeling on the pods of every rendered workload.
    job = next((j for j in jobs if any(get(sd, 'role') == 'pod' for sd in arr(get(j, 'kubernetes_sd_configs')))), None)
    if job is None:
        sadd('scrape_configs', 'no job with kubernetes_sd_configs role pod')
        return produced
    for pod in pods_of(rendered):
        kept = [x for x in (relabel(t, arr(job.get('relabel_configs')), sadd, 'relabel_configs') for t in pod_targets(pod)) if x]
        want = pod['labels'].get('app.kubernetes.io/part-of') == 'rlhf' and pod['annotations'].get('prometheus.io/scrape') == 'true'
        who = f'{pod["owner"]} (pod {pod["namespace"]}/{pod["name"]})'
        if not want:
            if kept:
                sadd('', f'{who}: scraped although it is not an rlhf pod asking for it')
            continue
        if len(kept) != 1:
            sadd('', f'{who}: {len(kept)} targets after relabeling, expected 1')
            continue
        t = kept[0]
        expect = {
            '__address__': f'{pod["ip"]}:{js_str(pod["annotations"].get("prometheus.io/port", UNDEF))}',
            '__metrics_path__': pod['annotations'].get('prometheus.io/path', UNDEF),
            'service': pod['labels'].get('app.kubernetes.io/component', UNDEF), 'namespace': pod['namespace'], 'pod': pod['name'],
        }
        for k, v in expect.items():
            got = t.get(k, UNDEF)
            if not js_eq(got, v):
                sadd('', f'{who}: label {k} is {_json(got)} after relabeling, expected {_json(v)}')
        if t.get('service') not in ('learner', 'rollout', 'reward', 'reference'):
            sadd('', f'{who}: service label {_json(t.get("service", UNDEF))} is not learner|rollout|reward|reference')
    return produced


def _json(v):
    return 'undefined' if v is UNDEF else js_json(v)


def check_adapter(flags, add, tmp, produced):
    """The prometheus-adapter rules; returns the metric names they serve."""
    adapter_file = flags['--adapter-config']
    aid = f'adapter-config {os.path.basename(adapter_file)}'
    with open(adapter_file, encoding='utf-8', errors='replace') as f:
        adapter = parse_one(f.read())
    served = set()

    def aadd(p, m):
        add(aid, p, m)
    if not check_keys(adapter, ADAPTER_KEYS['root'], '', aadd):
        return served
    exprs = []
    metrics = {}  # an ordered set
    for i, r in enumerate(arr(adapter.get('rules'))):
        rp = f'rules[{i}]'
        if not check_keys(r, ADAPTER_KEYS['rule'], rp, aadd):
            continue
        for k in ('seriesQuery', 'metricsQuery', 'resources', 'name'):
            if k not in r:
                aadd(join_path(rp, k), 'missing')
        if is_object(r.get('resources')):
            check_keys(r['resources'], ADAPTER_KEYS['resources'], f'{rp}.resources', aadd)
            for label in arr(r['resources'].get('overrides')):
                if label not in produced:
                    aadd(f'{rp}.resources.overrides.{label}',
                         f'label "{label}" is not set by the scrape config (it sets {", ".join(js_str(x) for x in produced)})')
        series_query = js_str(r['seriesQuery'] if truthy(r.get('seriesQuery')) else '')
        sm = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)', series_query)
        series_name = sm.group(1) if sm else UNDEF
        if is_object(r.get('name')):
            check_keys(r['name'], ADAPTER_KEYS['name'], f'{rp}.name', aadd)
            matches = r['name'].get('matches')
            if truthy(matches) and series_name is not UNDEF and not re.search(js_str(matches), series_name):
                aadd(f'{rp}.name.matches', f'does not match the series {series_name}')
            as_ = r['name']['as'] if truthy(r['name'].get('as')) else series_name
            if truthy(as_):
                served.add(re.sub(r'\$\{?\d+\}?', '', js_str(as_)))
        filled = (js_str(r['metricsQuery'] if truthy(r.get('metricsQuery')) else '')
                  .replace('<<.Series>>', series_name if series_name is not UNDEF else 'up')
                  .replace('<<.LabelMatchers>>', 'namespace="rlhf",pod=~"a|b"')
                  .replace('<<.GroupBy>>', 'pod'))
        if '<<' in filled:
            aadd(f'{rp}.metricsQuery', f'template fields this check does not fill: {", ".join(re.findall(r"<<[^>]*>>", filled))}')
        exprs.append({'record': f'rlhf_adapter_check:series_{i}', 'expr': series_query})
        exprs.append({'record': f'rlhf_adapter_check:metrics_{i}', 'expr': filled})
        for q in (series_query, filled):
            for m in re.finditer(r'\brlhf_[a-z0-9_]+', q):
                metrics[m.group(0)] = True
    rules_file = os.path.join(tmp, 'adapter-queries.rules.yaml')
    write_yaml(rules_file, {'groups': [{'name': 'adapter', 'rules': exprs}]})
    promtool(flags['--promtool'], ['check', 'rules', rules_file], add, aid)

    # The metrics exist: registered by name in the C++ sources.
    sources = []
    root = flags['--source-root']
    for d in ('services', 'common'):
        top = os.path.join(root, d)
        if not os.path.exists(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [x for x in dirnames if x not in ('build', '.git')]
            for fn in filenames:
                if re.search(r'\.(cc|h)$', fn):
                    with open(os.path.join(dirpath, fn), encoding='utf-8', errors='replace') as f:
                        sources.append(f.read())
    text = '\n'.join(sources)
    for m in metrics:
        base = re.sub(r'_(bucket|sum|count)$', '', m)
        if f'"{m}"' not in text and f'"{base}"' not in text:
            aadd('', f'metric {m} is not registered anywhere under {root}/services or {root}/common')
    return served


def check_hpas(rendered, add, served, adapter_file):
    """HPAs ask for metrics the adapter serves."""
    for d in rendered:
        o = d['obj']
        if not is_object(o) or o.get('kind') != 'HorizontalPodAutoscaler':
            continue
        for i, m in enumerate(arr(o['spec'].get('metrics'))):
            metric = get(m, 'pods', 'metric') if truthy(get(m, 'pods')) else UNDEF
            if not truthy(metric):
                metric = get(m, 'object', 'metric') if truthy(get(m, 'object')) else UNDEF
            if truthy(metric) and get(metric, 'name') not in served:
                add(f'HorizontalPodAutoscaler/{js_str(o["metadata"]["name"])}', f'spec.metrics[{i}]',
                    f'custom metric {js_str(get(metric, "name"))} is served by no rule of {adapter_file}')


def main():
    require_deps()
    flags, files = parse_args(sys.argv[1:], ['--promtool', '--source-root', '--scrape-config', '--adapter-config'], [], USAGE)
    for f in ('--promtool', '--source-root', '--scrape-config', '--adapter-config'):
        if f not in flags:
            print(f'error: {f} is required\n{USAGE}', file=sys.stderr)
            return 2
    if not os.path.exists(flags['--promtool']):
        print(f'error: {flags["--promtool"]} not found: run scripts/setup.sh (Debian package prometheus)', file=sys.stderr)
        return 2
    report = Report()
    tmp = tempfile.mkdtemp(prefix='rlhf-prometheus-check-')
    try:
        docs, problems = parse_documents(read_inputs(files)) if files else ([], [])
        for line in problems:
            report.raw(line)
        produced = check_scrape(flags, report.add, tmp, docs)
        served = check_adapter(flags, report.add, tmp, produced)
        check_hpas(docs, report.add, served, flags['--adapter-config'])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report.finish('prometheus', len(docs))


if __name__ == '__main__':
    sys.exit(main())
