"""The post-switch watch (R-BG-3, R-MON): one check's verdict from two readings, and the tally."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from delivery.metrics.prometheus import PrometheusClient, Reading
from delivery.metrics.templates import QueryTarget, render_query
from delivery.policy.models import Policy

Verdict = Literal["ok", "alert", "rollback", "inconclusive"]


@dataclass(frozen=True)
class Check:
    """One watch check: the numbers read and what they mean."""

    number: int
    error_rate_percent: Reading
    response_time_seconds: Reading
    verdict: Verdict
    reason: str

    def row(self) -> dict:
        return {
            "check": self.number,
            "error rate %": str(self.error_rate_percent),
            "response time s": str(self.response_time_seconds),
            "verdict": self.verdict,
            "reason": self.reason,
        }


def judge_check(number: int, error_rate: Reading, response_time: Reading, policy: Policy) -> Check:
    """Roll back past the blue-green thresholds; alert past R-MON's; inconclusive when a reading is missing."""
    bg, watch = policy.blue_green, policy.watch
    limit_seconds = bg.max_response_time.total_seconds()
    breaches = []
    if error_rate.conclusive and error_rate.value > bg.max_error_rate_percent:
        breaches.append(f"error rate {error_rate.value:.3g}% > {bg.max_error_rate_percent:g}%")
    if response_time.conclusive and response_time.value > limit_seconds:
        breaches.append(f"response time {response_time.value:.3g}s > {limit_seconds:g}s")
    if breaches:
        return Check(number, error_rate, response_time, "rollback", " and ".join(breaches))
    missing = [r for r in (error_rate, response_time) if not r.conclusive]
    if missing:
        return Check(number, error_rate, response_time, "inconclusive", "; ".join(r.inconclusive for r in missing))
    if error_rate.value > watch.alert_error_rate_percent:
        return Check(number, error_rate, response_time, "alert", f"error rate {error_rate.value:.3g}% > {watch.alert_error_rate_percent:g}%")
    return Check(number, error_rate, response_time, "ok", "within thresholds")


@dataclass
class WatchTally:
    """Counts failed checks; the watch fails on a rollback verdict or too many inconclusive ones."""

    tolerated_failed_checks: int
    checks: list[Check] = field(default_factory=list)

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


def read_check(number: int, prometheus: PrometheusClient, policy: Policy, target: WatchTarget) -> Check:
    """Query the watch's two templates for `target` and judge them."""
    query_target = QueryTarget(
        namespace=target.namespace,
        service=target.service,
        target=target.workload,
        version=target.version,
        interval=policy.watch.query_window,
    )
    templates = policy.metric_templates
    error_rate = prometheus.query(render_query(templates[policy.watch.error_rate_metric], query_target))
    response_time = prometheus.query(render_query(templates[policy.watch.response_time_metric], query_target))
    return judge_check(number, error_rate, response_time, policy)


def run_watch(
    prometheus: PrometheusClient,
    policy: Policy,
    target: WatchTarget,
    duration: timedelta,
    on_check: Callable[[Check, float], None],
    sleep: Callable[[float], None] = time.sleep,
) -> WatchTally:
    """Check every `watch.interval` for `duration`; stop early when a rollback is due. `on_check(check, percent_done)`."""
    interval = policy.watch.interval.total_seconds()
    total = max(1, round(duration.total_seconds() / interval))
    tally = WatchTally(policy.watch.tolerated_failed_checks)
    for number in range(1, total + 1):
        sleep(interval)
        check = read_check(number, prometheus, policy, target)
        tally.add(check)
        on_check(check, 100 * number / total)
        if tally.must_roll_back:
            break
    return tally
