"""Personal approval codes in a real release run (issue 14): each refused answer audited with its proof, evidence
that changed voiding the codes sent, and no code or key in the run's logs, artifacts, parameters or audit records."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.mail import APPROVAL_CODE_KEY, mailbox
from tests.release.conftest import audit_records, release_run
from tests.waiting import wait_until

WRONG = "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA"
EXPIRY = re.compile(r"It expires at (\S+ \S+) UTC")


def every(prefect_api, path: str, body: dict) -> list[dict]:
    """Every item a filter endpoint finds, page by page (the server caps a page at 200)."""
    found: list[dict] = []
    while page := prefect_api.http.post(path, json={**body, "limit": 200, "offset": len(found)}).json():
        found += page
    return found


def address(approver: str) -> str:
    return f"{approver}@tripgen.local"  # policies/demo.yaml's approver_channels


def test_every_unproven_answer_is_refused_and_audited_and_changed_evidence_voids_the_codes(prefect_api, sandbox, tmp_path):
    run = release_run("v1.2.0", services=["user-service"], initiator="demo-dev")
    key = prefect_api.approve(run, "demo-lead", code="")  # no code
    run_id = prefect_api.flow_run(run)["id"]
    lead, ops = (mailbox().code(address(who), run_id) for who in ("demo-lead", "demo-ops"))
    key = prefect_api.approve(run, "demo-lead", code=WRONG, after_key=key)
    key = prefect_api.approve(run, "demo-lead", code=ops, after_key=key)  # another approver's code
    key = prefect_api.approve(run, "demo-lead", code=lead.lower().replace("-", " "), after_key=key)  # accepted, typed loosely
    key = prefect_api.approve(run, "demo-lead", code=lead, after_key=key)  # used before

    # the tag's migration plan changes while the release waits (after it judged that answer and paused again): the
    # codes sent no longer approve, new ones are sent
    prefect_api.wait_for_pause(run, after_key=key)
    plan = Path(os.environ["TRIPGEN_REPORTS"]) / "migrations" / "v1.2.0"
    for phase, sql in (("expand", "ALTER TABLE users ADD COLUMN nickname text;"), ("down", "ALTER TABLE users DROP COLUMN nickname;")):
        (plan / phase).mkdir(parents=True)
        (plan / phase / "001_nickname.sql").write_text(sql + "\n")
    key = prefect_api.approve(run, "demo-ops", code=ops, after_key=key)  # issued before the evidence changed
    renewed = mailbox().code(address("demo-ops"), run_id, skip=1)
    assert renewed != ops
    prefect_api.approve(run, "demo-ops", code=renewed, approve=False, comment="the migration is new", after_key=key)
    state = run.join(120)
    assert state.is_failed() and "rejected by demo-ops: the migration is new" in state.message

    records = audit_records(tmp_path)
    refused = [r["details"] for r in records if r["event"] == "approval_refused"]
    assert [d["proof"] for d in refused] == ["missing", "wrong", "another-approver", "reused", "stale-evidence"]
    assert refused[2]["reason"] == "the code was issued to demo-ops, not to demo-lead: each approver types their own code"
    assert all(d["code_id"] for d in refused[1:]) and refused[0]["code_id"] is None
    granted = [r for r in records if r["event"] == "approval_granted"]
    assert [(r["actor"], r["details"]["code_id"]) for r in granted] == [("demo-lead", refused[3]["code_id"])]
    requested = [r["details"] for r in records if r["event"] == "approval_requested"]
    assert len(requested) == 2 and requested[0]["evidence_digest"] != requested[1]["evidence_digest"]
    assert sorted(requested[0]["codes"]) == ["demo-lead", "demo-ops", "demo-security"]  # not demo-dev, the initiator
    rejected = next(r for r in records if r["event"] == "approval_rejected")
    assert rejected["details"]["evidence_digest"] == requested[1]["evidence_digest"]

    secrets = [APPROVAL_CODE_KEY, *(c for who in ("demo-lead", "demo-ops", "demo-security")
                                     for c in mailbox().codes(address(who), run_id))]
    assert len(secrets) == 7  # the key, three codes, then three more after the evidence changed
    flow_run = prefect_api.read(run_id)
    kept = {
        "audit log": (tmp_path / "audit.jsonl").read_text(),
        "logs": json.dumps(every(prefect_api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})),
        "artifacts": json.dumps(prefect_api.artifacts(run_id)),
        "parameters": json.dumps(flow_run["parameters"]),
        "task runs": json.dumps(every(prefect_api, "/task_runs/filter", {"task_runs": {"flow_run_id": {"any_": [run_id]}}})),
    }
    leaks = [(where, secret[:4]) for where, text in kept.items() for secret in secrets
             if secret in text or secret.replace("-", "") in text]
    assert not leaks, leaks


@pytest.mark.parametrize("policy_changes", [{"approvals": {"code_lifetime": "2s", "timeout": "12s"}}])
def test_an_expired_code_is_refused_and_audited_and_new_codes_are_sent(prefect_api, sandbox, tmp_path, policy_changes):
    run = release_run("v1.2.0", services=["user-service"], initiator="demo-dev")
    run_id = prefect_api.wait_for_pause(run)["id"]
    old = mailbox().code(address("demo-lead"), run_id)
    mail = next(m for m in mailbox().mails if address("demo-lead") in m.to and run_id in m.text)
    expires = datetime.strptime(EXPIRY.search(mail.text).group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    wait_until(lambda: datetime.now(timezone.utc) > expires, 30, "the code's own expiry, read from its mail", interval=0.2)
    prefect_api.approve(run, "demo-lead", code=old)
    renewed = mailbox().code(address("demo-lead"), run_id, skip=1)
    assert renewed != old
    state = run.join(60)  # nobody answers again: the round times out
    assert state.is_failed() and "rejected by timeout" in state.message
    records = audit_records(tmp_path)
    refused = [r["details"] for r in records if r["event"] == "approval_refused"]
    assert [d["proof"] for d in refused] == ["expired"] and refused[0]["code_id"]
    assert refused[0]["reason"].startswith("demo-lead's code expired at ")
    assert len([r for r in records if r["event"] == "approval_requested"]) == 2
