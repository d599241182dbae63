"""Prometheus alert rules for the policy's R-KPI thresholds: infra/prometheus/rules/tripgen-kpi.yml.

The rules read the release metrics of docs/kpi-metrics.md. Regenerate the file after changing the policy's `kpi`:

    .venv/bin/python -m delivery.metrics.kpi_rules policies/tripgen.yaml > infra/prometheus/rules/tripgen-kpi.yml

A test checks that the committed file is what the policy gives, and promtool unit-tests the rules.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import yaml

from delivery.policy.loader import load_policy
from delivery.policy.models import Kpi, Policy
from delivery.units import format_duration

# SPEC R-KPI's alert column → the policy's alerting levels (R-ALERT): "immediate" pages, "warning" is a medium
# alert (the level notify/pagerduty.py sends as PagerDuty's "warning").
IMMEDIATE = "critical"
WARNING = "medium"

SUCCESS_RATE_WINDOW = timedelta(days=30)  # as `tripgen-release kpi --since 30d`
ROLLBACK_WINDOW = timedelta(days=1)  # the policy's limit is per day
RECENT = timedelta(days=1)  # a slow release or switch keeps its warning this long, or until the next one

HEADER = """\
# Generated from the policy's `kpi` (R-KPI) by delivery/metrics/kpi_rules.py: do not edit by hand.
#   .venv/bin/python -m delivery.metrics.kpi_rules policies/tripgen.yaml > infra/prometheus/rules/tripgen-kpi.yml
# Metrics: docs/kpi-metrics.md. Unit tests: tripgen-kpi.test.yml (promtool test rules).
"""


def _number(value: float) -> str:
    return f"{value:.15g}"  # 0.95, 1800: never 1.8e+03


def _seconds(value: timedelta) -> str:
    return _number(value.total_seconds())


def _alert(name: str, kpi: str, expr: str, severity: str, summary: str, description: str) -> dict:
    return {"alert": name, "expr": expr, "labels": {"severity": severity, "kpi": kpi},
            "annotations": {"summary": summary, "description": description}}


def _slow(metric: str, finished: str, by: str, limit: timedelta) -> str:
    """`metric`, a gauge of the last release or switch, over `limit` when that finished within RECENT."""
    return f"({metric} > {_seconds(limit)}) and on ({by}) (time() - {finished} < {_seconds(RECENT)})"


def kpi_alerts(kpi: Kpi) -> list[dict]:
    """One alert per R-KPI threshold, in SPEC's order."""
    rate_window, rollback_window, recent = (format_duration(w) for w in (SUCCESS_RATE_WINDOW, ROLLBACK_WINDOW, RECENT))
    min_rate = kpi.min_deployment_success_rate_percent
    duration, switch = format_duration(kpi.max_deployment_duration), format_duration(kpi.max_blue_green_switch_time)
    # increase() extrapolates to the window's edges (2 rollbacks can read 2.02): a count is rounded; a ratio of two
    # counters sampled together is not affected. The failures' share, not the successes': with no failure series at
    # all the rate is 100%, and with no `released` series it is 0%, not absent. Releases stopped before production
    # (gates, staging, rejected) deployed nothing: they count neither way, as in `tripgen-release kpi`.
    failed = f'sum by (environment) (increase(tripgen_release_total{{outcome="rolled_back"}}[{rate_window}]))'
    every = f'sum by (environment) (increase(tripgen_release_total{{outcome=~"released|rolled_back"}}[{rate_window}]))'
    return [
        _alert("TripgenDeploymentSuccessRateLow", "deployment_success_rate",
               f"1 - {failed} / {every} < {_number(min_rate / 100)}", IMMEDIATE,
               f"{{{{ $labels.environment }}}} release success rate below {_number(min_rate)}%",
               f"{{{{ $value | humanizePercentage }}}} of the releases to {{{{ $labels.environment }}}} in the last "
               f"{rate_window} succeeded (policy kpi.min_deployment_success_rate_percent: {_number(min_rate)})."),
        _alert("TripgenRollbacksTooFrequent", "rollback_frequency",
               f"sum by (service, environment) (round(increase(tripgen_rollback_total[{rollback_window}]))) "
               f"> {kpi.max_rollbacks_per_day}", IMMEDIATE,
               f"{{{{ $labels.service }}}} rolled back more than {kpi.max_rollbacks_per_day} times a day",
               f"{{{{ $labels.service }}}} was rolled back {{{{ $value }}}} times in {{{{ $labels.environment }}}} in the "
               f"last {rollback_window} (policy kpi.max_rollbacks_per_day: {kpi.max_rollbacks_per_day})."),
        _alert("TripgenDeploymentTooSlow", "deployment_duration",
               _slow("tripgen_release_duration_seconds", "tripgen_release_finished_timestamp_seconds", "environment",
                     kpi.max_deployment_duration), WARNING,
               f"{{{{ $labels.environment }}}} release took longer than {duration}",
               f"The last release to {{{{ $labels.environment }}}} took {{{{ $value | humanizeDuration }}}}, finished "
               f"within {recent} (policy kpi.max_deployment_duration: {duration})."),
        _alert("TripgenCanaryErrorRateHigh", "canary_error_rate",
               f"max by (service, environment) (tripgen_canary_error_ratio) "
               f"> {_number(kpi.max_canary_error_rate_percent / 100)}", IMMEDIATE,
               f"{{{{ $labels.service }}}} canary error rate over {_number(kpi.max_canary_error_rate_percent)}%",
               f"The {{{{ $labels.service }}}} canary in {{{{ $labels.environment }}}} answers "
               f"{{{{ $value | humanizePercentage }}}} of its requests with errors "
               f"(policy kpi.max_canary_error_rate_percent: {_number(kpi.max_canary_error_rate_percent)})."),
        _alert("TripgenBlueGreenSwitchTooSlow", "blue_green_switch_time",
               _slow("tripgen_blue_green_switch_seconds", "tripgen_blue_green_switch_finished_timestamp_seconds",
                     "service, environment", kpi.max_blue_green_switch_time), WARNING,
               f"{{{{ $labels.service }}}} blue-green switch took longer than {switch}",
               f"The last blue-green switch of {{{{ $labels.service }}}} in {{{{ $labels.environment }}}} took "
               f"{{{{ $value | humanizeDuration }}}}, finished within {recent} "
               f"(policy kpi.max_blue_green_switch_time: {switch})."),
    ]


def render_rules(policy: Policy) -> str:
    """The rules file's text for `policy`."""
    groups = {"groups": [{"name": "tripgen-kpi", "rules": kpi_alerts(policy.kpi)}]}
    return HEADER + yaml.safe_dump(groups, sort_keys=False, width=1000, allow_unicode=True)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sys.stdout.write(render_rules(load_policy(args[0] if args else "policies/tripgen.yaml")))


if __name__ == "__main__":
    main()
