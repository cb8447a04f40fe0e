#!/usr/bin/env python3
"""The project's deployment policy on rendered manifests (run validate.py for the schemas):

  $VENV/bin/python deploy/k8s/validate/policy.py --rlhf build/release/cli/rlhf [FILE ...]   (stdin: '-')

Every workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob):
  - each container: cpu and memory requests and limits (request <= limit), startup, readiness
    and liveness probes on a declared port; runAsNonRoot and a non-zero numeric runAsUser
    (pod or container level), seccomp RuntimeDefault/Localhost, allowPrivilegeEscalation
    false, readOnlyRootFilesystem true with a writable emptyDir at /tmp, capabilities drop ALL
    and no added ones but NET_BIND_SERVICE, not privileged; no host namespaces or hostPath;
  - volume mounts name declared volumes; ConfigMaps and PVCs they use are in the manifests;
  - a PodDisruptionBudget in its namespace whose selector matches its pods;
  - an indexed Job with WORLD_SIZE (learner ranks): WORLD_SIZE = completions = parallelism =
    its PDB's minAvailable, MASTER_ADDR = <job>-0.<subdomain>, subdomain a headless Service.
Services select some workload's pods and name ports those pods declare; HPAs target a
workload in the manifests, which leaves spec.replicas unset; the rollout Deployment has one.
rlhf containers (command /opt/rlhf/bin/<service>): `--config /etc/rlhf/<service>.yaml` is a
key of the ConfigMap mounted at /etc/rlhf; `rlhf check-config --service <service>` accepts it
with the container's --set arguments; the effective server.listen_address listens on all
interfaces at the grpc containerPort, server.metrics_port is the prometheus.io/port
annotation and a containerPort; gRPC probes ask for rlhf.v1.<Service>; a rollout worker's
worker.learner/reward/reference are Services here, on a port they serve, selecting that
component's pods (policy_rlhf.py). Every file of an rlhf-config ConfigMap is <service>.yaml and
passes `rlhf check-config` on its own. A ConfigMap must stay under the 256 KiB that client-side
`kubectl apply` can keep in its last-applied annotation.

Exit status: 0 no problem, 1 problems (printed as `<kind>/<name>: <json path>: <problem>`),
2 usage or set-up error.
"""
import os
import re
import sys
import traceback

from lib import (arr, name, ns, doc_id, get, is_integer, is_number, is_object, is_quantity, join_path, js_eq, js_json, js_len, js_number_of,
                 js_str, map_selector_matches, parse_args, parse_documents, quantity_value, read_inputs,
                 require_deps, Report, selector_matches, truthy, UNDEF)
from policy_rlhf import GRPC_SERVICE, check_rlhf, rlhf_service

WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob']
LAST_APPLIED_LIMIT = 262144
COMPLETION_INDEX_REFS = ["metadata.annotations['batch.kubernetes.io/job-completion-index']",
                         "metadata.labels['batch.kubernetes.io/job-completion-index']"]

USAGE = """usage: policy.py (--rlhf PATH | --skip-check-config) [--cache-dir DIR] [FILE ...]   (no FILE or '-': stdin)
  --rlhf PATH           the rlhf binary whose check-config validates every embedded config
  --cache-dir DIR       reuse check-config results of the same binary and input across runs
  --skip-check-config   do not run check-config (reported on stderr; the tests never use it)"""


# --- the objects ----------------------------------------------------------------------------------

def pod_template(o):
    """The pod template of a workload and the JSON path to it."""
    if o.get('kind') == 'CronJob':
        return get(o, 'spec', 'jobTemplate', 'spec', 'template'), 'spec.jobTemplate.spec.template'
    return get(o, 'spec', 'template'), 'spec.template'


def pod_label_sets(o, labels):
    """The label sets the workload's pods will carry: the template's, plus what the controller
    adds that selectors may use (the completion index of an Indexed Job, the ordinal of a
    StatefulSet)."""
    spec = o['spec'] if truthy(o.get('spec')) else {}
    if o.get('kind') == 'Job' and spec.get('completionMode') == 'Indexed':
        n = spec['completions'] if is_integer(spec.get('completions')) else 1
        return [{**labels, 'batch.kubernetes.io/job-completion-index': str(i), 'job-name': name(o),
                 'batch.kubernetes.io/job-name': name(o)} for i in range(max(int(n), 1))]
    if o.get('kind') == 'Job':
        return [{**labels, 'job-name': name(o), 'batch.kubernetes.io/job-name': name(o)}]
    if o.get('kind') == 'StatefulSet':
        n = spec['replicas'] if is_integer(spec.get('replicas')) else 1
        return [{**labels, 'apps.kubernetes.io/pod-index': str(i),
                 'statefulset.kubernetes.io/pod-name': f'{js_str(name(o))}-{i}'} for i in range(max(int(n), 1))]
    return [labels]


def _template_labels(t):
    v = get(t, 'metadata', 'labels')
    return v if truthy(v) else {}


# --- the checks -----------------------------------------------------------------------------------

def check_container(add, c, cp, list_name, psc, volumes, vct_names):
    csc = c['securityContext'] if is_object(c.get('securityContext')) else {}

    def eff(f):
        return csc[f] if f in csc else psc.get(f, UNDEF)
    if eff('runAsNonRoot') is not True:
        add(f'{cp}.securityContext.runAsNonRoot', 'runAsNonRoot must be true (pod or container securityContext)')
    uid = eff('runAsUser')
    if not is_integer(uid):
        add(f'{cp}.securityContext.runAsUser', 'needs a numeric runAsUser (pod or container securityContext): '
            'the kubelet cannot check a user name is not root')
    elif uid == 0:
        add(f'{cp}.securityContext.runAsUser', 'runAsUser must not be 0')
    seccomp = csc.get('seccompProfile') if truthy(csc.get('seccompProfile')) else psc.get('seccompProfile')
    if not truthy(seccomp) or get(seccomp, 'type') not in ('RuntimeDefault', 'Localhost'):
        add(f'{cp}.securityContext.seccompProfile',
            'seccompProfile.type must be RuntimeDefault (or Localhost), at pod or container level')
    if csc.get('allowPrivilegeEscalation', UNDEF) is not False:
        add(f'{cp}.securityContext.allowPrivilegeEscalation', 'must be false')
    if csc.get('privileged') is True:
        add(f'{cp}.securityContext.privileged', 'must not be true')
    if csc.get('readOnlyRootFilesystem') is not True:
        add(f'{cp}.securityContext.readOnlyRootFilesystem', 'must be true')
    caps = csc['capabilities'] if is_object(csc.get('capabilities')) else {}
    if not any(js_eq(x, 'ALL') for x in arr(caps.get('drop'))):
        add(f'{cp}.securityContext.capabilities.drop', 'must include ALL')
    for a in arr(caps.get('add')):
        if not js_eq(a, 'NET_BIND_SERVICE'):
            add(f'{cp}.securityContext.capabilities.add', f'adds {js_str(a)}')

    # Mounts: declared volumes; a writable /tmp when the root filesystem is read-only.
    mounts = arr(c.get('volumeMounts'))
    for mi, m in enumerate(mounts):
        mname = get(m, 'name')
        if not (isinstance(mname, str) and (mname in volumes or mname in vct_names)):
            add(f'{cp}.volumeMounts[{mi}].name', f'volume "{js_str(mname)}" is not declared')
    tmp = next((m for m in mounts if get(m, 'mountPath') in ('/tmp', '/tmp/')), None)
    if tmp is None:
        add(f'{cp}.volumeMounts', 'no writable /tmp: mount an emptyDir there (the root filesystem is read-only)')
    else:
        vol = volumes.get(tmp.get('name')) if isinstance(tmp.get('name'), str) else None
        if tmp.get('readOnly') is True or not (vol and truthy(get(vol['v'], 'emptyDir'))):
            add(f'{cp}.volumeMounts', '/tmp must be a writable emptyDir')

    # Resources.
    res = c['resources'] if is_object(c.get('resources')) else {}
    for kind in ('requests', 'limits'):
        for r in ('cpu', 'memory'):
            rk = res.get(kind, UNDEF)
            qv = get(rk, r) if truthy(rk) else rk
            if qv is UNDEF:
                add(f'{cp}.resources.{kind}.{r}', 'missing')
            elif not is_quantity(qv):
                add(f'{cp}.resources.{kind}.{r}', f'not a quantity: {js_json(qv)}')
    for r in ('cpu', 'memory'):
        req = get(res, 'requests', r)
        lim = get(res, 'limits', r)
        if is_quantity(req) and is_quantity(lim) and quantity_value(req) > quantity_value(lim):
            add(f'{cp}.resources.requests.{r}', f'request {js_str(req)} is above the limit {js_str(lim)}')
    limits = res.get('limits')
    for r, qv in (limits.items() if is_object(limits) else []):
        v = quantity_value(qv)
        if '/' in r and (not is_integer(v) or v < 0):
            add(join_path(f'{cp}.resources.limits', r), f'extended resource {r} must be a whole number')

    if list_name != 'containers':
        return
    # Probes, on ports the container declares.
    for probe in ('startupProbe', 'readinessProbe', 'livenessProbe'):
        pr = c.get(probe)
        if not is_object(pr):
            add(f'{cp}.{probe}', 'missing')
            continue
        handler = next((pr[k] for k in ('grpc', 'httpGet', 'tcpSocket') if truthy(pr.get(k))), UNDEF)
        port = get(handler, 'port') if handler is not UNDEF else UNDEF
        if port is not UNDEF and not any(js_eq(get(pt, 'containerPort'), port) or js_eq(get(pt, 'name'), port)
                                         for pt in arr(c.get('ports'))):
            add(f'{cp}.{probe}', f'probes port {js_str(port)}, which the container does not declare')
        svc = rlhf_service(c)
        if svc and not (truthy(pr.get('grpc')) and js_eq(get(pr, 'grpc', 'service'), GRPC_SERVICE[svc])):
            add(f'{cp}.{probe}', f'must be a grpc probe of the health service for "{GRPC_SERVICE[svc]}"')


def check_gang(report, add, o, id_, spec, sp, label_sets, services, pdbs):
    """Indexed Jobs that are torchrun-style gangs (WORLD_SIZE in the env)."""
    for ci, c in enumerate(arr(spec.get('containers'))):
        env = {e['name']: e for e in arr(c.get('env')) if is_object(e) and isinstance(e.get('name'), str)}
        if 'WORLD_SIZE' not in env:
            continue
        wsv = env['WORLD_SIZE'].get('value', UNDEF)
        ws = js_number_of(wsv)
        cp = f'{sp}.containers[{ci}].env'
        completions = o['spec'].get('completions', UNDEF)
        parallelism = o['spec'].get('parallelism', UNDEF)
        if not js_eq(completions, ws):
            add('spec.completions', f'{js_str(completions)} but WORLD_SIZE is {js_str(wsv)}')
        if not js_eq(parallelism, ws):
            add('spec.parallelism', f'{js_str(parallelism)} but WORLD_SIZE is {js_str(wsv)}')
        rank = get(env.get('RANK', UNDEF), 'valueFrom', 'fieldRef', 'fieldPath')
        if rank not in COMPLETION_INDEX_REFS:
            add(cp, "RANK must come from the completion index (fieldRef metadata.annotations['batch.kubernetes.io/job-completion-index'])")
        sub = spec.get('subdomain', UNDEF)
        headless = next((s for s in services if js_eq(name(s['o']), sub) and ns(s['o']) == ns(o)), None)
        if not truthy(sub) or headless is None:
            add(f'{sp}.subdomain', 'must name a headless Service in the manifests (ranks need stable DNS names), '
                f'got {js_json(sub) if sub is not UNDEF else "undefined"}')
        else:
            if get(headless['o'], 'spec', 'clusterIP') != 'None':
                add(f'{sp}.subdomain', f'Service "{sub}" is not headless (clusterIP: None)')
            if not all(map_selector_matches(get(headless['o'], 'spec', 'selector'), ls) for ls in label_sets):
                add(f'{sp}.subdomain', f'Service "{sub}" does not select every rank')
        master = get(env.get('MASTER_ADDR', UNDEF), 'value')
        if master is not UNDEF and truthy(sub):
            n, s, nsp = js_str(name(o)), js_str(sub), ns(o)
            pattern = f'^{n}-0\\.{s}(\\.{nsp or "[^.]+"}(\\.svc(\\..+)?)?)?$'
            if not re.search(pattern.replace('$', r'\Z'), js_str(master)):
                add(cp, f'MASTER_ADDR {js_json(master)} is not rank 0 ({n}-0.{s})')
        for d in pdbs:
            if ns(d['o']) == ns(o) and all(selector_matches(get(d['o'], 'spec', 'selector'), ls) for ls in label_sets):
                min_avail = d['o']['spec'].get('minAvailable', UNDEF)
                if not js_eq(min_avail, ws):
                    report.add(d['id'], 'spec.minAvailable', f'{js_str(min_avail)} but the gang {id_} has WORLD_SIZE '
                               f'{js_str(ws)}: evicting any rank stops them all')


def check_all(docs, report, checker):
    all_ = [{'o': d['obj'], 'id': doc_id(d)} for d in docs if is_object(d['obj'])]

    def of(kind):
        return [x for x in all_ if x['o'].get('kind') == kind]
    workloads = [x for x in all_ if x['o'].get('kind') in WORKLOAD_KINDS]
    config_maps = of('ConfigMap')
    pvcs = of('PersistentVolumeClaim')
    services = of('Service')
    pdbs = of('PodDisruptionBudget')
    hpas = of('HorizontalPodAutoscaler')

    # Per workload: its pods' label sets and ports, for services, PDBs and HPAs.
    pods_of = []  # (workload, {label_sets, ports, ns})

    for w in workloads:
        o, id_ = w['o'], w['id']

        def add(p, m, id_=id_):
            report.add(id_, p, m)
        t, tp = pod_template(o)
        if not is_object(t) or not is_object(t.get('spec')):
            add(tp, 'no pod template')
            continue
        spec = t['spec']
        sp = f'{tp}.spec'
        labels = _template_labels(t)
        label_sets = pod_label_sets(o, labels)
        ports = {}  # name -> number, and number -> number
        for c in arr(spec.get('containers')):
            for port in arr(c.get('ports')):
                if truthy(port.get('name')):
                    ports[port['name']] = port.get('containerPort', UNDEF)
                ports[port.get('containerPort', UNDEF)] = port.get('containerPort', UNDEF)
        pods_of.append((w, {'label_sets': label_sets, 'ports': ports, 'ns': ns(o)}))

        # The workload's selector must select its own template.
        if o['kind'] in ('Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet') and \
                not selector_matches(o['spec'].get('selector'), labels):
            add('spec.selector', f"does not match the pod template's labels {js_json(labels)}")

        # Pod level security.
        psc = spec['securityContext'] if is_object(spec.get('securityContext')) else {}
        for f in ('hostNetwork', 'hostPID', 'hostIPC'):
            if spec.get(f) is True:
                add(f'{sp}.{f}', 'must not be true')
        volumes = {}
        for i, v in enumerate(arr(spec.get('volumes'))):
            volumes[v.get('name')] = {'v': v, 'i': i}
        vct_names = {name(v) for v in arr(o['spec'].get('volumeClaimTemplates'))} if o['kind'] == 'StatefulSet' else set()
        for vn, entry in volumes.items():
            v, vp = entry['v'], f'{sp}.volumes[{entry["i"]}]'
            if truthy(v.get('hostPath')):
                add(f'{vp}.hostPath', f'volume "{js_str(vn)}": hostPath volumes are not allowed')
            cm = v.get('configMap')
            if truthy(cm) and not any(js_eq(name(c['o']), get(cm, 'name')) and ns(c['o']) == ns(o) for c in config_maps) \
                    and get(cm, 'optional') is not True:
                add(f'{vp}.configMap.name', f'ConfigMap "{js_str(get(cm, "name"))}" is not in the manifests (namespace "{ns(o)}")')
            pvc = v.get('persistentVolumeClaim')
            if truthy(pvc) and not any(js_eq(name(c['o']), get(pvc, 'claimName')) and ns(c['o']) == ns(o) for c in pvcs):
                add(f'{vp}.persistentVolumeClaim.claimName',
                    f'PersistentVolumeClaim "{js_str(get(pvc, "claimName"))}" is not in the manifests (namespace "{ns(o)}")')

        for list_name in ('containers', 'initContainers'):
            for ci, c in enumerate(arr(spec.get(list_name))):
                check_container(add, c, f'{sp}.{list_name}[{ci}]', list_name, psc, volumes, vct_names)

        if o['kind'] == 'Job' and o['spec'].get('completionMode') == 'Indexed':
            check_gang(report, add, o, id_, spec, sp, label_sets, services, pdbs)

        # Disruption budget.
        if not any(ns(d['o']) == ns(o) and all(selector_matches(get(d['o'], 'spec', 'selector'), ls) for ls in label_sets)
                   for d in pdbs):
            add('', f'no PodDisruptionBudget in namespace "{ns(o)}" selects its pods (labels {js_json(labels)})')

    # PDBs that protect nothing.
    for d in pdbs:
        hit = any(p['ns'] == ns(d['o']) and any(selector_matches(get(d['o'], 'spec', 'selector'), ls) for ls in p['label_sets'])
                  for _, p in pods_of)
        if not hit:
            report.add(d['id'], 'spec.selector', "selects no workload's pods")

    # Services: select pods, name ports those pods have.
    for s in services:
        sel = get(s['o'], 'spec', 'selector')
        if not is_object(sel) or len(sel) == 0:
            continue  # hand-managed endpoints
        targets = [p for _, p in pods_of if p['ns'] == ns(s['o']) and any(map_selector_matches(sel, ls) for ls in p['label_sets'])]
        if not targets:
            report.add(s['id'], 'spec.selector', f"selects no workload's pods: {js_json(sel)}")
            continue
        for i, pt in enumerate(arr(s['o']['spec'].get('ports'))):
            tgt = pt.get('targetPort', UNDEF)
            tgt = pt.get('port', UNDEF) if tgt is UNDEF else tgt
            if not any(_has_port(p['ports'], tgt) for p in targets):
                report.add(s['id'], f'spec.ports[{i}].targetPort',
                           f'no selected pod declares port {js_json(tgt) if tgt is not UNDEF else "undefined"}')

    # PodMonitors (optional component): select rlhf pods, scrape a port every one declares.
    for m in of('PodMonitor'):
        spec = m['o']['spec'] if truthy(m['o'].get('spec')) else {}
        ns_sel = spec['namespaceSelector'] if truthy(spec.get('namespaceSelector')) else {}

        def in_ns(p, ns_sel=ns_sel, m=m):
            if ns_sel.get('any') is True:
                return True
            if truthy(ns_sel.get('matchNames')):
                return any(js_eq(x, p['ns']) for x in ns_sel['matchNames'])
            return p['ns'] == ns(m['o'])
        targets = [p for _, p in pods_of if in_ns(p) and any(selector_matches(spec.get('selector'), ls) for ls in p['label_sets'])]
        if not targets:
            report.add(m['id'], 'spec.selector', "selects no workload's pods")
            continue
        for i, e in enumerate(arr(spec.get('podMetricsEndpoints'))):
            if 'port' in e and not all(_has_port(p['ports'], e['port']) for p in targets):
                report.add(m['id'], f'spec.podMetricsEndpoints[{i}].port', f'not every selected pod declares port {js_json(e["port"])}')

    # HPAs: a target here; the target leaves replicas to it.
    scaled = []
    for h in hpas:
        ref = get(h['o'], 'spec', 'scaleTargetRef')
        ref = ref if truthy(ref) else {}
        target = next((w for w in workloads if js_eq(w['o'].get('kind'), get(ref, 'kind')) and js_eq(name(w['o']), get(ref, 'name'))
                       and ns(w['o']) == ns(h['o']) and js_eq(w['o'].get('apiVersion'), get(ref, 'apiVersion'))), None)
        if target is None:
            report.add(h['id'], 'spec.scaleTargetRef', f'{js_str(get(ref, "apiVersion"))} {js_str(get(ref, "kind"))} '
                       f'"{js_str(get(ref, "name"))}" is not in the manifests')
            continue
        scaled.append(target)
        if 'replicas' in target['o']['spec']:
            report.add(target['id'], 'spec.replicas', f'is set while HorizontalPodAutoscaler/{js_str(name(h["o"]))} owns the '
                       'replica count: every `kubectl apply` would reset it')
        hspec = h['o']['spec']
        if 'minReplicas' in hspec and is_number(hspec.get('maxReplicas')) and is_number(hspec['minReplicas']) \
                and hspec['maxReplicas'] < hspec['minReplicas']:
            report.add(h['id'], 'spec.maxReplicas', f'{js_str(hspec["maxReplicas"])} is below minReplicas {js_str(hspec["minReplicas"])}')
    for w in workloads:
        t, _ = pod_template(w['o'])
        comp = get(t, 'metadata', 'labels', 'app.kubernetes.io/component')
        if w['o']['kind'] == 'Deployment' and comp == 'rollout' and not any(w is x for x in scaled):
            report.add(w['id'], '', 'the rollout workers have no HorizontalPodAutoscaler targeting them')

    # ConfigMap sizes (client-side apply keeps the whole object in an annotation).
    for c in config_maps:
        size = js_len(js_json(c['o']))
        if size > LAST_APPLIED_LIMIT:
            report.add(c['id'], '', f'{size} bytes as JSON: above the {LAST_APPLIED_LIMIT} bytes that `kubectl apply` '
                       'can store in its last-applied annotation (split it)')

    check_rlhf(report, checker, workloads, config_maps, services, pod_template)


def _has_port(ports, p):
    """Map.prototype.has on the name/number map (SameValueZero: "8080" is not 8080)."""
    return any(js_eq(k, p) for k in ports)


def main():
    require_deps()
    flags, files = parse_args(sys.argv[1:], ['--rlhf', '--cache-dir'], ['--skip-check-config'], USAGE)
    if '--rlhf' not in flags and '--skip-check-config' not in flags:
        print(f'error: pass --rlhf PATH (the rlhf binary for check-config) or --skip-check-config\n{USAGE}', file=sys.stderr)
        return 2
    from config_check import ConfigChecker
    report = Report()
    docs, problems = parse_documents(read_inputs(files))
    for line in problems:
        report.raw(line)
    checker = None
    if '--rlhf' in flags:
        checker = ConfigChecker(os.path.abspath(flags['--rlhf']), report, flags.get('--cache-dir'))
    else:
        print('policy: --skip-check-config: the embedded service configs were NOT checked', file=sys.stderr)
    try:
        check_all(docs, report, checker)
        if checker:
            checker.run()
    except Exception:  # noqa: BLE001
        # Malformed objects that validate.py reports can trip a check here: say so, do not pass.
        print(f'policy: internal error (run validate.py on the same input first): {traceback.format_exc()}', file=sys.stderr)
        return 2
    finally:
        if checker:
            checker.cleanup()
    return report.finish('policy', len(docs))


if __name__ == '__main__':
    sys.exit(main())
