"""`policy check` prints only what the code enforces: what no release code reads is marked, and
the progress deadline and the emergency rollback threshold are read where they should be."""

import ast
import re
from datetime import timedelta

import pytest

from delivery.kube import Deployments, Diagnostics, Routing, connect
from delivery.kube.connection import RetryPolicy
from delivery.metrics.prometheus import Reading
from delivery.policy.checks import find_problems
from delivery.policy.loader import load_policy
from delivery.policy.summary import NOT_ENFORCED, summarize
from delivery.release.canary import CanaryRollout
from delivery.release.stats import wilson_interval
from delivery.release.watch import judge_check
from tests.conftest import REPO
from tests.sandbox.cluster_fixture import running_cluster

TRIPGEN = load_policy(REPO / "policies" / "tripgen.yaml")

# topic -> the summary's pieces that carry the mark, as the shipped policy prints them
EXPECTED_MARKS = {
    "order": ["each 4 CPU / 8Gi (not enforced)"],
    "environments": [
        "staging (staging): rolling (not enforced)",
        "automatic approval (not enforced)",
        "production (production): blue-green (not enforced)",
        "manual approval (not enforced)",
        "auto rollback on (not enforced)",
        "canary (production) (not enforced): canary",
    ],
    "approvals": [
        "staging: 1 of developers (not enforced)",
    ],
}


def marked_pieces(line: str) -> list[str]:
    """The pieces of a summary line (split at ';', ',' and '->') that carry the mark."""
    return [piece.strip() for piece in re.split(r"[;,]|->", line) if NOT_ENFORCED in piece]


def attributes_read_outside_the_policy_package() -> set[str]:
    """Every attribute name that release code (delivery/ but delivery/policy/, flows/, tasks/) reads."""
    names = set()
    for folder in ("delivery", "flows", "tasks"):
        for path in (REPO / folder).rglob("*.py"):
            if (REPO / "delivery" / "policy") in path.parents:
                continue
            names |= {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}
    return names


def test_the_summary_marks_exactly_the_unread_settings():
    marks = {topic: pieces for topic, line in summarize(TRIPGEN) if (pieces := marked_pieces(line))}
    assert marks == EXPECTED_MARKS


def test_the_marked_settings_are_still_unread_and_the_unmarked_ones_read():
    """When code starts reading a marked setting, drop its mark from delivery/policy/summary.py."""
    read = attributes_read_outside_the_policy_package()
    assert {"limit_per_deployment"}.isdisjoint(read)
    assert {"progress_deadline", "emergency_rollback_error_rate_percent", "max_concurrent", "groups",
            "commit_author_may_approve", "approver_channels"} <= read


def test_the_enforced_lines_carry_no_mark():
    rows = dict(summarize(TRIPGEN))
    for topic in ("cluster", "services", "quality gates", "validation", "blue-green", "canary", "sync window", "alerting", "metrics"):
        assert NOT_ENFORCED not in rows[topic], topic
    assert "emergency rollback > 5%" in rows["blue-green"] and "progress deadline 1m" in rows["canary"]


# --- R-MON's emergency rollback -----------------------------------------------------------


def _r(value):
    return Reading("q", value=value)


def _with_blue_green_limit(percent):
    return TRIPGEN.model_copy(update={"blue_green": TRIPGEN.blue_green.model_copy(update={"max_error_rate_percent": percent})})


def test_an_emergency_error_rate_rolls_back_even_when_the_bound_would_not():
    """6 in 100 is 6% > 5%; its Wilson lower bound (about 2.8%) is below a 3% blue-green limit."""
    policy = _with_blue_green_limit(3)
    assert policy.watch.emergency_rollback_error_rate_percent == 5
    assert 100 * wilson_interval(6, 100, policy.watch.confidence_percent)[0] < 3
    check = judge_check(1, _r(100), _r(6), _r(0.1), policy)
    assert check.verdict == "rollback"
    assert "emergency" in check.reason and "5%" in check.reason and "6 of 100" in check.reason


def test_at_the_emergency_threshold_the_bound_decides():
    policy = _with_blue_green_limit(3)
    check = judge_check(1, _r(100), _r(5), _r(0.1), policy)  # 5% is not above 5%
    assert check.verdict == "alert" and "emergency" not in check.reason


def test_the_emergency_threshold_is_not_below_the_alert_threshold():
    watch = TRIPGEN.watch.model_copy(update={"emergency_rollback_error_rate_percent": 0.5})
    problems = find_problems(TRIPGEN.model_copy(update={"watch": watch}))
    assert [p.path for p in problems] == ["watch.emergency_rollback_error_rate_percent"]
    assert "alert_error_rate_percent 1" in problems[0].message
    assert find_problems(TRIPGEN) == []


# --- R-CAN-3's progress deadline ---------------------------------------------------------


@pytest.fixture
def canary_rollout(tmp_path):
    with running_cluster(tmp_path) as cluster:
        conn = connect(str(cluster.kubeconfig), retry=RetryPolicy(attempts=5, base_delay=0.005, max_delay=0.02))
        conn.core.create_namespace({"metadata": {"name": TRIPGEN.environments["production"].namespace}})
        yield CanaryRollout(TRIPGEN, Deployments(conn), Routing(conn), Diagnostics(conn)), conn


def test_the_canary_deployment_carries_the_progress_deadline(canary_rollout, monkeypatch):
    rollout, conn = canary_rollout
    deadline = TRIPGEN.canary.analysis.progress_deadline
    assert deadline == timedelta(seconds=60) != TRIPGEN.blue_green.ready_timeout
    rollout.deploy("trip-service", "acrtrpgenprod.azurecr.io/trip-service:v1.3.0")
    manifest = conn.apps.read_namespaced_deployment("trip-service-canary", rollout.namespace)
    assert manifest.spec.progress_deadline_seconds == deadline.total_seconds()

    waits = []
    monkeypatch.setattr(rollout.deployments, "wait_rolled_out", lambda namespace, name, timeout: waits.append((name, timeout)))
    rollout.wait_available("trip-service")
    assert waits == [("trip-service-canary", deadline.total_seconds())]
