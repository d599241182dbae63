"""One production release at a time, and run tags that make the Prefect run list read as release history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_client, get_run_logger
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from delivery.release.runtime import runtime

@contextmanager
def production_release_lock() -> Iterator[None]:
    """Hold the global limit `TRIPGEN_RELEASE_LOCK` (one slot) while the release touches the cluster.

    A pause frees a deployment's own concurrency slot, so the lock is held in code and survives
    the approval pause: a second release waits here, touching nothing, until the first ends.
    """
    name = runtime().settings.release_lock
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, limit=1)
    get_run_logger().info("waiting for the '%s' lock (another production release may be running or paused)", name)
    with concurrency(name, occupy=1, strict=True):
        get_run_logger().info("holding the '%s' lock", name)
        yield


def label_this_run(tag: str, strategy: str) -> None:
    """Tag the flow run `tag:<tag>`, `env:production`, `strategy:<strategy>`."""
    labels = [f"tag:{tag}", "env:production", f"strategy:{strategy}"]
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(flow_run.id)
        client.update_flow_run(flow_run.id, tags=sorted(set(current.tags) | set(labels)))
