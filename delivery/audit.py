"""The append-only audit log (R-AUDIT): JSON lines, each holding its own SHA-256 and its predecessor's."""

from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

GENESIS = "0" * 64
EVENTS = frozenset(
    {
        "deployment_initiated",
        "rollback_requested",
        "gate_failed",
        "approval_requested",
        "approval_granted",
        "approval_refused",
        "approval_rejected",
        "traffic_switched",
        "watch_failed",
        "migration_applied",
        "migration_reverted",
        "migration_failed",
        "rollback_failed",
        "deployment_crashed",
        "deployment_recovered",
        "rollback_executed",
        "canary_promoted",
        "canary_aborted",
        "deployment_completed",
        "deployment_failed",
        "dr_drill_completed",
    }
)


def _digest(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class AuditMirror(Protocol):
    """A second copy of the log (delivery/audit_blob.py), brought up to date after every append."""

    def sync(self, log: bytes) -> None:
        """Copy what the copy lacks of `log`, the whole local file; raise if that fails."""


def run_of(event: str, details: dict) -> str | None:
    """The release run an event belongs to: a recovery's events count toward the run that crashed."""
    crashed = details.get("flow_run") if event in ("deployment_crashed", "deployment_recovered") else None
    return details.get("crashed_flow_run") or crashed or details.get("flow_run_id")


class AuditLog:
    """Appends events to a JSON-lines file; a file lock keeps concurrent writers in one chain. A `mirror` is synced
    under the lock after the local write: if it fails, the record stays and the error propagates (the step fails)."""

    def __init__(self, path: str | Path, mirror: AuditMirror | None = None) -> None:
        self.path = Path(path)
        self.mirror = mirror

    def append(self, event: str, actor: str, release: str, **details: object) -> dict:
        """Record `event` by `actor` for `release` (a tag); returns the record as written."""
        if event not in EVENTS:
            raise ValueError(f"unknown audit event '{event}' (known: {', '.join(sorted(EVENTS))})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                previous = _last_record(handle)
                record = {
                    "seq": previous["seq"] + 1 if previous else 1,
                    "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "event": event,
                    "actor": actor,
                    "release": release,
                    "details": details,
                    "prev_sha256": previous["sha256"] if previous else GENESIS,
                }
                record["sha256"] = _digest(record)
                handle.write(json.dumps(record, sort_keys=True).encode() + b"\n")
                handle.flush()
                if self.mirror is not None:
                    handle.seek(0)
                    self.mirror.sync(handle.read())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return record

    def records(self) -> list[dict]:
        """Every record, oldest first (unverified: call `verify` for that)."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def _last_record(handle) -> dict | None:
    handle.seek(0)
    last = None
    for line in handle:
        if line.strip():
            last = line
    return json.loads(last) if last else None


@dataclass(frozen=True)
class Verification:
    """The outcome of checking a log: how many records, and the first broken line if any."""

    records: int
    broken_line: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_line is None


def verify(path: str | Path) -> Verification:
    """Check every line's own hash and its link to the line before; name the first that fails."""
    previous_hash, count = GENESIS, 0
    for number, line in enumerate(Path(path).read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            stated = record["sha256"]
            linked = record["prev_sha256"]
        except (ValueError, KeyError, TypeError):
            return Verification(count, number, "not an audit record (unreadable JSON or missing hashes)")
        if _digest(record) != stated:
            return Verification(count, number, "content does not match its sha256: the line was changed")
        if linked != previous_hash:
            return Verification(count, number, "prev_sha256 does not match the line before: a line was removed, added or reordered")
        previous_hash, count = stated, count + 1
    return Verification(count)
