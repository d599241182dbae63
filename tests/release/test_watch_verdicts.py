"""Watch verdicts: confident 5xx breaches and slow responses roll back; noise and missing data do not pass."""

import pytest

from delivery.metrics.prometheus import Reading
from delivery.policy.models import Policy
from delivery.release.stats import wilson_interval
from delivery.release.watch import WatchTally, judge_check

POLICY = Policy()  # roll back above 0.5% 5xx or 10 s; alert above 1%; 95% confidence


def _r(value):
    return Reading("q", value=value)


def _none(reason="empty result"):
    return Reading("q", inconclusive=reason)


def test_wilson_interval_matches_the_textbook():
    low, high = wilson_interval(10, 100, 95)
    assert low == pytest.approx(0.0552, abs=1e-4) and high == pytest.approx(0.1744, abs=1e-4)
    assert wilson_interval(0, 0, 95) == (0.0, 1.0)


@pytest.mark.parametrize(
    "requests, errors, p95, verdict",
    [
        (10_000, 5, 0.12, "ok"),  # 0.05%: healthy
        (150, 2, 0.12, "alert"),  # 1.3% on 150 requests: above 1%, not confidently above 0.5%
        (200, 10, 0.12, "rollback"),  # 5%: confidently above 0.5%
        (10_000, 80, 0.12, "rollback"),  # 0.8% on a big sample
        (10_000, 5, 12.0, "rollback"),  # p95 over 10 s
        (0, 0, 0.12, "inconclusive"),  # no traffic
    ],
)
def test_verdicts(requests, errors, p95, verdict):
    assert judge_check(1, _r(requests), _r(errors), _r(p95), POLICY).verdict == verdict


def test_a_missing_reading_is_inconclusive_never_ok():
    check = judge_check(1, _r(500), _none("Prometheus at x is unreachable"), _r(0.1), POLICY)
    assert check.verdict == "inconclusive" and "unreachable" in check.reason


def test_a_breach_wins_over_a_missing_reading():
    assert judge_check(1, _r(200), _r(20), _none(), POLICY).verdict == "rollback"


def test_rollback_reason_carries_the_numbers():
    reason = judge_check(1, _r(200), _r(10), _r(0.1), POLICY).reason
    assert "5xx rate 5% (10 of 200" in reason and "> 0.5%" in reason


def test_extrapolated_errors_above_the_requests_count_as_every_request_failed():
    reason = judge_check(1, _r(34.1), _r(34.4), _r(0.1), POLICY).reason
    assert "5xx rate 100% (34 of 34)" in reason, reason


def test_tally_rolls_back_after_tolerated_inconclusive_checks():
    tally = WatchTally(tolerated_failed_checks=1)
    tally.add(judge_check(1, _none(), _r(0), _r(0.1), POLICY))
    assert tally.must_roll_back is None
    tally.add(judge_check(2, _r(100), _r(0), _r(0.1), POLICY))
    tally.add(judge_check(3, _none(), _r(0), _r(0.1), POLICY))
    assert tally.must_roll_back is not None and tally.failed_checks == 2


def test_more_looks_need_stronger_evidence():
    """Bonferroni: 2 errors in 150 roll back a single check, not one of a 30-check watch."""
    from delivery.release.stats import per_look_confidence

    assert per_look_confidence(95, 30) == pytest.approx(99.8333, abs=1e-3)
    assert judge_check(1, _r(150), _r(3), _r(0.1), POLICY, looks=1).verdict == "rollback"
    assert judge_check(1, _r(150), _r(3), _r(0.1), POLICY, looks=30).verdict != "rollback"


# --- R-MON: the pods' CPU, memory and restarts in each check -------------------------------------

GI = 2**30


def _pods(*pods):
    from delivery.kube.metrics import PodUsage, ResourceSample

    return ResourceSample(tuple(PodUsage(name, cpu, memory, GI, restarts, why) for name, cpu, memory, restarts, why in pods))


def _ok_check():
    return judge_check(1, _r(10_000), _r(5), _r(0.12), POLICY)


def test_a_pod_over_its_memory_limit_or_restarted_during_the_watch_rolls_back():
    from delivery.release.watch import with_resources

    healthy = with_resources(_ok_check(), _pods(("a", 250, 0.5 * GI, 1, None)), {"a": 1})
    assert healthy.verdict == "ok" and healthy.row()["memory"] == "512Mi/1024Mi" and healthy.row()["cpu"] == "250m"
    leaky = with_resources(_ok_check(), _pods(("a", 250, 1.25 * GI, 1, None)), {"a": 1})
    assert leaky.verdict == "rollback" and leaky.reason == "a uses 1280Mi of memory, over its limit 1024Mi"
    restarted = with_resources(_ok_check(), _pods(("a", 250, 0.5 * GI, 3, "OOMKilled"), ("b", 90, 0.4 * GI, 0, None)), {"a": 1})
    assert restarted.verdict == "rollback"
    assert restarted.reason == "a restarted 2 time(s) during the watch, last terminated OOMKilled"
    assert restarted.row()["restarts"] == "3 0"


def test_a_5xx_rollback_keeps_its_reason_and_adds_the_pods_problem():
    from delivery.release.watch import with_resources

    failing = judge_check(1, _r(200), _r(10), _r(0.12), POLICY)
    both = with_resources(failing, _pods(("a", 250, 1.5 * GI, 0, None)), {})
    assert both.verdict == "rollback" and both.reason.startswith(failing.reason + " and a uses 1536Mi")


def test_unreadable_pod_metrics_make_a_passing_check_inconclusive_never_a_pass():
    from delivery.kube.metrics import PodUsage, ResourceSample
    from delivery.release.watch import with_resources

    sample = ResourceSample((PodUsage("a", None, None, GI, 0),), "metrics.k8s.io answered 404 Not Found: is metrics-server installed?")
    check = with_resources(_ok_check(), sample, {"a": 0})
    assert check.verdict == "inconclusive" and check.reason.startswith("pod metrics: metrics.k8s.io answered 404")
    assert check.row()["memory"].startswith("unreadable: metrics.k8s.io answered 404")
    restarted = with_resources(_ok_check(), ResourceSample((PodUsage("a", None, None, GI, 2),), "down"), {"a": 0})
    assert restarted.verdict == "rollback"  # restarts come from the pods' statuses
