"""Patching through the official client: strategic merge (lists merged by key and the
`$patch` directives), JSON merge patch, JSON patch, server-side apply, custom resources,
and the /scale and /status subresources."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.sandbox.cluster_fixture import deployment_manifest

ISTIO = ("networking.istio.io", "v1beta1")


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": "production"}})
    return client.AppsV1Api(api_client)


@pytest.fixture
def two_containers(apps: client.AppsV1Api) -> client.V1Deployment:
    manifest = deployment_manifest("trip", "trip:v1", replicas=1)
    manifest["spec"]["template"]["spec"]["containers"] = [
        {"name": "app", "image": "trip:v1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 8080, "name": "http"}]},
        {"name": "sidecar", "image": "envoy:v1"}]
    return apps.create_namespaced_deployment("production", manifest)


def containers(deployment: client.V1Deployment) -> dict[str, client.V1Container]:
    return {c.name: c for c in deployment.spec.template.spec.containers}


def test_strategic_merge_merges_containers_and_env_by_name(apps: client.AppsV1Api,
                                                           two_containers: client.V1Deployment) -> None:
    patched = apps.patch_namespaced_deployment("trip", "production", {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "trip:v2", "env": [{"name": "B", "value": "3"},
                                                                   {"name": "C", "value": "4"}]}]}}}})
    merged = containers(patched)
    assert merged["app"].image == "trip:v2" and merged["sidecar"].image == "envoy:v1"
    assert [(e.name, e.value) for e in merged["app"].env] == [("A", "1"), ("B", "3"), ("C", "4")]
    assert merged["app"].ports[0].container_port == 8080


def test_strategic_merge_directives(apps: client.AppsV1Api, two_containers: client.V1Deployment) -> None:
    patched = apps.patch_namespaced_deployment("trip", "production", {
        "metadata": {"labels": {"app": None}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]}}}})
    assert [c.name for c in patched.spec.template.spec.containers] == ["sidecar", "app"]
    assert [e.name for e in containers(patched)["app"].env] == ["B"]
    assert "app" not in (patched.metadata.labels or {})
    replaced = apps.patch_namespaced_deployment("trip", "production", {"spec": {"template": {"spec": {
        "containers": [{"name": "solo", "image": "solo:v1"}, {"$patch": "replace"}]}}}})
    assert list(containers(replaced)) == ["solo"]
    removed = apps.patch_namespaced_deployment("trip", "production", {"spec": {"strategy": {
        "$retainKeys": ["type"], "type": "Recreate"}}})
    assert removed.spec.strategy.type == "Recreate" and removed.spec.strategy.rolling_update is None


def test_merge_patch_replaces_lists_and_null_deletes(apps: client.AppsV1Api,
                                                     two_containers: client.V1Deployment) -> None:
    patched = apps.patch_namespaced_deployment("trip", "production", {
        "metadata": {"labels": {"app": None, "team": "trips"}},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "trip:v3"}]}}}},
        _content_type="application/merge-patch+json")
    assert list(containers(patched)) == ["app"] and containers(patched)["app"].env is None
    assert patched.metadata.labels == {"team": "trips"}


def test_json_patch_switches_a_service_selector(api_client: client.ApiClient, apps: client.AppsV1Api) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service("production", {"metadata": {"name": "trip"},
                                                  "spec": {"selector": {"app": "trip", "version": "blue"},
                                                           "ports": [{"port": 80, "targetPort": 8080}]}})
    patched = core.patch_namespaced_service("trip", "production", [
        {"op": "test", "path": "/spec/selector/version", "value": "blue"},
        {"op": "replace", "path": "/spec/selector/version", "value": "green"}])
    assert patched.spec.selector == {"app": "trip", "version": "green"}
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_service("trip", "production", [
            {"op": "test", "path": "/spec/selector/version", "value": "blue"}])
    assert raised.value.status == 422 and json.loads(raised.value.body)["reason"] == "Invalid"


def test_patch_carrying_a_stale_resource_version_conflicts(apps: client.AppsV1Api,
                                                           two_containers: client.V1Deployment) -> None:
    apps.patch_namespaced_deployment("trip", "production", {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment("trip", "production", {
            "metadata": {"resourceVersion": two_containers.metadata.resource_version}, "spec": {"replicas": 3}})
    assert raised.value.status == 409
    assert json.loads(raised.value.body)["reason"] == "Conflict"


def virtual_service(weight: int) -> dict:
    return {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "trip"},
            "spec": {"hosts": ["trip"], "http": [{"route": [
                {"destination": {"host": "trip", "subset": "stable"}, "weight": 100 - weight},
                {"destination": {"host": "trip", "subset": "canary"}, "weight": weight}]}]}}


def test_custom_resources_take_merge_and_json_patches(api_client: client.ApiClient, apps: client.AppsV1Api) -> None:
    custom = client.CustomObjectsApi(api_client)
    created = custom.create_namespaced_custom_object(*ISTIO, "production", "virtualservices", virtual_service(0))
    routes = created["spec"]["http"][0]["route"]
    routes[0]["weight"], routes[1]["weight"] = 90, 10
    merged = custom.patch_namespaced_custom_object(*ISTIO, "production", "virtualservices", "trip",
                                                   {"spec": {"http": created["spec"]["http"]}})
    patched = custom.patch_namespaced_custom_object(*ISTIO, "production", "virtualservices", "trip",
                                                    [{"op": "replace", "path": "/spec/http/0/route/1/weight",
                                                      "value": 20}],
                                                    _content_type="application/json-patch+json")
    assert [r["weight"] for r in merged["spec"]["http"][0]["route"]] == [90, 10]
    assert [r["weight"] for r in patched["spec"]["http"][0]["route"]] == [90, 20]
    assert merged["metadata"]["generation"] == 2 and patched["metadata"]["generation"] == 3


def test_custom_resources_refuse_strategic_merge_like_a_real_cluster(api_client: client.ApiClient,
                                                                     apps: client.AppsV1Api) -> None:
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(*ISTIO, "production", "virtualservices", virtual_service(0))
    with pytest.raises(ApiException) as raised:
        custom.patch_namespaced_custom_object(*ISTIO, "production", "virtualservices", "trip", {"spec": {}},
                                              _content_type="application/strategic-merge-patch+json")
    assert raised.value.status == 415
    assert json.loads(raised.value.body)["reason"] == "UnsupportedMediaType"


def test_custom_resources_are_served_in_every_version(api_client: client.ApiClient, apps: client.AppsV1Api) -> None:
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(*ISTIO, "production", "virtualservices", virtual_service(10))
    as_v1 = custom.get_namespaced_custom_object("networking.istio.io", "v1", "production", "virtualservices", "trip")
    assert as_v1["apiVersion"] == "networking.istio.io/v1"
    assert as_v1["spec"]["http"][0]["route"][1]["weight"] == 10


def test_server_side_apply_creates_then_updates(apps: client.AppsV1Api) -> None:
    manifest = deployment_manifest("trip", "trip:v1", replicas=1)
    apply = {"_content_type": "application/apply-patch+yaml", "field_manager": "release"}
    created = apps.patch_namespaced_deployment("trip", "production", manifest, **apply)
    manifest["spec"]["replicas"] = 2
    updated = apps.patch_namespaced_deployment("trip", "production", manifest, **apply)
    assert created.metadata.uid == updated.metadata.uid
    assert (created.spec.replicas, updated.spec.replicas) == (1, 2)


def test_scale_subresource_reads_and_sets_replicas(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("production", deployment_manifest("trip", "trip:v1", replicas=1))
    scale = apps.read_namespaced_deployment_scale("trip", "production")
    patched = apps.patch_namespaced_deployment_scale("trip", "production", {"spec": {"replicas": 4}})
    replaced = apps.replace_namespaced_deployment_scale("trip", "production", {
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "trip", "namespace": "production"}, "spec": {"replicas": 2}})
    assert scale.spec.replicas == 1 and scale.status.selector == "app=trip"
    assert patched.spec.replicas == 4 and replaced.spec.replicas == 2
    assert apps.read_namespaced_deployment("trip", "production").spec.replicas == 2


def test_status_subresource_is_separate_from_spec(api_client: client.ApiClient, apps: client.AppsV1Api) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service("production", {"metadata": {"name": "trip"},
                                                  "spec": {"selector": {"app": "trip"}, "ports": [{"port": 80}]}})
    address = {"loadBalancer": {"ingress": [{"ip": "20.10.0.7"}]}}
    status_patched = core.patch_namespaced_service_status("trip", "production", {
        "spec": {"selector": {"app": "other"}}, "status": address})
    main_patched = core.patch_namespaced_service("trip", "production", {"status": {"loadBalancer": {}}},
                                                 _content_type="application/merge-patch+json")
    assert status_patched.spec.selector == {"app": "trip"}
    assert status_patched.status.load_balancer.ingress[0].ip == "20.10.0.7"
    assert main_patched.status.load_balancer.ingress[0].ip == "20.10.0.7"
