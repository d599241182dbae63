"""Flagger's counting: failed checks add up per revision, the threshold rolls back, dry runs never gate."""

import math

import pytest

from delivery.judge import IntervalEvidence, StatisticalJudge, ThresholdJudge, make_judge
from delivery.metrics.prometheus import Reading
from delivery.policy.models import Analysis, AnalysisMetric, Canary

ANALYSIS = Analysis()  # request-success-rate >= 99, request-duration <= 500, threshold 5


def interval(number, success=99.5, duration=200.0, **extra):
    readings = {"request-success-rate": success, "request-duration": duration, **extra}
    metrics = {name: value if isinstance(value, Reading) else Reading("q", value=value) for name, value in readings.items() if value is not None}
    return IntervalEvidence(number, None, None, metrics)


def down(reason="Prometheus at http://prometheus:9090 is unreachable (ConnectError) after 4 attempt(s)"):
    return Reading("q", inconclusive=reason)


def test_failed_checks_are_cumulative_and_a_pass_does_not_reset_them():
    judge = ThresholdJudge(ANALYSIS)
    successes = [98, 99.5, 97, 99.9, 98.5, 90, 95]
    verdicts = [judge.judge(interval(n, success=s)) for n, s in enumerate(successes, 1)]
    assert [v.outcome for v in verdicts] == ["fail", "pass", "fail", "pass", "fail", "fail", "rollback"]
    assert [v.failed_checks for v in verdicts] == [1, 1, 2, 2, 3, 4, 5]
    assert "5 failed checks reached the threshold 5" in verdicts[-1].reasons
    assert "request-success-rate 95 < min 99" in verdicts[-1].reasons


def test_the_threshold_comes_from_the_policy():
    judge = ThresholdJudge(Analysis(threshold=2))
    assert [judge.judge(interval(n, duration=800)).outcome for n in (1, 2)] == ["fail", "rollback"]


def test_an_interval_adds_one_failed_check_however_many_metrics_fail():
    verdict = ThresholdJudge(ANALYSIS).judge(interval(1, success=50, duration=5000))
    assert verdict.outcome == "fail" and verdict.failed_checks == 1
    assert {"request-success-rate 50 < min 99", "request-duration 5000 > max 500"} <= set(verdict.reasons)


def test_values_on_the_limits_pass():
    verdict = ThresholdJudge(ANALYSIS).judge(interval(1, success=99, duration=500))
    assert verdict.outcome == "pass" and verdict.failed_checks == 0
    assert [row["result"] for row in verdict.rows] == ["pass", "pass"]


def test_rows_name_each_metric_value_threshold_and_result():
    verdict = ThresholdJudge(ANALYSIS).judge(interval(1, success=98.25))
    assert verdict.rows[0] == {
        "check": "request-success-rate", "value": 98.25, "threshold": ">= 99", "dry_run": False,
        "result": "fail", "detail": "request-success-rate 98.25 < min 99",
    }
    assert verdict.rows[1]["threshold"] == "<= 500" and verdict.rows[1]["result"] == "pass"


def test_a_dry_run_metric_is_evaluated_and_reported_but_never_fails_a_check():
    metrics = [*ANALYSIS.metrics, AnalysisMetric(name="error-rate", template="error-rate-5xx", max=0.5, dry_run=True)]
    judge = ThresholdJudge(Analysis(metrics=metrics, threshold=1))
    failing = judge.judge(interval(1, **{"error-rate": 7.0}))
    unread = judge.judge(interval(2, **{"error-rate": down()}))
    assert (failing.outcome, unread.outcome, judge.failed_checks) == ("pass", "pass", 0)
    assert failing.rows[2] == {
        "check": "error-rate", "value": 7.0, "threshold": "<= 0.5", "dry_run": True,
        "result": "fail", "detail": "error-rate 7 > max 0.5",
    }
    assert "error-rate 7 > max 0.5 (dry run: never gates)" in failing.reasons
    assert unread.rows[2]["result"] == "inconclusive"


def test_an_unreadable_metric_is_inconclusive_and_counts_as_failed_by_default():
    judge = ThresholdJudge(ANALYSIS)
    verdicts = [judge.judge(interval(n, duration=down())) for n in range(1, 6)]
    assert [v.outcome for v in verdicts] == ["inconclusive"] * 4 + ["rollback"]
    assert [v.failed_checks for v in verdicts] == [1, 2, 3, 4, 5]
    assert any("unreachable" in reason for reason in verdicts[0].reasons)
    assert "counted as a failed check (on_inconclusive: fail)" in verdicts[0].reasons


def test_with_pause_an_inconclusive_interval_is_left_to_the_caller_and_not_counted():
    judge = ThresholdJudge(ANALYSIS, on_inconclusive="pause")
    verdicts = [judge.judge(interval(n, success=down())) for n in range(1, 8)]
    assert {v.outcome for v in verdicts} == {"inconclusive"} and judge.failed_checks == 0
    assert "not counted (on_inconclusive: pause)" in verdicts[0].reasons


@pytest.mark.parametrize("reading", [None, Reading("q", value=math.nan), Reading("q", value=math.inf), down("empty result")])
def test_missing_or_non_finite_values_are_never_a_pass(reading):
    evidence = IntervalEvidence(1, None, None, {"request-success-rate": Reading("q", value=99.9)} | ({"request-duration": reading} if reading else {}))
    verdict = ThresholdJudge(ANALYSIS, on_inconclusive="pause").judge(evidence)
    assert verdict.outcome == "inconclusive" and verdict.rows[1]["value"] is None


def test_a_failing_metric_beside_an_unreadable_one_is_a_failure():
    verdict = ThresholdJudge(ANALYSIS, on_inconclusive="pause").judge(interval(1, success=90, duration=down()))
    assert verdict.outcome == "fail" and verdict.failed_checks == 1


def test_once_the_threshold_is_reached_every_later_interval_says_rollback():
    judge = ThresholdJudge(Analysis(threshold=1))
    assert judge.judge(interval(1, success=10)).outcome == "rollback"
    assert judge.judge(interval(2)).outcome == "rollback"


def test_make_judge_follows_the_policy():
    assert isinstance(make_judge(Canary()), ThresholdJudge)
    statistical = make_judge(Canary(judge="statistical", on_inconclusive="pause", analysis=Analysis(threshold=3)))
    assert isinstance(statistical, StatisticalJudge)
    assert (statistical.threshold, statistical.count_inconclusive) == (3, False)
    assert make_judge(Canary()) is not make_judge(Canary())
