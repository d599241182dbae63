"""Who may approve what (R-SEC-3, R-RB): a pure state machine the release and rollback flows consult."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from delivery.policy.models import ApprovalRule, Approvals
from delivery.units import format_duration

Kind = Literal["production", "hotfix", "staging", "rollback"]
Outcome = Literal["accepted", "refused", "rejected"]


@dataclass(frozen=True)
class Answer:
    """What an approver submitted through the pause form."""

    approver: str
    approve: bool
    comment: str = ""


@dataclass(frozen=True)
class Decision:
    """What the flow did with one answer: accepted, refused (asked again) or rejected (release ends)."""

    outcome: Outcome
    approver: str
    reason: str
    override: bool = False


@dataclass
class ApprovalRound:
    """The approvals one release collects; `complete` once enough distinct eligible people approved."""

    policy: Approvals
    kind: Kind
    initiator: str
    commit_author: str | None = None  # the tag's commit author, when the trigger passed it
    accepted: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    overridden_by: str | None = None
    rejected_by: Decision | None = None

    @property
    def rule(self) -> ApprovalRule:
        return getattr(self.policy, self.kind)

    @property
    def complete(self) -> bool:
        return self.overridden_by is not None or len(self.accepted) >= self.rule.approvers

    @property
    def still_needed(self) -> int:
        return 0 if self.complete else self.rule.approvers - len(self.accepted)

    def eligible_groups(self) -> list[str]:
        """The groups whose members may answer this round (the override group included where it applies)."""
        groups = list(self.rule.groups)
        if self.kind in ("production", "hotfix"):
            groups += [g for g in self.policy.emergency_override.groups if g not in groups]
        return groups

    def consider(self, answer: Answer) -> Decision:
        """Judge one answer and record it; never raises for a bad answer (the flow asks again)."""
        decision = self._judge(answer)
        self.decisions.append(decision)
        if decision.outcome == "accepted":
            if decision.override:
                self.overridden_by = decision.approver
            else:
                self.accepted.append(decision.approver)
        elif decision.outcome == "rejected":
            self.rejected_by = decision
        return decision

    def consider_timeout(self, waited: timedelta) -> Decision:
        """No decision in time: the policy's timeout counts as a rejection."""
        decision = Decision("rejected", "timeout", f"rejected by timeout: no decision within {format_duration(waited)}")
        self.decisions.append(decision)
        self.rejected_by = decision
        return decision

    def _judge(self, answer: Answer) -> Decision:
        name = answer.approver.strip()
        if not name:
            return Decision("refused", name, "the approver's name is empty: type your user name")
        if self.complete or self.rejected_by:
            return Decision("refused", name, "this approval round is already decided")
        if name == self.initiator.strip() and not self.policy.initiator_may_approve:
            return Decision("refused", name, f"{name} started this release and cannot approve or reject it")
        if is_commit_author(self.policy, name, self.commit_author) and not self.policy.commit_author_may_approve:
            return Decision("refused", name, f"{name} wrote the tag's commit and cannot approve or reject it")
        in_rule = self._member_of(name, self.rule.groups)
        in_override = self.kind in ("production", "hotfix") and self._member_of(name, self.policy.emergency_override.groups)
        if not (in_rule or in_override):
            groups = ", ".join(self.eligible_groups())
            return Decision("refused", name, f"{name} is not a member of {groups}")
        if not answer.approve:
            comment = answer.comment.strip() or "no comment"
            return Decision("rejected", name, f"rejected by {name}: {comment}")
        if name in self.accepted:
            return Decision("refused", name, f"{name} has already approved; a second approver is needed")
        if in_override and not in_rule:
            return Decision("accepted", name, f"emergency override by {name} ({', '.join(self.policy.emergency_override.groups)})", override=True)
        remaining = self.rule.approvers - len(self.accepted) - 1
        more = f"; {remaining} more needed" if remaining > 0 else ""
        return Decision("accepted", name, f"approved by {name}{more}")

    def _member_of(self, name: str, groups: list[str]) -> bool:
        return any(name in self.policy.groups.get(group, []) for group in groups)


def is_commit_author(policy: Approvals, name: str, commit_author: str | None) -> bool:
    """Whether `name` wrote the tag's commit: the trigger passes the author's e-mail (or a user name), matched
    against the name and the approver's e-mail channel."""
    if not commit_author:
        return False
    channel = policy.approver_channels.get(name)
    known = {name.strip().lower(), (channel.email or "").lower() if channel else ""}
    return commit_author.strip().lower() in known


def decider_groups(policy: Approvals) -> list[str]:
    """The groups whose members may steer production at a canary's manual point: production's and the override's."""
    return list(dict.fromkeys([*policy.production.groups, *policy.emergency_override.groups]))


@dataclass(frozen=True)
class AutoApproval:
    """Why a hotfix needs no person's approval: the reason, and the policy rule that approved it (for the audit)."""

    reason: str
    rule: str


def hotfix_auto_approves(policy: Approvals, security_patch: bool, severity: str) -> AutoApproval | None:
    """The policy rule that approves this hotfix by itself (R-SEC-3), or None when people must."""
    if security_patch and policy.hotfix.auto_approve_security_patch:
        return AutoApproval("hotfix auto-approved: security patch", "approvals.hotfix.auto_approve_security_patch")
    if severity.lower() == "critical" and policy.hotfix.auto_approve_critical_severity:
        return AutoApproval("hotfix auto-approved: critical severity", "approvals.hotfix.auto_approve_critical_severity")
    return None
