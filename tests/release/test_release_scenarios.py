"""Release scenarios (issue 4): gates, staging failure, approvals, production failures, locking, the window."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.release.conftest import audit_events, audit_records, digest_image, live, push_image, release_run, set_fault, set_load, staging_image
from tests.waiting import wait_until

BASE_IMAGE = "acrtrpgenprod.azurecr.io/{service}:v1.0.0"
ALL = ["user-service", "location-service", "trip-service", "ai-service"]


@pytest.mark.parametrize(
    "tag, message",
    [
        ("v1.1.0-lowcov", "unit tests: line coverage 72% is below the required 80%"),
        ("v1.1.0-failing-it", "integration tests"),
        ("v1.1.0-critical", "security scan"),
        ("v1.1.0-slow", "performance"),
    ],
)
def test_a_failed_required_gate_stops_before_anything_is_deployed(prefect_api, sandbox, cluster, tmp_path, tag, message):
    push_image(sandbox, tag, ALL)
    state = release_run(tag, initiator="demo-dev").join(60)
    assert state.is_failed() and "stopped by quality gates" in state.message and message in state.message
    for service in ALL:
        assert staging_image(cluster, service) == BASE_IMAGE.format(service=service)
        assert live(cluster, service) == ("blue", BASE_IMAGE.format(service=service))
    assert "gate_failed" in audit_events(tmp_path) and "traffic_switched" not in audit_events(tmp_path)


def test_a_staging_rollout_failure_is_undone(prefect_api, sandbox, cluster, tmp_path):
    state = release_run("v1.4.0-broken", services=["user-service"], initiator="demo-dev").join(90)
    assert state.is_failed() and "stopped in staging" in state.message and "user-service did not roll out" in state.message
    assert staging_image(cluster, "user-service") == BASE_IMAGE.format(service="user-service")
    assert live(cluster, "user-service") == ("blue", BASE_IMAGE.format(service="user-service"))


def test_refused_answers_are_asked_again_and_a_rejection_ends_the_release(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", services=["user-service"], initiator="demo-dev")
    key = None
    for approver in ["mallory", "demo-dev", "demo-lead", "demo-lead"]:
        key = prefect_api.approve(run, approver, after_key=key)
    prefect_api.approve(run, "demo-ops", approve=False, comment="error budget is spent", after_key=key)
    state = run.join(60)
    assert state.is_failed() and "rejected by demo-ops: error budget is spent" in state.message
    refusals = [r["details"]["reason"] for r in audit_records(tmp_path) if r["event"] == "approval_refused"]
    assert refusals == [
        "mallory is not a member of tech-leads, devops-team, security-team",
        "demo-dev started this release and cannot approve or reject it",
        "demo-lead's code was used before: each code counts once",  # the same code, the same person, twice
    ]
    assert live(cluster, "user-service") == ("blue", BASE_IMAGE.format(service="user-service"))


@pytest.mark.parametrize("policy_changes", [{"approvals": {"timeout": "3s"}}])
def test_an_approval_timeout_counts_as_a_rejection(prefect_api, sandbox, cluster, tmp_path, policy_changes):
    state = release_run("v1.2.0", services=["user-service"], initiator="demo-dev").join(60)
    assert state.is_failed() and "rejected by timeout: no decision within 3s" in state.message
    assert live(cluster, "user-service")[0] == "blue"


def test_an_emergency_override_approves_alone(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", services=["user-service"], initiator="demo-dev")
    prefect_api.approve(run, "demo-security", comment="CVE fix")
    assert run.join(90).is_completed()
    granted = [r for r in audit_records(tmp_path) if r["event"] == "approval_granted"]
    assert len(granted) == 1 and granted[0]["details"]["override"] is True
    assert live(cluster, "user-service") == ("green", digest_image("user-service", "v1.2.0"))


def test_a_security_hotfix_is_approved_automatically(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", services=["user-service"], initiator="demo-ops", hotfix=True, security_patch=True)
    assert run.join(90).is_completed()
    granted = [r for r in audit_records(tmp_path) if r["event"] == "approval_granted"]
    assert granted[0]["actor"] == "policy" and "security patch" in granted[0]["details"]["reason"]


def test_a_version_that_never_becomes_available_keeps_blue(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", services=["trip-service"], initiator="demo-dev")
    prefect_api.wait_for_pause(run)
    set_fault(sandbox, versions={"trip-service:v1.2.0": {"becomes_ready": False}})
    key = prefect_api.approve(run, "demo-lead")
    prefect_api.approve(run, "demo-ops", after_key=key)
    state = run.join(90)
    assert state.is_failed() and "trip-service-green is not available" in state.message
    assert live(cluster, "trip-service") == ("blue", BASE_IMAGE.format(service="trip-service"))
    assert "traffic_switched" not in audit_events(tmp_path)


# The watch ends at the first rollback verdict; a long one only matters on a loaded machine, whose load
# generator sends less traffic: the evidence the judge needs then takes longer to come.
@pytest.mark.parametrize("policy_changes", [{"environments": {"production": {"watch": "90s"}}}])
def test_a_faulty_version_is_rolled_back_by_the_watch(prefect_api, sandbox, cluster, tmp_path, policy_changes):
    set_load(sandbox, 300)  # ~37 requests/s per service
    run = release_run("v1.3.0-faulty", services=["user-service", "location-service"], initiator="demo-dev")
    key = prefect_api.approve(run, "demo-lead")
    prefect_api.approve(run, "demo-ops", after_key=key)
    state = run.join(180)
    assert state.is_failed() and "rolled back" in state.message and "5xx rate" in state.message
    for service in ["user-service", "location-service"]:
        assert live(cluster, service) == ("blue", BASE_IMAGE.format(service=service))
    events = audit_events(tmp_path)
    assert events.count("traffic_switched") == 2 and events.count("rollback_executed") == 2
    # the restore path diagnosed the two services by itself: the run's artifact and the bundle beside the audit log
    diagnosis = [a for a in prefect_api.artifacts(prefect_api.flow_run(run)["id"])
                 if (a["key"] or "").startswith("diagnosis-production-")]
    assert len(diagnosis) == 1 and "user-service" in diagnosis[0]["key"] and "location-service" in diagnosis[0]["key"]
    assert all(f"## {section}" in diagnosis[0]["data"] for section in ("Pods", "Events", "Logs", "Resource use", "Actuator"))
    bundles = list((tmp_path / "diagnostics").glob("diagnosis-production-*.tar.gz"))
    assert len(bundles) == 1


def test_a_failure_in_group_3_switches_groups_1_and_2_back(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", initiator="demo-dev")
    prefect_api.wait_for_pause(run)
    set_fault(sandbox, versions={"ai-service:v1.2.0": {"becomes_ready": False}})
    key = prefect_api.approve(run, "demo-lead")
    prefect_api.approve(run, "demo-ops", after_key=key)
    state = run.join(180)
    assert state.is_failed() and "ai-service" in state.message
    for service in ALL:
        assert live(cluster, service) == ("blue", BASE_IMAGE.format(service=service))
    back = [r["details"]["service"] for r in audit_records(tmp_path) if r["event"] == "rollback_executed"]
    assert back == ["trip-service", "location-service", "user-service"]  # reverse order of the switches


@pytest.fixture
def refused_slots(monkeypatch) -> list[list[str]]:
    """The limit names of each request for a concurrency slot that the Prefect server refused (423 Locked) in this
    process: the release lock's acquisition asks through this client method and retries after each refusal."""
    from prefect.client.orchestration import PrefectClient

    refused: list[list[str]] = []
    ask = PrefectClient.increment_concurrency_slots_with_lease

    async def recording(self, names, *args, **kwargs):
        try:
            return await ask(self, names, *args, **kwargs)
        except httpx.HTTPStatusError as err:
            if err.response.status_code == 423:
                refused.append(list(names))
            raise

    monkeypatch.setattr(PrefectClient, "increment_concurrency_slots_with_lease", recording)
    return refused


def test_a_second_release_touches_nothing_until_the_first_ends(prefect_api, sandbox, cluster, tmp_path, refused_slots):
    first = release_run("v1.2.0", services=["user-service"], initiator="demo-dev")
    prefect_api.wait_for_pause(first)
    second = release_run("v1.3.0", services=["user-service"], initiator="demo-dev")

    def staging_keeps_the_first() -> None:
        assert second.thread.is_alive(), f"the second release ended: {second.outcome}"
        assert staging_image(cluster, "user-service") == digest_image("user-service", "v1.2.0"), "the second touched staging"

    # the event that shows the second had its chance: it asked for the lock the paused first holds, and was refused
    lock = os.environ["TRIPGEN_RELEASE_LOCK"]
    wait_until(lambda: [lock] in refused_slots, 120, "the second release to be refused the release lock",
               interval=0.2, invariant=staging_keeps_the_first)
    staging_keeps_the_first()
    assert prefect_api.read(prefect_api.flow_run(second)["id"])["state"]["type"] == "RUNNING"
    prefect_api.approve(first, "demo-lead", approve=False, comment="make way")
    assert first.join(60).is_failed()
    prefect_api.wait_for_pause(second)
    assert staging_image(cluster, "user-service") == digest_image("user-service", "v1.3.0")
    prefect_api.approve(second, "demo-lead", approve=False, comment="done testing")
    assert second.join(60).is_failed()
