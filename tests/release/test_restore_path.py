"""The one restore path (issue 10): failures after traffic moved, a bad service in a batch, a rerun after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime

import httpx
import pytest

from delivery.kube import Routing, connect
from delivery.kube.configmaps import JsonConfigMaps
from delivery.release.record import ReleaseRecords
from tests.conftest import REPO
from tests.mail import approval_code
from tests.release.conftest import audit_records, digest_image, live, release_run, set_fault
from tests.release.test_canary import CANARY_POLICY, approve_twice
from tests.waiting import wait_until

BASE = "acrtrpgenprod.azurecr.io/{}:v1.0.0"
PAIR = ["user-service", "location-service"]


def refuse(sandbox, method: str, plural: str, name: str, times: int | None = None) -> None:
    set_fault(sandbox, refusals=[{"method": method, "plural": plural, "name": name, **({"times": times} if times else {})}])


def events(tmp_path, event: str) -> list[dict]:
    return [r for r in audit_records(tmp_path) if r["event"] == event]


def rollback_alerted(prefect_api, run) -> list[str]:
    """The run's "rolled back in production" notification task runs, once the server has recorded one: task runs
    reach it as events, which it may write after the flow run has ended."""
    flow_run_id = prefect_api.flow_run(run)["id"]
    body = {"task_runs": {"flow_run_id": {"any_": [flow_run_id]}, "name": {"like_": "rolled back in production"}}, "limit": 50}
    return wait_until(lambda: [t["name"] for t in prefect_api.http.post("/task_runs/filter", json=body).json()], 30,
                      "the rollback alert's task run on the server")


def assert_restored(cluster, tmp_path, prefect_api, run, services: list[str], state) -> None:
    assert state.is_failed() and "rolled back" in state.message, state.message
    for service in services:
        assert live(cluster, service) == ("blue", BASE.format(service)), service
    assert events(tmp_path, "rollback_executed"), "no rollback_executed audited"
    assert rollback_alerted(prefect_api, run)


def test_a_switch_that_fails_after_another_service_switched_restores_it(prefect_api, sandbox, cluster, tmp_path):
    refuse(sandbox, "PATCH", "services", "location-service")
    run = release_run("v1.2.0", services=PAIR, initiator="demo-dev")
    approve_twice(prefect_api, run)
    state = run.join(120)
    assert "location-service" in state.message and "403" in state.message
    assert_restored(cluster, tmp_path, prefect_api, run, PAIR, state)
    assert [r["details"]["service"] for r in events(tmp_path, "rollback_executed")] == ["user-service"]


def test_an_unexpected_error_after_traffic_moved_restores_production(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", services=PAIR, initiator="demo-dev")
    approve_twice(prefect_api, run)
    wait_until(lambda: events(tmp_path, "traffic_switched"), 120, "the first switch", invariant=lambda: run.thread.is_alive())
    records = ReleaseRecords(JsonConfigMaps(connect(os.environ["TRIPGEN_KUBECONFIG"]), "production"))
    refuse(sandbox, "PUT", "configmaps", records.unfinished()[0].name, times=1)  # the next record write fails
    state = run.join(120)
    assert "(403)" in state.message and "configmaps" in state.message
    assert_restored(cluster, tmp_path, prefect_api, run, PAIR, state)


def canary_promotion_fails(sandbox):
    refuse(sandbox, "PATCH", "deployments", "location-service-blue")


def canary_weight_change_fails(sandbox):
    """The stage-2 weight change of location-service is refused, once: the restore's own change goes through."""
    routing = Routing(connect(os.environ["TRIPGEN_KUBECONFIG"]))
    weights = lambda: routing.route_weights("production", "location-service")  # noqa: E731
    wait_until(lambda: weights().get("canary") == 5, 180, "location-service's canary at 5%")
    refuse(sandbox, "PUT", "virtualservices", "location-service", times=1)


@pytest.mark.parametrize("policy_changes", [CANARY_POLICY])
@pytest.mark.parametrize("inject", [canary_promotion_fails, canary_weight_change_fails])
def test_a_canary_step_that_fails_after_promotion_restores_every_service(prefect_api, sandbox, cluster, tmp_path, policy_changes, inject):
    run = release_run("v1.2.0", services=PAIR, strategy="canary", initiator="demo-dev")
    approve_twice(prefect_api, run)
    inject(sandbox)
    state = run.join(240)
    assert state.is_failed() and "rolled back" in state.message, state.message
    deployments, routing = cluster
    for service in PAIR:
        assert deployments.image_of("production", f"{service}-blue") == BASE.format(service), service
        assert routing.route_weights("production", service) == {"stable": 100, "canary": 0}
        assert routing.selected_color("production", service) == "blue"
    assert [r["details"]["service"] for r in events(tmp_path, "rollback_executed")] == ["location-service", "user-service"]
    assert rollback_alerted(prefect_api, run)


PAUSED_AT_2 = {**CANARY_POLICY, "approvals": {"timeout": "8s"}, "canary": {**CANARY_POLICY["canary"], "stages": [
    {"weight": 5, "observe": "3s"}, {"weight": 25, "observe": "3s", "pause_before": True}, {"weight": 100, "observe": "3s"}]}}


@pytest.mark.parametrize("policy_changes", [PAUSED_AT_2])
def test_a_canary_manual_point_that_times_out_restores_stable(prefect_api, sandbox, cluster, tmp_path, policy_changes):
    run = release_run("v1.2.0", services=["user-service"], strategy="canary", initiator="demo-dev")
    key = approve_twice(prefect_api, run)
    prefect_api.wait_for_pause(run, after_key=key)  # the manual point before 25%: nobody answers
    state = run.join(120)
    assert state.is_failed() and "no decision at the manual point" in state.message, state.message
    deployments, routing = cluster
    assert routing.route_weights("production", "user-service") == {"stable": 100, "canary": 0}
    assert deployments.get("production", "user-service-canary").spec.replicas == 0
    assert [r["details"]["service"] for r in events(tmp_path, "rollback_executed")] == ["user-service"]


@pytest.mark.parametrize("policy_changes", [{"environments": {"production": {"watch": "120s"}}}])
def test_one_bad_service_in_a_batch_is_restored_within_an_interval_and_the_other_watch_is_cancelled(
        prefect_api, sandbox, cluster, tmp_path, policy_changes):
    run = release_run("v1.2.0", services=PAIR, initiator="demo-dev")
    approve_twice(prefect_api, run)
    wait_until(lambda: len(events(tmp_path, "traffic_switched")) == 2, 120, "both switches", invariant=lambda: run.thread.is_alive())
    set_fault(sandbox, versions={"user-service:v1.2.0": {"error_rate_percent": 60}})
    state = run.join(120)
    assert state.is_failed() and "user-service watch failed" in state.message, state.message
    failed = events(tmp_path, "watch_failed")
    assert [f["details"]["service"] for f in failed] == ["user-service"]
    restored = {r["details"]["service"]: r for r in events(tmp_path, "rollback_executed")}
    seconds = (datetime.fromisoformat(restored["user-service"]["time"]) - datetime.fromisoformat(failed[0]["time"])).total_seconds()
    assert seconds <= 2 + 2, f"user-service restored {seconds:.2f}s after its failed check (interval 2 s + 2 s)"
    logs = lambda: prefect_api.http.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [prefect_api.flow_run(run)["id"]]}}}).json()  # noqa: E731
    wait_until(lambda: any("watch of location-service cancelled" in log["message"] for log in logs()), 30, "the cancelled watch's log")
    for service in PAIR:
        assert live(cluster, service) == ("blue", BASE.format(service))


def test_a_failed_staging_rollout_undoes_every_service_this_run_rolled(prefect_api, sandbox, cluster, tmp_path):
    set_fault(sandbox, versions={"location-service:v1.2.0": {"becomes_ready": False}})
    state = release_run("v1.2.0", services=PAIR, initiator="demo-dev").join(120)
    assert state.is_failed() and "stopped in staging" in state.message and "location-service did not roll out" in state.message
    for service in PAIR:  # user-service rolled first and was undone; location-service undid itself
        assert cluster[0].image_of("staging", service) == BASE.format(service), service
        assert live(cluster, service) == ("blue", BASE.format(service))


def start_release_process(tag: str, services: list[str]) -> subprocess.Popen:
    """The release flow in its own process, as a worker runs it, so the test can kill it."""
    from prefect.settings import PREFECT_API_URL

    code = f"from flows.release import release; release(tag={tag!r}, services={services!r}, initiator='demo-dev')"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_rerun_after_a_crash_is_refused_until_recovered_and_never_deploys_into_the_rollback_target(
        prefect_api, sandbox, cluster, tmp_path):
    from flows.release import release

    process = start_release_process("v1.3.0", ["user-service"])
    try:
        runs = wait_until(lambda: prefect_api.http.post("/flow_runs/filter", json={"flow_runs": {"name": {"any_": ["release-v1.3.0"]}}}).json(),
                          60, "the release run")
        answered = None
        for approver in ("demo-lead", "demo-ops"):
            paused = wait_until(lambda: pause_other_than(prefect_api, runs[0]["id"], answered), 120, "an approval pause")
            code = approval_code(approver, runs[0]["id"])
            answer = {"approver": approver, "code": code, "approve": True}
            prefect_api.http.post(f"/flow_runs/{runs[0]['id']}/resume", json={"run_input": answer})
            answered = paused
        wait_until(lambda: events(tmp_path, "traffic_switched"), 120, "the switch to green")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert live(cluster, "user-service") == ("green", digest_image("user-service", "v1.3.0"))  # left switched, nobody watching

    from prefect.settings import PREFECT_API_URL

    cli = [sys.executable, "-m", "delivery.cli", "recover"]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    usage = subprocess.run([*cli, "1.3"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "tag '1.3' is not v<major>.<minor>.<patch>" in usage.stderr
    alive = subprocess.run([*cli, "v1.3.0", "--as", "on-call"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert alive.returncode == 1 and "is RUNNING" in alive.stderr  # the server still thinks it runs
    crashed = {"state": {"type": "CRASHED", "message": "no heartbeat (as the zombie automation says)"}, "force": True}
    prefect_api.http.post(f"/flow_runs/{runs[0]['id']}/set_state", json=crashed).raise_for_status()

    refused = release(tag="v1.3.0", services=["user-service"], initiator="demo-dev", force=True, return_state=True)
    assert refused.is_failed() and "is unfinished: run `tripgen-release recover v1.3.0`" in refused.message
    assert cluster[0].image_of("production", "user-service-blue") == BASE.format("user-service")

    recovered = subprocess.run([*cli, "v1.3.0", "--as", "on-call"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert recovered.returncode == 0 and ": restored: user-service: selector back to blue" in recovered.stdout, recovered.stdout + recovered.stderr
    assert live(cluster, "user-service") == ("blue", BASE.format("user-service"))
    assert [e for e in ("deployment_crashed", "rollback_executed", "deployment_recovered") if not events(tmp_path, e)] == []

    httpx.delete(f"{sandbox.control}/requests").raise_for_status()
    rerun = release_run("v1.3.0", services=["user-service"], initiator="demo-dev")
    approve_twice(prefect_api, rerun)
    assert rerun.join(120).is_completed()
    assert live(cluster, "user-service") == ("green", digest_image("user-service", "v1.3.0"))
    writes = httpx.get(f"{sandbox.control}/requests", params={"plural": "deployments", "name": "user-service-blue"}).json()["requests"]
    assert [w for w in writes if w["method"] in ("PUT", "POST", "PATCH") and w["subresource"] is None] == []  # blue held v1.0.0


def pause_other_than(prefect_api, flow_run_id: str, answered: str | None) -> str | None:
    run = prefect_api.read(flow_run_id)
    details = run["state"]["state_details"]
    if run["state"]["type"] == "PAUSED" and details.get("run_input_keyset") and details.get("pause_key") != answered:
        return details["pause_key"]
    return None


@pytest.mark.parametrize("policy_changes", [{"environments": {"production": {"watch": "120s"}}}])
def test_a_lost_lock_stops_the_watches_and_restores_production(prefect_api, sandbox, cluster, tmp_path, policy_changes, monkeypatch):
    monkeypatch.setenv("TRIPGEN_RELEASE_LOCK_CHECK_SECONDS", "0.5")
    run = release_run("v1.2.0", services=PAIR, initiator="demo-dev")
    approve_twice(prefect_api, run)
    wait_until(lambda: len(events(tmp_path, "traffic_switched")) == 2, 120, "both switches", invariant=lambda: run.thread.is_alive())
    lease = ReleaseRecords(JsonConfigMaps(connect(os.environ["TRIPGEN_KUBECONFIG"]), "production")).unfinished()[0].lock_lease
    prefect_api.http.post("/v2/concurrency_limits/decrement-with-lease", json={"lease_id": lease}).raise_for_status()  # revoked
    state = run.join(60)  # the 120 s watches do not run out: the lost lock stops them
    assert "the release lock was lost (the server no longer has its lease" in state.message, state.message
    assert_restored(cluster, tmp_path, prefect_api, run, PAIR, state)
    assert {r["details"]["service"] for r in events(tmp_path, "rollback_executed")} == set(PAIR)
    assert not events(tmp_path, "watch_failed")  # nothing was wrong with the versions
