"""Shared test settings: no Prefect telemetry, the repository root for shipped files, and the files ordered
so that `-n 3 --dist loadfile` hands out the long integration files first."""

import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent
INTEGRATION_FIXTURES = {"sandbox", "stack", "chaos"}  # a test using one runs releases: tens of seconds, against milliseconds


def pytest_collection_modifyitems(items: list) -> None:
    """Files with the most release-running tests first (xdist deals files out in this order); order within a file kept."""
    weight = Counter()
    for item in items:
        weight[item.path] += 100 if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())) else 1
    first_seen = {path: i for i, path in reversed(list(enumerate(item.path for item in items)))}
    items.sort(key=lambda item: (-weight[item.path], first_seen[item.path]))
