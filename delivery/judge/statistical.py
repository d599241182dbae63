"""Canary against stable over the same intervals, as Kayenta compares experiment with control.

Each conclusive interval is a *look* k = 1, 2, ... at all conclusive intervals so far:

- 5xx: one-sided Fisher exact test on the summed counts (canary's share of all errors, hypergeometric given
  the totals). Exact at any count, unlike the two-proportion z-test: for 3 canary errors in 1,000 requests
  against 1 in 9,000 (a 0.05% baseline) the z-test says p = 7e-6, the exact p is 0.004.
- latency: one-sided Mann-Whitney U on the Istio histogram buckets, each bucket one group of tied
  observations (the same U as expanding every bucket to its count of observations at its midpoint), with the
  tie-corrected variance; per interval U - E[U] and the variances are summed (stratified by interval), so
  traffic that changes over the canary does not bias it; normal approximation.

Look k may spend alpha_k = B / (k (k + 1)) of a test's budget B (the 5xx test gets `false_rollback_percent`
minus `latency_share_percent` of it, latency the share); sum over all k of 1 / (k (k + 1)) = 1. By the union
bound, for a canary whose 5xx rate is no higher and whose latency is no slower than stable's, P(any rollback,
over any number of intervals) <= false_rollback_percent (the latency part up to the normal approximation).
A test calls for a rollback only when also the effect reaches the practical minimum (5xx rate +0.1 points,
mean latency +5% by default), so smaller differences are never rolled back, however certain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from delivery.judge.evidence import IntervalEvidence, Verdict
from delivery.judge.histogram import bucket_counts, bucket_midpoints, shared_bounds
from delivery.judge.significance import fisher_exact_greater, grouped_mann_whitney, look_alpha, upper_p_value
from delivery.policy.models import StatisticalJudgeSettings


@dataclass(frozen=True)
class Finding:
    """One test at one look: both sides, the effect, the p-value against its alpha, and whether it calls for rollback."""

    check: str
    canary: str
    stable: str
    effect: str
    p_value: float
    alpha: float
    worse: bool

    def row(self) -> dict:
        return {
            "check": self.check,
            "canary": self.canary,
            "stable": self.stable,
            "effect": self.effect,
            "p_value": float(f"{self.p_value:.3g}"),
            "alpha": float(f"{self.alpha:.3g}"),
            "result": "fail" if self.worse else "pass",
        }

    def reason(self) -> str:
        verdict = "worse" if self.worse else "not shown worse"
        return f"{self.check}: canary {self.canary} vs stable {self.stable} ({self.effect}); p = {self.p_value:.3g}, alpha {self.alpha:.3g}: {verdict}"


@dataclass
class ErrorRates:
    """Both sides' 5xx and request counts over the conclusive intervals so far."""

    canary_errors: int = 0
    canary_requests: int = 0
    stable_errors: int = 0
    stable_requests: int = 0

    def add(self, canary_errors: float, canary_requests: float, stable_errors: float, stable_requests: float) -> None:
        """Add one interval; `increase()` gives fractions, the exact test counts whole requests."""
        self.canary_requests += round(canary_requests)
        self.canary_errors += min(round(canary_errors), round(canary_requests))
        self.stable_requests += round(stable_requests)
        self.stable_errors += min(round(stable_errors), round(stable_requests))

    def test(self, alpha: float, min_increase_points: float) -> Finding:
        canary_rate = 100 * self.canary_errors / self.canary_requests
        stable_rate = 100 * self.stable_errors / self.stable_requests
        p = fisher_exact_greater(self.canary_errors, self.canary_requests, self.stable_errors, self.stable_requests)
        increase = canary_rate - stable_rate
        return Finding(
            check="5xx rate (Fisher exact)",
            canary=f"{canary_rate:.3g}% ({self.canary_errors} of {self.canary_requests})",
            stable=f"{stable_rate:.3g}% ({self.stable_errors} of {self.stable_requests})",
            effect=f"{increase:+.3g} points, rollback from +{min_increase_points:g}",
            p_value=p,
            alpha=alpha,
            worse=p <= alpha and increase >= min_increase_points,
        )


@dataclass
class Latencies:
    """Mann-Whitney U deviations and variances summed over the conclusive intervals, and each side's mean latency."""

    deviation: float = 0.0
    variance: float = 0.0
    canary_count: float = 0.0
    canary_sum_ms: float = 0.0
    stable_count: float = 0.0
    stable_sum_ms: float = 0.0

    def add(self, canary: list[float], stable: list[float], midpoints: list[float]) -> None:
        """Add one interval's bucket counts (same buckets on both sides)."""
        rank_sum = grouped_mann_whitney(canary, stable)
        self.deviation += rank_sum.u - rank_sum.mean
        self.variance += rank_sum.variance
        self.canary_count += sum(canary)
        self.canary_sum_ms += sum(c * m for c, m in zip(canary, midpoints))
        self.stable_count += sum(stable)
        self.stable_sum_ms += sum(s * m for s, m in zip(stable, midpoints))

    def test(self, alpha: float, min_increase_percent: float) -> Finding:
        canary_mean, stable_mean = self.canary_sum_ms / self.canary_count, self.stable_sum_ms / self.stable_count
        increase = 100 * (canary_mean / stable_mean - 1) if stable_mean > 0 else (math.inf if canary_mean > 0 else 0.0)
        p = upper_p_value(self.deviation, self.variance)
        return Finding(
            check="latency (Mann-Whitney U)",
            canary=f"mean {canary_mean:.3g} ms",
            stable=f"mean {stable_mean:.3g} ms",
            effect=f"{increase:+.3g}%, rollback from +{min_increase_percent:g}%",
            p_value=p,
            alpha=alpha,
            worse=p <= alpha and increase >= min_increase_percent,
        )


class StatisticalJudge:
    """Rolls back as soon as the canary is shown worse than stable; inconclusive intervals count like Flagger's."""

    def __init__(
        self, settings: StatisticalJudgeSettings, *, threshold: int, on_inconclusive: Literal["fail", "pause"] = "fail"
    ) -> None:
        self.settings = settings
        self.threshold = threshold  # failed checks (here: counted inconclusive intervals) that roll back
        self.count_inconclusive = on_inconclusive == "fail"
        self.failed_checks = 0
        self.looks = 0
        self.errors = ErrorRates()
        self.latencies = Latencies()
        self.stopped: list[str] = []

    def judge(self, evidence: IntervalEvidence) -> Verdict:
        """Add the interval when both sides have enough data, then test everything so far."""
        if self.stopped:
            return Verdict("rollback", self.failed_checks, [*self.stopped, "already rolled back"])
        missing = self.missing_data(evidence)
        if missing:
            return self.inconclusive(missing)
        canary, stable = evidence.canary, evidence.stable
        bounds = shared_bounds(canary.latency_buckets, stable.latency_buckets)
        self.looks += 1
        self.errors.add(canary.errors, canary.requests, stable.errors, stable.requests)
        self.latencies.add(
            bucket_counts(canary.latency_buckets, bounds), bucket_counts(stable.latency_buckets, bounds), bucket_midpoints(bounds)
        )
        budget = self.settings.false_rollback_percent / 100
        latency_budget = budget * self.settings.latency_share_percent / 100
        findings = [
            self.errors.test(look_alpha(budget - latency_budget, self.looks), self.settings.min_error_rate_increase_points),
            self.latencies.test(look_alpha(latency_budget, self.looks), self.settings.min_latency_increase_percent),
        ]
        reasons = [f.reason() for f in findings]
        rows = [f.row() for f in findings]
        scope = (
            f"look {self.looks} at interval {evidence.number}: all {self.looks} conclusive interval(s) so far, "
            f"at most {self.settings.false_rollback_percent:g}% false rollbacks over the canary"
        )
        if any(f.worse for f in findings):
            self.failed_checks += 1
            self.stopped = [*(f.reason() for f in findings if f.worse), scope]
            return Verdict("rollback", self.failed_checks, [*reasons, scope], rows)
        return Verdict("pass", self.failed_checks, [*reasons, scope], rows)

    def missing_data(self, evidence: IntervalEvidence) -> list[str]:
        """Why this interval cannot be compared: a side unread, too few requests, or no usable histogram."""
        least = self.settings.min_requests
        why = []
        for name, side in (("canary", evidence.canary), ("stable", evidence.stable)):
            if side is None:
                why.append(f"{name}: no data (the queries could not be read)")
            elif not (math.isfinite(side.requests) and math.isfinite(side.errors)):
                why.append(f"{name}: the counts are not numbers ({side.requests:g} requests, {side.errors:g} 5xx)")
            elif side.requests < least:
                why.append(f"{name}: {side.requests:g} requests, fewer than min_requests {least}")
        if why:
            return why
        bounds = shared_bounds(evidence.canary.latency_buckets, evidence.stable.latency_buckets)
        if not bounds:
            return ["latency: the two histograms share no finite bucket and +Inf"]
        for name, side in (("canary", evidence.canary), ("stable", evidence.stable)):
            observed = sum(bucket_counts(side.latency_buckets, bounds))
            if not observed >= least:
                why.append(f"{name}: {observed:g} latency observations, fewer than min_requests {least}")
        return why

    def inconclusive(self, why: list[str]) -> Verdict:
        if self.count_inconclusive:
            self.failed_checks += 1
            why = [*why, f"counted as a failed check (on_inconclusive: fail), {self.failed_checks} of threshold {self.threshold}"]
        else:
            why = [*why, "not counted (on_inconclusive: pause)"]
        if self.failed_checks >= self.threshold:
            self.stopped = [*why, f"{self.failed_checks} failed checks reached the threshold {self.threshold}"]
            return Verdict("rollback", self.failed_checks, self.stopped)
        return Verdict("inconclusive", self.failed_checks, why)
