"""Canary for one service (R-CAN): steps from the policy, Istio routing, promotion, abort with logs kept."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from delivery.kube.deployments import Deployments, RolloutResult
from delivery.kube.diagnostics import Diagnostics
from delivery.kube.manifests import colored_deployment
from delivery.kube.routing import Routing
from delivery.policy.models import Canary, Policy
from delivery.release.stats import per_look_confidence, wilson_interval

CANARY = "canary"
STABLE = "stable"
PROMOTED = 100  # progress shown once the stable Deployment runs the new digest


@dataclass(frozen=True)
class CanaryStep:
    """One weight the canary holds: how long, whether a person decides first, the stage's error limit."""

    weight: float
    observe: timedelta
    pause_before: bool = False
    max_error_rate_percent: float | None = None

    def intervals(self, interval: timedelta) -> int:
        """How many analysis intervals the step lasts (at least one)."""
        return max(1, round(self.observe / interval))


def canary_steps(canary: Canary) -> list[CanaryStep]:
    """The stage table (5/25/50/100) or Flagger's steps (stepWeight up to maxWeight, one interval each)."""
    if canary.progression == "stages":
        return [CanaryStep(s.weight, s.observe, s.pause_before, s.max_error_rate_percent) for s in canary.stages]
    analysis = canary.analysis
    count = int(analysis.max_weight // analysis.step_weight)
    return [CanaryStep(analysis.step_weight * (i + 1), analysis.interval) for i in range(count)]


def error_breach(errors: float, requests: float, limit_percent: float, confidence_percent: float, what: str) -> str | None:
    """Why the canary's 5xx rate is, at `confidence_percent`, above `limit_percent` — or None."""
    if requests <= 0:
        return None
    low = 100 * wilson_interval(errors, requests, confidence_percent)[0]
    if low <= limit_percent:
        return None
    rate = 100 * errors / requests
    return f"{what}: canary 5xx rate {rate:.3g}% ({errors:.0f} of {requests:.0f}; ≥ {low:.3g}% at {confidence_percent:.4g}%) > {limit_percent:g}%"


class CanaryRollout:
    """The canary steps of one policy on one cluster: `<service>-canary` beside the live color."""

    def __init__(self, policy: Policy, deployments: Deployments, routing: Routing, diagnostics: Diagnostics) -> None:
        self.policy = policy
        self.deployments = deployments
        self.routing = routing
        self.diagnostics = diagnostics
        self.namespace = policy.environments["production"].namespace

    def deploy(self, service: str, image: str) -> None:
        """Apply `<service>-canary` (label `version: canary`) running the new digest; R-CAN-3's progress deadline bounds its rollout."""
        deadline = int(self.policy.canary.analysis.progress_deadline.total_seconds())
        self.deployments.apply(colored_deployment(self.policy.service(service), self.namespace, CANARY, image, deadline))

    def wait_available(self, service: str) -> RolloutResult:
        """Wait for the canary's pods, at most the progress deadline (R-CAN-3)."""
        deadline = self.policy.canary.analysis.progress_deadline.total_seconds()
        return self.deployments.wait_rolled_out(self.namespace, f"{service}-{CANARY}", deadline)

    def open_routes(self, service: str, live_color: str) -> None:
        """Weights 100/0 first, then subsets by version, then the Service selects both versions' pods."""
        self.routing.set_route_weights(self.namespace, service, {STABLE: 100, CANARY: 0})
        self.routing.set_subsets(self.namespace, service, {STABLE: {"version": live_color}, CANARY: {"version": CANARY}})
        self.routing.select_every_version(self.namespace, service)

    def set_weight(self, service: str, weight: float) -> dict[str, int]:
        """Send `weight`% to the canary (the header route always does); returns the weights read back."""
        canary = round(weight)
        return self.routing.set_route_weights(self.namespace, service, {STABLE: 100 - canary, CANARY: canary})

    def close_routes(self, service: str, live_color: str) -> None:
        """All traffic to stable at once, then the Service selects the live color alone again."""
        self.routing.set_route_weights(self.namespace, service, {STABLE: 100, CANARY: 0})
        self.routing.switch_selector(self.namespace, service, live_color)
        self.routing.set_subsets(self.namespace, service, {STABLE: {}, CANARY: {"version": CANARY}})

    def promote(self, service: str, image: str, live_color: str) -> RolloutResult:
        """The stable Deployment gets the new digest and is waited on; then routes close and the canary scales to zero."""
        stable = f"{service}-{live_color}"
        self.deployments.set_image(self.namespace, stable, service, image)
        result = self.deployments.wait_rolled_out(self.namespace, stable, self.policy.validation.rollout_timeout.total_seconds())
        if result.done:
            self.close_routes(service, live_color)
            self.deployments.scale(self.namespace, f"{service}-{CANARY}", 0)
        return result

    def abort(self, service: str, live_color: str) -> None:
        """Stop the canary (R-CAN-4): 100% stable at once, the canary at zero replicas."""
        self.close_routes(service, live_color)
        self.deployments.scale(self.namespace, f"{service}-{CANARY}", 0)

    def archive(self, service: str, tag: str, directory: Path) -> Path:
        """The canary pods' logs and events, kept under `directory` until the policy's retention ends."""
        pods = self.diagnostics.pods(self.namespace, {"app": service, "version": CANARY})
        kept_until = datetime.now(timezone.utc) + self.policy.canary.log_retention
        record = {
            "service": service,
            "release": tag,
            "kept_until": kept_until.isoformat(),
            "pods": [{**pod, "log": self.diagnostics.logs(self.namespace, pod["name"])} for pod in pods],
            "events": [
                {**event, "time": str(event["time"])}
                for event in self.diagnostics.events(self.namespace)
                if service in event["object"] and CANARY in event["object"]
            ],
        }
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{tag}-{service}-canary.json"
        path.write_text(json.dumps(record, indent=2))
        return path


def canary_breach(step: CanaryStep, errors: float, requests: float, policy: Policy) -> str | None:
    """R-CAN-4's abort (above 1%) or the stage's success condition (below 0.1%), judged with confidence.

    The confidence is Bonferroni-corrected for every interval of the canary, so a healthy canary is
    stopped by noise with probability at most 1 - `watch.confidence_percent` over the whole canary.
    """
    looks = sum(s.intervals(policy.canary.analysis.interval) for s in canary_steps(policy.canary))
    confidence = per_look_confidence(policy.watch.confidence_percent, looks)
    abort = error_breach(errors, requests, policy.canary.abort_error_rate_percent, confidence, "abort threshold")
    if abort or step.max_error_rate_percent is None:
        return abort
    return error_breach(errors, requests, step.max_error_rate_percent, confidence, f"stage at {step.weight:g}%")
