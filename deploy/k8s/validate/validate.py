#!/usr/bin/env python3
"""Strict offline schema validation of Kubernetes manifests (e.g. `kubectl kustomize` output).

  $VENV/bin/python deploy/k8s/validate/validate.py [FILE ...]        (no FILE or '-': stdin)
  kubectl kustomize deploy/k8s/overlays/cpu-dev | $VENV/bin/python deploy/k8s/validate/validate.py

($VENV: the validator's virtual environment that scripts/setup.sh makes, see venv.sh.)

Schemas: the Kubernetes JSON schemas of release 1.36 that the PyPI package kubernetes-validate
ships (strict variant), read as models by k8s_schema.py; every built-in kind of that release is
known, and nothing else. Custom resources are accepted only from the small hand-written schemas
in k8s_schema.CRD_MODELS. Each built-in object also goes through kubernetes-validate's own strict
validation (jsonschema); what that finds where nothing below did is reported too.

Problems (each printed as `<kind>/<name>: <json path>: <problem>`; exit status 1 if any):
unknown fields, missing required fields, wrong JSON types (int32/int64 must be integers,
IntOrString an integer or a string, quantities a number or a Kubernetes quantity string),
unknown apiVersion/kind, cluster-scoped objects with a namespace, invalid names and labels,
and a few enums. Exit status 2: usage or set-up error.
"""
import math
import re
import sys

from lib import (describe, doc_id, is_integer, is_number, is_object, is_quantity, join_path, js_json, js_len,
                 js_number, js_str, parse_args, parse_documents, read_inputs, require_deps, Report, truthy,
                 UNDEF, YamlTimestamp)

# A few enums that the schemas reduce to "string".
ENUMS = {
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
    'MonitoringV1RelabelConfig.action': [
        'replace', 'keep', 'drop', 'keepequal', 'dropequal', 'hashmod', 'labelmap', 'labeldrop', 'labelkeep',
        'lowercase', 'uppercase', 'Replace', 'Keep', 'Drop', 'KeepEqual', 'DropEqual', 'HashMod', 'LabelMap',
        'LabelDrop', 'LabelKeep', 'Lowercase', 'Uppercase'],
}

# --- names, as the API server validates them ----------------------------------------------------

DNS1123_LABEL = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?')
DNS1123_SUBDOMAIN = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')
DNS1035_LABEL = re.compile(r'[a-z]([-a-z0-9]*[a-z0-9])?')
QUALIFIED_NAME = re.compile(r'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')
LABEL_VALUE = re.compile(r'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')
BASE64 = re.compile(r'[A-Za-z0-9+/]*={0,2}')


def q(s):
    return js_json(s)


def check_dns1123_label(v, what):
    if js_len(v) > 63:
        return f'{what} must be at most 63 characters'
    if not DNS1123_LABEL.fullmatch(v):
        return f"{what} {q(v)} is not a DNS-1123 label (lower-case alphanumerics and '-')"
    return None


def check_subdomain(v, what):
    if js_len(v) > 253:
        return f'{what} must be at most 253 characters'
    if not DNS1123_SUBDOMAIN.fullmatch(v):
        return f'{what} {q(v)} is not a DNS-1123 subdomain'
    return None


def check_qualified_key(k):
    parts = k.split('/')
    if len(parts) > 2:
        return 'has more than one "/"'
    name = parts[-1]
    if len(parts) == 2:
        e = 'has an empty prefix' if parts[0] == '' else check_subdomain(parts[0], 'prefix')
        if e:
            return e
    if len(name) == 0 or js_len(name) > 63:
        return 'name part must be 1 to 63 characters'
    if not QUALIFIED_NAME.fullmatch(name):
        return 'name part must be alphanumerics, "-", "_" or "." with an alphanumeric at both ends'
    return None


def check_port_name(v):
    """IANA_SVC_NAME: what container and service port names must be."""
    if js_len(v) > 15:
        return f'port name {q(v)} is longer than 15 characters'
    if not re.fullmatch(r'[a-z0-9]([a-z0-9-]*[a-z0-9])?', v) or '--' in v or not re.search(r'[a-z]', v):
        return f"port name {q(v)} must be lower-case alphanumerics and '-', with a letter, no '--'"
    return None


def _port_out_of_range(v):
    return is_integer(v) and (v < 1 or v > 65535)


# Checks beyond types, per model class: (value, path, add) -> None.
def _object_meta(v, p, add):
    for field in ('labels', 'annotations'):
        m = v.get(field)
        for k, val in (m.items() if is_object(m) else []):
            e = check_qualified_key(k)
            if e:
                add(join_path(join_path(p, field), k), f'invalid key: {e}')
            if field == 'labels' and isinstance(val, str) and (js_len(val) > 63 or not LABEL_VALUE.fullmatch(val)):
                add(join_path(join_path(p, field), k),
                    f'invalid label value {q(val)} (at most 63 alphanumerics, "-", "_", ".")')
    if is_object(v.get('annotations')):
        size = sum(js_len(k) + js_len(js_str(a)) for k, a in v['annotations'].items())
        if size > 256 * 1024:
            add(join_path(p, 'annotations'), f'total size {size} exceeds 262144 bytes')
    if isinstance(v.get('namespace'), str):
        e = check_dns1123_label(v['namespace'], 'namespace')
        if e:
            add(join_path(p, 'namespace'), e)


def _named(what):
    def check(v, p, add):
        if isinstance(v.get('name'), str):
            e = check_dns1123_label(v['name'], what)
            if e:
                add(join_path(p, 'name'), e)
    return check


def _container_port(v, p, add):
    if isinstance(v.get('name'), str):
        e = check_port_name(v['name'])
        if e:
            add(join_path(p, 'name'), e)
    if _port_out_of_range(v.get('containerPort')):
        add(join_path(p, 'containerPort'), f'{js_number(v["containerPort"])} is not a port number (1-65535)')


def _service_port(v, p, add):
    if isinstance(v.get('name'), str):
        e = check_dns1123_label(v['name'], 'service port name')
        if e:
            add(join_path(p, 'name'), e)
    if _port_out_of_range(v.get('port')):
        add(join_path(p, 'port'), f'{js_number(v["port"])} is not a port number (1-65535)')
    if isinstance(v.get('targetPort'), str):
        e = check_port_name(v['targetPort'])
        if e:
            add(join_path(p, 'targetPort'), e)


def _grpc_action(v, p, add):
    if _port_out_of_range(v.get('port')):
        add(join_path(p, 'port'), f'{js_number(v["port"])} is not a port number (1-65535)')


def _env_var(v, p, add):
    if isinstance(v.get('name'), str) and (v['name'] == '' or '=' in v['name']):
        add(join_path(p, 'name'), f'invalid environment variable name {q(v["name"])}')


EXTRA = {
    'V1ObjectMeta': _object_meta,
    'V1Container': _named('container name'),
    'V1Volume': _named('volume name'),
    'V1ContainerPort': _container_port,
    'V1ServicePort': _service_port,
    'V1GRPCAction': _grpc_action,
    'V1EnvVar': _env_var,
}


def _is_date(v):
    """Date.parse(v) is a number: an ISO 8601 / RFC 3339 time or an RFC 2822 date."""
    import datetime
    import email.utils
    try:
        datetime.datetime.fromisoformat(v.replace('z', 'Z'))
        return True
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(v) is not None
    except (TypeError, ValueError, IndexError):
        return False


# --- validation ----------------------------------------------------------------------------------

ARRAY = re.compile(r'Array<(.+)>')
MAP = re.compile(r'\{ \[key: string\]: (.+); \}')
INT_FORMATS = ('int32', 'int64')


class Validator:
    def __init__(self, models):
        self.models = models

    def value(self, value, type_, fmt, p, add, quantity=False, enum_key=None):
        """Validates `value` against a type string of the models."""
        if value is None:
            # JSON null means "unset" to the API server, but in a manifest it is almost always a
            # forgotten value (`key:` with nothing after it). Timestamps are the usual exception.
            if type_ != 'Date':
                add(p, f'null value ({type_} expected; omit the field instead)')
            return
        m = ARRAY.fullmatch(type_)
        if m:
            if not isinstance(value, list):
                return add(p, f'expected an array ({type_}), got {describe(value)}')
            for i, item in enumerate(value):
                self.value(item, m.group(1), fmt, join_path(p, i), add, quantity, enum_key)
            return
        m = MAP.fullmatch(type_)
        if m:
            if not is_object(value):
                return add(p, f'expected a map ({type_}), got {describe(value)}')
            for k, v in value.items():
                self.value(v, m.group(1), fmt, join_path(p, k), add, quantity, enum_key)
            return
        if type_ == 'string':
            if quantity:
                if not is_quantity(value):
                    add(p, f'expected a quantity (e.g. 500m, 2, 1Gi), got {describe(value)}')
                return
            if not isinstance(value, str):
                return add(p, f'expected a string, got {describe(value)}')
            if fmt == 'byte' and not BASE64.fullmatch(re.sub(r'\s', '', value)):
                add(p, 'expected base64 data')
            if enum_key in ENUMS and value not in ENUMS[enum_key]:
                add(p, f'{q(value)} is not one of {", ".join(q(e) for e in ENUMS[enum_key])}')
            return
        if type_ == 'number':
            if not is_number(value) or not math.isfinite(value):
                kind = f'an integer ({fmt})' if fmt in INT_FORMATS else 'a number'
                return add(p, f'expected {kind}, got {describe(value)}')
            if fmt in INT_FORMATS and not is_integer(value):
                return add(p, f'expected an integer ({fmt}), got {describe(value)}')
            if fmt == 'int32' and (value < -(2 ** 31) or value > 2 ** 31 - 1):
                add(p, f'{js_number(value)} is out of int32 range')
            return
        if type_ == 'boolean':
            if not isinstance(value, bool):
                add(p, f'expected a boolean, got {describe(value)}')
            return
        if type_ == 'Date':
            if not isinstance(value, str) or not _is_date(value):
                add(p, f'expected an RFC 3339 time, got {describe(value)}')
            return
        if type_ == 'IntOrString':
            if is_number(value):
                if not is_integer(value):
                    add(p, f'expected an integer or a string, got {describe(value)}')
            elif not isinstance(value, str) or value == '':
                add(p, f'expected an integer or a non-empty string, got {describe(value)}')
            return
        if type_ in ('any', 'object'):
            return
        self.object(value, type_, p, add)

    def object(self, value, cls, p, add):
        model = self.models.get(cls)
        if model is None:
            return add(p, f'schema has no model {cls} (validator bug or incomplete kubernetes-validate schemas)')
        if not is_object(value):
            return add(p, f'expected an object ({cls}), got {describe(value)}')
        for k, v in value.items():
            field = model['fields'].get(k)
            fp = join_path(p, k)
            if field is None:
                add(fp, f'unknown field "{k}" (not in {cls})')
                continue
            type_, fmt, quantity = field
            self.value(v, type_, fmt, fp, add, quantity, f'{cls}.{k}')
        for r in model['required']:
            if r not in value:
                add(join_path(p, r), f'missing required field ({cls})')
        if cls in EXTRA:
            EXTRA[cls](value, p, add)


def _related(a, b):
    """Is one JSON path the other or inside it?"""
    return a == b or a == '' or b == '' or b.startswith(a + '.') or b.startswith(a + '[') \
        or a.startswith(b + '.') or a.startswith(b + '[')


# --- main ----------------------------------------------------------------------------------------

USAGE = "usage: validate.py [--list-kinds] [FILE ...]   (no FILE or '-': stdin)"


def main():
    require_deps()
    import k8s_schema
    flags, files = parse_args(sys.argv[1:], [], ['--list-kinds'], USAGE)
    try:
        models = k8s_schema.load_models()
        kinds = k8s_schema.load_kinds()
    except (OSError, KeyError, ValueError) as e:
        print(f'error: cannot read the schemas of kubernetes-validate ({k8s_schema.SCHEMA_DIR}): {e}', file=sys.stderr)
        return 2
    if len(kinds) < 50 or 'apps/v1 Deployment' not in kinds:
        print(f'error: could not derive the kinds from {k8s_schema.schema_root()} (found {len(kinds)})', file=sys.stderr)
        return 2
    if '--list-kinds' in flags:
        for k in sorted(kinds):
            print(f'{k} -> {kinds[k]["model"]}{"" if kinds[k]["namespaced"] else " (cluster)"}')
        return 0

    report = Report()
    docs, problems = parse_documents(read_inputs(files))
    for line in problems:
        report.raw(line)
    validator = Validator(models)
    seen = {}
    for doc in docs:
        id_ = doc_id(doc)
        paths = []

        def add(p, msg, id_=id_, paths=paths):
            paths.append(p)
            report.add(id_, p, msg)
        o = doc['obj']
        if not is_object(o):
            add('', f'expected a Kubernetes object, got {describe(o)}')
            continue
        if not isinstance(o.get('apiVersion'), str) or not isinstance(o.get('kind'), str):
            add('', 'missing apiVersion or kind')
            continue
        entry = kinds.get(f'{o["apiVersion"]} {o["kind"]}')
        if entry is None:
            other = [k.split(' ')[0] for k in kinds if k.endswith(f' {o["kind"]}')]
            add('', f'unknown apiVersion/kind {o["apiVersion"]} {o["kind"]}' +
                (f' ({o["kind"]} is served as {", ".join(other)})' if other
                 else f' (not a Kubernetes {k8s_schema.K8S_VERSION} kind, nor an allowed custom resource)'))
            continue
        validator.object(o, entry['model'], '', add)
        meta = o['metadata'] if is_object(o.get('metadata')) else {}
        name = meta.get('name', UNDEF)
        if not isinstance(name, str) or name == '':
            add('metadata.name', 'missing (every manifest needs a name)')
        else:
            if o['kind'] in ('Service', 'Namespace'):
                e = None if DNS1035_LABEL.fullmatch(name) and js_len(name) <= 63 else \
                    f"name {q(name)} must be a DNS-1035 label (a-z first, a-z0-9 and '-', at most 63)"
            else:
                e = check_subdomain(name, 'name')
            if e:
                add('metadata.name', e)
        if not entry['namespaced'] and 'namespace' in meta:
            add('metadata.namespace', f'{o["kind"]} is cluster-scoped and has no namespace')
        # kubernetes-validate's own verdict, where it sees what the checks above did not.
        if entry['model'] not in k8s_schema.CRD_MODELS:
            for segs, msg in k8s_schema.library_errors(_plain(o)):
                p = ''
                for s in segs:
                    p = join_path(p, s)
                if not any(_related(p, x) for x in paths):
                    add(p, f'{msg} (kubernetes-validate {k8s_schema.K8S_VERSION} strict schema)')
        ns = meta.get('namespace')
        key = f'{o["apiVersion"]} {o["kind"]} {js_str(ns) if truthy(ns) else ""} {js_str(name)}'
        if key in seen:
            add('', f'duplicate object (also document {seen[key]})')
        seen[key] = doc['index']
    return report.finish('validate', len(docs))


def _plain(v):
    """The object as JSON would carry it to the API server (timestamps as strings)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, YamlTimestamp):
        return v.text
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


if __name__ == '__main__':
    sys.exit(main())
