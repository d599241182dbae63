"""The served sandbox (its own process, the default scenario) as the diagnose command reads it: `kubectl top pods`,
and each pod's Spring Boot `/actuator/metrics` through the gateway, by Service host or by the pod's address."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from kubernetes.utils import parse_quantity
from prometheus_client.parser import text_string_to_metric_families

from delivery.sandbox.endpoints import Endpoints
from delivery.sandbox.process import sandbox_process
from tests.sandbox.cluster_fixture import kubectl_runner
from tests.sandbox.test_kubectl import rows
from tests.waiting import wait_until

pytestmark = pytest.mark.slow  # starts its own servers: dealt out first (tests/conftest.py)

NS = "production"
SERVICE_HOST = "trip-service.production.svc.cluster.local"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Endpoints, Path]]:
    work = tmp_path_factory.mktemp("actuator")
    with sandbox_process(work) as endpoints:
        yield endpoints, work / "sandbox" / "kubeconfig"


@pytest.fixture(scope="module")
def core(sandbox: tuple[Endpoints, Path]) -> Iterator[client.CoreV1Api]:
    with client.ApiClient(client.Configuration(host=sandbox[0].kubernetes)) as api:
        yield client.CoreV1Api(api)


@pytest.fixture(scope="module")
def gateway(sandbox: tuple[Endpoints, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox[0].gateway, timeout=10) as http:
        yield http


def metric(gateway: httpx.Client, path: str, host: str = SERVICE_HOST, **params: str) -> httpx.Response:
    response = gateway.get(path, headers={"Host": host}, params=params)
    assert response.status_code == 200, response.text
    return response


def measurements(body: dict) -> dict[str, float]:
    return {m["statistic"]: m["value"] for m in body["measurements"]}


def test_kubectl_top_pods_lists_every_production_pod(sandbox: tuple[Endpoints, Path], core: client.CoreV1Api,
                                                     tmp_path: Path) -> None:
    done = kubectl_runner(sandbox[1], tmp_path)("top", "pods", "-n", NS)
    assert done.returncode == 0, done.stderr
    printed = rows(done.stdout)
    running = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
    assert set(printed) - {"NAME"} == running and running
    assert all(re.fullmatch(r"\d+m", row[1]) and re.fullmatch(r"\d+Mi", row[2]) for n, row in printed.items()
               if n != "NAME")


def test_the_actuator_lists_its_metrics(gateway: httpx.Client) -> None:
    names = metric(gateway, "/actuator/metrics").json()["names"]
    assert {"jvm.memory.used", "http.server.requests", "hikaricp.connections"} <= set(names)
    assert gateway.get("/actuator/metrics/no.such.metric", headers={"Host": SERVICE_HOST}).status_code == 404


def test_jvm_memory_used_is_the_pods_memory(gateway: httpx.Client) -> None:
    body = metric(gateway, "/actuator/metrics/jvm.memory.used").json()
    assert (body["name"], body["description"], body["baseUnit"]) == ("jvm.memory.used", "The amount of used memory",
                                                                     "bytes")
    assert measurements(body) == {"VALUE": 384 * MIB}
    assert {t["tag"] for t in body["availableTags"]} == {"area", "id"}
    heap = metric(gateway, "/actuator/metrics/jvm.memory.used", tag="area:heap").json()
    assert measurements(heap)["VALUE"] == pytest.approx(0.75 * 384 * MIB)


def test_http_server_requests_are_the_telemetrys_counts_for_the_pod(gateway: httpx.Client,
                                                                   sandbox: tuple[Endpoints, Path]) -> None:
    def telemetry_count(pod: str) -> float:
        text = httpx.get(f"{sandbox[0].control}/metrics").text
        return sum(s.value for family in text_string_to_metric_families(text) if family.name == "http_requests"
                   for s in family.samples if s.name == "http_requests_total" and s.labels.get("pod") == pod)

    def counted() -> tuple[str, dict] | None:
        response = metric(gateway, "/actuator/metrics/http.server.requests")
        body = response.json()
        return (response.headers["x-tripgen-pod"], body) if measurements(body)["COUNT"] > 0 else None

    pod, body = wait_until(counted, 30, "the load generator's requests counted")
    assert body["name"] == "http.server.requests" and body["baseUnit"] == "seconds"
    seen = measurements(body)
    assert set(seen) == {"COUNT", "TOTAL_TIME", "MAX"} and seen["TOTAL_TIME"] > 0 and seen["MAX"] > 0
    assert seen["COUNT"] <= telemetry_count(pod)
    tags = {t["tag"]: t["values"] for t in body["availableTags"]}
    assert "SUCCESS" in tags["outcome"] and "GET" in tags["method"]
    server_errors = metric(gateway, f"/_pod/{NS}/{pod}/actuator/metrics/http.server.requests", tag="outcome:BOGUS")
    assert measurements(server_errors.json())["COUNT"] == 0


def test_hikaricp_connections_is_the_pool_size(gateway: httpx.Client) -> None:
    body = metric(gateway, "/actuator/metrics/hikaricp.connections").json()
    assert measurements(body) == {"VALUE": 10.0}
    assert body["availableTags"] == [{"tag": "pool", "values": ["HikariPool-1"]}]


def test_a_pod_is_reached_by_its_address_and_a_leaky_versions_memory_grows(gateway: httpx.Client,
                                                                           core: client.CoreV1Api,
                                                                           sandbox: tuple[Endpoints, Path]) -> None:
    with client.ApiClient(client.Configuration(host=sandbox[0].kubernetes)) as api:
        image = "acrtrpgenprod.azurecr.io/trip-service:v1.3.0-leaky"
        template = {"spec": {"containers": [{"name": "trip-service", "image": image}]}}
        client.AppsV1Api(api).patch_namespaced_deployment("trip-service-green", NS,
                                                          {"spec": {"replicas": 1, "template": template}})

    def leaky_pod() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(NS, label_selector="app=trip-service,version=green").items
        return next((p for p in pods if p.status.pod_ip and p.spec.containers[0].image == image), None)

    pod = wait_until(leaky_pod, 30, "the leaky pod running")
    by_ip = f"{pod.status.pod_ip.replace('.', '-')}.{NS}.pod.cluster.local"

    def used() -> float:
        response = metric(gateway, "/actuator/metrics/jvm.memory.used", host=by_ip)
        assert response.headers["x-tripgen-pod"] == pod.metadata.name
        return measurements(response.json())["VALUE"]

    first = used()
    wait_until(lambda: used() > first, 30, "jvm.memory.used growing")
    limit = float(parse_quantity(pod.spec.containers[0].resources.limits["memory"]))
    assert all(used() <= limit for _ in range(10))


def test_a_versions_memory_changes_at_run_time(gateway: httpx.Client, sandbox: tuple[Endpoints, Path]) -> None:
    faults = {"versions": {"user-service:v1.0.0": {"memory_mib": 448, "memory_growth_mib_per_second": 0}}}
    httpx.patch(f"{sandbox[0].control}/faults", json=faults).raise_for_status()
    body = metric(gateway, "/actuator/metrics/jvm.memory.used", host="user-service.production.svc.cluster.local").json()
    assert measurements(body) == {"VALUE": 448 * MIB}
