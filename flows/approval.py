"""The approval pause (R-SEC-3): each eligible approver gets a personal code bound to the evidence shown; an answer
counts only with its approver's code, and is judged by the policy; refused answers are asked again until decided."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from prefect import get_client, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.settings import PREFECT_UI_URL
from prefect.states import Running
from pydantic import Field

from delivery.approval_codes import ApprovalEvidence, approval_key
from delivery.approval_delivery import CODE_ID, EVIDENCE_DIGEST, CodeMessage, deliver_codes
from delivery.approval_proof import RoundProof, eligible_approvers
from delivery.approvals import Answer, ApprovalRound, Kind
from delivery.notify.credentials import PrefectSecrets
from delivery.policy.models import Approvals
from delivery.release.describe import approval_status
from delivery.release.runtime import runtime
from delivery.timing import timed
from tasks.notifications import alert, send_alert
from tasks.records import audit


class ApprovalForm(RunInput):
    """What an approver fills in on the paused run's Resume form."""

    approver: str = Field(description="Your user name, as listed in the release policy's approver groups")
    code: str = Field(default="", description="The personal code you were sent for this approval (XXXX-XXXX-XXXX-XXXX-XXXX-XXXX)")
    approve: bool = Field(default=True, description="Yes to approve this release, no to reject it")
    comment: str = Field(default="", description="Why (shown in the audit log and the summary)")


def collect_approvals(policy: Approvals, kind: Kind, initiator: str, tag: str, context_markdown: str,
                      evidence: Callable[[], ApprovalEvidence], commit_author: str | None = None) -> ApprovalRound:
    """Send the codes, then pause until the round is complete, rejected or timed out; refused answers are audited and
    asked again. `evidence` reads what the approvers are shown anew: when it changed, earlier codes are void and
    new ones are sent."""
    log = get_run_logger()
    approvals = ApprovalRound(policy, kind, initiator, commit_author)
    deadline = datetime.now(timezone.utc) + policy.timeout
    proof = RoundProof(approval_key(runtime().settings, PrefectSecrets()), str(flow_run.id), f"{kind}-approval",
                       code_expiry(policy, deadline), eligible_approvers(policy, approvals.eligible_groups(), initiator, commit_author))
    send_codes(proof, evidence(), tag)
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
            with timed("approvals"):
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
        shown = evidence()
        judge(approvals, proof, answer, shown.digest(), tag)
        if approvals.complete or approvals.rejected_by:
            break
        if shown.digest() != proof.current_digest:
            log.warning("the evidence of %s changed since the codes were sent: earlier codes are void; sending new ones", tag)
            send_codes(proof, shown, tag)
        elif datetime.now(timezone.utc) >= proof.expires_at:
            log.info("the codes sent for %s expired at %s; sending new ones", tag, proof.expires_at)
            proof.expires_at = code_expiry(policy, deadline)
            send_codes(proof, shown, tag)
    return approvals


def code_expiry(policy: Approvals, deadline: datetime) -> datetime:
    """When codes sent now expire: after the policy's code lifetime, or with the round if that comes first (in whole
    seconds, as the codes carry it)."""
    return min(deadline, datetime.now(timezone.utc) + policy.code_lifetime).replace(microsecond=0)


def judge(approvals: ApprovalRound, proof: RoundProof, answer: ApprovalForm, digest: str, tag: str) -> None:
    """An answer counts only with its approver's code (names the round cannot accept are refused by the policy)."""
    log = get_run_logger()
    name = answer.approver.strip()
    check = proof.check(name, answer.code, digest, datetime.now(timezone.utc)) if name in proof.eligible else None
    proven = {CODE_ID: check.code_id, EVIDENCE_DIGEST: digest} if check else {}
    if check is not None and not check.accepted:
        refuse(name, tag, check.reason, {"proof": check.outcome, **proven})
        return
    decision = approvals.consider(Answer(name, answer.approve, answer.comment))
    if decision.outcome == "refused":
        refuse(decision.approver, tag, decision.reason, proven)
    elif decision.outcome == "accepted":
        log.info(decision.reason)
        details = {"comment": answer.comment, "override": decision.override, "kind": approvals.kind, **proven}
        audit(event="approval_granted", actor=decision.approver, release=tag, details=details)
    else:
        log.warning(decision.reason)
        audit(event="approval_rejected", actor=decision.approver, release=tag, details={"comment": answer.comment, **proven})


def refuse(approver: str, tag: str, reason: str, details: dict) -> None:
    get_run_logger().warning("approval refused: %s; asking again", reason)
    audit(event="approval_refused", actor=approver or "(empty)", release=tag, details={"reason": reason, **details})


def send_codes(proof: RoundProof, shown: ApprovalEvidence, tag: str) -> None:
    """Issue and send every eligible approver's code for `shown`, in the flow itself: a code never becomes a task's
    parameter or result. The audit records the code ids and where each went."""
    rt = runtime()
    ui_url = rt.settings.prefect_ui_url or PREFECT_UI_URL.value() or "http://localhost:4200"
    messages = [CodeMessage.of(issued, shown, proof.flow_run_id, ui_url) for issued in proof.issue(shown.digest())]
    deliveries = deliver_codes(messages, rt.policy.approvals.approver_channels, rt.credentials, rt.http)
    sent = {d.approver: {"code_id": d.code_id, "channel": d.channel, "sent": d.sent, "detail": d.detail} for d in deliveries}
    audit(event="approval_requested", actor="release", release=tag,
          details={"round": proof.round_key, EVIDENCE_DIGEST: shown.digest(), "codes": sent})
    if unsent := [d for d in deliveries if not d.sent]:
        problems = {d.approver: d.detail for d in unsent}
        send_alert(alert(tag, "high", f"{tag}: approval codes not delivered to {', '.join(problems)}", problems))


def resume_after_timeout(message: str) -> None:
    """An expired pause can no longer resume by the rules; the flow takes its run back (Running) to finish."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(message=message), force=True)
