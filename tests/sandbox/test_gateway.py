"""The gateway answers through the pod the cluster's objects pick, as that pod's version behaves."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from delivery.sandbox.behavior import BehaviorBook, BehaviorRule, VersionBehavior
from delivery.sandbox.gateway import build_gateway_app, latency_seconds
from delivery.sandbox.telemetry import Telemetry
from tests.sandbox.test_traffic import (
    INGRESSES,
    canary_routes,
    make_destination_rule,
    make_pod,
    make_service,
    make_virtual_service,
)

FAST = VersionBehavior(error_rate=0.0, latency_p50_ms=0.01, latency_p95_ms=0.02)
IMAGE = "acrtrpgenprod.azurecr.io/trip-service"


class FakeStore:
    """The two read methods the gateway uses, over lists of objects by resource."""

    def __init__(self, objects: dict[str, list[dict]]) -> None:
        self.objects = objects

    def list_objects(self, resource: str, namespace: str | None) -> list[dict]:
        items = self.objects.get(resource, [])
        return [o for o in items if namespace is None or o["metadata"].get("namespace") == namespace]

    def get_object(self, resource: str, namespace: str, name: str) -> dict | None:
        return next((o for o in self.list_objects(resource, namespace) if o["metadata"]["name"] == name), None)


def fast_behaviors(**by_glob: VersionBehavior) -> BehaviorBook:
    """Tiny latencies for tests; `by_glob` adds rules (e.g. `faulty=...` for tags `*-faulty`) before the catch-all."""
    rules = tuple(BehaviorRule(f"*-{glob}", behavior) for glob, behavior in by_glob.items())
    return BehaviorBook(rules + (BehaviorRule("*", FAST),))


def trip_service_store(selected: str = "blue", green_tag: str = "v1.1.0") -> FakeStore:
    """Production trip-service: blue at v1.0.0 (2 pods), green at `green_tag`, a canary, Istio routes 100/0."""
    return FakeStore({
        "ingresses": list(INGRESSES),
        "services": [make_service("trip-service", {"app": "trip-service", "version": selected})],
        "pods": [
            make_pod("trip-service-blue-7f9c6d-a", "trip-service", "blue", image=f"{IMAGE}:v1.0.0"),
            make_pod("trip-service-blue-7f9c6d-b", "trip-service", "blue", image=f"{IMAGE}:v1.0.0"),
            make_pod("trip-service-green-7f9c6d-a", "trip-service", "green", image=f"{IMAGE}:{green_tag}"),
            make_pod("trip-service-canary-7f9c6d-a", "trip-service", "canary", image=f"{IMAGE}:v1.2.0"),
        ],
        "virtualservices": [make_virtual_service("trip-service", canary_routes("trip-service", 100, 0))],
        "destinationrules": [make_destination_rule("trip-service", {"stable": {}, "canary": {"version": "canary"}})],
    })


def public_api_store() -> FakeStore:
    """trip-service plus the three other public services, each with one blue pod."""
    store = trip_service_store("blue")
    for app in ("user-service", "ai-service", "location-service"):
        store.objects["services"].append(make_service(app, {"app": app, "version": "blue"}))
        store.objects["pods"].append(make_pod(f"{app}-blue-7f9c6d-a", app, "blue"))
    return store


def canary_store(stable: int, canary: int) -> FakeStore:
    """The canary shape: a Service selecting the app only; subsets by version stable / canary."""
    store = trip_service_store()
    store.objects["services"] = [make_service("trip-service", {"app": "trip-service"})]
    store.objects["virtualservices"] = [make_virtual_service("trip-service", canary_routes("trip-service", stable, canary))]
    store.objects["destinationrules"] = [
        make_destination_rule("trip-service", {"stable": {"version": "blue"}, "canary": {"version": "canary"}})
    ]
    return store


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run `app` under uvicorn on a free 127.0.0.1 port in a background thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto set: asyncio turns Nagle off
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def call(app, requests: list[tuple[str, str, dict]]) -> list[httpx.Response]:
    """Send (method, path, headers) requests concurrently to `app` in-process."""
    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            return await asyncio.gather(*(client.request(m, p, headers=h) for m, p, h in requests))
    return asyncio.run(send())


def get(app, path: str, n: int = 1, **headers: str) -> list[httpx.Response]:
    return call(app, [("GET", path, headers)] * n)


def answering_versions(responses: list[httpx.Response]) -> Counter:
    return Counter(r.headers.get("x-tripgen-version", str(r.status_code)) for r in responses)


def test_blue_answers_then_green_after_the_selector_switch_over_http() -> None:
    store = trip_service_store("blue")
    app = build_gateway_app(store, fast_behaviors(), Telemetry(), random.Random(1))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, trust_env=False) as client:
        before = [client.get("/api/trips", headers={"host": "api.tripgen.com"}) for _ in range(20)]
        store.objects["services"][0]["spec"]["selector"]["version"] = "green"
        after = [client.get("/api/trips") for _ in range(20)]
    assert answering_versions(before) == Counter(blue=20)
    assert answering_versions(after) == Counter(green=20)
    assert all(r.status_code == 200 and r.json()[0]["id"].startswith("trip-") for r in before + after)


def test_every_answer_names_the_pod_version_and_image() -> None:
    app = build_gateway_app(trip_service_store("green", "v1.1.0"), fast_behaviors(), Telemetry(), random.Random(1))
    (response,) = get(app, "/api/trips/health")
    assert response.json() == {"status": "UP"}
    assert response.headers["x-tripgen-pod"] == "trip-service-green-7f9c6d-a"
    assert response.headers["x-tripgen-version"] == "green"
    assert response.headers["x-tripgen-image"] == f"{IMAGE}:v1.1.0"


def test_weights_90_10_give_the_canary_10_percent_of_1000_requests() -> None:
    app = build_gateway_app(canary_store(90, 10), fast_behaviors(), Telemetry(), random.Random(5))
    counts = answering_versions(get(app, "/api/trips", 1000))
    assert abs(counts["canary"] - 100) <= 30 and counts["blue"] + counts["canary"] == 1000


def test_the_canary_header_always_reaches_the_canary() -> None:
    app = build_gateway_app(canary_store(90, 10), fast_behaviors(), Telemetry(), random.Random(5))
    assert answering_versions(get(app, "/api/trips", 200, canary="true")) == Counter(canary=200)


def test_the_validation_host_reaches_only_the_idle_color() -> None:
    store = trip_service_store("blue")
    app = build_gateway_app(store, fast_behaviors(), Telemetry(), random.Random(2))
    assert answering_versions(get(app, "/api/trips/health", 50, host="validation.tripgen.com")) == Counter(green=50)
    store.objects["services"][0]["spec"]["selector"]["version"] = "green"
    assert answering_versions(get(app, "/api/trips/health", 50, host="validation.tripgen.com")) == Counter(blue=50)


def test_health_endpoints_follow_the_version_behavior() -> None:
    behaviors = fast_behaviors(faulty=VersionBehavior(error_rate=1.0, latency_p50_ms=0.01, db_healthy=False))
    app = build_gateway_app(trip_service_store("green", "v1.3.0-faulty"), behaviors, Telemetry(), random.Random(1))
    health, db, api = call(app, [
        ("GET", "/actuator/health", {"host": "trip-service.production.svc.cluster.local"}),
        ("GET", "/_ns/production/trip-service/actuator/health/db", {}),
        ("GET", "/api/trips", {}),
    ])
    assert (health.status_code, health.json()) == (503, {"status": "DOWN"})
    assert db.status_code == 503 and db.json()["status"] == "DOWN"
    assert api.status_code == 500


def test_a_rule_for_some_hosts_leaves_requests_to_other_hosts_alone() -> None:
    """`-faulty` fails real users' requests; the validation host, reaching the same idle pods, sees a healthy app."""
    faulty = BehaviorRule("*-faulty", VersionBehavior(error_rate=1.0, latency_p50_ms=0.01), None, ("users.tripgen.test",))
    behaviors = BehaviorBook((faulty, BehaviorRule("*", FAST)))
    app = build_gateway_app(trip_service_store("green", "v1.3.0-faulty"), behaviors, Telemetry(), random.Random(1))
    direct = get(app, "/_ns/production/trip-service/api/trips", 20, host="users.tripgen.test:443")
    validation = get(app, "/_ns/production/trip-service/api/trips", 20, host="validation.tripgen.com")
    assert {r.status_code for r in direct} == {500} and {r.status_code for r in validation} == {200}


def test_a_healthy_database_answers_up() -> None:
    app = build_gateway_app(trip_service_store("blue"), fast_behaviors(), Telemetry(), random.Random(1))
    (db,) = get(app, "/actuator/health/db", host="trip-service.production")
    assert db.status_code == 200 and db.json()["status"] == "UP"


def test_the_public_api_collections_answer_small_lists() -> None:
    app = build_gateway_app(public_api_store(), fast_behaviors(), Telemetry(), random.Random(1))
    responses = get(app, "/api/users") + get(app, "/api/ai/itineraries") + get(app, "/api/locations")
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(isinstance(r.json(), list) and r.json() for r in responses)
    answered_by = [r.headers["x-tripgen-pod"].split("-blue")[0] for r in responses]
    assert answered_by == ["user-service", "ai-service", "location-service"]


def test_unknown_paths_and_unrouted_requests() -> None:
    app = build_gateway_app(trip_service_store("blue"), fast_behaviors(), Telemetry(), random.Random(1))
    unknown, unrouted, post = call(app, [
        ("GET", "/api/trips/nope", {}),
        ("GET", "/nowhere", {}),
        ("POST", "/api/trips", {}),
    ])
    assert unknown.status_code == 404 and unknown.headers["x-tripgen-version"] == "blue"
    assert unrouted.status_code == 404 and "x-tripgen-pod" not in unrouted.headers
    assert post.status_code == 405


def test_no_ready_pod_answers_503_no_healthy_upstream() -> None:
    store = trip_service_store("green")
    store.objects["pods"] = [p for p in store.objects["pods"] if p["metadata"]["labels"]["version"] != "green"]
    app = build_gateway_app(store, fast_behaviors(), Telemetry(), random.Random(1))
    (response,) = get(app, "/api/trips")
    assert (response.status_code, response.text) == (503, "no healthy upstream")


def test_the_handler_really_waits_the_sampled_latency() -> None:
    behaviors = BehaviorBook((BehaviorRule("*", VersionBehavior(error_rate=0.0, latency_p50_ms=80, latency_p95_ms=80)),))
    app = build_gateway_app(trip_service_store("blue"), behaviors, Telemetry(), random.Random(1))
    started = time.perf_counter()
    get(app, "/api/trips")
    assert time.perf_counter() - started >= 0.075


def test_latency_follows_the_lognormal_fitted_to_p50_and_p95() -> None:
    rng = random.Random(9)
    samples = sorted(latency_seconds(VersionBehavior(latency_p50_ms=40, latency_p95_ms=120), rng) for _ in range(20000))
    assert abs(samples[10000] - 0.040) < 0.002
    assert abs(samples[19000] - 0.120) < 0.008


def test_requests_are_recorded_and_scrapeable_at_metrics() -> None:
    telemetry = Telemetry()
    app = build_gateway_app(trip_service_store("blue"), fast_behaviors(), telemetry, random.Random(1))
    get(app, "/api/trips", 3)
    (metrics,) = get(app, "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    (sample,) = families["istio_requests"].samples
    assert sample.value == 3
    assert sample.labels["destination_workload"] == "trip-service-blue"
    assert sample.labels["destination_version"] == "blue" and sample.labels["response_code"] == "200"
    http = families["http_requests"].samples  # one series per blue pod that answered
    assert {(s.labels["uri"], s.labels["status"], s.labels["version"]) for s in http} == {("/api/trips", "200", "blue")}
    assert sum(s.value for s in http) == 3
