"""Canary against stable over the same intervals, as Kayenta compares experiment with control.

Each conclusive interval is a *look* k = 1, 2, ... at all conclusive intervals so far:

- 5xx: one-sided exact test on the summed counts: Fisher's (the canary's share of all errors, hypergeometric
  given the totals), with ties in that share broken by the canary's latest interval (among tables with as
  many canary errors, those with more of them in the latest interval count as more extreme; hypergeometric
  given the share). Exact and much less coarse than Fisher's alone. Unlike the two-proportion z-test it is
  right at any count: for 3 canary errors in 1,000 requests against 1 in 9,000 the z-test says p = 7e-6, the
  exact p is 0.004. Pooled over the intervals: assumes stable's 5xx rate does not drift while the weight changes.
- latency: one-sided Mann-Whitney U on the Istio histogram buckets, each bucket one group of tied
  observations (the same U as expanding every bucket to its count of observations at its midpoint), with the
  tie-corrected variance; per interval U - E[U] and the variances are summed (stratified by interval), so a
  latency that drifts while the canary weight changes does not bias it; normal approximation. An interval
  in which stable serves too little (a 100% canary weight) is compared with all of stable's earlier
  intervals pooled instead, which assumes stable's latency has not drifted since.

Look k may spend alpha_k of a test's budget B (the 5xx test gets `false_rollback_percent` minus
`latency_share_percent` of it, latency the share): looks 1 to m their `look_shares_percent` of B, every later
look the rest r as r m / ((k - 1) k), which sums to r over k > m. By the union bound, for a canary whose 5xx
rate is no higher and whose latency is no slower than stable's, P(any rollback, over any number of intervals)
<= false_rollback_percent (the latency part up to the normal approximation).
A test calls for a rollback only when also the effect reaches the practical minimum (5xx rate +0.1 points,
mean latency +5% by default), so smaller differences are never rolled back, however certain.
"""

from __future__ import annotations

import math
from typing import Literal

from delivery.judge.comparisons import ErrorRates, Latencies
from delivery.judge.evidence import IntervalEvidence, SideSample, Verdict
from delivery.judge.histogram import observations, shared_bounds
from delivery.judge.significance import look_alpha
from delivery.policy.models import StatisticalJudgeSettings


class StatisticalJudge:
    """Rolls back once the canary is shown worse than stable: no-worse canaries at most `false_rollback_percent` of the time.

    Inconclusive intervals count as failed checks toward `threshold` under `on_inconclusive: fail`, as Flagger's do.
    """

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
        """Add the interval when there is enough data, then test everything so far."""
        if self.stopped:
            return Verdict("rollback", self.failed_checks, [*self.stopped, "already rolled back"])
        missing = self.missing_data(evidence)
        if missing:
            return self.inconclusive(missing)
        canary, stable = evidence.canary, evidence.stable
        side_by_side = self.served(stable)
        self.looks += 1
        self.errors.add(canary.errors, canary.requests, stable.errors, stable.requests)
        if side_by_side:
            self.latencies.add_side_by_side(canary.latency_buckets, stable.latency_buckets)
        else:
            self.latencies.add_canary_alone(canary.latency_buckets, stable.latency_buckets)
        budget = self.settings.false_rollback_percent / 100
        latency_budget = budget * self.settings.latency_share_percent / 100
        shares = self.settings.look_shares_percent
        error_alpha = look_alpha(budget - latency_budget, self.looks, shares)
        latency_alpha = look_alpha(latency_budget, self.looks, shares)
        min_latency_increase = self.settings.min_latency_increase_percent
        findings = [
            self.errors.test(error_alpha, self.settings.min_error_rate_increase_points),
            self.latencies.test_side_by_side(latency_alpha, min_latency_increase)
            if side_by_side
            else self.latencies.test_against_history(latency_alpha, min_latency_increase),
        ]
        scope = (
            f"look {self.looks} at interval {evidence.number}: all {self.looks} conclusive interval(s) so far, "
            f"at most {self.settings.false_rollback_percent:g}% false rollbacks over the canary"
        )
        reasons, rows = [*(f.reason() for f in findings), scope], [f.row() for f in findings]
        if any(f.worse for f in findings):
            self.failed_checks += 1
            self.stopped = [*(f.reason() for f in findings if f.worse), scope]
            return Verdict("rollback", self.failed_checks, reasons, rows)
        return Verdict("pass", self.failed_checks, reasons, rows)

    def served(self, side: SideSample) -> bool:
        """At least `min_requests` requests and latency observations, as finite numbers."""
        least = self.settings.min_requests
        finite = math.isfinite(side.requests) and math.isfinite(side.errors)
        return finite and side.requests >= least and observations(side.latency_buckets) >= least

    def missing_data(self, evidence: IntervalEvidence) -> list[str]:
        """Why this interval cannot be judged: a side unread, a canary without traffic, nothing to compare with."""
        sides = (("canary", evidence.canary), ("stable", evidence.stable))
        unread = [f"{name}: no data (the queries could not be read)" for name, side in sides if side is None]
        if unread:
            return unread
        canary, stable, least = evidence.canary, evidence.stable, self.settings.min_requests
        if not self.served(canary):
            return [f"canary: {_amounts(canary)}, fewer than min_requests {least}"]
        if self.served(stable):
            comparable = shared_bounds(canary.latency_buckets, stable.latency_buckets)
            return [] if comparable else ["latency: canary and stable histograms share no bucket bounds"]
        history = self.latencies.stable_pool.buckets
        enough_history = self.errors.stable_requests >= least and observations(history) >= least
        if enough_history and shared_bounds(canary.latency_buckets, history):
            return []
        return [f"stable: {_amounts(stable)}, fewer than min_requests {least}, and no earlier stable data to compare with"]

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


def _amounts(side: SideSample) -> str:
    return f"{side.requests:g} requests, {side.errors:g} 5xx, {observations(side.latency_buckets):g} latency observations"
