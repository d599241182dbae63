"""Spring Boot's `/actuator/metrics` of one simulated pod: jvm.memory.used (the container's memory),
http.server.requests (the telemetry's counts for the pod) and hikaricp.connections, in the actuator's JSON shape."""

from __future__ import annotations

import time
from collections.abc import Callable

from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.telemetry import Telemetry
from delivery.sandbox.usage import pod_usage

PREFIX = "/actuator/metrics"
HEAP_SHARE = 0.75  # of the container's memory; the rest is metaspace, code cache and the like
HEAP_IDS = ["G1 Survivor Space", "G1 Old Gen", "G1 Eden Space"]
NONHEAP_IDS = ["Metaspace", "CodeCache", "Compressed Class Space"]
POOL = "HikariPool-1"
POOL_SIZE = 10  # HikariCP's default maximumPoolSize, kept full (minimumIdle defaults to it)
MetricAnswer = tuple[int, dict]


class ActuatorMetrics:
    """Answers `/actuator/metrics[/<name>][?tag=key:value]` for a pod, as its application would."""

    names = ("hikaricp.connections", "http.server.requests", "jvm.memory.used")

    def __init__(self, behaviors: BehaviorBook, telemetry: Telemetry, clock: Callable[[], float] = time.time) -> None:
        self.behaviors, self.telemetry, self.clock = behaviors, telemetry, clock

    def answer(self, path: str, tags: list[str], pod: dict, db_problem: str | None) -> MetricAnswer:
        """(status, JSON body) for a GET of `path` (under PREFIX) with `tag` query values."""
        name = path.removeprefix(PREFIX).strip("/")
        if not name:
            return 200, {"names": sorted(self.names)}
        wanted = dict(tag.partition(":")[::2] for tag in tags)
        if name == "jvm.memory.used":
            return self._memory(pod, wanted)
        if name == "http.server.requests":
            return self._requests(pod, wanted)
        if name == "hikaricp.connections":
            return 200, _metric(name, "Total connections", None, [("VALUE", 0 if db_problem else POOL_SIZE)],
                                {"pool": [POOL]})
        return 404, {"timestamp": _now_iso(), "status": 404, "error": "Not Found", "path": path}

    def _memory(self, pod: dict, wanted: dict[str, str]) -> MetricAnswer:
        used = sum(u.memory_bytes for u in pod_usage(pod, self.behaviors, self.clock()).values())
        share = {"heap": HEAP_SHARE, "nonheap": 1 - HEAP_SHARE}.get(wanted.get("area", ""), 1.0)
        tags = {"area": ["heap", "nonheap"], "id": HEAP_IDS + NONHEAP_IDS}
        return 200, _metric("jvm.memory.used", "The amount of used memory", "bytes", [("VALUE", used * share)], tags)

    def _requests(self, pod: dict, wanted: dict[str, str]) -> MetricAnswer:
        meta = pod.get("metadata") or {}
        count = total = maximum = 0.0
        seen: dict[str, set[str]] = {"method": set(), "uri": set(), "status": set(), "outcome": set()}
        histogram = self.telemetry.http_duration
        for values, requests in self.telemetry.http_requests.totals.items():
            namespace, app, version, pod_name, method, uri, status = values
            if (namespace, pod_name) != (meta.get("namespace"), meta.get("name")):
                continue
            tags = {"method": method, "uri": uri, "status": status, "outcome": _outcome(status)}
            for key, value in tags.items():
                seen[key].add(value)
            if any(tags.get(key, value) != value for key, value in wanted.items()):
                continue
            series = (namespace, app, version, method, uri, status)
            per_request = histogram.sums.get(series, 0.0) / max(sum(histogram.counts.get(series, [0])), 1)
            count, total = count + requests, total + requests * per_request
            maximum = max(maximum, _slowest_bucket(histogram.bounds, histogram.counts.get(series, [])))
        tags = {**{k: sorted(v) for k, v in seen.items()}, "exception": ["none"], "error": ["none"]}
        return 200, _metric("http.server.requests", None, "seconds",
                            [("COUNT", count), ("TOTAL_TIME", total), ("MAX", maximum)], tags)


def _metric(name: str, description: str | None, unit: str | None, measurements: list[tuple[str, float]],
            tags: dict[str, list[str]]) -> dict:
    return {"name": name, "description": description, "baseUnit": unit,
            "measurements": [{"statistic": s, "value": float(v)} for s, v in measurements],
            "availableTags": [{"tag": tag, "values": values} for tag, values in tags.items()]}


def _outcome(status: str) -> str:
    return {"1": "INFORMATIONAL", "2": "SUCCESS", "3": "REDIRECTION", "4": "CLIENT_ERROR",
            "5": "SERVER_ERROR"}.get(status[:1], "UNKNOWN")


def _slowest_bucket(bounds: tuple[float, ...], counts: list[int]) -> float:
    """The upper bound of the slowest non-empty histogram bucket (the last bound for +Inf)."""
    filled = [i for i, n in enumerate(counts) if n]
    return bounds[min(filled[-1], len(bounds) - 1)] if filled else 0.0


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
