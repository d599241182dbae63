"""Where a request goes, decided from the cluster's objects the way Ingress, Services and Istio would.

Pure functions over Kubernetes JSON dicts; the gateway fetches the objects and serves the answer.

How a request is addressed, first rule that applies:
1. Path `/_ns/<namespace>/<service>/<path>`: that Service directly, with `/<path>` (for tools that
   cannot set a Host header).
2. A Host that some Ingress rule (networking.k8s.io/v1, any namespace) names: that host's rule with the
   longest matching `path`; its `backend.service.name` in the Ingress' namespace serves the path unchanged.
3. Host `<service>.<namespace>.svc.cluster.local`, `<service>.<namespace>.svc` or `<service>.<namespace>`:
   that Service directly, any path (e.g. `/actuator/health/db`).
4. Any other Host (e.g. `127.0.0.1:8080`) is routed as `api.tripgen.com` by rule 2.

One pod, ready or not, is reached by Host `<pod-ip-with-dashes>.<namespace>.pod.cluster.local` (its DNS name) or
the path `/_pod/<namespace>/<pod-name>/<path>` (`pod_address`); it answers while a container of it is running.

Host `validation.tripgen.com` (R-BG-2) routes by path like rules 2 or 4. Its Ingress backends are the
`<service>-preview` Services (infra/k8s-manifests), which select what their own selector says (the release
points each at the idle color it deploys), as on a real cluster. Routed to a live `<service>` instead (no
Ingress names the host), it reaches only the IDLE color: the pods matching the Service selector with
`version` set to the other of blue/green than the one the selector picks now; when the selector picks no
blue/green version there is no idle color (503).

Otherwise the Service's `spec.selector` picks the pods, unless a VirtualService in the namespace lists
the Service in `spec.hosts`: then its `spec.http` routes apply in order (`match` on headers or uri with
`exact`, `prefix` or `regex`), the first matching route's destinations split traffic by `weight`, and a
destination `subset` adds the DestinationRule subset's labels to the destination Service's selector.
Only pods that are Ready and not being deleted serve; when none does the answer is Envoy's 503
"no healthy upstream".
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

DEFAULT_HOST = "api.tripgen.com"
VALIDATION_HOST = "validation.tripgen.com"
PREVIEW_SUFFIX = "-preview"
DIRECT_PATH_PREFIX = "/_ns/"
CLUSTER_DOMAIN = "svc.cluster.local"
POD_DOMAIN = "pod.cluster.local"
POD_PATH_PREFIX = "/_pod/"
BLUE_GREEN = ("blue", "green")
NO_HEALTHY_UPSTREAM = "no healthy upstream"


@dataclass(frozen=True)
class Target:
    """The Service a request addresses, the path it reaches it with, and whether only the idle color may answer."""

    namespace: str
    service: str
    path: str
    idle_color_only: bool = False


@dataclass(frozen=True)
class NamespaceObjects:
    """The objects of one namespace that routing reads."""

    services: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)
    virtualservices: list[dict] = field(default_factory=list)
    destinationrules: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Upstream:
    """The pod that serves a request, and the Service it was reached through."""

    pod: dict
    service: str
    namespace: str


@dataclass(frozen=True)
class NoRoute:
    """Why no pod serves a request, as the HTTP status and text a proxy answers."""

    status: int
    reason: str


def host_name(host: str) -> str:
    """The Host header without port, lower case."""
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal
        return name.split("]", 1)[0] + "]"
    return name.rsplit(":", 1)[0] if ":" in name else name


def resolve_target(host: str, path: str, ingresses: list[dict]) -> Target | NoRoute:
    """The Service a request for `host` and `path` addresses (see the module docstring for the rules)."""
    if path.startswith(DIRECT_PATH_PREFIX):
        namespace, _, rest = path[len(DIRECT_PATH_PREFIX):].partition("/")
        service, _, rest = rest.partition("/")
        if not namespace or not service:
            return NoRoute(404, f"path {path} is not {DIRECT_PATH_PREFIX}<namespace>/<service>/<path>")
        return Target(namespace, service, "/" + rest)
    name = host_name(host)
    entries = _ingress_paths(ingresses)
    known_host = any(entry.host == name for entry in entries)
    direct = None if known_host else _service_host(name)
    if direct is not None:
        return Target(direct[1], direct[0], path)
    routed_host = name if known_host else DEFAULT_HOST
    candidates = [e for e in entries if e.host == routed_host] or [e for e in entries if e.host is None]
    matches = [e for e in candidates if _path_matches(e.path, e.path_type, path)]
    if not matches:
        return NoRoute(404, f"no Ingress path for {routed_host}{path}")
    best = max(matches, key=lambda e: len(e.path))
    return Target(best.namespace, best.service, path,
                  idle_color_only=name == VALIDATION_HOST and not best.service.endswith(PREVIEW_SUFFIX))


def pod_address(host: str, path: str) -> tuple[str, str, str] | None:
    """(namespace, pod IP or name, path) of a request addressed to one pod, else None."""
    if path.startswith(POD_PATH_PREFIX):
        namespace, _, rest = path[len(POD_PATH_PREFIX):].partition("/")
        pod, _, rest = rest.partition("/")
        return (namespace, pod, "/" + rest) if namespace and pod else None
    name = host_name(host)
    if name.endswith("." + POD_DOMAIN):
        dashed, _, namespace = name[: -len(POD_DOMAIN) - 1].partition(".")
        if namespace and "." not in namespace:
            return namespace, dashed.replace("-", "."), path
    return None


def pod_upstream(pods: list[dict], namespace: str, pod: str) -> Upstream | NoRoute:
    """The pod named `pod` or with IP `pod`, while one of its containers runs."""
    found = next((p for p in pods if pod in (p["metadata"].get("name"), (p.get("status") or {}).get("podIP"))), None)
    statuses = ((found or {}).get("status") or {}).get("containerStatuses") or []
    if found is None or not any("running" in (s.get("state") or {}) for s in statuses):
        return NoRoute(503, f"upstream connect error: pod {namespace}/{pod}: connection refused")
    return Upstream(found, (found["metadata"].get("labels") or {}).get("app", pod), namespace)


def route_request(
    target: Target, headers: Mapping[str, str], objects: NamespaceObjects, rng: random.Random
) -> Upstream | NoRoute:
    """The pod that serves `target` given the request's headers (names in lower case)."""
    service = _by_name(objects.services, target.service)
    if service is None:
        return NoRoute(503, NO_HEALTHY_UPSTREAM)
    selector = _selector(service)
    if target.idle_color_only:
        return _pick(objects.pods, idle_color_selector(selector), target.service, target.namespace, rng)
    virtual_service = _virtual_service_for(objects.virtualservices, target.service, target.namespace)
    if virtual_service is None:
        return _pick(objects.pods, selector, target.service, target.namespace, rng)
    route = _matching_route(virtual_service, target.path, headers)
    if route is None:
        return NoRoute(404, f"no route of virtualservice {virtual_service['metadata'].get('name')} matches")
    destination = _weighted_choice(route.get("route") or [], rng)
    if destination is None:
        return NoRoute(503, NO_HEALTHY_UPSTREAM)
    return _route_to_destination(destination, target.namespace, objects, rng)


def idle_color_selector(selector: dict[str, str]) -> dict[str, str] | None:
    """The selector of the color the Service does not select now, or None when it selects no blue/green."""
    current = selector.get("version")
    if current not in BLUE_GREEN:
        return None
    return {**selector, "version": BLUE_GREEN[1 - BLUE_GREEN.index(current)]}


def is_serving(pod: dict) -> bool:
    """A pod takes traffic when its Ready condition is True and it is not being deleted."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _route_to_destination(
    destination: dict, namespace: str, objects: NamespaceObjects, rng: random.Random
) -> Upstream | NoRoute:
    host = (destination.get("destination") or {}).get("host", "")
    located = _service_host(host.lower()) or (host, namespace)
    if located[1] != namespace:
        return NoRoute(503, NO_HEALTHY_UPSTREAM)
    service = _by_name(objects.services, located[0])
    if service is None:
        return NoRoute(503, NO_HEALTHY_UPSTREAM)
    selector = _selector(service)
    subset = destination["destination"].get("subset")
    if subset:
        labels = _subset_labels(objects.destinationrules, located[0], namespace, subset)
        if labels is None or not _agree(labels, selector):
            return NoRoute(503, NO_HEALTHY_UPSTREAM)
        selector = {**selector, **labels}
    return _pick(objects.pods, selector, located[0], namespace, rng)


def _pick(
    pods: list[dict], selector: dict[str, str] | None, service: str, namespace: str, rng: random.Random
) -> Upstream | NoRoute:
    """A random serving pod matching a non-empty selector (a Service without one has no endpoints)."""
    if not selector:
        return NoRoute(503, NO_HEALTHY_UPSTREAM)
    wanted = selector.items()
    eligible = [p for p in pods if wanted <= (p.get("metadata", {}).get("labels") or {}).items() and is_serving(p)]
    if not eligible:
        return NoRoute(503, NO_HEALTHY_UPSTREAM)
    return Upstream(eligible[rng.randrange(len(eligible))] if len(eligible) > 1 else eligible[0], service, namespace)


def _agree(labels: dict[str, str], selector: dict[str, str]) -> bool:
    """Whether a subset's labels can hold together with the Service selector (Istio ANDs them)."""
    return all(selector.get(key, value) == value for key, value in labels.items())


def _selector(service: dict) -> dict[str, str]:
    return dict((service.get("spec") or {}).get("selector") or {})


def _by_name(objects: list[dict], name: str) -> dict | None:
    return next((o for o in objects if o.get("metadata", {}).get("name") == name), None)


def _service_host(name: str) -> tuple[str, str] | None:
    """(service, namespace) of `svc.ns`, `svc.ns.svc` or `svc.ns.svc.cluster.local`, else None."""
    if name.endswith("." + CLUSTER_DOMAIN):
        name = name[: -len(CLUSTER_DOMAIN) - 1]
    elif name.endswith(".svc"):
        name = name[:-4]
    parts = name.split(".")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    return None


def _names_service(host: str, service: str, namespace: str) -> bool:
    host = host.lower()
    return host == service or _service_host(host) == (service, namespace)


def _virtual_service_for(virtualservices: list[dict], service: str, namespace: str) -> dict | None:
    for vs in virtualservices:
        if any(_names_service(h, service, namespace) for h in (vs.get("spec") or {}).get("hosts") or ()):
            return vs
    return None


def _matching_route(virtual_service: dict, path: str, headers: Mapping[str, str]) -> dict | None:
    for route in (virtual_service.get("spec") or {}).get("http") or ():
        conditions = route.get("match")
        if not conditions or any(_request_matches(c, path, headers) for c in conditions):
            return route
    return None


def _request_matches(condition: dict, path: str, headers: Mapping[str, str]) -> bool:
    """An Istio HTTPMatchRequest: every header (and the uri) given must match."""
    if "uri" in condition and not _string_matches(condition["uri"], path):
        return False
    for name, rule in (condition.get("headers") or {}).items():
        value = headers.get(name.lower())
        if value is None or not _string_matches(rule, value):
            return False
    return True


def _string_matches(rule: dict, value: str) -> bool:
    if "exact" in rule:
        return value == rule["exact"]
    if "prefix" in rule:
        return value.startswith(rule["prefix"])
    if "regex" in rule:
        return re.fullmatch(rule["regex"], value) is not None
    return True


def _weighted_choice(destinations: list[dict], rng: random.Random) -> dict | None:
    """A destination drawn by weight; a lone destination without weight takes everything."""
    if len(destinations) == 1 and "weight" not in destinations[0]:
        return destinations[0]
    total = sum(max(int(d.get("weight", 0)), 0) for d in destinations)
    if total <= 0:
        return None
    point = rng.random() * total
    for destination in destinations:
        point -= max(int(destination.get("weight", 0)), 0)
        if point < 0:
            return destination
    return destinations[-1]


def _subset_labels(rules: list[dict], service: str, namespace: str, subset: str) -> dict[str, str] | None:
    for rule in rules:
        spec = rule.get("spec") or {}
        if _names_service(spec.get("host", ""), service, namespace):
            for entry in spec.get("subsets") or ():
                if entry.get("name") == subset:
                    return dict(entry.get("labels") or {})
    return None


class _IngressPath(NamedTuple):
    host: str | None  # None: the rule applies to every host
    namespace: str
    path: str
    path_type: str
    service: str


def _ingress_paths(ingresses: list[dict]) -> list[_IngressPath]:
    """Every Ingress path with a Service backend."""
    out = []
    for ingress in ingresses:
        namespace = ingress.get("metadata", {}).get("namespace", "default")
        for rule in (ingress.get("spec") or {}).get("rules") or ():
            host = rule.get("host")
            for entry in (rule.get("http") or {}).get("paths") or ():
                backend = (entry.get("backend") or {}).get("service") or {}
                if backend.get("name"):
                    path_type = entry.get("pathType", "ImplementationSpecific")
                    rule_host = host.lower() if host else None
                    out.append(_IngressPath(rule_host, namespace, entry.get("path", "/"), path_type, backend["name"]))
    return out


def _path_matches(prefix: str, path_type: str, path: str) -> bool:
    """Ingress path matching: Exact, Prefix by path elements, ImplementationSpecific as a string prefix."""
    if path_type == "Exact":
        return path == prefix
    if path_type == "Prefix":
        base = prefix.rstrip("/")
        return path == base or path.startswith(base + "/") or not base
    return path.startswith(prefix)
