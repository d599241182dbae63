"""ArgoCD's sync for the sandbox: a render's objects compared with the live ones (ignoring configured
differences), applied to the store as kubectl apply would, and pruned when dropped from git."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from delivery.sandbox.argocd_repo import MANIFEST_ERROR, SourceError
from delivery.sandbox.resources import ResourceRegistry, ResourceType
from delivery.sandbox.store import ApiError, ObjectStore, deep_copy

TRACKING_ID = "argocd.argoproj.io/tracking-id"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_JQ_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_-]*)|\.?\["([^"]*)"\]|\.?\[(\d*)\]')
# gitops-engine's kind order: what a sync applies first (and prunes last); other kinds come after.
KIND_ORDER = ("Namespace", "PodDisruptionBudget", "Secret", "ConfigMap", "Service", "Pod", "ReplicaSet",
              "Deployment", "Job", "Ingress")


@dataclass(frozen=True)
class Managed:
    """One object an Application's render asks for, as it is applied (namespaced, with annotations)."""

    rtype: ResourceType
    manifest: dict

    @property
    def namespace(self) -> str:
        return self.manifest["metadata"].get("namespace", "")

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]


@dataclass(frozen=True)
class Render:
    """The target state of an Application: the commit its revision resolved to and the objects there."""

    sha: str
    managed: tuple[Managed, ...]


def tracking_id(instance: str, rtype: ResourceType, namespace: str, name: str) -> str:
    """ArgoCD's annotation tracking id: `<app>:<group>/<kind>:<namespace>/<name>`."""
    return f"{instance}:{rtype.group}/{rtype.kind}:{namespace}/{name}"


def managed_objects(registry: ResourceRegistry, documents: Sequence[object], namespace: str,
                    instance: str) -> tuple[Managed, ...]:
    """The rendered documents as the objects to apply: in the destination namespace unless they name
    one (cluster-scoped kinds in none), tracked by annotation, with kubectl's last-applied configuration."""
    managed = []
    for document in documents:
        if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
            raise SourceError(f"{MANIFEST_ERROR}a rendered document is not a Kubernetes object: {document!r:.200}")
        group, _, version = str(document.get("apiVersion", "")).rpartition("/")
        kind, name = document.get("kind"), document["metadata"].get("name", "")
        rtype = next((t for t in registry if t.group == group and t.kind == kind and version in t.versions), None)
        if rtype is None:
            raise SourceError(f"The Kubernetes API could not find {group}/{kind} for requested resource "
                              f"{namespace}/{name}. Make sure the \"{kind}\" CRD is installed on the destination "
                              "cluster.")
        manifest = deep_copy(document)
        meta = manifest["metadata"]
        if rtype.namespaced:
            meta.setdefault("namespace", namespace)
        else:
            meta.pop("namespace", None)
        annotations = meta.setdefault("annotations", {})
        annotations[TRACKING_ID] = tracking_id(instance, rtype, meta.get("namespace", ""), name)
        annotations[LAST_APPLIED] = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
        managed.append(Managed(rtype, manifest))
    return tuple(sorted(managed, key=lambda m: apply_order(m.rtype)))


def apply_order(rtype: ResourceType) -> int:
    """Where a kind comes in a sync: gitops-engine's order, unknown kinds last."""
    return KIND_ORDER.index(rtype.kind) if rtype.kind in KIND_ORDER else len(KIND_ORDER)


def tracked(store: ObjectStore, instance: str) -> Iterator[tuple[ResourceType, dict]]:
    """The live objects whose tracking id says this Application applied them (copies elsewhere do not count)."""
    for rtype in store.registry:
        for obj in store.list_objects(rtype.plural):
            meta = obj["metadata"]
            wanted = tracking_id(instance, rtype, meta.get("namespace", ""), meta["name"])
            if (meta.get("annotations") or {}).get(TRACKING_ID) == wanted:
                yield rtype, obj


# --- ignoreDifferences ------------------------------------------------------------------------

FieldPath = tuple[str | None, ...]  # keys or list indices; None: every element (jq's `[]`)


def json_pointer(pointer: str) -> FieldPath:
    """An RFC 6901 JSON pointer as a field path (`~1` is `/`, `~0` is `~`)."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise SourceError(f"invalid JSON pointer {pointer!r} in ignoreDifferences: it must start with '/'")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def jq_path(expression: str) -> FieldPath:
    """The simple jq paths the sandbox supports: `.a.b`, `.["a.b"]`, `.a[0]` and `.a[]`."""
    steps: list[str | None] = []
    position, text = 0, expression.strip()
    while position < len(text):
        step = _JQ_STEP.match(text, position)
        if step is None:
            raise SourceError(f"unsupported jqPathExpression {expression!r} in ignoreDifferences: the sandbox "
                              "supports only paths like .spec.selector, .a[0].b, .a[].b and .[\"key\"]")
        key, quoted, index = step.groups()
        steps.append(key if key is not None else quoted if quoted is not None else (index or None))
        position = step.end()
    return tuple(steps)


@dataclass(frozen=True)
class IgnoreRule:
    """One spec.ignoreDifferences entry: which objects (group and kind globs, exact name and namespace)
    and which of their fields."""

    group: str
    kind: str
    name: str
    namespace: str
    paths: tuple[FieldPath, ...]

    @classmethod
    def of(cls, entry: dict) -> IgnoreRule:
        paths = [json_pointer(p) for p in entry.get("jsonPointers") or []]
        paths += [jq_path(e) for e in entry.get("jqPathExpressions") or []]
        return cls(entry.get("group", ""), entry.get("kind", ""), entry.get("name", ""),
                   entry.get("namespace", ""), tuple(paths))

    def matches(self, rtype: ResourceType, namespace: str, name: str) -> bool:
        return (fnmatch.fnmatchcase(rtype.group, self.group) and fnmatch.fnmatchcase(rtype.kind, self.kind)
                and self.name in ("", name) and self.namespace in ("", namespace))


def ignored_paths(rules: Sequence[IgnoreRule], rtype: ResourceType, namespace: str, name: str) -> list[FieldPath]:
    return [p for r in rules if r.matches(rtype, namespace, name) for p in r.paths]


_MISSING = object()


def _child(value: object, key: str) -> object:
    if isinstance(value, dict):
        return value.get(key, _MISSING)
    if isinstance(value, list) and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    return _MISSING


def _concrete(value: object, path: FieldPath) -> Iterator[tuple[str, ...]]:
    """The paths without wildcards that `path` reaches in `value`."""
    if not path:
        yield ()
        return
    head, rest = path[0], path[1:]
    keys = [head] if head is not None else (list(value) if isinstance(value, dict)
                                            else [str(i) for i in range(len(value))] if isinstance(value, list)
                                            else [])
    for key in keys:
        child = _child(value, key)
        if child is not _MISSING:
            yield from ((key, *tail) for tail in _concrete(child, rest))


def _put(target: dict, path: tuple[str, ...], value: object) -> None:
    """Set (or, with _MISSING, remove) the field at `path`, creating missing objects on the way."""
    parent: object = target
    for key in path[:-1]:
        child = _child(parent, key)
        if child is _MISSING:
            if not isinstance(parent, dict) or value is _MISSING:
                return
            child = parent[key] = {}
        parent = child
    last = path[-1]
    if isinstance(parent, dict):
        if value is _MISSING:
            parent.pop(last, None)
        else:
            parent[last] = value
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        if value is _MISSING:
            del parent[int(last)]
        else:
            parent[int(last)] = value


def keep_live(candidate: dict, live: dict, paths: Sequence[FieldPath]) -> dict:
    """`candidate` with every field under `paths` as it is in `live` (absent where live lacks it)."""
    result = deep_copy(candidate)
    concrete = {c for p in paths for source in (live, candidate) for c in _concrete(source, p) if c}
    for path in sorted(concrete, reverse=True):
        found: object = live
        for key in path:
            found = _child(found, key)
        _put(result, path, deep_copy(found))
    return result


# --- compare, apply, prune ----------------------------------------------------------------------


def three_way(live: dict, last: dict, desired: dict) -> dict:
    """`desired` applied over `live` as kubectl apply does with merge patches: fields the last applied
    configuration had but `desired` dropped are removed, fields only live has are kept, lists replaced."""
    result = {k: v for k, v in live.items() if k not in last or k in desired}
    for key, value in desired.items():
        before = last.get(key)
        if isinstance(value, dict) and isinstance(live.get(key), dict):
            result[key] = three_way(live[key], before if isinstance(before, dict) else {}, value)
        else:
            result[key] = value
    return result


def _last_applied(live: dict) -> dict:
    try:
        last = json.loads((live["metadata"].get("annotations") or {}).get(LAST_APPLIED, "{}"))
    except ValueError:
        return {}
    return last if isinstance(last, dict) else {}


def merged(managed: Managed, live: dict, keep: Sequence[FieldPath]) -> dict:
    """What applying `managed` over `live` writes, the fields under `keep` left as live has them."""
    candidate = three_way(live, _last_applied(live), managed.manifest)
    return keep_live(candidate, live, keep) if keep else candidate


def _without_last_applied(obj: dict) -> dict:
    annotations = {k: v for k, v in (obj["metadata"].get("annotations") or {}).items() if k != LAST_APPLIED}
    return {**obj, "metadata": {**obj["metadata"], "annotations": annotations}}


def in_sync(store: ObjectStore, managed: Managed, live: dict | None, ignored: Sequence[FieldPath]) -> bool:
    """Whether applying `managed` would change nothing but ignored fields (the store normalizes both)."""
    if live is None:
        return False
    try:
        result = store.update(managed.rtype.plural, merged(managed, live, ignored), dry_run=True)
    except ApiError:
        return False
    return _without_last_applied(result) == _without_last_applied(live)


def object_ref(rtype: ResourceType, name: str) -> str:
    """`deployment.apps/trip-service` or `service/trip-service`, as kubectl names what it applied."""
    return f"{rtype.singular}.{rtype.group}/{name}" if rtype.group else f"{rtype.singular}/{name}"


def apply(store: ObjectStore, managed: Managed, keep: Sequence[FieldPath]) -> tuple[str, str]:
    """Create or update one object: its sync status (Synced or SyncFailed) and kubectl's message."""
    rtype = managed.rtype
    live = store.get_object(rtype.plural, managed.namespace, managed.name)
    try:
        if live is None:
            store.create(rtype.plural, managed.manifest)
            return "Synced", f"{object_ref(rtype, managed.name)} created"
        written = store.update(rtype.plural, merged(managed, live, keep))
    except ApiError as error:
        return "SyncFailed", error.message
    changed = written["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"]
    return "Synced", f"{object_ref(rtype, managed.name)} {'configured' if changed else 'unchanged'}"


def prune(store: ObjectStore, rtype: ResourceType, namespace: str, name: str) -> tuple[str, str]:
    """Delete an object the render no longer has: Pruned, or SyncFailed with the API's message."""
    try:
        store.delete(rtype.plural, namespace or None, name)
    except ApiError as error:
        return "SyncFailed", error.message
    return "Pruned", "pruned"


@dataclass(frozen=True)
class ResourceState:
    """One object of a comparison: `desired` None when only live (it requires pruning), `live` None when missing."""

    rtype: ResourceType
    namespace: str
    name: str
    desired: Managed | None
    live: dict | None
    synced: bool

    def ref(self) -> dict:
        return resource_ref(self.rtype, self.namespace, self.name)


def resource_ref(rtype: ResourceType, namespace: str, name: str) -> dict:
    """group, version, kind, namespace and name, as ArgoCD's status lists resources."""
    return {"group": rtype.group, "version": rtype.versions[0], "kind": rtype.kind, "namespace": namespace,
            "name": name}


def compare(store: ObjectStore, desired: Sequence[Managed], rules: Sequence[IgnoreRule],
            instance: str) -> list[ResourceState]:
    """Each desired object against its live one, then the tracked live objects no longer desired."""
    states = []
    for m in desired:
        live = store.get_object(m.rtype.plural, m.namespace, m.name)
        ignored = ignored_paths(rules, m.rtype, m.namespace, m.name)
        states.append(ResourceState(m.rtype, m.namespace, m.name, m, live, in_sync(store, m, live, ignored)))
    wanted = {(s.rtype.plural, s.namespace, s.name) for s in states}
    for rtype, live in tracked(store, instance):
        namespace, name = live["metadata"].get("namespace", ""), live["metadata"]["name"]
        if (rtype.plural, namespace, name) not in wanted:
            states.append(ResourceState(rtype, namespace, name, None, live, False))
    return states
