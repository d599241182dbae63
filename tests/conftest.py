"""Shared test settings: no Prefect telemetry, the repository root for shipped files, one Prefect server per test
process, and the files ordered so that `-n 3 --dist loadfile` hands out the long integration files first."""

import os
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent
INTEGRATION_FIXTURES = {"sandbox", "stack", "chaos"}  # a test using one runs releases: tens of seconds, against milliseconds


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "slow: starts sandboxes, databases or servers of its own: tens of seconds")


def pytest_collection_modifyitems(items: list) -> None:
    """Files with the most release-running (or `slow`) tests first (xdist deals files out in this order); order within
    a file kept."""
    weight = Counter()
    for item in items:
        slow = INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("slow")
        weight[item.path] += 100 if slow else 1
    first_seen = {path: i for i, path in reversed(list(enumerate(item.path for item in items)))}
    items.sort(key=lambda item: (-weight[item.path], first_seen[item.path]))


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect server for the session (it takes seconds to start): the REST API client."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from tests.release.driver import PrefectApi

    with prefect_test_harness(server_startup_timeout=120):
        yield PrefectApi(PREFECT_API_URL.value())
