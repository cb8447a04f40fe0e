"""The schemas validate.py checks against: the Kubernetes JSON schemas that the PyPI package
kubernetes-validate (requirements.txt pins it) ships per release, strict variant (no field
outside the schema), of release K8S_VERSION; plus small hand-written schemas of the custom
resources we ship.

The definitions (_definitions.json, converted from the Kubernetes OpenAPI spec) become models in
the shape the Node.js validator read from @kubernetes/client-node, so the messages stay the same:
a model per definition, named as that package names its classes (V1Container, V2MetricTarget,
CoreV1Event where two API groups define the same name), fields with a type string (string,
number + format, boolean, Date, IntOrString, any, Array<T>, { [key: string]: T; }, a model) and
the required fields. The kinds are the definitions' x-kubernetes-group-version-kind, less what
cannot be created (lists, options, subresources). A field is a quantity where the schema says
resource.Quantity."""
import functools
import importlib.resources
import json
import re

K8S_VERSION = '1.36'
SCHEMA_DIR = f'v{K8S_VERSION}.0-local-strict'

# Kinds with no create call on a collection (POST /api(s)/<gv>/[namespaces/{namespace}/]<plural>).
NOT_CREATABLE = {'APIGroup', 'APIVersions', 'ComponentStatus', 'DeleteOptions', 'Eviction', 'Scale', 'Status',
                 'TokenRequest', 'WatchEvent'}

# Kinds whose objects have no namespace (kubectl api-resources --namespaced=false, release 1.36).
CLUSTER_SCOPED = {
    'APIService', 'CSIDriver', 'CSINode', 'CertificateSigningRequest', 'ClusterRole', 'ClusterRoleBinding',
    'ClusterTrustBundle', 'CustomResourceDefinition', 'DeviceClass', 'DeviceTaintRule', 'FlowSchema', 'IPAddress',
    'IngressClass', 'MutatingAdmissionPolicy', 'MutatingAdmissionPolicyBinding', 'MutatingWebhookConfiguration',
    'Namespace', 'Node', 'PersistentVolume', 'PriorityClass', 'PriorityLevelConfiguration', 'ResourcePoolStatusRequest',
    'ResourceSlice', 'RuntimeClass', 'SelfSubjectAccessReview', 'SelfSubjectReview', 'SelfSubjectRulesReview',
    'ServiceCIDR', 'StorageClass', 'StorageVersion', 'StorageVersionMigration', 'SubjectAccessReview', 'TokenReview',
    'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'ValidatingWebhookConfiguration',
    'VolumeAttachment', 'VolumeAttributesClass',
}

QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity'
SPECIAL = {
    'io.k8s.apimachinery.pkg.util.intstr.IntOrString': 'IntOrString',
    'io.k8s.apimachinery.pkg.apis.meta.v1.Time': 'Date',
    'io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime': 'Date',
}

# Hand-written schemas of the custom resources we ship (deploy/k8s/components/podmonitor), in
# the same shape as the generated ones. Only the fields we use or could reasonably use; any
# other is an error. Source: the Prometheus Operator's monitoring.coreos.com/v1 PodMonitor CRD.
CRD_KINDS = {
    'monitoring.coreos.com/v1 PodMonitor': {'model': 'MonitoringV1PodMonitor', 'namespaced': True},
}
CRD_MODELS = {
    'MonitoringV1PodMonitor': {
        'fields': {'apiVersion': 'string', 'kind': 'string', 'metadata': 'V1ObjectMeta', 'spec': 'MonitoringV1PodMonitorSpec'},
        'required': ['spec'],
    },
    'MonitoringV1PodMonitorSpec': {
        'fields': {
            'selector': 'V1LabelSelector', 'namespaceSelector': 'MonitoringV1NamespaceSelector',
            'podMetricsEndpoints': 'Array<MonitoringV1PodMetricsEndpoint>', 'podTargetLabels': 'Array<string>',
            'jobLabel': 'string', 'sampleLimit': 'number:int64', 'targetLimit': 'number:int64',
            'labelLimit': 'number:int64', 'attachMetadata': 'MonitoringV1AttachMetadata',
        },
        'required': ['selector'],
    },
    'MonitoringV1NamespaceSelector': {'fields': {'any': 'boolean', 'matchNames': 'Array<string>'}, 'required': []},
    'MonitoringV1AttachMetadata': {'fields': {'node': 'boolean'}, 'required': []},
    'MonitoringV1PodMetricsEndpoint': {
        'fields': {
            'port': 'string', 'portNumber': 'number:int32', 'path': 'string', 'scheme': 'string',
            'interval': 'string', 'scrapeTimeout': 'string', 'honorLabels': 'boolean', 'honorTimestamps': 'boolean',
            'params': '{ [key: string]: Array<string>; }', 'relabelings': 'Array<MonitoringV1RelabelConfig>',
            'metricRelabelings': 'Array<MonitoringV1RelabelConfig>', 'enableHttp2': 'boolean',
            'filterRunning': 'boolean', 'followRedirects': 'boolean',
        },
        'required': [],
    },
    'MonitoringV1RelabelConfig': {
        'fields': {
            'sourceLabels': 'Array<string>', 'separator': 'string', 'targetLabel': 'string', 'regex': 'string',
            'modulus': 'number:int64', 'replacement': 'string', 'action': 'string',
        },
        'required': [],
    },
}


def schema_root():
    return importlib.resources.files('kubernetes_validate').joinpath('kubernetes-json-schema', SCHEMA_DIR)


@functools.lru_cache(maxsize=None)
def definitions():
    return json.loads(schema_root().joinpath('_definitions.json').read_text())['$defs']


def _parts(defname):
    """(group, version, name) of a definition: io.k8s.api.apps.v1.Deployment -> apps, v1, Deployment."""
    segs = defname.split('.')
    for i in range(len(segs) - 2, -1, -1):
        if re.fullmatch(r'v\d+((alpha|beta)\d+)?', segs[i]):
            return segs[i - 1], segs[i], '.'.join(segs[i + 1:])
    return segs[-2], '', segs[-1]


def _cap(s):
    return s[:1].upper() + s[1:]


@functools.lru_cache(maxsize=None)
def class_names():
    """Definition name -> client-node class name: <Version><Name>, and <Group><Version><Name>
    where several API groups define that name."""
    base = {}
    for d in definitions():
        group, version, name = _parts(d)
        base[d] = _cap(version) + name
    count = {}
    for b in base.values():
        count[b] = count.get(b, 0) + 1
    return {d: (_cap(_parts(d)[0]) + b if count[b] > 1 else b) for d, b in base.items()}


def _ref(s):
    return s['$ref'].rsplit('/', 1)[-1]


def _type_of(ps, defs, names):
    """(type string, format, quantity) of a property schema."""
    if '$ref' in ps:
        d = _ref(ps)
        if d == QUANTITY:
            return 'string', '', True
        if d in SPECIAL:
            return SPECIAL[d], '', False
        if 'properties' not in defs.get(d, {}):
            return 'any', '', False
        return names[d], '', False
    t = ps.get('type')
    if isinstance(t, list):
        t = next((x for x in t if x != 'null'), None)
    fmt = ps.get('format', '')
    if t == 'array':
        item, ifmt, q = _type_of(ps.get('items', {}), defs, names)
        return f'Array<{item}>', ifmt, q
    if t == 'object':
        ap = ps.get('additionalProperties')
        if isinstance(ap, dict):
            val, vfmt, q = _type_of(ap, defs, names)
            return f'{{ [key: string]: {val}; }}', vfmt, q
        return 'any', '', False
    if t == 'string':
        if fmt == 'date-time':
            return 'Date', '', False
        return 'string', fmt if fmt == 'byte' else '', False
    if t == 'integer':
        return 'number', fmt, False
    if t == 'number':
        return 'number', fmt, False
    if t == 'boolean':
        return 'boolean', '', False
    return 'any', '', False


def load_models():
    """Model class -> {'fields': {name: (type, format, quantity)}, 'required': [name]}."""
    defs = definitions()
    names = class_names()
    models = {}
    for d, s in defs.items():
        if 'properties' not in s:
            continue
        fields = {k: _type_of(ps, defs, names) for k, ps in s['properties'].items()}
        models[names[d]] = {'fields': fields, 'required': list(s.get('required', []))}
    for cls, m in CRD_MODELS.items():
        fields = {}
        for k, t in m['fields'].items():
            fields[k] = ('number', t[7:], False) if t.startswith('number:') else (t, '', False)
        models[cls] = {'fields': fields, 'required': list(m['required'])}
    return models


def _api_file(gv):
    """The client-node API class a group/version's calls are in (its kinds list in that order)."""
    group, _, version = gv.rpartition('/')
    parts = (group.replace('.k8s.io', '') or 'core').split('.')
    return ''.join(_cap(p) for p in parts) + _cap(version) + 'Api.js'


def load_kinds():
    """"<apiVersion> <kind>" -> {'model', 'namespaced'}: every kind of the release that can be
    created, and the custom resources above."""
    names = class_names()
    found = []
    for d, s in definitions().items():
        if 'properties' not in s:
            continue
        for gvk in s.get('x-kubernetes-group-version-kind', []):
            kind = gvk['kind']
            if kind.endswith('List') or kind in NOT_CREATABLE:
                continue
            gv = f'{gvk["group"]}/{gvk["version"]}' if gvk['group'] else gvk['version']
            found.append((_api_file(gv), f'{gv} {kind}', names[d], kind not in CLUSTER_SCOPED))
    kinds = {}
    for _, key, model, namespaced in sorted(found):
        kinds[key] = {'model': model, 'namespaced': namespaced}
    kinds.update(CRD_KINDS)
    return kinds


# --- kubernetes-validate itself, as a second opinion ----------------------------------------------

def library_errors(obj):
    """The problem kubernetes-validate's own strict validation (kubernetes_validate.validate,
    jsonschema) finds in a built-in object, as (path segments, message); [] when none or when it
    has no schema for the kind."""
    import kubernetes_validate
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [(list(e.absolute_path), e.message)]
    except kubernetes_validate.SchemaNotFoundError:
        return []
    return []
