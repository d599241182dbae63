"""The API server's request log on the control API: `GET /requests` (filtered by method, plural, name)
lists the resource requests the official client made, with their status and whether an injected fault
refused them; discovery and OpenAPI are not logged; `DELETE /requests` clears it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from delivery.sandbox.apiserver import LoggedRequest, RequestLog
from delivery.sandbox.endpoints import Endpoints
from delivery.sandbox.process import sandbox_process

NS = "production"
FIELDS = ("method", "path", "namespace", "plural", "name", "subresource", "status", "fault")


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """One whole sandbox (API server and control API) for the module."""
    with sandbox_process(tmp_path_factory.mktemp("request-log")) as running:
        yield running


@pytest.fixture
def control(endpoints: Endpoints) -> Iterator[httpx.Client]:
    """The control API, with an empty request log and no faults at the start of each test."""
    with httpx.Client(base_url=endpoints.control, timeout=10) as http:
        http.delete("/faults").raise_for_status()
        http.delete("/requests").raise_for_status()
        yield http
        http.delete("/faults").raise_for_status()


@pytest.fixture
def core(endpoints: Endpoints) -> Iterator[client.CoreV1Api]:
    """The official client; urllib3 retrying a 429 with Retry-After itself is turned off, so each call is one request."""
    configuration = client.Configuration(host=endpoints.kubernetes)
    configuration.retries = False
    with client.ApiClient(configuration) as api:
        yield client.CoreV1Api(api)


def logged(control: httpx.Client, **filters: str) -> list[tuple]:
    """The log's entries (without their time) matching `filters`, oldest first."""
    body = control.get("/requests", params=filters).raise_for_status().json()
    assert body["dropped"] == 0
    return [tuple(entry[f] for f in FIELDS) for entry in body["requests"]]


def test_resource_requests_are_logged_and_discovery_is_not(endpoints: Endpoints, control: httpx.Client,
                                                            core: client.CoreV1Api) -> None:
    api = core.api_client
    client.VersionApi(api).get_code()
    client.CoreApi(api).get_api_versions()
    client.ApisApi(api).get_api_versions()
    httpx.get(f"{endpoints.kubernetes}/openapi/v2").raise_for_status()
    core.read_namespaced_service("user-service", NS)
    core.list_namespaced_pod(NS, label_selector="app=user-service")
    client.AppsV1Api(api).read_namespaced_deployment_scale("user-service-blue", NS)
    client.AppsV1Api(api).list_deployment_for_all_namespaces()
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_service("no-such-service", NS)
    assert missing.value.status == 404

    assert logged(control) == [
        ("GET", f"/api/v1/namespaces/{NS}/services/user-service", NS, "services", "user-service", None, 200, False),
        ("GET", f"/api/v1/namespaces/{NS}/pods", NS, "pods", None, None, 200, False),
        ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/user-service-blue/scale", NS, "deployments",
         "user-service-blue", "scale", 200, False),
        ("GET", "/apis/apps/v1/deployments", None, "deployments", None, None, 200, False),
        ("GET", f"/api/v1/namespaces/{NS}/services/no-such-service", NS, "services", "no-such-service", None, 404,
         False),
    ]
    entry = control.get("/requests").json()["requests"][0]
    assert set(entry) == {"time", "changed", *FIELDS} and entry["time"].endswith("+00:00") and entry["changed"] == []


def test_the_log_filters_by_method_plural_and_name(control: httpx.Client, core: client.CoreV1Api) -> None:
    for service in ("user-service", "trip-service"):
        core.read_namespaced_service(service, NS)
        core.patch_namespaced_service(service, NS, {"metadata": {"labels": {"touched": "yes"}}})
    core.list_namespaced_pod(NS)

    patches = logged(control, method="PATCH", plural="services")
    assert [(e[0], e[4], e[6]) for e in patches] == [("PATCH", "user-service", 200), ("PATCH", "trip-service", 200)]
    changed = control.get("/requests", params={"method": "PATCH", "name": "user-service"}).json()["requests"][0]["changed"]
    assert changed == ["/metadata/labels/touched"]  # what the write changed, bookkeeping left out
    assert logged(control, method="patch", plural="services", name="trip-service") == [patches[1]]
    assert [e[0] for e in logged(control, name="user-service")] == ["GET", "PATCH"]
    assert [e[4] for e in logged(control, plural="pods")] == [None]
    assert logged(control, plural="secrets") == []
    refused = control.get("/requests", params={"namespace": NS})
    assert refused.status_code == 400 and "namespace: not a filter" in refused.json()["problems"][0]


def test_injected_faults_are_marked(control: httpx.Client, core: client.CoreV1Api) -> None:
    control.patch("/faults", json={"api_error_percent": 100}).raise_for_status()
    with pytest.raises(ApiException) as error:
        core.patch_namespaced_service("user-service", NS, {"metadata": {"labels": {"touched": "no"}}})
    assert error.value.status == 500
    control.patch("/faults", json={"api_error_percent": 0, "api_throttle_percent": 100}).raise_for_status()
    with pytest.raises(ApiException) as throttled:
        core.read_namespaced_service("user-service", NS)
    assert throttled.value.status == 429
    client.VersionApi(core.api_client).get_code()  # discovery is never refused, nor logged
    control.delete("/faults").raise_for_status()
    core.read_namespaced_service("user-service", NS)

    path = f"/api/v1/namespaces/{NS}/services/user-service"
    assert logged(control) == [
        ("PATCH", path, NS, "services", "user-service", None, 500, True),
        ("GET", path, NS, "services", "user-service", None, 429, True),
        ("GET", path, NS, "services", "user-service", None, 200, False),
    ]
    assert core.read_namespaced_service("user-service", NS).metadata.labels.get("touched") != "no"


def test_unknown_resources_are_logged_without_a_resource(endpoints: Endpoints, control: httpx.Client) -> None:
    assert httpx.get(f"{endpoints.kubernetes}/api/v1/namespaces/{NS}/widgets").status_code == 404
    assert logged(control) == [("GET", f"/api/v1/namespaces/{NS}/widgets", None, None, None, None, 404, False)]


def test_clearing_empties_the_log(control: httpx.Client, core: client.CoreV1Api) -> None:
    core.read_namespaced_service("user-service", NS)
    assert len(logged(control)) == 1
    cleared = control.delete("/requests")
    assert cleared.status_code == 204
    assert logged(control) == []
    core.read_namespaced_service("location-service", NS)
    assert [e[4] for e in logged(control)] == ["location-service"]


def test_the_log_keeps_the_newest_entries_and_counts_the_dropped() -> None:
    log = RequestLog(capacity=3)
    for number in range(5):
        log.record(LoggedRequest("2024-01-01T00:00:00.000+00:00", "GET", f"/api/v1/pods/p{number}", None, "pods",
                                 f"p{number}", None, 200, False))
    assert [e.name for e in log.matching()] == ["p2", "p3", "p4"] and log.dropped == 2
    log.clear()
    assert log.matching() == [] and log.dropped == 0
