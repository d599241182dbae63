"""The approval pause (R-SEC-3): a typed form, answers judged by the policy, asked again until decided."""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import get_client, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Running
from pydantic import Field

from delivery.approvals import Answer, ApprovalRound, Kind
from delivery.policy.models import Approvals
from delivery.release.describe import approval_status
from tasks.notifications import alert, send_alert
from tasks.records import audit


class ApprovalForm(RunInput):
    """What an approver fills in on the paused run's Resume form."""

    approver: str = Field(description="Your user name, as listed in the release policy's approver groups")
    approve: bool = Field(default=True, description="Yes to approve this release, no to reject it")
    comment: str = Field(default="", description="Why (shown in the audit log and the summary)")


def collect_approvals(policy: Approvals, kind: Kind, initiator: str, tag: str, context_markdown: str) -> ApprovalRound:
    """Pause until the round is complete, rejected or timed out; refused answers are logged and asked again."""
    log = get_run_logger()
    approvals = ApprovalRound(policy, kind, initiator)
    deadline = datetime.now(timezone.utc) + policy.timeout
    numbers = {"approvals needed": approvals.rule.approvers, "from": ", ".join(approvals.eligible_groups()), "initiator": initiator}
    send_alert(alert(tag, "medium", f"{tag}: {kind} waits for approval", numbers))
    asked = 0
    while not approvals.complete and approvals.rejected_by is None:
        remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
        if remaining <= 0:
            approvals.consider_timeout(policy.timeout)
            break
        asked += 1
        form = ApprovalForm.with_initial_data(description=context_markdown + approval_status(approvals), approve=True)
        try:
            answer = pause_flow_run(
                wait_for_input=form,
                timeout=int(remaining),
                poll_interval=policy.poll_interval.total_seconds(),  # type: ignore[arg-type]  (a float sleeps as well)
                key=f"approval-{asked}",
            )
        except FlowPauseTimeout:
            approvals.consider_timeout(policy.timeout)
            resume_after_timeout("approval timed out: recording the rejection")
            break
        decision = approvals.consider(Answer(answer.approver, answer.approve, answer.comment))
        if decision.outcome == "refused":
            log.warning("approval refused: %s; asking again", decision.reason)
            audit(event="approval_refused", actor=decision.approver or "(empty)", release=tag, details={"reason": decision.reason})
        elif decision.outcome == "accepted":
            log.info(decision.reason)
            details = {"comment": answer.comment, "override": decision.override, "kind": kind}
            audit(event="approval_granted", actor=decision.approver, release=tag, details=details)
        else:
            log.warning(decision.reason)
            audit(event="approval_rejected", actor=decision.approver, release=tag, details={"comment": answer.comment})
    return approvals


def resume_after_timeout(message: str) -> None:
    """An expired pause can no longer resume by the rules; the flow takes its run back (Running) to finish."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(message=message), force=True)
