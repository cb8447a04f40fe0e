#!/usr/bin/env python3
"""Proves the validators reject what they must: runs validate.py and policy.py on every
testdata/*.yaml. Each file says in its header
  # check: schema | policy | both     which script(s) it is for
  # expect: <text>                    (bad-* files) a problem line must contain <text>
ok-* files must pass the named checks (exit 0, no problem); bad-* files must fail (exit 1),
every expect must be found in a problem line, and every problem line must contain some
expect (so a case fails only for the defect it is about).

  $VENV/bin/python deploy/k8s/validate/run_testdata.py --rlhf build/release/cli/rlhf
"""
import concurrent.futures
import os
import re
import subprocess
import sys

from lib import HERE, parse_args

USAGE = 'usage: run_testdata.py --rlhf PATH [--cache-dir DIR] [testdata/NAME.yaml ...]'
SUMMARY = re.compile(r'(validate|policy): \d+ documents, \d+ problems?')


def run_script(args):
    """Runs one script with this Python; returns (status, stdout, stderr)."""
    r = subprocess.run([sys.executable] + args, capture_output=True, text=True, errors='replace', stdin=subprocess.DEVNULL)
    return (None if r.returncode < 0 else r.returncode), r.stdout, r.stderr


def run_case(file, flags):
    """One case: returns (passed, report line(s))."""
    base = os.path.basename(file)
    base = base[:-len('.yaml')] if base.endswith('.yaml') else base
    with open(file, encoding='utf-8', errors='replace') as f:
        text = f.read()
    m = re.search(r'^# check: (\w+)$', text, re.M)
    check = m.group(1) if m else None
    expects = re.findall(r'^# expect: (.+)$', text, re.M)
    bad = base.startswith('bad-')
    if check not in ('schema', 'policy', 'both') or (not bad and not base.startswith('ok-')) \
            or (bad and not expects) or (not bad and expects):
        return False, (f'FAIL {base}: malformed case: needs "# check: schema|policy|both", a bad-/ok- name, '
                       'and expects exactly on bad- cases')
    scripts = ['schema', 'policy'] if check == 'both' else [check]
    for s in scripts:
        if s == 'schema':
            args = [os.path.join(HERE, 'validate.py'), file]
        else:
            args = [os.path.join(HERE, 'policy.py'), '--rlhf', flags['--rlhf']]
            if '--cache-dir' in flags:
                args += ['--cache-dir', flags['--cache-dir']]
            args.append(file)
        status, stdout, stderr = run_script(args)
        out = f'{stdout}{stderr}'
        problems = [line for line in stdout.split('\n') if line and not SUMMARY.fullmatch(line)]
        why = []
        if bad:
            if status != 1:
                why.append(f'{s}: exit {"null" if status is None else status}, expected 1')
            for e in expects:
                if not any(e in line for line in problems):
                    why.append(f'{s}: no problem line contains {_q(e)}')
            for line in problems:
                if not any(e in line for e in expects):
                    why.append(f'{s}: unexpected problem {_q(line)}')
        elif status != 0 or problems:
            why.append(f'{s}: exit {"null" if status is None else status}, expected 0 and no problem')
        if why:
            shown = '\n'.join(f'    {line}' for line in out.rstrip().split('\n'))
            return False, f'FAIL {base}: {"; ".join(why)}\n  output:\n{shown}'
    n = len(expects)
    if bad:
        what = f'rejected by {" + ".join(scripts)} with {n} expected message{"" if n == 1 else "s"}'
    else:
        what = f'accepted by {" + ".join(scripts)}'
    return True, f'ok   {base}: {what}'


def _q(s):
    import json
    return json.dumps(s, ensure_ascii=False)


def main():
    flags, files = parse_args(sys.argv[1:], ['--rlhf', '--cache-dir'], [], USAGE)
    if '--rlhf' not in flags:
        print(USAGE, file=sys.stderr)
        return 2
    d = os.path.join(HERE, 'testdata')
    cases = files or [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith('.yaml')]
    # Cases run in parallel (each is a few Python and rlhf processes); results print in order.
    width = max(2, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=width) as pool:
        results = list(pool.map(lambda f: run_case(f, flags), cases))
    passed = sum(1 for ok, _ in results if ok)
    failed = len(results) - passed
    for _, line in results:
        print(line)
    print(f'testdata: {passed} passed, {failed} failed')
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
