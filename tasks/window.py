"""Wait for the sync window (R-GITOPS-2), visibly: the task run's name says until when."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from delivery.policy.window import next_window_opens, window_open_at
from delivery.release.retrying import LOCAL_STEP
from delivery.release.runtime import runtime


def window_is_open() -> bool:
    """Whether production changes may start now."""
    return window_open_at(runtime().policy.sync_window, datetime.now(timezone.utc)) is not None


def next_opening() -> datetime:
    return next_window_opens(runtime().policy.sync_window, datetime.now(timezone.utc))


@task(name="wait for sync window", task_run_name="wait for sync window until {opens}", **LOCAL_STEP)
def wait_for_sync_window(opens: datetime) -> None:
    """Sleep until the window opens; the UI shows this task running with the opening time."""
    create_markdown_artifact(
        f"Production changes wait for the sync window: it opens at **{opens.isoformat()}**.",
        key="sync-window",
        description="Waiting for the sync window",
    )
    get_run_logger().info("outside the sync window: waiting until %s", opens.isoformat())
    while not window_is_open():
        time.sleep(max(0.0, (opens - datetime.now(timezone.utc)).total_seconds()))
        opens = next_opening() if not window_is_open() else opens
