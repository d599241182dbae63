"""One round's proof: who receives a code, and each refusal a round makes of a typed code (issue 14)."""

from datetime import datetime, timedelta, timezone

from delivery.approval_proof import RoundProof, eligible_approvers
from delivery.approvals import Answer, ApprovalRound
from delivery.policy.models import ApproverChannel, Approvals

POLICY = Approvals(groups={"tech-leads": ["lead.choi", "lead.jung"], "devops-team": ["ops.lee", "lead.choi"],
                           "security-team": ["sec.yoon"]})
GROUPS = ["tech-leads", "devops-team", "security-team"]
NOW = datetime(2026, 12, 5, 2, 0, tzinfo=timezone.utc)
KEY = b"a-test-key-of-more-than-32-characters"
BEFORE, AFTER = "a" * 64, "b" * 64  # evidence digests: before and after a tag was re-pushed


def proof(eligible=("lead.choi", "lead.jung", "ops.lee", "sec.yoon")) -> RoundProof:
    return RoundProof(KEY, "run-1", "production-approval", NOW + timedelta(hours=24), tuple(eligible))


def codes_of(round_proof: RoundProof, digest: str) -> dict[str, str]:
    return {issued.approver: issued.code for issued in round_proof.issue(digest)}


def test_eligible_approvers_are_the_groups_members_once_without_the_initiator_or_the_commit_author():
    assert eligible_approvers(POLICY, GROUPS, "lead.jung", "ops.lee") == ("lead.choi", "sec.yoon")
    relaxed = POLICY.model_copy(update={"initiator_may_approve": True, "commit_author_may_approve": True})
    assert eligible_approvers(relaxed, GROUPS, "lead.jung", "ops.lee") == ("lead.choi", "lead.jung", "ops.lee", "sec.yoon")
    assert eligible_approvers(POLICY, GROUPS, "release-bot", None) == ("lead.choi", "lead.jung", "ops.lee", "sec.yoon")
    mailed = POLICY.model_copy(update={"approver_channels": {"ops.lee": ApproverChannel(email="Ops.Lee@tripgen.com")}})
    assert "ops.lee" not in eligible_approvers(mailed, GROUPS, "release-bot", "ops.lee@tripgen.com")  # git's %ae


def test_each_approver_gets_a_code_of_their_own_and_two_distinct_codes_approve_once_each():
    round_proof = proof()
    codes = codes_of(round_proof, BEFORE)
    assert len(set(codes.values())) == 4
    assert round_proof.check("lead.choi", codes["lead.choi"], BEFORE, NOW).accepted
    assert round_proof.check("ops.lee", codes["ops.lee"], BEFORE, NOW).accepted
    again = round_proof.check("lead.choi", codes["lead.choi"], BEFORE, NOW)
    assert again.outcome == "reused"


def test_no_code_a_wrong_one_another_approvers_and_an_expired_one_are_refused_without_the_code_in_the_reason():
    round_proof = proof()
    codes = codes_of(round_proof, BEFORE)
    checks = {
        "missing": round_proof.check("lead.choi", "", BEFORE, NOW),
        "wrong": round_proof.check("lead.choi", "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA", BEFORE, NOW),
        "another-approver": round_proof.check("lead.choi", codes["lead.jung"], BEFORE, NOW),
        "expired": round_proof.check("lead.choi", codes["lead.choi"], BEFORE, NOW + timedelta(hours=24)),
    }
    assert {outcome: check.outcome for outcome, check in checks.items()} == {outcome: outcome for outcome in checks}
    assert not any(code in check.reason for check in checks.values() for code in codes.values())
    assert not round_proof.used  # nothing refused is used up


def test_a_code_issued_before_the_evidence_changed_is_stale_and_the_new_one_approves():
    round_proof = proof()
    old = codes_of(round_proof, BEFORE)
    assert round_proof.check("lead.choi", old["lead.choi"], AFTER, NOW).outcome == "stale-evidence"
    new = codes_of(round_proof, AFTER)
    assert round_proof.current_digest == AFTER
    assert round_proof.check("lead.choi", old["lead.choi"], AFTER, NOW).outcome == "stale-evidence"
    assert round_proof.check("lead.choi", new["lead.choi"], AFTER, NOW).accepted


def test_the_round_refuses_the_tags_commit_author_unless_the_policy_allows():
    barred = ApprovalRound(POLICY, "production", "release-bot", commit_author="lead.jung")
    assert barred.consider(Answer("lead.jung", True)).reason == "lead.jung wrote the tag's commit and cannot approve or reject it"
    allowed = ApprovalRound(POLICY.model_copy(update={"commit_author_may_approve": True}), "production", "release-bot",
                            commit_author="lead.jung")
    assert allowed.consider(Answer("lead.jung", True)).outcome == "accepted"


def test_the_proofs_repr_shows_no_key():
    assert repr(KEY)[2:-1] not in repr(proof())
