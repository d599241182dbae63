"""Pod and node resource use (R-MON), as `kubectl top` reads it: metrics.k8s.io's PodMetrics and NodeMetrics, with
each pod's memory limit and restarts from the core API."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from delivery.kube.connection import KubeConnection

GROUP, VERSION = "metrics.k8s.io", "v1beta1"


@dataclass(frozen=True)
class PodUsage:
    """One pod: CPU (millicores) and memory (bytes) now, its memory limit, its restarts and its last termination."""

    pod: str
    cpu_millicores: float | None
    memory_bytes: float | None
    memory_limit_bytes: float | None
    restarts: int
    last_termination: str | None = None  # the reason of the last terminated container, e.g. OOMKilled

    @property
    def over_limit(self) -> bool:
        return None not in (self.memory_bytes, self.memory_limit_bytes) and self.memory_bytes > self.memory_limit_bytes


@dataclass(frozen=True)
class ResourceSample:
    """The pods of one workload; `unreadable` says why metrics.k8s.io gave no usage (restarts are still read)."""

    pods: tuple[PodUsage, ...]
    unreadable: str | None = None


@dataclass(frozen=True)
class NodeUsage:
    node: str
    cpu_millicores: float
    memory_bytes: float


def mebibytes(value: float | None) -> str:
    return "?" if value is None else f"{value / 2**20:.0f}Mi"


class PodResources:
    """Reads metrics.k8s.io (metrics-server, or the sandbox's) and the pods' statuses."""

    def __init__(self, conn: KubeConnection) -> None:
        self.conn = conn

    def sample(self, namespace: str, selector: dict[str, str]) -> ResourceSample:
        """Usage, limit and restarts of every pod matching `selector`."""
        label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
        pods = self.conn.call(self.conn.core.list_namespaced_pod, namespace, label_selector=label_selector).items
        usage, unreadable = {}, None
        try:
            listed = self.conn.call(self.conn.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "pods",
                                    label_selector=label_selector)
            usage = {item["metadata"]["name"]: _container_sum(item["containers"]) for item in listed.get("items", [])}
        except ApiException as err:
            unreadable = f"metrics.k8s.io answered {err.status} {err.reason}: is metrics-server installed?"
        return ResourceSample(tuple(_pod_usage(pod, usage.get(pod.metadata.name)) for pod in pods), unreadable)

    def nodes(self) -> list[NodeUsage]:
        """Each node's CPU and memory use, as `kubectl top nodes`."""
        listed = self.conn.call(self.conn.custom.list_cluster_custom_object, GROUP, VERSION, "nodes")
        return [NodeUsage(item["metadata"]["name"], *_usage(item["usage"])) for item in listed.get("items", [])]


def _usage(usage: dict) -> tuple[float, float]:
    return float(parse_quantity(usage.get("cpu", "0"))) * 1000, float(parse_quantity(usage.get("memory", "0")))


def _container_sum(containers: list[dict]) -> tuple[float, float]:
    readings = [_usage(c["usage"]) for c in containers]
    return sum(cpu for cpu, _ in readings), sum(memory for _, memory in readings)


def _pod_usage(pod, usage: tuple[float, float] | None) -> PodUsage:
    limits = [parse_quantity(c.resources.limits["memory"]) for c in pod.spec.containers
              if c.resources and c.resources.limits and "memory" in c.resources.limits]
    statuses = pod.status.container_statuses or []
    terminated = [s.last_state.terminated for s in statuses if s.last_state and s.last_state.terminated]
    return PodUsage(
        pod=pod.metadata.name,
        cpu_millicores=usage[0] if usage else None,
        memory_bytes=usage[1] if usage else None,
        memory_limit_bytes=float(sum(limits)) if limits and len(limits) == len(pod.spec.containers) else None,
        restarts=sum(s.restart_count for s in statuses),
        last_termination=terminated[-1].reason if terminated else None,
    )
