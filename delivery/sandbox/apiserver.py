"""The sandbox's Kubernetes API server: a Starlette app speaking the real REST API over
the object store (discovery, OpenAPI, CRUD, patch, watch, Tables, subresources), so the
official client and kubectl work against it unchanged."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from delivery.sandbox import resources
from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.metrics_api import ResourceMetrics
from delivery.sandbox.patching import APPLY, decode_applied, patch_object
from delivery.sandbox.resources import ResourceType, selector_text
from delivery.sandbox.selectors import parse_field_selector, parse_label_selector
from delivery.sandbox.store import ApiError, ObjectStore, StoreEvent, bad_request, not_found

log = logging.getLogger(__name__)

BOOKMARK_INTERVAL_SECONDS = 5.0
LOG_FOLLOW_POLL_SECONDS = 0.2


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


@dataclass
class ApiFaults:
    """Faults injected into resource requests (never discovery); change them at run time."""

    api_error_rate: float = 0.0  # fraction answered 500 InternalError
    api_throttle_rate: float = 0.0  # fraction answered 429 TooManyRequests with Retry-After: 1
    api_latency_ms: float = 0.0  # delay added to every resource request
    refusals: list[ApiRefusal] = field(default_factory=list)  # requests to one object refused with a status


@dataclass
class ApiRefusal:
    """Requests of `method` on `plural`/`name` answered `status` (403: as RBAC refuses them), nothing changed;
    the next `times` such requests only, when given."""

    method: str
    plural: str
    name: str
    status: int = 403
    times: int | None = None

    def refuses(self, method: str, target: Target) -> bool:
        return method == self.method.upper() and target.rtype.plural == self.plural and target.name == self.name


@dataclass(frozen=True)
class LoggedRequest:
    """One resource request as the API server answered it."""

    time: str  # when it arrived, ISO 8601 UTC
    method: str
    path: str
    namespace: str | None  # namespace, plural, name, subresource: None where the URL names none (or no resource)
    plural: str | None
    name: str | None
    subresource: str | None
    status: int
    fault: bool  # refused by an injected fault, before the request could change anything
    changed: tuple[str, ...] = ()  # a write's changed fields, as JSON pointers ("" for a created or deleted object)

    def as_json(self) -> dict:
        return asdict(self)


UNTRACKED = {"/metadata/resourceVersion", "/metadata/generation", "/metadata/managedFields", "/status"}


def changed_fields(before: dict | None, after: dict | None, at: str = "") -> tuple[str, ...]:
    """JSON pointers of the fields that differ (bookkeeping and status left out); a list that changed length is one field."""
    if at in UNTRACKED or before == after:
        return ()
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return tuple(p for k in keys for p in changed_fields(before.get(k), after.get(k), f"{at}/{_escape(k)}"))
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return tuple(p for i, (b, a) in enumerate(zip(before, after)) for p in changed_fields(b, a, f"{at}/{i}"))
    return (at,)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class RequestLog:
    """The last `capacity` resource requests (never discovery or OpenAPI), oldest first."""

    def __init__(self, capacity: int = 20000) -> None:
        self.entries: deque[LoggedRequest] = deque(maxlen=capacity)
        self.dropped = 0  # entries pushed out by newer ones since the last clear

    def record(self, entry: LoggedRequest) -> None:
        if len(self.entries) == self.entries.maxlen:
            self.dropped += 1
        self.entries.append(entry)

    def matching(self, method: str | None = None, plural: str | None = None,
                 name: str | None = None) -> list[LoggedRequest]:
        """The entries with this method (any case), plural and name; None matches any."""
        method = method.upper() if method else None
        return [e for e in self.entries
                if method in (None, e.method) and plural in (None, e.plural) and name in (None, e.name)]

    def clear(self) -> None:
        self.entries.clear()
        self.dropped = 0


@dataclass(frozen=True)
class Target:
    """What a resource URL names: a collection, an object, or an object's subresource."""

    rtype: ResourceType
    version: str
    namespace: str | None
    name: str | None = None
    subresource: str | None = None


_UNREAD = object()  # a request that writes no single object: nothing to compare
WRITES = {"PUT", "PATCH", "DELETE"}


@dataclass
class _Seen:
    """What handling one request learnt, for its log entry."""

    resource: bool = False  # past discovery and OpenAPI
    target: Target | None = None
    fault: bool = False
    before: dict | None | object = _UNREAD  # the object a write found (None: it did not exist)
    changed: tuple[str, ...] = ()


def build_api_app(store: ObjectStore, faults: ApiFaults | None = None,
                  requests: RequestLog | None = None, behaviors: BehaviorBook | None = None) -> Starlette:
    """The ASGI app serving the Kubernetes API of `store` (serve it with uvicorn); it logs resource
    requests to `requests`; metrics.k8s.io reports what the pods' versions in `behaviors` use."""
    metrics = ResourceMetrics(store, behaviors or BehaviorBook())
    api = KubernetesApi(store, faults or ApiFaults(), RequestLog() if requests is None else requests, metrics)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", api.handle, methods=methods)])


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json",
                    headers=headers)


def _error(error: ApiError) -> Response:
    return _json(error.status(), error.code, error.headers)


def _flag(value: str | None) -> bool:
    return value in ("true", "1", "True")


def _integer(query: dict, name: str) -> int | None:
    text = query.get(name)
    if text in (None, ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"{name}: {text!r} is not an integer") from None


class KubernetesApi:
    """Request handling: routes a URL to discovery, OpenAPI or a resource verb."""

    def __init__(self, store: ObjectStore, faults: ApiFaults, requests: RequestLog, metrics: ResourceMetrics) -> None:
        self.store, self.faults, self.requests, self.metrics = store, faults, requests, metrics
        self.registry = store.registry

    async def handle(self, request: Request) -> Response:
        arrived, seen = datetime.now(timezone.utc), _Seen()
        try:
            response = await self._dispatch(request, seen)
            seen.changed = self._changed(seen, response.status_code)
        except ApiError as error:
            response = _error(error)
        except Exception as error:  # a bug must still answer with a Status, never a traceback
            log.exception("sandbox API request %s %s failed", request.method, request.url.path)
            response = _error(ApiError(500, "InternalError", f"Internal error occurred: {error}"))
        if seen.resource:
            self.requests.record(_logged(request, arrived, seen, response.status_code))
        return response

    def _changed(self, seen: _Seen, status: int) -> tuple[str, ...]:
        """What a successful write to one object changed (read back from the store)."""
        target = seen.target
        if seen.before is _UNREAD or target is None or not 200 <= status < 300:
            return ()
        after = self.store.get_object(target.rtype.plural, target.namespace, target.name or "")
        if seen.before is None or after is None:
            return ("",)
        return changed_fields(seen.before, after)

    async def _dispatch(self, request: Request, seen: _Seen) -> Response:
        segments = [s for s in request.url.path.split("/") if s]
        if request.method == "GET":
            static = self._static(segments, request.headers.get("accept", ""))
            if static is not None:
                return static
        seen.resource = True
        target = seen.target = self._target(segments, request.method)
        if request.method in WRITES and target.name is not None and target.subresource in (None, "scale"):
            seen.before = self.store.get_object(target.rtype.plural, target.namespace, target.name)
        try:
            await self._inject_faults(request.method, target)
        except ApiError:
            seen.fault = True
            raise
        if not target.rtype.stored:
            return self._resource_metrics(target, request)
        if target.subresource == "log":
            return await self._pod_log(target, request)
        if target.subresource == "scale":
            return await self._scale(target, request)
        handler = self._collection_verbs if target.name is None else self._object_verbs
        verb = handler.get(request.method)
        if verb is None:
            raise method_not_allowed()
        return await verb(self, target, request)

    # --- discovery, version, OpenAPI ---------------------------------------------------------

    def _static(self, segments: list[str], accept: str) -> Response | None:
        match segments:
            case []:
                return _json({"paths": ["/api", "/api/v1", "/apis", "/openapi/v2", "/openapi/v3", "/version", "/healthz"]})
            case ["healthz" | "livez" | "readyz"]:
                return PlainTextResponse("ok")
            case ["version"]:
                return _json(resources.SERVER_VERSION)
            case ["api"]:
                return _json(resources.api_versions())
            case ["api", version]:
                return self._found(resources.api_resource_list(self.registry, "", version))
            case ["apis"]:
                return _json(resources.api_group_list(self.registry))
            case ["apis", group]:
                return self._found(resources.api_group(self.registry, group))
            case ["apis", group, version]:
                return self._found(resources.api_resource_list(self.registry, group, version))
            case ["openapi", "v2"]:
                if "protobuf" in accept:
                    return Response(resources.OPENAPI_V2_PROTOBUF, media_type=resources.OPENAPI_V2_PROTOBUF_TYPE)
                return _json(resources.OPENAPI_V2_JSON)
            case ["openapi", "v3"]:
                return _json(resources.openapi_v3_index(self.registry))
            case ["openapi", "v3", "api", version]:
                return self._found(resources.openapi_v3_document(self.registry, "", version))
            case ["openapi", "v3", "apis", group, version]:
                return self._found(resources.openapi_v3_document(self.registry, group, version))
        return None

    @staticmethod
    def _found(document: dict | None) -> Response:
        if document is None:
            raise path_not_found()
        return _json(document)

    def _target(self, segments: list[str], method: str) -> Target:
        if segments[:1] == ["api"] and len(segments) >= 3:
            group, version, rest = "", segments[1], segments[2:]
        elif segments[:1] == ["apis"] and len(segments) >= 4:
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise path_not_found()
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            inner = self.registry.lookup(group, version, rest[2])
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise path_not_found()
        rtype = self.registry.lookup(group, version, rest[0])
        if rtype is None:
            raise path_not_found()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and subresource not in rtype.subresources:
            raise path_not_found()
        if rtype.namespaced and namespace is None and (name is not None or method != "GET"):
            raise path_not_found() if name is not None else method_not_allowed()
        return Target(rtype, version, namespace, name, subresource)

    async def _inject_faults(self, method: str, target: Target) -> None:
        refusal = next((r for r in self.faults.refusals if r.refuses(method, target) and r.times != 0), None)
        if refusal is not None:
            if refusal.times is not None:
                refusal.times -= 1
            reason = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid"}.get(refusal.status, "BadRequest")
            raise ApiError(refusal.status, reason, f"{target.rtype.plural} \"{target.name}\" is refused: injected fault")
        if self.faults.api_latency_ms > 0:
            await asyncio.sleep(self.faults.api_latency_ms / 1000)
        if random.random() < self.faults.api_throttle_rate:
            raise ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                           {"retryAfterSeconds": 1}, {"Retry-After": "1"})
        if random.random() < self.faults.api_error_rate:
            raise ApiError(500, "InternalError", "Internal error occurred: injected fault",
                           {"causes": [{"message": "injected fault"}]})

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _served(target: Target, obj: dict) -> dict:
        """`obj` as seen through the requested version (custom resources serve several)."""
        api_version = target.rtype.api_version(target.version)
        return obj if obj.get("apiVersion") == api_version else {**obj, "apiVersion": api_version}

    def _existing(self, target: Target) -> dict:
        obj = self.store.get_object(target.rtype.plural, target.namespace, target.name or "")
        if obj is None:
            raise not_found(target.rtype, target.name or "")
        return obj

    @staticmethod
    async def _body(request: Request) -> object:
        raw = await request.body()
        if not raw.strip():
            return None
        content_type = request.headers.get("content-type", "application/json")
        try:
            if "yaml" in content_type:
                return yaml.safe_load(raw.decode())
            if "protobuf" in content_type or "cbor" in content_type:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                            f"accepted media types include: application/json, "
                                                            f"application/yaml (not {content_type})")
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as error:
            raise bad_request(f"the request body is not valid JSON or YAML: {error}") from None

    async def _object_body(self, target: Target, request: Request) -> dict:
        body = await self._body(request)
        if not isinstance(body, dict) or not isinstance(body.setdefault("metadata", {}), dict):
            raise bad_request("the request body must be a JSON object with a metadata object")
        if body.get("kind") not in (None, "", target.rtype.kind):
            raise bad_request(f"the kind in the request body ({body['kind']}) does not match the resource "
                              f"({target.rtype.kind})")
        self._claim(target, body)
        return body

    @staticmethod
    def _claim(target: Target, body: dict) -> None:
        """Check the body's name and namespace against the URL and fill them in."""
        meta = body["metadata"]
        if target.rtype.namespaced:
            if meta.get("namespace") not in (None, "", target.namespace):
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            meta["namespace"] = target.namespace
        if target.name is not None:
            if meta.get("name") not in (None, "", target.name):
                raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                  f"({target.name})")
            meta["name"] = target.name

    @staticmethod
    def _dry_run(request: Request, options: dict | None = None) -> bool:
        values = request.query_params.getlist("dryRun") + list((options or {}).get("dryRun") or [])
        if any(v != "All" for v in values):
            raise bad_request(f"dryRun: Unsupported value: {values}: supported values: \"All\"")
        return bool(values)

    @staticmethod
    def _selected(query: dict) -> Callable[[dict], bool]:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        return lambda obj: labels.matches_object(obj) and fields(obj)

    @staticmethod
    def _wants_table(request: Request) -> bool:
        return "as=Table" in request.headers.get("accept", "")

    def _table(self, target: Target, objects: list[dict], request: Request, resource_version: str) -> dict:
        include = request.query_params.get("includeObject") or "Metadata"
        served = [self._served(target, o) for o in objects]
        return resources.table(target.rtype, served, resource_version, include)

    # --- collection verbs --------------------------------------------------------------------

    async def _list(self, target: Target, request: Request) -> Response:
        query = request.query_params
        if _flag(query.get("watch")):
            return await self._watch(target, request)
        selected = self._selected(query)
        items = sorted((o for o in self.store.list_objects(target.rtype.plural, target.namespace) if selected(o)),
                       key=_sort_key)
        resource_version, metadata = str(self.store.revision), {}
        if query.get("continue"):
            resource_version, after = _decode_continue(query["continue"])
            items = [o for o in items if _sort_key(o) > after]
        limit = _integer(query, "limit")
        if limit and len(items) > limit:
            metadata = {"continue": _encode_continue(resource_version, _sort_key(items[limit - 1])),
                        "remainingItemCount": len(items) - limit}
            items = items[:limit]
        if self._wants_table(request):
            page = self._table(target, items, request, resource_version)
            page["metadata"].update(metadata)
            return _json(page)
        return _json({"kind": f"{target.rtype.kind}List", "apiVersion": target.rtype.api_version(target.version),
                      "metadata": {"resourceVersion": resource_version, **metadata},
                      "items": [self._served(target, o) for o in items]})

    async def _create(self, target: Target, request: Request) -> Response:
        body = await self._object_body(target, request)
        created = self.store.create(target.rtype.plural, body, dry_run=self._dry_run(request))
        return _json(self._served(target, created), 201)

    async def _delete_collection(self, target: Target, request: Request) -> Response:
        selected = self._selected(request.query_params)
        dry_run = self._dry_run(request)
        deleted = []
        for obj in self.store.list_objects(target.rtype.plural, target.namespace):
            if selected(obj):
                meta = obj["metadata"]
                deleted.append(self.store.delete(target.rtype.plural, meta.get("namespace"), meta["name"],
                                                 dry_run=dry_run))
        return _json({"kind": f"{target.rtype.kind}List", "apiVersion": target.rtype.api_version(target.version),
                      "metadata": {"resourceVersion": str(self.store.revision)},
                      "items": [self._served(target, o) for o in deleted]})

    # --- object verbs ------------------------------------------------------------------------

    async def _get(self, target: Target, request: Request) -> Response:
        obj = self._existing(target)
        if self._wants_table(request):
            return _json(self._table(target, [obj], request, obj["metadata"]["resourceVersion"]))
        return _json(self._served(target, obj))

    async def _replace(self, target: Target, request: Request) -> Response:
        body = await self._object_body(target, request)
        updated = self.store.update(target.rtype.plural, body, subresource=target.subresource,
                                    dry_run=self._dry_run(request))
        return _json(self._served(target, updated))

    async def _patch(self, target: Target, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        raw = await request.body()
        dry_run = self._dry_run(request)
        if content_type == APPLY and not request.query_params.get("fieldManager"):
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                                           "is required for apply patch")
        current = self.store.get_object(target.rtype.plural, target.namespace, target.name or "")
        if current is None:
            if content_type != APPLY:
                raise not_found(target.rtype, target.name or "")
            applied = decode_applied(raw)
            if not isinstance(applied.setdefault("metadata", {}), dict):
                raise bad_request("the applied configuration must have a metadata object")
            self._claim(target, applied)
            created = self.store.create(target.rtype.plural, applied, dry_run=dry_run)
            return _json(self._served(target, created), 201)
        patched = patch_object(target.rtype, self._served(target, current), raw, content_type)
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise ApiError(422, "Invalid", "the patched object must be an object with a metadata object")
        self._claim(target, patched)
        updated = self.store.update(target.rtype.plural, patched, subresource=target.subresource, dry_run=dry_run)
        return _json(self._served(target, updated))

    async def _delete(self, target: Target, request: Request) -> Response:
        if target.subresource is not None:
            raise method_not_allowed()
        options = await self._body(request) or {}
        if not isinstance(options, dict):
            raise bad_request("the request body must be DeleteOptions")
        query = request.query_params
        orphan = _flag(query.get("orphanDependents")) or options.get("orphanDependents") is True
        propagation = query.get("propagationPolicy") or options.get("propagationPolicy") or (
            "Orphan" if orphan else "Background")
        preconditions = options.get("preconditions") or {}
        deleted = self.store.delete(target.rtype.plural, target.namespace, target.name or "",
                                    propagation=propagation, precondition_uid=preconditions.get("uid"),
                                    precondition_version=preconditions.get("resourceVersion"),
                                    dry_run=self._dry_run(request, options))
        if target.rtype.returns_deleted_object:
            return _json(self._served(target, deleted))
        meta = deleted["metadata"]
        details = {"name": meta["name"], "group": target.rtype.group, "kind": target.rtype.plural, "uid": meta["uid"]}
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                      "details": {k: v for k, v in details.items() if v}})

    _collection_verbs = {"GET": _list, "POST": _create, "DELETE": _delete_collection}
    _object_verbs = {"GET": _get, "PUT": _replace, "PATCH": _patch, "DELETE": _delete}

    # --- watch -------------------------------------------------------------------------------

    async def _watch(self, target: Target, request: Request) -> Response:
        query = request.query_params
        selected = self._selected(query)
        explicit_initial = _flag(query.get("sendInitialEvents"))
        since = None if query.get("resourceVersion") in (None, "", "0") else _integer(query, "resourceVersion")
        send_initial = explicit_initial or since is None
        timeout = _integer(query, "timeoutSeconds")
        bookmarks = _flag(query.get("allowWatchBookmarks"))
        encode = self._event_encoder(target, request)
        try:
            subscription = self.store.watch(target.rtype.plural, target.namespace, None if send_initial else since)
        except ApiError as error:
            if error.code != 410:
                raise
            return StreamingResponse(_once(encode("ERROR", error.status())), media_type="application/json")
        initial = [o for o in self.store.list_objects(target.rtype.plural, target.namespace)
                   if send_initial and selected(o)]
        deadline = None if timeout is None else time.monotonic() + timeout

        async def stream() -> AsyncIterator[bytes]:
            try:
                for obj in sorted(initial, key=_sort_key):
                    yield encode("ADDED", obj)
                if explicit_initial:
                    yield encode("BOOKMARK", self._bookmark(target, initial_events_end=True))
                while True:
                    wait = None if deadline is None else deadline - time.monotonic()
                    if wait is not None and wait <= 0:
                        return
                    if bookmarks:
                        wait = BOOKMARK_INTERVAL_SECONDS if wait is None else min(wait, BOOKMARK_INTERVAL_SECONDS)
                    try:
                        event = await asyncio.wait_for(subscription.queue.get(), wait)
                    except TimeoutError:
                        if bookmarks and (deadline is None or time.monotonic() < deadline):
                            yield encode("BOOKMARK", self._bookmark(target))
                        continue
                    if event is None:
                        return
                    change = _visible_change(event, selected)
                    if change is not None:
                        yield encode(*change)
            finally:
                subscription.close()

        return StreamingResponse(stream(), media_type="application/json")

    def _event_encoder(self, target: Target, request: Request) -> Callable[[str, dict], bytes]:
        as_table = self._wants_table(request)

        def encode(kind: str, obj: dict) -> bytes:
            if kind in ("ERROR", "BOOKMARK"):
                shown = obj
            elif as_table:
                shown = self._table(target, [obj], request, obj["metadata"]["resourceVersion"])
            else:
                shown = self._served(target, obj)
            return (json.dumps({"type": kind, "object": shown}, separators=(",", ":")) + "\n").encode()

        return encode

    def _bookmark(self, target: Target, initial_events_end: bool = False) -> dict:
        metadata: dict = {"resourceVersion": str(self.store.revision)}
        if initial_events_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": target.rtype.kind, "apiVersion": target.rtype.api_version(target.version),
                "metadata": metadata}

    # --- metrics.k8s.io ----------------------------------------------------------------------

    def _resource_metrics(self, target: Target, request: Request) -> Response:
        """GET PodMetrics or NodeMetrics, one or a list (label and field selectors, Tables), as metrics-server."""
        if request.method != "GET" or _flag(request.query_params.get("watch")):
            raise method_not_allowed()
        selected = self._selected(request.query_params)
        items = [o for o in self.metrics.of_kind(target.rtype.kind, target.namespace) if selected(o)]
        if target.name is not None:
            items = [o for o in items if o["metadata"]["name"] == target.name]
            if not items:
                shown = f"{target.namespace}/{target.name}" if target.namespace else target.name
                raise ApiError(404, "NotFound", f'{target.rtype.kind.lower()}.metrics.k8s.io "{shown}" not found',
                               {"name": target.name, "group": "metrics.k8s.io", "kind": target.rtype.plural})
        items.sort(key=_sort_key)
        if self._wants_table(request):
            return _json(self._table(target, items, request, ""))
        if target.name is not None:
            return _json(items[0])
        return _json({"kind": f"{target.rtype.kind}List", "apiVersion": target.rtype.api_version(target.version),
                      "metadata": {}, "items": items})

    # --- subresources ------------------------------------------------------------------------

    async def _scale(self, target: Target, request: Request) -> Response:
        """Read or set replicas; the object is read after the body arrives, so a controller's update meanwhile
        cannot turn a request without a resourceVersion into a conflict (the API server retries those too)."""
        if request.method == "GET":
            return _json(_scale_of(self._existing(target)))
        if request.method == "PUT":
            scale = await self._body(request)
            obj = self._existing(target)
        elif request.method == "PATCH":
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            body = await request.body()
            obj = self._existing(target)
            scale = patch_object(target.rtype, _scale_of(obj), body, content_type)
        else:
            raise method_not_allowed()
        replicas = scale.get("spec", {}).get("replicas") if isinstance(scale, dict) else None
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{target.name}" is invalid: spec.replicas: '
                                           f"Invalid value: {json.dumps(replicas)}: must be greater than or equal "
                                           "to 0")
        expected = (scale.get("metadata") or {}).get("resourceVersion") or obj["metadata"]["resourceVersion"]
        updated = self.store.update(target.rtype.plural, {
            **obj, "metadata": {**obj["metadata"], "resourceVersion": expected},
            "spec": {**obj.get("spec", {}), "replicas": replicas}}, dry_run=self._dry_run(request))
        return _json(_scale_of(updated))

    async def _pod_log(self, target: Target, request: Request) -> Response:
        if request.method != "GET":
            raise method_not_allowed()
        pod = self._existing(target)
        query = request.query_params
        names = [c.get("name") for c in pod.get("spec", {}).get("containers", [])]
        container = query.get("container") or (names[0] if len(names) == 1 else None)
        if container is None:
            raise bad_request(f"a container name must be specified for pod {target.name}, choose one of: "
                              f"[{' '.join(names)}]")
        if container not in names:
            raise bad_request(f'container "{container}" in pod "{target.name}" is not valid')
        previous = _flag(query.get("previous"))
        if previous:
            container_log = self.store.previous_log(target.namespace or "", target.name or "", container)
            if container_log is None:
                raise bad_request(f'previous terminated container "{container}" in pod "{target.name}" not found')
        else:
            container_log = self.store.container_log(target.namespace or "", target.name or "", container)
        tail = _integer(query, "tailLines")
        lines = container_log.after(0)
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        text = "".join(f"{line}\n" for line in lines)
        limit = _integer(query, "limitBytes")
        if limit is not None:
            text = text.encode()[:limit].decode(errors="ignore")
        if previous or not _flag(query.get("follow")):
            return PlainTextResponse(text)
        follow = self._follow_log(target, pod["metadata"]["uid"], container, text, container_log.written)
        return StreamingResponse(follow, media_type="text/plain")

    async def _follow_log(self, target: Target, uid: str, container: str, text: str,
                          seen: int) -> AsyncIterator[bytes]:
        """The log as the container writes it, until the pod goes or the container terminates (it restarted)."""
        yield text.encode()
        namespace, name = target.namespace or "", target.name or ""
        before = self.store.previous_log(namespace, name, container)
        while True:
            await asyncio.sleep(LOG_FOLLOW_POLL_SECONDS)
            pod = self.store.get_object("pods", target.namespace, name)
            if pod is None or pod["metadata"]["uid"] != uid:
                return
            restarted = self.store.previous_log(namespace, name, container)
            container_log = restarted if restarted is not before else self.store.container_log(namespace, name,
                                                                                                container)
            fresh = container_log.after(seen) if container_log else []
            seen = container_log.written if container_log else seen
            if fresh:
                yield "".join(f"{line}\n" for line in fresh).encode()
            if restarted is not before:
                return


def _logged(request: Request, arrived: datetime, seen: _Seen, status: int) -> LoggedRequest:
    target = seen.target
    named = (target.namespace, target.rtype.plural, target.name, target.subresource) if target else (None,) * 4
    return LoggedRequest(arrived.isoformat(timespec="milliseconds"), request.method, request.url.path, *named,
                         status, seen.fault, seen.changed)


def _sort_key(obj: dict) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def _encode_continue(resource_version: str, after: tuple[str, str]) -> str:
    token = json.dumps({"rv": resource_version, "after": list(after)})
    return base64.urlsafe_b64encode(token.encode()).decode()


def _decode_continue(token: str) -> tuple[str, tuple[str, str]]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, name = decoded["after"]
        return str(decoded["rv"]), (str(namespace), str(name))
    except (ValueError, KeyError, TypeError):
        raise bad_request(f"continue: {token!r} is not a continue token this server issued") from None


def _visible_change(event: StoreEvent, selected: Callable[[dict], bool]) -> tuple[str, dict] | None:
    """The watch event a selector-filtered watcher sees for a store change, if any."""
    now = selected(event.object)
    if event.type == "MODIFIED":
        before = event.previous is not None and selected(event.previous)
        if now and before:
            return "MODIFIED", event.object
        if now:
            return "ADDED", event.object
        return ("DELETED", event.object) if before else None
    return (event.type, event.object) if now else None


def _scale_of(obj: dict) -> dict:
    meta = obj["metadata"]
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                       "selector": selector_text(obj.get("spec", {}).get("selector"))}}


async def _once(chunk: bytes) -> AsyncIterator[bytes]:
    yield chunk
