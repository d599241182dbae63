"""One approval round's proof (R-SEC-3): who gets a personal code, and whether a typed code proves an answer.
Holds no code: codes are issued where they are sent, and checked by recomputing their HMAC."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from delivery.approval_codes import CodeCheck, IssuedCode, issue_code, verify_code
from delivery.approvals import is_commit_author
from delivery.policy.models import Approvals


def eligible_approvers(policy: Approvals, groups: Iterable[str], initiator: str, commit_author: str | None) -> tuple[str, ...]:
    """Members of `groups` who may answer: not the initiator, nor the tag's commit author, unless the policy allows."""
    people = dict.fromkeys(name for group in groups for name in policy.groups.get(group, []))
    return tuple(name for name in people
                 if (policy.initiator_may_approve or name != initiator.strip())
                 and (policy.commit_author_may_approve or not is_commit_author(policy, name, commit_author)))


@dataclass
class RoundProof:
    """The codes of one round: bound to its run, its key and its expiry, and to each evidence digest issued."""

    key: bytes = field(repr=False)
    flow_run_id: str
    round_key: str
    expires_at: datetime
    eligible: tuple[str, ...]
    digests: list[str] = field(default_factory=list)  # oldest first: codes of earlier digests are stale
    used: set[str] = field(default_factory=set)  # code ids that counted once

    @property
    def current_digest(self) -> str | None:
        return self.digests[-1] if self.digests else None

    def issue(self, evidence_digest: str) -> list[IssuedCode]:
        """Every eligible approver's code for `evidence_digest` (again after the evidence changed)."""
        self.digests.append(evidence_digest)
        return [issue_code(self.key, self.flow_run_id, self.round_key, who, evidence_digest, self.expires_at)
                for who in self.eligible]

    def check(self, approver: str, code: str | None, evidence_digest: str, now: datetime) -> CodeCheck:
        """Whether `code` proves `approver`'s answer on the evidence as it is now; an accepted code is used up."""
        earlier = [d for d in self.digests if d != evidence_digest]
        check = verify_code(self.key, code, self.flow_run_id, self.round_key, approver.strip(), evidence_digest, now,
                            self.used, eligible=self.eligible, earlier_digests=earlier)
        if check.accepted and check.code_id:
            self.used.add(check.code_id)
        return check
