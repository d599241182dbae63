"""One production release at a time, and run tags that make the Prefect run list read as release history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prefect import get_client, get_run_logger
from prefect.concurrency.context import ConcurrencyContext
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from delivery.release.lock_guard import LOCK_GUARDS, LockGuard
from delivery.release.runtime import runtime
from delivery.release.watch import STOP_SIGNALS

LEASE_GONE = {httpx.codes.NOT_FOUND, httpx.codes.GONE}  # the server's answers to renewing a revoked or expired lease

@contextmanager
def production_release_lock() -> Iterator[str | None]:
    """Hold the global limit `TRIPGEN_RELEASE_LOCK` (one slot) while the release touches the cluster.

    A pause frees a deployment's own concurrency slot, so the lock is held in code and survives
    the approval pause: a second release waits here, touching nothing, until the first ends.
    Yields the lease id; a dead holder's lease expires `TRIPGEN_RELEASE_LOCK_LEASE_SECONDS` after its last renewal.
    A lost lease does not cancel the run mid-step (that could cut a restore short): the guard stops this
    run's watches and the next recorded step refuses, so the restore path runs (tasks.release_record.ensure_lock_held).
    """
    settings = runtime().settings
    name = settings.release_lock
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, limit=1)
    get_run_logger().info("waiting for the '%s' lock (another production release may be running or paused)", name)
    with concurrency(name, occupy=1, strict=True, lease_duration=settings.release_lock_lease_seconds,
                     raise_on_lease_renewal_failure=False):
        get_run_logger().info("holding the '%s' lock", name)
        lease = held_lease()
        run_id = str(flow_run.id)
        guard = lock_guard(lease, run_id) if lease else None
        try:
            yield lease
        finally:
            if guard:
                guard.stop()
                LOCK_GUARDS.forget(run_id)
            STOP_SIGNALS.forget_prefix(run_id)


def lock_guard(lease: str, run_id: str) -> LockGuard:
    """Start renewing `lease` every TRIPGEN_RELEASE_LOCK_CHECK_SECONDS; when it is gone, stop this run's watches."""
    settings, logger = runtime().settings, get_run_logger()

    def renew() -> None:
        with get_client(sync_client=True) as client:
            client.renew_concurrency_lease(lease, lease_duration=settings.release_lock_lease_seconds)

    def lost(reason: str) -> None:
        logger.error("the release lock is lost (%s): stopping this release's watches, production will be restored", reason)
        STOP_SIGNALS.stop_prefixed(run_id)

    gone = lambda error: isinstance(error, httpx.HTTPStatusError) and error.response.status_code in LEASE_GONE  # noqa: E731
    guard = LockGuard(renew, gone, settings.release_lock_lease_seconds, settings.release_lock_check_seconds, lost)
    LOCK_GUARDS.register(run_id, guard)
    return guard.start()


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
