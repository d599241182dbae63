"""Production, canary (R-CAN): per service, weights step up under analysis, then promotion.

Every step is recorded before it changes production. A failed analysis, an abort, a manual point
that times out, or any error raises; the release flow's restore path then puts every service this
release touched back to its rollback target (flows/release.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from delivery.approval_codes import ApprovalEvidence, approval_key
from delivery.approval_delivery import CODE_ID, EVIDENCE_DIGEST
from delivery.approval_proof import RoundProof, eligible_approvers
from delivery.approvals import decider_groups
from delivery.judge import Judge, SideSample, make_judge
from delivery.notify.credentials import PrefectSecrets
from delivery.release.canary import PROMOTED, canary_steps
from delivery.release.canary_schedule import Analyse, AskPerson, SetWeight, canary_schedule, judge_interval
from delivery.release.runtime import runtime
from delivery.release.state import ProductionOutcome, ReleaseFailed, ReleasePlan, SwitchResult, WatchResult
from delivery.timing import timed
from flows.approval import refuse, resume_after_timeout, send_codes
from tasks.canary import analyse_interval, deploy_canary, promote_canary, set_canary_weight
from tasks.records import audit
from tasks.release_record import ensure_lock_held


class CanaryDecision(RunInput):
    """A manual point in a canary: go on to the next step, promote fully now, or abort."""

    approver: str = Field(description="Your user name, as listed in the policy's approver groups")
    code: str = Field(default="", description="The personal code you were sent for this manual point")
    action: Literal["continue", "promote", "abort"] = Field(
        default="continue", description="continue: the next step; promote: skip the remaining steps; abort: roll back now"
    )
    comment: str = ""


@dataclass
class CanaryRun:
    """One service's canary as it goes: the judge, the analysis rows, the counts (the canary's 5xx and requests summed
    over its analysed intervals, in whole requests as the judge counts them)."""

    service: str
    tag: str
    record: str
    live: str
    judge: Judge
    initiator: str
    evidence: ApprovalEvidence  # what a person steering it decides on: the tag and the canary's digest
    rows: list[dict] = field(default_factory=list)
    pauses: itertools.count = field(default_factory=lambda: itertools.count(1))
    points: itertools.count = field(default_factory=lambda: itertools.count(1))
    intervals: int = 0
    failed_checks: int = 0
    errors: int = 0
    requests: int = 0

    def count(self, canary: SideSample | None) -> None:
        """Add one interval's canary sample (none when it could not be read)."""
        if canary:
            self.requests += round(canary.requests)
            self.errors += min(round(canary.errors), round(canary.requests))

    def totals(self) -> dict[str, str | int]:
        """The audit details every canary_promoted and canary_aborted carries."""
        return {"service": self.service, "errors": self.errors, "requests": self.requests}


def release_canary(plan: ReleasePlan, record: str, initiator: str, outcome: ProductionOutcome) -> None:
    """Groups in order, one service at a time: deploy the canary, walk the steps under analysis, promote."""
    for group in plan.groups:
        for service in group:
            canary_one_service(service, plan, record, initiator, outcome)


def canary_one_service(service: str, plan: ReleasePlan, record: str, initiator: str, outcome: ProductionOutcome) -> None:
    policy = runtime().policy
    image = plan.images[service].by_digest
    shown = ApprovalEvidence(tag=plan.tag, images={service: plan.images[service].digest}, gates={}, staging={})
    run = CanaryRun(service, plan.tag, record, deploy_canary(service, image, record), make_judge(policy.canary), initiator, shown)
    progress = create_progress_artifact(0.0, key=f"canary-{service}", description=f"{service}: canary weight (%)")
    try:
        walk_steps(run, progress)
    except ReleaseFailed as failure:
        audit(event="canary_aborted", actor=initiator, release=run.tag, details={**run.totals(), "reason": str(failure)})
        raise
    finally:
        create_table_artifact(run.rows or [{"result": "no analysis"}], key=f"canary-analysis-{service}", description=f"{service}: canary analysis")
    promote_canary(service, image, run.live, record)
    update_progress_artifact(progress, PROMOTED)
    outcome.switches.append(SwitchResult(service=service, from_color=run.live, to_color=f"{run.live} (promoted)", seconds=0.0))
    outcome.watches[service] = WatchResult(service=service, passed=True, reason="promoted", checks=run.intervals, failed_checks=run.failed_checks)
    audit(event="canary_promoted", actor=initiator, release=run.tag, details={**run.totals(), "intervals": run.intervals})


def walk_steps(run: CanaryRun, progress) -> None:
    """Follow the canary's schedule: manual points, weights, analysis intervals; returns when fully promoted early or done."""
    policy = runtime().policy
    for action in canary_schedule(canary_steps(policy.canary), policy.canary.analysis.interval):
        if isinstance(action, AskPerson) and decide(run, action.why) == "promote":
            return
        if isinstance(action, SetWeight):
            set_canary_weight(run.service, action.step.weight, run.record)
            update_progress_artifact(progress, action.step.weight)
        if isinstance(action, Analyse) and analyse(run, action) == "promote":
            return


def analyse(run: CanaryRun, action: Analyse) -> str:
    """One interval: read the evidence, judge it; 'continue' or 'promote' (a person's choice), raises ReleaseFailed."""
    evidence = analyse_interval(run.service, run.live, action.number)
    ensure_lock_held()
    run.count(evidence.canary)
    verdict = run.judge.judge(evidence)
    run.intervals, run.failed_checks = action.number, verdict.failed_checks
    run.rows += [{"interval": action.number, "weight": action.step.weight, **row} for row in verdict.rows]
    canary = evidence.canary
    judged = judge_interval(action.step, verdict, canary.errors if canary else None, canary.requests if canary else None, runtime().policy)
    if judged.action == "abort":
        raise ReleaseFailed(f"{run.service}: {judged.reason}")
    if judged.action == "ask":
        return decide(run, f"analysis {action.number}: {judged.reason}")
    return "continue"


def decide(run: CanaryRun, why: str) -> str:
    """Pause for a person: continue, promote fully now (recorded), or abort; no answer in time aborts too. Each
    person who may steer production gets a personal code for this point; an answer counts only with theirs."""
    policy, log = runtime().policy, get_run_logger()
    deadline = datetime.now(timezone.utc) + policy.approvals.timeout
    point = f"canary-{run.service}-point-{next(run.points)}"
    proof = RoundProof(approval_key(runtime().settings, PrefectSecrets()), str(flow_run.id), point, deadline,
                       eligible_approvers(policy.approvals, decider_groups(policy.approvals), run.initiator, None))
    send_codes(proof, run.evidence, run.tag)
    while True:
        form = CanaryDecision.with_initial_data(description=f"## {run.service} canary of {run.tag}\n\nManual point: {why}.\n", action="continue")
        try:
            with timed("approvals"):
                answer = pause_flow_run(
                    wait_for_input=form,
                    timeout=int(policy.approvals.timeout.total_seconds()),
                    poll_interval=policy.approvals.poll_interval.total_seconds(),  # type: ignore[arg-type]
                    key=f"canary-{run.service}-{next(run.pauses)}",
                )
        except FlowPauseTimeout:
            resume_after_timeout("canary manual point timed out: restoring stable")
            raise ReleaseFailed(f"{run.service}: no decision at the manual point ({why}) within {policy.approvals.timeout}") from None
        name = answer.approver.strip()
        if name not in proof.eligible:
            refuse(name, run.tag, f"{name or '(empty)'} may not steer this production canary", {})
            continue
        check = proof.check(name, answer.code, run.evidence.digest(), datetime.now(timezone.utc))
        proven = {"proof": check.outcome, CODE_ID: check.code_id, EVIDENCE_DIGEST: run.evidence.digest()}
        if not check.accepted:
            refuse(name, run.tag, check.reason, proven)
            continue
        if answer.action == "abort":
            raise ReleaseFailed(f"{run.service}: aborted by {name}: {answer.comment or 'no comment'}")
        if answer.action == "promote":
            details = {**run.totals(), "point": why, "comment": answer.comment, "manual": True, CODE_ID: check.code_id}
            audit(event="canary_promoted", actor=name, release=run.tag, details=details)
            log.info("%s: full promotion by %s; remaining steps skipped", run.service, name)
        return answer.action
