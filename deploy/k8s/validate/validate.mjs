#!/usr/bin/env node
// Strict offline schema validation of Kubernetes manifests (e.g. `kubectl kustomize` output).
//
//   node deploy/k8s/validate/validate.mjs [FILE ...]        (no FILE or '-': stdin)
//   kubectl kustomize deploy/k8s/overlays/cpu-dev | node deploy/k8s/validate/validate.mjs
//
// Schemas: the models of the npm package @kubernetes/client-node (package.json pins 2.0.1),
// generated from the Kubernetes OpenAPI spec of release-1.36: per model class an
// attributeTypeMap (field -> type, format) in dist/gen/models/*.js and the required fields in
// the class declarations (*.d.ts). apiVersion + kind map to a model class through the API
// clients in dist/gen/apis/*.js (the class each create call POSTs to /api(s)/<group>/<version>/
// ...), so every built-in kind of that release is known, and nothing else is. Custom resources
// are accepted only from the small hand-written schemas in CRD_MODELS below.
//
// Problems (each printed as `<kind>/<name>: <json path>: <problem>`; exit status 1 if any):
// unknown fields, missing required fields, wrong JSON types (int32/int64 must be integers,
// IntOrString an integer or a string, quantities a number or a Kubernetes quantity string),
// unknown apiVersion/kind, cluster-scoped objects with a namespace, invalid names and labels,
// and a few enums. Exit status 2: usage or set-up error.
import fs from 'node:fs';
import path from 'node:path';
import {
  HERE, requireDeps, readInputs, parseDocuments, docId, joinPath, isObject, describe, isQuantity,
  Report, parseArgs,
} from './lib.mjs';

const GEN = path.join(HERE, 'node_modules', '@kubernetes', 'client-node', 'dist', 'gen');

// --- the schemas -----------------------------------------------------------------------------

// Model classes: name -> {fields: Map(baseName -> {type, format}), required: Set(baseName)}.
function loadModels() {
  const dir = path.join(GEN, 'models');
  const models = new Map();
  for (const f of fs.readdirSync(dir)) {
    if (!f.endsWith('.js') || f === 'all.js' || f === 'ObjectSerializer.js') continue;
    const cls = f.slice(0, -3);
    const js = fs.readFileSync(path.join(dir, f), 'utf8');
    const m = /\.attributeTypeMap = (\[[\s\S]*?\]);/.exec(js);
    if (!m) continue;  // enums and helpers have none
    const fields = new Map();
    for (const a of JSON.parse(m[1])) fields.set(a.baseName, { type: a.type, format: a.format });
    // Required fields: declared without '?' in the class body of the .d.ts.
    const required = new Set();
    const dts = path.join(dir, `${cls}.d.ts`);
    if (fs.existsSync(dts)) {
      const body = /export declare class \w+ \{([\s\S]*?)static readonly discriminator/.exec(fs.readFileSync(dts, 'utf8'));
      if (body) {
        for (const r of body[1].matchAll(/^ {4}'([^']+)':/gm)) required.add(r[1]);
      }
    }
    models.set(cls, { fields, required });
  }
  return models;
}

// "group/version" + kind -> {model, namespaced}, from the create calls of the API clients.
function loadKinds(models) {
  const dir = path.join(GEN, 'apis');
  const kinds = new Map();
  for (const f of fs.readdirSync(dir)) {
    if (!f.endsWith('Api.js')) continue;
    const js = fs.readFileSync(path.join(dir, f), 'utf8');
    const starts = [...js.matchAll(/const localVarPath = '([^']+)'/g)];
    starts.forEach((s, i) => {
      const apiPath = s[1];
      const method = js.slice(s.index, i + 1 < starts.length ? starts[i + 1].index : js.length);
      if (!/HttpMethod\.POST\)/.test(method) || apiPath.includes('{name}')) return;
      const body = /ObjectSerializer\.serialize\(body, "(\w+)", ""\)/.exec(method);
      const gv = /^\/api\/(v1)\/|^\/apis\/([^/]+\/[^/]+)\//.exec(apiPath);
      if (!body || !gv || !models.has(body[1])) return;
      const kind = body[1].replace(/^[A-Za-z]*?V\d+(?:alpha\d+|beta\d+)?(?=[A-Z])/, '');
      const key = `${gv[1] || gv[2]} ${kind}`;
      const namespaced = apiPath.includes('/namespaces/{namespace}/');
      const prev = kinds.get(key);
      // A kind is namespaced if any create path is (Namespace itself is only cluster-wide).
      kinds.set(key, { model: body[1], namespaced: namespaced || (prev ? prev.namespaced : false) });
    });
  }
  return kinds;
}

// Hand-written schemas of the custom resources we ship (deploy/k8s/components/podmonitor), in
// the same shape as the generated ones. Only the fields we use or could reasonably use; any
// other is an error. Source: the Prometheus Operator's monitoring.coreos.com/v1 PodMonitor CRD.
const CRD_KINDS = {
  'monitoring.coreos.com/v1 PodMonitor': { model: 'MonitoringV1PodMonitor', namespaced: true },
};
const CRD_MODELS = {
  MonitoringV1PodMonitor: {
    fields: { apiVersion: 'string', kind: 'string', metadata: 'V1ObjectMeta', spec: 'MonitoringV1PodMonitorSpec' },
    required: ['spec'],
  },
  MonitoringV1PodMonitorSpec: {
    fields: {
      selector: 'V1LabelSelector', namespaceSelector: 'MonitoringV1NamespaceSelector',
      podMetricsEndpoints: 'Array<MonitoringV1PodMetricsEndpoint>', podTargetLabels: 'Array<string>',
      jobLabel: 'string', sampleLimit: 'number:int64', targetLimit: 'number:int64',
      labelLimit: 'number:int64', attachMetadata: 'MonitoringV1AttachMetadata',
    },
    required: ['selector'],
  },
  MonitoringV1NamespaceSelector: { fields: { any: 'boolean', matchNames: 'Array<string>' }, required: [] },
  MonitoringV1AttachMetadata: { fields: { node: 'boolean' }, required: [] },
  MonitoringV1PodMetricsEndpoint: {
    fields: {
      port: 'string', portNumber: 'number:int32', path: 'string', scheme: 'string',
      interval: 'string', scrapeTimeout: 'string', honorLabels: 'boolean', honorTimestamps: 'boolean',
      params: '{ [key: string]: Array<string>; }', relabelings: 'Array<MonitoringV1RelabelConfig>',
      metricRelabelings: 'Array<MonitoringV1RelabelConfig>', enableHttp2: 'boolean',
      filterRunning: 'boolean', followRedirects: 'boolean',
    },
    required: [],
  },
  MonitoringV1RelabelConfig: {
    fields: {
      sourceLabels: 'Array<string>', separator: 'string', targetLabel: 'string', regex: 'string',
      modulus: 'number:int64', replacement: 'string', action: 'string',
    },
    required: [],
  },
};

function addCrdModels(models) {
  for (const [cls, m] of Object.entries(CRD_MODELS)) {
    const fields = new Map();
    for (const [k, t] of Object.entries(m.fields)) {
      const [type, format = ''] = t.startsWith('number:') ? ['number', t.slice(7)] : [t, ''];
      fields.set(k, { type, format });
    }
    models.set(cls, { fields, required: new Set(m.required) });
  }
}

// Fields whose strings are resource.Quantity (the generated types say only "string").
const QUANTITY_FIELDS = new Set([
  'V1ResourceRequirements.limits', 'V1ResourceRequirements.requests',
  'V1VolumeResourceRequirements.limits', 'V1VolumeResourceRequirements.requests',
  'V1EmptyDirVolumeSource.sizeLimit', 'V1ResourceFieldSelector.divisor', 'V1PodSpec.overhead',
  'V1LimitRangeItem.max', 'V1LimitRangeItem.min', 'V1LimitRangeItem.default',
  'V1LimitRangeItem.defaultRequest', 'V1LimitRangeItem.maxLimitRequestRatio',
  'V1ResourceQuotaSpec.hard', 'V1PersistentVolumeSpec.capacity',
  'V2MetricTarget.value', 'V2MetricTarget.averageValue',
  'V2MetricValueStatus.value', 'V2MetricValueStatus.averageValue',
]);

// A few enums that the generated types reduce to "string".
const ENUMS = {
  'V1Container.imagePullPolicy': ['Always', 'IfNotPresent', 'Never'],
  'V1Container.terminationMessagePolicy': ['File', 'FallbackToLogsOnError'],
  'V1ContainerPort.protocol': ['TCP', 'UDP', 'SCTP'],
  'V1ServicePort.protocol': ['TCP', 'UDP', 'SCTP'],
  'V1ServiceSpec.type': ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'],
  'V1ServiceSpec.sessionAffinity': ['ClientIP', 'None'],
  'V1ServiceSpec.internalTrafficPolicy': ['Cluster', 'Local'],
  'V1ServiceSpec.externalTrafficPolicy': ['Cluster', 'Local'],
  'V1PodSpec.restartPolicy': ['Always', 'OnFailure', 'Never'],
  'V1PodSpec.dnsPolicy': ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'],
  'V1SeccompProfile.type': ['RuntimeDefault', 'Unconfined', 'Localhost'],
  'V1Toleration.operator': ['Exists', 'Equal'],
  'V1Toleration.effect': ['NoSchedule', 'PreferNoSchedule', 'NoExecute'],
  'V1JobSpec.completionMode': ['NonIndexed', 'Indexed'],
  'V1PodFailurePolicyRule.action': ['FailJob', 'FailIndex', 'Ignore', 'Count'],
  'V1DeploymentStrategy.type': ['Recreate', 'RollingUpdate'],
  'V1StatefulSetSpec.podManagementPolicy': ['OrderedReady', 'Parallel'],
  'V1EmptyDirVolumeSource.medium': ['', 'Memory', 'HugePages'],
  'V1PersistentVolumeClaimSpec.accessModes': ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'],
  'V1PersistentVolumeClaimSpec.volumeMode': ['Filesystem', 'Block'],
  'V1PodDisruptionBudgetSpec.unhealthyPodEvictionPolicy': ['IfHealthyBudget', 'AlwaysAllow'],
  'V1LabelSelectorRequirement.operator': ['In', 'NotIn', 'Exists', 'DoesNotExist'],
  'V1NodeSelectorRequirement.operator': ['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'],
  'V2MetricSpec.type': ['Object', 'Pods', 'Resource', 'ContainerResource', 'External'],
  'V2MetricTarget.type': ['Utilization', 'Value', 'AverageValue'],
  'V2HPAScalingRules.selectPolicy': ['Max', 'Min', 'Disabled'],
  'V2HPAScalingPolicy.type': ['Pods', 'Percent'],
  'MonitoringV1RelabelConfig.action': ['replace', 'keep', 'drop', 'keepequal', 'dropequal', 'hashmod',
    'labelmap', 'labeldrop', 'labelkeep', 'lowercase', 'uppercase',
    'Replace', 'Keep', 'Drop', 'KeepEqual', 'DropEqual', 'HashMod', 'LabelMap', 'LabelDrop',
    'LabelKeep', 'Lowercase', 'Uppercase'],
};

// --- names, as the API server validates them ------------------------------------------------

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function checkDns1123Label(v, what) {
  if (v.length > 63) return `${what} must be at most 63 characters`;
  if (!DNS1123_LABEL.test(v)) return `${what} ${JSON.stringify(v)} is not a DNS-1123 label (lower-case alphanumerics and '-')`;
  return null;
}

function checkSubdomain(v, what) {
  if (v.length > 253) return `${what} must be at most 253 characters`;
  if (!DNS1123_SUBDOMAIN.test(v)) return `${what} ${JSON.stringify(v)} is not a DNS-1123 subdomain`;
  return null;
}

function checkQualifiedKey(k) {
  const parts = k.split('/');
  if (parts.length > 2) return 'has more than one "/"';
  const name = parts[parts.length - 1];
  if (parts.length === 2) {
    const e = parts[0].length === 0 ? 'has an empty prefix' : checkSubdomain(parts[0], 'prefix');
    if (e) return e;
  }
  if (name.length === 0 || name.length > 63) return 'name part must be 1 to 63 characters';
  if (!QUALIFIED_NAME.test(name)) return 'name part must be alphanumerics, "-", "_" or "." with an alphanumeric at both ends';
  return null;
}

// IANA_SVC_NAME: what container and service port names must be.
function checkPortName(v) {
  if (v.length > 15) return `port name ${JSON.stringify(v)} is longer than 15 characters`;
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(v) || v.includes('--') || !/[a-z]/.test(v)) {
    return `port name ${JSON.stringify(v)} must be lower-case alphanumerics and '-', with a letter, no '--'`;
  }
  return null;
}

// Checks beyond types, per model class: (value, path, report) -> void.
const EXTRA = {
  V1ObjectMeta(v, p, add) {
    for (const field of ['labels', 'annotations']) {
      for (const [k, val] of Object.entries(isObject(v[field]) ? v[field] : {})) {
        const e = checkQualifiedKey(k);
        if (e) add(joinPath(joinPath(p, field), k), `invalid key: ${e}`);
        if (field === 'labels' && typeof val === 'string' && (val.length > 63 || !LABEL_VALUE.test(val))) {
          add(joinPath(joinPath(p, field), k), `invalid label value ${JSON.stringify(val)} (at most 63 alphanumerics, "-", "_", ".")`);
        }
      }
    }
    if (isObject(v.annotations)) {
      const size = Object.entries(v.annotations).reduce((n, [k, a]) => n + k.length + String(a).length, 0);
      if (size > 256 * 1024) add(joinPath(p, 'annotations'), `total size ${size} exceeds 262144 bytes`);
    }
    if (typeof v.namespace === 'string') {
      const e = checkDns1123Label(v.namespace, 'namespace');
      if (e) add(joinPath(p, 'namespace'), e);
    }
  },
  V1Container(v, p, add) {
    if (typeof v.name === 'string') {
      const e = checkDns1123Label(v.name, 'container name');
      if (e) add(joinPath(p, 'name'), e);
    }
  },
  V1Volume(v, p, add) {
    if (typeof v.name === 'string') {
      const e = checkDns1123Label(v.name, 'volume name');
      if (e) add(joinPath(p, 'name'), e);
    }
  },
  V1ContainerPort(v, p, add) {
    if (typeof v.name === 'string') {
      const e = checkPortName(v.name);
      if (e) add(joinPath(p, 'name'), e);
    }
    if (Number.isInteger(v.containerPort) && (v.containerPort < 1 || v.containerPort > 65535)) {
      add(joinPath(p, 'containerPort'), `${v.containerPort} is not a port number (1-65535)`);
    }
  },
  V1ServicePort(v, p, add) {
    if (typeof v.name === 'string') {
      const e = checkDns1123Label(v.name, 'service port name');
      if (e) add(joinPath(p, 'name'), e);
    }
    if (Number.isInteger(v.port) && (v.port < 1 || v.port > 65535)) {
      add(joinPath(p, 'port'), `${v.port} is not a port number (1-65535)`);
    }
    if (typeof v.targetPort === 'string') {
      const e = checkPortName(v.targetPort);
      if (e) add(joinPath(p, 'targetPort'), e);
    }
  },
  V1GRPCAction(v, p, add) {
    if (Number.isInteger(v.port) && (v.port < 1 || v.port > 65535)) {
      add(joinPath(p, 'port'), `${v.port} is not a port number (1-65535)`);
    }
  },
  V1EnvVar(v, p, add) {
    if (typeof v.name === 'string' && (v.name.length === 0 || v.name.includes('='))) {
      add(joinPath(p, 'name'), `invalid environment variable name ${JSON.stringify(v.name)}`);
    }
  },
};

// --- validation --------------------------------------------------------------------------------

class Validator {
  constructor(models) {
    this.models = models;
  }

  // Validates `value` against a type string of the generated models.
  value(value, type, format, p, ctx) {
    const { add } = ctx;
    if (value === null) {
      // JSON null means "unset" to the API server, but in a manifest it is almost always a
      // forgotten value (`key:` with nothing after it). Timestamps are the usual exception.
      if (type !== 'Date') add(p, `null value (${type} expected; omit the field instead)`);
      return;
    }
    let m;
    if ((m = /^Array<(.+)>$/.exec(type))) {
      if (!Array.isArray(value)) return add(p, `expected an array (${type}), got ${describe(value)}`);
      value.forEach((item, i) => this.value(item, m[1], format, joinPath(p, i), { ...ctx, enumKey: ctx.enumKey }));
      return;
    }
    if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
      if (!isObject(value)) return add(p, `expected a map (${type}), got ${describe(value)}`);
      for (const [k, v] of Object.entries(value)) this.value(v, m[1], format, joinPath(p, k), ctx);
      return;
    }
    switch (type) {
      case 'string':
        if (ctx.quantity) {
          if (!isQuantity(value)) add(p, `expected a quantity (e.g. 500m, 2, 1Gi), got ${describe(value)}`);
          return;
        }
        if (typeof value !== 'string') return add(p, `expected a string, got ${describe(value)}`);
        if (format === 'byte' && !/^[A-Za-z0-9+/]*={0,2}$/.test(value.replace(/\s/g, ''))) {
          add(p, 'expected base64 data');
        }
        if (ctx.enumKey && ENUMS[ctx.enumKey] && !ENUMS[ctx.enumKey].includes(value)) {
          add(p, `${JSON.stringify(value)} is not one of ${ENUMS[ctx.enumKey].map((e) => JSON.stringify(e)).join(', ')}`);
        }
        return;
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value)) {
          return add(p, `expected ${format === 'int32' || format === 'int64' ? `an integer (${format})` : 'a number'}, got ${describe(value)}`);
        }
        if ((format === 'int32' || format === 'int64') && !Number.isInteger(value)) {
          return add(p, `expected an integer (${format}), got ${describe(value)}`);
        }
        if (format === 'int32' && (value < -(2 ** 31) || value > 2 ** 31 - 1)) add(p, `${value} is out of int32 range`);
        return;
      case 'boolean':
        if (typeof value !== 'boolean') add(p, `expected a boolean, got ${describe(value)}`);
        return;
      case 'Date':
        if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) add(p, `expected an RFC 3339 time, got ${describe(value)}`);
        return;
      case 'IntOrString':
        if (typeof value === 'number') {
          if (!Number.isInteger(value)) add(p, `expected an integer or a string, got ${describe(value)}`);
        } else if (typeof value !== 'string' || value === '') {
          add(p, `expected an integer or a non-empty string, got ${describe(value)}`);
        }
        return;
      case 'any':
      case 'object':
        return;
      default:
        return this.object(value, type, p, ctx);
    }
  }

  object(value, cls, p, ctx) {
    const model = this.models.get(cls);
    if (!model) return ctx.add(p, `schema has no model ${cls} (validator bug or incomplete @kubernetes/client-node)`);
    if (!isObject(value)) return ctx.add(p, `expected an object (${cls}), got ${describe(value)}`);
    for (const [k, v] of Object.entries(value)) {
      const field = model.fields.get(k);
      const fp = joinPath(p, k);
      if (!field) {
        ctx.add(fp, `unknown field "${k}" (not in ${cls})`);
        continue;
      }
      this.value(v, field.type, field.format, fp, {
        add: ctx.add,
        quantity: QUANTITY_FIELDS.has(`${cls}.${k}`),
        enumKey: `${cls}.${k}`,
      });
    }
    for (const r of model.required) {
      if (!(r in value)) ctx.add(joinPath(p, r), `missing required field (${cls})`);
    }
    if (EXTRA[cls]) EXTRA[cls](value, p, ctx.add);
  }
}

// --- main --------------------------------------------------------------------------------------

const USAGE = `usage: node validate.mjs [--list-kinds] [FILE ...]   (no FILE or '-': stdin)`;

async function main() {
  const YAML = await requireDeps();
  const { flags, files } = parseArgs(process.argv.slice(2), [], ['--list-kinds'], USAGE);
  const models = loadModels();
  addCrdModels(models);
  const kinds = loadKinds(models);
  for (const [k, v] of Object.entries(CRD_KINDS)) kinds.set(k, v);
  if (kinds.size < 50 || !kinds.has('apps/v1 Deployment')) {
    console.error(`error: could not derive the kinds from ${GEN}/apis (found ${kinds.size})`);
    process.exit(2);
  }
  if (flags.has('--list-kinds')) {
    for (const k of [...kinds.keys()].sort()) console.log(`${k} -> ${kinds.get(k).model}${kinds.get(k).namespaced ? '' : ' (cluster)'}`);
    return 0;
  }

  const report = new Report();
  const { docs, problems } = parseDocuments(YAML, readInputs(files));
  problems.forEach((l) => report.raw(l));
  const validator = new Validator(models);
  const seen = new Map();
  for (const doc of docs) {
    const id = docId(doc);
    const add = (p, msg) => report.add(id, p, msg);
    const o = doc.obj;
    if (!isObject(o)) { add('', `expected a Kubernetes object, got ${describe(o)}`); continue; }
    if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') {
      add('', 'missing apiVersion or kind');
      continue;
    }
    const entry = kinds.get(`${o.apiVersion} ${o.kind}`);
    if (!entry) {
      const other = [...kinds.keys()].filter((k) => k.endsWith(` ${o.kind}`)).map((k) => k.split(' ')[0]);
      add('', `unknown apiVersion/kind ${o.apiVersion} ${o.kind}` +
        (other.length ? ` (${o.kind} is served as ${other.join(', ')})` : ' (not a Kubernetes 1.36 kind, nor an allowed custom resource)'));
      continue;
    }
    validator.object(o, entry.model, '', { add });
    const meta = isObject(o.metadata) ? o.metadata : {};
    if (typeof meta.name !== 'string' || meta.name === '') {
      add('metadata.name', 'missing (every manifest needs a name)');
    } else {
      const e = ['Service', 'Namespace'].includes(o.kind)
        ? (DNS1035_LABEL.test(meta.name) && meta.name.length <= 63 ? null
          : `name ${JSON.stringify(meta.name)} must be a DNS-1035 label (a-z first, a-z0-9 and '-', at most 63)`)
        : checkSubdomain(meta.name, 'name');
      if (e) add('metadata.name', e);
    }
    if (!entry.namespaced && meta.namespace !== undefined) {
      add('metadata.namespace', `${o.kind} is cluster-scoped and has no namespace`);
    }
    const key = `${o.apiVersion} ${o.kind} ${meta.namespace || ''} ${meta.name}`;
    if (seen.has(key)) add('', `duplicate object (also document ${seen.get(key)})`);
    seen.set(key, doc.index);
  }
  return report.finish('validate', docs.length);
}

process.exitCode = await main();
