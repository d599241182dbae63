"""Canary analysis judges: Flagger's fixed thresholds, or a statistical comparison with stable (docs/judges.md)."""

from __future__ import annotations

from delivery.judge.evidence import IntervalEvidence, Judge, Outcome, SideSample, Verdict
from delivery.judge.statistical import StatisticalJudge
from delivery.judge.threshold import ThresholdJudge
from delivery.policy.models import Canary

__all__ = [
    "IntervalEvidence", "Judge", "Outcome", "SideSample", "StatisticalJudge", "ThresholdJudge", "Verdict", "make_judge",
]


def make_judge(canary_policy: Canary) -> Judge:
    """A fresh judge for one release, as `canary_policy.judge` says."""
    if canary_policy.judge == "statistical":
        return StatisticalJudge(
            canary_policy.statistical, threshold=canary_policy.analysis.threshold, on_inconclusive=canary_policy.on_inconclusive
        )
    return ThresholdJudge(canary_policy.analysis, on_inconclusive=canary_policy.on_inconclusive)
