"""What kubectl and clients read before they act: discovery, version, OpenAPI, Tables;
and how requests fail: Status errors, unknown paths, injected faults."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.sandbox.cluster_fixture import RunningCluster, deployment_manifest, rolled_out, wait_until

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io," \
        "application/json"


def get_json(api: client.ApiClient, cluster: RunningCluster, path: str, accept: str = "application/json") -> dict:
    response = api.call_api("GET", cluster.base_url + path, header_params={"Accept": accept})
    assert response.status == 200, response.read()
    return json.loads(response.read())


def test_core_and_group_discovery(api_client: client.ApiClient) -> None:
    core_versions = client.CoreApi(api_client).get_api_versions()
    groups = {g.name: g for g in client.ApisApi(api_client).get_api_versions().groups}
    apps = {r.name: r for r in client.AppsV1Api(api_client).get_api_resources().resources}
    core = {r.name: r for r in client.CoreV1Api(api_client).get_api_resources().resources}
    assert core_versions.versions == ["v1"]
    assert {"apps", "batch", "networking.k8s.io", "coordination.k8s.io", "networking.istio.io",
            "flagger.app"} <= set(groups)
    assert groups["networking.istio.io"].preferred_version.version == "v1beta1"
    assert [v.version for v in groups["networking.istio.io"].versions] == ["v1beta1", "v1", "v1alpha3"]
    assert apps["deployments"].short_names == ["deploy"] and apps["deployments"].namespaced
    assert (apps["deployments/scale"].group, apps["deployments/scale"].kind) == ("autoscaling", "Scale")
    assert core["namespaces"].namespaced is False and core["pods/log"].verbs == ["get"]
    assert set(core["services"].verbs) >= {"get", "list", "watch", "create", "update", "patch", "delete"}


def test_custom_group_version_lists_istio_resources(api_client: client.ApiClient,
                                                    sandbox_cluster: RunningCluster) -> None:
    listing = get_json(api_client, sandbox_cluster, "/apis/networking.istio.io/v1beta1")
    short = {r["name"]: r.get("shortNames") for r in listing["resources"] if "/" not in r["name"]}
    assert short == {"virtualservices": ["vs"], "destinationrules": ["dr"]}


def test_version_reports_a_kubernetes_release(api_client: client.ApiClient) -> None:
    version = client.VersionApi(api_client).get_code()
    assert (version.major, version.minor) == ("1", "32")


def test_openapi_v3_marks_patch_operations_for_kubectl(api_client: client.ApiClient,
                                                       sandbox_cluster: RunningCluster) -> None:
    index = get_json(api_client, sandbox_cluster, "/openapi/v3")
    document = get_json(api_client, sandbox_cluster, index["paths"]["apis/apps/v1"]["serverRelativeURL"])
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"])
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]


def test_list_as_table_has_kubectl_columns(api_client: client.ApiClient, sandbox_cluster: RunningCluster) -> None:
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": "production"}})
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment("production", deployment_manifest("trip", "trip:v1", replicas=2))
    wait_until(lambda: rolled_out(apps, "production", "trip"), what="trip rolled out")
    table = get_json(api_client, sandbox_cluster, "/apis/apps/v1/namespaces/production/deployments", TABLE)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Ready", "Up-to-date", "Available", "Age"]
    row = table["rows"][0]
    assert row["cells"][:4] == ["trip", "2/2", 2, 2]
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["name"] == "trip"


def test_errors_are_status_objects(api_client: client.ApiClient, sandbox_cluster: RunningCluster) -> None:
    unknown = api_client.call_api("GET", sandbox_cluster.base_url + "/apis/example.com/v1/widgets")
    not_allowed = api_client.call_api("PUT", sandbox_cluster.base_url + "/api/v1/namespaces",
                                      header_params={"Content-Type": "application/json"}, body={})
    malformed = api_client.call_api("POST", sandbox_cluster.base_url + "/api/v1/namespaces",
                                    header_params={"Content-Type": "application/json"}, body="{not json")
    for response, code, reason in ((unknown, 404, "NotFound"), (not_allowed, 405, "MethodNotAllowed"),
                                   (malformed, 400, "BadRequest")):
        status = json.loads(response.read())
        assert (response.status, status["kind"], status["code"], status["reason"]) == (code, "Status", code, reason)


def test_injected_server_errors_answer_500_with_a_status(api_client: client.ApiClient,
                                                         sandbox_cluster: RunningCluster) -> None:
    sandbox_cluster.faults.api_error_rate = 1.0
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(api_client).list_namespace()
    sandbox_cluster.faults.api_error_rate = 0.0
    assert raised.value.status == 500 and json.loads(raised.value.body)["reason"] == "InternalError"
    assert client.CoreV1Api(api_client).list_namespace().items


def test_injected_throttling_answers_429_with_retry_after(api_client: client.ApiClient,
                                                          sandbox_cluster: RunningCluster) -> None:
    sandbox_cluster.faults.api_throttle_rate = 1.0
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(api_client).create_namespace({"metadata": {"name": "staging"}})
    sandbox_cluster.faults.api_throttle_rate = 0.0
    assert raised.value.status == 429 and raised.value.headers["Retry-After"] == "1"
    assert json.loads(raised.value.body)["details"] == {"retryAfterSeconds": 1}


def test_injected_latency_delays_requests_but_not_discovery(api_client: client.ApiClient,
                                                            sandbox_cluster: RunningCluster) -> None:
    sandbox_cluster.faults.api_latency_ms = 1000  # far above what one local request takes on a loaded machine
    started = time.monotonic()
    client.CoreV1Api(api_client).list_namespace()
    slowed = time.monotonic() - started
    started = time.monotonic()
    client.CoreV1Api(api_client).get_api_resources()
    discovery = time.monotonic() - started
    assert slowed >= 1.0 and discovery < 1.0
