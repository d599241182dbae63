"""Where production traffic goes, per service, read from the cluster: the live color, its image, the canary weight."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from delivery.kube import Deployments, Routing
from delivery.policy.models import Policy


@dataclass(frozen=True)
class ServiceTraffic:
    """One service's production traffic: the color its Service selects, that color's image, the canary's share."""

    service: str
    color: str | None
    image: str | None
    canary_percent: int | None  # None: no VirtualService

    def line(self, tag: str | None = None) -> str:
        canary = "no VirtualService" if self.canary_percent is None else f"canary {self.canary_percent}%"
        return f"{self.service:<18} {self.color or '-':<6} {tag or '':<14} {canary:<13} {self.image or '-'}"


def production_traffic(policy: Policy, deployments: Deployments, routing: Routing) -> list[ServiceTraffic]:
    """Each policy service's production traffic, in the policy's order."""
    namespace = policy.environments["production"].namespace
    rows = []
    for svc in policy.services:
        color = routing.selected_color(namespace, svc.name)
        image = deployments.image_of(namespace, f"{svc.name}-{color}") if color else None
        try:
            canary = routing.route_weights(namespace, svc.name).get("canary", 0)
        except ApiException as err:
            if err.status != 404:
                raise
            canary = None
        rows.append(ServiceTraffic(svc.name, color, image, canary))
    return rows
