"""`tripgen-release deployments register | worker`: put the release flows on a Prefect server and run them."""

from __future__ import annotations

import os
import sys

import click


@click.group("deployments")
def deployments() -> None:
    """Register release/production and rollback/production, and run their worker."""


@deployments.command("register")
def register() -> None:
    """Create the work pool and the release lock, deploy everything in prefect.yaml, then the recovery automations."""
    from delivery.prefect_rest import PrefectRest
    from delivery.settings import Settings
    from deployments.register import deploy_all, ensure_automations, ensure_release_lock, ensure_work_pool, work_pool_name

    settings = Settings()
    click.echo(ensure_work_pool(work_pool_name()))
    click.echo(ensure_release_lock(settings.release_lock))  # the lock name the flows use (TRIPGEN_RELEASE_LOCK)
    deployed = deploy_all()
    if deployed != 0:
        sys.exit(deployed)
    api = PrefectRest(os.environ["PREFECT_API_URL"], api_key=os.environ.get("PREFECT_API_KEY"),
                      auth_string=os.environ.get("PREFECT_API_AUTH_STRING"))
    for line in ensure_automations(api, "release/production", "recover/production", settings.zombie_after_seconds):
        click.echo(line)


@deployments.command("worker")
@click.option("--name", help="Worker name shown in the UI (default: Prefect picks one).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many flow runs at once.")
def worker(name: str | None, limit: int | None) -> None:
    """Check the worker's policy (TRIPGEN_POLICY), then run `prefect worker start` on the pool."""
    from delivery.policy.loader import PolicyError
    from delivery.settings import Settings
    from deployments.register import start_worker, work_pool_name

    settings = Settings()
    try:
        settings.load_policy()
    except PolicyError as err:
        raise click.UsageError(f"TRIPGEN_POLICY={settings.policy}: {err}") from err
    start_worker(work_pool_name(), settings.heartbeat_seconds, name, limit)
