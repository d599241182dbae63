"""The resources the sandbox API server serves: names, kinds, scopes and verbs, and for
each its defaults, validation, discovery entries, OpenAPI paths and table columns."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

OBJECT_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = {"status": ("get", "patch", "update"), "scale": ("get", "patch", "update"), "log": ("get",)}
SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-sandbox", "gitCommit": "sandbox",
                  "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23",
                  "compiler": "gc", "platform": "linux/amd64"}


def timestamp(at: float | None = None) -> str:
    """An RFC 3339 UTC timestamp with second precision, as Kubernetes writes them."""
    moment = time.time() if at is None else at
    return datetime.fromtimestamp(int(moment), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (None when absent or malformed)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """An age the way kubectl prints it (`45s`, `3m10s`, `5h`, `2d3h`)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 120:
        return f"{max(s, 0)}s"
    minutes, hours = s // 60, s // 3600
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    return f"{hours // 24}d" if hours < 24 * 730 else f"{hours // 8760}y"


# --- table columns -----------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of the server-side Table `kubectl get` prints."""

    name: str
    cell: Callable[[dict], object]
    type: str = "string"
    priority: int = 0

    def definition(self) -> dict:
        """The column as a Table `columnDefinitions` entry."""
        fmt = "name" if self.name == "Name" else ""
        return {"name": self.name, "type": self.type, "format": fmt, "description": self.name, "priority": self.priority}


def _dig(obj: dict, *path: str, default: object = None) -> object:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def _age(obj: dict) -> str:
    created = parse_timestamp(_dig(obj, "metadata", "creationTimestamp"))
    return "<unknown>" if created is None else human_duration(time.time() - created)


def _containers(obj: dict) -> list[dict]:
    return _dig(obj, "spec", "template", "spec", "containers", default=[]) or []


def _joined(values: Iterable[object]) -> str:
    text = ",".join(str(v) for v in values)
    return text or "<none>"


def selector_text(selector: dict | None) -> str:
    """The query-string form of a `{matchLabels, matchExpressions}` object."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        key, values = expression.get("key"), ",".join(expression.get("values") or ())
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": f"{key}", "DoesNotExist": f"!{key}"}.get(expression.get("operator"), ""))
    return ",".join(p for p in parts if p)


def _selector_column(obj: dict) -> str:
    selector = _dig(obj, "spec", "selector", default={}) or {}
    if obj.get("kind") == "Service":
        selector = {"matchLabels": selector}
    return selector_text(selector) or "<none>"


def _pod_ready(pod: dict) -> str:
    statuses = _dig(pod, "status", "containerStatuses", default=[]) or []
    total = len(_dig(pod, "spec", "containers", default=[]) or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(pod: dict) -> str:
    """kubectl's STATUS: a container's waiting or terminated reason (CrashLoopBackOff, OOMKilled) over the phase."""
    if _dig(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    for status in reversed(_dig(pod, "status", "containerStatuses", default=[]) or []):
        state = status.get("state") or {}
        reason = (state.get("waiting") or state.get("terminated") or {}).get("reason")
        if reason:
            return str(reason)
    return str(_dig(pod, "status", "phase", default="Pending"))


def _service_ports(svc: dict) -> str:
    ports = _dig(svc, "spec", "ports", default=[]) or []
    return _joined(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports)


def _event_object(event: dict) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_last_seen(event: dict) -> str:
    seen = parse_timestamp(event.get("lastTimestamp") or event.get("eventTime"))
    return "<unknown>" if seen is None else human_duration(time.time() - seen)


def _job_status(job: dict) -> str:
    for condition in _dig(job, "status", "conditions", default=[]) or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return "Running"


def _ingress_hosts(ing: dict) -> str:
    return _joined(rule.get("host", "*") for rule in _dig(ing, "spec", "rules", default=[]) or [])


def _json_cell(*path: str) -> Callable[[dict], object]:
    def cell(obj: dict) -> object:
        value = _dig(obj, *path)
        return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else value
    return cell


NAME = Column("Name", lambda o: _dig(o, "metadata", "name"))
AGE = Column("Age", _age)

_WORKLOAD_WIDE = (
    Column("Containers", lambda o: _joined(c.get("name") for c in _containers(o)), priority=1),
    Column("Images", lambda o: _joined(c.get("image") for c in _containers(o)), priority=1),
    Column("Selector", _selector_column, priority=1),
)

# --- the resource table ----------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    """One served resource: where it lives in the API and how the server treats it."""

    group: str
    versions: tuple[str, ...]  # the first is the preferred and storage version
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    custom: bool = False  # stored generically, like a CRD: no strategic merge patch
    tracks_generation: bool = False
    returns_deleted_object: bool = False
    columns: tuple[Column, ...] = (NAME, AGE)
    verbs: tuple[str, ...] = OBJECT_VERBS
    stored: bool = True  # False: computed on read (metrics.k8s.io), never in the object store

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_resource(self) -> str:
        """`deployments.apps`, or `pods` for the core group, as errors name resources."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str | None = None) -> str:
        """`apps/v1` or `v1`: the apiVersion of objects served in `version`."""
        chosen = version or self.versions[0]
        return f"{self.group}/{chosen}" if self.group else chosen

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


_V1 = ("v1",)
_ISTIO = ("v1beta1", "v1", "v1alpha3")


def _node_status(node: dict) -> str:
    ready = next((c for c in _dig(node, "status", "conditions", default=[]) or [] if c.get("type") == "Ready"), {})
    status = "Ready" if ready.get("status") == "True" else "NotReady"
    return f"{status},SchedulingDisabled" if _dig(node, "spec", "unschedulable") else status


def _node_roles(node: dict) -> str:
    labels = _dig(node, "metadata", "labels", default={}) or {}
    roles = sorted({k.partition("/")[2] for k in labels if k.startswith("node-role.kubernetes.io/")}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    return _joined(roles)


def _node_address(kind: str) -> Callable[[dict], object]:
    return lambda o: next((a.get("address") for a in _dig(o, "status", "addresses", default=[]) or []
                           if a.get("type") == kind), "<none>")


_METRICS_VERBS = ("get", "list")

DEFAULT_RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", _V1, "namespaces", "Namespace", namespaced=False, short_names=("ns",),
                 subresources=("status",),
                 columns=(NAME, Column("Status", lambda o: _dig(o, "status", "phase")), AGE)),
    ResourceType("", _V1, "pods", "Pod", short_names=("po",), subresources=("status", "log"),
                 categories=("all",), returns_deleted_object=True,
                 columns=(NAME, Column("Ready", _pod_ready), Column("Status", _pod_status),
                          Column("Restarts", lambda o: sum(s.get("restartCount", 0) for s in
                                 _dig(o, "status", "containerStatuses", default=[]) or []), type="integer"),
                          AGE, Column("IP", lambda o: _dig(o, "status", "podIP", default="<none>"), priority=1),
                          Column("Node", lambda o: _dig(o, "spec", "nodeName", default="<none>"), priority=1))),
    ResourceType("", _V1, "nodes", "Node", namespaced=False, short_names=("no",), subresources=("status",),
                 columns=(NAME, Column("Status", _node_status), Column("Roles", _node_roles), AGE,
                          Column("Version", lambda o: _dig(o, "status", "nodeInfo", "kubeletVersion")),
                          Column("Internal-IP", _node_address("InternalIP"), priority=1),
                          Column("External-IP", _node_address("ExternalIP"), priority=1),
                          Column("OS-Image", lambda o: _dig(o, "status", "nodeInfo", "osImage"), priority=1),
                          Column("Kernel-Version", lambda o: _dig(o, "status", "nodeInfo", "kernelVersion"),
                                 priority=1),
                          Column("Container-Runtime",
                                 lambda o: _dig(o, "status", "nodeInfo", "containerRuntimeVersion"), priority=1))),
    ResourceType("", _V1, "services", "Service", short_names=("svc",), subresources=("status",),
                 categories=("all",), returns_deleted_object=True,
                 columns=(NAME, Column("Type", lambda o: _dig(o, "spec", "type")),
                          Column("Cluster-IP", lambda o: _dig(o, "spec", "clusterIP", default="<none>")),
                          Column("External-IP", lambda o: _joined(_dig(o, "spec", "externalIPs", default=[]) or [])),
                          Column("Port(s)", _service_ports), AGE,
                          Column("Selector", _selector_column, priority=1))),
    ResourceType("", _V1, "events", "Event", short_names=("ev",),
                 columns=(Column("Last Seen", _event_last_seen), Column("Type", lambda o: o.get("type")),
                          Column("Reason", lambda o: o.get("reason")), Column("Object", _event_object),
                          Column("Message", lambda o: o.get("message")),
                          Column("Count", lambda o: o.get("count", 1), type="integer", priority=1),
                          Column("Name", lambda o: _dig(o, "metadata", "name"), priority=1))),
    ResourceType("", _V1, "configmaps", "ConfigMap", short_names=("cm",),
                 columns=(NAME, Column("Data", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                                       type="integer"), AGE)),
    ResourceType("", _V1, "secrets", "Secret",
                 columns=(NAME, Column("Type", lambda o: o.get("type")),
                          Column("Data", lambda o: len(o.get("data") or {}), type="integer"), AGE)),
    ResourceType("apps", _V1, "deployments", "Deployment", short_names=("deploy",),
                 subresources=("status", "scale"), categories=("all",), tracks_generation=True,
                 columns=(NAME,
                          Column("Ready", lambda o: f"{_dig(o, 'status', 'readyReplicas', default=0)}/"
                                                    f"{_dig(o, 'spec', 'replicas', default=0)}"),
                          Column("Up-to-date", lambda o: _dig(o, "status", "updatedReplicas", default=0), type="integer"),
                          Column("Available", lambda o: _dig(o, "status", "availableReplicas", default=0),
                                 type="integer"),
                          AGE, *_WORKLOAD_WIDE)),
    ResourceType("apps", _V1, "replicasets", "ReplicaSet", short_names=("rs",),
                 subresources=("status", "scale"), categories=("all",), tracks_generation=True,
                 columns=(NAME, Column("Desired", lambda o: _dig(o, "spec", "replicas", default=0), type="integer"),
                          Column("Current", lambda o: _dig(o, "status", "replicas", default=0), type="integer"),
                          Column("Ready", lambda o: _dig(o, "status", "readyReplicas", default=0), type="integer"),
                          AGE, *_WORKLOAD_WIDE)),
    ResourceType("networking.k8s.io", _V1, "ingresses", "Ingress", short_names=("ing",),
                 subresources=("status",), tracks_generation=True,
                 columns=(NAME, Column("Class", lambda o: _dig(o, "spec", "ingressClassName", default="<none>")),
                          Column("Hosts", _ingress_hosts),
                          Column("Address", lambda o: _joined(i.get("ip") or i.get("hostname") for i in
                                 _dig(o, "status", "loadBalancer", "ingress", default=[]) or [])),
                          Column("Ports", lambda o: "80, 443" if _dig(o, "spec", "tls") else "80"), AGE)),
    ResourceType("batch", _V1, "jobs", "Job", subresources=("status",), categories=("all",),
                 tracks_generation=True,
                 columns=(NAME, Column("Status", _job_status),
                          Column("Completions", lambda o: f"{_dig(o, 'status', 'succeeded', default=0)}/"
                                                          f"{_dig(o, 'spec', 'completions', default=1)}"),
                          AGE, *_WORKLOAD_WIDE)),
    ResourceType("coordination.k8s.io", _V1, "leases", "Lease",
                 columns=(NAME, Column("Holder", lambda o: _dig(o, "spec", "holderIdentity", default="")), AGE)),
    ResourceType("policy", _V1, "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",),
                 subresources=("status",), tracks_generation=True,
                 columns=(NAME, Column("Min Available", lambda o: _dig(o, "spec", "minAvailable", default="N/A")),
                          Column("Max Unavailable", lambda o: _dig(o, "spec", "maxUnavailable", default="N/A")), AGE)),
    ResourceType("networking.istio.io", _ISTIO, "virtualservices", "VirtualService", short_names=("vs",),
                 subresources=("status",), categories=("istio-io", "networking-istio-io"), custom=True,
                 tracks_generation=True,
                 columns=(NAME, Column("Gateways", _json_cell("spec", "gateways")),
                          Column("Hosts", _json_cell("spec", "hosts")), AGE)),
    ResourceType("networking.istio.io", _ISTIO, "destinationrules", "DestinationRule", short_names=("dr",),
                 subresources=("status",), categories=("istio-io", "networking-istio-io"), custom=True,
                 tracks_generation=True,
                 columns=(NAME, Column("Host", lambda o: _dig(o, "spec", "host")), AGE)),
    ResourceType("flagger.app", ("v1beta1",), "canaries", "Canary", short_names=("canary",),
                 subresources=("status",), categories=("all",), custom=True, tracks_generation=True,
                 columns=(NAME, Column("Status", lambda o: _dig(o, "status", "phase")),
                          Column("Weight", lambda o: _dig(o, "status", "canaryWeight"), type="integer"),
                          Column("LastTransitionTime", lambda o: _dig(o, "status", "lastTransitionTime")))),
    # ArgoCD's CRDs have no status subresource: its controller writes status with the object.
    ResourceType("argoproj.io", ("v1alpha1",), "applications", "Application", short_names=("app", "apps"),
                 custom=True, tracks_generation=True,
                 columns=(NAME, Column("Sync Status", lambda o: _dig(o, "status", "sync", "status")),
                          Column("Health Status", lambda o: _dig(o, "status", "health", "status")), AGE,
                          Column("Revision", lambda o: _dig(o, "status", "sync", "revision"), priority=10),
                          Column("Project", lambda o: _dig(o, "spec", "project"), priority=10))),
    ResourceType("argoproj.io", ("v1alpha1",), "appprojects", "AppProject", short_names=("appproj", "appprojs"),
                 custom=True, tracks_generation=True),
    # metrics-server's aggregated API: read-only, computed from the pods' behavior on each request
    ResourceType("metrics.k8s.io", ("v1beta1",), "pods", "PodMetrics", verbs=_METRICS_VERBS, stored=False,
                 columns=(NAME, Column("CPU", lambda o: _joined(c["usage"]["cpu"] for c in o.get("containers", []))),
                          Column("Memory", lambda o: _joined(c["usage"]["memory"] for c in o.get("containers", []))),
                          Column("Window", lambda o: o.get("window")))),
    ResourceType("metrics.k8s.io", ("v1beta1",), "nodes", "NodeMetrics", namespaced=False, verbs=_METRICS_VERBS,
                 stored=False,
                 columns=(NAME, Column("CPU", lambda o: _dig(o, "usage", "cpu")),
                          Column("Memory", lambda o: _dig(o, "usage", "memory")),
                          Column("Window", lambda o: o.get("window")))),
)


class ResourceRegistry:
    """Looks served resources up by URL coordinates, plural name or kind; iterating yields the stored ones."""

    def __init__(self, types: Iterable[ResourceType] = DEFAULT_RESOURCES) -> None:
        self._served = tuple(types)
        self._by_plural = {t.plural: t for t in self._served if t.stored}

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._by_plural.values())

    def by_plural(self, plural: str) -> ResourceType | None:
        """The stored resource named `plural`."""
        return self._by_plural.get(plural)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The resource served at `/apis/<group>/<version>/<plural>` (core group: "")."""
        return next((t for t in self._served if t.plural == plural and t.group == group and version in t.versions),
                    None)

    def group_versions(self) -> dict[str, list[str]]:
        """Every served group (core as "") with its versions, preferred first."""
        groups: dict[str, list[str]] = {}
        for rtype in self._served:
            versions = groups.setdefault(rtype.group, [])
            versions.extend(v for v in rtype.versions if v not in versions)
        return groups

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._served if t.group == group and version in t.versions]


# --- shapes: the JSON types of the fields the server and its controllers read --------------


@dataclass(frozen=True)
class MapOf:
    """An object whose every value has the given type(s), like labels."""

    values: type | tuple[type, ...]


_STRINGS = MapOf(str)
_QUANTITIES = MapOf((str, int, float))
_INT_OR_STRING = (int, str)
_CONDITIONS = [{"type": str, "status": str, "reason": str, "message": str, "lastUpdateTime": str,
                "lastTransitionTime": str}]
_METADATA = {"name": str, "generateName": str, "namespace": str, "labels": _STRINGS, "annotations": _STRINGS,
             "ownerReferences": [{"apiVersion": str, "kind": str, "name": str, "uid": str, "controller": bool}],
             "finalizers": [str], "resourceVersion": str, "uid": str}
_CONTAINER = {"name": str, "image": str, "command": [str], "args": [str], "imagePullPolicy": str,
              "ports": [{"containerPort": int, "name": str, "protocol": str}],
              "env": [{"name": str, "value": str, "valueFrom": dict}],
              "resources": {"limits": _QUANTITIES, "requests": _QUANTITIES},
              "volumeMounts": [{"name": str, "mountPath": str}]}
_POD_SPEC = {"containers": [_CONTAINER], "initContainers": [_CONTAINER], "volumes": [{"name": str}],
             "nodeName": str, "restartPolicy": str, "terminationGracePeriodSeconds": int}
_TEMPLATE = {"metadata": _METADATA, "spec": _POD_SPEC}
_SELECTOR = {"matchLabels": _STRINGS, "matchExpressions": [{"key": str, "operator": str, "values": [str]}]}
_WORKLOAD_STATUS = {"replicas": int, "updatedReplicas": int, "readyReplicas": int, "availableReplicas": int,
                    "observedGeneration": int, "conditions": _CONDITIONS}
_LOAD_BALANCER = {"loadBalancer": {"ingress": [{"ip": str, "hostname": str}]}}
_SHAPES: dict[str, dict] = {
    "deployments": {"spec": {"replicas": int, "selector": _SELECTOR, "template": _TEMPLATE, "paused": bool,
                             "strategy": {"type": str, "rollingUpdate": {"maxSurge": _INT_OR_STRING,
                                                                         "maxUnavailable": _INT_OR_STRING}},
                             "minReadySeconds": int, "revisionHistoryLimit": int, "progressDeadlineSeconds": int},
                    "status": _WORKLOAD_STATUS},
    "replicasets": {"spec": {"replicas": int, "selector": _SELECTOR, "template": _TEMPLATE, "minReadySeconds": int},
                    "status": _WORKLOAD_STATUS},
    "pods": {"spec": _POD_SPEC,
             "status": {"phase": str, "podIP": str, "conditions": _CONDITIONS,
                        "containerStatuses": [{"name": str, "image": str, "ready": bool, "restartCount": int}]}},
    "jobs": {"spec": {"template": _TEMPLATE, "completions": int, "parallelism": int, "backoffLimit": int},
             "status": {"succeeded": int, "active": int, "conditions": _CONDITIONS}},
    "services": {"spec": {"type": str, "selector": _STRINGS, "clusterIP": str, "clusterIPs": [str],
                          "externalIPs": [str],
                          "ports": [{"name": str, "port": int, "targetPort": _INT_OR_STRING, "protocol": str}]},
                 "status": _LOAD_BALANCER},
    "ingresses": {"spec": {"ingressClassName": str, "rules": [{"host": str}]}, "status": _LOAD_BALANCER},
    "namespaces": {"spec": {"finalizers": [str]}, "status": {"phase": str}},
    "configmaps": {"data": _STRINGS, "binaryData": _STRINGS},
    "secrets": {"data": _STRINGS, "stringData": _STRINGS, "type": str},
    "events": {"involvedObject": {"kind": str, "name": str, "namespace": str, "uid": str}, "count": int,
               "reason": str, "message": str, "type": str, "lastTimestamp": str},
    "leases": {"spec": {"holderIdentity": str}},
    "applications": {"spec": {"project": str, "source": {"repoURL": str, "path": str, "targetRevision": str},
                              "destination": {"server": str, "name": str, "namespace": str},
                              "revisionHistoryLimit": int,
                              "syncPolicy": {"automated": {"prune": bool, "selfHeal": bool, "enabled": bool},
                                             "syncOptions": [str]},
                              "ignoreDifferences": [{"group": str, "kind": str, "name": str, "namespace": str,
                                                     "jsonPointers": [str], "jqPathExpressions": [str]}]},
                     "operation": {"sync": {"revision": str, "prune": bool, "syncOptions": [str]},
                                   "initiatedBy": {"username": str, "automated": bool}}},
    "appprojects": {"spec": {"syncWindows": [{"kind": str, "schedule": str, "duration": str, "timeZone": str,
                                              "applications": [str], "namespaces": [str], "clusters": [str],
                                              "manualSync": bool, "andOperator": bool}]}},
}


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", bool: "a boolean", float: "a number", dict: "an object",
             list: "a list"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _shape_errors(value: object, shape: object, path: str) -> list[str]:
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path or 'the body'} must be an object"]
        return [e for key, inner in shape.items() if key in value
                for e in _shape_errors(value[key], inner, f"{path}.{key}" if path else key)]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path} must be a list"]
        return [e for i, item in enumerate(value) for e in _shape_errors(item, shape[0], f"{path}[{i}]")]
    if isinstance(shape, MapOf):
        if not isinstance(value, dict):
            return [f"{path} must be an object"]
        return [e for key, item in value.items() for e in _shape_errors(item, shape.values, f"{path}.{key}")]
    types = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
        return []
    return [f"{path} must be {_type_name(types)}"]


def shape_errors(rtype: ResourceType, obj: dict) -> list[str]:
    """Fields whose JSON type is wrong (a list where an object belongs, a string for
    replicas …): the real server cannot even decode such a body."""
    generic = {"spec": dict} if rtype.custom else {}
    return _shape_errors(obj, {"metadata": _METADATA, "status": dict, **generic, **_SHAPES.get(rtype.plural, {})}, "")


# --- defaults ----------------------------------------------------------------------------


def _default_pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _default_template(obj: dict) -> None:
    template = _dig(obj, "spec", "template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        _default_pod_spec(template["spec"])


def _default_deployment(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxSurge", "25%")
        rolling.setdefault("maxUnavailable", "25%")
    _default_template(obj)


def _default_replicaset(obj: dict) -> None:
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    _default_template(obj)


def _default_job(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    _default_template(obj)


def _default_service(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _default_namespace(obj: dict) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    labels = obj["metadata"].setdefault("labels", {})
    labels.setdefault("kubernetes.io/metadata.name", obj["metadata"].get("name"))


_DEFAULTERS: dict[str, Callable[[dict], None]] = {
    "deployments": _default_deployment,
    "replicasets": _default_replicaset,
    "jobs": _default_job,
    "pods": lambda obj: _default_pod_spec(obj.setdefault("spec", {})),
    "services": _default_service,
    "namespaces": _default_namespace,
    "secrets": lambda obj: obj.setdefault("type", "Opaque"),
}


def apply_defaults(rtype: ResourceType, obj: dict) -> None:
    """Fill the fields the real API server defaults (replicas, strategy, protocols …), in place."""
    defaulter = _DEFAULTERS.get(rtype.plural)
    if defaulter is not None:
        defaulter(obj)


def initial_status(rtype: ResourceType) -> dict:
    """The status a freshly created object starts with (clients cannot set it on create)."""
    return {"pods": {"phase": "Pending", "qosClass": "BestEffort"}, "namespaces": {"phase": "Active"},
            "services": {"loadBalancer": {}}}.get(rtype.plural, {})


# --- validation ---------------------------------------------------------------------------

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class FieldError:
    """One reason an object is invalid, as a Status `details.causes` entry."""

    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported
    message: str

    def cause(self) -> dict:
        return {"reason": self.reason, "message": f"{self.message}", "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _required(field: str) -> FieldError:
    return FieldError(field, "FieldValueRequired", "Required value")


def _invalid(field: str, value: object, why: str) -> FieldError:
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {why}")


def _pod_spec_errors(spec: object, field: str) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [_required(field)]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [_required(f"{field}.containers")]
    errors: list[FieldError] = []
    for i, container in enumerate(containers):
        if not isinstance(container, dict):
            errors.append(_invalid(f"{field}.containers[{i}]", container, "must be an object"))
            continue
        if not container.get("name"):
            errors.append(_required(f"{field}.containers[{i}].name"))
        if not container.get("image"):
            errors.append(_required(f"{field}.containers[{i}].image"))
    return errors


def _selector_labels(selector: object) -> dict | None:
    if not isinstance(selector, dict):
        return None
    labels = selector.get("matchLabels") or {}
    return labels if isinstance(labels, dict) and (labels or selector.get("matchExpressions")) else None


def _workload_errors(obj: dict) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    errors = []
    replicas = spec.get("replicas", 0)
    if not isinstance(replicas, int) or replicas < 0:
        errors.append(_invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = _selector_labels(spec.get("selector"))
    if selector is None:
        errors.append(_required("spec.selector"))
    template_labels = _dig(spec, "template", "metadata", "labels", default={}) or {}
    if selector and any(template_labels.get(k) != v for k, v in selector.items()):
        errors.append(_invalid("spec.template.metadata.labels", template_labels,
                               "`selector` does not match template `labels`"))
    errors.extend(_pod_spec_errors(_dig(spec, "template", "spec"), "spec.template.spec"))
    if obj.get("kind") == "Deployment":
        errors.extend(_strategy_errors(spec.get("strategy") or {}))
    return errors


_PERCENT = re.compile(r"^\d+%$")


def _strategy_errors(strategy: dict) -> list[FieldError]:
    if strategy.get("type") not in ("RollingUpdate", "Recreate"):
        return [FieldError("spec.strategy.type", "FieldValueNotSupported",
                           f"Unsupported value: {json.dumps(strategy.get('type'))}: supported values: "
                           '"Recreate", "RollingUpdate"')]
    errors = []
    rolling = strategy.get("rollingUpdate") or {}
    for name in ("maxSurge", "maxUnavailable"):
        value = rolling.get(name, 0)
        if (isinstance(value, int) and value < 0) or (isinstance(value, str) and not _PERCENT.match(value)):
            errors.append(_invalid(f"spec.strategy.rollingUpdate.{name}", value,
                                   "must be a non-negative integer or a percentage like '25%'"))
    if rolling and not errors and all(str(rolling.get(n, 0)).rstrip("%") == "0" for n in ("maxSurge", "maxUnavailable")):
        errors.append(_invalid("spec.strategy.rollingUpdate.maxUnavailable", rolling.get("maxUnavailable", 0),
                               "may not be 0 when `maxSurge` is 0"))
    return errors


def _service_errors(obj: dict) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = []
    for i, port in enumerate(spec.get("ports") or []):
        number = port.get("port") if isinstance(port, dict) else None
        if not isinstance(number, int) or not 0 < number < 65536:
            errors.append(_invalid(f"spec.ports[{i}].port", number, "must be between 1 and 65535, inclusive"))
    if not isinstance(spec.get("selector", {}), dict):
        errors.append(_invalid("spec.selector", spec.get("selector"), "must be a map of labels"))
    return errors


def _application_errors(obj: dict) -> list[FieldError]:
    """What ArgoCD's Application CRD schema requires: spec.destination and spec.project."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    return [_required(f"spec.{name}") for name in ("destination", "project") if name not in spec]


_VALIDATORS: dict[str, Callable[[dict], list[FieldError]]] = {
    "deployments": _workload_errors,
    "replicasets": _workload_errors,
    "pods": lambda obj: _pod_spec_errors(obj.get("spec"), "spec"),
    "jobs": lambda obj: _pod_spec_errors(_dig(obj, "spec", "template", "spec"), "spec.template.spec"),
    "services": _service_errors,
    "applications": _application_errors,
}


def validation_errors(rtype: ResourceType, obj: dict, previous: dict | None = None) -> list[FieldError]:
    """What is wrong with `obj` (empty when valid); `previous` is the object being updated."""
    name = _dig(obj, "metadata", "name")
    errors: list[FieldError] = []
    if not name:
        errors.append(FieldError("metadata.name", "FieldValueRequired",
                                 "Required value: name or generateName is required"))
    elif not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        errors.append(_invalid("metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case "
                               "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                               "character"))
    validator = _VALIDATORS.get(rtype.plural)
    if validator is not None:
        errors.extend(validator(obj))
    if previous is not None and rtype.plural in ("deployments", "replicasets"):
        old, new = _dig(previous, "spec", "selector"), _dig(obj, "spec", "selector")
        if old != new:
            errors.append(_invalid("spec.selector", new, "field is immutable"))
    return errors


# --- discovery and OpenAPI ------------------------------------------------------------------


def api_versions() -> dict:
    """`GET /api`: the core group's versions."""
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}


def _group_entry(name: str, versions: list[str]) -> dict:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: ResourceRegistry) -> dict:
    """`GET /apis`: every named group with its versions (legacy, unaggregated discovery)."""
    groups = [_group_entry(g, vs) for g, vs in registry.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: ResourceRegistry, group: str) -> dict | None:
    """`GET /apis/<group>`, or None when the group is not served."""
    versions = registry.group_versions().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def api_resource_list(registry: ResourceRegistry, group: str, version: str) -> dict | None:
    """`GET /api/v1` or `/apis/<group>/<version>`: the resources and subresources served there."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources = []
    for t in types:
        entry = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
                 "verbs": list(t.verbs)}
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        resources.append(entry)
        for sub in t.subresources:
            sub_entry = {"name": f"{t.plural}/{sub}", "singularName": "", "namespaced": t.namespaced,
                         "kind": t.kind, "verbs": list(SUBRESOURCE_VERBS[sub])}
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1", kind="Scale")
            resources.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def openapi_v3_index(registry: ResourceRegistry) -> dict:
    """`GET /openapi/v3`: where each group version's document lives."""
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            path = _group_version_prefix(group, version).lstrip("/")
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash=sandbox"}
    return {"paths": paths}


# An OpenAPI v2 document that defines no schemas, as JSON and as the protobuf message
# (field 1, swagger = "2.0") kubectl before 1.28 asks for. With no schema for a kind,
# kubectl skips client-side validation and builds patches from its compiled-in types.
OPENAPI_V2_JSON = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
                   "paths": {}, "definitions": {}}
OPENAPI_V2_PROTOBUF = b"\x0a\x032.0"
OPENAPI_V2_PROTOBUF_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _group_version_prefix(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


_PATCH_BODY_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def openapi_v3_document(registry: ResourceRegistry, group: str, version: str) -> dict | None:
    """The OpenAPI v3 document of one group version: each resource's paths, with the
    PATCH operation tagged by its group/version/kind and taking `fieldValidation`.

    kubectl reads it to learn that the server validates fields itself; the PATCH
    bodies listed omit strategic merge on purpose, so kubectl computes strategic merge
    patches of built-in kinds from its compiled-in types and uses merge patches for
    custom resources, exactly as against a real cluster."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    prefix = _group_version_prefix(group, version)
    paths: dict[str, dict] = {}
    for t in types:
        gvk = {"group": group, "version": version, "kind": t.kind}
        scope = f"{prefix}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{prefix}/{t.plural}"
        query = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                 {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}}]
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}
        operation = {"x-kubernetes-group-version-kind": gvk, "parameters": query, "responses": ok}
        body = {"content": {media: {"schema": {"type": "object"}} for media in _PATCH_BODY_TYPES}}
        collection = {"get": {**operation, "operationId": f"list{t.kind}"},
                      "post": {**operation, "operationId": f"create{t.kind}"}}
        item = {"get": {**operation, "operationId": f"read{t.kind}"},
                "put": {**operation, "operationId": f"replace{t.kind}"},
                "patch": {**operation, "operationId": f"patch{t.kind}", "requestBody": body},
                "delete": {**operation, "operationId": f"delete{t.kind}"}}
        allowed = {"get"} | ({"post", "put", "patch", "delete"} if "create" in t.verbs else set())
        paths[scope] = {m: op for m, op in collection.items() if m in allowed}
        paths[f"{scope}/{{name}}"] = {m: op for m, op in item.items() if m in allowed}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


# --- tables -----------------------------------------------------------------------------------


def table(rtype: ResourceType, objects: list[dict], resource_version: str, include_object: str,
          with_definitions: bool = True) -> dict:
    """A meta.k8s.io/v1 Table of `objects`, as `kubectl get` asks the server for."""
    rows = []
    for obj in objects:
        if include_object == "Object":
            embedded = obj
        elif include_object == "None":
            embedded = None
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata", {})}
        cells = [column.cell(obj) for column in rtype.columns]
        rows.append({"cells": [c if c is not None else "<none>" for c in cells], "object": embedded})
    definitions = [c.definition() for c in rtype.columns] if with_definitions else []
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": definitions, "rows": rows}
