"""Failure conditions (issue 4): a flaky Kubernetes API and Prometheus going down during the watch never leave
production half released, and never let a release pass unwatched."""

from __future__ import annotations

import httpx
import pytest

from tests.release.conftest import audit_events, audit_records, digest_image, live, release_run, set_fault
from tests.waiting import wait_until

BASE_IMAGE = "acrtrpgenprod.azurecr.io/{service}:v1.0.0"
ALL = ["user-service", "location-service", "trip-service", "ai-service"]
EVENT_TIMEOUT_SECONDS = 120


def approve_both(prefect_api, run) -> None:
    key = prefect_api.approve(run, "demo-lead")
    prefect_api.approve(run, "demo-ops", after_key=key)


def wait_for_event(tmp_path, event: str, run) -> None:
    """Wait until `event` is in the audit log; fail if the run ends without it or it takes too long."""

    def still_running() -> None:
        assert run.thread.is_alive() or event in audit_events(tmp_path), f"{run.name} ended before {event}: {run.outcome}"

    wait_until(lambda: event in audit_events(tmp_path), EVENT_TIMEOUT_SECONDS, f"{event} in the audit log",
               interval=0.1, invariant=still_running)


def selector_patches(sandbox, service: str) -> int:
    """Patches of the production Service `service` the API server carried out (injected faults changed nothing)."""
    params = {"method": "PATCH", "plural": "services", "name": service}
    log = httpx.get(f"{sandbox.control}/requests", params=params).raise_for_status().json()
    assert log["dropped"] == 0, "the sandbox's request log overflowed; the count would miss patches"
    return sum(
        1
        for r in log["requests"]
        if r["namespace"] == "production" and r["subresource"] is None and not r["fault"] and 200 <= r["status"] < 300
    )


@pytest.mark.parametrize("bad", [None, "user-service"], ids=["completes", "restores"])
def test_a_flaky_kubernetes_api_never_leaves_production_half_released(prefect_api, sandbox, cluster, tmp_path, bad):
    httpx.delete(f"{sandbox.control}/requests").raise_for_status()
    set_fault(sandbox, api_error_percent=10, api_throttle_percent=10)  # 20% of resource requests answer 500 or 429
    run = release_run("v1.2.0", initiator="demo-dev")
    approve_both(prefect_api, run)
    if bad:  # once it serves production, the version turns bad: the restore must also get through the faults
        wait_for_event(tmp_path, "traffic_switched", run)
        set_fault(sandbox, versions={f"{bad}:v1.2.0": {"error_rate_percent": 60}})
    state = run.join(600)
    httpx.delete(f"{sandbox.control}/faults").raise_for_status()

    assert state.is_completed() or state.is_failed(), f"{state.type}: {state.message}"
    restored = not state.is_completed()
    assert restored or not bad, state.message
    released = {s: ("blue", BASE_IMAGE.format(service=s)) if restored else ("green", digest_image(s, "v1.2.0")) for s in ALL}
    assert {s: live(cluster, s) for s in ALL} == released, state.message
    switched = {r["details"]["service"] for r in audit_records(tmp_path) if r["event"] == "traffic_switched"}
    back = {r["details"]["service"] for r in audit_records(tmp_path) if r["event"] == "rollback_executed"}
    assert back == (switched if restored else set()), (switched, back)
    patches = {s: selector_patches(sandbox, s) for s in ALL}
    needed = {s: (s in switched) * (1 + restored) for s in ALL}  # the switch, and the switch back when restored
    assert patches == needed, (patches, state.message)


def test_prometheus_going_down_during_the_watch_rolls_back(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", initiator="demo-dev")
    approve_both(prefect_api, run)
    wait_for_event(tmp_path, "traffic_switched", run)
    set_fault(sandbox, prometheus_down=True)
    state = run.join(180)
    httpx.delete(f"{sandbox.control}/faults").raise_for_status()

    assert state.is_failed() and "rolled back" in state.message, state.message
    for service in ALL:
        assert live(cluster, service) == ("blue", BASE_IMAGE.format(service=service))
    events = audit_events(tmp_path)
    assert "rollback_executed" in events and "deployment_completed" not in events
    switched = [r["details"]["service"] for r in audit_records(tmp_path) if r["event"] == "traffic_switched"]
    back = [r["details"]["service"] for r in audit_records(tmp_path) if r["event"] == "rollback_executed"]
    assert switched and sorted(back) == sorted(switched)  # every switched service went back
