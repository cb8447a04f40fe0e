#!/usr/bin/env node
// Proves the validators reject what they must: runs validate.mjs and policy.mjs on every
// testdata/*.yaml. Each file says in its header
//   # check: schema | policy | both     which script(s) it is for
//   # expect: <text>                    (bad-* files) a problem line must contain <text>
// ok-* files must pass the named checks (exit 0, no problem); bad-* files must fail (exit 1),
// every expect must be found in a problem line, and every problem line must contain some
// expect (so a case fails only for the defect it is about).
//
//   node deploy/k8s/validate/run-testdata.mjs --rlhf build/release/cli/rlhf
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { spawn } from 'node:child_process';
import { HERE, parseArgs } from './lib.mjs';

const USAGE = 'usage: node run-testdata.mjs --rlhf PATH [--cache-dir DIR] [testdata/NAME.yaml ...]';
const { flags, files } = parseArgs(process.argv.slice(2), ['--rlhf', '--cache-dir'], [], USAGE);
if (!flags.has('--rlhf')) { console.error(USAGE); process.exit(2); }
const dir = path.join(HERE, 'testdata');
const cases = files.length ? files : fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((f) => path.join(dir, f));

// Runs one script; resolves to {status, stdout, stderr}.
function runScript(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

// One case: returns its report line(s) and whether it passed.
async function runCase(file) {
  const base = path.basename(file, '.yaml');
  const text = fs.readFileSync(file, 'utf8');
  const check = (/^# check: (\w+)$/m.exec(text) || [])[1];
  const expects = [...text.matchAll(/^# expect: (.+)$/gm)].map((m) => m[1]);
  const bad = base.startsWith('bad-');
  if (!['schema', 'policy', 'both'].includes(check) || (!bad && !base.startsWith('ok-')) || (bad && expects.length === 0) || (!bad && expects.length > 0)) {
    return { ok: false, line: `FAIL ${base}: malformed case: needs "# check: schema|policy|both", a bad-/ok- name, and expects exactly on bad- cases` };
  }
  const scripts = check === 'both' ? ['schema', 'policy'] : [check];
  for (const s of scripts) {
    const args = s === 'schema' ? [path.join(HERE, 'validate.mjs'), file] : [path.join(HERE, 'policy.mjs'), '--rlhf', flags.get('--rlhf'), ...(flags.has('--cache-dir') ? ['--cache-dir', flags.get('--cache-dir')] : []), file];
    const r = await runScript(args);
    const out = `${r.stdout}${r.stderr}`;
    const problems = r.stdout.split('\n').filter((l) => l && !/^(validate|policy): \d+ documents, \d+ problems?$/.test(l));
    const why = [];
    if (bad) {
      if (r.status !== 1) why.push(`${s}: exit ${r.status}, expected 1`);
      for (const e of expects) if (!problems.some((l) => l.includes(e))) why.push(`${s}: no problem line contains ${JSON.stringify(e)}`);
      for (const l of problems) if (!expects.some((e) => l.includes(e))) why.push(`${s}: unexpected problem ${JSON.stringify(l)}`);
    } else if (r.status !== 0 || problems.length > 0) {
      why.push(`${s}: exit ${r.status}, expected 0 and no problem`);
    }
    if (why.length) {
      return { ok: false, line: `FAIL ${base}: ${why.join('; ')}\n  output:\n${out.trimEnd().split('\n').map((l) => `    ${l}`).join('\n')}` };
    }
  }
  return {
    ok: true,
    line: `ok   ${base}: ${bad ? `rejected by ${scripts.join(' + ')} with ${expects.length} expected message${expects.length === 1 ? '' : 's'}` : `accepted by ${scripts.join(' + ')}`}`,
  };
}

// Cases run in parallel (each is a few node and rlhf processes); results print in order.
const results = new Array(cases.length);
let next = 0;
const width = Math.max(2, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
await Promise.all(Array.from({ length: width }, async () => {
  while (next < cases.length) {
    const i = next++;
    results[i] = await runCase(cases[i]);
  }
}));
let passed = 0;
let failed = 0;
for (const r of results) {
  console.log(r.line);
  if (r.ok) passed++; else failed++;
}
console.log(`testdata: ${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
