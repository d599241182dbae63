"""The sandbox cluster's object store: in-memory CRUD with resourceVersions, uids and
generations, optimistic concurrency, watches that replay history, cascading deletes.

Single-threaded: use it only from the event loop that serves the API. The store copies
what it is given; the dicts it returns are its own and must be treated as read-only."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from delivery.sandbox.resources import (
    FieldError,
    ResourceRegistry,
    ResourceType,
    apply_defaults,
    initial_status,
    shape_errors,
    timestamp,
    validation_errors,
)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
LOG_LINES_KEPT = 2000


class ApiError(Exception):
    """A failed API request, answered to the client as a `Status` body with its HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details or {}
        self.headers = headers or {}

    def status(self) -> dict:
        """The `Status` object of this error."""
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def _details(rtype: ResourceType, name: str) -> dict:
    details = {"name": name, "group": rtype.group, "kind": rtype.plural}
    return {k: v for k, v in details.items() if v}


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rtype.group_resource} "{name}" not found', _details(rtype, name))


def already_exists(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rtype.group_resource} "{name}" already exists', _details(rtype, name))


def conflict(rtype: ResourceType, name: str, why: str = "the object has been modified; please apply your "
             "changes to the latest version and try again") -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rtype.group_resource} "{name}": {why}',
                    _details(rtype, name))


def invalid(rtype: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    qualified_kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    listed = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    details = {**_details(rtype, name), "kind": rtype.kind, "causes": [e.cause() for e in errors]}
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {listed}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def deep_copy(value: object) -> object:
    """A copy of a JSON-like value, much cheaper than copy.deepcopy; null fields are left
    out, as when the real server decodes a body into its typed objects."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def random_suffix(length: int = 5) -> str:
    """Random characters for generated names, from the alphabet Kubernetes uses."""
    return "".join(random.choices(NAME_SUFFIX_ALPHABET, k=length))


@dataclass(frozen=True)
class StoreEvent:
    """One change: ADDED, MODIFIED or DELETED `object` of `resource`; `previous` before it."""

    type: str
    resource: str
    object: dict
    previous: dict | None

    @property
    def revision(self) -> int:
        return int(self.object["metadata"]["resourceVersion"])

    @property
    def namespace(self) -> str:
        return self.object["metadata"].get("namespace", "")


class StoreWatch:
    """A subscription to changes of one resource (None: all) in one namespace (None: all).

    Events arrive on `queue`; None on the queue means the store is shutting down."""

    def __init__(self, store: ObjectStore, resource: str | None, namespace: str | None) -> None:
        self.resource, self.namespace = resource, namespace
        self.queue: asyncio.Queue[StoreEvent | None] = asyncio.Queue()
        self._store = store

    def wants(self, event: StoreEvent) -> bool:
        return ((self.resource is None or event.resource == self.resource)
                and (self.namespace is None or event.namespace == self.namespace))

    def close(self) -> None:
        self._store._watches.discard(self)


class ContainerLog:
    """The most recent lines a container wrote, and how many it wrote in all."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self.written = 0

    def after(self, seen: int) -> list[str]:
        """The lines written after the first `seen` (as many as are still kept)."""
        fresh = min(self.written - seen, len(self.lines))
        return list(self.lines)[len(self.lines) - fresh:] if fresh > 0 else []


class ObjectStore:
    """Every object of the sandbox cluster, by resource, namespace and name."""

    def __init__(self, registry: ResourceRegistry | None = None, history_limit: int = 20000) -> None:
        self.registry = registry or ResourceRegistry()
        self._objects: dict[str, dict[str, dict[str, dict]]] = {t.plural: {} for t in self.registry}
        self._revision = 0
        self._history: deque[StoreEvent] = deque()
        self._history_limit = history_limit
        self._compacted = 0  # changes up to this revision can no longer be replayed
        self._watches: set[StoreWatch] = set()
        self._logs: dict[tuple[str, str], dict[str, ContainerLog]] = {}
        self._previous_logs: dict[tuple[str, str], dict[str, ContainerLog]] = {}  # each container's last run
        self._services_created = 0
        for namespace in SYSTEM_NAMESPACES:
            self.create("namespaces", {"metadata": {"name": namespace}})

    @property
    def revision(self) -> int:
        """The cluster-wide resourceVersion of the latest change."""
        return self._revision

    def resource_type(self, resource: str) -> ResourceType:
        rtype = self.registry.by_plural(resource)
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rtype

    # --- reads ---------------------------------------------------------------------------

    def get_object(self, resource: str, namespace: str | None, name: str) -> dict | None:
        """The stored object, or None; `namespace` is ignored for cluster-scoped resources."""
        rtype = self.resource_type(resource)
        bucket = self._objects[rtype.plural].get((namespace or "") if rtype.namespaced else "")
        return bucket.get(name) if bucket else None

    def list_objects(self, resource: str, namespace: str | None = None) -> list[dict]:
        """The stored objects of `resource`, in one namespace or (None) in all."""
        rtype = self.resource_type(resource)
        buckets = self._objects[rtype.plural]
        if namespace is not None and rtype.namespaced:
            return list(buckets.get(namespace, {}).values())
        return [obj for bucket in list(buckets.values()) for obj in list(bucket.values())]

    # --- writes --------------------------------------------------------------------------

    def create(self, resource: str, obj: dict, *, dry_run: bool = False) -> dict:
        """Store a new object; the namespace comes from its metadata."""
        rtype = self.resource_type(resource)
        obj = self._owned_copy(rtype, obj)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{random_suffix()}"
        namespace = self._namespace_for_create(rtype, meta)
        obj["apiVersion"], obj["kind"] = rtype.api_version(), rtype.kind
        apply_defaults(rtype, obj)
        errors = validation_errors(rtype, obj)
        if errors:
            raise invalid(rtype, str(meta.get("name") or ""), errors)
        if meta["name"] in self._objects[resource].get(namespace, {}):
            raise already_exists(rtype, meta["name"])
        for key in ("resourceVersion", "deletionTimestamp", "selfLink", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = timestamp()
        if rtype.tracks_generation:
            meta["generation"] = 1
        if rtype.has_status:
            obj["status"] = initial_status(rtype)
        if resource == "services":
            self._allocate_cluster_ip(obj["spec"], dry_run)
        if dry_run:
            return obj
        return self._commit("ADDED", rtype, obj, None)

    def update(self, resource: str, obj: dict, *, subresource: str | None = None, dry_run: bool = False) -> dict:
        """Replace an object (or only its status, with `subresource="status"`).

        A `metadata.resourceVersion` in `obj` must match the stored one (409 otherwise);
        an update that changes nothing is not written and returns the stored object."""
        rtype = self.resource_type(resource)
        obj = self._owned_copy(rtype, obj)
        meta = obj["metadata"]
        name = str(meta.get("name") or "")
        current = self.get_object(resource, meta.get("namespace"), name)
        if current is None:
            raise not_found(rtype, name)
        old_meta = current["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise conflict(rtype, name)
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            raise conflict(rtype, name, f"Precondition failed: UID in precondition: {meta['uid']}, "
                                        f"UID in object meta: {old_meta['uid']}")
        if subresource == "status":
            new = {**current, "metadata": dict(old_meta), "status": obj.get("status") or {}}
        else:
            new = self._updated_object(rtype, obj, current)
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if new == current or dry_run:
            return current if new == current else new
        return self._commit("MODIFIED", rtype, new, current)

    def delete(self, resource: str, namespace: str | None, name: str, *, propagation: str = "Background",
               precondition_uid: str | None = None, precondition_version: str | None = None,
               dry_run: bool = False) -> dict:
        """Remove an object and, unless orphaned, everything it owns; returns its last state."""
        rtype = self.resource_type(resource)
        if propagation not in PROPAGATION_POLICIES:
            raise bad_request(f"propagationPolicy: Unsupported value: {propagation!r}: supported values: "
                              + ", ".join(f'"{p}"' for p in PROPAGATION_POLICIES))
        current = self.get_object(resource, namespace, name)
        if current is None:
            raise not_found(rtype, name)
        meta = current["metadata"]
        if precondition_uid and precondition_uid != meta["uid"]:
            raise conflict(rtype, name, f"Precondition failed: UID in precondition: {precondition_uid}, "
                                        f"UID in object meta: {meta['uid']}")
        if precondition_version and precondition_version != meta["resourceVersion"]:
            raise conflict(rtype, name, "Precondition failed: ResourceVersion in precondition: "
                                        f"{precondition_version}, ResourceVersion in object meta: "
                                        f"{meta['resourceVersion']}")
        if dry_run:
            return current
        dependents = list(self._dependents(current))
        if propagation == "Foreground":
            self._delete_all(dependents, propagation)
        deleted = self._commit("DELETED", rtype, {**current, "metadata": dict(meta)}, current)
        if resource == "namespaces":
            self._delete_all(self._namespace_contents(name), "Background")
        if propagation == "Background":
            self._delete_all(dependents, propagation)
        elif propagation == "Orphan":
            for dependent_resource, dependent in dependents:
                refs = [r for r in dependent["metadata"].get("ownerReferences", []) if r.get("uid") != meta["uid"]]
                self.update(dependent_resource, {**dependent, "metadata": {**dependent["metadata"],
                                                                           "ownerReferences": refs}})
        if resource == "pods":
            self._logs.pop((meta.get("namespace", ""), name), None)
            self._previous_logs.pop((meta.get("namespace", ""), name), None)
        return deleted

    # --- watches -------------------------------------------------------------------------

    def watch(self, resource: str | None = None, namespace: str | None = None,
              since: int | None = None) -> StoreWatch:
        """Subscribe to changes; with `since`, first replay every change after that revision.

        Raises a 410 Expired ApiError when `since` is older than the history kept."""
        subscription = StoreWatch(self, resource, namespace)
        if since is not None:
            if since < self._compacted:
                raise expired(f"too old resource version: {since} ({self._compacted + 1})")
            replay = []
            for event in reversed(self._history):
                if event.revision <= since:
                    break
                if subscription.wants(event):
                    replay.append(event)
            for event in reversed(replay):
                subscription.queue.put_nowait(event)
        self._watches.add(subscription)
        return subscription

    def close_watches(self) -> None:
        """End every open watch (the store is shutting down)."""
        for subscription in list(self._watches):
            subscription.queue.put_nowait(None)
        self._watches.clear()

    # --- pod logs ------------------------------------------------------------------------

    def append_log(self, namespace: str, pod: str, container: str, line: str) -> None:
        """Add a line to what a pod's container has written (dropped with the pod)."""
        if self.get_object("pods", namespace, pod) is None:
            return
        log = self._logs.setdefault((namespace, pod), {}).setdefault(container, ContainerLog())
        log.lines.append(line)
        log.written += 1

    def container_log(self, namespace: str, pod: str, container: str) -> ContainerLog:
        """What a pod's container has written so far (empty when nothing)."""
        return self._logs.get((namespace, pod), {}).get(container) or ContainerLog()

    def previous_log(self, namespace: str, pod: str, container: str) -> ContainerLog | None:
        """What a pod's container wrote in its last terminated run; None when it never restarted."""
        return self._previous_logs.get((namespace, pod), {}).get(container)

    def restart_log(self, namespace: str, pod: str, container: str) -> None:
        """A container starts again: what it wrote becomes its previous log, and it writes a new one."""
        if self.get_object("pods", namespace, pod) is None:
            return
        current = self._logs.setdefault((namespace, pod), {}).pop(container, None) or ContainerLog()
        self._previous_logs.setdefault((namespace, pod), {})[container] = current

    # --- internals ------------------------------------------------------------------------

    @staticmethod
    def _owned_copy(rtype: ResourceType, obj: dict) -> dict:
        owned = deep_copy(obj)
        problems = shape_errors(rtype, owned) if isinstance(owned, dict) else ["the body must be an object"]
        if problems:
            raise bad_request(f'{rtype.kind} in version "{rtype.versions[0]}" cannot be handled as a {rtype.kind}: '
                              + "; ".join(problems))
        owned.setdefault("metadata", {})
        return owned

    def _namespace_for_create(self, rtype: ResourceType, meta: dict) -> str:
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return ""
        namespace = meta.get("namespace")
        if not namespace:
            raise bad_request("the namespace of the object is required for a namespaced resource")
        if self.get_object("namespaces", None, namespace) is None:
            raise not_found(self.resource_type("namespaces"), namespace)
        return namespace

    def _updated_object(self, rtype: ResourceType, obj: dict, current: dict) -> dict:
        old_meta, meta = current["metadata"], obj["metadata"]
        obj["apiVersion"], obj["kind"] = rtype.api_version(), rtype.kind
        for key in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if rtype.has_status:
            obj["status"] = current.get("status", {})
        if rtype.plural == "services":
            for key in ("clusterIP", "clusterIPs"):
                if key in current.get("spec", {}) and not obj.setdefault("spec", {}).get(key):
                    obj["spec"][key] = current["spec"][key]
        apply_defaults(rtype, obj)
        errors = validation_errors(rtype, obj, current)
        if errors:
            raise invalid(rtype, meta.get("name", ""), errors)
        if rtype.tracks_generation and _desired_state(obj) != _desired_state(current):
            meta["generation"] = old_meta.get("generation", 0) + 1
        return obj

    def _allocate_cluster_ip(self, spec: dict, dry_run: bool) -> None:
        if spec.get("type") == "ExternalName" or spec.get("clusterIP"):
            return
        number = self._services_created + 1
        if not dry_run:
            self._services_created = number
        spec["clusterIP"] = f"10.96.{number // 250}.{number % 250 + 2}"
        spec["clusterIPs"] = [spec["clusterIP"]]

    def _commit(self, kind: str, rtype: ResourceType, obj: dict, previous: dict | None) -> dict:
        self._revision += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._revision)
        bucket = self._objects[rtype.plural].setdefault(meta.get("namespace", ""), {})
        if kind == "DELETED":
            bucket.pop(meta["name"], None)
        else:
            bucket[meta["name"]] = obj
        event = StoreEvent(kind, rtype.plural, obj, previous)
        self._history.append(event)
        if len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().revision
        for subscription in self._watches:
            if subscription.wants(event):
                subscription.queue.put_nowait(event)
        return obj

    def _dependents(self, owner: dict) -> Iterator[tuple[str, dict]]:
        uid = owner["metadata"]["uid"]
        namespace = owner["metadata"].get("namespace")
        for rtype in self.registry:
            for obj in self.list_objects(rtype.plural, namespace):
                if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []):
                    yield rtype.plural, obj

    def _namespace_contents(self, namespace: str) -> list[tuple[str, dict]]:
        return [(t.plural, obj) for t in self.registry if t.namespaced
                for obj in self.list_objects(t.plural, namespace)]

    def _delete_all(self, objects: list[tuple[str, dict]], propagation: str) -> None:
        for resource, obj in objects:
            meta = obj["metadata"]
            current = self.get_object(resource, meta.get("namespace"), meta["name"])
            if current is not None and current["metadata"]["uid"] == meta["uid"]:
                self.delete(resource, meta.get("namespace"), meta["name"], propagation=propagation)


def _desired_state(obj: dict) -> dict:
    """Everything but metadata and status: what `metadata.generation` counts changes of."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
