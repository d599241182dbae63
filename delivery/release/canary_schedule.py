"""The canary's state machine (R-CAN), Prefect-free: what comes next, and what one analysis interval means."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from delivery.judge import Verdict
from delivery.policy.models import Policy
from delivery.release.canary import CanaryStep, canary_breach


@dataclass(frozen=True)
class AskPerson:
    """A manual point: a person decides before the step's weight is set."""

    step: CanaryStep

    @property
    def why(self) -> str:
        return f"before the {self.step.weight:g}% step"


@dataclass(frozen=True)
class SetWeight:
    step: CanaryStep


@dataclass(frozen=True)
class Analyse:
    step: CanaryStep
    number: int


CanaryAction = AskPerson | SetWeight | Analyse


def canary_schedule(steps: list[CanaryStep], interval: timedelta) -> Iterator[CanaryAction]:
    """Each step in order: maybe a person first, then its weight, then its analysis intervals (numbered 1, 2, …)."""
    number = 0
    for step in steps:
        if step.pause_before:
            yield AskPerson(step)
        yield SetWeight(step)
        for _ in range(step.intervals(interval)):
            number += 1
            yield Analyse(step, number)


@dataclass(frozen=True)
class IntervalOutcome:
    """What one interval's evidence means: go on, ask a person (inconclusive under `pause`), or abort."""

    action: Literal["continue", "ask", "abort"]
    reason: str


def judge_interval(step: CanaryStep, verdict: Verdict, canary_errors: float | None, canary_requests: float | None,
                   policy: Policy) -> IntervalOutcome:
    """The stage's own error limit and R-CAN-4's abort come first, then the judge's verdict."""
    if canary_errors is not None and canary_requests is not None:
        breach = canary_breach(step, canary_errors, canary_requests, policy)
        if breach:
            return IntervalOutcome("abort", breach)
    if verdict.outcome == "rollback":
        return IntervalOutcome("abort", "; ".join(verdict.reasons))
    if verdict.outcome == "inconclusive" and policy.canary.on_inconclusive == "pause":
        return IntervalOutcome("ask", f"analysis was inconclusive: {'; '.join(verdict.reasons)}")
    return IntervalOutcome("continue", "; ".join(verdict.reasons) or "within thresholds")
