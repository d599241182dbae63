"""What the statistical judge adds up over a canary, and its tests on the sums (method: statistical.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from delivery.judge.histogram import Histogram, PooledHistogram, bucket_counts, bucket_midpoints, observations, shared_bounds
from delivery.judge.significance import ErrorCounts, error_rate_p_value, grouped_mann_whitney, upper_p_value


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
    """Both sides' 5xx and request counts over the conclusive intervals so far, and the canary's latest interval."""

    canary_errors: int = 0
    canary_requests: int = 0
    stable_errors: int = 0
    stable_requests: int = 0
    latest_errors: int = 0
    latest_requests: int = 0

    def add(self, canary_errors: float, canary_requests: float, stable_errors: float, stable_requests: float) -> None:
        """Add one interval; `increase()` gives fractions, the exact test counts whole requests."""
        self.latest_requests = round(canary_requests)
        self.latest_errors = min(round(canary_errors), self.latest_requests)
        self.canary_requests += self.latest_requests
        self.canary_errors += self.latest_errors
        self.stable_requests += round(stable_requests)
        self.stable_errors += min(round(stable_errors), round(stable_requests))

    def test(self, alpha: float, min_increase_points: float) -> Finding:
        """One-sided exact test (Fisher's, ties broken by the latest interval); a rollback also needs the rate `min_increase_points` higher."""
        canary_rate = 100 * self.canary_errors / self.canary_requests
        stable_rate = 100 * self.stable_errors / self.stable_requests
        counts = ErrorCounts(
            self.canary_errors, self.canary_requests, self.stable_errors, self.stable_requests, self.latest_errors, self.latest_requests
        )
        p = error_rate_p_value(counts)
        increase = canary_rate - stable_rate
        return Finding(
            check="5xx rate (Fisher exact, ties by the latest interval)",
            canary=f"{canary_rate:.3g}% ({self.canary_errors} of {self.canary_requests}; latest {self.latest_errors} of {self.latest_requests})",
            stable=f"{stable_rate:.3g}% ({self.stable_errors} of {self.stable_requests})",
            effect=f"{increase:+.3g} points, rollback from +{min_increase_points:g}",
            p_value=p,
            alpha=alpha,
            worse=p <= alpha and increase >= min_increase_points,
        )


@dataclass
class MeanLatency:
    """A running mean of bucketed latencies, each observation at its bucket's midpoint."""

    count: float = 0.0
    total_ms: float = 0.0

    def add(self, counts: Sequence[float], midpoints: Sequence[float]) -> None:
        self.count += sum(counts)
        self.total_ms += sum(c * m for c, m in zip(counts, midpoints))

    @property
    def ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0


def latency_finding(check: str, canary: MeanLatency, stable: MeanLatency, p: float, alpha: float, min_increase_percent: float) -> Finding:
    """The latency test's finding; a rollback also needs the canary's mean `min_increase_percent` above stable's."""
    increase = 100 * (canary.ms / stable.ms - 1) if stable.ms > 0 else (math.inf if canary.ms > 0 else 0.0)
    return Finding(
        check=check,
        canary=f"mean {canary.ms:.3g} ms ({canary.count:.0f})",
        stable=f"mean {stable.ms:.3g} ms ({stable.count:.0f})",
        effect=f"{increase:+.3g}%, rollback from +{min_increase_percent:g}%",
        p_value=p,
        alpha=alpha,
        worse=p <= alpha and increase >= min_increase_percent,
    )


class Latencies:
    """Mann-Whitney sums over the intervals both sides served, and pooled histograms for intervals stable did not."""

    def __init__(self) -> None:
        self.deviation = 0.0  # sum over side-by-side intervals of U - E[U]
        self.variance = 0.0
        self.canary_side_by_side, self.stable_side_by_side = MeanLatency(), MeanLatency()
        self.stable_pool = PooledHistogram()  # every stable interval with observations
        self.canary_alone = PooledHistogram()  # canary intervals without enough stable traffic

    def add_side_by_side(self, canary: Histogram, stable: Histogram) -> None:
        """One interval both sides served: its U joins the stratified sum."""
        bounds = shared_bounds(canary, stable)
        canary_counts, stable_counts, midpoints = bucket_counts(canary, bounds), bucket_counts(stable, bounds), bucket_midpoints(bounds)
        rank_sum = grouped_mann_whitney(canary_counts, stable_counts)
        self.deviation += rank_sum.u - rank_sum.mean
        self.variance += rank_sum.variance
        self.canary_side_by_side.add(canary_counts, midpoints)
        self.stable_side_by_side.add(stable_counts, midpoints)
        self.stable_pool.add(stable)

    def add_canary_alone(self, canary: Histogram, stable: Histogram) -> None:
        """One interval with (almost) no stable traffic, e.g. at a 100% canary weight."""
        self.canary_alone.add(canary)
        if observations(stable) > 0:
            self.stable_pool.add(stable)

    def test_side_by_side(self, alpha: float, min_increase_percent: float) -> Finding:
        """The stratified U over the side-by-side intervals."""
        p = upper_p_value(self.deviation, self.variance)
        return latency_finding("latency (Mann-Whitney U)", self.canary_side_by_side, self.stable_side_by_side, p, alpha, min_increase_percent)

    def test_against_history(self, alpha: float, min_increase_percent: float) -> Finding:
        """The canary's intervals without stable traffic against all of stable's intervals, pooled."""
        bounds = shared_bounds(self.canary_alone.buckets, self.stable_pool.buckets)
        canary_counts, stable_counts = bucket_counts(self.canary_alone.buckets, bounds), bucket_counts(self.stable_pool.buckets, bounds)
        rank_sum = grouped_mann_whitney(canary_counts, stable_counts)
        canary, stable = MeanLatency(), MeanLatency()
        canary.add(canary_counts, bucket_midpoints(bounds))
        stable.add(stable_counts, bucket_midpoints(bounds))
        p = upper_p_value(rank_sum.u - rank_sum.mean, rank_sum.variance)
        return latency_finding("latency against stable's earlier intervals (Mann-Whitney U)", canary, stable, p, alpha, min_increase_percent)
