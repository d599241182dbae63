"""The CPU and memory each running container uses, as the kubelet's cAdvisor would measure it: its version's
behavior (baseline, plus a leak's growth since the container started), never above its memory limit."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.utils import parse_quantity

from delivery.sandbox.behavior import BehaviorBook, VersionBehavior
from delivery.sandbox.resources import parse_timestamp

MIB = 1024 * 1024


def cpu_quantity(nanocores: float) -> str:
    """CPU as metrics-server writes it: nanocores (`250000000n`)."""
    return f"{int(nanocores)}n"


def memory_quantity(amount: float) -> str:
    """Memory as metrics-server writes it: kibibytes (`393216Ki`)."""
    return f"{int(amount) // 1024}Ki"


@dataclass(frozen=True)
class Usage:
    """What one container (or node) uses right now."""

    cpu_nanocores: float
    memory_bytes: float

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu_nanocores + other.cpu_nanocores, self.memory_bytes + other.memory_bytes)

    def as_metrics(self) -> dict:
        return {"cpu": cpu_quantity(self.cpu_nanocores), "memory": memory_quantity(self.memory_bytes)}


def memory_limit(container: dict) -> float | None:
    """A container spec's `resources.limits.memory` in bytes, None when it has none."""
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    try:
        return float(parse_quantity(limit)) if limit is not None else None
    except ValueError:
        return None


def unbounded_memory(behavior: VersionBehavior, running_seconds: float) -> float:
    """The bytes a container of `behavior` would hold after running `running_seconds`, with no limit."""
    grown = behavior.memory_growth_mib_per_second * max(running_seconds, 0.0)
    return (behavior.memory_mib + grown) * MIB


def running_seconds(status: dict, now: float) -> float | None:
    """How long a container status says it has been running; None when it is not running."""
    started = parse_timestamp(((status.get("state") or {}).get("running") or {}).get("startedAt"))
    return None if started is None else now - started


def pod_usage(pod: dict, behaviors: BehaviorBook, now: float) -> dict[str, Usage]:
    """Each running container of `pod` by name, with what it uses at `now` (seconds since the epoch)."""
    specs = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    namespace = (pod.get("metadata") or {}).get("namespace")
    used = {}
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        spec, seconds = specs.get(status.get("name")), running_seconds(status, now)
        if spec is None or seconds is None:
            continue
        behavior = behaviors.for_image(spec.get("image", ""), namespace)
        memory, limit = unbounded_memory(behavior, seconds), memory_limit(spec)
        used[status["name"]] = Usage(behavior.cpu_millicores * 1e6, memory if limit is None else min(memory, limit))
    return used
