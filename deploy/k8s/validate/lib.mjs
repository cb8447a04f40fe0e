// Shared by validate.mjs (schemas) and policy.mjs (deployment policy): reading multi-document
// YAML the way kubectl does, JSON paths, problem reports, quantities and label selectors.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));

// The npm dependencies (package.json); without them nothing can be checked.
export async function requireDeps() {
  const missing = ['yaml', '@kubernetes/client-node'].filter(
    (p) => !fs.existsSync(path.join(HERE, 'node_modules', p, 'package.json')));
  if (missing.length > 0) {
    console.error(`error: ${missing.join(', ')} not installed in ${path.join(HERE, 'node_modules')}: ` +
      'run scripts/setup.sh (or: npm ci --no-audit --no-fund --prefix deploy/k8s/validate)');
    process.exit(2);
  }
  return (await import('yaml')).default;
}

// Reads the named files ('-' or none: stdin) as one stream of YAML documents.
export function readInputs(files) {
  if (files.length === 0) files = ['-'];
  return files.map((f) => ({
    name: f === '-' ? '<stdin>' : f,
    text: fs.readFileSync(f === '-' ? 0 : f, 'utf8'),
  }));
}

// Parses multi-document YAML with YAML 1.1 rules, as kubectl (sigs.k8s.io/yaml) reads it: an
// unquoted `on`/`yes` is a boolean there too. Duplicate keys and syntax errors are problems.
// Returns {docs: [{obj, index, source}], problems: [string]}.
export function parseDocuments(YAML, inputs) {
  const docs = [];
  const problems = [];
  for (const input of inputs) {
    const parsed = YAML.parseAllDocuments(input.text, { version: '1.1', uniqueKeys: true, prettyErrors: true });
    const list = Array.isArray(parsed) ? parsed : [parsed];
    list.forEach((doc, i) => {
      for (const e of [...doc.errors, ...doc.warnings]) {
        problems.push(`${input.name}: document ${i + 1}: YAML: ${e.message.split('\n')[0]}`);
      }
      if (doc.errors.length > 0) return;
      const obj = doc.toJS({ maxAliasCount: 100 });
      if (obj === null || obj === undefined) return;  // empty document (a trailing ---)
      docs.push({ obj, index: docs.length + 1, source: input.name });
    });
  }
  return { docs, problems };
}

// "<kind>/<name>" of a document, as every problem starts.
export function docId(doc) {
  const o = doc.obj;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return `document ${doc.index}`;
  const kind = typeof o.kind === 'string' && o.kind ? o.kind : `document ${doc.index}`;
  const name = o.metadata && typeof o.metadata.name === 'string' && o.metadata.name ? o.metadata.name : '<no name>';
  return `${kind}/${name}`;
}

// JSON path segment: .key for plain keys, ["key"] for keys with dots or slashes, [i] for items.
export function joinPath(base, key) {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

export function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
  if (typeof v === 'number') return `number ${v}`;
  return typeof v;
}

// Kubernetes resource.Quantity: <number><suffix>, suffix a binary (Ki..Ei), decimal (n u m "" k
// M G T P E) or exponent (e3) one. Numbers in YAML are quantities too.
const QUANTITY_RE = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$/;
const SUFFIX = {
  '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

export function isQuantity(v) {
  if (typeof v === 'number') return Number.isFinite(v);
  return typeof v === 'string' && QUANTITY_RE.test(v);
}

// The value of a quantity as a number (NaN when it is not one).
export function quantityValue(v) {
  if (typeof v === 'number') return v;
  const m = typeof v === 'string' ? QUANTITY_RE.exec(v) : null;
  if (!m) return NaN;
  const suffix = m[2] || '';
  if (/^[eE]/.test(suffix)) return Number(m[1]) * 10 ** Number(suffix.slice(1));
  return Number(m[1]) * SUFFIX[suffix];
}

// metav1.LabelSelector semantics: matchLabels AND every matchExpressions requirement. An empty
// selector ({}) matches everything; a missing one nothing.
export function selectorMatches(selector, labels) {
  if (!isObject(selector)) return false;
  for (const [k, v] of Object.entries(selector.matchLabels || {})) {
    if (labels[k] !== v) return false;
  }
  for (const r of selector.matchExpressions || []) {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const values = r.values || [];
    switch (r.operator) {
      case 'In': if (!has || !values.includes(labels[r.key])) return false; break;
      case 'NotIn': if (has && values.includes(labels[r.key])) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: return false;
    }
  }
  return true;
}

// A Service's selector (a plain map): every pair must be in the labels; an empty one selects
// nothing (Endpoints are then managed by hand).
export function mapSelectorMatches(selector, labels) {
  if (!isObject(selector) || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

// Collects "<id>: <path>: <message>" lines.
export class Report {
  constructor() { this.lines = []; }
  add(id, p, message) { this.lines.push(p ? `${id}: ${p}: ${message}` : `${id}: ${message}`); }
  raw(line) { this.lines.push(line); }
  // Prints every problem and a summary; returns the exit status.
  finish(what, documents) {
    for (const l of this.lines) console.log(l);
    const n = this.lines.length;
    console.log(`${what}: ${documents} documents, ${n} problem${n === 1 ? '' : 's'}`);
    return n === 0 ? 0 : 1;
  }
}

// Splits argv into {flags: Map, files: []}; flags listed in `withValue` take the next argument.
export function parseArgs(argv, withValue, boolean, usage) {
  const flags = new Map();
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') { console.log(usage); process.exit(0); }
    if (withValue.includes(a)) {
      if (i + 1 >= argv.length) { console.error(`error: ${a} needs a value\n${usage}`); process.exit(2); }
      flags.set(a, argv[++i]);
    } else if (boolean.includes(a)) {
      flags.set(a, true);
    } else if (a.startsWith('--')) {
      console.error(`error: unknown option ${a}\n${usage}`);
      process.exit(2);
    } else {
      files.push(a);
    }
  }
  return { flags, files };
}
