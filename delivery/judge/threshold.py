"""Flagger's analysis: each interval every metric against its min/max; `threshold` failed checks roll back.

Counting follows Flagger (pkg/controller/scheduler.go, `advanceCanary`): an interval whose analysis fails adds
one to `status.failedChecks` (`SetStatusFailedChecks(cd, cd.Status.FailedChecks+1)`), however many metrics
failed in it; a later passing interval does not reset it (only a new revision does: `FailedChecks: 0`); and
"when the number of failed checks reaches the canary analysis threshold, the traffic is routed back to the
primary" (docs.flagger.app, Istio progressive delivery, automated rollback). Flagger acts on the count at its
next tick; this judge says `rollback` in the interval that reaches it. A metric without a value is a failed
check in Flagger ("Halt advancement no values found"); here it is `inconclusive`, counted as failed only
under `on_inconclusive: fail` (with `pause` the caller asks a person).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from delivery.judge.evidence import IntervalEvidence, Outcome, Verdict
from delivery.metrics.prometheus import Reading
from delivery.policy.models import Analysis, AnalysisMetric


@dataclass(frozen=True)
class MetricCheck:
    """One metric's reading in one interval against its range."""

    metric: AnalysisMetric
    value: float | None
    result: Literal["pass", "fail", "inconclusive"]
    detail: str

    def row(self) -> dict:
        return {
            "check": self.metric.name,
            "value": self.value,
            "threshold": limits(self.metric),
            "dry_run": self.metric.dry_run,
            "result": self.result,
            "detail": self.detail,
        }


def limits(metric: AnalysisMetric) -> str:
    """The accepted range as text: `>= 99`, `<= 500`, `>= 1, <= 5`, or `any value`."""
    parts = ([f">= {metric.min:g}"] if metric.min is not None else []) + ([f"<= {metric.max:g}"] if metric.max is not None else [])
    return ", ".join(parts) or "any value"


def check_metric(metric: AnalysisMetric, reading: Reading | None) -> MetricCheck:
    """Pass when the value is within [min, max]; inconclusive when there is no finite value."""
    if reading is None:
        return MetricCheck(metric, None, "inconclusive", f"{metric.name}: no reading")
    if not reading.conclusive or reading.value is None or not math.isfinite(reading.value):
        why = reading.inconclusive or f"the value is {reading.value}"
        return MetricCheck(metric, None, "inconclusive", f"{metric.name}: inconclusive ({why})")
    value = reading.value
    if metric.min is not None and value < metric.min:
        return MetricCheck(metric, value, "fail", f"{metric.name} {value:g} < min {metric.min:g}")
    if metric.max is not None and value > metric.max:
        return MetricCheck(metric, value, "fail", f"{metric.name} {value:g} > max {metric.max:g}")
    return MetricCheck(metric, value, "pass", f"{metric.name} {value:g} within {limits(metric)}")


class ThresholdJudge:
    """Flagger's fixed thresholds with cumulative failed checks per revision; one judge per release."""

    def __init__(self, analysis: Analysis, on_inconclusive: Literal["fail", "pause"] = "fail") -> None:
        self.analysis = analysis
        self.count_inconclusive = on_inconclusive == "fail"
        self.failed_checks = 0

    def judge(self, evidence: IntervalEvidence) -> Verdict:
        """Check every metric; a failing (or, under `fail`, unreadable) gating metric adds one failed check."""
        checks = [check_metric(m, evidence.metrics.get(m.name)) for m in self.analysis.metrics]
        gating = [c for c in checks if not c.metric.dry_run]
        failed = [c.detail for c in gating if c.result == "fail"]
        unread = [c.detail for c in gating if c.result == "inconclusive"]
        reasons = failed + unread + [f"{c.detail} (dry run: never gates)" for c in checks if c.metric.dry_run and c.result != "pass"]
        outcome: Outcome = "fail" if failed else "inconclusive" if unread else "pass"
        if failed or (unread and self.count_inconclusive):
            self.failed_checks += 1
        if unread and not failed:
            reasons.append("counted as a failed check (on_inconclusive: fail)" if self.count_inconclusive else "not counted (on_inconclusive: pause)")
        if self.failed_checks >= self.analysis.threshold:
            outcome = "rollback"
            reasons.append(f"{self.failed_checks} failed checks reached the threshold {self.analysis.threshold}")
        elif outcome == "pass":
            reasons.append(f"all {len(gating)} gating checks passed; {self.failed_checks} of {self.analysis.threshold} failed checks so far")
        else:
            reasons.append(f"failed checks {self.failed_checks} of threshold {self.analysis.threshold}")
        return Verdict(outcome, self.failed_checks, reasons, [c.row() for c in checks])
