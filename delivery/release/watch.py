"""The post-switch watch (R-BG-3, R-MON): one check's verdict from two readings, and the tally."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Literal

from delivery.kube.metrics import ResourceSample, mebibytes
from delivery.metrics.prometheus import PrometheusClient, Reading
from delivery.metrics.templates import QueryTarget, render_query
from delivery.policy.models import Policy
from delivery.release.stats import per_look_confidence, wilson_interval

Verdict = Literal["ok", "alert", "rollback", "inconclusive"]


@dataclass(frozen=True)
class Check:
    """One watch check: the counts and latency read, the 5xx rate with its confidence interval, the verdict."""

    number: int
    requests: Reading
    errors: Reading
    response_time_seconds: Reading
    verdict: Verdict
    reason: str
    error_rate_percent: float | None = None
    error_rate_low_percent: float | None = None
    resources: ResourceSample | None = None  # the workload's pods at this check (R-MON)

    def row(self) -> dict:
        rate = "" if self.error_rate_percent is None else f"{self.error_rate_percent:.3g} (≥ {self.error_rate_low_percent:.3g})"
        return {
            "check": self.number,
            "requests": str(self.requests),
            "5xx": str(self.errors),
            "5xx rate %": rate,
            "response time s": str(self.response_time_seconds),
            **resource_cells(self.resources),
            "verdict": self.verdict,
            "reason": self.reason,
        }


def resource_cells(sample: ResourceSample | None) -> dict[str, str]:
    """The pods' CPU and memory (each pod: use, and memory of its limit) and restarts, for a check's row."""
    if sample is None:
        return {"cpu": "", "memory": "", "restarts": ""}
    if sample.unreadable:
        cpu = memory = f"unreadable: {sample.unreadable}"
    else:
        cpu = " ".join("?" if p.cpu_millicores is None else f"{p.cpu_millicores:.0f}m" for p in sample.pods)
        memory = " ".join(f"{mebibytes(p.memory_bytes)}/{mebibytes(p.memory_limit_bytes)}" for p in sample.pods)
    return {"cpu": cpu, "memory": memory, "restarts": " ".join(str(p.restarts) for p in sample.pods)}


def resource_problems(sample: ResourceSample, restarts_before: dict[str, int]) -> str | None:
    """Why the pods fail the watch: a pod over its memory limit, or restarted since the watch began; None if neither
    (restarts come from the pods' statuses, so they count even when metrics.k8s.io is unreadable)."""
    problems = []
    for pod in sample.pods:
        if pod.over_limit:
            problems.append(f"{pod.pod} uses {mebibytes(pod.memory_bytes)} of memory, over its limit "
                            f"{mebibytes(pod.memory_limit_bytes)}")
        if (restarted := pod.restarts - restarts_before.get(pod.pod, 0)) > 0:
            why = f", last terminated {pod.last_termination}" if pod.last_termination else ""
            problems.append(f"{pod.pod} restarted {restarted} time(s) during the watch{why}")
    return "; ".join(problems) or None


def judge_check(number: int, requests: Reading, errors: Reading, response_time: Reading, policy: Policy, looks: int = 1) -> Check:
    """Roll back when the 5xx rate is confidently above the blue-green threshold or latency is; alert past R-MON's.

    `looks` is how many checks the whole watch makes: each one uses the Bonferroni-corrected confidence,
    so a healthy version is rolled back by noise with probability at most 1 - confidence over the watch.
    An observed 5xx rate above R-MON's emergency threshold rolls back at once, whatever the confidence bound.
    """
    bg, watch = policy.blue_green, policy.watch
    confidence = per_look_confidence(watch.confidence_percent, looks)
    limit_seconds = bg.max_response_time.total_seconds()
    rate = low = None
    breaches = []
    if requests.conclusive and errors.conclusive and requests.value > 0:
        failed = min(errors.value, requests.value)  # increase() extrapolates each series on its own: 34.4 of 34.1
        rate = 100 * failed / requests.value
        low = 100 * wilson_interval(failed, requests.value, confidence)[0]
        if rate > watch.emergency_rollback_error_rate_percent:
            breaches.append(
                f"emergency rollback: 5xx rate {rate:.3g}% ({failed:.0f} of {requests.value:.0f}) "
                f"> the emergency threshold {watch.emergency_rollback_error_rate_percent:g}%"
            )
        elif low > bg.max_error_rate_percent:
            breaches.append(
                f"5xx rate {rate:.3g}% ({failed:.0f} of {requests.value:.0f}; ≥ {low:.3g}% at "
                f"{confidence:.4g}% confidence) > {bg.max_error_rate_percent:g}%"
            )
    if response_time.conclusive and response_time.value > limit_seconds:
        breaches.append(f"response time {response_time.value:.3g}s > {limit_seconds:g}s")
    made = lambda verdict, reason: Check(number, requests, errors, response_time, verdict, reason, rate, low)  # noqa: E731
    if breaches:
        return made("rollback", " and ".join(breaches))
    missing = [r.inconclusive for r in (requests, errors, response_time) if not r.conclusive]
    if requests.conclusive and requests.value <= 0:
        missing.append("no requests in the window")
    if missing:
        return made("inconclusive", "; ".join(missing))
    if rate > watch.alert_error_rate_percent:
        return made("alert", f"5xx rate {rate:.3g}% > {watch.alert_error_rate_percent:g}% (not yet confidently above {bg.max_error_rate_percent:g}%)")
    return made("ok", "within thresholds")


@dataclass
class WatchTally:
    """Counts failed checks; the watch fails on a rollback verdict or too many inconclusive ones."""

    tolerated_failed_checks: int
    checks: list[Check] = field(default_factory=list)
    cancelled: bool = False

    def add(self, check: Check) -> None:
        self.checks.append(check)

    @property
    def failed_checks(self) -> int:
        return sum(c.verdict in ("rollback", "inconclusive") for c in self.checks)

    @property
    def must_roll_back(self) -> Check | None:
        """The check that ends the watch with a rollback, or None while it may go on."""
        last = self.checks[-1] if self.checks else None
        if last and last.verdict == "rollback":
            return last
        if last and last.verdict == "inconclusive" and self.failed_checks > self.tolerated_failed_checks:
            return last
        return None


@dataclass(frozen=True)
class WatchTarget:
    """Whose metrics a watch reads: a service's workload and version in a namespace."""

    namespace: str
    service: str
    workload: str
    version: str = ".*"


def with_resources(check: Check, sample: ResourceSample, restarts_before: dict[str, int]) -> Check:
    """The check with the pods' resources in its row; a pod over its memory limit or restarted rolls back (R-MON);
    unreadable pod metrics make a passing check inconclusive (they never pass)."""
    problem = resource_problems(sample, restarts_before)
    if problem is None and sample.unreadable and check.verdict in ("ok", "alert"):
        return replace(check, resources=sample, verdict="inconclusive", reason=f"pod metrics: {sample.unreadable}")
    if problem is None:
        return replace(check, resources=sample)
    reason = problem if check.verdict in ("ok", "alert", "inconclusive") else f"{check.reason} and {problem}"
    return replace(check, resources=sample, verdict="rollback", reason=reason)


def read_check(number: int, prometheus: PrometheusClient, policy: Policy, target: WatchTarget, looks: int = 1) -> Check:
    """Query the watch's two templates for `target` and judge them."""
    query_target = QueryTarget(
        namespace=target.namespace,
        service=target.service,
        target=target.workload,
        version=target.version,
        interval=policy.watch.query_window,
    )
    templates, watch = policy.metric_templates, policy.watch
    read = lambda name: prometheus.query(render_query(templates[name], query_target))  # noqa: E731
    requests, errors = read(watch.request_count_metric), read(watch.error_count_metric)
    return judge_check(number, requests, errors, read(watch.response_time_metric), policy, looks)


def run_watch(
    prometheus: PrometheusClient,
    policy: Policy,
    target: WatchTarget,
    duration: timedelta,
    on_check: Callable[[Check, float], None],
    stop: threading.Event | None = None,
    resources: Callable[[], ResourceSample] | None = None,
) -> WatchTally:
    """Check every `watch.interval` for `duration`; stop early when a rollback is due or `stop` is set (cancelled).
    With `resources`, each check also reads the workload's pods: restarts count from the watch's start."""
    interval = policy.watch.interval.total_seconds()
    total = max(1, round(duration.total_seconds() / interval))
    tally = WatchTally(policy.watch.tolerated_failed_checks)
    stop = stop or threading.Event()
    restarts_before = {pod.pod: pod.restarts for pod in resources().pods} if resources else {}
    for number in range(1, total + 1):
        if stop.wait(interval):
            tally.cancelled = True
            break
        check = read_check(number, prometheus, policy, target, looks=total)
        if resources:
            check = with_resources(check, resources(), restarts_before)
        tally.add(check)
        on_check(check, 100 * number / total)
        if tally.must_roll_back:
            break
    return tally


class StopSignals:
    """Named events that end a batch's other watches at once when one of them fails (in this worker process)."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._stopped: set[str] = set()
        self._lock = threading.Lock()

    def get(self, name: str) -> threading.Event:
        """The named signal; already set when its prefix was stopped (a watch that starts after the stop)."""
        with self._lock:
            event = self._events.setdefault(name, threading.Event())
            if any(name.startswith(prefix) for prefix in self._stopped):
                event.set()
            return event

    def forget(self, name: str) -> None:
        with self._lock:
            self._events.pop(name, None)

    def stop_prefixed(self, prefix: str) -> None:
        """Set every signal whose name starts with `prefix` (a run's flow run id: all of that run's watches), now
        and when one is asked for later, until `forget_prefix`."""
        with self._lock:
            self._stopped.add(prefix)
            events = [event for name, event in self._events.items() if name.startswith(prefix)]
        for event in events:
            event.set()

    def forget_prefix(self, prefix: str) -> None:
        """The run has ended: signals asked for with `prefix` start unset again."""
        with self._lock:
            self._stopped.discard(prefix)


STOP_SIGNALS = StopSignals()
