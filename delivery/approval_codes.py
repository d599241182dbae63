"""Personal approval codes (R-SEC-3, issue 14): an HMAC that binds one approver's answer to one pause of one run
and to the evidence shown at that pause. Prefect-free; docs/approval-codes.md describes the design."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict

from delivery.migrations.bundle import MigrationBundle
from delivery.release.state import CheckRow, GateResult, ReleasePlan, RollbackPlan
from delivery.settings import Settings

KEY_SETTING = "TRIPGEN_APPROVAL_CODE_KEY"
KEY_BLOCK = "tripgen-approval-code-key"  # the Prefect Secret block read first, as the notification credentials are
MIN_KEY_CHARS = 32
MAKE_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
_SIGNED_AS = "tripgen-approval-code/1"  # versions the signed text: a new layout never matches an old code
_EXPIRY_BYTES, _MAC_BYTES = 5, 10  # 15 bytes: 24 base32 characters without padding, typed as six groups of four
_CODE_CHARS = 8 * (_EXPIRY_BYTES + _MAC_BYTES) // 5
CODE_FORM = "-".join(["XXXX"] * (_CODE_CHARS // 4))

Outcome = Literal["accepted", "missing", "wrong", "another-approver", "expired", "reused", "stale-evidence"]


class ApprovalKeyError(RuntimeError):
    """The approval code key is missing or too short to sign with."""


class ApprovalEvidence(BaseModel):
    """What the approver is shown, as a code binds it: the tag, each service's image digest, each gate's verdict,
    each staging check's verdict, and each migration file's SQL checksum (None when the tag ships no migrations)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: str
    images: dict[str, str]
    gates: dict[str, str]
    staging: dict[str, bool]
    migrations: dict[str, str] | None = None

    @classmethod
    def of(cls, plan: ReleasePlan, gates: Iterable[GateResult], staging_rows: Iterable[CheckRow],
           migration_plan: MigrationBundle | None) -> ApprovalEvidence:
        """The evidence of a release at its approval pause, from the values the release flow holds there."""
        migrations = None if migration_plan is None or migration_plan.empty else {
            f.version: f.checksum for f in migration_plan.files()}
        return cls(tag=plan.tag, images={name: image.digest for name, image in plan.images.items()},
                   gates={g.gate: g.verdict for g in gates}, staging={r.check: r.passed for r in staging_rows},
                   migrations=migrations)

    @classmethod
    def of_rollback(cls, plan: RollbackPlan) -> ApprovalEvidence:
        """A rollback's evidence: its target and each service's step (action, colors, image)."""
        steps = {s.service: f"{s.action} {s.from_color} -> {s.to_color} {s.image or s.revision or ''}".rstrip() for s in plan.steps}
        return cls(tag=plan.target, images=steps, gates={}, staging={})

    def digest(self) -> str:
        """SHA-256 (hex) of the evidence as canonical JSON: sorted keys, no spaces, so dict order never matters."""
        canonical = json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedCode:
    """One approver's code: `code` goes only to that approver's channel; `code_id` may go to the audit log."""

    approver: str
    code: str = field(repr=False)
    code_id: str
    expires_at: datetime


@dataclass(frozen=True)
class CodeCheck:
    """What verification made of a typed code; `reason` never holds the code, `code_id` is None when none was typed."""

    outcome: Outcome
    reason: str
    code_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


def approval_key(settings: Settings, secret_blocks: Callable[[str], str | None] = lambda _name: None) -> bytes:
    """The HMAC key: the Prefect Secret block `tripgen-approval-code-key` (read by `secret_blocks`), else
    TRIPGEN_APPROVAL_CODE_KEY."""
    from_block = (secret_blocks(KEY_BLOCK) or "").strip()
    secret = from_block or (settings.approval_code_key.get_secret_value().strip() if settings.approval_code_key else "")
    if not secret:
        raise ApprovalKeyError(f"{KEY_SETTING} is not set: approval codes are signed with it; make one with "
                               f"{MAKE_KEY} and set it in the release worker's environment or as the Prefect "
                               f"Secret block {KEY_BLOCK}")
    if len(secret) < MIN_KEY_CHARS:
        raise ApprovalKeyError(f"{KEY_SETTING} has {len(secret)} characters, fewer than {MIN_KEY_CHARS}: "
                               f"make a longer one with {MAKE_KEY}")
    return secret.encode()


def code_id(code: str) -> str:
    """The code's public id (12 hex of SHA-256 of its normalized text): the same however the code was typed."""
    return hashlib.sha256(_compact(code).encode()).hexdigest()[:12]


def issue_code(key: bytes, flow_run_id: str, pause_key: str, approver: str, evidence_digest: str,
               expires_at: datetime) -> IssuedCode:
    """`approver`'s code for this pause of this run and this evidence, valid until `expires_at` (whole seconds)."""
    if expires_at.tzinfo is None:
        raise ValueError("expires_at needs a time zone")
    expires = int(expires_at.timestamp())
    raw = expires.to_bytes(_EXPIRY_BYTES, "big") + _mac(key, flow_run_id, pause_key, approver, evidence_digest, expires)
    text = base64.b32encode(raw).decode()
    code = "-".join(text[i:i + 4] for i in range(0, len(text), 4))
    return IssuedCode(approver, code, code_id(code), datetime.fromtimestamp(expires, timezone.utc))


def verify_code(key: bytes, code: str | None, flow_run_id: str, pause_key: str, approver: str, evidence_digest: str,
                now: datetime, used_code_ids: Collection[str], *, eligible: Iterable[str] = (),
                earlier_digests: Iterable[str] = ()) -> CodeCheck:
    """Whether `code` is `approver`'s, for this pause, run and evidence, unexpired and unused. `eligible` (the other
    approvers) and `earlier_digests` (the run's evidence at earlier issues) only name why a code is refused."""
    if code is None or not code.strip():
        return CodeCheck("missing", f"no code: {approver} must type the personal code sent for this approval")
    typed_id = code_id(code)
    parsed = _parse(code)
    if parsed is None:
        return CodeCheck("wrong", f"not a code: codes have the form {CODE_FORM} (letters A-Z, digits 2-7)", typed_id)
    expires, mac = parsed

    def signs(who: str, digest: str) -> bool:
        return hmac.compare_digest(mac, _mac(key, flow_run_id, pause_key, who, digest, expires))

    earlier = [d for d in earlier_digests if d != evidence_digest]
    if signs(approver, evidence_digest):
        if typed_id in used_code_ids:
            return CodeCheck("reused", f"{approver}'s code was used before: each code counts once", typed_id)
        if now.timestamp() >= expires:
            until = datetime.fromtimestamp(expires, timezone.utc)
            return CodeCheck("expired", f"{approver}'s code expired at {until:%Y-%m-%d %H:%M:%S} UTC", typed_id)
        return CodeCheck("accepted", f"{approver}'s code matches this approval", typed_id)
    if any(signs(approver, d) for d in earlier):
        return CodeCheck("stale-evidence", f"{approver}'s code was issued before the evidence changed (tag, image "
                                           "digests, gates, staging or migrations): it no longer approves", typed_id)
    owner = next((who for who in eligible if who != approver and any(signs(who, d) for d in (evidence_digest, *earlier))), None)
    if owner is not None:
        return CodeCheck("another-approver", f"the code was issued to {owner}, not to {approver}: "
                                             "each approver types their own code", typed_id)
    return CodeCheck("wrong", f"the code matches no code issued to {approver} for this approval", typed_id)


def _mac(key: bytes, flow_run_id: str, pause_key: str, approver: str, evidence_digest: str, expires: int) -> bytes:
    """The first bytes of HMAC-SHA256 over the fields as a JSON list (no field can run into the next)."""
    signed = json.dumps([_SIGNED_AS, flow_run_id, pause_key, approver, evidence_digest, expires], separators=(",", ":"))
    return hmac.new(key, signed.encode(), hashlib.sha256).digest()[:_MAC_BYTES]


def _compact(code: str) -> str:
    """The code without spaces and dashes, in capitals: how it was sent, however it was typed."""
    return "".join(code.split()).replace("-", "").upper()


def _parse(code: str) -> tuple[int, bytes] | None:
    """(expiry in Unix seconds, MAC) of a typed code; None when it is not of the code form."""
    compact = _compact(code)
    if len(compact) != _CODE_CHARS:
        return None
    try:
        raw = base64.b32decode(compact)
    except binascii.Error:
        return None
    return int.from_bytes(raw[:_EXPIRY_BYTES], "big"), raw[_EXPIRY_BYTES:]
