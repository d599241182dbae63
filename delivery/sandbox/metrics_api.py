"""metrics.k8s.io/v1beta1 as metrics-server serves it: PodMetrics of running pods and NodeMetrics of the nodes,
computed on each read from what the pods' versions use (delivery/sandbox/usage.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.nodes import SYSTEM_USAGE
from delivery.sandbox.resources import timestamp
from delivery.sandbox.store import ObjectStore
from delivery.sandbox.usage import Usage, pod_usage

API_VERSION = "metrics.k8s.io/v1beta1"
WINDOW = "30s"  # the interval metrics-server's rates are over


class ResourceMetrics:
    """Reads the cluster as metrics-server does: each running container's CPU and memory, each node's total."""

    def __init__(self, store: ObjectStore, behaviors: BehaviorBook, clock: Callable[[], float] = time.time) -> None:
        self.store, self.behaviors, self.clock = store, behaviors, clock

    def pod_metrics(self, namespace: str | None) -> list[dict]:
        """PodMetrics of every pod in `namespace` (None: all) with a running container."""
        now = self.clock()
        items = []
        for pod in self.store.list_objects("pods", namespace):
            used = pod_usage(pod, self.behaviors, now)
            if not used or (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            meta = pod["metadata"]
            items.append({"kind": "PodMetrics", "apiVersion": API_VERSION,
                          "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                       "creationTimestamp": timestamp(now), "labels": meta.get("labels") or {}},
                          "timestamp": timestamp(now), "window": WINDOW,
                          "containers": [{"name": name, "usage": usage.as_metrics()} for name, usage in used.items()]})
        return items

    def node_metrics(self) -> list[dict]:
        """NodeMetrics of every node: the system's own use plus its pods'."""
        now = self.clock()
        totals = {(n["metadata"]["name"]): SYSTEM_USAGE for n in self.store.list_objects("nodes")}
        for pod in self.store.list_objects("pods"):
            node = (pod.get("spec") or {}).get("nodeName")
            if node in totals:
                totals[node] = sum(pod_usage(pod, self.behaviors, now).values(), totals[node])
        items = []
        for node in self.store.list_objects("nodes"):
            meta = node["metadata"]
            items.append({"kind": "NodeMetrics", "apiVersion": API_VERSION,
                          "metadata": {"name": meta["name"], "creationTimestamp": timestamp(now),
                                       "labels": meta.get("labels") or {}},
                          "timestamp": timestamp(now), "window": WINDOW,
                          "usage": totals.get(meta["name"], Usage(0, 0)).as_metrics()})
        return items

    def of_kind(self, kind: str, namespace: str | None) -> list[dict]:
        """The PodMetrics (in `namespace`) or NodeMetrics there are now."""
        return self.pod_metrics(namespace) if kind == "PodMetrics" else self.node_metrics()
