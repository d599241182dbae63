"""Latency histograms as Prometheus returns them (le, cumulative count), turned into per-bucket counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

Histogram = Sequence[tuple[float, float]]


def cumulative_counts(histogram: Histogram) -> dict[float, float]:
    """le -> cumulative count; duplicate `le` add up and counts never decrease, as `histogram_quantile` has it."""
    merged: dict[float, float] = {}
    for bound, count in histogram:
        merged[bound] = merged.get(bound, 0.0) + count
    running, out = 0.0, {}
    for bound in sorted(merged):
        running = max(running, merged[bound])
        out[bound] = running
    return out


def shared_bounds(*histograms: Histogram) -> list[float]:
    """The `le` bounds every histogram has, ascending; empty unless all have +Inf and a finite bound."""
    common = set.intersection(*(set(b for b, _ in h) for h in histograms))
    return sorted(common) if math.inf in common and len(common) > 1 else []


def bucket_counts(histogram: Histogram, bounds: Sequence[float]) -> list[float]:
    """Observations per bucket (previous bound, bound] for `bounds` (each one present in `histogram`)."""
    cumulative = cumulative_counts(histogram)
    counts, below = [], 0.0
    for bound in bounds:
        counts.append(cumulative[bound] - below)
        below = cumulative[bound]
    return counts


def bucket_midpoints(bounds: Sequence[float]) -> list[float]:
    """One value per bucket: its middle (the first starts at 0); the +Inf bucket gets its lower bound."""
    points, lower = [], 0.0
    for bound in bounds:
        points.append(lower if math.isinf(bound) else (lower + bound) / 2)
        lower = bound
    return points


def observations(histogram: Histogram) -> float:
    """The histogram's total count (its +Inf bucket; 0 without one)."""
    return cumulative_counts(histogram).get(math.inf, 0.0)


class PooledHistogram:
    """Histograms of several intervals added up, over the `le` bounds every one of them has."""

    def __init__(self) -> None:
        self.cumulative: dict[float, float] = {}
        self.intervals = 0

    def add(self, histogram: Histogram) -> None:
        counts = cumulative_counts(histogram)
        if self.intervals:
            counts = {le: self.cumulative[le] + count for le, count in counts.items() if le in self.cumulative}
        self.cumulative = counts
        self.intervals += 1

    @property
    def buckets(self) -> tuple[tuple[float, float], ...]:
        return tuple(sorted(self.cumulative.items()))
