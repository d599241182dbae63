"""The statistical judge's tests: one-sided exact test on 5xx counts, grouped Mann-Whitney U, alpha per look."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NEGLIGIBLE = 1e-17  # a tail term this small relative to the sum so far no longer changes a float


@dataclass(frozen=True)
class ErrorCounts:
    """Whole-request 5xx counts over the conclusive intervals so far, with the canary's latest interval apart."""

    canary_errors: int
    canary_requests: int
    stable_errors: int
    stable_requests: int
    latest_errors: int
    latest_requests: int


def error_rate_p_value(errors: ErrorCounts) -> float:
    """Fisher's one-sided p-value with ties in the canary's error total broken by its latest interval: exact, finer.

    P(S > s) + P(S = s) P(L >= l | S = s): S the canary's share of all errors (hypergeometric given the totals),
    L how many of the canary's S errors fall among its latest interval's requests (hypergeometric given S).
    """
    population, total = errors.canary_requests + errors.stable_requests, errors.canary_errors + errors.stable_errors
    s, drawn = errors.canary_errors, errors.canary_requests
    above = hypergeometric_upper_tail(s + 1, population, total, drawn)
    tied = hypergeometric_pmf(s, population, total, drawn)
    latest_as_bad = hypergeometric_upper_tail(errors.latest_errors, drawn, s, errors.latest_requests)
    return min(1.0, above + tied * latest_as_bad)


def hypergeometric_upper_tail(x: int, population: int, successes: int, drawn: int) -> float:
    """P(X >= x) for X the successes among `drawn` of `population` items, `successes` of them successes."""
    low, high = max(0, drawn - (population - successes)), min(successes, drawn)
    if x <= low:
        return 1.0
    if x > high:
        return 0.0
    if x > drawn * successes / population:
        return min(1.0, _tail_sum(x, high, population, successes, drawn))
    return max(0.0, 1.0 - _tail_sum(x - 1, low, population, successes, drawn))


def hypergeometric_pmf(x: int, population: int, successes: int, drawn: int) -> float:
    """P(X = x) for the same X."""
    if x < max(0, drawn - (population - successes)) or x > min(successes, drawn):
        return 0.0
    return math.exp(_log_choose(successes, x) + _log_choose(population - successes, drawn - x) - _log_choose(population, drawn))


def _tail_sum(start: int, end: int, population: int, errors: int, drawn: int) -> float:
    """Sum of hypergeometric probabilities from `start` toward `end` (either direction), away from the mode."""
    term = hypergeometric_pmf(start, population, errors, drawn)
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


def look_alpha(budget: float, look: int, first_shares_percent: Sequence[float]) -> float:
    """What look 1, 2, 3 ... may spend of `budget`; all looks together spend `budget`, whatever their number.

    Looks 1 to m spend their shares of it; every later look k spends the rest r as r m / ((k - 1) k), whose sum
    over k > m is r.
    """
    m = len(first_shares_percent)
    if look <= m:
        return budget * first_shares_percent[look - 1] / 100
    rest = budget * (1 - sum(first_shares_percent) / 100)
    return rest * m / ((look - 1) * look)
