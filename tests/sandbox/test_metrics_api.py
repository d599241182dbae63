"""metrics.k8s.io on the sandbox, as metrics-server serves it: the machine's `kubectl top pods` and `kubectl top
nodes`, and the official client reading PodMetrics and NodeMetrics through CustomObjectsApi."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.utils import parse_quantity

from delivery.sandbox.nodes import NODE_NAMES
from tests.sandbox.cluster_fixture import (
    RunningCluster,
    deployment_manifest,
    rolled_out,
    running_cluster,
    wait_until,
)
from tests.sandbox.test_kubectl import rows

NS = "production"
IMAGE = "acrtrpgenprod.azurecr.io"
LIMITS = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2000m", "memory": "2Gi"}}
GROUP, VERSION = "metrics.k8s.io", "v1beta1"


def service_deployment(app: str, tag: str, replicas: int) -> dict:
    """`<app>-blue` running `<app>:<tag>` with the seed's production resources."""
    manifest = deployment_manifest(f"{app}-blue", f"{IMAGE}/{app}:{tag}", replicas, {"app": app, "version": "blue"})
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container.update(name=app, resources=LIMITS)
    return manifest


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    """One cluster for the module: production's trip-service (2 pods) and user-service (1 pod) at v1.0.0."""
    with running_cluster(tmp_path_factory.mktemp("metrics"), ready_delay_seconds=0.1) as running:
        with client.ApiClient(client.Configuration(host=running.base_url)) as api:
            client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
            apps = client.AppsV1Api(api)
            for app, replicas in (("trip-service", 2), ("user-service", 1)):
                apps.create_namespaced_deployment(NS, service_deployment(app, "v1.0.0", replicas))
            for app in ("trip-service", "user-service"):
                wait_until(lambda: rolled_out(apps, NS, f"{app}-blue"), what=f"{app} rolled out")
        yield running


@pytest.fixture(scope="module")
def custom(cluster_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster_api)


def test_kubectl_top_pods_prints_each_pod_with_cpu_and_memory(kubectl: Callable[..., str],
                                                              cluster: RunningCluster) -> None:
    printed = rows(kubectl("top", "pods", "-n", NS))
    pods = {p["metadata"]["name"] for p in cluster.store.list_objects("pods", NS)}
    assert printed.pop("NAME") == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert set(printed) == pods and len(pods) == 3
    assert all(row[1:] == ["250m", "384Mi"] for row in printed.values()), printed


def test_kubectl_top_nodes_prints_each_node_with_its_share(kubectl: Callable[..., str]) -> None:
    printed = rows(kubectl("top", "nodes"))
    assert printed.pop("NAME")[1:] == ["CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert set(printed) == set(NODE_NAMES)
    for row in printed.values():
        assert row[1].endswith("m") and row[2].endswith("%") and row[3].endswith("Mi") and row[4].endswith("%")
    assert sum(int(row[1].removesuffix("m")) for row in printed.values()) == 2 * 180 + 3 * 250


def test_kubectl_get_nodes_shows_the_ready_node_pool(kubectl: Callable[..., str]) -> None:
    printed = rows(kubectl("get", "nodes", "-o", "wide"))
    assert printed["aks-nodepool1-0"][1:3] == ["Ready", "agent"]
    assert printed["aks-nodepool1-1"][5] == "10.224.0.5"


def test_pod_metrics_by_label_selector(custom: client.CustomObjectsApi) -> None:
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, NS, "pods", label_selector="app=trip-service")
    assert listed["kind"] == "PodMetricsList" and listed["apiVersion"] == f"{GROUP}/{VERSION}"
    assert len(listed["items"]) == 2
    for item in listed["items"]:
        assert item["kind"] == "PodMetrics" and item["window"] == "30s" and item["timestamp"]
        assert item["metadata"]["namespace"] == NS and item["metadata"]["labels"]["app"] == "trip-service"
        assert item["metadata"]["creationTimestamp"]
        [container] = item["containers"]
        assert container["name"] == "trip-service"
        assert parse_quantity(container["usage"]["cpu"]) == parse_quantity("250m")
        assert parse_quantity(container["usage"]["memory"]) == parse_quantity("384Mi")
    none = custom.list_namespaced_custom_object(GROUP, VERSION, NS, "pods", label_selector="app in (ai-service)")
    assert none["items"] == []


def test_one_pod_metrics_and_an_unknown_pod(custom: client.CustomObjectsApi, cluster: RunningCluster) -> None:
    name = next(p["metadata"]["name"] for p in cluster.store.list_objects("pods", NS))
    one = custom.get_namespaced_custom_object(GROUP, VERSION, NS, "pods", name)
    assert one["metadata"]["name"] == name and one["containers"]
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(GROUP, VERSION, NS, "pods", "no-such-pod")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'podmetrics.metrics.k8s.io "production/no-such-pod" not found'


def test_node_metrics_sum_the_system_and_the_pods_on_each_node(custom: client.CustomObjectsApi,
                                                               cluster: RunningCluster) -> None:
    listed = custom.list_cluster_custom_object(GROUP, VERSION, "nodes")
    assert listed["kind"] == "NodeMetricsList"
    for item in listed["items"]:
        node = item["metadata"]["name"]
        on_node = [p for p in cluster.store.list_objects("pods") if p["spec"].get("nodeName") == node]
        assert item["kind"] == "NodeMetrics" and item["window"] == "30s"
        assert parse_quantity(item["usage"]["cpu"]) == parse_quantity("180m") + len(on_node) * parse_quantity("250m")
    one = custom.get_cluster_custom_object(GROUP, VERSION, "nodes", NODE_NAMES[0])
    assert one["metadata"]["labels"]["kubernetes.io/hostname"] == NODE_NAMES[0]


def test_discovery_lists_the_metrics_group_read_only(cluster: RunningCluster) -> None:
    with client.ApiClient(client.Configuration(host=cluster.base_url)) as api:
        groups = client.ApisApi(api).get_api_versions()
        assert any(g.name == GROUP and g.preferred_version.version == VERSION for g in groups.groups)
        resources = client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
    assert {(r.name, r.kind, r.namespaced, tuple(r.verbs)) for r in resources.resources} == {
        ("pods", "PodMetrics", True, ("get", "list")), ("nodes", "NodeMetrics", False, ("get", "list"))}
