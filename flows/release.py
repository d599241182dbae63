"""The release runbook (SPEC §2-§3): tag → gates → [lock, record] → staging → approval → window → expand →
production (deploy, switch, backfill, watch) → each DR region (record, deploy, switch, watch) → retire → contract →
finish.

Production changes are recorded in the cluster before they happen (delivery/release/record.py); any
way the release ends after that, except "released", runs the one restore path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from prefect import flow, get_run_logger
from prefect.states import Failed
from pydantic import AwareDatetime

from delivery.approval_codes import ApprovalEvidence
from delivery.approvals import hotfix_auto_approves
from delivery.gitops.changes import ChangeNote, noted
from delivery.migrations.bundle import Phase
from delivery.migrations.gate import bundle_of
from delivery.release.describe import approval_context, service_rows
from delivery.release.plan import VersionTag
from delivery.release.runtime import runtime
from delivery.release.state import GateResult, ProductionOutcome, ReleaseFailed, ReleasePlan
from flows.approval import collect_approvals
from flows.canary import release_canary
from flows.locking import label_this_run, production_release_lock
from flows.production import release_blue_green
from flows.regions import Reached, close_dr_regions, release_in_dr_regions, restore_every_region
from flows.staging import StagingOutcome, release_to_staging
from tasks.bluegreen import retire_old_color
from tasks.gates import run_quality_gates
from tasks.migrations import migrate, pending_contracts
from tasks.notifications import alert, send_alert
from tasks.planning import plan_release, resolve_images
from tasks.records import audit, publish_summary
from tasks.release_record import close_release_record, open_release_record, run_url
from tasks.window import next_opening, wait_for_sync_window, window_is_open


@flow(name="release", flow_run_name="release-{tag}", log_prints=True)
def release(
    tag: VersionTag,
    services: list[str] | None = None,
    strategy: Literal["blue-green", "canary"] = "blue-green",
    initiator: str = "release-manager",
    hotfix: bool = False,
    security_patch: bool = False,
    severity: Literal["low", "medium", "high", "critical"] = "medium",
    reason: str = "",
    force: bool = False,
    commit_time: AwareDatetime | None = None,
    commit_author: str | None = None,
) -> dict:
    """Carry `tag` to production on the configured cluster; returns the release summary.

    Args:
        tag: The version to release, vMAJOR.MINOR.PATCH with an optional pre-release (v1.2.0, v1.3.0-rc.1).
        services: Only these services (default: all four, in dependency order).
        strategy: blue-green (production's default) or canary (Istio weights with automated analysis).
        initiator: Who starts the release (the policy decides whether they may approve it).
        hotfix: Use the policy's hotfix approval rule (fewer approvers; some hotfixes are approved by policy).
        security_patch: With hotfix: the release fixes a security issue.
        severity: With hotfix: the severity of the issue it fixes.
        reason: Why now; shown to approvers and kept in the audit log.
        force: Release even if this tag is already live in production.
        commit_time: When the tag's commit was made (the trigger passes it from the GitHub event); gives the lead time for changes.
            With its UTC offset, as `git log -1 --format=%cI TAG` prints it.
        commit_author: Who wrote the tag's commit (the trigger passes it); the policy may bar them from approving.
    """
    started = time.time()
    label_this_run(tag, strategy)
    plan = plan_release(tag, services, force)
    initiated = {"services": plan.services, "strategy": strategy, "hotfix": hotfix, "reason": reason}
    if commit_time:
        initiated["commit_time"] = commit_time.isoformat()
    if commit_author:
        initiated["commit_author"] = commit_author
    audit(event="deployment_initiated", actor=initiator, release=tag, details=initiated)

    gates = run_quality_gates(tag, plan)
    if blocking := [g.summary for g in gates if g.blocks]:
        return finish(tag, "stopped by quality gates", "; ".join(blocking), plan, None, started, initiator)

    with production_release_lock() as lease, noted(ChangeNote(tag, run_url(), log=get_run_logger().info)):
        record = open_release_record(plan, strategy, initiator, lease)
        production, reached = ProductionOutcome(), Reached(record)
        try:
            staging = release_to_staging(plan)
            if staging.failure:
                return stop_before_production(record, "stopped in staging", staging.failure, plan, started, initiator)
            rejected = approve(plan, gates, staging, initiator, hotfix, security_patch, severity, reason, commit_author)
            if rejected:
                return stop_before_production(record, "rejected", rejected, plan, started, initiator)
            for earlier in pending_contracts(tag):  # contracts left to this release: their version, live now, keeps working
                migrate(record, earlier, Phase.CONTRACT, initiator, release=tag)
            migrate(record, tag, Phase.EXPAND, initiator)  # additive only: the old color keeps working (R-DB-1 step 1)
            if strategy == "canary":
                release_canary(plan, record, initiator, production)
                migrate(record, tag, Phase.BACKFILL, initiator)  # every service promoted: nothing writes the old shape
            else:
                release_blue_green(plan, record, initiator, production)  # backfills after the last switch
            release_in_dr_regions(reached, plan, strategy, initiator, lease)  # after the primary's watch passed
        except BaseException as error:  # every way out but "released" restores production, in every region (issue 10)
            why = str(error) if isinstance(error, ReleaseFailed) else f"{type(error).__name__}: {error}"
            production.restore, restored = restore_every_region(reached, why, initiator)
            if not isinstance(error, Exception):  # a cancel or a kill: restored first, then the run ends as Prefect says
                ended = {"outcome": f"stopped ({type(error).__name__})", "detail": restored}
                audit(event="deployment_failed", actor=initiator, release=tag, details=ended)
                raise
            return finish(tag, "rolled back", f"{why}; {restored}", plan, production, started, initiator)
        close_release_record(record, "released", "every service released and watched")
        if strategy == "blue-green":
            time.sleep(runtime().policy.blue_green.old_color_grace.total_seconds())
            for switch in production.switches:
                retire_old_color(switch.service, switch.from_color, record)
        close_dr_regions(reached, retire=strategy == "blue-green")
        if runtime().policy.quality_gates.database_migrations.contract == "next_release":
            return finish(tag, "released", "every service released and watched; contract waits for the next release",
                          plan, production, started, initiator)
        return finish(tag, "released", contract(record, tag, initiator), plan, production, started, initiator)


def contract(record: str, tag: str, initiator: str) -> str:
    """The contract phase, once no old color can take traffic back (R-DB-1 step 4); a failure leaves the schema
    expanded, which the released version works on, and pages instead of rolling back."""
    try:
        migrate(record, tag, Phase.CONTRACT, initiator)
    except Exception as error:  # noqa: BLE001 - released either way: the new version runs on the expanded schema
        problem = f"contract failed, the schema stays expanded until the next release runs it: {error}"
        audit(event="migration_failed", actor=initiator, release=tag, details={"phase": "contract", "reason": str(error)})
        send_alert(alert(tag, "high", f"{tag}: {problem}", {"record": record}), channels=list(runtime().policy.blue_green.notify))
        return f"every service released and watched; {problem}"
    return "every service released and watched"


def approve(plan: ReleasePlan, gates: list[GateResult], staging: StagingOutcome, initiator: str, hotfix: bool,
            security_patch: bool, severity: str, reason: str, commit_author: str | None) -> str | None:
    """The approval pause(s), then the sync window; returns why the release was rejected, or None."""
    policy = runtime().policy
    kind = "hotfix" if hotfix else "production"
    automatic = hotfix_auto_approves(policy.approvals, security_patch, severity) if hotfix else None
    if automatic:
        get_run_logger().info(automatic.reason)
        details = {"reason": automatic.reason, "rule": automatic.rule, "kind": kind}
        audit(event="approval_granted", actor="policy", release=plan.tag, details=details)
        override = True
    else:
        context = approval_context(plan, gates, staging.rows, initiator, reason)
        evidence = shown_to_approvers(plan, gates, staging)
        approvals = collect_approvals(policy.approvals, kind, initiator, plan.tag, context, evidence, commit_author)
        if approvals.rejected_by:
            return approvals.rejected_by.reason
        override = approvals.overridden_by is not None
    if not (hotfix or override or window_is_open()):
        wait_for_sync_window(next_opening())
    return None


def shown_to_approvers(plan: ReleasePlan, gates: list[GateResult], staging: StagingOutcome) -> Callable[[], ApprovalEvidence]:
    """What the approvers are shown, read again at each answer: a tag re-pushed since the codes were sent voids them."""

    def read() -> ApprovalEvidence:
        rt = runtime()
        shown = plan.model_copy(update={"images": resolve_images(plan.tag, plan.services)})
        bundle = bundle_of(rt.policy.quality_gates.database_migrations, rt.reports, plan.tag)
        return ApprovalEvidence.of(shown, gates, staging.rows, bundle)

    return read


def stop_before_production(record: str, outcome: str, detail: str, plan: ReleasePlan, started: float, initiator: str):
    """Nothing reached production: the record closes `stopped`, and the run ends Failed."""
    close_release_record(record, "stopped", f"{outcome}: {detail}")
    return finish(plan.tag, outcome, detail, plan, None, started, initiator)


def finish(tag: str, outcome: str, detail: object, plan: ReleasePlan, production: ProductionOutcome | None, started: float, initiator: str):
    """Publish the summary, record the outcome, and end the run: Completed when released, Failed otherwise."""
    rows = service_rows(plan, production)
    summary = publish_summary(tag=tag, outcome=outcome, detail=str(detail), services=rows, started=started)
    event = "deployment_completed" if outcome == "released" else "deployment_failed"
    audit(event=event, actor=initiator, release=tag, details=summary.model_dump(include={"outcome", "detail", "seconds"}))
    if outcome == "released":
        return summary.model_dump()
    message = f"{tag} {outcome}: {detail}"
    return Failed(message=message, data=ReleaseFailed(message))  # the summary is the run's artifact
