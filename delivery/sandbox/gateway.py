"""The sandbox's ingress gateway: routes each request the way the cluster says (see `traffic`) and
answers as the chosen pod's version behaves, recording the request in the telemetry.

Telemetry records each request's simulated service time (the latency drawn from the version's
behavior, which the handler really waits), so verdicts do not depend on the sandbox's own CPU load.
`GET /metrics` on the gateway is the scrape endpoint of every simulated sidecar and application (like
Envoy's merged stats); it is never routed to a service. `GET /actuator/metrics[/<name>]` is answered by the routed
pod's application (delivery/sandbox/actuator.py) and not counted.

With a `ProductionDatabase` (the sandbox's TRIPGEN_SANDBOX_DATABASE_URL), a production pod whose version's tables
and columns are not all in PostgreSQL's schema (or that cannot reach it) fails its database health check and its API.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from delivery.sandbox.actuator import PREFIX as ACTUATOR_PREFIX
from delivery.sandbox.actuator import ActuatorMetrics
from delivery.sandbox.behavior import BehaviorBook, VersionBehavior
from delivery.sandbox.database import UNREACHABLE, ProductionDatabase
from delivery.sandbox.telemetry import EXPOSITION_CONTENT_TYPE, UNKNOWN, Telemetry
from delivery.sandbox.traffic import (
    NamespaceObjects,
    NoRoute,
    Upstream,
    host_name,
    pod_address,
    pod_upstream,
    resolve_target,
    route_request,
)

Z_95 = 1.6448536269514722  # the standard normal's 95th percentile
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
COLLECTIONS: dict[str, list[dict]] = {
    "/api/trips": [
        {"id": "trip-1001", "destination": "Jeju", "days": 3},
        {"id": "trip-1002", "destination": "Busan", "days": 2},
    ],
    "/api/users": [{"id": "user-1", "name": "Minji"}, {"id": "user-2", "name": "Joon"}],
    "/api/ai/itineraries": [{"id": "itinerary-1", "trip": "trip-1001", "confidence": 0.82}],
    "/api/locations": [{"id": "loc-1", "name": "Seongsan Ilchulbong"}, {"id": "loc-2", "name": "Haeundae"}],
}


class ObjectStore(Protocol):
    def list_objects(self, resource: str, namespace: str | None) -> list[dict]: ...


def build_gateway_app(
    store: ObjectStore, behaviors: BehaviorBook, telemetry: Telemetry, rng: random.Random | None = None,
    database: ProductionDatabase | None = None,
) -> Starlette:
    """The gateway ASGI app over `store`'s objects; `rng` draws routes, errors and latencies; without `database`
    every pod's database health is its behavior's `db_healthy`."""
    gateway = _Gateway(store, behaviors, telemetry, rng or random.Random(), database)
    return Starlette(
        routes=[
            Route("/metrics", gateway.metrics, methods=["GET"]),
            Route("/{path:path}", gateway.serve, methods=METHODS),
        ]
    )


class _Gateway:
    def __init__(self, store: ObjectStore, behaviors: BehaviorBook, telemetry: Telemetry, rng: random.Random,
                 database: ProductionDatabase | None) -> None:
        self.store, self.behaviors, self.telemetry, self.rng, self.database = store, behaviors, telemetry, rng, database
        self.actuator = ActuatorMetrics(behaviors, telemetry)

    async def metrics(self, request: Request) -> Response:
        return Response(self.telemetry.exposition(), media_type=EXPOSITION_CONTENT_TYPE)

    async def serve(self, request: Request) -> Response:
        routed = self._route(request)
        if isinstance(routed, NoRoute):
            return PlainTextResponse(routed.reason, routed.status)
        upstream, path = routed
        image = container_image(upstream.pod)
        meta = upstream.pod.get("metadata", {})
        headers = {
            "x-tripgen-pod": meta.get("name", ""),
            "x-tripgen-version": (meta.get("labels") or {}).get("version", UNKNOWN),
            "x-tripgen-image": image,
        }
        problem = self._database_problem(upstream, image)
        if path.startswith(ACTUATOR_PREFIX) and request.method == "GET":  # not counted in the telemetry
            status, body = self.actuator.answer(path, request.query_params.getlist("tag"), upstream.pod, problem)
            return JSONResponse(body, status, headers=headers)
        behavior = self.behaviors.for_image(image, upstream.namespace, host_name(request.headers.get("host", "")))
        latency = latency_seconds(behavior, self.rng)
        await asyncio.sleep(latency)
        status, body, uri = simulate_app(request.method, path, behavior, self.rng, problem)
        self.telemetry.record_request(upstream.pod, upstream.service, request.method, uri, status, latency)
        return JSONResponse(body, status, headers=headers)

    def _route(self, request: Request) -> tuple[Upstream, str] | NoRoute:
        """The pod that answers the request and the path it sees: one pod by its address, else as routed."""
        host = request.headers.get("host", "")
        addressed = pod_address(host, request.url.path)
        if addressed is not None:
            namespace, pod, path = addressed
            upstream = pod_upstream(self.store.list_objects("pods", namespace), namespace, pod)
            return upstream if isinstance(upstream, NoRoute) else (upstream, path)
        target = resolve_target(host, request.url.path, self.store.list_objects("ingresses", None))
        if isinstance(target, NoRoute):
            return target
        upstream = route_request(target, request.headers, self._namespace_objects(target.namespace), self.rng)
        return upstream if isinstance(upstream, NoRoute) else (upstream, target.path)

    def _database_problem(self, upstream: Upstream, image: str) -> str | None:
        if self.database is None:
            return None
        app = ((upstream.pod.get("metadata") or {}).get("labels") or {}).get("app", upstream.service)
        return self.database.problem(upstream.namespace, app, self.behaviors.tag_of(image) or "latest")

    def _namespace_objects(self, namespace: str) -> NamespaceObjects:
        return NamespaceObjects(
            services=self.store.list_objects("services", namespace),
            pods=self.store.list_objects("pods", namespace),
            virtualservices=self.store.list_objects("virtualservices", namespace),
            destinationrules=self.store.list_objects("destinationrules", namespace),
        )


def container_image(pod: dict) -> str:
    """The image of the pod's first container."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return containers[0].get("image", "")


def latency_seconds(behavior: VersionBehavior, rng: random.Random) -> float:
    """A response time drawn from the lognormal distribution with the behavior's p50 and p95."""
    p50, p95 = behavior.latency_p50_ms, max(behavior.latency_p95_ms, behavior.latency_p50_ms)
    if p50 <= 0:
        return 0.0
    return rng.lognormvariate(math.log(p50), math.log(p95 / p50) / Z_95) / 1000.0


def simulate_app(method: str, path: str, behavior: VersionBehavior, rng: random.Random,
                 db_problem: str | None = None) -> tuple[int, object, str]:
    """(status, JSON body, Micrometer `uri` tag) of a Spring Boot service running `behavior`.

    A `behavior.error_rate` share of requests fails: health answers DOWN with 503, the API 500. With a `db_problem`
    (`missing trips.x`) the database health check answers it with 503 and the API 500; liveness stays UP.
    """
    failed = rng.random() < behavior.error_rate
    if path == "/actuator/health/db":
        if db_problem or failed or not behavior.db_healthy:
            return 503, {"status": "DOWN", "details": {"error": db_problem or UNREACHABLE}}, path
        return 200, {"status": "UP", "details": {"database": "PostgreSQL"}}, path
    if path == "/actuator/health" or _is_api_health(path):
        return (503, {"status": "DOWN"}, path) if failed else (200, {"status": "UP"}, path)
    collection = path.rstrip("/")
    if collection in COLLECTIONS:
        if method not in ("GET", "HEAD"):
            return 405, _spring_error(405, "Method Not Allowed", path), collection
        if failed or db_problem:
            return 500, _spring_error(500, "Internal Server Error", path), collection
        return 200, COLLECTIONS[collection], collection
    return 404, _spring_error(404, "Not Found", path), "NOT_FOUND"


def _is_api_health(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 4 and parts[1] == "api" and bool(parts[2]) and parts[3] == "health"


def _spring_error(status: int, error: str, path: str) -> dict:
    return {"status": status, "error": error, "path": path}
