"""The statistical judge's tests: one-sided Fisher exact on 5xx counts, grouped Mann-Whitney U, alpha per look."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NEGLIGIBLE = 1e-17  # a tail term this small relative to the sum so far no longer changes a float


def fisher_exact_greater(canary_errors: int, canary_requests: int, stable_errors: int, stable_requests: int) -> float:
    """One-sided p-value that the canary fails more often: P(X >= canary_errors), X hypergeometric given the totals."""
    population, errors, drawn = canary_requests + stable_requests, canary_errors + stable_errors, canary_requests
    low, high = max(0, drawn - (population - errors)), min(errors, drawn)
    if canary_errors <= low:
        return 1.0
    if canary_errors > high:
        return 0.0
    if canary_errors > drawn * errors / population:
        return min(1.0, _tail_sum(canary_errors, high, population, errors, drawn))
    return max(0.0, 1.0 - _tail_sum(canary_errors - 1, low, population, errors, drawn))


def _tail_sum(start: int, end: int, population: int, errors: int, drawn: int) -> float:
    """Sum of hypergeometric probabilities from `start` toward `end` (either direction), away from the mode."""
    term = math.exp(_log_choose(errors, start) + _log_choose(population - errors, drawn - start) - _log_choose(population, drawn))
    step = 1 if end >= start else -1
    total, x = 0.0, start
    while True:
        total += term
        if x == end or term < total * _NEGLIGIBLE:
            return total
        if step > 0:
            term *= (errors - x) * (drawn - x) / ((x + 1) * (population - errors - drawn + x + 1))
        else:
            term *= x * (population - errors - drawn + x) / ((errors - x + 1) * (drawn - x + 1))
        x += step


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


@dataclass(frozen=True)
class RankSum:
    """Mann-Whitney U of canary over stable (ties count one half), with its mean and variance when both sides are alike."""

    u: float
    mean: float
    variance: float


def grouped_mann_whitney(canary: Sequence[float], stable: Sequence[float]) -> RankSum:
    """U over ordered groups (histogram buckets): each observation tied with its bucket, variance tie-corrected."""
    n1, n2 = sum(canary), sum(stable)
    total = n1 + n2
    u = below = ties = 0.0
    for in_canary, in_stable in zip(canary, stable, strict=True):
        u += in_canary * (below + in_stable / 2)
        below += in_stable
        tied = in_canary + in_stable
        ties += tied**3 - tied
    variance = n1 * n2 / 12 * ((total + 1) - ties / (total * (total - 1))) if total > 1 else 0.0
    return RankSum(u, n1 * n2 / 2, variance)


def upper_p_value(deviation: float, variance: float) -> float:
    """One-sided p-value of a sum of deviations from the null mean, by the normal approximation."""
    if variance <= 0:
        return 1.0
    return NormalDist().cdf(-deviation / math.sqrt(variance))


def look_alpha(budget: float, look: int) -> float:
    """What look 1, 2, 3 ... may spend of `budget`: budget / (look (look + 1)); all looks together spend `budget`."""
    return budget / (look * (look + 1))
