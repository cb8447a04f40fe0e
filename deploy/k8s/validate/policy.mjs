#!/usr/bin/env node
// The project's deployment policy on rendered manifests (run validate.mjs for the schemas):
//
//   node deploy/k8s/validate/policy.mjs --rlhf build/release/cli/rlhf [FILE ...]   (stdin: '-')
//
// Every workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob):
//   - each container: cpu and memory requests and limits (request <= limit), startup, readiness
//     and liveness probes on a declared port; runAsNonRoot and a non-zero numeric runAsUser
//     (pod or container level), seccomp RuntimeDefault/Localhost, allowPrivilegeEscalation
//     false, readOnlyRootFilesystem true with a writable emptyDir at /tmp, capabilities drop ALL
//     and no added ones but NET_BIND_SERVICE, not privileged; no host namespaces or hostPath;
//   - volume mounts name declared volumes; ConfigMaps and PVCs they use are in the manifests;
//   - a PodDisruptionBudget in its namespace whose selector matches its pods;
//   - an indexed Job with WORLD_SIZE (learner ranks): WORLD_SIZE = completions = parallelism =
//     its PDB's minAvailable, MASTER_ADDR = <job>-0.<subdomain>, subdomain a headless Service.
// Services select some workload's pods and name ports those pods declare; HPAs target a
// workload in the manifests, which leaves spec.replicas unset; the rollout Deployment has one.
// rlhf containers (command /opt/rlhf/bin/<service>): `--config /etc/rlhf/<service>.yaml` is a
// key of the ConfigMap mounted at /etc/rlhf; `rlhf check-config --service <service>` accepts it
// with the container's --set arguments; the effective server.listen_address listens on all
// interfaces at the grpc containerPort, server.metrics_port is the prometheus.io/port
// annotation and a containerPort; gRPC probes ask for rlhf.v1.<Service>; a rollout worker's
// worker.learner/reward/reference are Services here, on a port they serve, selecting that
// component's pods. Every file of an rlhf-config ConfigMap is <service>.yaml and passes
// `rlhf check-config` on its own. A ConfigMap must stay under the 256 KiB that client-side
// `kubectl apply` can keep in its last-applied annotation.
//
// Exit status: 0 no problem, 1 problems (printed as `<kind>/<name>: <json path>: <problem>`),
// 2 usage or set-up error.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import {
  requireDeps, readInputs, parseDocuments, docId, joinPath, isObject, quantityValue, isQuantity,
  selectorMatches, mapSelectorMatches, Report, parseArgs,
} from './lib.mjs';

const SERVICES = ['learner', 'rollout', 'reward', 'reference'];
const GRPC_SERVICE = {
  learner: 'rlhf.v1.Learner', rollout: 'rlhf.v1.Rollout', reward: 'rlhf.v1.Reward', reference: 'rlhf.v1.Reference',
};
const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob'];
const CONFIG_DIR = '/etc/rlhf';
const LAST_APPLIED_LIMIT = 262144;

const USAGE = `usage: node policy.mjs (--rlhf PATH | --skip-check-config) [--cache-dir DIR] [FILE ...]   (no FILE or '-': stdin)
  --rlhf PATH           the rlhf binary whose check-config validates every embedded config
  --cache-dir DIR       reuse check-config results of the same binary and input across runs
  --skip-check-config   do not run check-config (reported on stderr; the tests never use it)`;

// --- the objects -------------------------------------------------------------------------------

function ns(o) { return (o.metadata && o.metadata.namespace) || ''; }
function name(o) { return (o.metadata && o.metadata.name) || ''; }

// The pod template of a workload and the JSON path to it.
function podTemplate(o) {
  if (o.kind === 'CronJob') {
    return { t: o.spec && o.spec.jobTemplate && o.spec.jobTemplate.spec && o.spec.jobTemplate.spec.template, p: 'spec.jobTemplate.spec.template' };
  }
  return { t: o.spec && o.spec.template, p: 'spec.template' };
}

// The label sets the workload's pods will carry: the template's, plus what the controller adds
// that selectors may use (the completion index of an Indexed Job, the ordinal of a StatefulSet).
function podLabelSets(o, labels) {
  const spec = o.spec || {};
  if (o.kind === 'Job' && spec.completionMode === 'Indexed') {
    const n = Number.isInteger(spec.completions) ? spec.completions : 1;
    return Array.from({ length: Math.max(n, 1) }, (_, i) => ({
      ...labels, 'batch.kubernetes.io/job-completion-index': String(i), 'job-name': name(o), 'batch.kubernetes.io/job-name': name(o),
    }));
  }
  if (o.kind === 'Job') return [{ ...labels, 'job-name': name(o), 'batch.kubernetes.io/job-name': name(o) }];
  if (o.kind === 'StatefulSet') {
    const n = Number.isInteger(spec.replicas) ? spec.replicas : 1;
    return Array.from({ length: Math.max(n, 1) }, (_, i) => ({
      ...labels, 'apps.kubernetes.io/pod-index': String(i), 'statefulset.kubernetes.io/pod-name': `${name(o)}-${i}`,
    }));
  }
  return [labels];
}

// Container command's rlhf service, or null.
function rlhfService(c) {
  const cmd = Array.isArray(c.command) && c.command.length > 0 ? c.command[0] : '';
  const m = /^\/opt\/rlhf\/bin\/(\w+)$/.exec(cmd);
  return m && SERVICES.includes(m[1]) ? m[1] : null;
}

// Env values the kubelet knows before start: literals and resourceFieldRef (rounded up, as
// the kubelet does), for $(VAR) in args.
function knownEnv(c) {
  const env = {};
  for (const e of c.env || []) {
    if (typeof e.value === 'string') env[e.name] = e.value;
    const rf = e.valueFrom && e.valueFrom.resourceFieldRef;
    if (rf) {
      const [kind, res] = String(rf.resource).split('.');
      const q = c.resources && c.resources[kind] && c.resources[kind][res];
      const divisor = rf.divisor === undefined ? 1 : quantityValue(rf.divisor);
      if (q !== undefined && isQuantity(q) && divisor > 0) env[e.name] = String(Math.ceil(quantityValue(q) / divisor));
    }
  }
  return env;
}

function expandArgs(args, env) {
  return args.map((a) => String(a).replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
    (m, v) => (m === '$$' ? '$' : (v in env ? env[v] : m))));
}

// --- check-config ------------------------------------------------------------------------------

// Runs `rlhf check-config`. Each run costs about a second (the binary loads LibTorch), so
// requests are queued while the manifests are walked, identical ones run once, and the rest
// run in parallel; the callbacks then run in request order, so the report is deterministic.
class ConfigChecker {
  constructor(rlhf, report, cacheDir) {
    this.rlhf = rlhf;
    this.cacheDir = cacheDir;
    this.report = report;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-k8s-configs-'));
    this.queue = [];
    this.runs = new Map();  // dedup key -> {file, args, result}
    this.available = null;
  }

  // Is check-config there at all? One clear problem instead of one per file.
  usable(id) {
    if (this.available === null) {
      if (!fs.existsSync(this.rlhf)) {
        this.report.add(id, '', `cannot check configs: ${this.rlhf} does not exist (build it: scripts/build.sh)`);
        this.available = false;
      } else {
        const r = spawnSync(this.rlhf, ['check-config', '--help'], { encoding: 'utf8' });
        // An rlhf without the subcommand prints its own help and exits 0: look for the option.
        this.available = r.status === 0 && /--service/.test(r.stdout || '');
        if (!this.available) {
          this.report.add(id, '', `cannot check configs: ${this.rlhf} has no check-config subcommand ` +
            `(\`check-config --help\` exit ${r.status}, no --service in its help): rebuild it (scripts/build.sh)`);
        }
      }
    }
    return this.available;
  }

  // Queues `rlhf check-config --service svc FILE --print [--set ...]`; after run(), calls
  // then(effective config) on success, or reports the failure at (id, p).
  check(id, p, svc, content, fileName, overrides, then = () => {}) {
    if (!this.usable(id)) return;
    const key = JSON.stringify([svc, fileName, content, overrides]);
    if (!this.runs.has(key)) {
      const file = path.join(this.dir, `${this.runs.size + 1}-${fileName}`);
      fs.writeFileSync(file, content);
      const args = ['check-config', '--service', svc, file, '--print'];
      for (const o of overrides) args.push('--set', o);
      this.runs.set(key, { file, args, result: null, cache: this.cachePath(key) });
    }
    const shown = `rlhf check-config --service ${svc} ${fileName}${overrides.map((o) => ` --set ${o}`).join('')}`;
    this.queue.push({ run: this.runs.get(key), id, p, shown, fileName, then });
  }

  // --cache-dir: results of earlier runs of the same binary on the same input (the test runs
  // policy.mjs many times on the same configs; each run of rlhf costs about a second).
  cachePath(key) {
    if (!this.cacheDir) return null;
    const st = fs.statSync(this.rlhf);
    const h = crypto.createHash('sha256').update(JSON.stringify([this.rlhf, st.size, st.mtimeMs, key])).digest('hex');
    return path.join(this.cacheDir, `${h}.json`);
  }

  async run() {
    for (const r of this.runs.values()) {
      if (r.result === null && r.cache && fs.existsSync(r.cache)) {
        try { r.result = JSON.parse(fs.readFileSync(r.cache, 'utf8')); } catch (e) { r.result = null; }
      }
    }
    const runs = [...this.runs.values()].filter((r) => r.result === null);
    const width = Math.max(2, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
    let next = 0;
    const worker = async () => {
      while (next < runs.length) {
        const r = runs[next++];
        r.result = await new Promise((resolve) => {
          const child = spawn(this.rlhf, r.args, { stdio: ['ignore', 'pipe', 'pipe'] });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d) => { stdout += d; });
          child.stderr.on('data', (d) => { stderr += d; });
          child.on('error', (e) => resolve({ status: -1, stdout, stderr: String(e) }));
          child.on('close', (status) => resolve({ status, stdout: stdout.replaceAll(r.file, '<file>'), stderr: stderr.replaceAll(r.file, '<file>') }));
        });
        if (r.cache && r.result.status !== -1) {
          fs.mkdirSync(this.cacheDir, { recursive: true });
          const part = `${r.cache}.${process.pid}`;  // written aside and renamed: other runs read it
          fs.writeFileSync(part, JSON.stringify(r.result));
          fs.renameSync(part, r.cache);
        }
      }
    };
    await Promise.all(Array.from({ length: width }, worker));
    for (const q of this.queue) {
      const { status, stdout, stderr } = q.run.result;
      if (status !== 0) {
        const msg = `${stderr}${stdout}`.trim().split('\n')
          .filter((l) => l.trim() && !/^I\d{8} /.test(l)).map((l) => l.replaceAll('<file>', q.fileName));
        this.report.add(q.id, q.p, `${q.shown}: exit ${status}: ${msg.slice(-3).join(' | ') || 'no message'}`);
        continue;
      }
      let cfg = null;
      try {
        cfg = JSON.parse(stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop());
      } catch (e) {
        this.report.add(q.id, q.p, `${q.shown}: no effective config in its --print output`);
        continue;
      }
      q.then(cfg);
    }
    this.queue = [];
  }

  cleanup() { fs.rmSync(this.dir, { recursive: true, force: true }); }
}

// A field of the effective config as check-config prints it (proto or JSON names).
function field(obj, ...names) {
  let cur = obj;
  for (const n of names) {
    if (!isObject(cur)) return undefined;
    const camel = n.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
    cur = n in cur ? cur[n] : cur[camel];
  }
  return cur;
}

// --- the checks --------------------------------------------------------------------------------

function main2(docs, report, checker) {
  const all = docs.map((d) => ({ o: d.obj, id: docId(d) })).filter((x) => isObject(x.o));
  const of = (kind) => all.filter((x) => x.o.kind === kind);
  const workloads = all.filter((x) => WORKLOAD_KINDS.includes(x.o.kind));
  const configMaps = of('ConfigMap');
  const pvcs = of('PersistentVolumeClaim');
  const services = of('Service');
  const pdbs = of('PodDisruptionBudget');
  const hpas = of('HorizontalPodAutoscaler');

  // Per workload: its pods' label sets and ports, for services, PDBs and HPAs.
  const podsOf = new Map();

  for (const w of workloads) {
    const { o, id } = w;
    const add = (p, m) => report.add(id, p, m);
    const { t, p: tp } = podTemplate(o);
    if (!isObject(t) || !isObject(t.spec)) { add(tp, 'no pod template'); continue; }
    const spec = t.spec;
    const sp = `${tp}.spec`;
    const labels = (t.metadata && t.metadata.labels) || {};
    const labelSets = podLabelSets(o, labels);
    const ports = new Map();  // name -> number, and number -> number
    for (const c of spec.containers || []) {
      for (const port of c.ports || []) {
        if (port.name) ports.set(port.name, port.containerPort);
        ports.set(port.containerPort, port.containerPort);
      }
    }
    podsOf.set(w, { labelSets, ports, ns: ns(o) });

    // The workload's selector must select its own template.
    if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'].includes(o.kind) && !selectorMatches(o.spec.selector, labels)) {
      add('spec.selector', `does not match the pod template's labels ${JSON.stringify(labels)}`);
    }

    // Pod level security.
    const psc = isObject(spec.securityContext) ? spec.securityContext : {};
    for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[f] === true) add(`${sp}.${f}`, 'must not be true');
    const volumes = new Map((spec.volumes || []).map((v, i) => [v.name, { v, i }]));
    const vctNames = new Set(o.kind === 'StatefulSet' ? (o.spec.volumeClaimTemplates || []).map((v) => name(v)) : []);
    for (const [vn, { v, i }] of volumes) {
      const vp = `${sp}.volumes[${i}]`;
      if (v.hostPath) add(`${vp}.hostPath`, `volume "${vn}": hostPath volumes are not allowed`);
      if (v.configMap && !configMaps.some((c) => name(c.o) === v.configMap.name && ns(c.o) === ns(o)) && v.configMap.optional !== true) {
        add(`${vp}.configMap.name`, `ConfigMap "${v.configMap.name}" is not in the manifests (namespace "${ns(o)}")`);
      }
      if (v.persistentVolumeClaim && !pvcs.some((c) => name(c.o) === v.persistentVolumeClaim.claimName && ns(c.o) === ns(o))) {
        add(`${vp}.persistentVolumeClaim.claimName`, `PersistentVolumeClaim "${v.persistentVolumeClaim.claimName}" is not in the manifests (namespace "${ns(o)}")`);
      }
    }

    const containerLists = [['containers', spec.containers || []], ['initContainers', spec.initContainers || []]];
    for (const [list, containers] of containerLists) {
      containers.forEach((c, ci) => {
        const cp = `${sp}.${list}[${ci}]`;
        const csc = isObject(c.securityContext) ? c.securityContext : {};
        const eff = (f) => (csc[f] !== undefined ? csc[f] : psc[f]);
        if (eff('runAsNonRoot') !== true) add(`${cp}.securityContext.runAsNonRoot`, 'runAsNonRoot must be true (pod or container securityContext)');
        const uid = eff('runAsUser');
        if (!Number.isInteger(uid)) add(`${cp}.securityContext.runAsUser`, 'needs a numeric runAsUser (pod or container securityContext): the kubelet cannot check a user name is not root');
        else if (uid === 0) add(`${cp}.securityContext.runAsUser`, 'runAsUser must not be 0');
        const seccomp = csc.seccompProfile || psc.seccompProfile;
        if (!seccomp || !['RuntimeDefault', 'Localhost'].includes(seccomp.type)) {
          add(`${cp}.securityContext.seccompProfile`, 'seccompProfile.type must be RuntimeDefault (or Localhost), at pod or container level');
        }
        if (csc.allowPrivilegeEscalation !== false) add(`${cp}.securityContext.allowPrivilegeEscalation`, 'must be false');
        if (csc.privileged === true) add(`${cp}.securityContext.privileged`, 'must not be true');
        if (csc.readOnlyRootFilesystem !== true) add(`${cp}.securityContext.readOnlyRootFilesystem`, 'must be true');
        const caps = isObject(csc.capabilities) ? csc.capabilities : {};
        if (!(caps.drop || []).includes('ALL')) add(`${cp}.securityContext.capabilities.drop`, 'must include ALL');
        for (const a of caps.add || []) if (a !== 'NET_BIND_SERVICE') add(`${cp}.securityContext.capabilities.add`, `adds ${a}`);

        // Mounts: declared volumes; a writable /tmp when the root filesystem is read-only.
        const mounts = c.volumeMounts || [];
        mounts.forEach((m, mi) => {
          if (!volumes.has(m.name) && !vctNames.has(m.name)) add(`${cp}.volumeMounts[${mi}].name`, `volume "${m.name}" is not declared`);
        });
        const tmp = mounts.find((m) => m.mountPath === '/tmp' || m.mountPath === '/tmp/');
        if (!tmp) {
          add(`${cp}.volumeMounts`, 'no writable /tmp: mount an emptyDir there (the root filesystem is read-only)');
        } else if (tmp.readOnly === true || !(volumes.get(tmp.name) && volumes.get(tmp.name).v.emptyDir)) {
          add(`${cp}.volumeMounts`, '/tmp must be a writable emptyDir');
        }

        // Resources.
        const res = isObject(c.resources) ? c.resources : {};
        for (const kind of ['requests', 'limits']) {
          for (const r of ['cpu', 'memory']) {
            const q = res[kind] && res[kind][r];
            if (q === undefined) add(`${cp}.resources.${kind}.${r}`, 'missing');
            else if (!isQuantity(q)) add(`${cp}.resources.${kind}.${r}`, `not a quantity: ${JSON.stringify(q)}`);
          }
        }
        for (const r of ['cpu', 'memory']) {
          const req = res.requests && res.requests[r];
          const lim = res.limits && res.limits[r];
          if (isQuantity(req) && isQuantity(lim) && quantityValue(req) > quantityValue(lim)) {
            add(`${cp}.resources.requests.${r}`, `request ${req} is above the limit ${lim}`);
          }
        }
        for (const [r, q] of Object.entries(res.limits || {})) {
          if (r.includes('/') && (!Number.isInteger(quantityValue(q)) || quantityValue(q) < 0)) {
            add(joinPath(`${cp}.resources.limits`, r), `extended resource ${r} must be a whole number`);
          }
        }

        if (list !== 'containers') return;
        // Probes, on ports the container declares.
        for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
          const pr = c[probe];
          if (!isObject(pr)) { add(`${cp}.${probe}`, 'missing'); continue; }
          const handler = pr.grpc || pr.httpGet || pr.tcpSocket;
          if (handler && handler.port !== undefined && !(c.ports || []).some((pt) => pt.containerPort === handler.port || pt.name === handler.port)) {
            add(`${cp}.${probe}`, `probes port ${handler.port}, which the container does not declare`);
          }
          const svc = rlhfService(c);
          if (svc && !(pr.grpc && pr.grpc.service === GRPC_SERVICE[svc])) {
            add(`${cp}.${probe}`, `must be a grpc probe of the health service for "${GRPC_SERVICE[svc]}"`);
          }
        }
      });
    }

    // Indexed Jobs that are torchrun-style gangs (WORLD_SIZE in the env).
    if (o.kind === 'Job' && o.spec.completionMode === 'Indexed') {
      for (const [ci, c] of (spec.containers || []).entries()) {
        const env = Object.fromEntries((c.env || []).map((e) => [e.name, e]));
        if (!env.WORLD_SIZE) continue;
        const ws = Number(env.WORLD_SIZE.value);
        const cp = `${sp}.containers[${ci}].env`;
        if (o.spec.completions !== ws) add('spec.completions', `${o.spec.completions} but WORLD_SIZE is ${env.WORLD_SIZE.value}`);
        if (o.spec.parallelism !== ws) add('spec.parallelism', `${o.spec.parallelism} but WORLD_SIZE is ${env.WORLD_SIZE.value}`);
        const rank = env.RANK && env.RANK.valueFrom && env.RANK.valueFrom.fieldRef && env.RANK.valueFrom.fieldRef.fieldPath;
        if (!['metadata.annotations[\'batch.kubernetes.io/job-completion-index\']', 'metadata.labels[\'batch.kubernetes.io/job-completion-index\']'].includes(rank)) {
          add(cp, 'RANK must come from the completion index (fieldRef metadata.annotations[\'batch.kubernetes.io/job-completion-index\'])');
        }
        const sub = spec.subdomain;
        const headless = services.find((s) => name(s.o) === sub && ns(s.o) === ns(o));
        if (!sub || !headless) add(`${sp}.subdomain`, `must name a headless Service in the manifests (ranks need stable DNS names), got ${JSON.stringify(sub)}`);
        else {
          if (headless.o.spec.clusterIP !== 'None') add(`${sp}.subdomain`, `Service "${sub}" is not headless (clusterIP: None)`);
          if (!labelSets.every((l) => mapSelectorMatches(headless.o.spec.selector, l))) add(`${sp}.subdomain`, `Service "${sub}" does not select every rank`);
        }
        const master = env.MASTER_ADDR && env.MASTER_ADDR.value;
        if (master !== undefined && sub && !new RegExp(`^${name(o)}-0\\.${sub}(\\.${ns(o) || '[^.]+'}(\\.svc(\\..+)?)?)?$`).test(master)) {
          add(cp, `MASTER_ADDR ${JSON.stringify(master)} is not rank 0 (${name(o)}-0.${sub})`);
        }
        for (const d of pdbs.filter((d) => ns(d.o) === ns(o) && labelSets.every((l) => selectorMatches(d.o.spec.selector, l)))) {
          if (d.o.spec.minAvailable !== ws) report.add(d.id, 'spec.minAvailable', `${d.o.spec.minAvailable} but the gang ${id} has WORLD_SIZE ${ws}: evicting any rank stops them all`);
        }
      }
    }

    // Disruption budget.
    if (!pdbs.some((d) => ns(d.o) === ns(o) && labelSets.every((l) => selectorMatches(d.o.spec && d.o.spec.selector, l)))) {
      add('', `no PodDisruptionBudget in namespace "${ns(o)}" selects its pods (labels ${JSON.stringify(labels)})`);
    }
  }

  // PDBs that protect nothing.
  for (const d of pdbs) {
    const hit = [...podsOf.entries()].some(([, p]) => p.ns === ns(d.o) && p.labelSets.some((l) => selectorMatches(d.o.spec && d.o.spec.selector, l)));
    if (!hit) report.add(d.id, 'spec.selector', 'selects no workload\'s pods');
  }

  // Services: select pods, name ports those pods have.
  for (const s of services) {
    const sel = s.o.spec && s.o.spec.selector;
    if (!isObject(sel) || Object.keys(sel).length === 0) continue;  // hand-managed endpoints
    const targets = [...podsOf.values()].filter((p) => p.ns === ns(s.o) && p.labelSets.some((l) => mapSelectorMatches(sel, l)));
    if (targets.length === 0) { report.add(s.id, 'spec.selector', `selects no workload's pods: ${JSON.stringify(sel)}`); continue; }
    (s.o.spec.ports || []).forEach((pt, i) => {
      const tp = pt.targetPort === undefined ? pt.port : pt.targetPort;
      if (!targets.some((p) => p.ports.has(tp))) report.add(s.id, `spec.ports[${i}].targetPort`, `no selected pod declares port ${JSON.stringify(tp)}`);
    });
  }

  // PodMonitors (optional component): select rlhf pods, scrape a port every one declares.
  for (const m of of('PodMonitor')) {
    const spec = m.o.spec || {};
    const nsSel = spec.namespaceSelector || {};
    const inNs = (p) => nsSel.any === true || (nsSel.matchNames ? nsSel.matchNames.includes(p.ns) : p.ns === ns(m.o));
    const targets = [...podsOf.values()].filter((p) => inNs(p) && p.labelSets.some((l) => selectorMatches(spec.selector, l)));
    if (targets.length === 0) { report.add(m.id, 'spec.selector', 'selects no workload\'s pods'); continue; }
    (spec.podMetricsEndpoints || []).forEach((e, i) => {
      if (e.port !== undefined && !targets.every((p) => p.ports.has(e.port))) {
        report.add(m.id, `spec.podMetricsEndpoints[${i}].port`, `not every selected pod declares port ${JSON.stringify(e.port)}`);
      }
    });
  }

  // HPAs: a target here; the target leaves replicas to it.
  const scaled = new Set();
  for (const h of hpas) {
    const ref = (h.o.spec && h.o.spec.scaleTargetRef) || {};
    const target = workloads.find((w) => w.o.kind === ref.kind && name(w.o) === ref.name && ns(w.o) === ns(h.o) && w.o.apiVersion === ref.apiVersion);
    if (!target) { report.add(h.id, 'spec.scaleTargetRef', `${ref.apiVersion} ${ref.kind} "${ref.name}" is not in the manifests`); continue; }
    scaled.add(target);
    if (target.o.spec.replicas !== undefined) {
      report.add(target.id, 'spec.replicas', `is set while HorizontalPodAutoscaler/${name(h.o)} owns the replica count: every \`kubectl apply\` would reset it`);
    }
    if (h.o.spec.minReplicas !== undefined && h.o.spec.maxReplicas < h.o.spec.minReplicas) {
      report.add(h.id, 'spec.maxReplicas', `${h.o.spec.maxReplicas} is below minReplicas ${h.o.spec.minReplicas}`);
    }
  }
  for (const w of workloads) {
    const { t } = podTemplate(w.o);
    const comp = t && t.metadata && t.metadata.labels && t.metadata.labels['app.kubernetes.io/component'];
    if (w.o.kind === 'Deployment' && comp === 'rollout' && !scaled.has(w)) {
      report.add(w.id, '', 'the rollout workers have no HorizontalPodAutoscaler targeting them');
    }
  }

  // ConfigMap sizes (client-side apply keeps the whole object in an annotation).
  for (const c of configMaps) {
    const size = JSON.stringify(c.o).length;
    if (size > LAST_APPLIED_LIMIT) {
      report.add(c.id, '', `${size} bytes as JSON: above the ${LAST_APPLIED_LIMIT} bytes that \`kubectl apply\` can store in its last-applied annotation (split it)`);
    }
  }

  // rlhf configs: every file of rlhf-config ConfigMaps on its own ...
  const isRlhfConfig = (c) => /^rlhf-config(-[a-z0-9]+)?$/.test(name(c.o));
  for (const c of configMaps.filter(isRlhfConfig)) {
    for (const [file, content] of Object.entries(c.o.data || {})) {
      const m = /^(\w+)\.yaml$/.exec(file);
      const p = joinPath('data', file);
      if (!m || !SERVICES.includes(m[1])) {
        report.add(c.id, p, `not a service config: files here are ${SERVICES.map((s) => `${s}.yaml`).join(', ')}`);
        continue;
      }
      if (checker) checker.check(c.id, p, m[1], content, file, []);
    }
  }

  // ... and as each container runs it.
  for (const w of workloads) {
    const { t, p: tp } = podTemplate(w.o);
    if (!isObject(t) || !isObject(t.spec)) continue;
    const annotations = (t.metadata && t.metadata.annotations) || {};
    const comp = t.metadata && t.metadata.labels && t.metadata.labels['app.kubernetes.io/component'];
    (t.spec.containers || []).forEach((c, ci) => {
      const svc = rlhfService(c);
      if (!svc) return;
      const cp = `${tp}.spec.containers[${ci}]`;
      const add = (p, m) => report.add(w.id, p, m);
      if (comp !== svc) add(`${tp}.metadata.labels["app.kubernetes.io/component"]`, `is ${JSON.stringify(comp)} but the container runs ${svc}: Prometheus's service label comes from it`);
      const args = expandArgs(c.args || [], knownEnv(c));
      const unexpanded = args.find((a) => /\$\([A-Za-z_]\w*\)/.test(a));
      if (unexpanded) add(`${cp}.args`, `${JSON.stringify(unexpanded)} refers to an env var with no value known before start`);
      const ci2 = args.indexOf('--config');
      const cfgPath = ci2 >= 0 ? args[ci2 + 1] : undefined;
      if (cfgPath === undefined) { add(`${cp}.args`, 'no --config FILE'); return; }
      const overrides = [];
      args.forEach((a, i) => { if (a === '--set' && i + 1 < args.length) overrides.push(args[i + 1]); });
      const mount = (c.volumeMounts || []).find((m) => m.mountPath === CONFIG_DIR);
      const vol = mount && (t.spec.volumes || []).find((v) => v.name === mount.name);
      const cm = vol && vol.configMap && configMaps.find((x) => name(x.o) === vol.configMap.name && ns(x.o) === ns(w.o));
      if (!cm) { add(`${cp}.volumeMounts`, `no ConfigMap from the manifests is mounted at ${CONFIG_DIR}`); return; }
      const file = path.posix.relative(CONFIG_DIR, cfgPath);
      const content = cm.o.data && cm.o.data[file];
      if (file.startsWith('..') || typeof content !== 'string') {
        add(`${cp}.args`, `--config ${cfgPath}: ConfigMap/${name(cm.o)} has no key ${JSON.stringify(file)}`);
        return;
      }
      if (checker) checker.check(w.id, `${cp}.args`, svc, content, file, overrides, (cfg) => checkEffective(cfg));
      // The effective config (check-config --print) against the container and its Services.
      function checkEffective(cfg) {
        const ports = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
        const listen = String(field(cfg, 'server', 'listen_address') || '');
        const lm = /^(.*):(\d+)$/.exec(listen);
        if (!lm || !['0.0.0.0', '[::]', '::'].includes(lm[1])) {
          add(`${cp}.args`, `effective server.listen_address ${JSON.stringify(listen)} does not listen on all interfaces (0.0.0.0:PORT): probes and Services cannot reach it`);
        } else if (Number(lm[2]) !== ports.get('grpc')) {
          add(`${cp}.ports`, `the grpc containerPort ${ports.get('grpc')} is not server.listen_address's port ${lm[2]}`);
        }
        const metricsPort = Number(field(cfg, 'server', 'metrics_port'));
        if (!(metricsPort > 0)) add(`${cp}.args`, `effective server.metrics_port is ${metricsPort}: no fixed /metrics port to scrape`);
        else {
          if (ports.get('metrics') !== metricsPort) add(`${cp}.ports`, `the metrics containerPort ${ports.get('metrics')} is not server.metrics_port ${metricsPort}`);
          if (annotations['prometheus.io/scrape'] !== 'true') add(`${tp}.metadata.annotations["prometheus.io/scrape"]`, 'must be "true"');
          if (annotations['prometheus.io/port'] !== String(metricsPort)) add(`${tp}.metadata.annotations["prometheus.io/port"]`, `must be "${metricsPort}" (server.metrics_port)`);
          if (annotations['prometheus.io/path'] !== '/metrics') add(`${tp}.metadata.annotations["prometheus.io/path"]`, 'must be "/metrics"');
        }
        if (svc === 'rollout') {
          for (const peer of ['learner', 'reward', 'reference']) {
            const addr = String(field(cfg, 'worker', peer) || '');
            const am = /^([a-z0-9-]+)(\.([a-z0-9-]+)(\.svc(\..*)?)?)?:(\d+)$/.exec(addr);
            if (!am) { add(`${cp}.args`, `worker.${peer} ${JSON.stringify(addr)} is not <service>[.<namespace>]:<port>`); continue; }
            const sns = am[3] || ns(w.o);
            const s = services.find((x) => name(x.o) === am[1] && ns(x.o) === sns);
            if (!s) { add(`${cp}.args`, `worker.${peer} ${addr}: no Service "${am[1]}" in namespace "${sns}"`); continue; }
            if (!(s.o.spec.ports || []).some((pt) => pt.port === Number(am[6]))) add(`${cp}.args`, `worker.${peer} ${addr}: Service "${am[1]}" has no port ${am[6]}`);
            const sel = s.o.spec.selector || {};
            if (sel['app.kubernetes.io/component'] !== peer) add(`${cp}.args`, `worker.${peer} ${addr}: Service "${am[1]}" does not select the ${peer} pods`);
          }
        }
      }
    });
  }
}

async function main() {
  const YAML = await requireDeps();
  const { flags, files } = parseArgs(process.argv.slice(2), ['--rlhf', '--cache-dir'], ['--skip-check-config'], USAGE);
  if (!flags.has('--rlhf') && !flags.has('--skip-check-config')) {
    console.error(`error: pass --rlhf PATH (the rlhf binary for check-config) or --skip-check-config\n${USAGE}`);
    return 2;
  }
  const report = new Report();
  const { docs, problems } = parseDocuments(YAML, readInputs(files));
  problems.forEach((l) => report.raw(l));
  let checker = null;
  if (flags.has('--rlhf')) checker = new ConfigChecker(path.resolve(flags.get('--rlhf')), report, flags.get('--cache-dir'));
  else console.error('policy: --skip-check-config: the embedded service configs were NOT checked');
  try {
    main2(docs, report, checker);
    if (checker) await checker.run();
  } catch (e) {
    // Malformed objects that validate.mjs reports can trip a check here: say so, do not pass.
    console.error(`policy: internal error (run validate.mjs on the same input first): ${e.stack}`);
    return 2;
  } finally {
    if (checker) checker.cleanup();
  }
  return report.finish('policy', docs.length);
}

process.exitCode = await main();
