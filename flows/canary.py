"""Production, canary (R-CAN): per service, weights step up under analysis; any failure restores stable."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from delivery.approvals import may_decide
from delivery.judge import make_judge
from delivery.release.canary import PROMOTED, CanaryStep, canary_breach, canary_steps
from delivery.release.runtime import runtime
from flows.production import ProductionOutcome, ReleaseFailed
from tasks.canary import abort_canary, analyse_interval, deploy_canary, promote_canary, restore_stable, set_canary_weight
from tasks.records import audit


class CanaryDecision(RunInput):
    """A manual point in a canary: go on to the next step, promote fully now, or abort."""

    approver: str = Field(description="Your user name, as listed in the policy's approver groups")
    action: Literal["continue", "promote", "abort"] = Field(
        default="continue", description="continue: the next step; promote: skip the remaining steps; abort: roll back now"
    )
    comment: str = ""


@dataclass
class CanaryRun:
    """One service's canary as it goes: the judge, the analysis rows, the interval count."""

    service: str
    tag: str
    initiator: str
    live: str
    judge: object
    rows: list[dict] = field(default_factory=list)
    numbers: itertools.count = field(default_factory=lambda: itertools.count(1))
    intervals: int = 0
    failed_checks: int = 0


def release_canary(plan: dict, initiator: str) -> ProductionOutcome:
    """Groups in order, one service at a time; a failure restores every service promoted before it."""
    outcome = ProductionOutcome()
    try:
        for group in plan["groups"]:
            for service in group:
                canary_one_service(service, plan, initiator, outcome)
    except ReleaseFailed as failure:
        outcome.failure = str(failure)
        for switch in reversed(outcome.switches):
            back = restore_stable(switch["service"], plan["previous"][switch["service"]], switch["from"])
            outcome.switched_back.append(back)
            audit(event="rollback_executed", actor=initiator, release=plan["tag"], details={**back, "reason": outcome.failure})
    return outcome


def canary_one_service(service: str, plan: dict, initiator: str, outcome: ProductionOutcome) -> None:
    """Deploy the canary, walk the steps under analysis, then promote — or abort and raise ReleaseFailed."""
    policy = runtime().policy
    image = plan["images"][service]["by_digest"]
    run = CanaryRun(service, plan["tag"], initiator, deploy_canary(service, image), make_judge(policy.canary))
    progress = create_progress_artifact(0.0, key=f"canary-{service}", description=f"{service}: canary weight (%)")
    try:
        walk_steps(run, progress)
    except ReleaseFailed as failure:
        abort_canary(service, run.live, run.tag, str(failure))
        audit(event="canary_aborted", actor=initiator, release=run.tag, details={"service": service, "reason": str(failure)})
        raise
    finally:
        create_table_artifact(run.rows or [{"result": "no analysis"}], key=f"canary-analysis-{service}", description=f"{service}: canary analysis")
    promote_canary(service, image, run.live)
    update_progress_artifact(progress, PROMOTED)
    outcome.switches.append({"service": service, "from": run.live, "to": f"{run.live} (promoted)", "seconds": 0.0})
    outcome.watches[service] = {"service": service, "passed": True, "checks": run.intervals, "failed_checks": run.failed_checks, "reason": "promoted"}
    audit(event="canary_promoted", actor=initiator, release=run.tag, details={"service": service, "intervals": run.intervals})


def walk_steps(run: CanaryRun, progress) -> None:
    """Each step: maybe a person decides first, then the weight, then its analysis intervals."""
    policy = runtime().policy
    for step in canary_steps(policy.canary):
        if step.pause_before and decide(run, f"before the {step.weight:g}% step") == "promote":
            return
        set_canary_weight(run.service, step.weight)
        update_progress_artifact(progress, step.weight)
        for _ in range(step.intervals(policy.canary.analysis.interval)):
            if analyse_and_judge(run, step) == "promote":
                return


def analyse_and_judge(run: CanaryRun, step: CanaryStep) -> str:
    """One interval: read the evidence and judge it; returns 'continue' or 'promote', raises ReleaseFailed to abort."""
    policy = runtime().policy
    number = next(run.numbers)
    evidence = analyse_interval(run.service, run.live, number)
    verdict = run.judge.judge(evidence)
    run.intervals, run.failed_checks = number, verdict.failed_checks
    run.rows += [{"interval": number, "weight": step.weight, **row} for row in verdict.rows]
    canary = evidence.canary
    breach = canary_breach(step, canary.errors, canary.requests, policy) if canary else None
    if breach:
        raise ReleaseFailed(f"{run.service}: {breach}")
    if verdict.outcome == "rollback":
        raise ReleaseFailed(f"{run.service}: " + "; ".join(verdict.reasons))
    if verdict.outcome == "inconclusive" and policy.canary.on_inconclusive == "pause":
        return decide(run, f"analysis {number} was inconclusive: {'; '.join(verdict.reasons)}")
    return "continue"


def decide(run: CanaryRun, why: str) -> str:
    """Pause for a person: continue, promote fully now (recorded), or abort (raises ReleaseFailed)."""
    policy, log = runtime().policy, get_run_logger()
    for asked in itertools.count(1):
        form = CanaryDecision.with_initial_data(description=f"## {run.service} canary of {run.tag}\n\nManual point: {why}.\n", action="continue")
        answer = pause_flow_run(
            wait_for_input=form,
            timeout=int(policy.approvals.timeout.total_seconds()),
            poll_interval=int(policy.approvals.poll_interval.total_seconds()),
            key=f"canary-{run.service}-{next(run.numbers)}-{asked}",
        )
        if not may_decide(policy.approvals, answer.approver):
            log.warning("%s may not steer a production canary; asking again", answer.approver)
            continue
        if answer.action == "abort":
            raise ReleaseFailed(f"{run.service}: aborted by {answer.approver}: {answer.comment or 'no comment'}")
        if answer.action == "promote":
            details = {"service": run.service, "point": why, "comment": answer.comment, "manual": True}
            audit(event="canary_promoted", actor=answer.approver, release=run.tag, details=details)
            log.info("%s: full promotion by %s; remaining steps skipped", run.service, answer.approver)
        return answer.action
    raise AssertionError("unreachable")
