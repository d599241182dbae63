"""The sandbox's OCI registry: `GET/HEAD /v2/<name>/manifests/<tag|digest>` for the images it knows."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.images import MANIFEST_TYPE, image_manifest, manifest_digest

_API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def build_registry_app(behaviors: BehaviorBook) -> Starlette:
    """The registry's HTTP API over the images `behaviors` knows (the scenario's and those pushed at run time)."""

    async def base(request: Request) -> Response:
        return JSONResponse({}, headers=_API_HEADER)

    async def manifest(request: Request) -> Response:
        name, reference = request.path_params["name"], request.path_params["reference"]
        known = behaviors.image_by_reference(name, reference)
        if known is None:
            code = "MANIFEST_UNKNOWN" if behaviors.knows_repository(name) else "NAME_UNKNOWN"
            body = {"errors": [{"code": code, "message": "manifest unknown", "detail": {"name": name, "reference": reference}}]}
            return JSONResponse(body, status_code=404, headers=_API_HEADER)
        body = image_manifest(*known)
        headers = {**_API_HEADER, "Docker-Content-Digest": manifest_digest(*known), "Content-Type": MANIFEST_TYPE}
        if request.method == "HEAD":
            return Response(status_code=200, headers={**headers, "Content-Length": str(len(body))})
        return Response(body, headers=headers)

    return Starlette(
        routes=[
            Route("/v2/", base, methods=["GET"]),
            Route("/v2/{name:path}/manifests/{reference}", manifest, methods=["GET", "HEAD"]),
        ]
    )
