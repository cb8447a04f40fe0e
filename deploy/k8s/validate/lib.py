"""Shared by validate.py (schemas), policy.py (deployment policy) and prometheus.py: reading
multi-document YAML the way kubectl does, JSON paths, problem reports, quantities and label
selectors, and the few JavaScript-like conversions that keep the messages the same as those of
the Node.js validator this one replaced (numbers print as JavaScript prints them, maps as
compact JSON)."""
import json
import math
import os
import re
import sys
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
SETUP_HINT = 'run scripts/setup.sh (it makes the validator\'s venv from deploy/k8s/validate/requirements.txt)'


def require_deps():
    """The pinned Python packages (requirements.txt); without them nothing can be checked."""
    missing = []
    for mod in ('yaml', 'jsonschema', 'kubernetes_validate'):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        print(f'error: {", ".join(missing)} not importable by {sys.executable}: {SETUP_HINT}', file=sys.stderr)
        sys.exit(2)


# --- JavaScript-like values ----------------------------------------------------------------------

class _Undefined:
    """A field that is not there (JavaScript's undefined), as messages print it."""
    def __repr__(self):
        return 'undefined'

    def __bool__(self):
        return False


UNDEF = _Undefined()


class YamlTimestamp:
    """An unquoted YAML 1.1 timestamp (2024-01-02): a Date object in JavaScript, not a string."""
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_integer(v):
    """Number.isInteger."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, float) and math.isfinite(v) and v.is_integer()


def is_object(v):
    return isinstance(v, dict)


def truthy(v):
    """JavaScript truthiness: empty maps and lists are true, NaN and '' false."""
    if v is None or v is UNDEF or v is False:
        return False
    if is_number(v):
        return v != 0 and v == v
    if isinstance(v, str):
        return v != ''
    return True


def get(o, *keys):
    """o.k1.k2...: UNDEF where a step is missing or not a map."""
    for k in keys:
        if not isinstance(o, dict) or k not in o:
            return UNDEF
        o = o[k]
    return o



def ns(o):
    """An object's metadata.namespace, or ''."""
    v = get(o, 'metadata', 'namespace')
    return v if truthy(v) else ''


def name(o):
    """An object's metadata.name, or ''."""
    v = get(o, 'metadata', 'name')
    return v if truthy(v) else ''


def arr(v):
    """`v || []`."""
    return v if truthy(v) else []

def js_number(v):
    """String(number) as JavaScript writes it."""
    if isinstance(v, int):
        return str(v)
    if v != v:
        return 'NaN'
    if math.isinf(v):
        return 'Infinity' if v > 0 else '-Infinity'
    if v == 0:
        return '0'
    # The shortest round-trip digits (repr), placed as Number.prototype.toString places them.
    _, digit_tuple, exp = Decimal(repr(abs(v))).normalize().as_tuple()
    digits = ''.join(map(str, digit_tuple))
    k, n = len(digits), len(digits) + exp
    if k <= n <= 21:
        s = digits + '0' * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + '.' + digits[n:]
    elif -6 < n <= 0:
        s = '0.' + '0' * (-n) + digits
    else:
        e = n - 1
        s = digits[0] + ('.' + digits[1:] if k > 1 else '') + 'e' + ('+' if e >= 0 else '-') + str(abs(e))
    return ('-' if v < 0 else '') + s


def js_str(v):
    """String(v) / `${v}`."""
    if v is UNDEF:
        return 'undefined'
    if v is None:
        return 'null'
    if v is True:
        return 'true'
    if v is False:
        return 'false'
    if is_number(v):
        return js_number(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ','.join('' if x is None or x is UNDEF else js_str(x) for x in v)
    if isinstance(v, dict):
        return '[object Object]'
    return str(v)


def js_json(v):
    """JSON.stringify(v) (compact)."""
    if v is None:
        return 'null'
    if v is True:
        return 'true'
    if v is False:
        return 'false'
    if is_number(v):
        return js_number(v) if math.isfinite(v) else 'null'
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return '[' + ','.join('null' if x is UNDEF else js_json(x) for x in v) + ']'
    if isinstance(v, dict):
        return '{' + ','.join(f'{json.dumps(k, ensure_ascii=False)}:{js_json(x)}' for k, x in v.items() if x is not UNDEF) + '}'
    if isinstance(v, YamlTimestamp):
        return json.dumps(v.text)
    if v is UNDEF:
        return 'undefined'
    return json.dumps(str(v))


def js_len(s):
    """String length in UTF-16 code units, as JavaScript counts it."""
    return len(s.encode('utf-16-le')) // 2


def js_eq(a, b):
    """a === b for the plain values of a manifest (a boolean never equals a number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if is_number(a) and is_number(b):
        return a == b
    if type(a) is not type(b):
        return False
    return a == b if isinstance(a, str) else a is b


def js_number_of(v):
    """Number(v) for the values of a manifest (NaN where JavaScript gives NaN)."""
    if v is None:
        return 0
    if v is UNDEF:
        return math.nan
    if isinstance(v, bool):
        return 1 if v else 0
    if is_number(v):
        return v
    if isinstance(v, str):
        s = v.strip()
        if s == '':
            return 0
        try:
            if re.fullmatch(r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?', s):
                f = float(s)
                return int(f) if f.is_integer() and abs(f) < 2 ** 53 else f
            if re.fullmatch(r'0[xX][0-9a-fA-F]+', s):
                return int(s, 16)
            if re.fullmatch(r'[+-]?Infinity', s):
                return -math.inf if s.startswith('-') else math.inf
        except ValueError:
            pass
        return math.nan
    return math.nan


# --- YAML ---------------------------------------------------------------------------------------

def read_inputs(files):
    """Reads the named files ('-' or none: stdin) as one stream of YAML documents."""
    if not files:
        files = ['-']
    out = []
    for f in files:
        if f == '-':
            text = sys.stdin.buffer.read().decode('utf-8', errors='replace')
        else:
            with open(f, 'rb') as fh:
                text = fh.read().decode('utf-8', errors='replace')
        out.append({'name': '<stdin>' if f == '-' else f, 'text': text})
    return out


def parse_documents(inputs):
    """Parses multi-document YAML with YAML 1.1 rules, as kubectl (sigs.k8s.io/yaml) reads it: an
    unquoted `on`/`yes` is a boolean there too. Duplicate keys and syntax errors are problems.
    Returns (docs: [{obj, index, source}], problems: [str])."""
    from yaml11 import load_documents
    docs = []
    problems = []
    for inp in inputs:
        for i, obj, errors in load_documents(inp['text']):
            for e in errors:
                problems.append(f'{inp["name"]}: document {i + 1}: YAML: {e}')
            if errors or obj is None:  # an empty document (a trailing ---) is no object
                continue
            docs.append({'obj': obj, 'index': len(docs) + 1, 'source': inp['name']})
    return docs, problems


def parse_one(text):
    """YAML.parse(text, {version: '1.1'}): one document; raises ValueError on any error."""
    from yaml11 import load_documents
    found = list(load_documents(text))
    for i, _, errors in found:
        if errors:
            raise ValueError(f'document {i + 1}: {errors[0]}')
    if len(found) > 1:
        raise ValueError('Source contains multiple documents; please use YAML.parseAllDocuments()')
    return found[0][1] if found else None


# --- objects, paths, reports --------------------------------------------------------------------

def doc_id(doc):
    """"<kind>/<name>" of a document, as every problem starts."""
    o = doc['obj']
    if not is_object(o):
        return f'document {doc["index"]}'
    kind = o.get('kind') if isinstance(o.get('kind'), str) and o.get('kind') else f'document {doc["index"]}'
    meta = o.get('metadata')
    name = meta.get('name') if is_object(meta) and isinstance(meta.get('name'), str) and meta.get('name') else '<no name>'
    return f'{kind}/{name}'


_PLAIN_KEY = re.compile(r'[A-Za-z_$][A-Za-z0-9_$-]*')


def join_path(base, key):
    """JSON path segment: .key for plain keys, ["key"] for keys with dots or slashes, [i] for items."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f'{base}[{key}]'
    key = js_str(key)
    if _PLAIN_KEY.fullmatch(key):
        return f'{base}.{key}' if base else key
    return f'{base}[{json.dumps(key, ensure_ascii=False)}]'


def describe(v):
    if v is None:
        return 'null'
    if isinstance(v, list):
        return 'array'
    if isinstance(v, str):
        return 'string ' + json.dumps(v[:40] + '...' if len(v) > 40 else v, ensure_ascii=False)
    if isinstance(v, bool):
        return 'boolean'
    if is_number(v):
        return f'number {js_number(v)}'
    return 'object'


# Kubernetes resource.Quantity: <number><suffix>, suffix a binary (Ki..Ei), decimal (n u m "" k
# M G T P E) or exponent (e3) one. Numbers in YAML are quantities too.
QUANTITY_RE = re.compile(r'([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?')
SUFFIX = {
    '': 1, 'n': 1e-9, 'u': 1e-6, 'm': 1e-3, 'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'P': 1e15, 'E': 1e18,
    'Ki': 2 ** 10, 'Mi': 2 ** 20, 'Gi': 2 ** 30, 'Ti': 2 ** 40, 'Pi': 2 ** 50, 'Ei': 2 ** 60,
}


def is_quantity(v):
    if is_number(v):
        return math.isfinite(v)
    return isinstance(v, str) and QUANTITY_RE.fullmatch(v) is not None


def quantity_value(v):
    """The value of a quantity as a number (NaN when it is not one)."""
    if is_number(v):
        return v
    m = QUANTITY_RE.fullmatch(v) if isinstance(v, str) else None
    if not m:
        return math.nan
    suffix = m.group(2) or ''
    try:
        if suffix[:1] in ('e', 'E'):
            return float(m.group(1)) * 10.0 ** int(suffix[1:])
        return float(m.group(1)) * SUFFIX[suffix]
    except OverflowError:
        return math.inf if not m.group(1).startswith('-') else -math.inf


def _has(labels, k):
    return is_object(labels) and k in labels


def selector_matches(selector, labels):
    """metav1.LabelSelector semantics: matchLabels AND every matchExpressions requirement. An
    empty selector ({}) matches everything; a missing one nothing."""
    if not is_object(selector):
        return False
    ml = selector.get('matchLabels')
    for k, v in (ml.items() if is_object(ml) and truthy(ml) else []):
        if not js_eq(labels.get(k, UNDEF), v):
            return False
    me = selector.get('matchExpressions')
    for r in (me if truthy(me) else []):
        key = get(r, 'key')
        has = isinstance(key, str) and _has(labels, key)
        values = get(r, 'values')
        values = values if truthy(values) else []
        val = labels.get(key, UNDEF) if has else UNDEF
        op = get(r, 'operator')
        if op == 'In':
            if not has or not any(js_eq(x, val) for x in values):
                return False
        elif op == 'NotIn':
            if has and any(js_eq(x, val) for x in values):
                return False
        elif op == 'Exists':
            if not has:
                return False
        elif op == 'DoesNotExist':
            if has:
                return False
        else:
            return False
    return True


def map_selector_matches(selector, labels):
    """A Service's selector (a plain map): every pair must be in the labels; an empty one selects
    nothing (Endpoints are then managed by hand)."""
    if not is_object(selector) or len(selector) == 0:
        return False
    return all(js_eq(labels.get(k, UNDEF), v) for k, v in selector.items())


class Report:
    """Collects "<id>: <path>: <message>" lines."""

    def __init__(self):
        self.lines = []

    def add(self, id_, p, message):
        self.lines.append(f'{id_}: {p}: {message}' if p else f'{id_}: {message}')

    def raw(self, line):
        self.lines.append(line)

    def finish(self, what, documents):
        """Prints every problem and a summary; returns the exit status."""
        for line in self.lines:
            print(line)
        n = len(self.lines)
        print(f'{what}: {documents} documents, {n} problem{"" if n == 1 else "s"}')
        sys.stdout.flush()
        return 0 if n == 0 else 1


def parse_args(argv, with_value, boolean, usage):
    """Splits argv into (flags: dict, files: list); flags in `with_value` take the next argument."""
    flags = {}
    files = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ('-h', '--help'):
            print(usage)
            sys.exit(0)
        if a in with_value:
            if i + 1 >= len(argv):
                print(f'error: {a} needs a value\n{usage}', file=sys.stderr)
                sys.exit(2)
            i += 1
            flags[a] = argv[i]
        elif a in boolean:
            flags[a] = True
        elif a.startswith('--'):
            print(f'error: unknown option {a}\n{usage}', file=sys.stderr)
            sys.exit(2)
        else:
            files.append(a)
        i += 1
    return flags, files
