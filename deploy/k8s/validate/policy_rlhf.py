"""The rlhf part of policy.py: the embedded service configs through `rlhf check-config`, each
file of an rlhf-config ConfigMap on its own and each rlhf container's --config as it runs it,
and the effective config (check-config --print) against the container, its pod's annotations
and the Services a rollout worker talks to."""
import math
import os
import posixpath
import re

from config_check import field
from lib import arr, get, name, ns, is_object, is_quantity, join_path, js_eq, js_json, js_number_of, js_str, quantity_value, truthy, UNDEF

SERVICES = ['learner', 'rollout', 'reward', 'reference']
GRPC_SERVICE = {
    'learner': 'rlhf.v1.Learner', 'rollout': 'rlhf.v1.Rollout', 'reward': 'rlhf.v1.Reward', 'reference': 'rlhf.v1.Reference',
}
CONFIG_DIR = '/etc/rlhf'


def rlhf_service(c):
    """Container command's rlhf service, or None."""
    cmd = c['command'][0] if isinstance(c.get('command'), list) and len(c['command']) > 0 else ''
    m = re.fullmatch(r'/opt/rlhf/bin/(\w+)', cmd) if isinstance(cmd, str) else None
    return m.group(1) if m and m.group(1) in SERVICES else None


def known_env(c):
    """Env values the kubelet knows before start: literals and resourceFieldRef (rounded up, as
    the kubelet does), for $(VAR) in args."""
    env = {}
    for e in arr(c.get('env')):
        if isinstance(e.get('value'), str):
            env[js_str(e.get('name', UNDEF))] = e['value']
        rf = get(e, 'valueFrom', 'resourceFieldRef')
        if truthy(rf):
            parts = js_str(get(rf, 'resource')).split('.')
            kind, res = parts[0], (parts[1] if len(parts) > 1 else UNDEF)
            resources = c.get('resources', UNDEF)
            qv = get(resources, kind, res) if isinstance(res, str) else UNDEF
            divisor = 1 if get(rf, 'divisor') is UNDEF else quantity_value(rf['divisor'])
            if qv is not UNDEF and is_quantity(qv) and divisor > 0:
                v = quantity_value(qv) / divisor
                env[js_str(e.get('name', UNDEF))] = js_str(math.ceil(v) if math.isfinite(v) else v)
    return env


def expand_args(args, env):
    def sub(m):
        if m.group(0) == '$$':
            return '$'
        return env[m.group(1)] if m.group(1) in env else m.group(0)
    return [re.sub(r'\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)', sub, js_str(a)) for a in args]


def check_rlhf(report, checker, workloads, config_maps, services, pod_template):
    # Every file of rlhf-config ConfigMaps on its own ...
    def is_rlhf_config(c):
        return re.fullmatch(r'rlhf-config(-[a-z0-9]+)?', js_str(name(c['o']))) is not None
    for c in filter(is_rlhf_config, config_maps):
        data = c['o'].get('data')
        for file, content in (data.items() if truthy(data) else []):
            m = re.fullmatch(r'(\w+)\.yaml', file)
            p = join_path('data', file)
            if not m or m.group(1) not in SERVICES:
                report.add(c['id'], p, f'not a service config: files here are {", ".join(s + ".yaml" for s in SERVICES)}')
                continue
            if checker:
                checker.check(c['id'], p, m.group(1), content, file, [])

    # ... and as each container runs it.
    for w in workloads:
        t, tp = pod_template(w['o'])
        if not is_object(t) or not is_object(t.get('spec')):
            continue
        annotations = get(t, 'metadata', 'annotations')
        annotations = annotations if truthy(annotations) else {}
        comp = get(t, 'metadata', 'labels', 'app.kubernetes.io/component')
        for ci, c in enumerate(arr(t['spec'].get('containers'))):
            svc = rlhf_service(c)
            if not svc:
                continue
            _check_container(report, checker, w, t, tp, ci, c, svc, comp, annotations, config_maps, services)


def _check_container(report, checker, w, t, tp, ci, c, svc, comp, annotations, config_maps, services):
    cp = f'{tp}.spec.containers[{ci}]'

    def add(p, m):
        report.add(w['id'], p, m)
    if not js_eq(comp, svc):
        add(f'{tp}.metadata.labels["app.kubernetes.io/component"]',
            f"is {js_json(comp) if comp is not UNDEF else 'undefined'} but the container runs {svc}: "
            "Prometheus's service label comes from it")
    args = expand_args(arr(c.get('args')), known_env(c))
    unexpanded = next((a for a in args if re.search(r'\$\([A-Za-z_]\w*\)', a)), None)
    if unexpanded is not None:
        add(f'{cp}.args', f'{js_json(unexpanded)} refers to an env var with no value known before start')
    cfg_path = args[args.index('--config') + 1] if '--config' in args and args.index('--config') + 1 < len(args) else UNDEF
    if cfg_path is UNDEF:
        add(f'{cp}.args', 'no --config FILE')
        return
    overrides = [args[i + 1] for i, a in enumerate(args) if a == '--set' and i + 1 < len(args)]
    mount = next((m for m in arr(c.get('volumeMounts')) if get(m, 'mountPath') == CONFIG_DIR), None)
    vol = next((v for v in arr(t['spec'].get('volumes')) if js_eq(get(v, 'name'), get(mount, 'name'))), None) if mount else None
    cm = None
    if vol is not None and truthy(vol.get('configMap')):
        cm = next((x for x in config_maps if js_eq(name(x['o']), get(vol, 'configMap', 'name')) and ns(x['o']) == ns(w['o'])), None)
    if cm is None:
        add(f'{cp}.volumeMounts', f'no ConfigMap from the manifests is mounted at {CONFIG_DIR}')
        return
    # path.posix.relative: a relative --config resolves against the working directory.
    file = posixpath.relpath(cfg_path or os.getcwd(), CONFIG_DIR)
    file = '' if file == '.' else file
    content = get(cm['o'], 'data', file)
    if file.startswith('..') or not isinstance(content, str):
        add(f'{cp}.args', f'--config {cfg_path}: ConfigMap/{js_str(name(cm["o"]))} has no key {js_json(file)}')
        return

    def check_effective(cfg):
        """The effective config (check-config --print) against the container and its Services."""
        ports = {get(p, 'name'): get(p, 'containerPort') for p in arr(c.get('ports')) if _hashable(get(p, 'name'))}
        listen_v = field(cfg, 'server', 'listen_address')
        listen = js_str(listen_v if truthy(listen_v) else '')
        lm = re.fullmatch(r'(.*):(\d+)', listen)
        grpc = ports.get('grpc', UNDEF)
        if not lm or lm.group(1) not in ('0.0.0.0', '[::]', '::'):
            add(f'{cp}.args', f'effective server.listen_address {js_json(listen)} does not listen on all interfaces '
                '(0.0.0.0:PORT): probes and Services cannot reach it')
        elif not js_eq(js_number_of(lm.group(2)), grpc):
            add(f'{cp}.ports', f"the grpc containerPort {js_str(grpc)} is not server.listen_address's port {lm.group(2)}")
        metrics_port = js_number_of(field(cfg, 'server', 'metrics_port'))
        if not (metrics_port > 0):
            add(f'{cp}.args', f'effective server.metrics_port is {js_str(metrics_port)}: no fixed /metrics port to scrape')
        else:
            mp = js_str(metrics_port)
            metrics = ports.get('metrics', UNDEF)
            if not js_eq(metrics, metrics_port):
                add(f'{cp}.ports', f'the metrics containerPort {js_str(metrics)} is not server.metrics_port {mp}')
            if annotations.get('prometheus.io/scrape') != 'true':
                add(f'{tp}.metadata.annotations["prometheus.io/scrape"]', 'must be "true"')
            if not js_eq(annotations.get('prometheus.io/port', UNDEF), mp):
                add(f'{tp}.metadata.annotations["prometheus.io/port"]', f'must be "{mp}" (server.metrics_port)')
            if annotations.get('prometheus.io/path') != '/metrics':
                add(f'{tp}.metadata.annotations["prometheus.io/path"]', 'must be "/metrics"')
        if svc == 'rollout':
            for peer in ('learner', 'reward', 'reference'):
                _check_peer(add, cp, w, cfg, peer, services)

    if checker:
        checker.check(w['id'], f'{cp}.args', svc, content, file, overrides, check_effective)


def _check_peer(add, cp, w, cfg, peer, services):
    addr_v = field(cfg, 'worker', peer)
    addr = js_str(addr_v if truthy(addr_v) else '')
    am = re.fullmatch(r'([a-z0-9-]+)(\.([a-z0-9-]+)(\.svc(\..*)?)?)?:(\d+)', addr)
    if not am:
        add(f'{cp}.args', f'worker.{peer} {js_json(addr)} is not <service>[.<namespace>]:<port>')
        return
    sns = am.group(3) or ns(w['o'])
    s = next((x for x in services if js_eq(name(x['o']), am.group(1)) and ns(x['o']) == sns), None)
    if s is None:
        add(f'{cp}.args', f'worker.{peer} {addr}: no Service "{am.group(1)}" in namespace "{sns}"')
        return
    if not any(js_eq(get(pt, 'port'), js_number_of(am.group(6))) for pt in arr(get(s['o'], 'spec', 'ports'))):
        add(f'{cp}.args', f'worker.{peer} {addr}: Service "{am.group(1)}" has no port {am.group(6)}')
    sel = get(s['o'], 'spec', 'selector')
    sel = sel if truthy(sel) else {}
    if get(sel, 'app.kubernetes.io/component') != peer:
        add(f'{cp}.args', f'worker.{peer} {addr}: Service "{am.group(1)}" does not select the {peer} pods')


def _hashable(v):
    try:
        hash(v)
        return True
    except TypeError:
        return False
