"""Register the deployments of prefect.yaml on a Prefect API, and start the worker that runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import yaml
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectAlreadyExists

from delivery.prefect_rest import PrefectRest
from deployments.automations import ensure_recovery_automations

PREFECT_FILE = Path(__file__).resolve().parent.parent / "prefect.yaml"


def work_pool_name(prefect_file: Path = PREFECT_FILE) -> str:
    """The one work pool every deployment of the file runs on."""
    pools = {d["work_pool"]["name"] for d in yaml.safe_load(prefect_file.read_text())["deployments"]}
    if len(pools) != 1:
        raise ValueError(f"{prefect_file}: deployments name {sorted(pools)} as work pools; use one")
    return pools.pop()


def ensure_work_pool(name: str) -> str:
    """Create the process work pool `name`, or refresh an existing one's description; returns what was done."""
    description = "TripGen releases and rollbacks (process worker: `tripgen-release deployments worker`)."
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process", description=description))
            return f"work pool '{name}' created"
        except ObjectAlreadyExists:
            client.update_work_pool(name, WorkPoolUpdate(description=description))
            return f"work pool '{name}' exists"


def ensure_release_lock(name: str) -> str:
    """The global concurrency limit that lets one production release touch the cluster at a time."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, limit=1)
    return f"global concurrency limit '{name}' (1 slot)"


def deploy_all(prefect_file: Path = PREFECT_FILE) -> int:
    """`prefect deploy --all` on the file, from the project root; the command's exit code."""
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
    return subprocess.run(command, cwd=prefect_file.parent, check=False).returncode


def ensure_automations(api: PrefectRest, release: str, recover: str, silence_seconds: float) -> list[str]:
    """The zombie and recovery automations for the deployments named `release` and `recover` (flow/deployment)."""
    ids = [api.deployment(name)["id"] for name in (release, recover)]
    return ensure_recovery_automations(*ids, timedelta(seconds=silence_seconds))


def worker_command(pool: str, name: str | None, limit: int | None) -> list[str]:
    """The `prefect worker start` command line for the process pool."""
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
    if name:
        command += ["--name", name]
    if limit:
        command += ["--limit", str(limit)]
    return command


def start_worker(pool: str, heartbeat_seconds: int, name: str | None = None, limit: int | None = None) -> None:
    """Replace this process with the worker (its env is what the flow runs see); flow runs send heartbeats."""
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(heartbeat_seconds))
    command = worker_command(pool, name, limit)
    os.execv(command[0], command)
