"""The sandbox's control endpoint: inject faults, push images, steer the load, expose telemetry and the
API server's request log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from delivery.policy.models import Percent, Strict
from delivery.sandbox.apiserver import ApiFaults, ApiRefusal, RequestLog
from delivery.sandbox.argocd import AdjustableClock
from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.telemetry import EXPOSITION_CONTENT_TYPE


class VersionFault(Strict):
    """A run-time change to how one tag behaves."""

    error_rate_percent: Percent | None = None
    latency_p50_ms: float | None = Field(default=None, gt=0)
    latency_p95_ms: float | None = Field(default=None, gt=0)
    db_healthy: bool | None = None
    becomes_ready: bool | None = None
    cpu_millicores: float | None = Field(default=None, gt=0)
    memory_mib: float | None = Field(default=None, gt=0)
    memory_growth_mib_per_second: float | None = Field(default=None, ge=0)  # a leak's speed, tunable at run time


class RefusalRequest(Strict):
    """Refuse one verb on one object (`PATCH services user-service` answered 403), as RBAC or a webhook would."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    plural: str = Field(min_length=1)
    name: str = Field(min_length=1)
    status: int = Field(default=403, ge=400, le=599)
    times: int | None = Field(default=None, ge=1, description="refuse only the next N such requests")


class FaultRequest(Strict):
    """`PATCH /faults`: only the fields given change (`refusals` replaces the list)."""

    api_error_percent: Percent | None = None
    api_throttle_percent: Percent | None = None
    api_latency_ms: float | None = Field(default=None, ge=0)
    prometheus_down: bool | None = None
    refusals: list[RefusalRequest] | None = None
    versions: dict[str, VersionFault] = Field(default={}, description="by tag (`v1.2.0`) or repository and tag (`ai-service:v1.2.0`)")


class ImagePush(Strict):
    repository: str = Field(min_length=1)
    tag: str = Field(min_length=1, pattern=r"^[\w][\w.-]{0,127}$")


class LoadRequest(Strict):
    requests_per_second: float = Field(ge=0, le=2000)


REQUEST_FILTERS = ("method", "plural", "name")
"""The query parameters `GET /requests` filters by."""


@dataclass
class Faults(ApiFaults):
    """Every fault the sandbox injects: the API server's, Prometheus being down, and per-version changes."""

    prometheus_down: bool = False
    versions: dict[str, dict] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "api_error_percent": self.api_error_rate * 100,
            "api_throttle_percent": self.api_throttle_rate * 100,
            "api_latency_ms": self.api_latency_ms,
            "prometheus_down": self.prometheus_down,
            "refusals": [asdict(r) for r in self.refusals],
            "versions": self.versions,
        }


class ClockRequest(Strict):
    at: datetime  # where the sandbox ArgoCD's clock jumps to (time flows on from there)


def build_control_app(
    faults: Faults,
    behaviors: BehaviorBook,
    render_metrics: Callable[[], bytes],
    set_load: Callable[[float], None],
    requests: RequestLog,
    argocd_clock: AdjustableClock | None = None,
) -> Starlette:
    """The control API; the API server, gateway and Prometheus API read the same `faults` object, and
    the API server writes the `requests` log. `PUT /argocd/clock` moves the ArgoCD controller's clock (sync windows)."""

    async def get_faults(request: Request) -> Response:
        return JSONResponse(faults.as_json())

    async def patch_faults(request: Request) -> Response:
        change = await _parse(request, FaultRequest)
        if isinstance(change, Response):
            return change
        if change.api_error_percent is not None:
            faults.api_error_rate = change.api_error_percent / 100
        if change.api_throttle_percent is not None:
            faults.api_throttle_rate = change.api_throttle_percent / 100
        if change.api_latency_ms is not None:
            faults.api_latency_ms = change.api_latency_ms
        if change.prometheus_down is not None:
            faults.prometheus_down = change.prometheus_down
        if change.refusals is not None:
            faults.refusals = [ApiRefusal(**r.model_dump()) for r in change.refusals]
        for tag, fault in change.versions.items():
            fields = fault.model_dump(exclude_none=True)
            if "error_rate_percent" in fields:
                fields["error_rate"] = fields.pop("error_rate_percent") / 100
            behaviors.override(tag, **fields)
            faults.versions.setdefault(tag, {}).update(fault.model_dump(exclude_none=True))
        return JSONResponse(faults.as_json())

    async def clear_faults(request: Request) -> Response:
        faults.api_error_rate = faults.api_throttle_rate = faults.api_latency_ms = 0.0
        faults.prometheus_down = False
        faults.refusals = []
        faults.versions.clear()
        behaviors.clear_overrides()
        return JSONResponse(faults.as_json())

    async def push_image(request: Request) -> Response:
        push = await _parse(request, ImagePush)
        if isinstance(push, Response):
            return push
        digest = behaviors.know(push.repository, push.tag)
        return JSONResponse({"repository": push.repository, "tag": push.tag, "digest": digest}, status_code=201)

    async def put_load(request: Request) -> Response:
        load = await _parse(request, LoadRequest)
        if isinstance(load, Response):
            return load
        set_load(load.requests_per_second)
        return JSONResponse(load.model_dump())

    async def get_requests(request: Request) -> Response:
        unknown = sorted(set(request.query_params) - set(REQUEST_FILTERS))
        if unknown:
            problems = [f"{name}: not a filter (filters: {', '.join(REQUEST_FILTERS)})" for name in unknown]
            return JSONResponse({"error": "invalid request", "problems": problems}, status_code=400)
        matching = requests.matching(**{k: request.query_params[k] for k in REQUEST_FILTERS if k in request.query_params})
        return JSONResponse({"requests": [e.as_json() for e in matching], "dropped": requests.dropped})

    async def clear_requests(request: Request) -> Response:
        requests.clear()
        return Response(status_code=204)

    async def metrics(request: Request) -> Response:
        return Response(render_metrics(), media_type=EXPOSITION_CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def put_argocd_clock(request: Request) -> Response:
        change = await _parse(request, ClockRequest)
        if isinstance(change, Response):
            return change
        if argocd_clock is None:
            return JSONResponse({"error": "this sandbox's ArgoCD clock is the wall clock"}, status_code=409)
        argocd_clock.jump_to(change.at)
        return JSONResponse({"now": argocd_clock().isoformat()})

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/faults", get_faults, methods=["GET"]),
            Route("/faults", patch_faults, methods=["PATCH"]),
            Route("/faults", clear_faults, methods=["DELETE"]),
            Route("/images", push_image, methods=["POST"]),
            Route("/load", put_load, methods=["PUT"]),
            Route("/requests", get_requests, methods=["GET"]),
            Route("/requests", clear_requests, methods=["DELETE"]),
            Route("/argocd/clock", put_argocd_clock, methods=["PUT"]),
        ]
    )


async def _parse(request: Request, model: type[Strict]) -> Strict | Response:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as err:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors()]
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=400)
