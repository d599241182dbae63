"""The machine's real kubectl against the sandbox cluster: get, describe, set image,
rollout status / history / undo, scale, patch (strategic and merge), apply, and custom
resources. The cluster is seeded through the official client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.sandbox.cluster_fixture import (
    RunningCluster,
    deployment_manifest,
    rolled_out,
    running_cluster,
    wait_until,
)

NS = "production"
IMAGE = "acrtrpgenprod.azurecr.io/trip-service"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    """One cluster for the module, seeded with TripGen's production trip-service."""
    with running_cluster(tmp_path_factory.mktemp("kubectl"), ready_delay_seconds=0.1) as running:
        with client.ApiClient(client.Configuration(host=running.base_url)) as api:
            core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
            core.create_namespace({"metadata": {"name": NS}})
            labels = {"app": "trip-service", "version": "blue"}
            manifest = deployment_manifest("trip-service-blue", f"{IMAGE}:v1.0.0", 3, labels)
            manifest["spec"]["template"]["spec"]["containers"][0]["name"] = "trip-service"
            apps.create_namespaced_deployment(NS, manifest)
            core.create_namespaced_service(NS, {"metadata": {"name": "trip-service", "labels": {"app": "trip-service"}},
                                                "spec": {"selector": labels,
                                                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                "networking.istio.io", "v1beta1", NS, "virtualservices",
                {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                 "metadata": {"name": "trip-service"},
                 "spec": {"hosts": ["trip-service"], "http": [{"route": [
                     {"destination": {"host": "trip-service", "subset": "stable"}, "weight": 100}]}]}})
            wait_until(lambda: rolled_out(apps, NS, "trip-service-blue"), what="the seeded deployment")
        yield running


@pytest.fixture(scope="module")
def apps(cluster_api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(cluster_api)


def rows(table: str) -> dict[str, list[str]]:
    """kubectl's printed table as {first cell: all cells}, header included."""
    return {line.split()[0]: line.split() for line in table.strip().splitlines()}


def test_get_deployments_prints_the_server_table(kubectl: Callable[..., str]) -> None:
    printed = rows(kubectl("get", "deploy", "-n", NS))
    assert printed["NAME"] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert printed["trip-service-blue"][1:4] == ["3/3", "3", "3"]


def test_describe_deployment_shows_replica_sets_and_events(kubectl: Callable[..., str]) -> None:
    described = kubectl("describe", "deploy", "trip-service-blue", "-n", NS)
    assert "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable" in described
    assert "NewReplicaSet:   trip-service-blue-" in described
    assert "ScalingReplicaSet" in described and "Scaled up replica set trip-service-blue-" in described


def test_set_image_rollout_history_and_undo(kubectl: Callable[..., str], apps: client.AppsV1Api) -> None:
    target = "deploy/trip-service-blue"
    assert "image updated" in kubectl("set", "image", target, f"trip-service={IMAGE}:v1.1.0", "-n", NS)
    assert "successfully rolled out" in kubectl("rollout", "status", target, "-n", NS, "--timeout=60s")
    history = kubectl("rollout", "history", target, "-n", NS)
    assert [line.split()[0] for line in history.strip().splitlines()[2:]] == ["1", "2"]
    assert "rolled back" in kubectl("rollout", "undo", target, "-n", NS)
    assert "successfully rolled out" in kubectl("rollout", "status", target, "-n", NS, "--timeout=60s")
    deployment = apps.read_namespaced_deployment("trip-service-blue", NS)
    assert deployment.spec.template.spec.containers[0].image == f"{IMAGE}:v1.0.0"
    assert deployment.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    revisions = kubectl("rollout", "history", target, "-n", NS).strip().splitlines()[2:]
    assert [line.split()[0] for line in revisions] == ["2", "3"]


def test_scale_changes_the_replica_count(kubectl: Callable[..., str], apps: client.AppsV1Api) -> None:
    assert "scaled" in kubectl("scale", "deploy/trip-service-blue", "--replicas=5", "-n", NS)
    wait_until(lambda: rolled_out(apps, NS, "trip-service-blue"), what="five replicas")
    assert rows(kubectl("get", "deploy", "trip-service-blue", "-n", NS))["trip-service-blue"][1] == "5/5"


def test_patch_service_strategic_then_merge(kubectl: Callable[..., str]) -> None:
    kubectl("patch", "svc", "trip-service", "-n", NS, "--type", "strategic",
            "-p", '{"spec":{"selector":{"version":"green"}}}')
    kubectl("patch", "svc", "trip-service", "-n", NS, "--type", "merge",
            "-p", '{"metadata":{"labels":{"color":"green"}},"spec":{"selector":{"version":"blue"}}}')
    service = yaml.safe_load(kubectl("get", "svc", "trip-service", "-n", NS, "-o", "yaml"))
    assert service["spec"]["selector"] == {"app": "trip-service", "version": "blue"}
    assert service["metadata"]["labels"] == {"app": "trip-service", "color": "green"}


def test_apply_creates_then_configures_a_deployment(kubectl: Callable[..., str], apps: client.AppsV1Api,
                                                    tmp_path: Path) -> None:
    labels = {"app": "trip-service", "version": "green"}
    manifest = {**deployment_manifest("trip-service-green", f"{IMAGE}:v1.1.0", 2, labels),
                "metadata": {"name": "trip-service-green", "namespace": NS, "labels": labels}}
    path = tmp_path / "green.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert "created" in kubectl("apply", "-f", str(path))
    manifest["spec"]["replicas"] = 3
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "SPRING_PROFILES_ACTIVE",
                                                                      "value": "production"}]
    path.write_text(yaml.safe_dump(manifest))
    assert "configured" in kubectl("apply", "-f", str(path))
    assert "unchanged" in kubectl("apply", "-f", str(path))
    deployment = wait_until(lambda: rolled_out(apps, NS, "trip-service-green"), what="green rolled out")
    assert deployment.spec.replicas == 3 and deployment.metadata.generation == 2
    assert deployment.spec.template.spec.containers[0].env[0].value == "production"


def test_get_virtualservices_by_full_name(kubectl: Callable[..., str]) -> None:
    printed = rows(kubectl("get", "virtualservices.networking.istio.io", "-n", NS))
    assert printed["NAME"] == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert printed["trip-service"][2] == '["trip-service"]'
