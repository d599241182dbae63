"""Approval rules: two distinct eligible approvers for production, refusals that ask again, overrides."""

import pytest

from delivery.approvals import Answer, ApprovalRound, hotfix_auto_approves
from delivery.policy.models import Approvals

POLICY = Approvals()  # tech-leads: lead.choi, lead.jung; devops-team: ops.lee, ops.kang; security-team: sec.yoon


def _round(kind="production", initiator="lead.choi"):
    return ApprovalRound(POLICY, kind, initiator)


def test_two_distinct_members_complete_a_production_approval():
    r = _round()
    assert r.consider(Answer("lead.jung", True)).reason == "approved by lead.jung; 1 more needed"
    assert not r.complete and r.still_needed == 1
    assert r.consider(Answer("ops.lee", True, "LGTM")).outcome == "accepted"
    assert r.complete and r.accepted == ["lead.jung", "ops.lee"]


@pytest.mark.parametrize(
    "answers, reason",
    [
        ([Answer("dev.kim", True)], "dev.kim is not a member of tech-leads, devops-team, security-team"),
        ([Answer("lead.choi", True)], "lead.choi started this release and cannot approve or reject it"),
        ([Answer("ops.lee", True), Answer("ops.lee", True)], "ops.lee has already approved; a second approver is needed"),
        ([Answer("  ", True)], "the approver's name is empty: type your user name"),
    ],
)
def test_refusals_ask_again_without_failing(answers, reason):
    r = _round()
    decisions = [r.consider(a) for a in answers]
    assert decisions[-1].outcome == "refused" and decisions[-1].reason == reason
    assert not r.complete and r.rejected_by is None


def test_a_rejection_ends_the_round_with_the_comment():
    r = _round()
    decision = r.consider(Answer("ops.kang", False, "error budget exhausted"))
    assert decision.outcome == "rejected" and decision.reason == "rejected by ops.kang: error budget exhausted"
    assert r.rejected_by is decision and not r.complete
    assert r.consider(Answer("ops.lee", True)).outcome == "refused"


def test_a_rejection_from_a_non_member_does_not_count():
    r = _round()
    assert r.consider(Answer("dev.park", False, "no")).outcome == "refused"
    assert r.rejected_by is None


def test_the_security_team_may_override_alone():
    r = _round()
    decision = r.consider(Answer("sec.yoon", True, "CVE fix, ship now"))
    assert decision.override and r.complete and r.overridden_by == "sec.yoon" and r.accepted == []


def test_hotfix_needs_one_tech_lead():
    r = _round("hotfix", initiator="ops.lee")
    assert r.consider(Answer("ops.kang", True)).outcome == "refused"
    assert r.consider(Answer("lead.jung", True)).outcome == "accepted" and r.complete


def test_rollback_needs_one_from_devops_or_tech_leads_and_no_override_path():
    r = _round("rollback", initiator="ops.lee")
    assert r.consider(Answer("sec.yoon", True)).outcome == "refused"
    assert r.consider(Answer("ops.kang", True)).outcome == "accepted" and r.complete


@pytest.mark.parametrize(
    "security_patch, severity, expected",
    [(True, "high", ("security patch", "approvals.hotfix.auto_approve_security_patch")),
     (False, "critical", ("critical severity", "approvals.hotfix.auto_approve_critical_severity")), (False, "high", None)],
)
def test_hotfix_auto_approval_names_the_rule(security_patch, severity, expected):
    automatic = hotfix_auto_approves(POLICY, security_patch, severity)
    assert (automatic is None) if expected is None else (expected[0] in automatic.reason and automatic.rule == expected[1])


def test_initiator_may_approve_when_policy_allows():
    r = ApprovalRound(POLICY.model_copy(update={"initiator_may_approve": True}), "production", "lead.choi")
    assert r.consider(Answer("lead.choi", True)).outcome == "accepted"


def test_a_timeout_counts_as_a_rejection():
    from datetime import timedelta

    r = _round()
    r.consider(Answer("ops.lee", True))
    decision = r.consider_timeout(timedelta(hours=24))
    assert r.rejected_by is decision and decision.reason == "rejected by timeout: no decision within 24h"
