"""Drive flow runs as people do: start one, wait for its pause, resume it through the REST API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import uvicorn

from delivery.prefect_rest import PrefectRest
from tests.mail import approval_code


@dataclass
class BackgroundRun:
    """A flow called in a thread (as a worker would run it); `state` is set when it ends."""

    name: str
    started_at: datetime
    thread: threading.Thread
    outcome: dict = field(default_factory=dict)

    def join(self, timeout: float) -> object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.name} still running after {timeout}s"
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["state"]


def start_in_background(flow, name: str, **parameters) -> BackgroundRun:
    """Call `flow(**parameters, return_state=True)` in a thread."""
    run = BackgroundRun(name, datetime.now(timezone.utc), threading.Thread(daemon=True, target=lambda: None))

    def target() -> None:
        try:
            run.outcome["state"] = flow(**parameters, return_state=True)
        except BaseException as err:  # surfaced by join()
            run.outcome["error"] = err

    run.thread = threading.Thread(target=target, daemon=True, name=name)
    run.thread.start()
    return run


class PrefectApi:
    """The Prefect REST API, as the UI and scripts call it."""

    def __init__(self, api_url: str) -> None:
        self.http = PrefectRest(api_url, timeout=10).http  # retries a busy server's 503s, as Prefect's client does

    def flow_run(self, run: BackgroundRun, timeout: float = 30) -> dict:
        """The flow run named `run.name` created after it started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = {"flow_runs": {"name": {"any_": [run.name]}}, "sort": "EXPECTED_START_TIME_DESC", "limit": 5}
            for candidate in self.http.post("/flow_runs/filter", json=body).json():
                if datetime.fromisoformat(candidate["created"]) >= run.started_at:
                    return candidate
            time.sleep(0.2)
        raise AssertionError(f"no flow run {run.name} appeared within {timeout}s")

    def read(self, flow_run_id: str) -> dict:
        return self.http.get(f"/flow_runs/{flow_run_id}").json()

    def wait_for_pause(self, run: BackgroundRun, after_key: str | None = None, timeout: float = 120) -> dict:
        """Wait until the run is paused for input with a pause key other than `after_key`."""
        flow_run_id = self.flow_run(run)["id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert run.thread.is_alive() or "state" not in run.outcome, f"{run.name} ended: {run.outcome}"
            current = self.read(flow_run_id)
            details = current["state"]["state_details"]
            if current["state"]["type"] == "PAUSED" and details.get("pause_key") != after_key and details.get("run_input_keyset"):
                schema_key = details["run_input_keyset"]["schema"]
                if self.http.get(f"/flow_runs/{flow_run_id}/input/{schema_key}").status_code == 200:
                    return current
            if current["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                raise AssertionError(f"{run.name} ended {current['state']['type']}: {current['state']['message']}")
            time.sleep(0.2)
        raise AssertionError(f"{run.name} did not pause within {timeout}s")

    def approve(self, run: BackgroundRun, approver: str, approve: bool = True, comment: str = "", after_key: str | None = None,
                code: str | None = None) -> str:
        """Wait for the next pause and resume it with the form's values, `code` by default the one mailed to
        `approver` for this run (as they would type it); returns the pause key answered."""
        paused = self.wait_for_pause(run, after_key)
        if code is None:
            code = approval_code(approver, paused["id"])
        run_input = {"approver": approver, "code": code, "approve": approve, "comment": comment}
        response = self.http.post(f"/flow_runs/{paused['id']}/resume", json={"run_input": run_input})
        assert response.status_code == 201 and response.json()["status"] == "ACCEPT", response.text
        return paused["state"]["state_details"]["pause_key"]

    def artifacts(self, flow_run_id: str) -> list[dict]:
        body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
        return self.http.post("/artifacts/filter", json=body).json()


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Serve an ASGI app on a free 127.0.0.1 port in a thread; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
