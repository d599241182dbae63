"""When a failed task is worth retrying: transient cluster, network or metrics trouble only."""

from __future__ import annotations

from delivery.kube.connection import is_transient


def transient_only(task, task_run, state) -> bool:
    """Prefect `retry_condition_fn`: retry connection errors, timeouts and transient API statuses."""
    try:
        state.result()
    except Exception as error:  # noqa: BLE001 - judged, not handled
        return is_transient(error)
    return False
