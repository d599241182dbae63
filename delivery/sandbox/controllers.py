"""The sandbox's controllers: Deployments roll out through ReplicaSets, ReplicaSets keep
their Pods, a simulated kubelet starts Pods and probes their readiness by image
behavior, Jobs complete, and each records the Events kubectl shows."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from delivery.sandbox.applog import app_name, profile_of, spring_line, started_line, startup_lines
from delivery.sandbox.behavior import BehaviorBook, manifest_digest, split_image
from delivery.sandbox.nodes import host_ip, least_busy_node, register_nodes
from delivery.sandbox.resources import parse_timestamp, timestamp
from delivery.sandbox.reconciler import StoreReconciler
from delivery.sandbox.restarts import ContainerRestarts, container_id
from delivery.sandbox.store import NAME_SUFFIX_ALPHABET, ApiError, ObjectStore, StoreEvent, deep_copy

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
TEMPLATE_HASH = "pod-template-hash"
ANNOTATIONS_NOT_COPIED = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
                                    DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"})
READINESS_FAILURE = "Readiness probe failed: HTTP probe failed with statuscode: 503"


# --- small helpers over objects -----------------------------------------------------------


def _meta(obj: dict) -> dict:
    return obj["metadata"]


def _key(obj: dict) -> tuple[str, str]:
    return _meta(obj).get("namespace", ""), _meta(obj)["name"]


def _controller_ref(obj: dict) -> dict | None:
    return next((r for r in _meta(obj).get("ownerReferences") or [] if r.get("controller")), None)


def _controlled_by(obj: dict, owner_uid: str) -> bool:
    ref = _controller_ref(obj)
    return ref is not None and ref.get("uid") == owner_uid


def _owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": _meta(owner)["name"],
            "uid": _meta(owner)["uid"], "controller": True, "blockOwnerDeletion": True}


def _spec_replicas(obj: dict) -> int:
    return int(obj.get("spec", {}).get("replicas", 1))


def _status_count(obj: dict, name: str) -> int:
    return int((obj.get("status") or {}).get(name, 0))


def _pods_counted(rs: dict) -> int:
    """A scaled-down ReplicaSet's pods count against maxSurge until its controller has removed them."""
    return max(_spec_replicas(rs), _status_count(rs, "replicas"))


def _available_kept(rs: dict) -> int:
    """Available pods a ReplicaSet keeps: those beyond its spec are about to go."""
    return min(_spec_replicas(rs), _status_count(rs, "availableReplicas"))


def _revision(rs: dict) -> int:
    try:
        return int((_meta(rs).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _created_order(obj: dict) -> tuple[float, str]:
    return parse_timestamp(_meta(obj).get("creationTimestamp")) or 0.0, _meta(obj)["name"]


def _nonzero(counts: dict) -> dict:
    """Drop zero counts, as the API's `omitempty` status fields do."""
    return {k: v for k, v in counts.items() if v}


def _condition(obj: dict, kind: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def _pod_ready(pod: dict) -> bool:
    ready = _condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def _pod_available(pod: dict, min_ready_seconds: int, now: float) -> bool:
    if not _pod_ready(pod):
        return False
    since = parse_timestamp((_condition(pod, "Ready") or {}).get("lastTransitionTime")) or 0.0
    return min_ready_seconds == 0 or since + min_ready_seconds <= now


def _canonical(value: object) -> object:
    """A pod template without empty values, so templates equal in meaning compare equal
    whether they came from the store or back from a client's typed round trip."""
    if isinstance(value, dict):
        cleaned = {k: _canonical(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, False, "", {}, [])}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _template_without_hash(template: dict) -> object:
    labels = {k: v for k, v in (template.get("metadata") or {}).get("labels", {}).items() if k != TEMPLATE_HASH}
    return _canonical({**template, "metadata": {**(template.get("metadata") or {}), "labels": labels}})


def same_template(a: dict, b: dict) -> bool:
    """Whether two pod templates are equal, ignoring the pod-template-hash label."""
    return _template_without_hash(a) == _template_without_hash(b)


def template_hash(template: dict) -> str:
    """The pod-template-hash of a Deployment's pod template (10 name-safe characters)."""
    digest = hashlib.sha256(json.dumps(_template_without_hash(template), sort_keys=True).encode()).digest()
    return "".join(NAME_SUFFIX_ALPHABET[b % len(NAME_SUFFIX_ALPHABET)] for b in digest[:10])


def _resolve_count(value: object, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = total * float(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def surge_and_unavailable(deployment: dict) -> tuple[int, int]:
    """maxSurge (rounded up) and maxUnavailable (rounded down) as pod counts; never both 0."""
    spec = deployment.get("spec", {})
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        return 0, 0
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    replicas = _spec_replicas(deployment)
    surge = _resolve_count(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _resolve_count(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    return surge, 1 if surge == 0 and unavailable == 0 else unavailable


def _set_condition(conditions: list[dict], kind: str, status: str, reason: str, message: str, now: str,
                   refresh: bool = False) -> list[dict]:
    """Conditions with `kind` set; unchanged when status and reason already match (unless
    `refresh`, which moves lastUpdateTime); lastTransitionTime kept while status holds."""
    current = next((c for c in conditions if c.get("type") == kind), None)
    if current and current.get("status") == status and current.get("reason") == reason and not refresh:
        return conditions
    transition = current["lastTransitionTime"] if current and current.get("status") == status else now
    updated = {"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": transition,
               "reason": reason, "message": message}
    return [c for c in conditions if c.get("type") != kind] + [updated]


# --- events --------------------------------------------------------------------------------


class EventRecorder:
    """Writes core/v1 Events about objects, counting repeats of the same event."""

    def __init__(self, store: ObjectStore, ttl_seconds: float) -> None:
        self.store, self.ttl_seconds = store, ttl_seconds
        self._names: dict[tuple[str, str, str, str], str] = {}

    def record(self, obj: dict, kind: str, reason: str, message: str, component: str) -> None:
        """Record a Normal or Warning event about `obj` (best effort: never raises)."""
        meta = _meta(obj)
        namespace = meta.get("namespace") or "default"
        key = (meta.get("uid", ""), kind, reason, message)
        now = timestamp()
        existing = self.store.get_object("events", namespace, self._names.get(key, ""))
        try:
            if existing is not None:
                self.store.update("events", {**existing, "count": existing.get("count", 1) + 1, "lastTimestamp": now})
                return
            name = f"{meta['name']}.{time.time_ns():x}"
            node = (obj.get("spec") or {}).get("nodeName") if component == "kubelet" else None
            source = {"component": component, **({"host": node} if node else {})}
            self.store.create("events", {
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta["name"],
                                   "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion"),
                                   "resourceVersion": meta.get("resourceVersion")},
                "reason": reason, "message": message, "source": source, "type": kind, "count": 1,
                "firstTimestamp": now, "lastTimestamp": now, "reportingComponent": component,
                "reportingInstance": node or ""})
            self._names[key] = name
        except ApiError as error:  # e.g. the namespace is being deleted
            log.debug("event %s for %s not recorded: %s", reason, meta["name"], error.message)

    def prune(self, now: float) -> None:
        """Delete events not seen for longer than the TTL, as the real API server does."""
        for event in self.store.list_objects("events"):
            seen = parse_timestamp(event.get("lastTimestamp")) or 0.0
            if seen + self.ttl_seconds < now:
                self.store.delete("events", _meta(event)["namespace"], _meta(event)["name"])
        live = {_meta(e)["name"] for e in self.store.list_objects("events")}
        self._names = {k: v for k, v in self._names.items() if v in live}


# --- the kubelet ---------------------------------------------------------------------------


def _qos_class(containers: list[dict]) -> str:
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(r.get("limits", {}).get(k) and r.get("requests", r.get("limits", {})).get(k) == r["limits"][k]
                     for r in resources for k in ("cpu", "memory"))
    return "Guaranteed" if guaranteed else "Burstable"


@dataclass
class _ProbedPod:
    namespace: str
    name: str
    started: float  # loop time the containers started
    ready_at: float  # loop time the readiness probe first runs
    last_failure_report: float | None = None
    announced_ready: bool = False


class Kubelet:
    """Registers the node pool, schedules pods onto its least busy node, starts their containers, probes
    readiness (ready after the delay unless the image's behavior never gets ready) and restarts failed containers."""

    def __init__(self, store: ObjectStore, events: EventRecorder, behaviors: BehaviorBook, ready_delay: float,
                 probe_period: float, restart_backoff: float = 1.0) -> None:
        self.store, self.events, self.behaviors = store, events, behaviors
        self.ready_delay, self.probe_period = ready_delay, probe_period
        self.restarts = ContainerRestarts(store, events, behaviors, restart_backoff)
        self._pods: dict[str, _ProbedPod] = {}
        self._addresses_given = 0
        register_nodes(store)

    def start(self, namespace: str, name: str, now: float) -> None:
        """Bind a new pod to a node and run its containers (not yet ready)."""
        pod = self.store.get_object("pods", namespace, name)
        if pod is None or _meta(pod)["uid"] in self._pods:
            return
        uid = _meta(pod)["uid"]
        if (pod.get("status") or {}).get("phase") == "Running":  # already running before a controller restart
            self._pods[uid] = _ProbedPod(namespace, name, now, now)
            return
        if not pod["spec"].get("nodeName"):
            node = least_busy_node(self.store)
            pod = self.store.update("pods", {**pod, "spec": {**pod["spec"], "nodeName": node}})
            self.events.record(pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {node}",
                               "default-scheduler")
        started = timestamp()
        containers = pod["spec"].get("containers", [])
        self._addresses_given += 1
        ip = f"10.244.{self._addresses_given // 250}.{self._addresses_given % 250 + 2}"
        node_ip = host_ip(pod["spec"]["nodeName"])
        status = {"phase": "Running", "hostIP": node_ip, "hostIPs": [{"ip": node_ip}], "podIP": ip,
                  "podIPs": [{"ip": ip}], "startTime": started, "qosClass": _qos_class(containers),
                  "conditions": [], "containerStatuses": [self._container_status(uid, c, started) for c in containers]}
        status["conditions"] = self._conditions(status, unready=[c["name"] for c in containers], now=started)
        pod = self.store.update("pods", {**pod, "status": status}, subresource="status")
        for container in containers:
            image = container.get("image", "")
            self.events.record(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine',
                               "kubelet")
            self.events.record(pod, "Normal", "Created", f"Created container {container['name']}", "kubelet")
            self.events.record(pod, "Normal", "Started", f"Started container {container['name']}", "kubelet")
            for line in startup_lines(app_name(pod, container), image, profile_of(container)):
                self.store.append_log(namespace, name, container["name"], line)
        self._pods[uid] = _ProbedPod(namespace, name, now, now + self.ready_delay)

    def probe(self, now: float) -> None:
        """Kill and restart failed containers, then run the readiness probes that are due, updating pod status
        and recording failures."""
        for uid, probed in list(self._pods.items()):
            pod = self.store.get_object("pods", probed.namespace, probed.name)
            if pod is None or _meta(pod)["uid"] != uid:
                del self._pods[uid]
                self.restarts.forget(uid)
                continue
            pod = self._restart_failed(pod, probed, now)
            if now < probed.ready_at:
                continue
            containers = pod["spec"].get("containers", [])
            running = {s.get("name") for s in pod["status"].get("containerStatuses") or []
                       if "running" in (s.get("state") or {})}
            unready = [c["name"] for c in containers if c["name"] not in running
                       or not self.behaviors.for_image(c.get("image", ""), probed.namespace).becomes_ready]
            self._set_readiness(pod, unready)
            probing = [c for c in containers if c["name"] in unready and c["name"] in running]
            if probing and (probed.last_failure_report is None
                            or now - probed.last_failure_report >= self.probe_period):
                probed.last_failure_report = now
                self.events.record(pod, "Warning", "Unhealthy", READINESS_FAILURE, "kubelet")
                for container in probing:
                    self.store.append_log(probed.namespace, probed.name, container["name"], spring_line(
                        "WARN", app_name(pod, container), "nio-8080-exec-1", "o.s.b.a.health.HealthEndpointSupport",
                        "Readiness group is OUT_OF_SERVICE: /actuator/health/readiness answered 503"))
            if not unready and not probed.announced_ready:
                probed.announced_ready = True
                for container in containers:
                    took = max(now - probed.started, 0.0) + 3.2
                    self.store.append_log(probed.namespace, probed.name, container["name"],
                                          started_line(app_name(pod, container), took))

    def _restart_failed(self, pod: dict, probed: _ProbedPod, now: float) -> dict:
        """The pod after its containers that leaked past their memory limit or exited were killed or restarted."""
        changed = self.restarts.step(pod, time.time())
        if changed is None:
            return pod
        statuses, restarted = changed
        status = pod.get("status") or {}
        unready = [s["name"] for s in statuses if not s.get("ready")]
        conditions = self._conditions(status, unready, timestamp())
        if restarted:
            probed.started, probed.ready_at, probed.announced_ready = now, now + self.ready_delay, False
        return self.store.update("pods", {**pod, "status": {**status, "containerStatuses": statuses,
                                                            "conditions": conditions}}, subresource="status")

    @staticmethod
    def _container_status(uid: str, container: dict, started: str) -> dict:
        image = container.get("image", "")
        repository, tag, digest = split_image(image)
        image_id = f"{repository}@{digest or manifest_digest(repository, tag or 'latest')}"
        return {"name": container.get("name"), "image": image, "imageID": image_id,
                "containerID": container_id(uid, container.get("name", ""), 0), "ready": False, "started": True,
                "restartCount": 0, "state": {"running": {"startedAt": started}}, "lastState": {}}

    @staticmethod
    def _conditions(status: dict, unready: list[str], now: str) -> list[dict]:
        previous = {c["type"]: c for c in status.get("conditions") or []}

        def condition(kind: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict:
            value = "True" if ok else "False"
            old = previous.get(kind)
            since = old["lastTransitionTime"] if old and old.get("status") == value else now
            entry = {"type": kind, "status": value, "lastTransitionTime": since}
            return {**entry, "reason": reason, "message": message} if not ok and reason else entry

        waiting = f"containers with unready status: [{' '.join(unready)}]"
        return [condition("PodReadyToStartContainers", True), condition("Initialized", True),
                condition("Ready", not unready, "ContainersNotReady", waiting),
                condition("ContainersReady", not unready, "ContainersNotReady", waiting),
                condition("PodScheduled", True)]

    def _set_readiness(self, pod: dict, unready: list[str]) -> None:
        status = pod.get("status") or {}
        statuses = [{**s, "ready": s.get("name") not in unready} for s in status.get("containerStatuses") or []]
        conditions = self._conditions(status, unready, timestamp())
        if statuses != status.get("containerStatuses") or conditions != status.get("conditions"):
            self.store.update("pods", {**pod, "status": {**status, "containerStatuses": statuses,
                                                         "conditions": conditions}}, subresource="status")


# --- ReplicaSets -----------------------------------------------------------------------------


class ReplicaSetController:
    """Keeps as many pods as a ReplicaSet asks for, and its status counts."""

    def __init__(self, store: ObjectStore, events: EventRecorder) -> None:
        self.store, self.events = store, events

    def reconcile(self, namespace: str, name: str, now: float) -> bool:
        """Create or delete pods and update status; True while a ready pod awaits minReadySeconds."""
        rs = self.store.get_object("replicasets", namespace, name)
        if rs is None:
            return False
        uid = _meta(rs)["uid"]
        pods = [p for p in self.store.list_objects("pods", namespace) if _controlled_by(p, uid)]
        missing = _spec_replicas(rs) - len(pods)
        for _ in range(missing):
            pods.append(self._create_pod(rs))
        if missing < 0:
            doomed = sorted(pods, key=lambda p: (_pod_ready(p), -_created_order(p)[0]))[:-missing]
            for pod in doomed:
                self._delete_pod(rs, pod)
            pods = [p for p in pods if p not in doomed]
        min_ready = int(rs["spec"].get("minReadySeconds", 0))
        template_labels = (rs["spec"].get("template", {}).get("metadata") or {}).get("labels") or {}
        ready = sum(1 for p in pods if _pod_ready(p))
        available = sum(1 for p in pods if _pod_available(p, min_ready, now))
        labelled = sum(1 for p in pods if template_labels.items() <= (_meta(p).get("labels") or {}).items())
        status = {"replicas": len(pods), **_nonzero({"fullyLabeledReplicas": labelled, "readyReplicas": ready,
                                                     "availableReplicas": available}),
                  "observedGeneration": _meta(rs).get("generation", 1)}
        if status != rs.get("status"):
            self.store.update("replicasets", {**rs, "status": status}, subresource="status")
        return ready > available

    def _create_pod(self, rs: dict) -> dict:
        template = rs["spec"].get("template", {})
        template_meta = template.get("metadata") or {}
        metadata = {"generateName": f"{_meta(rs)['name']}-", "namespace": _meta(rs)["namespace"],
                    "labels": template_meta.get("labels") or {}, "ownerReferences": [_owner_ref(rs)]}
        if template_meta.get("annotations"):
            metadata["annotations"] = template_meta["annotations"]
        pod = self.store.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                                         "spec": template.get("spec", {})})
        self.events.record(rs, "Normal", "SuccessfulCreate", f"Created pod: {_meta(pod)['name']}",
                           "replicaset-controller")
        return pod

    def _delete_pod(self, rs: dict, pod: dict) -> None:
        for container in pod["spec"].get("containers", []):
            self.events.record(pod, "Normal", "Killing", f"Stopping container {container.get('name')}", "kubelet")
        self.store.delete("pods", _meta(pod)["namespace"], _meta(pod)["name"])
        self.events.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {_meta(pod)['name']}",
                           "replicaset-controller")


# --- Deployments ------------------------------------------------------------------------------


class DeploymentController:
    """Rolls Deployments out through one ReplicaSet per pod template, with revisions,
    RollingUpdate (maxSurge / maxUnavailable) or Recreate, status and conditions."""

    def __init__(self, store: ObjectStore, events: EventRecorder) -> None:
        self.store, self.events = store, events

    def reconcile(self, namespace: str, name: str) -> None:
        deployment = self.store.get_object("deployments", namespace, name)
        if deployment is None:
            return
        uid = _meta(deployment)["uid"]
        owned = [rs for rs in self.store.list_objects("replicasets", namespace) if _controlled_by(rs, uid)]
        new_rs = next((rs for rs in owned if same_template(rs["spec"]["template"], deployment["spec"]["template"])),
                      None)
        olds = sorted((rs for rs in owned if rs is not new_rs), key=_created_order)
        if deployment["spec"].get("paused"):
            self._sync_status(deployment, new_rs, olds, created=False)
            return
        created = new_rs is None
        new_rs = self._create_replicaset(deployment, olds) if created else self._renew_revision(deployment, new_rs, olds)
        deployment = self._record_revision(deployment, new_rs)
        if (deployment["spec"].get("strategy") or {}).get("type") == "Recreate":
            new_rs, olds = self._recreate(deployment, new_rs, olds)
        else:
            new_rs, olds = self._roll(deployment, new_rs, olds)
        olds = self._clean_up(deployment, olds)
        self._sync_status(deployment, new_rs, olds, created)

    def in_progress(self) -> list[tuple[str, str]]:
        """Deployments whose rollout is neither complete nor timed out (checked on every tick)."""
        settled = ("NewReplicaSetAvailable", "ProgressDeadlineExceeded", "DeploymentPaused")
        return [_key(d) for d in self.store.list_objects("deployments")
                if (_condition(d, "Progressing") or {}).get("reason") not in settled
                or _meta(d).get("generation") != (d.get("status") or {}).get("observedGeneration")]

    # --- ReplicaSets of a deployment

    def _copied_annotations(self, deployment: dict) -> dict:
        return {k: v for k, v in (_meta(deployment).get("annotations") or {}).items()
                if k not in ANNOTATIONS_NOT_COPIED}

    def _replica_annotations(self, deployment: dict) -> dict:
        surge, _ = surge_and_unavailable(deployment)
        replicas = _spec_replicas(deployment)
        return {DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + surge)}

    def _create_replicaset(self, deployment: dict, olds: list[dict]) -> dict:
        spec = deployment["spec"]
        pod_hash = template_hash(spec["template"])
        template = deep_copy(spec["template"])
        template_meta = template.setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), TEMPLATE_HASH: pod_hash}
        selector = deep_copy(spec["selector"])
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), TEMPLATE_HASH: pod_hash}
        revision = max((_revision(rs) for rs in olds), default=0) + 1
        name = f"{_meta(deployment)['name']}-{pod_hash}"
        annotations = {**self._copied_annotations(deployment), **self._replica_annotations(deployment),
                       REVISION: str(revision)}
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": name, "namespace": _meta(deployment)["namespace"],
                           "labels": template_meta["labels"], "annotations": annotations,
                           "ownerReferences": [_owner_ref(deployment)]},
              "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector,
                       "template": template}}
        stale = self.store.get_object("replicasets", _meta(deployment)["namespace"], name)
        if stale is not None:  # an orphan (its deployment was deleted with Orphan): adopt it
            return self.store.update("replicasets", rs)
        return self.store.create("replicasets", rs)

    def _renew_revision(self, deployment: dict, new_rs: dict, olds: list[dict]) -> dict:
        """Give a reused ReplicaSet (a rollback) the newest revision, remembering its old one."""
        annotations = dict(_meta(new_rs).get("annotations") or {})
        newest_old = max((_revision(rs) for rs in olds), default=0)
        if _revision(new_rs) <= newest_old:
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, str(_revision(new_rs))])
            annotations[REVISION] = str(newest_old + 1)
        annotations.update(self._copied_annotations(deployment))
        if annotations == _meta(new_rs).get("annotations"):
            return new_rs
        return self.store.update("replicasets", {**new_rs, "metadata": {**_meta(new_rs), "annotations": annotations}})

    def _record_revision(self, deployment: dict, new_rs: dict) -> dict:
        annotations = dict(_meta(deployment).get("annotations") or {})
        revision = (_meta(new_rs).get("annotations") or {}).get(REVISION)
        if annotations.get(REVISION) == revision:
            return deployment
        annotations[REVISION] = revision
        return self.store.update("deployments", {**deployment, "metadata": {**_meta(deployment),
                                                                            "annotations": annotations}})

    def _scale(self, deployment: dict, rs: dict, replicas: int) -> dict:
        before = _spec_replicas(rs)
        if before == replicas:
            return rs
        annotations = {**(_meta(rs).get("annotations") or {}), **self._replica_annotations(deployment)}
        scaled = self.store.update("replicasets", {**rs, "metadata": {**_meta(rs), "annotations": annotations},
                                                   "spec": {**rs["spec"], "replicas": replicas}})
        direction = "up" if replicas > before else "down"
        self.events.record(deployment, "Normal", "ScalingReplicaSet",
                           f"Scaled {direction} replica set {_meta(rs)['name']} from {before} to {replicas}",
                           "deployment-controller")
        return scaled

    # --- strategies

    def _roll(self, deployment: dict, new_rs: dict, olds: list[dict]) -> tuple[dict, list[dict]]:
        replicas = _spec_replicas(deployment)
        surge, max_unavailable = surge_and_unavailable(deployment)
        current_new = _spec_replicas(new_rs)
        if current_new >= replicas:
            new_rs = self._scale(deployment, new_rs, replicas)
        else:
            total = current_new + sum(_pods_counted(rs) for rs in olds)
            if total < replicas + surge:
                new_rs = self._scale(deployment, new_rs, min(current_new + replicas + surge - total, replicas))
        old_total = sum(_spec_replicas(rs) for rs in olds)
        if old_total == 0:
            return new_rs, olds
        min_available = replicas - max_unavailable
        new_unavailable = _spec_replicas(new_rs) - _status_count(new_rs, "availableReplicas")
        budget = _spec_replicas(new_rs) + old_total - min_available - new_unavailable
        if budget <= 0:
            return new_rs, olds
        olds = list(olds)
        for i, rs in enumerate(olds):  # unhealthy old pods go first: they block nothing
            unhealthy = _spec_replicas(rs) - _status_count(rs, "availableReplicas")
            if budget > 0 and unhealthy > 0:
                down = min(budget, unhealthy)
                olds[i] = self._scale(deployment, rs, _spec_replicas(rs) - down)
                budget -= down
        available = sum(_available_kept(rs) for rs in [new_rs, *olds])
        spare = available - min_available
        for i, rs in enumerate(olds):
            if spare > 0 and _spec_replicas(rs) > 0:
                down = min(_spec_replicas(rs), spare)
                olds[i] = self._scale(deployment, rs, _spec_replicas(rs) - down)
                spare -= down
        return new_rs, olds

    def _recreate(self, deployment: dict, new_rs: dict, olds: list[dict]) -> tuple[dict, list[dict]]:
        olds = [self._scale(deployment, rs, 0) for rs in olds]
        old_uids = {_meta(rs)["uid"] for rs in olds}
        namespace = _meta(deployment)["namespace"]
        if any(_controller_ref(p) and _controller_ref(p).get("uid") in old_uids
               for p in self.store.list_objects("pods", namespace)):
            return new_rs, olds
        return self._scale(deployment, new_rs, _spec_replicas(deployment)), olds

    def _clean_up(self, deployment: dict, olds: list[dict]) -> list[dict]:
        limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
        idle = sorted((rs for rs in olds if _spec_replicas(rs) == 0 and _status_count(rs, "replicas") == 0),
                      key=_revision)
        doomed = idle[:max(len(idle) - limit, 0)]
        for rs in doomed:
            self.store.delete("replicasets", _meta(rs)["namespace"], _meta(rs)["name"])
        return [rs for rs in olds if rs not in doomed]

    # --- status

    def _sync_status(self, deployment: dict, new_rs: dict | None, olds: list[dict], created: bool) -> None:
        spec, old_status = deployment["spec"], deployment.get("status") or {}
        replicas = _spec_replicas(deployment)
        all_rs = ([new_rs] if new_rs else []) + olds
        _, max_unavailable = surge_and_unavailable(deployment)
        counts = {"replicas": sum(_status_count(rs, "replicas") for rs in all_rs),
                  "updatedReplicas": _status_count(new_rs, "replicas") if new_rs else 0,
                  "readyReplicas": sum(_status_count(rs, "readyReplicas") for rs in all_rs),
                  "availableReplicas": sum(_status_count(rs, "availableReplicas") for rs in all_rs)}
        counts["unavailableReplicas"] = max(sum(_spec_replicas(rs) for rs in all_rs) - counts["availableReplicas"], 0)
        generation = _meta(deployment).get("generation", 1)
        now = timestamp()
        conditions = list(old_status.get("conditions") or [])
        if counts["availableReplicas"] >= replicas - max_unavailable:
            conditions = _set_condition(conditions, "Available", "True", "MinimumReplicasAvailable",
                                        "Deployment has minimum availability.", now)
        else:
            conditions = _set_condition(conditions, "Available", "False", "MinimumReplicasUnavailable",
                                        "Deployment does not have minimum availability.", now)
        rs_name = _meta(new_rs)["name"] if new_rs else ""
        progressing = next((c for c in conditions if c.get("type") == "Progressing"), None)
        if spec.get("paused"):
            conditions = _set_condition(conditions, "Progressing", "Unknown", "DeploymentPaused",
                                        "Deployment is paused", now)
        elif progressing and progressing.get("reason") == "DeploymentPaused":
            conditions = _set_condition(conditions, "Progressing", "Unknown", "DeploymentResumed",
                                        "Deployment is resumed", now)
        elif created:
            conditions = _set_condition(conditions, "Progressing", "True", "NewReplicaSetCreated",
                                        f'Created new replica set "{rs_name}"', now)
        elif progressing is None and new_rs:
            conditions = _set_condition(conditions, "Progressing", "True", "FoundNewReplicaSet",
                                        f'Found new replica set "{rs_name}"', now)
        conditions = self._progress(deployment, counts, conditions, rs_name, now)
        status = {"observedGeneration": generation, **_nonzero(counts), "conditions": conditions}
        if status != old_status:
            self.store.update("deployments", {**deployment, "status": status}, subresource="status")

    @staticmethod
    def _progress(deployment: dict, counts: dict, conditions: list[dict], rs_name: str, now: str) -> list[dict]:
        """The Progressing condition after this sync, following the real controller's rules."""
        replicas = _spec_replicas(deployment)
        current = next((c for c in conditions if c.get("type") == "Progressing"), None)
        reason = (current or {}).get("reason")
        if deployment["spec"].get("paused") or (
                reason == "NewReplicaSetAvailable" and counts["replicas"] == counts["updatedReplicas"]):
            return conditions
        old = deployment.get("status") or {}
        if counts["updatedReplicas"] == counts["replicas"] == counts["availableReplicas"] == replicas:
            return _set_condition(conditions, "Progressing", "True", "NewReplicaSetAvailable",
                                  f'ReplicaSet "{rs_name}" has successfully progressed.', now)
        old_pending = old.get("replicas", 0) - old.get("updatedReplicas", 0)
        if (counts["updatedReplicas"] > old.get("updatedReplicas", 0)
                or counts["replicas"] - counts["updatedReplicas"] < old_pending
                or counts["readyReplicas"] > old.get("readyReplicas", 0)
                or counts["availableReplicas"] > old.get("availableReplicas", 0)):
            return _set_condition(conditions, "Progressing", "True", "ReplicaSetUpdated",
                                  f'ReplicaSet "{rs_name}" is progressing.', now, refresh=True)
        deadline = deployment["spec"].get("progressDeadlineSeconds")
        last_progress = parse_timestamp((current or {}).get("lastUpdateTime"))
        # the stored time is truncated to whole seconds: count from the end of that second,
        # so a deadline is never exceeded early; like the real controller, a condition still saying the
        # last rollout completed is no base to time out from (it is replaced once progress is seen)
        if (current and deadline is not None and last_progress is not None
                and reason not in ("ProgressDeadlineExceeded", "NewReplicaSetAvailable")
                and last_progress + 1 + deadline < time.time()):
            return _set_condition(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                                  f'ReplicaSet "{rs_name}" has timed out progressing.', now)
        return conditions


# --- Jobs --------------------------------------------------------------------------------------


class JobController:
    """Marks each Job running, then complete after a fixed duration."""

    def __init__(self, store: ObjectStore, events: EventRecorder, duration: float) -> None:
        self.store, self.events, self.duration = store, events, duration
        self._due: dict[str, tuple[str, str, float]] = {}

    def start(self, namespace: str, name: str, now: float) -> None:
        job = self.store.get_object("jobs", namespace, name)
        if job is None or (job.get("status") or {}).get("completionTime") or _meta(job)["uid"] in self._due:
            return
        self._due[_meta(job)["uid"]] = (namespace, name, now + self.duration)
        self.store.update("jobs", {**job, "status": {"startTime": timestamp(), "active": 1}}, subresource="status")

    def complete_due(self, now: float) -> None:
        for uid, (namespace, name, due) in list(self._due.items()):
            if now < due:
                continue
            del self._due[uid]
            job = self.store.get_object("jobs", namespace, name)
            if job is None or _meta(job)["uid"] != uid:
                continue
            finished = timestamp()
            complete = [{"type": kind, "status": "True", "lastProbeTime": finished, "lastTransitionTime": finished,
                         "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
                        for kind in ("SuccessCriteriaMet", "Complete")]
            status = {"startTime": (job.get("status") or {}).get("startTime", finished), "completionTime": finished,
                      "succeeded": 1, "conditions": complete}
            job = self.store.update("jobs", {**job, "status": status}, subresource="status")
            self.events.record(job, "Normal", "Completed", "Job completed", "job-controller")


# --- the control loop --------------------------------------------------------------------------


@dataclass
class _Work:
    pods: set[tuple[str, str]] = field(default_factory=set)
    replicasets: set[tuple[str, str]] = field(default_factory=set)
    deployments: set[tuple[str, str]] = field(default_factory=set)
    jobs: set[tuple[str, str]] = field(default_factory=set)

    def note(self, event: StoreEvent) -> None:
        key = _key(event.object)
        owner = _controller_ref(event.object)
        owner_key = (key[0], owner["name"]) if owner else None
        if event.resource == "deployments" and event.type != "DELETED":
            self.deployments.add(key)
        elif event.resource == "replicasets":
            if event.type != "DELETED":
                self.replicasets.add(key)
            if owner_key and owner.get("kind") == "Deployment":
                self.deployments.add(owner_key)
        elif event.resource == "pods":
            if event.type == "ADDED":
                self.pods.add(key)
            if owner_key and owner.get("kind") == "ReplicaSet":
                self.replicasets.add(owner_key)
        elif event.resource == "jobs" and event.type == "ADDED":
            self.jobs.add(key)


class ClusterControllers(StoreReconciler):
    """All controllers of the sandbox cluster, run as one asyncio task driven by store
    changes and a periodic tick (readiness probes, progress deadlines, Job completion)."""

    task_name = "sandbox-controllers"

    def __init__(self, store: ObjectStore, behaviors: BehaviorBook | None = None, ready_delay_seconds: float = 0.5,
                 *, probe_period_seconds: float = 5.0, job_duration_seconds: float = 1.0,
                 tick_seconds: float = 0.1, event_ttl_seconds: float = 3600.0,
                 restart_backoff_seconds: float = 1.0) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, event_ttl_seconds)
        self.kubelet = Kubelet(store, self.events, behaviors or BehaviorBook(), ready_delay_seconds,
                               probe_period_seconds, restart_backoff_seconds)
        self.replicasets = ReplicaSetController(store, self.events)
        self.deployments = DeploymentController(store, self.events)
        self.jobs = JobController(store, self.events, job_duration_seconds)
        self.tick_seconds = tick_seconds
        self._awaiting_availability: set[tuple[str, str]] = set()

    async def _run(self, queue: asyncio.Queue[StoreEvent | None]) -> None:
        loop = asyncio.get_running_loop()
        work = self._existing_work()
        next_tick = next_prune = loop.time()
        while True:
            self._settle(work, loop.time())
            try:
                event = await asyncio.wait_for(queue.get(), max(next_tick - loop.time(), 0))
                if event is None:
                    return
                work.note(event)
                while not queue.empty():
                    event = queue.get_nowait()
                    if event is None:
                        return
                    work.note(event)
            except TimeoutError:
                pass
            now = loop.time()
            if now >= next_tick:
                next_tick = now + self.tick_seconds
                self._tick(work, now)
                if now >= next_prune:
                    next_prune = now + 60.0
                    self._guarded(self.events.prune, time.time())

    def _existing_work(self) -> _Work:
        work = _Work()
        for resource, keys in (("pods", work.pods), ("replicasets", work.replicasets),
                               ("deployments", work.deployments), ("jobs", work.jobs)):
            keys.update(_key(obj) for obj in self.store.list_objects(resource))
        return work

    def _tick(self, work: _Work, now: float) -> None:
        self._guarded(self.kubelet.probe, now)
        self._guarded(self.jobs.complete_due, now)
        work.deployments.update(self.deployments.in_progress())
        work.replicasets.update(self._awaiting_availability)

    def _settle(self, work: _Work, now: float) -> None:
        while work.pods:
            self._guarded(self.kubelet.start, *work.pods.pop(), now)
        while work.replicasets:
            key = work.replicasets.pop()
            if self._guarded(self.replicasets.reconcile, *key, time.time()):
                self._awaiting_availability.add(key)
            else:
                self._awaiting_availability.discard(key)
        while work.deployments:
            self._guarded(self.deployments.reconcile, *work.deployments.pop())
        while work.jobs:
            self._guarded(self.jobs.start, *work.jobs.pop(), now)

    @staticmethod
    def _guarded(step: Callable[..., object], *args: object) -> object:
        """Run one controller step; a failure is logged and retried on the next change or tick."""
        try:
            return step(*args)
        except Exception:
            log.exception("sandbox controller step %s%s failed", getattr(step, "__qualname__", step), args)
            return None
