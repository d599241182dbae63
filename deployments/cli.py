"""`tripgen-release deployments register | worker`: put the release flows on a Prefect server and run them."""

from __future__ import annotations

import sys

import click


@click.group("deployments")
def deployments() -> None:
    """Register release/production and rollback/production, and run their worker."""


@deployments.command("register")
def register() -> None:
    """Create the work pool and the release lock, then deploy everything in prefect.yaml (PREFECT_API_URL)."""
    from delivery.settings import Settings
    from deployments.register import deploy_all, ensure_release_lock, ensure_work_pool, work_pool_name

    click.echo(ensure_work_pool(work_pool_name()))
    click.echo(ensure_release_lock(Settings().release_lock))  # the lock name the flows use (TRIPGEN_RELEASE_LOCK)
    sys.exit(deploy_all())


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
    start_worker(work_pool_name(), name, limit)
