"""YAML 1.1 as kubectl reads manifests (sigs.k8s.io/yaml, go-yaml v2), on PyYAML: plain scalars
resolve with the YAML 1.1 rules of the `yaml` npm package's 'yaml-1.1' schema, which the Node.js
validator used: y/yes/on/true and n/no/off/false are booleans, 0755 is octal, 0b101 binary, 1:30
sexagesimal (90), 1e3 a float, 2024-01-02 a timestamp (not a string), `<<` a merge key. Keys
become strings as in JavaScript objects (true -> "true", 1 -> "1", null -> ""). A duplicate key
is an error, as with the npm package's uniqueKeys."""
import math
import re

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode

from lib import UNDEF, YamlTimestamp, is_number, js_str

_BOOL_TRUE = re.compile(r'(?:Y|y|[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)\Z')
_BOOL_FALSE = re.compile(r'(?:N|n|[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)\Z')
_NULL = re.compile(r'(?:~|[Nn]ull|NULL)?\Z')
_INT_BIN = re.compile(r'[-+]?0b[0-1_]+\Z')
_INT_OCT = re.compile(r'[-+]?0[0-7_]+\Z')
_INT = re.compile(r'[-+]?[0-9][0-9_]*\Z')
_INT_HEX = re.compile(r'[-+]?0x[0-9a-fA-F_]+\Z')
_FLOAT_NAN = re.compile(r'(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)\Z')
_FLOAT_EXP = re.compile(r'[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+\Z')
_FLOAT = re.compile(r'[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*\Z')
_INT_TIME = re.compile(r'[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\Z')
_FLOAT_TIME = re.compile(r'[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*\Z')
_TIMESTAMP = re.compile(
    r'([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})'
    r'(?:(?:t|T|[ \t]+)([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2}(\.[0-9]+)?)'
    r'(?:[ \t]*(Z|[-+][012]?[0-9](?::[0-9]{2})?))?)?\Z')

_TAG = 'tag:yaml.org,2002:'


class Loader11(yaml.SafeLoader):
    """SafeLoader with the 'yaml-1.1' schema of the npm package `yaml` (2.x)."""


# Only these, tried in this order (the npm package's order); every other plain scalar is a string.
Loader11.yaml_implicit_resolvers = {}
for _tag, _re in [
        ('null', _NULL), ('bool', _BOOL_TRUE), ('bool', _BOOL_FALSE),
        ('int', _INT_BIN), ('int', _INT_OCT), ('int', _INT), ('int', _INT_HEX),
        ('float', _FLOAT_NAN), ('float', _FLOAT_EXP), ('float', _FLOAT),
        ('merge', re.compile(r'<<\Z')),
        ('int', _INT_TIME), ('float', _FLOAT_TIME), ('timestamp', _TIMESTAMP)]:
    Loader11.add_implicit_resolver(_TAG + _tag, _re, None)


def _sexagesimal(s):
    sign = s[0]
    parts = s[1:] if sign in '-+' else s
    res = 0.0
    for p in parts.replace('_', '').split(':'):
        res = res * 60 + float(p)
    res = -res if sign == '-' else res
    return int(res) if res.is_integer() else res


def _int(loader, node):
    s = loader.construct_scalar(node)
    sign = -1 if s[:1] == '-' else 1
    body = s[1:] if s[:1] in '-+' else s
    try:
        if _INT_BIN.match(s):
            return sign * int(body[2:].replace('_', ''), 2)
        if _INT_OCT.match(s):
            return sign * int(body[1:].replace('_', ''), 8)
        if _INT.match(s):
            return sign * int(body.replace('_', ''), 10)
        if _INT_HEX.match(s):
            return sign * int(body[2:].replace('_', ''), 16)
        if _INT_TIME.match(s):
            return _sexagesimal(s)
    except ValueError:
        return math.nan
    return math.nan


def _float(loader, node):
    s = loader.construct_scalar(node)
    if _FLOAT_NAN.match(s):
        return math.nan if s[-3:].lower() == 'nan' else (-math.inf if s[0] == '-' else math.inf)
    if _FLOAT_TIME.match(s):
        return float(_sexagesimal(s))
    try:
        return float(s.replace('_', ''))
    except ValueError:
        return math.nan


def _bool(loader, node):
    return _BOOL_TRUE.match(loader.construct_scalar(node)) is not None


def _timestamp(loader, node):
    return YamlTimestamp(loader.construct_scalar(node))


Loader11.add_constructor(_TAG + 'int', _int)
Loader11.add_constructor(_TAG + 'float', _float)
Loader11.add_constructor(_TAG + 'bool', _bool)
Loader11.add_constructor(_TAG + 'timestamp', _timestamp)


def js_key(k):
    """The property name a JavaScript object gets for a YAML key."""
    if k is None:
        return ''
    if isinstance(k, str):
        return k
    if isinstance(k, (list, dict)):
        return yaml.safe_dump(k, default_flow_style=True).strip()
    return js_str(k)


def _key_identity(node, key):
    """Keys equal for the uniqueness check: scalars by value (1 and 1.0 alike, "1" and 1 not)."""
    if not isinstance(node, ScalarNode):
        return ('node', id(node))
    if isinstance(key, bool):
        return ('bool', key)
    if is_number(key):
        return ('number', float(key))
    if key is None:
        return ('null',)
    if isinstance(key, str):
        return ('string', key)
    return ('scalar', str(key))


def _construct_mapping(self, node, deep=False):
    if not isinstance(node, MappingNode):
        return SafeConstructor.construct_mapping(self, node, deep=deep)
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == _TAG + 'merge':
            continue
        ident = _key_identity(key_node, self.construct_object(key_node, deep=True))
        if ident in seen:
            m = key_node.start_mark
            self.doc_errors.append(f'Map keys must be unique at line {m.line + 1}, column {m.column + 1}:')
        seen.add(ident)
    self.flatten_mapping(node)
    mapping = {}
    for key_node, value_node in node.value:
        key = self.construct_object(key_node, deep=True)
        mapping[js_key(key)] = self.construct_object(value_node, deep=deep)
    return mapping


Loader11.construct_mapping = _construct_mapping


def _error_text(e):
    """First line of a YAML error, as '<problem> at line L, column C:'."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        m = e.problem_mark
        where = f' at line {m.line + 1}, column {m.column + 1}:' if m is not None else ''
        return f'{e.problem}{where}'
    return str(e).split('\n')[0]


def load_documents(text):
    """Yields (index, object, [error]) per document of a YAML stream; a document with errors
    has object None. A syntax error ends the stream (PyYAML cannot resume after one)."""
    loader = Loader11(text)
    i = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    break
                loader.doc_errors = []
                node = loader.get_node()
                obj = loader.construct_document(node) if node is not None else None
            except yaml.YAMLError as e:
                yield i, None, [_error_text(e)]
                return
            errors = loader.doc_errors
            yield i, (None if errors else obj), errors
            i += 1
    finally:
        loader.dispose()


__all__ = ['load_documents', 'Loader11', 'js_key', 'UNDEF']
