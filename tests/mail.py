"""The approvers' mailbox of the tests: one local SMTP server per test process, where flows mail approval codes and
the drivers read them, as approvers read theirs."""

from __future__ import annotations

import atexit
import os
from pathlib import Path

from delivery.audit import AuditLog
from delivery.code_mailbox import CodeMailbox
from delivery.policy.loader import load_policy

APPROVAL_CODE_KEY = "tests-approval-code-key-" + "0123456789abcdef" * 2  # signs the tests' codes; no production key
_MAILBOX: list[CodeMailbox] = []


def mailbox() -> CodeMailbox:
    """This process's mailbox, started on first use and stopped at exit."""
    if not _MAILBOX:
        _MAILBOX.append(CodeMailbox().__enter__())
        atexit.register(_MAILBOX[0].__exit__)
    return _MAILBOX[0]


def approval_settings() -> dict[str, str]:
    """The TRIPGEN_* settings a worker needs to sign approval codes and mail them to this mailbox."""
    return {**mailbox().settings(), "TRIPGEN_APPROVAL_CODE_KEY": APPROVAL_CODE_KEY}


def approval_code(approver: str, flow_run_id: str, audit_log: Path | None = None, policy_file: Path | None = None) -> str:
    """The code mailed to `approver` in the run's latest round; '' when the round sent them none. The audit log and the
    policy are the worker's (TRIPGEN_AUDIT_LOG, TRIPGEN_POLICY) unless given."""
    audit_log = audit_log or Path(os.environ["TRIPGEN_AUDIT_LOG"])
    policy_file = policy_file or Path(os.environ["TRIPGEN_POLICY"])
    rounds = [r for r in AuditLog(audit_log).records()
              if r["event"] == "approval_requested" and r["details"].get("flow_run_id") == flow_run_id]
    sent = rounds[-1]["details"]["codes"].get(approver, {}) if rounds else {}
    if not sent.get("sent"):
        return ""
    address = load_policy(policy_file).approvals.approver_channels[approver].email
    return mailbox().code(address, flow_run_id)
