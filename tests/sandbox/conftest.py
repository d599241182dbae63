"""Fixtures of the sandbox tests: a running sandbox cluster and clients for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.sandbox.cluster_fixture import RunningCluster, kubectl_runner, running_cluster


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


@pytest.fixture(scope="module")
def kubectl(cluster: RunningCluster, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """Run the machine's kubectl against the module's `cluster` fixture; returns its standard output."""
    runner = kubectl_runner(cluster.kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))

    def run(*args: str) -> str:
        done = runner(*args)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    return run


@pytest.fixture(scope="module")
def cluster_api(cluster: RunningCluster) -> Iterator[client.ApiClient]:
    """The official client for the module's `cluster` fixture."""
    with client.ApiClient(client.Configuration(host=cluster.base_url)) as api:
        yield api
