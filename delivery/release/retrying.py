"""Retry settings of the release's Prefect tasks, by what a step talks to."""

CLUSTER_STEP = {"retries": 3, "retry_delay_seconds": [1, 3, 10]}
"""Steps that call the Kubernetes API (the adapter already retries single calls; this retries the step)."""

HTTP_STEP = {"retries": 2, "retry_delay_seconds": [2, 10]}
"""Steps that read reports, registries or metrics over HTTP."""

LOCAL_STEP = {"retries": 0}
"""Steps that only compute or write local files: a failure is a bug, not a glitch."""
