"""The rollback runbook (R-RB): check the request → one emergency approval → switch back → validate → tell the team."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from prefect.states import Failed

from delivery.approval_codes import ApprovalEvidence
from delivery.release.plan import VersionTag
from delivery.release.runtime import runtime
from delivery.release.state import RollbackDone
from flows.approval import collect_approvals
from flows.locking import label_this_run
from tasks.notifications import alert, send_alert
from tasks.records import audit
from tasks.rollback import plan_rollback, plan_staging_rollback, roll_back_service, undo_staging_to, validate_environment


@flow(name="rollback", flow_run_name="rollback-to-{target_version}", log_prints=True)
def rollback(
    target_version: VersionTag,
    reason: str,
    initiator: str = "on-call",
    services: list[str] | None = None,
    environment: Literal["production", "staging"] = "production",
) -> dict:
    """Bring an environment back to `target_version`, a version that ran there before; nothing goes through a shell.

    Production (blue-green) switches colors; staging (rolling) undoes to the revision that ran the target.
    It holds no release lock on purpose: an emergency must not wait behind a release paused for approval.

    Args:
        target_version: The version to go back to, e.g. v1.2.0; it must have run in this environment.
        reason: Why (the incident or ticket); shown to the approver and kept in the audit log.
        initiator: Who asks for the rollback (the policy decides whether they may approve it).
        services: Only these services (default: all, in reverse dependency order).
        environment: production (blue-green switch) or staging (rolling undo).
    """
    label_this_run(target_version, "rollback")
    staging = environment == "staging"
    plan = plan_staging_rollback(target_version, reason, services) if staging else plan_rollback(target_version, reason, services)
    steps = [step.model_dump(exclude_none=True) for step in plan.steps]
    audit(event="rollback_requested", actor=initiator, release=target_version, details={"reason": reason, "steps": steps})

    context = f"## Roll {environment} back to {target_version}?\n\nRequested by **{initiator}**: {reason}\n\n" + "\n".join(
        f"- {s.service}: {s.action} ({s.from_color} → {s.to_color})" for s in plan.steps
    )
    evidence = ApprovalEvidence.of_rollback(plan)
    approvals = collect_approvals(runtime().policy.approvals, "rollback", initiator, target_version, context, lambda: evidence)
    if approvals.rejected_by:
        return Failed(message=f"rollback to {target_version} {approvals.rejected_by.reason}")

    done: list[RollbackDone] = []
    for step in plan.steps:
        if staging:
            done.append(undo_staging_to(step.service, step.revision) if step.action == "undo"
                        else RollbackDone(service=step.service, action=step.action, from_color=step.from_color, to_color=step.to_color))
        else:
            done.append(roll_back_service(step.service, step.image, step.action, step.to_color))
        audit(event="rollback_executed", actor=initiator, release=target_version, details={**done[-1].model_dump(), "reason": reason, "environment": environment})
    checks = validate_environment(environment, [s.service for s in plan.steps], return_state=True)
    healthy = "healthy" if checks.is_completed() else f"validation failed: {checks.message}"
    numbers = {"target version": target_version, "reason": reason, "initiator": initiator, environment: healthy}
    send_alert(alert(target_version, "high", f"{environment.capitalize()} rolled back to {target_version}", numbers), channels=["slack"])
    if not checks.is_completed():
        return Failed(message=f"rolled back to {target_version}, but {environment} validation failed: {checks.message}")
    return {"target": target_version, "reason": reason, "initiator": initiator,
            "services": [d.model_dump() for d in done], "validation": [r.model_dump() for r in checks.result()]}
