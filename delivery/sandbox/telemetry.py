"""The sandbox's request metrics under Istio's and Spring Boot's names, their Prometheus exposition,
and a short sample history (one snapshot per interval) that the sandbox's PromQL evaluator reads."""

from __future__ import annotations

import asyncio
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

SeriesKey = tuple[tuple[str, str], ...]
"""A series' identity: its labels, `__name__` included, sorted by label name."""

ISTIO_DURATION_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
)
HTTP_DURATION_BUCKETS_SECONDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 5.0, 10.0,
)
ISTIO_LABELS = (
    "reporter", "source_workload", "destination_workload", "destination_workload_namespace",
    "destination_service_name", "destination_service_namespace", "destination_app", "destination_version",
    "response_code", "request_protocol",
)
HTTP_LABELS = ("namespace", "app", "version", "pod", "method", "uri", "status")
HTTP_HISTOGRAM_LABELS = ("namespace", "app", "version", "method", "uri", "status")  # no `pod`: fewer series
UNKNOWN = "unknown"  # Istio's value for a missing app or version label
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what every Prometheus 2.x parses


def series_key(name: str, labels: Iterable[tuple[str, str]]) -> SeriesKey:
    return tuple(sorted((("__name__", name), *labels)))


class _Counter:
    """One counter family: label values -> total."""

    def __init__(self, name: str, documentation: str, label_names: Sequence[str]) -> None:
        self.name, self.documentation, self.label_names = name, documentation, tuple(label_names)
        self.totals: dict[tuple[str, ...], float] = {}
        self.keys: dict[tuple[str, ...], SeriesKey] = {}

    def inc(self, values: tuple[str, ...]) -> tuple[str, ...]:
        if values not in self.totals:
            self.totals[values] = 0.0
            self.keys[values] = series_key(self.name, zip(self.label_names, values))
        self.totals[values] += 1.0
        return values

    def samples(self, values: tuple[str, ...]) -> Iterator[tuple[SeriesKey, float]]:
        yield self.keys[values], self.totals[values]

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, total in self.totals.items():
            family.add_metric(values, total)
        return family


class _Histogram:
    """One histogram family: label values -> per-bucket counts (not cumulative, +Inf last) and the sum."""

    def __init__(self, name: str, documentation: str, label_names: Sequence[str], bounds: Sequence[float]) -> None:
        self.name, self.documentation, self.label_names = name, documentation, tuple(label_names)
        self.bounds = tuple(float(b) for b in bounds)
        self.les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self.counts: dict[tuple[str, ...], list[int]] = {}
        self.sums: dict[tuple[str, ...], float] = {}
        self.keys: dict[tuple[str, ...], list[SeriesKey]] = {}

    def observe(self, values: tuple[str, ...], amount: float) -> tuple[str, ...]:
        counts = self.counts.get(values)
        if counts is None:
            counts = self.counts[values] = [0] * (len(self.bounds) + 1)
            self.sums[values] = 0.0
            labels = list(zip(self.label_names, values))
            self.keys[values] = [series_key(f"{self.name}_bucket", [*labels, ("le", le)]) for le in self.les] + [
                series_key(f"{self.name}_sum", labels),
                series_key(f"{self.name}_count", labels),
            ]
        counts[bisect_left(self.bounds, amount)] += 1
        self.sums[values] += amount
        return values

    def cumulative(self, values: tuple[str, ...]) -> list[float]:
        running, out = 0, []
        for count in self.counts[values]:
            running += count
            out.append(float(running))
        return out

    def samples(self, values: tuple[str, ...]) -> Iterator[tuple[SeriesKey, float]]:
        buckets = self.cumulative(values)
        yield from zip(self.keys[values], [*buckets, self.sums[values], buckets[-1]])

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values in self.counts:
            family.add_metric(values, list(zip(self.les, self.cumulative(values))), self.sums[values])
        return family


class _ChangePoints:
    """A series' (time, value) pairs at the snapshots where its value changed."""

    __slots__ = ("times", "values")

    def __init__(self) -> None:
        self.times, self.values = array("d"), array("d")


class SampleHistory:
    """Snapshots of every series at shared times, kept for `retention_seconds`, stored as change points.

    Reading a series at snapshot time t gives the value of its last change at or before t, which is
    what a scraper would have seen; a series has samples from the first snapshot that saw it.
    """

    def __init__(self, retention_seconds: float = 900.0) -> None:
        self.retention_seconds = retention_seconds
        self._times = array("d")
        self._series: dict[SeriesKey, _ChangePoints] = {}
        self._by_name: dict[str, list[SeriesKey]] = {}
        self._snapshots_since_trim = 0

    def snapshot(self, at: float, values: Iterable[tuple[SeriesKey, float]]) -> None:
        """Record one snapshot at `at` (later than the last); `values` may omit series that did not change."""
        if self._times and at <= self._times[-1]:
            raise ValueError(f"snapshot at {at} is not after the last one at {self._times[-1]}")
        self._times.append(at)
        for key, value in values:
            points = self._series.get(key)
            if points is None:
                points = self._series[key] = _ChangePoints()
                self._by_name.setdefault(dict(key)["__name__"], []).append(key)
            if not points.values or points.values[-1] != value:
                points.times.append(at)
                points.values.append(value)
        self._forget_before(at - self.retention_seconds)

    @property
    def latest_time(self) -> float | None:
        return self._times[-1] if self._times else None

    def series(self, name: str | None = None) -> list[SeriesKey]:
        """Every series key, or those of one metric name."""
        if name is None:
            return list(self._series)
        return list(self._by_name.get(name, ()))

    def samples(self, key: SeriesKey, start: float, end: float) -> list[tuple[float, float]]:
        """The series' (time, value) samples at the snapshots in [start, end]."""
        points = self._series.get(key)
        if points is None:
            return []
        first, stop = bisect_left(self._times, start), bisect_right(self._times, end)
        out: list[tuple[float, float]] = []
        change = bisect_right(points.times, self._times[first]) - 1 if first < stop else 0
        for at in self._times[first:stop]:
            while change + 1 < len(points.times) and points.times[change + 1] <= at:
                change += 1
            if change >= 0:
                out.append((at, points.values[change]))
        return out

    def last_sample(self, key: SeriesKey, start: float, end: float) -> tuple[float, float] | None:
        """The series' latest sample at a snapshot in [start, end], or None."""
        points = self._series.get(key)
        stop = bisect_right(self._times, end)
        if points is None or stop == 0 or self._times[stop - 1] < start:
            return None
        at = self._times[stop - 1]
        change = bisect_right(points.times, at) - 1
        return (at, points.values[change]) if change >= 0 else None

    def _forget_before(self, oldest: float) -> None:
        drop = bisect_left(self._times, oldest)
        if drop:
            del self._times[:drop]
        self._snapshots_since_trim += 1
        if self._snapshots_since_trim < 60 or not self._times:
            return
        self._snapshots_since_trim = 0
        for points in self._series.values():
            stale = bisect_right(points.times, self._times[0]) - 1  # keep the change the oldest snapshot reads
            if stale > 0:
                del points.times[:stale]
                del points.values[:stale]


class _Exposition:
    """A prometheus_client collector over the telemetry's families."""

    def __init__(self, families: Sequence[_Counter | _Histogram]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.family()


class Telemetry:
    """Request metrics of the simulated services, their `/metrics` text, and their recent history."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        sample_interval_seconds: float = 1.0,
        retention_seconds: float = 900.0,
    ) -> None:
        self.clock = clock
        self.sample_interval_seconds = sample_interval_seconds
        self.history = SampleHistory(retention_seconds)
        self.istio_requests = _Counter(
            "istio_requests_total", "Requests seen by the destination sidecar.", ISTIO_LABELS
        )
        self.istio_duration = _Histogram(
            "istio_request_duration_milliseconds", "Request durations seen by the destination sidecar.",
            ISTIO_LABELS, ISTIO_DURATION_BUCKETS_MS,
        )
        self.http_requests = _Counter("http_requests_total", "Requests answered by the application.", HTTP_LABELS)
        self.http_duration = _Histogram(
            "http_server_requests_seconds", "Request durations measured by the application (Micrometer).",
            HTTP_HISTOGRAM_LABELS, HTTP_DURATION_BUCKETS_SECONDS,
        )
        self._families = (self.istio_requests, self.istio_duration, self.http_requests, self.http_duration)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Exposition(self._families))
        self._changed: set[tuple[_Counter | _Histogram, tuple[str, ...]]] = set()
        self._sampling: asyncio.Task | None = None

    def now(self) -> float:
        return self.clock()

    def record_request(self, pod: dict, service: str, method: str, uri: str, status: int, seconds: float) -> None:
        """Count one request `pod` answered for `service` (in the pod's namespace) with `status` in `seconds`."""
        meta = pod.get("metadata", {})
        labels = meta.get("labels") or {}
        namespace = meta.get("namespace", "")
        app, version = labels.get("app", UNKNOWN), labels.get("version", UNKNOWN)
        code = str(status)
        istio = (
            "destination", "istio-ingressgateway", workload_of(pod), namespace,
            service, namespace, app, version, code, "http",
        )
        self._changed.add((self.istio_requests, self.istio_requests.inc(istio)))
        self._changed.add((self.istio_duration, self.istio_duration.observe(istio, seconds * 1000.0)))
        http = (namespace, app, version, meta.get("name", ""), method, uri, code)
        self._changed.add((self.http_requests, self.http_requests.inc(http)))
        histogram = (namespace, app, version, method, uri, code)
        self._changed.add((self.http_duration, self.http_duration.observe(histogram, seconds)))

    def exposition(self) -> bytes:
        """Every series in the Prometheus text format (0.0.4), served as `EXPOSITION_CONTENT_TYPE`."""
        return generate_latest(self.registry)

    def sample(self) -> None:
        """Take one snapshot of the series that changed since the last one, at the clock's time.

        A clock that has not moved past the last snapshot (or went back) defers the changes to the next one.
        """
        now, latest = self.clock(), self.history.latest_time
        if latest is not None and now <= latest:
            return
        changed, self._changed = self._changed, set()
        self.history.snapshot(now, (s for family, values in changed for s in family.samples(values)))

    def start_sampling(self) -> None:
        """Snapshot every `sample_interval_seconds` in the running event loop until `stop_sampling`."""
        if self._sampling is None or self._sampling.done():
            self._sampling = asyncio.get_running_loop().create_task(self._sample_forever())

    async def stop_sampling(self) -> None:
        task, self._sampling = self._sampling, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.sample_interval_seconds)


def workload_of(pod: dict) -> str:
    """The Deployment owning `pod` (its ReplicaSet's name minus the template hash), else `<app>-<version>`."""
    meta = pod.get("metadata", {})
    labels = meta.get("labels") or {}
    for owner in meta.get("ownerReferences") or ():
        if owner.get("kind") == "ReplicaSet":
            name = owner.get("name", "")
            suffix = "-" + labels.get("pod-template-hash", "")
            if suffix != "-" and name.endswith(suffix):
                return name[: -len(suffix)]
            return name.rsplit("-", 1)[0]
        if owner.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            return owner.get("name", "")
    if "app" in labels:
        return f"{labels['app']}-{labels['version']}" if "version" in labels else labels["app"]
    return meta.get("name", UNKNOWN)
