"""Personal approval codes: each refusal of issue 14, two approvers accepted, and the evidence digest's coverage."""

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from delivery.approval_codes import (
    ApprovalEvidence, ApprovalKeyError, CodeCheck, approval_key, code_id, issue_code, verify_code,
)
from delivery.migrations.bundle import MigrationBundle, MigrationFile, Phase
from delivery.release.state import CheckRow, GateResult, ImageRef, ReleasePlan
from delivery.settings import Settings

KEY = b"k" * 32 + b"-test-approval-code-key"
RUN, PAUSE = "6f1c2a9e-0d7b-4e0a-9a55-3f4a1d2b7c10", "approve-production-1"
ELIGIBLE = ["lead.choi", "lead.jung", "ops.lee", "ops.kang", "sec.yoon"]
NOW = datetime(2025, 5, 12, 2, 30, tzinfo=timezone.utc)
EXPIRES = NOW + timedelta(hours=24)
SERVICES = ["user-service", "location-service", "trip-service", "ai-service"]


def _plan(tag="v1.3.0", digests=None):
    digests = digests or {s: f"sha256:{i:064x}" for i, s in enumerate(SERVICES, 1)}
    images = {s: ImageRef(by_digest=f"r/{s}@{d}", by_tag=f"r/{s}:{tag}", digest=d) for s, d in digests.items()}
    return ReleasePlan(tag=tag, services=SERVICES, groups=[SERVICES[:2], SERVICES[2:3], SERVICES[3:]], images=images,
                       previous=dict.fromkeys(SERVICES))


def _gate(name, verdict="passed"):
    return GateResult(gate=name, required=True, verdict=verdict, measured="m", threshold="t", on_failure="stop",
                      summary=f"{name}: {verdict}", blocks=verdict == "failed")


GATES = [_gate("unit tests"), _gate("integration tests"), _gate("security scan"), _gate("performance")]
STAGING = [CheckRow(check=f"{s} health", passed=True, detail="200 in 12ms") for s in SERVICES]


def _bundle(sql="ALTER TABLE trips ADD COLUMN rating int;"):
    files = {phase: () for phase in Phase}
    files[Phase.EXPAND] = (MigrationFile("v1.3.0", Phase.EXPAND, Path("m/v1.3.0/expand/001.sql"), sql),)
    files[Phase.DOWN] = (MigrationFile("v1.3.0", Phase.DOWN, Path("m/v1.3.0/down/001.sql"), "ALTER TABLE trips DROP COLUMN rating;"),)
    return MigrationBundle("v1.3.0", Path("m/v1.3.0"), files)


EVIDENCE = ApprovalEvidence.of(_plan(), GATES, STAGING, _bundle())
DIGEST = EVIDENCE.digest()


def _issue(approver="lead.choi", digest=DIGEST, run=RUN, pause=PAUSE, expires=EXPIRES):
    return issue_code(KEY, run, pause, approver, digest, expires)


def _verify(code, approver="lead.choi", now=NOW, used=(), digest=DIGEST, earlier=(), key=KEY) -> CodeCheck:
    return verify_code(key, code, RUN, PAUSE, approver, digest, now, set(used), eligible=ELIGIBLE, earlier_digests=earlier)


# --- accepted --------------------------------------------------------------------------------


def test_the_right_codes_of_two_distinct_approvers_are_accepted():
    lead, ops = _issue("lead.choi"), _issue("ops.lee")
    first = _verify(lead.code, "lead.choi")
    second = _verify(ops.code, "ops.lee", used={first.code_id})
    assert (first.outcome, second.outcome) == ("accepted", "accepted")
    assert first.accepted and second.accepted
    assert (first.code_id, second.code_id) == (lead.code_id, ops.code_id) and lead.code_id != ops.code_id


def test_a_code_is_six_groups_of_four_and_may_be_typed_loosely():
    issued = _issue()
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){5}", issued.code)
    assert re.fullmatch(r"[0-9a-f]{12}", issued.code_id)
    loose = " " + issued.code.lower().replace("-", " ") + "\n"
    check = _verify(loose)
    assert check.accepted and check.code_id == issued.code_id == code_id(loose)


def test_the_expiry_travels_in_the_code_to_the_second():
    issued = _issue(expires=EXPIRES + timedelta(microseconds=700))
    assert issued.expires_at == EXPIRES
    assert _verify(issued.code, now=EXPIRES - timedelta(seconds=1)).accepted
    assert _verify(issued.code, now=EXPIRES).outcome == "expired"


# --- each refusal ----------------------------------------------------------------------------


@pytest.mark.parametrize("typed", [None, "", "   "])
def test_no_code_is_refused_as_missing(typed):
    check = _verify(typed)
    assert check.outcome == "missing" and not check.accepted and check.code_id is None
    assert "lead.choi must type the personal code" in check.reason


@pytest.mark.parametrize("typed", ["AAAA-AAAA-AAAA-AAAA-AAAA-AAAA", "12345", "AAAA-AAAA-AAAA-AAAA-AAAA-AAA1", "let me in"])
def test_a_wrong_code_is_refused(typed):
    check = _verify(typed)
    assert check.outcome == "wrong" and not check.accepted
    assert check.code_id == code_id(typed)


def test_a_code_signed_with_another_key_is_wrong():
    check = _verify(_issue().code, key=b"another key of thirty-two characters!")
    assert check.outcome == "wrong" and "matches no code issued to lead.choi" in check.reason


def test_a_code_with_its_expiry_pushed_back_is_wrong():
    issued = _issue(expires=NOW - timedelta(minutes=1))
    later = _issue(expires=NOW + timedelta(days=30))  # the same approver and evidence, another expiry
    forged = later.code[:9] + issued.code[9:]  # the later expiry's first 40 bits before the old MAC
    assert forged != later.code
    assert _verify(forged).outcome == "wrong"


def test_another_approvers_code_is_refused_and_named():
    ops = _issue("ops.lee")
    check = _verify(ops.code, "lead.choi")
    assert check.outcome == "another-approver" and not check.accepted
    assert "issued to ops.lee, not to lead.choi" in check.reason


def test_an_expired_code_is_refused():
    issued = _issue(expires=NOW - timedelta(seconds=1))
    check = _verify(issued.code)
    assert check.outcome == "expired" and not check.accepted
    assert "expired at 2025-05-12 02:29:59 UTC" in check.reason


def test_a_reused_code_is_refused_however_it_is_typed():
    issued = _issue()
    first = _verify(issued.code)
    again = _verify(issued.code.lower().replace("-", ""), used={first.code_id})
    assert first.accepted and again.outcome == "reused" and not again.accepted
    assert "used before" in again.reason


def test_a_code_issued_before_an_image_digest_changed_is_stale():
    before = _issue()
    repushed = _plan(digests={**{s: i.digest for s, i in _plan().images.items()}, "trip-service": "sha256:" + "f" * 64})
    now_digest = ApprovalEvidence.of(repushed, GATES, STAGING, _bundle()).digest()
    assert now_digest != DIGEST
    check = _verify(before.code, digest=now_digest, earlier=[DIGEST])
    assert check.outcome == "stale-evidence" and not check.accepted
    assert "before the evidence changed" in check.reason
    assert _verify(before.code, digest=now_digest).outcome == "wrong"  # without the run's earlier digests: no match
    assert _verify(_issue(digest=now_digest).code, digest=now_digest, earlier=[DIGEST]).accepted


def test_another_approvers_stale_code_is_still_another_approvers():
    ops = _issue("ops.lee", digest="0" * 64)
    assert _verify(ops.code, earlier=["0" * 64]).outcome == "another-approver"


# --- what a code binds -----------------------------------------------------------------------


def test_codes_differ_per_approver_run_pause_evidence_and_expiry():
    codes = [
        _issue().code,
        _issue(approver="lead.jung").code,
        _issue(run="0b5e7d8c-1111-4e0a-9a55-3f4a1d2b7c10").code,
        _issue(pause="approve-production-2").code,
        _issue(digest="0" * 64).code,
        _issue(expires=EXPIRES + timedelta(seconds=1)).code,
    ]
    assert len(set(codes)) == len(codes)
    assert _issue().code == codes[0]  # deterministic for the same fields


def test_a_code_for_another_run_or_pause_is_wrong_here():
    assert _verify(_issue(run="0b5e7d8c-1111-4e0a-9a55-3f4a1d2b7c10").code).outcome == "wrong"
    assert _verify(_issue(pause="approve-production-2").code).outcome == "wrong"


def test_no_reason_holds_the_code_or_the_key():
    lead, ops, old = _issue(), _issue("ops.lee"), _issue(expires=NOW - timedelta(hours=1))
    checks = [
        _verify(None), _verify(lead.code), _verify(lead.code, used={lead.code_id}), _verify(old.code),
        _verify(ops.code), _verify(lead.code[:-1] + "A"), _verify(lead.code, digest="1" * 64, earlier=[DIGEST]),
    ]
    assert {c.outcome for c in checks} == {"missing", "accepted", "reused", "expired", "another-approver", "wrong", "stale-evidence"}
    secrets = [KEY.decode(), *(c.code for c in (lead, ops, old)), *(c.code.replace("-", "") for c in (lead, ops, old))]
    for check in checks:
        assert not any(secret in check.reason or secret in repr(check) for secret in secrets), check
    assert lead.code not in repr(lead) and lead.code_id in repr(lead)


# --- the evidence digest ---------------------------------------------------------------------


def _changed(field):
    plan, gates, staging, bundle = _plan(), list(GATES), list(STAGING), _bundle()
    if field == "tag":
        plan = _plan(tag="v1.3.1")
    elif field == "one image digest":
        plan.images["ai-service"] = plan.images["ai-service"].model_copy(update={"digest": "sha256:" + "e" * 64})
    elif field == "one gate verdict":
        gates[2] = _gate("security scan", "failed")
    elif field == "one staging result":
        staging[1] = staging[1].model_copy(update={"passed": False})
    elif field == "the migration plan":
        bundle = _bundle("ALTER TABLE trips ADD COLUMN rating bigint;")
    elif field == "no migration plan":
        bundle = None
    return ApprovalEvidence.of(plan, gates, staging, bundle).digest()


@pytest.mark.parametrize("field", ["tag", "one image digest", "one gate verdict", "one staging result",
                                   "the migration plan", "no migration plan"])
def test_the_evidence_digest_changes_with_any_single_field(field):
    assert _changed(field) != DIGEST


def test_the_evidence_digest_ignores_dict_order_and_what_is_not_evidence():
    shuffled = ApprovalEvidence(tag=EVIDENCE.tag, images=dict(reversed(EVIDENCE.images.items())),
                                gates=dict(reversed(EVIDENCE.gates.items())), staging=dict(reversed(EVIDENCE.staging.items())),
                                migrations=dict(reversed(EVIDENCE.migrations.items())))
    assert list(shuffled.images) != list(EVIDENCE.images)
    assert shuffled.digest() == DIGEST
    same_verdicts = [row.model_copy(update={"detail": "200 in 99ms"}) for row in reversed(STAGING)]
    assert ApprovalEvidence.of(_plan(), list(reversed(GATES)), same_verdicts, _bundle()).digest() == DIGEST
    assert re.fullmatch(r"[0-9a-f]{64}", DIGEST)


def test_the_evidence_holds_what_the_approver_is_shown():
    assert EVIDENCE.tag == "v1.3.0"
    assert EVIDENCE.images["trip-service"] == "sha256:" + f"{3:064x}"
    assert EVIDENCE.gates["security scan"] == "passed" and EVIDENCE.staging["ai-service health"] is True
    assert set(EVIDENCE.migrations) == {"v1.3.0/expand/001.sql", "v1.3.0/down/001.sql"}
    empty = MigrationBundle("v1.3.0", Path("m/v1.3.0"), {phase: () for phase in Phase})
    assert ApprovalEvidence.of(_plan(), GATES, STAGING, empty).migrations is None


# --- the key ---------------------------------------------------------------------------------


def test_the_key_comes_from_TRIPGEN_APPROVAL_CODE_KEY(monkeypatch):
    monkeypatch.setenv("TRIPGEN_APPROVAL_CODE_KEY", "x" * 43)
    assert approval_key(Settings()) == b"x" * 43


def test_a_prefect_secret_block_comes_before_the_environment(monkeypatch):
    monkeypatch.setenv("TRIPGEN_APPROVAL_CODE_KEY", "x" * 43)
    blocks = {"tripgen-approval-code-key": "b" * 40}
    assert approval_key(Settings(), blocks.get) == b"b" * 40
    assert approval_key(Settings(), {}.get) == b"x" * 43  # no such block: the environment


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_key_names_the_setting_and_how_to_make_one(monkeypatch, value):
    monkeypatch.delenv("TRIPGEN_APPROVAL_CODE_KEY", raising=False)
    if value is not None:
        monkeypatch.setenv("TRIPGEN_APPROVAL_CODE_KEY", value)
    with pytest.raises(ApprovalKeyError, match="TRIPGEN_APPROVAL_CODE_KEY is not set") as raised:
        approval_key(Settings())
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in str(raised.value)


def test_a_short_key_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv("TRIPGEN_APPROVAL_CODE_KEY", "hunter2-hunter2")
    with pytest.raises(ApprovalKeyError, match="has 15 characters, fewer than 32") as raised:
        approval_key(Settings())
    assert "hunter2" not in str(raised.value)
    assert "hunter2" not in repr(Settings())
