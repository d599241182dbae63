"""The release's Prefect-free state machine: the canary schedule, what an interval means, the watch's stop signal."""

from __future__ import annotations

import threading
from datetime import timedelta

from delivery.judge import Verdict
from delivery.metrics.prometheus import Reading
from delivery.policy.loader import load_policy
from delivery.release.canary import CanaryStep, canary_steps
from delivery.release.canary_schedule import Analyse, AskPerson, SetWeight, canary_schedule, judge_interval
from delivery.release.watch import StopSignals, WatchTarget, run_watch
from tests.conftest import REPO

POLICY = load_policy(REPO / "policies" / "tripgen.yaml")
SECOND = timedelta(seconds=1)


def test_the_schedule_asks_before_a_paused_step_sets_each_weight_and_numbers_the_intervals():
    steps = [CanaryStep(5, 2 * SECOND), CanaryStep(25, 1 * SECOND, pause_before=True), CanaryStep(100, 1 * SECOND)]
    actions = list(canary_schedule(steps, SECOND))
    assert actions == [
        SetWeight(steps[0]), Analyse(steps[0], 1), Analyse(steps[0], 2),
        AskPerson(steps[1]), SetWeight(steps[1]), Analyse(steps[1], 3),
        SetWeight(steps[2]), Analyse(steps[2], 4),
    ]
    assert actions[3].why == "before the 25% step"


def test_the_production_policy_walks_the_spec_stages():
    weights = [a.step.weight for a in canary_schedule(canary_steps(POLICY.canary), POLICY.canary.analysis.interval) if isinstance(a, SetWeight)]
    assert weights == [5, 25, 50, 100]  # R-CAN-2


def test_an_interval_aborts_on_the_stage_limit_or_the_judge_and_asks_when_inconclusive_under_pause():
    step = CanaryStep(5, 10 * SECOND, max_error_rate_percent=0.1)
    fine = Verdict("continue", 0, [])
    assert judge_interval(step, fine, 0, 10_000, POLICY).action == "continue"
    assert judge_interval(step, fine, 300, 10_000, POLICY).action == "abort"  # 3%: above R-CAN-4's 1% abort
    assert judge_interval(step, Verdict("rollback", 5, ["success rate 90% < 99%"]), 0, 10_000, POLICY).reason == "success rate 90% < 99%"
    paused = POLICY.model_copy(update={"canary": POLICY.canary.model_copy(update={"on_inconclusive": "pause"})})
    unsure = Verdict("inconclusive", 1, ["no canary requests"])
    assert judge_interval(step, unsure, None, None, paused).action == "ask"
    assert judge_interval(step, unsure, None, None, POLICY).action == "continue"  # the judge counts it as a failed check


class Unreadable:
    """A Prometheus whose every query is inconclusive."""

    def query(self, promql: str) -> Reading:
        return Reading(promql, inconclusive="prometheus unreachable")


def test_unreadable_metrics_fail_the_watch_never_pass_it():
    policy = POLICY.model_copy(update={"watch": POLICY.watch.model_copy(update={"interval": timedelta(milliseconds=1)})})
    tally = run_watch(Unreadable(), policy, WatchTarget("production", "user-service", "user-service-green"),
                      timedelta(milliseconds=30), lambda check, done: None)
    assert tally.must_roll_back is not None and all(c.verdict == "inconclusive" for c in tally.checks)


def test_a_stop_signal_ends_a_watch_as_cancelled_without_another_check():
    signals = StopSignals()
    stop = signals.get("batch-1")
    stop.set()
    tally = run_watch(Unreadable(), POLICY, WatchTarget("production", "user-service", "user-service-green"),
                      POLICY.environments["production"].watch, lambda check, done: None, stop)
    assert tally.cancelled and tally.checks == []
    signals.forget("batch-1")
    assert not signals.get("batch-1").is_set()  # a new batch gets a fresh signal


def test_a_stopped_run_s_watches_that_start_later_are_stopped_at_once():
    """A lost lock between a switch and its watch's start: the watch must not run its whole length."""
    signals = StopSignals()
    signals.stop_prefixed("run-1")
    assert signals.get("run-1-batch-user-service").is_set() and not signals.get("run-2-batch-user-service").is_set()
    signals.forget("run-1-batch-user-service")
    signals.forget_prefix("run-1")
    assert not signals.get("run-1-batch-user-service").is_set()


def test_a_watch_waits_its_interval_on_the_signal_so_setting_it_ends_the_wait():
    stop, seen = threading.Event(), []
    waiting = threading.Thread(target=lambda: seen.append(run_watch(
        Unreadable(), POLICY, WatchTarget("production", "user-service", "user-service-green"),
        POLICY.environments["production"].watch, lambda check, done: None, stop)))
    waiting.start()
    stop.set()  # the production policy's interval is 60 s: only the signal can end this wait
    waiting.join(30)
    assert not waiting.is_alive() and seen[0].cancelled
