"""Canary releases on the sandbox (issue 5): progression, header routing, analysis, manual points, failure."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from delivery.kpi import CanaryCount, release_runs
from delivery.kube import Routing, connect
from tests.mail import approval_code
from tests.release.conftest import audit_records, digest_image, release_run, set_fault

CANARY_POLICY = {
    "canary": {
        "stages": [
            {"weight": 5, "observe": "3s"},
            {"weight": 25, "observe": "3s"},
            {"weight": 50, "observe": "3s"},
            {"weight": 100, "observe": "3s"},
        ],
        "analysis": {"interval": "3s", "threshold": 3, "max_weight": 50, "step_weight": 10},
    }
}


@pytest.fixture
def policy_changes():
    return CANARY_POLICY


class WeightWatcher:
    """Reads the VirtualService's weights every 100 ms while a canary runs; remembers each distinct value."""

    def __init__(self, kubeconfig: str, service: str) -> None:
        self.routing, self.service = Routing(connect(kubeconfig)), service
        self.seen: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            weight = self.routing.route_weights("production", self.service).get("canary", 0)
            if not self.seen or self.seen[-1] != weight:
                self.seen.append(weight)
            time.sleep(0.1)

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(5)
        return self.seen


def approve_twice(prefect_api, run):
    key = prefect_api.approve(run, "demo-lead")
    return prefect_api.approve(run, "demo-ops", after_key=key)


def canary_replicas(cluster, service):
    return cluster[0].get("production", f"{service}-canary").spec.replicas


def test_stages_progress_with_weights_read_back_and_promotion_leaves_stable_on_the_new_digest(prefect_api, sandbox, cluster, tmp_path):
    committed = datetime.now(timezone(timedelta(hours=9))).replace(microsecond=0) - timedelta(hours=2)
    run = release_run("v1.2.0", services=["user-service"], strategy="canary", initiator="demo-dev", commit_time=committed)
    watcher = WeightWatcher(os.environ["TRIPGEN_KUBECONFIG"], "user-service")
    approve_twice(prefect_api, run)
    header_versions = set()
    while run.thread.is_alive() and len(header_versions) < 1:
        if watcher.seen and watcher.seen[-1] > 0:
            answer = httpx.get(f"{sandbox.gateway}/api/users/health", headers={"Host": "api.tripgen.com", "canary": "true"})
            header_versions.add(answer.headers.get("x-tripgen-version"))
        time.sleep(0.2)
    state = run.join(120)
    seen = watcher.stop()
    assert state.is_completed(), state.message
    assert [w for w in seen if w] == [5, 25, 50, 100] and seen[-1] == 0
    assert header_versions == {"canary"}  # `canary: true` always reaches the canary
    deployments, routing = cluster
    assert routing.route_weights("production", "user-service") == {"stable": 100, "canary": 0}
    assert routing.selected_color("production", "user-service") == "blue"
    assert deployments.image_of("production", "user-service-blue") == digest_image("user-service", "v1.2.0")
    assert canary_replicas(cluster, "user-service") == 0
    (promoted,) = [r["details"] for r in audit_records(tmp_path) if r["event"] == "canary_promoted"]
    assert promoted["requests"] > 0 and 0 <= promoted["errors"] <= promoted["requests"]  # the canary's, over its intervals
    (released,) = release_runs(audit_records(tmp_path))  # what `tripgen-release kpi` reads back
    assert released.commit_time == committed and released.canary == CanaryCount(promoted["errors"], promoted["requests"])


@pytest.mark.parametrize("policy_changes", [{**CANARY_POLICY, "canary": {**CANARY_POLICY["canary"], "progression": "analysis"}}])
def test_flagger_progression_steps_from_10_to_50(prefect_api, sandbox, cluster, tmp_path, policy_changes):
    run = release_run("v1.2.0", services=["location-service"], strategy="canary", initiator="demo-dev")
    watcher = WeightWatcher(os.environ["TRIPGEN_KUBECONFIG"], "location-service")
    approve_twice(prefect_api, run)
    state = run.join(120)
    seen = watcher.stop()
    assert state.is_completed(), state.message
    assert [w for w in seen if w] == [10, 20, 30, 40, 50]


@pytest.mark.parametrize("policy_changes", [{**CANARY_POLICY, "canary": {**CANARY_POLICY["canary"], "progression": "analysis"}}])
def test_reaching_the_failed_check_threshold_rolls_back(prefect_api, sandbox, cluster, tmp_path, policy_changes):
    run = release_run("v1.2.0", services=["trip-service"], strategy="canary", initiator="demo-dev")
    prefect_api.wait_for_pause(run)
    set_fault(sandbox, versions={"trip-service:v1.2.0": {"latency_p50_ms": 700, "latency_p95_ms": 900}})  # p99 > 500 ms
    approve_twice(prefect_api, run)
    state = run.join(120)
    assert state.is_failed() and "rolled back" in state.message and "request-duration" in state.message
    assert Routing(connect(__import__("os").environ["TRIPGEN_KUBECONFIG"])).route_weights("production", "trip-service") == {"stable": 100, "canary": 0}
    assert canary_replicas(cluster, "trip-service") == 0
    (aborted,) = [r["details"] for r in audit_records(tmp_path) if r["event"] == "canary_aborted"]
    assert aborted["requests"] > 0 and 0 <= aborted["errors"] <= aborted["requests"]
    assert (tmp_path / "canary-logs" / "v1.2.0-trip-service-canary.json").exists()


def test_prometheus_down_counts_as_failed_checks(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", services=["ai-service"], strategy="canary", initiator="demo-dev")
    prefect_api.wait_for_pause(run)
    set_fault(sandbox, prometheus_down=True)
    approve_twice(prefect_api, run)
    state = run.join(120)
    assert state.is_failed() and "rolled back" in state.message
    assert cluster[1].route_weights("production", "ai-service") == {"stable": 100, "canary": 0}
    assert cluster[0].image_of("production", "ai-service-blue") == "acrtrpgenprod.azurecr.io/ai-service:v1.0.0"


PAUSED = {**CANARY_POLICY, "canary": {**CANARY_POLICY["canary"], "stages": [
    {"weight": 5, "observe": "3s"}, {"weight": 25, "observe": "3s", "pause_before": True}, {"weight": 100, "observe": "3s"}]}}


@pytest.mark.parametrize("policy_changes", [PAUSED])
def test_a_manual_pause_then_full_promotion(prefect_api, sandbox, cluster, tmp_path, policy_changes):
    run = release_run("v1.2.0", services=["user-service"], strategy="canary", initiator="demo-dev")
    key = approve_twice(prefect_api, run)
    paused = prefect_api.wait_for_pause(run, after_key=key)
    assert cluster[1].route_weights("production", "user-service") == {"stable": 95, "canary": 5}
    decision = {"approver": "demo-lead", "code": approval_code("demo-lead", paused["id"]), "action": "promote", "comment": "looks fine"}
    prefect_api.http.post(f"/flow_runs/{paused['id']}/resume", json={"run_input": decision})
    assert run.join(120).is_completed()
    manual, promoted = [r for r in audit_records(tmp_path) if r["event"] == "canary_promoted"]
    assert manual["details"]["manual"] and manual["actor"] == "demo-lead"
    counts = {key: manual["details"][key] for key in ("errors", "requests")}  # interval 1's, at 5%: maybe none yet
    assert counts == {key: promoted["details"][key] for key in counts} and all(isinstance(n, int) for n in counts.values())
    assert cluster[0].image_of("production", "user-service-blue") == digest_image("user-service", "v1.2.0")


@pytest.mark.parametrize("policy_changes", [PAUSED])
def test_a_manual_pause_then_abort(prefect_api, sandbox, cluster, tmp_path, policy_changes):
    run = release_run("v1.2.0", services=["user-service"], strategy="canary", initiator="demo-dev")
    key = approve_twice(prefect_api, run)
    paused = prefect_api.wait_for_pause(run, after_key=key)
    decision = {"approver": "demo-ops", "code": approval_code("demo-ops", paused["id"]), "action": "abort", "comment": "latency looks off"}
    prefect_api.http.post(f"/flow_runs/{paused['id']}/resume", json={"run_input": decision})
    state = run.join(120)
    assert state.is_failed() and "aborted by demo-ops: latency looks off" in state.message
    assert cluster[1].route_weights("production", "user-service") == {"stable": 100, "canary": 0}
    assert cluster[0].image_of("production", "user-service-blue") == "acrtrpgenprod.azurecr.io/user-service:v1.0.0"
