"""What a judge reads each analysis interval, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from delivery.metrics.prometheus import Reading

Outcome = Literal["pass", "fail", "inconclusive", "rollback"]


@dataclass(frozen=True)
class SideSample:
    """One side (canary or stable) over one interval: requests, 5xx, and (le ms, cumulative count) latency buckets."""

    requests: float
    errors: float
    latency_buckets: tuple[tuple[float, float], ...]  # as `sum(increase(..._bucket[i])) by (le)`; +Inf is math.inf


@dataclass(frozen=True)
class IntervalEvidence:
    """Interval `number`'s samples (None: could not be read) and the canary's template readings by metric name."""

    number: int
    canary: SideSample | None
    stable: SideSample | None
    metrics: dict[str, Reading] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """A judge's answer for one interval; `rollback` means stop now, `rows` feed a table artifact."""

    outcome: Outcome
    failed_checks: int
    reasons: list[str]
    rows: list[dict] = field(default_factory=list)


class Judge(Protocol):
    """Judges one canary interval by interval; stateful, so one judge per release."""

    def judge(self, evidence: IntervalEvidence) -> Verdict: ...
