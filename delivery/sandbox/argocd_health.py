"""ArgoCD's health assessment for the sandbox (gitops-engine's Deployment and Service checks) and the
per-resource entries of an Application's status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from delivery.sandbox.argocd_sync import ResourceState

HEALTH_ORDER = ("Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown")  # best first


@dataclass(frozen=True)
class Health:
    """A health status with gitops-engine's message."""

    status: str
    message: str = ""

    def as_json(self) -> dict:
        return {"status": self.status, **({"message": self.message} if self.message else {})}


def _condition(obj: dict, kind: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def deployment_health(deployment: dict) -> Health:
    """gitops-engine's Deployment check (kubectl's rollout status rule), requiring Available as well."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    name = deployment["metadata"]["name"]
    if spec.get("paused"):
        return Health("Suspended", "Deployment is paused")
    if deployment["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return Health("Progressing", "Waiting for rollout to finish: observed deployment generation less than "
                                     "desired generation")
    wanted, replicas = spec.get("replicas", 1), status.get("replicas", 0)
    updated, available = status.get("updatedReplicas", 0), status.get("availableReplicas", 0)
    if _condition(deployment, "Progressing").get("reason") == "ProgressDeadlineExceeded":
        return Health("Degraded", f'Deployment "{name}" exceeded its progress deadline')
    if updated < wanted:
        return Health("Progressing", f"Waiting for rollout to finish: {updated} out of {wanted} new replicas "
                                     "have been updated...")
    if replicas > updated:
        return Health("Progressing", f"Waiting for rollout to finish: {replicas - updated} old replicas are "
                                     "pending termination...")
    if available < updated:
        return Health("Progressing", f"Waiting for rollout to finish: {available} of {updated} updated replicas "
                                     "are available...")
    if _condition(deployment, "Available").get("status") != "True":
        return Health("Progressing", "Waiting for rollout to finish: Deployment does not have minimum availability")
    return Health("Healthy")


def service_health(service: dict) -> Health:
    """A LoadBalancer Service is Progressing until it has an ingress address; any other Service is Healthy."""
    if (service.get("spec") or {}).get("type") != "LoadBalancer":
        return Health("Healthy")
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    return Health("Healthy" if ingress else "Progressing")


def resource_health(state: ResourceState) -> Health | None:
    """Missing when absent; the check of its kind; None for kinds ArgoCD has no health check for."""
    if state.live is None:
        return Health("Missing")
    check = {"Deployment": deployment_health, "Service": service_health}.get(state.rtype.kind)
    return check(state.live) if check else None


def app_health(states: Sequence[ResourceState]) -> str:
    """The worst health of the resources that have one; Healthy when none has."""
    statuses = [h.status for h in map(resource_health, states) if h is not None]
    return max(statuses, key=HEALTH_ORDER.index, default="Healthy")


def resource_entries(states: Sequence[ResourceState]) -> list[dict]:
    """status.resources: each resource's identity, sync status, health and whether it requires pruning."""
    entries = []
    for state in states:
        entry = {k: v for k, v in state.ref().items() if v}
        entry["status"] = "Synced" if state.synced else "OutOfSync"
        health = resource_health(state)
        if health is not None:
            entry["health"] = health.as_json()
        if state.desired is None:
            entry["requiresPruning"] = True
        entries.append(entry)
    return entries


def images(states: Sequence[ResourceState]) -> list[str]:
    """status.summary.images: every container image of the live workloads, sorted."""
    found = {c.get("image") for s in states if s.live is not None
             for c in (((s.live.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []}
    return sorted(i for i in found if i)
