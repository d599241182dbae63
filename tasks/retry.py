"""When a failed task is worth retrying: transient cluster, network or metrics trouble only."""

from __future__ import annotations

import urllib3
from kubernetes.client.exceptions import ApiException

from delivery.kube.connection import TRANSIENT_STATUS


def transient_only(task, task_run, state) -> bool:
    """Prefect `retry_condition_fn`: retry connection errors, timeouts and transient API statuses."""
    try:
        state.result()
    except (ConnectionError, TimeoutError, OSError, urllib3.exceptions.HTTPError):
        return True
    except ApiException as err:
        return err.status in TRANSIENT_STATUS
    except Exception:
        return False
    return False
