"""A release stack of its own, for benchmarks: `prefect server start` on SQLite, the sandbox, the registered
deployments and automations, a process worker and a Teams webhook stand-in, everything under one directory.

    with release_stack(work, policy_data, passing_tags=("v1.3.0",), zombie_after_seconds=45) as stack:
        stack.api.deployment("release/production")

On the way out every process it started is stopped (SIGTERM, then SIGKILL), and so is any process left
running with the stack's client PREFECT_HOME in its environment (the worker's flow runs, which it starts
in sessions of their own).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from delivery.code_mailbox import CodeMailbox
from delivery.demo import free_port
from delivery.kube import connect
from delivery.kube.configmaps import JsonConfigMaps
from delivery.prefect_rest import PrefectRest
from delivery.release.record import ReleaseRecords
from delivery.sandbox.endpoints import Endpoints
from delivery.sandbox.process import end_with_parent, sandbox_process

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 180
REGISTER_TIMEOUT = 300
STOP_TIMEOUT = 20
PRODUCTION = "production"


class StackError(RuntimeError):
    """The stack could not be started; the message carries the tail of the log that says why."""


def overlay(base: dict, changes: dict) -> dict:
    """`base` with `changes` laid over it: nested mappings merge, anything else replaces."""
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = overlay(base.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without its Prefect and TripGen settings, with a Prefect home of its own."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRIPGEN_"))}
    return {**kept, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def launch(command: list[str], env: dict[str, str], log: Path, own_session: bool = False) -> subprocess.Popen:
    """A background process writing to `log`; it gets SIGTERM if this process dies first."""
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=end_with_parent, start_new_session=own_session)


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each live one (its whole group when it leads one), then SIGKILL to what is left after the wait."""

    def signal_all(sig: int) -> None:
        for proc in processes:
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    if os.getpgid(proc.pid) == proc.pid:
                        os.killpg(proc.pid, sig)
                    else:
                        proc.send_signal(sig)

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    signal_all(signal.SIGKILL)
    for proc in processes:
        proc.wait()


def pids_with(entry: str) -> list[int]:
    """The processes whose environment holds `entry` (`NAME=value`) exactly."""
    wanted, found = entry.encode(), []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with suppress(OSError):
            if wanted in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
    return found


def end_pids(pids: list[int]) -> None:
    """SIGTERM, a wait, then SIGKILL, for processes this stack did not start itself (its worker's flow runs)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)


def wait_started(ready: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise StackError(f"{what} did not start within {START_TIMEOUT} s (exit {proc.poll()}):\n{tail}")
        time.sleep(0.5)


@contextmanager
def webhook_stand_in(received: list[dict]) -> Iterator[str]:
    """Stands in for a Teams incoming webhook: keeps every JSON body posted to it; yields its URL."""

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/teams"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def reports_with(work: Path, passing_tags: tuple[str, ...]) -> Path:
    """The repository's sample reports, plus passing ones (v1.2.0's) for `passing_tags`; the TRIPGEN_REPORTS root."""
    root = work / "reports-root"
    shutil.copytree(REPO / "reports", root / "reports")
    for tag in passing_tags:
        shutil.copytree(REPO / "reports" / "v1.2.0", root / "reports" / tag)
    return root


@dataclass
class Stack:
    """The running stack: Prefect's API, the sandbox, the worker (restartable), the alerts posted to Teams."""

    work: Path
    api: PrefectRest
    endpoints: Endpoints
    worker_env: dict[str, str]
    alerts: list[dict]
    mailbox: CodeMailbox  # where the worker mails the approvers' codes
    processes: list[subprocess.Popen] = field(default_factory=list)
    worker: subprocess.Popen | None = None

    @property
    def audit_log(self) -> Path:
        return Path(self.worker_env["TRIPGEN_AUDIT_LOG"])

    @property
    def kubeconfig(self) -> str:
        return self.worker_env["TRIPGEN_KUBECONFIG"]

    def records(self) -> ReleaseRecords:
        return ReleaseRecords(JsonConfigMaps(connect(self.kubeconfig), PRODUCTION))

    def control(self, method: str, path: str, **request: object) -> dict:
        """A call to the sandbox's control API (`PATCH /faults`, `GET /requests`, ...); its JSON answer."""
        response = httpx.request(method, f"{self.endpoints.control}{path}", timeout=10, **request)
        response.raise_for_status()
        return response.json() if response.content else {}

    def start_worker(self) -> None:
        """`tripgen-release deployments worker` in a session of its own, as on a node of its own."""
        name = f"benchmark-{len(self.processes)}"
        command = [sys.executable, "-m", "delivery.cli", "deployments", "worker", "--name", name]
        self.worker = launch(command, self.worker_env, self.work / "logs" / "worker.log", own_session=True)
        self.processes.append(self.worker)

    def flow_run_pids(self, flow_run_id: str) -> list[int]:
        """The process(es) the worker started for the flow run (their environment names it)."""
        pids = pids_with(f"PREFECT__FLOW_RUN_ID={flow_run_id}")
        if not pids:
            raise StackError(f"no process runs flow run {flow_run_id}")
        return pids

    def kill_flow_run(self, flow_run_id: str) -> float:
        """SIGKILL the flow run's process (its worker lives on); returns when (time.time())."""
        for pid in self.flow_run_pids(flow_run_id):
            os.kill(pid, signal.SIGKILL)
        return time.time()

    def lose_node(self, flow_run_id: str) -> float:
        """The worker and the flow run die together, as when their node is lost; returns when (time.time())."""
        pids = self.flow_run_pids(flow_run_id)
        os.killpg(self.worker.pid, signal.SIGKILL)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed = time.time()
        self.worker.wait(STOP_TIMEOUT)
        return killed

    def close(self) -> None:
        stop(self.processes)
        end_pids(pids_with(f"PREFECT_HOME={self.worker_env['PREFECT_HOME']}"))


@contextmanager
def prefect_server(work: Path, database_url: str | None = None) -> Iterator[PrefectRest]:
    """`prefect server start` in `work/server-home` (log in `work/logs`), until healthy; its REST API.

    Its database is SQLite in the server home, or `database_url` (postgresql+asyncpg://...).
    """
    log = work / "logs" / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    port = str(free_port())
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", port]
    env = clean_env(work / "server-home")
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    server = launch(command, env, log)
    try:
        api = PrefectRest(f"http://127.0.0.1:{port}/api")
        wait_started(api.healthy, server, log, "the Prefect server")
        yield api
    finally:
        stop([server])


@contextmanager
def release_stack(work: Path, policy_data: dict, passing_tags: tuple[str, ...] = (), zombie_after_seconds: float = 90) -> Iterator[Stack]:
    """Start the stack under `work` (logs in `work/logs`), releasing to production with `policy_data`."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    policy_file = work / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy_data, sort_keys=False))
    alerts: list[dict] = []
    with ExitStack() as started:
        api = started.enter_context(prefect_server(work))
        endpoints = started.enter_context(sandbox_process(work, policy_file))
        teams = started.enter_context(webhook_stand_in(alerts))
        mailbox = started.enter_context(CodeMailbox())
        env = {**clean_env(work / "client-home"), "PREFECT_API_URL": api.api_url,
               "TRIPGEN_ZOMBIE_AFTER_SECONDS": f"{zombie_after_seconds:g}"}
        with (logs / "register.log").open("wb") as out:
            registered = subprocess.run([sys.executable, "-m", "delivery.cli", "deployments", "register"], env=env, cwd=REPO,
                                        stdout=out, stderr=subprocess.STDOUT, timeout=REGISTER_TIMEOUT)
        if registered.returncode != 0:
            raise StackError(f"deployments register failed:\n{(logs / 'register.log').read_text()[-3000:]}")
        settings = {  # TRIPGEN_*: where the worker's flow runs find the sandbox, the reports and the audit log
            **{f"{part.upper()}_URL": getattr(endpoints, part) for part in ("registry", "prometheus", "gateway")},
            "POLICY": str(policy_file), "KUBECONFIG": str(work / "sandbox" / "kubeconfig"),
            "REPORTS": str(reports_with(work, passing_tags)), "AUDIT_LOG": str(work / "audit.jsonl"),
            "RUN_TRIVY": "false", "TEAMS_WEBHOOK_URL": teams,
        }
        worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1", **{f"TRIPGEN_{k}": v for k, v in settings.items()},
                      **mailbox.settings(), "TRIPGEN_APPROVAL_CODE_KEY": secrets.token_urlsafe(32)}
        stack = Stack(work, api, endpoints, worker_env, alerts, mailbox)
        started.callback(stack.close)  # the worker and its flow runs stop before the sandbox and the server
        stack.start_worker()
        yield stack
