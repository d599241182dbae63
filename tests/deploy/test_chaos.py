"""Chaos (issue 10): the process running a release is killed with SIGKILL at each step boundary, on the real
stack (`prefect server start` on PostgreSQL, the registered deployments and automations, a process worker).

Recovery must follow by itself: the worker reports the killed run Crashed (or, when the worker died with it,
the heartbeat automation does), the recovery automation runs `recover/production`, and production ends
restored from the release record, the lock free, the crash and the restore audited and alerted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from delivery.audit import verify
from delivery.kube import Deployments, Routing, connect
from delivery.kube.configmaps import JsonConfigMaps
from delivery.prefect_rest import PrefectRest
from delivery.release.record import ReleaseRecord, ReleaseRecords
from delivery.sandbox.process import sandbox_process
from tests.conftest import REPO
from tests.deploy.conftest import base_env, free_port, postgres_database, process, stack_reports, wait_healthy
from tests.mail import approval_code
from tests.release.conftest import fast_policy_data, worker_settings
from tests.release.driver import serve_in_thread
from tests.waiting import wait_until

RECOVERY_BOUND = 180  # "within 3 minutes of a worker being available again"
SILENCE_SECONDS = 45  # the zombie automation's window: heartbeats come every 30 s (Prefect's minimum)
PAIR = ("user-service", "location-service")
BASE = "acrtrpgenprod.azurecr.io/{}:v1.0.0"


@dataclass
class ChaosStack:
    api: PrefectRest
    work: Path
    env: dict[str, str]
    worker_env: dict[str, str]
    logs: Path
    kubeconfig: Path
    control: str
    alerts: list[dict]
    worker: subprocess.Popen | None = None

    def start_worker(self) -> None:
        out = (self.logs / "worker.log").open("ab")
        command = [sys.executable, "-m", "delivery.cli", "deployments", "worker", "--name", f"chaos-{uuid.uuid4().hex[:6]}"]
        self.worker = subprocess.Popen(command, env=self.worker_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # its own group: a lost node kills worker and flow run

    def kill_node(self, flow_run_id: str) -> None:
        """The worker and the flow run it started (in a session of its own) die together, as when their node is lost."""
        flow_process = flow_run_process(flow_run_id)
        os.killpg(self.worker.pid, signal.SIGKILL)
        os.kill(flow_process, signal.SIGKILL)
        self.worker.wait(10)

    def stop_worker(self) -> None:
        if self.worker and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)

    def records(self) -> ReleaseRecords:
        return ReleaseRecords(JsonConfigMaps(connect(str(self.kubeconfig)), "production"))

    def audit(self) -> list[dict]:
        path = self.work / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def alert_receiver(alerts: list[dict]) -> Starlette:
    """Stands in for the Teams incoming webhook: keeps every card posted to it."""

    async def receive(request: Request) -> JSONResponse:
        alerts.append(await request.json())
        return JSONResponse({}, status_code=200)

    return Starlette(routes=[Route("/teams", receive, methods=["POST"])])


@pytest.fixture(scope="module")
def chaos(tmp_path_factory) -> Iterator[ChaosStack]:
    work = tmp_path_factory.mktemp("chaos")
    logs = work / "logs"
    logs.mkdir()
    policy = fast_policy_data()
    policy["environments"]["production"]["watch"] = "30s"
    policy_file = work / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    alerts: list[dict] = []
    with ExitStack() as stack:
        database = stack.enter_context(postgres_database())
        server_env = {**base_env(work / "server-home"), "PREFECT_API_DATABASE_CONNECTION_URL": database}
        server = stack.enter_context(process([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                             server_env, logs / "server.log"))
        endpoints = stack.enter_context(sandbox_process(work, policy_file))
        receiver = stack.enter_context(serve_in_thread(alert_receiver(alerts)))
        wait_healthy(api_url, server, logs / "server.log")
        env = {**base_env(work / "client-home"), "PREFECT_API_URL": api_url, "TRIPGEN_ZOMBIE_AFTER_SECONDS": str(SILENCE_SECONDS)}
        registered = subprocess.run([sys.executable, "-m", "delivery.cli", "deployments", "register"], env=env, cwd=REPO,
                                    capture_output=True, text=True, timeout=180)
        assert registered.returncode == 0, registered.stdout + registered.stderr
        assert registered.stdout.count("automation 'tripgen:") == 2, registered.stdout
        worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1",
                      **worker_settings(work, policy_file, endpoints, stack_reports(work), TEAMS_WEBHOOK_URL=f"{receiver}/teams")}
        chaos = ChaosStack(PrefectRest(api_url), work, env, worker_env, logs, work / "sandbox" / "kubeconfig", endpoints.control, alerts)
        chaos.start_worker()
        try:
            yield chaos
        finally:
            chaos.stop_worker()


def start_release(chaos: ChaosStack, tag: str, strategy: str = "blue-green") -> str:
    deployment = chaos.api.deployment("release/production")
    run = chaos.api.create_run(deployment["id"], {"tag": tag, "services": list(PAIR), "strategy": strategy,
                                                  "initiator": "octocat", "force": True})
    return run["id"]


def approve(chaos: ChaosStack, flow_run_id: str) -> None:
    answered = None
    for approver in ("demo-lead", "demo-ops"):
        run, pause = chaos.api.wait_for(flow_run_id, 180, after_key=answered)
        assert pause is not None, f"{run['name']} ended {run['state']['type']}: {run['state'].get('message')}"
        code = approval_code(approver, flow_run_id, chaos.work / "audit.jsonl", chaos.work / "policy.yaml")
        chaos.api.resume(flow_run_id, {"approver": approver, "code": code, "approve": True, "comment": "chaos"})
        answered = pause.key


def record_of(chaos: ChaosStack, flow_run_id: str) -> ReleaseRecord | None:
    found = [r for r in chaos.records().all() if r.flow_run_id == flow_run_id]
    return found[0] if found else None


def wait_for_record(chaos: ChaosStack, flow_run_id: str, condition, what: str) -> ReleaseRecord:
    def reached():
        record = record_of(chaos, flow_run_id)
        return record if record is not None and condition(record) else None

    return wait_until(reached, 180, what, interval=0.05)


def flow_run_process(flow_run_id: str) -> int:
    """The pid of the process the worker started for the flow run (its environment names the run)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode() in environ.split(b"\0"):
            return int(entry.name)
    raise AssertionError(f"no process runs flow run {flow_run_id}")


def kill_flow_run(flow_run_id: str) -> None:
    os.kill(flow_run_process(flow_run_id), signal.SIGKILL)


def assert_recovered(chaos: ChaosStack, flow_run_id: str, alerts_before: int) -> ReleaseRecord:
    """Restored by the recover flow: the crash and the recovery audited, and all `assert_restored` checks."""
    recovered = wait_until(lambda: [e for e in chaos.audit() if e["event"] == "deployment_recovered"
                                    and e["details"]["flow_run"] == flow_run_id], RECOVERY_BOUND, "deployment_recovered")
    assert recovered[0]["details"]["complete"], recovered
    crashed = [e for e in chaos.audit() if e["event"] == "deployment_crashed" and e["details"]["flow_run"] == flow_run_id]
    assert crashed, "the crash is not audited"
    return assert_restored(chaos, flow_run_id, alerts_before)


def assert_restored(chaos: ChaosStack, flow_run_id: str, alerts_before: int) -> ReleaseRecord:
    """Every service on one version matching the finished record, the lock free, audited, alerted, chain intact."""
    record = wait_for_record(chaos, flow_run_id, lambda r: not r.unfinished, "the record to be finished")
    connection = connect(str(chaos.kubeconfig))
    deployments, routing = Deployments(connection), Routing(connection)
    for entry in record.services.values():
        color = routing.selected_color("production", entry.service)
        assert color == entry.previous_color, f"{entry.service} selects {color}, the record says {entry.previous_color}"
        assert deployments.image_of("production", f"{entry.service}-{color}") == entry.previous_image
        try:
            weights = routing.route_weights("production", entry.service)
        except Exception:  # noqa: BLE001 - no VirtualService: nothing to compare
            weights = None
        assert weights in (None, {"stable": 100, "canary": 0}), f"{entry.service}: {weights}"
    assert all(record.services[s].phase == "restored" for s in record.changed), record.where()
    executed = {e["details"]["service"] for e in chaos.audit() if e["event"] == "rollback_executed" and e["details"]["record"] == record.name}
    untouched = {s for s in record.changed if record.services[s].detail.startswith("already on")}  # killed before its patch
    assert executed == set(record.changed) - untouched, f"rollback_executed for {executed}, changed {record.changed}"
    wait_until(lambda: len(chaos.alerts) > alerts_before, 60, "the alert")
    free = lambda: chaos.api.http.get("/v2/concurrency_limits/production-release").json()["active_slots"] == 0  # noqa: E731
    wait_until(free, 60, "the release lock to be free")  # freed by the run on its way out, or by recover
    assert verify(chaos.work / "audit.jsonl").intact
    return record


def test_killed_after_the_idle_color_is_deployed(chaos):
    before = len(chaos.alerts)
    run = start_release(chaos, "v1.2.0")
    approve(chaos, run)
    wait_for_record(chaos, run, lambda r: r.services["user-service"].phase == "deployed", "user-service's idle color deployed")
    kill_flow_run(run)
    record = assert_recovered(chaos, run, before)
    assert record.state == "stopped" or record.state == "restored"


def test_killed_right_after_the_first_switch(chaos):
    before = len(chaos.alerts)
    run = start_release(chaos, "v1.3.0")
    approve(chaos, run)
    wait_for_record(chaos, run, lambda r: bool(r.changed), "the first switch")
    kill_flow_run(run)
    record = assert_recovered(chaos, run, before)
    assert record.state == "restored" and record.changed


def test_killed_with_its_worker_in_the_middle_of_a_watch(chaos):
    before = len(chaos.alerts)
    run = start_release(chaos, "v1.4.0")
    approve(chaos, run)
    wait_for_record(chaos, run, lambda r: all(r.services[s].phase == "switched" for s in PAIR), "both switched, watching")
    chaos.kill_node(run)
    assert chaos.api.flow_run(run)["state"]["type"] == "RUNNING"  # the server cannot know yet
    chaos.start_worker()
    record = assert_recovered(chaos, run, before)
    assert record.state == "restored"
    assert chaos.api.flow_run(run)["state"]["type"] == "CRASHED"


def test_killed_in_the_middle_of_a_restore(chaos):
    before = len(chaos.alerts)
    run = start_release(chaos, "v1.2.0")
    approve(chaos, run)
    wait_for_record(chaos, run, lambda r: all(r.services[s].phase == "switched" for s in PAIR), "both switched")
    httpx.patch(f"{chaos.control}/faults", json={"api_latency_ms": 1000, "versions": {"user-service:v1.2.0": {"error_rate_percent": 60}}}).raise_for_status()
    try:
        wait_for_record(chaos, run, lambda r: sum(s.phase == "restored" for s in r.services.values()) == 1, "the restore half done")
        kill_flow_run(run)
    finally:
        httpx.delete(f"{chaos.control}/faults").raise_for_status()
    record = assert_recovered(chaos, run, before)
    assert record.state == "restored"


def test_killed_during_a_canary_at_stage_2(chaos):
    before = len(chaos.alerts)
    run = start_release(chaos, "v1.3.0", strategy="canary")
    approve(chaos, run)
    wait_for_record(chaos, run, lambda r: r.services["user-service"].canary_weight == 25, "the canary at stage 2 (25%)")
    kill_flow_run(run)
    record = assert_recovered(chaos, run, before)
    assert record.state == "restored"
    assert Deployments(connect(str(chaos.kubeconfig))).get("production", "user-service-canary").spec.replicas == 0


def test_killed_during_the_approval_pause(chaos):
    before = len(chaos.alerts)
    run = start_release(chaos, "v1.4.0")
    chaos.api.wait_for(run, 180)
    kill_flow_run(run)
    record = assert_recovered(chaos, run, before)
    assert record.state == "stopped" and not record.changed


def test_cancelled_from_the_ui_after_both_switches(chaos):
    """Cancel, as the UI's button does: the run restores on its way out, or the Cancelled automation's recover does."""
    before = len(chaos.alerts)
    run = start_release(chaos, "v1.3.0")
    approve(chaos, run)
    wait_for_record(chaos, run, lambda r: all(r.services[s].phase == "switched" for s in PAIR), "both switched, watching")
    chaos.api.http.post(f"/flow_runs/{run}/set_state", json={"state": {"type": "CANCELLING", "name": "Cancelling"}}).raise_for_status()
    record = assert_restored(chaos, run, before)
    assert record.state == "restored" and set(record.changed) == set(PAIR)
    wait_until(lambda: chaos.api.flow_run(run)["state"]["type"] == "CANCELLED", 60, "the run to end Cancelled")
    ended = [e for e in chaos.audit() if (e["event"] == "deployment_failed" and e["details"]["flow_run_id"] == run)
             or (e["event"] == "deployment_recovered" and e["details"]["flow_run"] == run)]
    assert ended, "how the cancelled release ended is not audited"
