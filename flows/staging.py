"""Staging (R-ENV): every service in group order, validation, then the staging watch with rollback."""

from __future__ import annotations

from delivery.release.runtime import runtime
from tasks.staging import roll_out_staging, undo_staging, validate_staging
from tasks.watching import watch_service


def release_to_staging(plan: dict) -> dict:
    """Roll, validate and watch staging; on failure undo what was rolled and say why."""
    rolled: list[str] = []
    for group in plan["groups"]:
        for service in group:
            step = roll_out_staging(service, plan["images"][service]["by_digest"], return_state=True)
            if not step.is_completed():
                return {"failure": str(step.result(raise_on_failure=False)), "rows": []}
            rolled.append(service)
    checks = validate_staging(plan["services"], return_state=True)
    if not checks.is_completed():
        return undo(rolled, str(checks.result(raise_on_failure=False)))
    watches = [watch_service.submit("staging", s, s, ".*", plan["tag"]) for s in plan["services"]]
    failed = [w for w in (f.result() for f in watches) if not w["passed"]]
    if failed and runtime().policy.environments["staging"].auto_rollback:
        return undo(rolled, "; ".join(f"{w['service']} staging watch failed: {w['reason']}" for w in failed))
    return {"failure": None, "rows": checks.result()}


def undo(rolled: list[str], reason: str) -> dict:
    for service in reversed(rolled):
        undo_staging(service)
    return {"failure": reason, "rows": []}
