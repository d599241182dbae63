"""infra/prometheus/rules: the R-KPI alert rules agree with the policy's `kpi`, promtool accepts them and their unit
tests pass, and a broken copy fails; prometheus.yml loads them and not their unit tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from delivery.metrics.kpi_rules import render_rules
from delivery.policy.loader import load_policy, parse_policy
from tests.conftest import REPO

PROMETHEUS = REPO / "infra" / "prometheus"
RULES = PROMETHEUS / "rules" / "tripgen-kpi.yml"
UNIT_TESTS = PROMETHEUS / "rules" / "tripgen-kpi.test.yml"
POLICY_FILE = REPO / "policies" / "tripgen.yaml"
MOUNTED_AT = "/etc/prometheus"  # where docker-compose.yml mounts infra/prometheus


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not on PATH: install it (Debian package prometheus, which .ci/run installs) to run these tests")
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def alerts(text: str) -> dict[str, dict]:
    return {rule["alert"]: rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]}


def thresholds(text: str) -> dict[str, tuple[str, float]]:
    """Each alert's comparison with a number, read from its expression: {alert: (operator, number)}."""
    found = {}
    for name, rule in alerts(text).items():
        comparisons = re.findall(r"([<>])\s*(\d+(?:\.\d+)?)(?![\w.])", rule["expr"])
        limits = [(op, round(float(number), 9)) for op, number in comparisons if not _is_recency(rule["expr"], number)]
        assert len(limits) == 1, f"{name}: expected one threshold in {rule['expr']!r}, found {limits}"
        found[name] = limits[0]
    return found


def _is_recency(expr: str, number: str) -> bool:
    """The `time() - …_timestamp_seconds < N` part of the duration alerts: how long a warning lasts, not a KPI."""
    return re.search(rf"time\(\) - \w+_timestamp_seconds < {re.escape(number)}\b", expr) is not None


def expected_thresholds(policy_text: str) -> dict[str, tuple[str, float]]:
    kpi = parse_policy(policy_text).kpi
    return {name: (op, round(value, 9)) for name, (op, value) in {
        "TripgenDeploymentSuccessRateLow": ("<", kpi.min_deployment_success_rate_percent / 100),
        "TripgenRollbacksTooFrequent": (">", kpi.max_rollbacks_per_day),
        "TripgenDeploymentTooSlow": (">", kpi.max_deployment_duration.total_seconds()),
        "TripgenCanaryErrorRateHigh": (">", kpi.max_canary_error_rate_percent / 100),
        "TripgenBlueGreenSwitchTooSlow": (">", kpi.max_blue_green_switch_time.total_seconds()),
    }.items()}


# --- the rules and the policy ----------------------------------------------------------------------------------


def test_the_committed_rules_are_what_the_policy_generates():
    assert RULES.read_text() == render_rules(load_policy(POLICY_FILE)), (
        "infra/prometheus/rules/tripgen-kpi.yml is stale: .venv/bin/python -m delivery.metrics.kpi_rules "
        "policies/tripgen.yaml > infra/prometheus/rules/tripgen-kpi.yml")


def test_every_rule_threshold_is_the_policy_number():
    assert thresholds(RULES.read_text()) == expected_thresholds(POLICY_FILE.read_text())


def test_the_thresholds_follow_a_changed_policy():
    text = POLICY_FILE.read_text()
    for key, value in {"min_deployment_success_rate_percent": "90", "max_rollbacks_per_day": "4",
                       "max_deployment_duration": "45m", "max_canary_error_rate_percent": "1.5",
                       "max_blue_green_switch_time": "2m30s"}.items():
        text, count = re.subn(rf"(?m)^(  {key}:) \S+", rf"\1 {value}", text)
        assert count == 1, key
    changed = expected_thresholds(text)
    assert changed != expected_thresholds(POLICY_FILE.read_text())
    assert thresholds(render_rules(parse_policy(text))) == changed


def test_severities_are_policy_alert_levels_as_spec_r_kpi_says():
    policy = load_policy(POLICY_FILE)
    severity = {name: rule["labels"]["severity"] for name, rule in alerts(RULES.read_text()).items()}
    assert set(severity.values()) <= set(policy.alerting)
    assert severity == {  # SPEC R-KPI: immediate (critical) or warning (medium)
        "TripgenDeploymentSuccessRateLow": "critical",
        "TripgenRollbacksTooFrequent": "critical",
        "TripgenDeploymentTooSlow": "medium",
        "TripgenCanaryErrorRateHigh": "critical",
        "TripgenBlueGreenSwitchTooSlow": "medium",
    }
    for name, rule in alerts(RULES.read_text()).items():
        assert "$value" in rule["annotations"]["description"], name
        assert rule["annotations"]["summary"], name


# --- promtool ----------------------------------------------------------------------------------------------------


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_the_rules_pass_their_promtool_unit_tests():
    result = promtool("test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def broken_copy(work: Path, old: str, new: str) -> Path:
    """The rules and their unit tests in `work`, with `old` replaced by `new` in the rules."""
    text = RULES.read_text()
    assert text.count(old) == 1, old
    (work / RULES.name).write_text(text.replace(old, new))
    shutil.copy(UNIT_TESTS, work / UNIT_TESTS.name)
    return work


def test_promtool_rejects_a_syntax_error_in_an_expression(tmp_path):
    work = broken_copy(tmp_path, "max by (service, environment) (tripgen_canary_error_ratio)",
                       "max by (service, environment) (tripgen_canary_error_ratio")
    checked = promtool("check", "rules", work / RULES.name)
    assert checked.returncode != 0 and "parse error" in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    assert promtool("test", "rules", UNIT_TESTS.name, cwd=work).returncode != 0


@pytest.mark.parametrize(("old", "new", "case"), [
    ("< 0.95", "< 0.93", "94% success no longer fires"),
    ("> 2\n", "> 3\n", "3 rollbacks a day no longer fire"),
], ids=["success rate 93%", "3 rollbacks allowed"])
def test_a_wrong_threshold_fails_the_unit_tests(tmp_path, old, new, case):
    work = broken_copy(tmp_path, old, new)
    assert promtool("check", "rules", work / RULES.name).returncode == 0  # still valid rules...
    result = promtool("test", "rules", UNIT_TESTS.name, cwd=work)
    assert result.returncode != 0, f"{case}, yet the unit tests pass:\n{result.stdout}"  # ...that break the policy
    assert "FAILED" in result.stdout + result.stderr


# --- prometheus.yml ----------------------------------------------------------------------------------------------


def test_prometheus_loads_the_rules_and_not_their_unit_tests(tmp_path):
    patterns = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]
    mounted = {f"{MOUNTED_AT}/rules/{path.name}" for path in (PROMETHEUS / "rules").glob("*.yml")}
    loaded = {path for path in mounted if any(fnmatch(path, pattern) for pattern in patterns)}
    assert loaded == {f"{MOUNTED_AT}/rules/{RULES.name}"}

    shutil.copytree(PROMETHEUS, tmp_path, dirs_exist_ok=True)
    shutil.copy(PROMETHEUS / "federate" / "cluster.yml.example", tmp_path / "federate" / "cluster.yml")
    config = tmp_path / "prometheus.yml"
    config.write_text(config.read_text().replace(MOUNTED_AT, str(tmp_path)))
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout and "SUCCESS: 5 rules found" in result.stdout
