#!/usr/bin/env node
// Checks the monitoring side of the manifests offline:
//
//   node deploy/k8s/validate/prometheus.mjs --promtool /usr/bin/promtool --source-root . \
//       --scrape-config deploy/k8s/prometheus/scrape-config.yaml \
//       --adapter-config deploy/k8s/prometheus-adapter/config.yaml  RENDERED.yaml ...
//
// - the scrape config: only known keys; `promtool check config` accepts it (with its
//   kubernetes_sd_configs swapped for static targets: Debian's Prometheus is built without
//   Kubernetes discovery); and its relabeling, run here on the targets Kubernetes service
//   discovery would make of every pod template in RENDERED (one per container port), keeps one
//   target per rlhf pod, at <pod ip>:<prometheus.io/port><prometheus.io/path>, labelled
//   service=<app.kubernetes.io/component>, namespace and pod, and nothing else;
// - the prometheus-adapter rules: only known keys; every query, with the adapter's template
//   filled in, passes `promtool check rules`; resources map labels the scrape config sets;
//   every rlhf_* metric they read is registered somewhere in the C++ sources;
// - every HPA in RENDERED asks for a Pods/Object metric that an adapter rule serves.
// Exit status 0, 1 (problems), 2 (usage / set-up).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { requireDeps, readInputs, parseDocuments, isObject, joinPath, Report, parseArgs } from './lib.mjs';

const USAGE = 'usage: node prometheus.mjs --promtool PATH --source-root DIR --scrape-config FILE --adapter-config FILE [RENDERED.yaml ...]';

// Known keys of the parts of the two configs we use (a key outside these is a typo or a feature
// this check does not model: both are problems).
const SCRAPE_KEYS = {
  root: ['global', 'scrape_configs'],
  scrape: ['job_name', 'scrape_interval', 'scrape_timeout', 'metrics_path', 'scheme', 'honor_labels', 'kubernetes_sd_configs', 'relabel_configs', 'metric_relabel_configs'],
  sd: ['role', 'namespaces', 'selectors'],
  relabel: ['source_labels', 'separator', 'regex', 'target_label', 'replacement', 'action'],
};
const ADAPTER_KEYS = {
  root: ['rules', 'externalRules', 'resourceRules'],
  rule: ['seriesQuery', 'seriesFilters', 'resources', 'name', 'metricsQuery'],
  resources: ['overrides', 'template'],
  name: ['matches', 'as'],
};

function checkKeys(obj, allowed, where, add) {
  if (!isObject(obj)) { add(where, 'expected a map'); return false; }
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) add(joinPath(where, k), `unknown key "${k}"`);
  return true;
}

// Prometheus relabeling (the actions the scrape config uses), on one target's label set.
function relabel(labels, configs, add, where) {
  const out = { ...labels };
  for (const [i, c] of configs.entries()) {
    const action = c.action || 'replace';
    const value = (c.source_labels || []).map((l) => out[l] ?? '').join(c.separator ?? ';');
    const re = new RegExp(`^(?:${c.regex ?? '(.*)'})$`);
    if (action === 'keep') { if (!re.test(value)) return null; continue; }
    if (action === 'drop') { if (re.test(value)) return null; continue; }
    if (action !== 'replace') { add(`${where}[${i}].action`, `action ${action} is not modelled by this check`); return null; }
    const m = re.exec(value);
    if (!m) continue;
    const v = (c.replacement ?? '$1').replace(/\$\{?(\d+)\}?/g, (_, n) => m[Number(n)] ?? '');
    if (v === '') delete out[c.target_label]; else out[c.target_label] = v;
  }
  return out;
}

const sanitize = (s) => s.replace(/[^a-zA-Z0-9_]/g, '_');

// The targets Kubernetes pod discovery makes of one pod (one per declared container port).
function podTargets(pod) {
  const base = {
    __meta_kubernetes_namespace: pod.namespace,
    __meta_kubernetes_pod_name: pod.name,
    __meta_kubernetes_pod_ip: pod.ip,
    __meta_kubernetes_pod_phase: 'Running',
  };
  for (const [k, v] of Object.entries(pod.labels)) base[`__meta_kubernetes_pod_label_${sanitize(k)}`] = v;
  for (const [k, v] of Object.entries(pod.annotations)) base[`__meta_kubernetes_pod_annotation_${sanitize(k)}`] = v;
  const targets = [];
  for (const c of pod.containers) {
    for (const p of c.ports || []) {
      targets.push({
        ...base, __address__: `${pod.ip}:${p.containerPort}`, __metrics_path__: '/metrics', __scheme__: 'http',
        __meta_kubernetes_pod_container_name: c.name,
        __meta_kubernetes_pod_container_port_name: p.name || '', __meta_kubernetes_pod_container_port_number: String(p.containerPort),
      });
    }
  }
  return targets;
}

// Pods (one per Job index) of the workloads in the rendered manifests.
function podsOf(docs) {
  const pods = [];
  let ip = 1;
  for (const { obj: o } of docs) {
    if (!isObject(o) || !['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind)) continue;
    const t = o.spec && o.spec.template;
    if (!isObject(t)) continue;
    const n = o.kind === 'Job' && o.spec.completionMode === 'Indexed' ? (o.spec.completions || 1) : 1;
    for (let i = 0; i < n; i++) {
      const labels = { ...((t.metadata && t.metadata.labels) || {}) };
      if (o.kind === 'Job' && o.spec.completionMode === 'Indexed') labels['batch.kubernetes.io/job-completion-index'] = String(i);
      pods.push({
        owner: `${o.kind}/${o.metadata.name}`, namespace: o.metadata.namespace || 'default', name: `${o.metadata.name}-${i}-abcde`,
        ip: `10.0.0.${ip++}`, labels, annotations: (t.metadata && t.metadata.annotations) || {}, containers: t.spec.containers || [],
      });
    }
  }
  return pods;
}

function promtool(promtoolPath, args, add, id) {
  const r = spawnSync(promtoolPath, args, { encoding: 'utf8' });
  if (r.error) { add(id, '', `cannot run ${promtoolPath}: ${r.error.message}`); return false; }
  if (r.status !== 0) {
    add(id, '', `promtool ${args[0]} ${args[1]} failed (exit ${r.status}): ${`${r.stdout}${r.stderr}`.trim().split('\n').slice(-4).join(' | ')}`);
    return false;
  }
  return true;
}

async function main() {
  const YAML = await requireDeps();
  const { flags, files } = parseArgs(process.argv.slice(2), ['--promtool', '--source-root', '--scrape-config', '--adapter-config'], [], USAGE);
  for (const f of ['--promtool', '--source-root', '--scrape-config', '--adapter-config']) {
    if (!flags.has(f)) { console.error(`error: ${f} is required\n${USAGE}`); return 2; }
  }
  const promtoolPath = flags.get('--promtool');
  if (!fs.existsSync(promtoolPath)) {
    console.error(`error: ${promtoolPath} not found: run scripts/setup.sh (Debian package prometheus)`);
    return 2;
  }
  const report = new Report();
  const add = (id, p, m) => report.add(id, p, m);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-prometheus-check-'));
  let documents = 0;
  try {
    const rendered = files.length ? parseDocuments(YAML, readInputs(files)) : { docs: [], problems: [] };
    rendered.problems.forEach((l) => report.raw(l));
    documents = rendered.docs.length;

    // --- scrape config -------------------------------------------------------------------
    const scrapeFile = flags.get('--scrape-config');
    const sid = `scrape-config ${path.basename(scrapeFile)}`;
    const scrape = YAML.parse(fs.readFileSync(scrapeFile, 'utf8'), { version: '1.1' });
    const producedLabels = new Set();
    if (checkKeys(scrape, SCRAPE_KEYS.root, '', (p, m) => add(sid, p, m))) {
      const jobs = scrape.scrape_configs || [];
      jobs.forEach((job, ji) => {
        const jp = `scrape_configs[${ji}]`;
        checkKeys(job, SCRAPE_KEYS.scrape, jp, (p, m) => add(sid, p, m));
        (job.kubernetes_sd_configs || []).forEach((sd, i) => checkKeys(sd, SCRAPE_KEYS.sd, `${jp}.kubernetes_sd_configs[${i}]`, (p, m) => add(sid, p, m)));
        (job.relabel_configs || []).forEach((r, i) => {
          checkKeys(r, SCRAPE_KEYS.relabel, `${jp}.relabel_configs[${i}]`, (p, m) => add(sid, p, m));
          if (r.target_label && !r.target_label.startsWith('__')) producedLabels.add(r.target_label);
        });
      });
      // promtool on a copy with static targets in place of Kubernetes discovery.
      const copy = JSON.parse(JSON.stringify(scrape));
      for (const job of copy.scrape_configs || []) {
        if (job.kubernetes_sd_configs) {
          delete job.kubernetes_sd_configs;
          job.static_configs = [{ targets: ['127.0.0.1:9090'] }];
        }
      }
      const copyFile = path.join(tmp, 'scrape-config.static.yaml');
      fs.writeFileSync(copyFile, YAML.stringify(copy));
      promtool(promtoolPath, ['check', 'config', copyFile], add, sid);

      // Relabeling on the pods of every rendered workload.
      const job = jobs.find((j) => (j.kubernetes_sd_configs || []).some((sd) => sd.role === 'pod'));
      if (!job) add(sid, 'scrape_configs', 'no job with kubernetes_sd_configs role pod');
      else {
        for (const pod of podsOf(rendered.docs)) {
          const kept = podTargets(pod).map((t) => relabel(t, job.relabel_configs || [], (p, m) => add(sid, p, m), 'relabel_configs')).filter(Boolean);
          const want = pod.labels['app.kubernetes.io/part-of'] === 'rlhf' && pod.annotations['prometheus.io/scrape'] === 'true';
          const who = `${pod.owner} (pod ${pod.namespace}/${pod.name})`;
          if (!want) {
            if (kept.length) add(sid, '', `${who}: scraped although it is not an rlhf pod asking for it`);
            continue;
          }
          if (kept.length !== 1) { add(sid, '', `${who}: ${kept.length} targets after relabeling, expected 1`); continue; }
          const t = kept[0];
          const expect = {
            __address__: `${pod.ip}:${pod.annotations['prometheus.io/port']}`, __metrics_path__: pod.annotations['prometheus.io/path'],
            service: pod.labels['app.kubernetes.io/component'], namespace: pod.namespace, pod: pod.name,
          };
          for (const [k, v] of Object.entries(expect)) {
            if (t[k] !== v) add(sid, '', `${who}: label ${k} is ${JSON.stringify(t[k])} after relabeling, expected ${JSON.stringify(v)}`);
          }
          if (!['learner', 'rollout', 'reward', 'reference'].includes(t.service)) add(sid, '', `${who}: service label ${JSON.stringify(t.service)} is not learner|rollout|reward|reference`);
        }
      }
    }

    // --- prometheus-adapter rules --------------------------------------------------------
    const adapterFile = flags.get('--adapter-config');
    const aid = `adapter-config ${path.basename(adapterFile)}`;
    const adapter = YAML.parse(fs.readFileSync(adapterFile, 'utf8'), { version: '1.1' });
    const served = new Set();
    if (checkKeys(adapter, ADAPTER_KEYS.root, '', (p, m) => add(aid, p, m))) {
      const exprs = [];
      const metrics = new Set();
      (adapter.rules || []).forEach((r, i) => {
        const rp = `rules[${i}]`;
        if (!checkKeys(r, ADAPTER_KEYS.rule, rp, (p, m) => add(aid, p, m))) return;
        for (const k of ['seriesQuery', 'metricsQuery', 'resources', 'name']) if (r[k] === undefined) add(aid, joinPath(rp, k), 'missing');
        if (isObject(r.resources)) {
          checkKeys(r.resources, ADAPTER_KEYS.resources, `${rp}.resources`, (p, m) => add(aid, p, m));
          for (const label of Object.keys(r.resources.overrides || {})) {
            if (!producedLabels.has(label)) add(aid, `${rp}.resources.overrides.${label}`, `label "${label}" is not set by the scrape config (it sets ${[...producedLabels].join(', ')})`);
          }
        }
        const seriesName = (/^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(String(r.seriesQuery || '')) || [])[1];
        if (isObject(r.name)) {
          checkKeys(r.name, ADAPTER_KEYS.name, `${rp}.name`, (p, m) => add(aid, p, m));
          if (r.name.matches && seriesName && !new RegExp(r.name.matches).test(seriesName)) add(aid, `${rp}.name.matches`, `does not match the series ${seriesName}`);
          const as = r.name.as || seriesName;
          if (as) served.add(as.replace(/\$\{?\d+\}?/g, ''));
        }
        const filled = String(r.metricsQuery || '')
          .replaceAll('<<.Series>>', seriesName || 'up')
          .replaceAll('<<.LabelMatchers>>', 'namespace="rlhf",pod=~"a|b"')
          .replaceAll('<<.GroupBy>>', 'pod');
        if (filled.includes('<<')) add(aid, `${rp}.metricsQuery`, `template fields this check does not fill: ${filled.match(/<<[^>]*>>/g).join(', ')}`);
        exprs.push({ record: `rlhf_adapter_check:series_${i}`, expr: String(r.seriesQuery || '') });
        exprs.push({ record: `rlhf_adapter_check:metrics_${i}`, expr: filled });
        for (const q of [String(r.seriesQuery || ''), filled]) for (const m of q.matchAll(/\brlhf_[a-z0-9_]+/g)) metrics.add(m[0]);
      });
      const rulesFile = path.join(tmp, 'adapter-queries.rules.yaml');
      fs.writeFileSync(rulesFile, YAML.stringify({ groups: [{ name: 'adapter', rules: exprs }] }));
      promtool(promtoolPath, ['check', 'rules', rulesFile], add, aid);

      // The metrics exist: registered by name in the C++ sources.
      const sources = [];
      const walk = (d) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) { if (!['build', 'node_modules', '.git'].includes(e.name)) walk(path.join(d, e.name)); } else if (/\.(cc|h)$/.test(e.name)) sources.push(fs.readFileSync(path.join(d, e.name), 'utf8'));
        }
      };
      const root = flags.get('--source-root');
      for (const d of ['services', 'common']) if (fs.existsSync(path.join(root, d))) walk(path.join(root, d));
      const all = sources.join('\n');
      for (const m of metrics) {
        const base = m.replace(/_(bucket|sum|count)$/, '');
        if (!all.includes(`"${m}"`) && !all.includes(`"${base}"`)) add(aid, '', `metric ${m} is not registered anywhere under ${root}/services or ${root}/common`);
      }
    }

    // --- HPAs ask for metrics the adapter serves -------------------------------------------
    for (const { obj: o } of rendered.docs) {
      if (!isObject(o) || o.kind !== 'HorizontalPodAutoscaler') continue;
      (o.spec.metrics || []).forEach((m, i) => {
        const metric = (m.pods && m.pods.metric) || (m.object && m.object.metric);
        if (metric && !served.has(metric.name)) {
          add(`HorizontalPodAutoscaler/${o.metadata.name}`, `spec.metrics[${i}]`, `custom metric ${metric.name} is served by no rule of ${adapterFile}`);
        }
      });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return report.finish('prometheus', documents);
}

process.exitCode = await main();
