"""Routing decisions from cluster objects: Ingress paths, Service selectors, Istio routes, the validation host."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from delivery.sandbox.traffic import (
    NO_HEALTHY_UPSTREAM,
    NamespaceObjects,
    NoRoute,
    Target,
    Upstream,
    idle_color_selector,
    resolve_target,
    route_request,
)

PUBLIC_PATHS = {
    "/api/users": "user-service",
    "/api/trips": "trip-service",
    "/api/ai": "ai-service",
    "/api/locations": "location-service",
}
READY = {"conditions": [{"type": "Ready", "status": "True"}]}


def make_pod(name: str, app: str, version: str, *, namespace: str = "production", image: str = "",
             ready: bool = True, deleting: bool = False) -> dict:
    """A pod owned by the ReplicaSet of Deployment `<app>-<version>`, as the controllers create it."""
    meta = {
        "name": name,
        "namespace": namespace,
        "labels": {"app": app, "version": version, "pod-template-hash": "7f9c6d"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": f"{app}-{version}-7f9c6d"}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    status = READY if ready else {"conditions": [{"type": "Ready", "status": "False"}]}
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": app, "image": image or f"acrtrpgenprod.azurecr.io/{app}:v1.0.0"}]},
        "status": status,
    }


def make_service(name: str, selector: dict, namespace: str = "production") -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"selector": dict(selector)}}


def make_virtual_service(name: str, http: list[dict], hosts: list[str] | None = None, namespace: str = "production") -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"hosts": hosts or [name], "http": http}}


def make_destination_rule(host: str, subsets: dict[str, dict], namespace: str = "production") -> dict:
    return {
        "metadata": {"name": host, "namespace": namespace},
        "spec": {"host": host, "subsets": [{"name": n, "labels": labels} for n, labels in subsets.items()]},
    }


def canary_routes(service: str, stable: int, canary: int) -> list[dict]:
    """R-CAN-1: header `canary: "true"` to the canary subset, the rest split by weight."""
    to = lambda subset, weight: {"destination": {"host": service, "subset": subset}, "weight": weight}  # noqa: E731
    return [
        {
            "match": [{"headers": {"canary": {"exact": "true"}}}],
            "route": [{"destination": {"host": service, "subset": "canary"}}],
        },
        {"route": [to("stable", stable), to("canary", canary)]},
    ]


def make_ingress(namespace: str, hosts: list[str], paths: dict[str, str] = PUBLIC_PATHS) -> dict:
    entries = [
        {"path": path, "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": 80}}}}
        for path, svc in paths.items()
    ]
    return {
        "metadata": {"name": "tripgen", "namespace": namespace},
        "spec": {"rules": [{"host": host, "http": {"paths": entries}} for host in hosts]},
    }


INGRESSES = [
    make_ingress("production", ["api.tripgen.com", "validation.tripgen.com"]),
    make_ingress("staging", ["staging-api.tripgen.com"]),
]


def blue_green(selected: str, *, green_ready: bool = True) -> NamespaceObjects:
    return NamespaceObjects(
        services=[make_service("trip-service", {"app": "trip-service", "version": selected})],
        pods=[
            make_pod("trip-service-blue-7f9c6d-a", "trip-service", "blue"),
            make_pod("trip-service-blue-7f9c6d-b", "trip-service", "blue"),
            make_pod("trip-service-green-7f9c6d-a", "trip-service", "green", ready=green_ready),
        ],
    )


def canary_setup(stable: int, canary: int) -> NamespaceObjects:
    return NamespaceObjects(
        services=[make_service("trip-service", {"app": "trip-service"})],
        pods=[
            make_pod("trip-service-stable-7f9c6d-a", "trip-service", "stable"),
            make_pod("trip-service-canary-7f9c6d-a", "trip-service", "canary"),
        ],
        virtualservices=[make_virtual_service("trip-service", canary_routes("trip-service", stable, canary))],
        destinationrules=[
            make_destination_rule("trip-service", {"stable": {"version": "stable"}, "canary": {"version": "canary"}})
        ],
    )


TRIPS = Target("production", "trip-service", "/api/trips")


def versions(
    objects: NamespaceObjects, n: int, headers: dict | None = None, target: Target = TRIPS, seed: int = 7
) -> Counter:
    rng = random.Random(seed)
    answers = [route_request(target, headers or {}, objects, rng) for _ in range(n)]
    return Counter(a.pod["metadata"]["labels"]["version"] if isinstance(a, Upstream) else a.status for a in answers)


# --- addressing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "service"), [
    ("/api/users/health", "user-service"),
    ("/api/trips", "trip-service"),
    ("/api/ai/itineraries", "ai-service"),
    ("/api/locations/health", "location-service"),
])
def test_public_paths_come_from_the_ingress(path: str, service: str) -> None:
    assert resolve_target("api.tripgen.com", path, INGRESSES) == Target("production", service, path)


def test_hosts_pick_the_namespace_and_an_unknown_host_counts_as_the_public_api() -> None:
    assert resolve_target("staging-api.tripgen.com", "/api/trips", INGRESSES).namespace == "staging"
    assert resolve_target("127.0.0.1:8080", "/api/trips", INGRESSES) == TRIPS
    assert resolve_target("API.TRIPGEN.COM:443", "/api/trips", INGRESSES) == TRIPS


def test_prefix_paths_match_whole_path_elements_and_the_longest_wins() -> None:
    ingresses = [make_ingress("production", ["api.tripgen.com"], {"/api": "gateway-service", "/api/ai": "ai-service"})]
    assert resolve_target("api.tripgen.com", "/api/ai/health", ingresses).service == "ai-service"
    assert resolve_target("api.tripgen.com", "/api/aircraft", ingresses).service == "gateway-service"
    unmatched = resolve_target("api.tripgen.com", "/api/tripsx", INGRESSES)
    assert isinstance(unmatched, NoRoute) and unmatched.status == 404


@pytest.mark.parametrize(
    "host", ["trip-service.staging.svc.cluster.local", "trip-service.staging.svc", "trip-service.staging:8080"]
)
def test_a_service_host_addresses_that_service_with_any_path(host: str) -> None:
    assert resolve_target(host, "/actuator/health/db", INGRESSES) == Target("staging", "trip-service", "/actuator/health/db")


def test_the_path_prefix_form_addresses_a_service_directly() -> None:
    target = resolve_target("127.0.0.1:9", "/_ns/production/trip-service/actuator/health", INGRESSES)
    assert target == Target("production", "trip-service", "/actuator/health")
    assert resolve_target("x", "/_ns/production/trip-service", INGRESSES) == Target("production", "trip-service", "/")
    assert isinstance(resolve_target("x", "/_ns/production", INGRESSES), NoRoute)


def test_the_validation_host_routes_by_path_to_the_idle_color_only() -> None:
    target = resolve_target("validation.tripgen.com", "/api/trips/health", INGRESSES)
    assert target == Target("production", "trip-service", "/api/trips/health", idle_color_only=True)


# --- selectors and readiness ------------------------------------------------------------------------


def test_the_service_selector_picks_the_color() -> None:
    assert versions(blue_green("blue"), 50) == Counter(blue=50)
    assert versions(blue_green("green"), 50) == Counter(green=50)


def test_requests_spread_over_the_selected_pods() -> None:
    rng = random.Random(3)
    names = Counter(route_request(TRIPS, {}, blue_green("blue"), rng).pod["metadata"]["name"] for _ in range(200))
    assert set(names) == {"trip-service-blue-7f9c6d-a", "trip-service-blue-7f9c6d-b"}
    assert min(names.values()) > 60


def test_only_ready_pods_that_are_not_being_deleted_serve() -> None:
    objects = NamespaceObjects(
        services=[make_service("trip-service", {"app": "trip-service", "version": "blue"})],
        pods=[
            make_pod("a", "trip-service", "blue", ready=False),
            make_pod("b", "trip-service", "blue", deleting=True),
            make_pod("c", "trip-service", "blue"),
        ],
    )
    rng = random.Random(1)
    assert {route_request(TRIPS, {}, objects, rng).pod["metadata"]["name"] for _ in range(30)} == {"c"}


def test_no_serving_pod_is_envoys_503_no_healthy_upstream() -> None:
    no_green = blue_green("green", green_ready=False)
    assert route_request(TRIPS, {}, no_green, random.Random()) == NoRoute(503, NO_HEALTHY_UPSTREAM)
    missing = Target("production", "nowhere", "/")
    assert route_request(missing, {}, blue_green("blue"), random.Random()) == NoRoute(503, NO_HEALTHY_UPSTREAM)
    selectorless = NamespaceObjects(services=[make_service("trip-service", {})], pods=blue_green("blue").pods)
    assert route_request(TRIPS, {}, selectorless, random.Random()).status == 503


# --- the validation route ---------------------------------------------------------------------------


def test_the_validation_route_reaches_only_the_idle_color() -> None:
    idle = Target("production", "trip-service", "/api/trips/health", idle_color_only=True)
    assert versions(blue_green("blue"), 50, target=idle) == Counter(green=50)
    assert versions(blue_green("green"), 50, target=idle) == Counter(blue=50)
    assert versions(blue_green("blue", green_ready=False), 5, target=idle) == Counter({503: 5})


def test_without_a_selected_color_there_is_no_idle_color() -> None:
    assert idle_color_selector({"app": "trip-service"}) is None
    assert idle_color_selector({"app": "trip-service", "version": "canary"}) is None
    assert idle_color_selector({"app": "trip-service", "version": "green"}) == {"app": "trip-service", "version": "blue"}


# --- Istio routing ----------------------------------------------------------------------------------


def test_weights_90_10_send_the_canary_10_percent() -> None:
    counts = versions(canary_setup(90, 10), 1000, seed=11)
    assert abs(counts["canary"] - 100) <= 30
    assert counts["canary"] + counts["stable"] == 1000


def test_the_canary_header_always_reaches_the_canary() -> None:
    assert versions(canary_setup(100, 0), 300, headers={"canary": "true"}) == Counter(canary=300)
    assert versions(canary_setup(100, 0), 300, headers={"canary": "false"}) == Counter(stable=300)


def test_weight_zero_never_and_weight_100_always_receive() -> None:
    assert versions(canary_setup(100, 0), 300) == Counter(stable=300)
    assert versions(canary_setup(0, 100), 300) == Counter(canary=300)


@pytest.mark.parametrize(("rule", "value", "matches"), [
    ({"prefix": "beta"}, "beta-users", True),
    ({"prefix": "beta"}, "alpha", False),
    ({"regex": "tr.e"}, "true", True),
    ({"regex": "tr"}, "true", False),  # Istio's regex matches the whole value
])
def test_header_matches_by_prefix_and_regex(rule: dict, value: str, matches: bool) -> None:
    objects = canary_setup(100, 0)
    objects.virtualservices[0]["spec"]["http"][0]["match"] = [{"headers": {"x-group": rule}}]
    expected = "canary" if matches else "stable"
    assert versions(objects, 20, headers={"x-group": value}) == Counter({expected: 20})


def test_a_virtual_service_listing_the_fqdn_applies() -> None:
    objects = canary_setup(0, 100)
    objects.virtualservices[0]["spec"]["hosts"] = ["trip-service.production.svc.cluster.local"]
    assert versions(objects, 20) == Counter(canary=20)


def test_subset_labels_are_anded_with_the_service_selector() -> None:
    objects = blue_green("blue")
    objects.virtualservices.append(make_virtual_service("trip-service", canary_routes("trip-service", 50, 50)))
    objects.destinationrules.append(make_destination_rule("trip-service", {"stable": {}, "canary": {"version": "green"}}))
    counts = versions(objects, 200)
    # selector version=blue AND subset version=green selects nothing
    assert counts["blue"] > 60 and counts[503] > 60 and "green" not in counts


def test_destinations_may_name_other_services_like_flaggers_primary_and_canary() -> None:
    objects = NamespaceObjects(
        services=[
            make_service("trip-service", {"app": "trip-service"}),
            make_service("trip-service-primary", {"app": "trip-service", "version": "stable"}),
            make_service("trip-service-canary", {"app": "trip-service", "version": "canary"}),
        ],
        pods=canary_setup(0, 0).pods,
        virtualservices=[make_virtual_service("trip-service", [{"route": [
            {"destination": {"host": "trip-service-primary"}, "weight": 0},
            {"destination": {"host": "trip-service-canary.production.svc.cluster.local"}, "weight": 100},
        ]}])],
    )
    answer = route_request(TRIPS, {}, objects, random.Random())
    assert answer.service == "trip-service-canary" and answer.pod["metadata"]["labels"]["version"] == "canary"


def test_a_request_no_route_matches_gets_404_and_an_unknown_subset_503() -> None:
    objects = canary_setup(90, 10)
    del objects.virtualservices[0]["spec"]["http"][1]
    assert route_request(TRIPS, {}, objects, random.Random()).status == 404
    objects = canary_setup(0, 100)
    objects.destinationrules.clear()
    assert route_request(TRIPS, {}, objects, random.Random()) == NoRoute(503, NO_HEALTHY_UPSTREAM)
