"""Blue-green for one service (R-BG): deploy the idle color, validate it, switch, switch back, retire."""

from __future__ import annotations

import time
from dataclasses import dataclass

from delivery.kube.deployments import Deployments, RolloutResult
from delivery.kube.manifests import colored_deployment
from delivery.kube.routing import Routing
from delivery.policy.models import Policy
from delivery.release.probes import Prober, ProbeResult

COLORS = ("blue", "green")
PREVIEW_SUFFIX = "-preview"  # <service>-preview: the Service the validation host's Ingress reaches (infra/k8s-manifests)
ARGOCD_TRACKING = "argocd.argoproj.io/tracking-id"


def other_color(color: str | None) -> str:
    """The idle color when `color` takes traffic (blue when nothing is selected yet)."""
    return "green" if color == "blue" else "blue"


@dataclass(frozen=True)
class Switch:
    """A traffic switch that happened: from which color to which, and how long it took."""

    service: str
    namespace: str
    from_color: str | None
    to_color: str
    seconds: float


class BlueGreen:
    """The blue-green steps for the services of one policy, on one cluster."""

    def __init__(self, policy: Policy, deployments: Deployments, routing: Routing) -> None:
        self.policy = policy
        self.deployments = deployments
        self.routing = routing
        self.namespace = policy.environments["production"].namespace

    def live_color(self, service: str) -> str | None:
        return self.routing.selected_color(self.namespace, service)

    def live_image(self, service: str) -> str | None:
        """The image production traffic reaches now (the selected color's template)."""
        color = self.live_color(service)
        return self.deployments.image_of(self.namespace, f"{service}-{color}") if color else None

    def deploy_into(self, service: str, color: str, image: str) -> bool:
        """Create or update `<service>-<color>` with `image` and the policy's shape (R-BG-1, R-BG-5), then point
        `<service>-preview`, the validation host's backend (R-BG-2), at it; False when there is no preview Service."""
        deadline = int(self.policy.blue_green.ready_timeout.total_seconds())
        self.deployments.apply(colored_deployment(self.policy.service(service), self.namespace, color, image, deadline))
        preview = f"{service}{PREVIEW_SUFFIX}"
        if not self.routing.has_service(self.namespace, preview):
            return False
        if self.routing.selected_color(self.namespace, preview) != color:
            self.routing.switch_selector(self.namespace, preview, color)
        return True

    def wait_available(self, service: str, color: str) -> RolloutResult:
        timeout = self.policy.blue_green.ready_timeout.total_seconds()
        return self.deployments.wait_rolled_out(self.namespace, f"{service}-{color}", timeout)

    def validate_idle(self, service: str, prober: Prober) -> list[ProbeResult]:
        """Health and response time of the idle color, through the validation host only it answers; for the
        policy's DB health service also its database health (R-VAL-4), through its preview Service in the cluster."""
        svc, bg, val = self.policy.service(service), self.policy.blue_green, self.policy.validation
        interval = val.health_retry_interval.total_seconds()
        checks = [prober.health(bg.validation_host, f"{svc.public_path}/health", val.health_attempts, interval)]
        if service == val.db_health_service:
            preview = f"{service}{PREVIEW_SUFFIX}.{self.namespace}.svc.cluster.local"
            checks.append(prober.health(preview, svc.db_health_path, val.health_attempts, interval))
        return checks + [prober.response_time(bg.validation_host, svc.smoke_target, val.max_response_time.total_seconds())]

    def switch(self, service: str, to_color: str) -> Switch:
        """Point the Service at `to_color` (R-BG-2) and time it."""
        started = time.perf_counter()
        before = self.live_color(service)
        self.routing.switch_selector(self.namespace, service, to_color)
        return Switch(service, self.namespace, before, to_color, time.perf_counter() - started)

    def retire(self, service: str, color: str) -> bool:
        """Scale the old color to zero, then delete it (R-BG-4); False when it did not exist.

        A color ArgoCD manages (its tracking annotation) is only scaled to zero: git declares both colors,
        and ArgoCD would recreate a deleted one.
        """
        name = f"{service}-{color}"
        found = self.deployments.get(self.namespace, name)
        if found is None:
            return False
        self.deployments.scale(self.namespace, name, 0)
        if ARGOCD_TRACKING in (found.metadata.annotations or {}):
            return True
        return self.deployments.delete(self.namespace, name)
