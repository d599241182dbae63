"""The docker-compose stack without Docker: PostgreSQL, `prefect server start`, the registered
deployments, a process worker, and the sandbox cluster they release to."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml

from delivery.sandbox.endpoints import Endpoints
from delivery.sandbox.process import end_with_parent, sandbox_process
from tests.conftest import REPO
from tests.mail import approval_code
from tests.release.conftest import fast_policy_data, fast_scenario, reports_root, worker_settings

# PostgreSQL as .ci/run starts it: the Debian cluster, reached by root over its Unix socket (peer auth)
ADMIN_DSN = os.environ.get("TRIPGEN_TEST_POSTGRES", "postgresql://root@/postgres?host=/var/run/postgresql")
SERVER_START_TIMEOUT = 180
EXTRA_PASSING_TAGS = ("v1.4.0",)


@dataclass
class Stack:
    """Where the running stack is, and the environment a CLI or script needs to reach it."""

    api_url: str
    ui_url: str
    auth_string: str  # user:password, as docker-compose.yml requires PREFECT_API_AUTH_STRING
    env: dict[str, str]
    endpoints: Endpoints
    kubeconfig: Path
    logs: Path

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `tripgen-release ARGS` as a person would, against this stack."""
        return subprocess.run([sys.executable, "-m", "delivery.cli", *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def code(self, approver: str, flow_run_id: str) -> str:
        """The approval code the worker mailed `approver` for the run ('' when it sent them none)."""
        work = self.logs.parent
        return approval_code(approver, flow_run_id, work / "audit.jsonl", work / "policy.yaml")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the PostgreSQL server for this run; dropped afterwards. Yields its SQLAlchemy URL."""
    name = f"prefect_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        try:
            connection = await asyncpg.connect(ADMIN_DSN, timeout=10)
        except (OSError, asyncpg.PostgresError) as err:
            pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN} ({err}): .ci/run starts it; locally run "
                        "`pg_ctlcluster 15 main start` and create a role for your user, or set TRIPGEN_TEST_POSTGRES")
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = ADMIN_DSN.replace("postgresql://", "postgresql+asyncpg://", 1).replace("/postgres", f"/{name}", 1)
    try:
        yield dsn
    finally:
        drop_database(admin, name)


def drop_database(admin, name: str, attempts: int = 10) -> None:
    """DROP … WITH (FORCE); an autovacuum worker in the database (the superuser's, which a non-superuser role may
    not end) makes it fail until the worker is done: try again, and leave the database behind rather than fail a test."""
    for attempt in range(attempts):
        try:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except asyncpg.InsufficientPrivilegeError:
            time.sleep(0.5 * (attempt + 1))
    warnings.warn(f"database {name} left behind: an autovacuum worker kept it busy", stacklevel=2)


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A background process writing to `log`; terminated (then killed) afterwards."""
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=end_with_parent)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(api_url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prefect server exited:\n{log.read_text(errors='replace')[-4000:]}"
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"prefect server not healthy after {SERVER_START_TIMEOUT}s:\n{log.read_text()[-4000:]}")


def base_env(home: Path) -> dict[str, str]:
    """This environment without any Prefect or TripGen settings of the test process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRIPGEN_"))}
    return {**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def stack_reports(work: Path) -> Path:
    root = reports_root(work)
    for tag in EXTRA_PASSING_TAGS:
        shutil.copytree(REPO / "reports" / "v1.2.0", root / "reports" / tag)
    return root


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """PostgreSQL -> `prefect server start` -> `deployments register` -> `deployments worker`, releasing to a sandbox."""
    work = tmp_path_factory.mktemp("stack")
    logs = work / "logs"
    logs.mkdir()
    policy_file = work / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(fast_policy_data(), sort_keys=False))
    port = free_port()
    api_url, ui_url = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
    auth_string = f"release-bot:{uuid.uuid4().hex}"
    with ExitStack() as stack_:
        database = stack_.enter_context(postgres_database())
        server_env = {**base_env(work / "server-home"), "PREFECT_API_DATABASE_CONNECTION_URL": database,
                      "PREFECT_SERVER_API_AUTH_STRING": auth_string, "PREFECT_UI_API_URL": api_url}
        server = stack_.enter_context(process(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            server_env, logs / "server.log"))
        endpoints = stack_.enter_context(sandbox_process(work, policy_file, "--scenario", str(fast_scenario(work))))
        wait_healthy(api_url, server, logs / "server.log")
        env = {**base_env(work / "client-home"), "PREFECT_API_URL": api_url, "PREFECT_UI_URL": ui_url,
               "PREFECT_API_AUTH_STRING": auth_string}
        registered = subprocess.run([sys.executable, "-m", "delivery.cli", "deployments", "register"], env=env, cwd=REPO,
                                    capture_output=True, text=True, timeout=180)
        assert registered.returncode == 0, registered.stdout + registered.stderr
        (logs / "register.log").write_text(registered.stdout + registered.stderr)
        worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1",
                      **worker_settings(work, policy_file, endpoints, stack_reports(work), PREFECT_UI_URL=ui_url)}
        stack_.enter_context(process(
            [sys.executable, "-m", "delivery.cli", "deployments", "worker", "--name", "ci-worker"],
            worker_env, logs / "worker.log"))
        yield Stack(api_url, ui_url, auth_string, env, endpoints, work / "sandbox" / "kubeconfig", logs)
