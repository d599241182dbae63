"""How often designs of the 5xx test catch a 2x canary by interval 2, and how often they roll back a healthy one.

    python -m benchmarks.judge_designs [--samples 20000] [--stable-error-percent 0.5] [--requests 1000] [--seed 3]

Issue 16's comparison for docs/judges.md: each design sees the same simulated pairs of intervals (the canary
`--requests` per interval, stable nine times as many; binomial 5xx counts) and spends a 5xx budget of 0.95%
(the policy's 1% less its 5% latency share). Only the 5xx test is compared; the practical minimum (+0.1
points) does not bind at these rates. The last row is the limit no test reaches: stable's rate known exactly.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.canary_judge import STABLE_SHARE, binomial
from delivery.judge.significance import ErrorCounts, error_rate_p_value, hypergeometric_upper_tail, look_alpha

BUDGET = 0.0095  # the 5xx test's share of a 1% false-rollback budget
FRONT_LOADED = (5, 85)  # the policy's look_shares_percent
BERGER_BOOS_BETA = 0.001  # what the stable-rate confidence bound spends
MIXTURE_RISKS = (1.25, 1.5, 2, 3, 5, 10)  # relative 5xx risks the always-valid test mixes over, equally weighted


@dataclass(frozen=True)
class Look:
    """The summed counts at one look (the canary's latest interval apart), and each interval's."""

    counts: ErrorCounts
    per_interval: tuple[tuple[int, int, int, int], ...]  # (canary errors, canary requests, stable errors, stable requests)


Design = Callable[[Look, int], bool]  # (the look, its number) -> rollback


def fisher(look: Look) -> float:
    c = look.counts
    return hypergeometric_upper_tail(c.canary_errors, c.canary_requests + c.stable_requests, c.canary_errors + c.stable_errors, c.canary_requests)


def fisher_spending(shares: tuple[float, ...]) -> Design:
    return lambda look, k: fisher(look) <= look_alpha(BUDGET, k, shares)


def tie_broken_spending(shares: tuple[float, ...]) -> Design:
    def design(look: Look, k: int) -> bool:
        return error_rate_p_value(look.counts) <= look_alpha(BUDGET, k, shares)

    return design


def mixture_sprt(look: Look, _: int) -> bool:
    """Always valid: a mixture of conditional likelihood ratios, a martingale under the null (Ville: P(ever >= 1/a) <= a)."""
    total = 0.0
    for risk in MIXTURE_RISKS:
        log_ratio = 0.0
        for canary_errors, canary_requests, stable_errors, stable_requests in look.per_interval:
            null = canary_requests / (canary_requests + stable_requests)  # the canary's share of the errors, no worse
            bad = risk * canary_requests / (risk * canary_requests + stable_requests)
            errors = canary_errors + stable_errors
            log_ratio += canary_errors * math.log(bad / null) + (errors - canary_errors) * math.log((1 - bad) / (1 - null))
        total += math.exp(log_ratio) / len(MIXTURE_RISKS)
    return total >= 1 / BUDGET


def binomial_upper_tail(x: int, n: int, p: float) -> float:
    """P(Binomial(n, p) >= x), summed away from the mode until the terms no longer count."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    if x > n * p:
        return _binomial_sum(x, n, p, step=1)
    return max(0.0, 1.0 - _binomial_sum(x - 1, n, p, step=-1))


def _binomial_sum(start: int, n: int, p: float, step: int) -> float:
    term = math.exp(math.lgamma(n + 1) - math.lgamma(start + 1) - math.lgamma(n - start + 1) + start * math.log(p) + (n - start) * math.log1p(-p))
    total, k = 0.0, start
    while 0 <= k <= n and (term >= total * 1e-15 or total == 0.0):
        total += term
        term *= (n - k) / (k + 1) * p / (1 - p) if step > 0 else k / (n - k + 1) * (1 - p) / p
        k += step
    return total


def stable_upper_bound(errors: int, requests: int, beta: float) -> float:
    """Clopper-Pearson one-sided upper bound for stable's 5xx rate, by bisection: P(X <= errors | bound) = beta."""
    low, high = errors / requests, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        if 1 - binomial_upper_tail(errors + 1, requests, middle) > beta:
            low = middle
        else:
            high = middle
    return high


def known_rate_berger_boos(look: Look, k: int) -> bool:
    """Stable's rate taken as known up to its upper bound: p = P(canary errors >= x | the bound) + beta (Berger and Boos)."""
    c = look.counts
    bound = stable_upper_bound(c.stable_errors, c.stable_requests, BERGER_BOOS_BETA)
    p = binomial_upper_tail(c.canary_errors, c.canary_requests, bound) + BERGER_BOOS_BETA
    return p <= look_alpha(BUDGET, k, FRONT_LOADED)


DESIGNS: dict[str, Design] = {
    "issue 5's: Fisher, B / (k (k + 1)) of 0.8%": lambda look, k: fisher(look) <= 0.008 / (k * (k + 1)),
    "Fisher, looks 5% / 85% / rest": fisher_spending(FRONT_LOADED),
    "mixture SPRT (always valid, no spending)": mixture_sprt,
    "stable near-known (Berger-Boos), 5% / 85%": known_rate_berger_boos,
    "Fisher + latest-interval ties, 5% / 85% (used)": tie_broken_spending(FRONT_LOADED),
}


def caught_by_interval_2(design: Design, canary_rate: float, stable_rate: float, requests: int, samples: int, seed: int) -> float:
    """Share of simulated canaries the design rolls back at look 1 or 2."""
    caught = 0
    for sample in range(samples):
        rng = random.Random(f"{seed}/{canary_rate}/{sample}")
        intervals = []
        for k in (1, 2):
            canary = binomial(rng, requests, canary_rate)
            stable = binomial(rng, requests * STABLE_SHARE, stable_rate)
            intervals.append((canary, requests, stable, requests * STABLE_SHARE))
            sums = [sum(column) for column in zip(*intervals)]
            if design(Look(ErrorCounts(*sums, canary, requests), tuple(intervals)), k):
                caught += 1
                break
    return caught / samples


def known_rate_limit(stable_rate: float, requests: int) -> float:
    """Exact: the binomial test of the canary's 2 intervals against stable's true rate, all the budget at look 2."""
    n = 2 * requests
    critical = next(x for x in range(n + 1) if binomial_upper_tail(x, n, stable_rate) <= BUDGET)
    return binomial_upper_tail(critical, n, 2 * stable_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000, help="simulated canaries per design and case")
    parser.add_argument("--stable-error-percent", type=float, default=0.5)
    parser.add_argument("--requests", type=int, default=1000, help="canary requests per interval")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rate = args.stable_error_percent / 100
    print(f"5xx test designs: stable {100 * rate:g}% 5xx, canary {args.requests} requests/interval, stable {args.requests * STABLE_SHARE}; {args.samples} samples each")
    print(f"{'design':<48} {'2x caught by interval 2':>24} {'healthy rolled back by 2':>25}")
    for name, design in DESIGNS.items():
        caught = caught_by_interval_2(design, 2 * rate, rate, args.requests, args.samples, args.seed)
        false = caught_by_interval_2(design, rate, rate, args.requests, args.samples, args.seed)
        print(f"{name:<48} {100 * caught:>23.1f}% {100 * false:>24.2f}%")
    print(f"{'limit: stable rate known exactly (exact binomial)':<48} {100 * known_rate_limit(rate, args.requests):>23.1f}% {'-':>25}")


if __name__ == "__main__":
    main()
