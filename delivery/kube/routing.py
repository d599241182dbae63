"""Where traffic goes: a Service's selected color, and Istio VirtualService route weights."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from delivery.kube.connection import KubeConnection

ISTIO = ("networking.istio.io", "v1beta1")


class Routing:
    """Reads and moves traffic, verifying each change by reading it back."""

    def __init__(self, conn: KubeConnection) -> None:
        self.conn = conn

    def has_service(self, namespace: str, service: str) -> bool:
        try:
            self.conn.call(self.conn.core.read_namespaced_service, service, namespace)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def selected_color(self, namespace: str, service: str) -> str | None:
        """The `version` label the Service selects (blue or green), or None when it selects no version."""
        svc = self.conn.call(self.conn.core.read_namespaced_service, service, namespace)
        return (svc.spec.selector or {}).get("version")

    def switch_selector(self, namespace: str, service: str, color: str) -> None:
        """Patch the Service selector to `version: color` (R-BG-2) and check it took."""
        patch = {"spec": {"selector": {"version": color}}}
        self.conn.call(self.conn.core.patch_namespaced_service, service, namespace, patch)
        now = self.selected_color(namespace, service)
        if now != color:
            raise RuntimeError(f"service {namespace}/{service} selects version '{now}' after switching to '{color}'")

    def select_every_version(self, namespace: str, service: str) -> None:
        """Drop `version` from the Service selector, so the DestinationRule's subsets split its pods."""
        patch = {"spec": {"selector": {"version": None}}}
        self.conn.call(self.conn.core.patch_namespaced_service, service, namespace, patch)

    def set_subsets(self, namespace: str, name: str, subsets: dict[str, dict[str, str]]) -> None:
        """Replace the DestinationRule's subsets (name -> labels; empty labels: the whole Service)."""
        listed = [{"name": subset, **({"labels": labels} if labels else {})} for subset, labels in subsets.items()]
        patch = {"spec": {"subsets": listed}}
        self.conn.call(self.conn.custom.patch_namespaced_custom_object, *ISTIO, namespace, "destinationrules", name, patch)

    def virtual_service(self, namespace: str, name: str) -> dict:
        return self.conn.call(self.conn.custom.get_namespaced_custom_object, *ISTIO, namespace, "virtualservices", name)

    def route_weights(self, namespace: str, name: str) -> dict[str, int]:
        """Subset -> weight of the VirtualService's weighted (unmatched) route."""
        route = _weighted_route(self.virtual_service(namespace, name), name)
        return {d["destination"].get("subset", d["destination"]["host"]): d.get("weight", 100) for d in route["route"]}

    def set_route_weights(self, namespace: str, name: str, weights: dict[str, int]) -> dict[str, int]:
        """Set the weighted route's weights (they must add up to 100); re-reads on conflict; returns what was read back."""
        if sum(weights.values()) != 100:
            raise ValueError(f"route weights must add up to 100, got {weights}")
        for _ in range(self.conn.retry.attempts):
            vs = self.virtual_service(namespace, name)
            route = _weighted_route(vs, name)
            subsets = {d["destination"].get("subset") for d in route["route"]}
            missing = set(weights) - subsets
            if missing:
                raise KeyError(f"virtualservice {namespace}/{name} has no destination subset(s) {sorted(missing)}")
            for destination in route["route"]:
                destination["weight"] = weights.get(destination["destination"].get("subset"), 0)
            try:
                self.conn.call(self.conn.custom.replace_namespaced_custom_object, *ISTIO, namespace, "virtualservices", name, vs)
                break
            except ApiException as err:
                if err.status != 409:
                    raise
        else:
            raise RuntimeError(f"virtualservice {namespace}/{name} kept changing under us; set the weights again")
        read_back = self.route_weights(namespace, name)
        if {k: read_back.get(k, 0) for k in weights} != weights:
            raise RuntimeError(f"virtualservice {namespace}/{name} reads {read_back} after setting {weights}")
        return read_back


def _weighted_route(vs: dict, name: str) -> dict:
    """The http route without a `match` (the one weights split), or the last route."""
    routes = vs.get("spec", {}).get("http") or []
    if not routes:
        raise LookupError(f"virtualservice {name} has no http routes")
    return next((r for r in routes if not r.get("match")), routes[-1])
