"""Runs `rlhf check-config` for policy.py. Each run costs about a second (the binary loads
LibTorch), so requests are queued while the manifests are walked, identical ones run once, and
the rest run in parallel; the callbacks then run in request order, so the report is
deterministic."""
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

from lib import is_object


def _status(code):
    """The exit status as Node reports it: null when a signal ended the process."""
    return None if code is None or code < 0 else code


def _show(status):
    return 'null' if status is None else str(status)


class ConfigChecker:
    def __init__(self, rlhf, report, cache_dir):
        self.rlhf = rlhf
        self.cache_dir = cache_dir
        self.report = report
        self.dir = tempfile.mkdtemp(prefix='rlhf-k8s-configs-')
        self.queue = []
        self.runs = {}  # dedup key -> {file, args, result, cache}
        self.available = None

    def usable(self, id_):
        """Is check-config there at all? One clear problem instead of one per file."""
        if self.available is None:
            if not os.path.exists(self.rlhf):
                self.report.add(id_, '', f'cannot check configs: {self.rlhf} does not exist (build it: scripts/build.sh)')
                self.available = False
            else:
                try:
                    r = subprocess.run([self.rlhf, 'check-config', '--help'], capture_output=True, text=True,
                                       errors='replace', stdin=subprocess.DEVNULL)
                    status, stdout = _status(r.returncode), r.stdout
                except OSError:
                    status, stdout = None, ''
                # An rlhf without the subcommand prints its own help and exits 0: look for the option.
                self.available = status == 0 and '--service' in stdout
                if not self.available:
                    self.report.add(id_, '', f'cannot check configs: {self.rlhf} has no check-config subcommand '
                                    f'(`check-config --help` exit {_show(status)}, no --service in its help): '
                                    'rebuild it (scripts/build.sh)')
        return self.available

    def check(self, id_, p, svc, content, file_name, overrides, then=lambda cfg: None):
        """Queues `rlhf check-config --service svc FILE --print [--set ...]`; after run(), calls
        then(effective config) on success, or reports the failure at (id_, p)."""
        if not self.usable(id_):
            return
        key = json.dumps([svc, file_name, content, overrides], ensure_ascii=False, separators=(',', ':'))
        if key not in self.runs:
            file = os.path.join(self.dir, f'{len(self.runs) + 1}-{file_name}')
            with open(file, 'w', encoding='utf-8') as f:
                f.write(content)
            args = ['check-config', '--service', svc, file, '--print']
            for o in overrides:
                args += ['--set', o]
            self.runs[key] = {'file': file, 'args': args, 'result': None, 'cache': self.cache_path(key)}
        shown = f'rlhf check-config --service {svc} {file_name}' + ''.join(f' --set {o}' for o in overrides)
        self.queue.append({'run': self.runs[key], 'id': id_, 'p': p, 'shown': shown, 'file_name': file_name, 'then': then})

    def cache_path(self, key):
        """--cache-dir: results of earlier runs of the same binary on the same input (the test runs
        policy.py many times on the same configs; each run of rlhf costs about a second)."""
        if not self.cache_dir:
            return None
        st = os.stat(self.rlhf)
        ident = json.dumps([self.rlhf, st.st_size, st.st_mtime_ns, key], ensure_ascii=False)
        return os.path.join(self.cache_dir, hashlib.sha256(ident.encode('utf-8')).hexdigest() + '.json')

    def _execute(self, r):
        try:
            p = subprocess.run([self.rlhf] + r['args'], capture_output=True, text=True, errors='replace',
                               stdin=subprocess.DEVNULL)
        except OSError as e:
            return {'status': -1, 'stdout': '', 'stderr': str(e)}
        return {'status': _status(p.returncode), 'stdout': p.stdout.replace(r['file'], '<file>'),
                'stderr': p.stderr.replace(r['file'], '<file>')}

    def run(self):
        for r in self.runs.values():
            if r['result'] is None and r['cache'] and os.path.exists(r['cache']):
                try:
                    with open(r['cache'], encoding='utf-8') as f:
                        r['result'] = json.load(f)
                except (OSError, ValueError):
                    r['result'] = None
        runs = [r for r in self.runs.values() if r['result'] is None]
        width = max(2, os.cpu_count() or 1)
        with concurrent.futures.ThreadPoolExecutor(max_workers=width) as pool:
            for r, result in zip(runs, pool.map(self._execute, runs)):
                r['result'] = result
                if r['cache'] and result['status'] != -1:
                    os.makedirs(self.cache_dir, exist_ok=True)
                    part = f'{r["cache"]}.{os.getpid()}'  # written aside and renamed: other runs read it
                    with open(part, 'w', encoding='utf-8') as f:
                        json.dump(result, f)
                    os.replace(part, r['cache'])
        for q in self.queue:
            res = q['run']['result']
            status, stdout, stderr = res['status'], res['stdout'], res['stderr']
            if status != 0:
                lines = [line.replace('<file>', q['file_name']) for line in f'{stderr}{stdout}'.strip().split('\n')
                         if line.strip() and not re.match(r'I\d{8} ', line)]
                msg = ' | '.join(lines[-3:]) or 'no message'
                self.report.add(q['id'], q['p'], f'{q["shown"]}: exit {_show(status)}: {msg}')
                continue
            try:
                cfg = json.loads([line for line in stdout.strip().split('\n') if line.startswith('{')][-1])
            except (IndexError, ValueError):
                self.report.add(q['id'], q['p'], f'{q["shown"]}: no effective config in its --print output')
                continue
            q['then'](cfg)
        self.queue = []

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def field(obj, *names):
    """A field of the effective config as check-config prints it (proto or JSON names)."""
    from lib import UNDEF
    cur = obj
    for n in names:
        if not is_object(cur):
            return UNDEF
        camel = re.sub(r'_([a-z])', lambda m: m.group(1).upper(), n)
        cur = cur[n] if n in cur else cur.get(camel, UNDEF)
    return cur
