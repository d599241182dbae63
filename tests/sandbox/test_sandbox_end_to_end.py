"""The composed sandbox over HTTP: traffic follows the cluster's routing, and a real Prometheus agrees."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from delivery.kube import Deployments, Routing, connect
from delivery.kube.manifests import colored_deployment
from delivery.metrics.prometheus import PrometheusClient
from delivery.metrics.templates import QueryTarget, render_query
from delivery.policy.models import Policy
from delivery.release.evidence import side_sample
from delivery.sandbox.real_prometheus import start_prometheus
from delivery.sandbox.server import bind
from delivery.sandbox.process import sandbox_process
from tests.waiting import wait_until

POLICY = Policy()
NS = "production"
IMAGE = "acrtrpgenprod.azurecr.io/trip-service:{}"


@pytest.fixture
def sandbox(tmp_path):
    with sandbox_process(tmp_path) as endpoints:
        conn = connect(str(tmp_path / "sandbox" / "kubeconfig"))
        yield endpoints, Deployments(conn), Routing(conn), conn


def versions(gateway: str, host: str, count: int, headers: dict | None = None, path: str = "/api/trips/health") -> Counter:
    """Which `version` label answered each of `count` requests."""
    with httpx.Client(base_url=gateway, timeout=10) as http, ThreadPoolExecutor(8) as pool:
        send = lambda _: http.get(path, headers={"Host": host, **(headers or {})}).headers["x-tripgen-version"]  # noqa: E731
        return Counter(pool.map(send, range(count)))


def deploy(deployments: Deployments, color: str, tag: str) -> None:
    deployments.apply(colored_deployment(POLICY.service("trip-service"), NS, color, IMAGE.format(tag), 30, replicas=2))
    assert deployments.wait_rolled_out(NS, f"trip-service-{color}", timeout=20, poll=0.1).done


def test_traffic_follows_selectors_weights_headers_and_the_validation_host(sandbox):
    endpoints, deployments, routing, conn = sandbox
    fast = {"latency_p50_ms": 1, "latency_p95_ms": 2}
    httpx.patch(f"{endpoints.control}/faults", json={"versions": {"v1.0.0": fast, "v1.2.0": fast}}).raise_for_status()
    public, validation = "api.tripgen.com", "validation.tripgen.com"

    assert versions(endpoints.gateway, public, 20) == {"blue": 20}
    deploy(deployments, "green", "v1.2.0")
    assert versions(endpoints.gateway, validation, 20) == {"green": 20}  # what trip-service-preview selects
    assert versions(endpoints.gateway, public, 20) == {"blue": 20}

    routing.switch_selector(NS, "trip-service", "green")
    routing.switch_selector(NS, "trip-service-preview", "blue")
    assert versions(endpoints.gateway, public, 20) == {"green": 20}
    assert versions(endpoints.gateway, validation, 20) == {"blue": 20}

    deploy(deployments, "canary", "v1.2.0")
    conn.core.patch_namespaced_service("trip-service", NS, {"spec": {"selector": {"version": None}}})
    subsets = [{"name": "stable", "labels": {"version": "green"}}, {"name": "canary", "labels": {"version": "canary"}}]
    conn.custom.patch_namespaced_custom_object("networking.istio.io", "v1beta1", NS, "destinationrules", "trip-service", {"spec": {"subsets": subsets}})
    routing.set_route_weights(NS, "trip-service", {"stable": 90, "canary": 10})
    split = versions(endpoints.gateway, public, 1000)
    assert set(split) == {"green", "canary"} and 70 <= split["canary"] <= 130  # 10% ± 3% of 1000
    assert versions(endpoints.gateway, public, 50, headers={"canary": "true"}) == {"canary": 50}


def test_real_prometheus_and_the_builtin_api_agree_on_the_templates(sandbox, tmp_path):
    endpoints, deployments, routing, _ = sandbox
    with bind(0) as probe:
        port = probe.getsockname()[1]
    real = start_prometheus(tmp_path / "prometheus", endpoints.control.removeprefix("http://"), port)
    try:
        deploy(deployments, "green", "v1.3.0-faulty")
        routing.switch_selector(NS, "trip-service", "green")
        # the 20 s windows read below lie after the switch once both servers hold data from 25 s after it
        settled = time.time() + 25
        wait_until(lambda: time.time() >= settled and last_scrape(real.url) >= settled, 120,
                   "both Prometheus servers to hold 25 s of data after the switch", interval=0.5)
        readings = {name: read_templates(url) for name, url in (("builtin", endpoints.prometheus), ("real", real.url))}
        samples = {name: read_canary_evidence(url) for name, url in (("builtin", endpoints.prometheus), ("real", real.url))}
    finally:
        real.stop()
    for workload in ("trip-service-green", "user-service-blue"):
        builtin, real_sample = samples["builtin"][workload], samples["real"][workload]
        assert builtin.requests == pytest.approx(real_sample.requests, rel=0.15), workload
        assert builtin.latency_buckets[-1][0] == real_sample.latency_buckets[-1][0] == float("inf")
        assert len(builtin.latency_buckets) == len(real_sample.latency_buckets) > 10
    assert samples["real"]["trip-service-green"].errors > 0 and samples["builtin"]["trip-service-green"].errors > 0
    for source, values in readings.items():
        faulty_success, healthy_success, faulty_p95, healthy_p95 = values
        assert 88 <= faulty_success <= 99, (source, values)  # 5% simulated 5xx over ~300 requests
        assert healthy_success >= 99, (source, values)  # 0.05% simulated 5xx: under 99% takes 4+ of ~300 (p ~ 2e-5)
        assert 0.08 <= faulty_p95 <= 0.2 and 0.08 <= healthy_p95 <= 0.2, (source, values)  # p95 near 120 ms
    verdict = lambda values: (values[0] >= 99, values[1] >= 99)  # noqa: E731 - Flagger's success-rate check
    assert verdict(readings["builtin"]) == verdict(readings["real"]) == (False, True)


def last_scrape(prometheus_url: str) -> float:
    """When `prometheus_url` (a real Prometheus) last scraped the sandbox; 0 before its first scrape."""
    with PrometheusClient(prometheus_url, timeout=5, retries=1) as prometheus:
        reading = prometheus.query("max(timestamp(up))")
    return reading.value if reading.conclusive else 0.0


def read_canary_evidence(prometheus_url: str) -> dict:
    """The canary analysis's own queries (Istio request and 5xx counts, latency buckets) per workload."""
    with PrometheusClient(prometheus_url, timeout=5, retries=1) as prometheus:
        return {
            workload: side_sample(prometheus, POLICY, service, workload, timedelta(seconds=20))
            for service, workload in (("trip-service", "trip-service-green"), ("user-service", "user-service-blue"))
        }


def read_templates(prometheus_url: str) -> tuple[float, float, float, float]:
    """Success rate (%) and p95 (s) of trip-service-green (faulty) and user-service-blue (healthy)."""
    window = timedelta(seconds=20)
    faulty = QueryTarget(NS, "trip-service", "trip-service-green", "green", window)
    healthy = QueryTarget(NS, "user-service", "user-service-blue", "blue", window)
    templates = POLICY.metric_templates
    with PrometheusClient(prometheus_url, timeout=5, retries=1) as prometheus:
        value = lambda name, target: prometheus.query(render_query(templates[name], target))  # noqa: E731
        readings = [
            value("request-success-rate", faulty),
            value("request-success-rate", healthy),
            value("response-time-p95", faulty),
            value("response-time-p95", healthy),
        ]
    assert all(r.conclusive for r in readings), [str(r) for r in readings]
    return tuple(r.value for r in readings)
