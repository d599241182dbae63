"""Manual rollback (R-RB): validate the request, find where the target version runs, plan each service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from delivery.kube.deployments import Deployments
from delivery.release.bluegreen import BlueGreen, other_color
from delivery.release.plan import PlanError, parse_tag

MAX_REASON = 500
Action = Literal["already live", "switch", "deploy and switch"]


def validate_request(target_version: str, reason: str) -> None:
    """Refuse a target that is not a release tag and an empty or oversized reason, before anything changes."""
    parse_tag(target_version)
    if not reason or not reason.strip():
        raise PlanError("a rollback needs a reason: say why (it goes to the audit log and the notification)")
    if len(reason) > MAX_REASON:
        raise PlanError(f"the reason is {len(reason)} characters long: keep it under {MAX_REASON}")


def ran_in_production(target_version: str, audit_records: list[dict], images_seen: set[str], target_images: set[str]) -> bool:
    """True when the audit log shows the version switched in, or a production revision ran its image."""
    switched = any(r["event"] in ("traffic_switched", "deployment_completed", "canary_promoted") and r["release"] == target_version for r in audit_records)
    return switched or bool(images_seen & target_images)


def production_images(deployments: Deployments, namespace: str, service: str) -> set[str]:
    """Every image a production color of `service` runs or ran (its ReplicaSets' revision history)."""
    seen: set[str] = set()
    for color in ("blue", "green"):
        name = f"{service}-{color}"
        if deployments.get(namespace, name) is None:
            continue
        for template in deployments.revisions(namespace, name).values():
            seen.update(c["image"] for c in template["spec"]["containers"])
    return seen


@dataclass(frozen=True)
class ServiceRollback:
    """What rolling one service back takes: nothing, a switch to the idle color, or a deploy then a switch."""

    service: str
    action: Action
    live_color: str | None
    to_color: str


def plan_service(blue_green: BlueGreen, service: str, target_image: str) -> ServiceRollback:
    """Compare what the live and idle colors run with the target image."""
    live = blue_green.live_color(service)
    idle = other_color(live)
    namespace = blue_green.namespace
    if blue_green.deployments.image_of(namespace, f"{service}-{live}") == target_image:
        return ServiceRollback(service, "already live", live, live)
    idle_deployment = blue_green.deployments.get(namespace, f"{service}-{idle}")
    idle_image = blue_green.deployments.image_of(namespace, f"{service}-{idle}") if idle_deployment else None
    if idle_image == target_image and (idle_deployment.spec.replicas or 0) > 0:
        return ServiceRollback(service, "switch", live, idle)
    return ServiceRollback(service, "deploy and switch", live, idle)


def revision_running(deployments: Deployments, namespace: str, service: str, target_images: set[str]) -> tuple[int | None, bool]:
    """(the newest revision of a rolling Deployment whose template ran the target, whether it is the current one)."""
    revisions = deployments.revisions(namespace, service)
    matching = [number for number, template in revisions.items() if {c["image"] for c in template["spec"]["containers"]} & target_images]
    if not matching:
        return None, False
    return max(matching), max(matching) == max(revisions)
