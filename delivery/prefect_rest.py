"""Prefect's REST API over httpx, as the UI, GitHub Actions and approvers' tools call it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from tenacity import RetryCallState, retry_if_result

from delivery.retry import retry_after_seconds, retrying

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RETRIED_STATUS = {429, 502, 503, 504}
ATTEMPTS = 6
BACKOFF_SECONDS = 0.5
"""The wait before the second attempt when the server names none; it doubles for each further one."""


class RetryingTransport(httpx.BaseTransport):
    """Retries 429/502/503/504 (a busy server, e.g. SQLite locked) with backoff, honouring Retry-After."""

    def __init__(self, inner: httpx.BaseTransport, sleep: Callable[[float], None] | None = None) -> None:
        self.inner = inner
        self.sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        policy = retrying(
            attempts=ATTEMPTS,
            retry=retry_if_result(lambda response: response.status_code in RETRIED_STATUS),
            backoff=BACKOFF_SECONDS,
            jitter=False,
            retry_after=lambda response: retry_after_seconds(response.headers.get("Retry-After")),
            sleep=self.sleep,
            before_sleep=_discard_response,
        )
        return policy(self.inner.handle_request, request)

    def close(self) -> None:
        self.inner.close()


def _discard_response(state: RetryCallState) -> None:
    """A response that will be asked again: read and closed, so its connection goes back to the pool."""
    response = state.outcome.result()
    response.read()
    response.close()


@dataclass(frozen=True)
class Pause:
    """A flow run waiting for input: its pause key and the keyset of its form."""

    flow_run_id: str
    key: str
    description: str


class PrefectRest:
    """A thin client of `PREFECT_API_URL` (`http://host:4200/api`); auth by API key or basic auth string."""

    def __init__(self, api_url: str, api_key: str | None = None, auth_string: str | None = None, timeout: float = 30) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        auth = tuple(auth_string.split(":", 1)) if auth_string else None
        self.api_url = api_url.rstrip("/")
        transport = RetryingTransport(httpx.HTTPTransport())
        self.http = httpx.Client(base_url=self.api_url, headers=headers, auth=auth, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def healthy(self) -> bool:
        try:
            return self.http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def deployment(self, name: str) -> dict:
        """The deployment `<flow>/<deployment>`; LookupError when it is not registered."""
        flow, _, deployment = name.partition("/")
        response = self.http.get(f"/deployments/name/{flow}/{deployment}")
        if response.status_code == 404:
            raise LookupError(f"no deployment '{name}' on {self.api_url}: register it first")
        response.raise_for_status()
        return response.json()

    def create_run(self, deployment_id: str, parameters: dict, idempotency_key: str | None = None, tags: list[str] | None = None) -> dict:
        """A flow run of the deployment; the same idempotency key returns the same run."""
        body = {"parameters": parameters, "tags": tags or []}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        response = self.http.post(f"/deployments/{deployment_id}/create_flow_run", json=body)
        response.raise_for_status()
        return response.json()

    def flow_run(self, flow_run_id: str) -> dict:
        response = self.http.get(f"/flow_runs/{flow_run_id}")
        response.raise_for_status()
        return response.json()

    def runs_named(self, name: str, limit: int = 10) -> list[dict]:
        """Flow runs called `name` (e.g. `release-v1.2.0`), newest first."""
        body = {"flow_runs": {"name": {"any_": [name]}}, "sort": "START_TIME_DESC", "limit": limit}
        response = self.http.post("/flow_runs/filter", json=body)
        response.raise_for_status()
        return response.json()

    def recent_runs(self, prefix: str, limit: int = 10) -> list[dict]:
        """The newest flow runs whose names start with `prefix`."""
        body = {"flow_runs": {"name": {"like_": prefix}}, "sort": "START_TIME_DESC", "limit": limit}
        response = self.http.post("/flow_runs/filter", json=body)
        response.raise_for_status()
        return response.json()

    def task_runs(self, flow_run_id: str, page: int = 200) -> list[dict]:
        """The run's task runs, oldest first (every page: the server sends at most 200 at a time)."""
        runs: list[dict] = []
        while True:
            body = {"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "EXPECTED_START_TIME_ASC",
                    "limit": page, "offset": len(runs)}
            response = self.http.post("/task_runs/filter", json=body)
            response.raise_for_status()
            runs += response.json()
            if len(response.json()) < page:
                return runs

    def pause_of(self, flow_run: dict) -> Pause | None:
        """The pause a run waits in with its form ready, or None."""
        state = flow_run.get("state") or {}
        details = state.get("state_details") or {}
        keyset = details.get("run_input_keyset")
        if state.get("type") != "PAUSED" or not keyset:
            return None
        schema = self.http.get(f"/flow_runs/{flow_run['id']}/input/{keyset['schema']}")
        if schema.status_code != 200:
            return None
        description = self.http.get(f"/flow_runs/{flow_run['id']}/input/{keyset['description']}")
        text = description.json() if description.status_code == 200 else ""
        return Pause(flow_run["id"], details.get("pause_key", ""), text if isinstance(text, str) else "")

    def wait_for(self, flow_run_id: str, timeout: float, after_key: str | None = None, poll: float = 0.5) -> tuple[dict, Pause | None]:
        """Wait until the run pauses with a key other than `after_key`, or ends; returns (run, pause)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(flow_run_id)
            pause = self.pause_of(run)
            if pause and pause.key != after_key:
                return run, pause
            if run["state"]["type"] in FINAL_STATES or time.monotonic() > deadline:
                return run, None
            time.sleep(poll)

    def resume(self, flow_run_id: str, run_input: dict) -> dict:
        """`POST /flow_runs/{id}/resume` with the form's values, as the UI's Resume button does."""
        response = self.http.post(f"/flow_runs/{flow_run_id}/resume", json={"run_input": run_input})
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "ACCEPT":
            raise RuntimeError(f"Prefect did not resume the run: {body.get('details', {}).get('reason', body)}")
        return body

    def logs(self, flow_run_id: str, since: datetime | None = None, limit: int = 200) -> list[dict]:
        """The run's log lines (its tasks' included), oldest first, from `since` when given."""
        filters: dict = {"flow_run_id": {"any_": [flow_run_id]}}
        if since:
            filters["timestamp"] = {"after_": since.isoformat()}
        body = {"logs": filters, "sort": "TIMESTAMP_ASC", "limit": limit}
        response = self.http.post("/logs/filter", json=body)
        response.raise_for_status()
        return response.json()
