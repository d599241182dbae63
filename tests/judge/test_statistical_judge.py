"""The statistical judge: exact 5xx test, grouped Mann-Whitney U, alpha per look, and its error rates."""

import itertools
import math
import random
from bisect import bisect_left
from dataclasses import replace

import pytest

from benchmarks.canary_judge import STABLE_SHARE, binomial, bucket_probabilities, simulate_side
from delivery.judge import IntervalEvidence, SideSample, StatisticalJudge
from delivery.judge.histogram import PooledHistogram, bucket_counts, bucket_midpoints, cumulative_counts, observations, shared_bounds
from delivery.judge.significance import (
    ErrorCounts,
    error_rate_p_value,
    grouped_mann_whitney,
    hypergeometric_pmf,
    hypergeometric_upper_tail,
    look_alpha,
    upper_p_value,
)
from delivery.policy.models import StatisticalJudgeSettings
from delivery.release.stats import wilson_interval
from delivery.sandbox.behavior import VersionBehavior
from delivery.sandbox.gateway import latency_seconds
from delivery.sandbox.telemetry import ISTIO_DURATION_BUCKETS_MS

SETTINGS = StatisticalJudgeSettings()  # 1% false rollbacks (5% of it for latency), looks 5% / 85% / rest, +0.1 points, +5%, 100 requests
BOUNDS = (25.0, 50.0, 100.0, math.inf)
STABLE = VersionBehavior(error_rate=0.01)


def side(requests, errors, per_bucket, bounds=BOUNDS):
    cumulative = itertools.accumulate(per_bucket)
    return SideSample(float(requests), float(errors), tuple(zip(bounds, map(float, cumulative))))


def judge():
    return StatisticalJudge(SETTINGS, threshold=5)


def fisher_exact_greater(canary_errors, canary_requests, stable_errors, stable_requests):
    """Fisher's one-sided p-value: the canary's share of all errors, hypergeometric given the totals."""
    return hypergeometric_upper_tail(canary_errors, canary_requests + stable_requests, canary_errors + stable_errors, canary_requests)


# --- the tests' arithmetic, against hand-computed values ---------------------------------------------------


def test_fisher_exact_upper_tail_matches_the_hypergeometric_by_hand():
    # 3 of 3 errors among the canary's 10 of 20 requests: C(17,7) / C(20,10) = 19448 / 184756
    assert fisher_exact_greater(3, 10, 0, 10) == pytest.approx(19448 / 184756, rel=1e-12)
    # 2 of 2 errors among 5 of 10: C(8,3) / C(10,5) = 56 / 252
    assert fisher_exact_greater(2, 5, 0, 5) == pytest.approx(56 / 252, rel=1e-12)
    # at least 1 of 3 among 10 of 20: 1 - C(17,10) / C(20,10)
    assert fisher_exact_greater(1, 10, 2, 10) == pytest.approx(1 - 19448 / 184756, rel=1e-12)
    assert fisher_exact_greater(0, 1000, 90, 9000) == 1.0


def test_fisher_exact_agrees_with_exact_fractions_on_random_tables():
    rng = random.Random(5)
    for _ in range(200):
        nc, ns = rng.randint(1, 40), rng.randint(1, 120)
        ec, es = rng.randint(0, nc), rng.randint(0, ns)
        total, errors = nc + ns, ec + es
        exact = sum(math.comb(errors, x) * math.comb(total - errors, nc - x) for x in range(ec, min(errors, nc) + 1)) / math.comb(total, nc)
        assert fisher_exact_greater(ec, nc, es, ns) == pytest.approx(exact, rel=1e-9, abs=1e-300)


def test_fisher_exact_is_not_fooled_by_few_errors_as_the_z_test_is():
    # 3 of 1000 against 1 of 9000: the pooled two-proportion z-test says p = 7e-6
    assert fisher_exact_greater(3, 1000, 1, 9000) == pytest.approx(1 - 0.9**4 - 4 * 0.1 * 0.9**3 - 6 * 0.01 * 0.81, rel=0.01)


def test_grouped_mann_whitney_by_hand():
    # canary at midpoints 12.5, 37.5, 37.5, 100; stable 12.5, 12.5, 37.5 (buckets 25/50/100/+Inf)
    # U = 1 (12.5: two ties) + 2 * 2.5 (37.5: beats two, ties one) + 3 (+Inf beats all) = 9
    rank_sum = grouped_mann_whitney([1, 2, 0, 1], [2, 1, 0, 0])
    assert rank_sum.u == 9 and rank_sum.mean == 6
    # n1 n2 / 12 * (N + 1 - sum(t^3 - t) / (N (N - 1))) = 12/12 * (8 - 48/42)
    assert rank_sum.variance == pytest.approx(8 - 48 / 42)
    assert upper_p_value(rank_sum.u - rank_sum.mean, rank_sum.variance) == pytest.approx(0.1260, abs=1e-4)


def test_grouped_mann_whitney_equals_the_permutation_moments_of_the_midpoint_expansion():
    canary, stable = [1, 2, 0, 1], [2, 1, 1, 0]
    values = [g for g, n in enumerate(canary) for _ in range(n)] + [g for g, n in enumerate(stable) for _ in range(n)]
    n1 = sum(canary)
    us = []
    for chosen in itertools.combinations(range(len(values)), n1):
        xs = [values[i] for i in chosen]
        ys = [values[i] for i in range(len(values)) if i not in chosen]
        us.append(sum((x > y) + 0.5 * (x == y) for x in xs for y in ys))
    mean = sum(us) / len(us)
    variance = sum((u - mean) ** 2 for u in us) / len(us)
    rank_sum = grouped_mann_whitney(canary, stable)
    assert (rank_sum.mean, rank_sum.variance) == (pytest.approx(mean), pytest.approx(variance))
    assert rank_sum.u == us[0]  # the first combination is the canary's own observations


def test_the_first_looks_spend_their_shares_and_all_looks_together_the_budget():
    assert [look_alpha(0.01, k, [5, 85]) for k in (1, 2, 3, 4)] == pytest.approx([0.0005, 0.0085, 0.001 / 3, 0.001 / 6])
    assert sum(look_alpha(0.01, k, [5, 85]) for k in range(1, 10_001)) == pytest.approx(0.01 - 0.001 * 2 / 10_000)
    assert [look_alpha(0.008, k, [50]) for k in (1, 2, 3)] == pytest.approx([0.004, 0.004 / 2, 0.004 / 6])


def test_look_shares_must_leave_some_budget_for_later_looks():
    with pytest.raises(ValueError, match="add up to 100%: keep them under 100"):
        StatisticalJudgeSettings(look_shares_percent=[10, 90])


def multivariate_p_values(earlier, latest, stable, errors):
    """Every way `errors` 5xx fall among the canary's earlier and latest and stable's requests: its probability and p-value."""
    population = earlier + latest + stable
    outcomes = []
    for in_latest in range(min(errors, latest) + 1):
        for in_earlier in range(min(errors - in_latest, earlier) + 1):
            in_stable = errors - in_latest - in_earlier
            if in_stable > stable:
                continue
            ways = math.comb(earlier, in_earlier) * math.comb(latest, in_latest) * math.comb(stable, in_stable)
            counts = ErrorCounts(in_earlier + in_latest, earlier + latest, in_stable, stable, in_latest, latest)
            outcomes.append((ways / math.comb(population, errors), in_earlier + in_latest, in_latest, error_rate_p_value(counts)))
    return outcomes


def test_ties_in_the_canary_s_errors_are_broken_by_its_latest_interval_exactly():
    outcomes = multivariate_p_values(earlier=6, latest=5, stable=20, errors=7)
    for _, canary, latest, p in outcomes:  # P((S, L) at least as extreme, S first, then L), by enumeration
        extreme = sum(q for q, s, l, _ in outcomes if s > canary or (s == canary and l >= latest))
        assert p == pytest.approx(extreme, rel=1e-9)
    at_three = sorted((latest, p) for _, canary, latest, p in outcomes if canary == 3)
    assert [p for _, p in at_three] == sorted((p for _, p in at_three), reverse=True)  # later errors: smaller p
    assert at_three[0][1] == pytest.approx(fisher_exact_greater(3, 11, 4, 20))  # none of them latest: Fisher's own
    assert hypergeometric_pmf(3, 31, 7, 11) == pytest.approx(math.comb(7, 3) * math.comb(24, 8) / math.comb(31, 11))


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05, 0.2])
def test_the_tie_broken_p_value_is_valid_and_finer_than_fisher_s(alpha):
    outcomes = multivariate_p_values(earlier=30, latest=30, stable=240, errors=12)
    level = sum(q for q, _, _, p in outcomes if p <= alpha)
    fisher_level = sum(q for q, s, _, _ in outcomes if fisher_exact_greater(s, 60, 12 - s, 240) <= alpha)
    assert fisher_level <= level <= alpha


# --- bucket reconstruction -----------------------------------------------------------------------------------


def test_buckets_from_cumulative_counts():
    histogram = [(25.0, 3.0), (50.0, 10.0), (100.0, 12.0), (math.inf, 12.0)]
    assert bucket_counts(histogram, [25.0, 50.0, 100.0, math.inf]) == [3, 7, 2, 0]
    assert bucket_counts(histogram, [50.0, math.inf]) == [10, 2]
    assert bucket_midpoints([25.0, 50.0, 100.0, math.inf]) == [12.5, 37.5, 75.0, 100.0]


def test_extrapolated_counts_are_made_monotonic_and_duplicates_add_up():
    assert cumulative_counts([(50.0, 9.7), (25.0, 10.2), (math.inf, 12.0), (50.0, 0.5)]) == {25.0: 10.2, 50.0: 10.2, math.inf: 12.0}


def test_only_the_bounds_both_sides_have_are_compared():
    canary = [(25.0, 1.0), (50.0, 2.0), (math.inf, 3.0)]
    stable = [(10.0, 1.0), (50.0, 2.0), (math.inf, 3.0)]
    assert shared_bounds(canary, stable) == [50.0, math.inf]
    assert shared_bounds(canary, [(25.0, 1.0), (50.0, 2.0)]) == []  # no +Inf: the total is unknown
    assert shared_bounds([(math.inf, 3.0)], [(math.inf, 3.0)]) == []  # one bucket orders nothing


def test_pooled_histograms_add_up_over_the_bounds_all_intervals_have():
    pool = PooledHistogram()
    pool.add([(25.0, 3.0), (50.0, 10.0), (math.inf, 12.0)])
    pool.add([(10.0, 1.0), (50.0, 4.0), (math.inf, 5.0)])
    assert pool.buckets == ((50.0, 14.0), (math.inf, 17.0))
    assert observations(pool.buckets) == 17 and observations([(50.0, 4.0)]) == 0


# --- verdicts ------------------------------------------------------------------------------------------------


def test_a_canary_like_stable_passes_with_both_tests_in_the_rows():
    verdict = judge().judge(IntervalEvidence(1, side(1000, 10, [240, 390, 290, 80]), side(9000, 90, [2160, 3510, 2610, 720]), {}))
    assert verdict.outcome == "pass" and verdict.failed_checks == 0
    assert [row["check"] for row in verdict.rows] == ["5xx rate (Fisher exact, ties by the latest interval)", "latency (Mann-Whitney U)"]
    assert [row["alpha"] for row in verdict.rows] == [0.000475, 2.5e-05]  # 5% of 0.95% and of 0.05%
    assert verdict.rows[0]["canary"] == "1% (10 of 1000; latest 10 of 1000)" and verdict.rows[0]["result"] == "pass"


def test_clearly_more_errors_roll_back_at_the_first_look_with_numbers_in_the_reason():
    verdict = judge().judge(IntervalEvidence(1, side(1000, 50, [240, 390, 290, 80]), side(9000, 90, [2160, 3510, 2610, 720]), {}))
    assert verdict.outcome == "rollback" and verdict.failed_checks == 1
    assert verdict.reasons[0].startswith(
        "5xx rate (Fisher exact, ties by the latest interval): canary 5% (50 of 1000; latest 50 of 1000) vs stable 1% (90 of 9000) (+4 points"
    )
    assert "worse" in verdict.reasons[0] and verdict.rows[0]["result"] == "fail"


def test_slower_canary_rolls_back_on_latency():
    verdict = judge().judge(IntervalEvidence(1, side(1000, 10, [130, 350, 360, 160]), side(9000, 90, [2160, 3510, 2610, 720]), {}))
    assert verdict.outcome == "rollback" and verdict.rows[1]["result"] == "fail" and verdict.rows[0]["result"] == "pass"


def test_differences_below_the_practical_minimum_never_roll_back_however_certain():
    many = judge().judge(IntervalEvidence(1, side(10**8, 1_005_000, [10**8, 0, 0, 0]), side(10**8, 1_000_000, [10**8, 0, 0, 0]), {}))
    assert many.rows[0]["p_value"] < many.rows[0]["alpha"] and many.outcome == "pass"  # +0.005 points < 0.1
    slightly_slower = [0, 10**6 - 3 * 10**4, 3 * 10**4, 0]  # mean 38.6 ms against 37.5: +3% < 5%
    latency = judge().judge(IntervalEvidence(1, side(10**6, 0, slightly_slower), side(10**6, 0, [0, 10**6, 0, 0]), {}))
    assert latency.rows[1]["p_value"] < latency.rows[1]["alpha"] and latency.outcome == "pass"


def test_a_rollback_sticks():
    j = judge()
    j.judge(IntervalEvidence(1, side(1000, 500, [1000, 0, 0, 0]), side(9000, 90, [9000, 0, 0, 0]), {}))
    again = j.judge(IntervalEvidence(2, side(1000, 0, [1000, 0, 0, 0]), side(9000, 90, [9000, 0, 0, 0]), {}))
    assert again.outcome == "rollback" and again.reasons[-1] == "already rolled back"


# --- too little data is inconclusive, never a pass ---------------------------------------------------------

HEALTHY_STABLE = side(9000, 90, [2160, 3510, 2610, 720])


@pytest.mark.parametrize(
    "canary, stable, why",
    [
        (None, HEALTHY_STABLE, "canary: no data"),
        (side(1000, 10, [250, 250, 250, 250]), None, "stable: no data"),
        (side(99, 0, [99, 0, 0, 0]), HEALTHY_STABLE, "canary: 99 requests, 0 5xx, 99 latency observations, fewer than min_requests 100"),
        (side(math.nan, 0, [99, 0, 0, 0]), HEALTHY_STABLE, "canary: nan requests"),
        (side(1000, 10, [10, 10, 10, 10]), HEALTHY_STABLE, "canary: 1000 requests, 10 5xx, 40 latency observations"),
        (SideSample(1000.0, 10.0, ((25.0, 500.0), (50.0, 1000.0))), HEALTHY_STABLE, "canary: 1000 requests, 10 5xx, 0 latency observations"),
        (side(1000, 10, [500, 500], bounds=(10.0, math.inf)), HEALTHY_STABLE, "latency: canary and stable histograms share no bucket bounds"),
        (side(1000, 10, [250, 250, 250, 250]), side(0, 0, [0, 0, 0, 0]), "stable: 0 requests, 0 5xx, 0 latency observations, fewer than"),
    ],
)
def test_missing_or_thin_data_is_inconclusive(canary, stable, why):
    verdict = judge().judge(IntervalEvidence(1, canary, stable, {}))
    assert verdict.outcome == "inconclusive" and verdict.rows == []
    assert verdict.reasons[0].startswith(why)


def test_inconclusive_intervals_count_as_failed_checks_up_to_the_threshold_or_wait_for_a_person():
    failing = StatisticalJudge(SETTINGS, threshold=3)
    assert [failing.judge(IntervalEvidence(n, None, HEALTHY_STABLE, {})).outcome for n in (1, 2, 3)] == ["inconclusive", "inconclusive", "rollback"]
    pausing = StatisticalJudge(SETTINGS, threshold=3, on_inconclusive="pause")
    verdicts = [pausing.judge(IntervalEvidence(n, None, HEALTHY_STABLE, {})) for n in range(1, 6)]
    assert {v.outcome for v in verdicts} == {"inconclusive"} and verdicts[-1].failed_checks == 0
    assert pausing.looks == 0  # nothing was added to the statistics


def test_without_stable_traffic_the_canary_is_compared_with_stable_s_earlier_intervals():
    idle_stable = side(0, 0, [0, 0, 0, 0])
    healthy, slow = judge(), judge()
    for j in (healthy, slow):
        assert j.judge(IntervalEvidence(1, side(1000, 10, [240, 390, 290, 80]), HEALTHY_STABLE, {})).outcome == "pass"
    same = healthy.judge(IntervalEvidence(2, side(10_000, 100, [2400, 3900, 2900, 800]), idle_stable, {}))
    slower = slow.judge(IntervalEvidence(2, side(10_000, 100, [1300, 3500, 3600, 1600]), idle_stable, {}))
    assert same.outcome == "pass" and slower.outcome == "rollback"
    assert slower.rows[1]["check"] == "latency against stable's earlier intervals (Mann-Whitney U)"
    # (2160 * 12.5 + 3510 * 37.5 + 2610 * 75 + 720 * 100) / 9000 = 47.375
    assert slower.rows[1]["stable"] == "mean 47.4 ms (9000)" and slower.rows[1]["result"] == "fail"


# --- simulated releases with the sandbox's traffic model ---------------------------------------------------


def test_the_simulation_follows_the_sandbox_latency_model_and_binomial_counts():
    rng = random.Random(11)
    draws = 20_000
    binned = [0] * (len(ISTIO_DURATION_BUCKETS_MS) + 1)
    for _ in range(draws):
        binned[bisect_left(ISTIO_DURATION_BUCKETS_MS, latency_seconds(STABLE, rng) * 1000)] += 1
    assert [b / draws for b in binned] == pytest.approx(bucket_probabilities(STABLE), abs=0.01)
    counts = [binomial(rng, 9000, 0.01) for _ in range(2000)]
    assert sum(counts) / len(counts) == pytest.approx(90, abs=1)


def simulate(canary_behavior, releases, intervals, seed):
    """Rollback interval (or None) of each simulated release, with a fresh statistical judge each."""
    canary_p, stable_p = bucket_probabilities(canary_behavior), bucket_probabilities(STABLE)
    outcomes = []
    for release in range(releases):
        rng, j = random.Random(f"{seed}/{release}"), judge()
        rolled_back = None
        for number in range(1, intervals + 1):
            evidence = IntervalEvidence(
                number, simulate_side(rng, canary_behavior, canary_p, 1000), simulate_side(rng, STABLE, stable_p, 1000 * STABLE_SHARE), {}
            )
            if j.judge(evidence).outcome == "rollback":
                rolled_back = number
                break
        outcomes.append(rolled_back)
    return outcomes


@pytest.mark.parametrize("bad", [replace(STABLE, error_rate=0.05), replace(STABLE, latency_p50_ms=80.0, latency_p95_ms=240.0)])
def test_a_clearly_bad_canary_is_rolled_back_within_two_intervals(bad):
    assert all(r is not None and r <= 2 for r in simulate(bad, releases=50, intervals=2, seed=3))


def test_healthy_canaries_are_rolled_back_no_more_often_than_the_bound_allows():
    outcomes = simulate(STABLE, releases=1000, intervals=20, seed=1)
    low, _ = wilson_interval(sum(r is not None for r in outcomes), len(outcomes), 99)
    assert low <= SETTINGS.false_rollback_percent / 100  # the bound itself is exact; the rate is close to it by design
