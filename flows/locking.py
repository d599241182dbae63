"""One production release at a time, and run tags that make the Prefect run list read as release history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_client, get_run_logger
from prefect.concurrency.context import ConcurrencyContext
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from delivery.release.runtime import runtime

@contextmanager
def production_release_lock() -> Iterator[str | None]:
    """Hold the global limit `TRIPGEN_RELEASE_LOCK` (one slot) while the release touches the cluster.

    A pause frees a deployment's own concurrency slot, so the lock is held in code and survives
    the approval pause: a second release waits here, touching nothing, until the first ends.
    Yields the lease id; a dead holder's lease expires `TRIPGEN_RELEASE_LOCK_LEASE_SECONDS` after its last renewal.
    """
    settings = runtime().settings
    name = settings.release_lock
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, limit=1)
    get_run_logger().info("waiting for the '%s' lock (another production release may be running or paused)", name)
    with concurrency(name, occupy=1, strict=True, lease_duration=settings.release_lock_lease_seconds):
        get_run_logger().info("holding the '%s' lock", name)
        yield held_lease()


def held_lease() -> str | None:
    """The lease id of the slot just taken (kept in the release record, so recovery can free a dead run's lock)."""
    context = ConcurrencyContext.get()
    return str(context.cleanup_lease_ids[-1]) if context and context.cleanup_lease_ids else None


def free_lock(lease_id: str) -> None:
    """Release a dead run's slot of the release lock now, instead of when its lease expires."""
    with get_client(sync_client=True) as client:
        client.release_concurrency_slots_with_lease(lease_id)


def label_this_run(tag: str, strategy: str) -> None:
    """Tag the flow run `tag:<tag>`, `env:production`, `strategy:<strategy>`."""
    labels = [f"tag:{tag}", "env:production", f"strategy:{strategy}"]
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(flow_run.id)
        client.update_flow_run(flow_run.id, tags=sorted(set(current.tags) | set(labels)))
