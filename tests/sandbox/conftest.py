"""Fixtures of the sandbox tests: a running sandbox cluster and clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.sandbox.cluster_fixture import RunningCluster, running_cluster


@pytest.fixture
def sandbox_cluster(tmp_path: Path) -> Iterator[RunningCluster]:
    """A fresh sandbox cluster (API server + controllers) for one test."""
    with running_cluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture
def api_client(sandbox_cluster: RunningCluster) -> Iterator[client.ApiClient]:
    """The official client, configured for the sandbox cluster over HTTP."""
    configuration = client.Configuration(host=sandbox_cluster.base_url)
    with client.ApiClient(configuration) as api:
        yield api
