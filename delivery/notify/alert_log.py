"""The durable record of the alerts the orchestrator raised, for the escalation check after the run ended.

A JSON-lines file: `sent` when the dispatcher routes an alert by severity, `escalated` when it was
re-notified to a level, `closed` when its release was resolved or acknowledged. Appended, never rewritten.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from delivery.notify.alert import Alert


class _Record(BaseModel):
    """What every record holds: the alert's id and when."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    at: datetime


class Sent(_Record):
    """An alert was sent; `incident_key` is its PagerDuty dedup key (the release's incident)."""

    event: Literal["sent"] = "sent"
    incident_key: str
    alert: Alert


class Escalated(_Record):
    """The alert was re-notified to its escalation `level` on `channels`."""

    event: Literal["escalated"] = "escalated"
    level: str
    channels: tuple[str, ...]


class Closed(_Record):
    """The alert needs nothing more: its incident was resolved, or its release recovered or was taken in hand."""

    event: Literal["closed"] = "closed"
    reason: str


Record = Annotated[Sent | Escalated | Closed, Field(discriminator="event")]
RECORD = TypeAdapter(Record)


@dataclass(frozen=True)
class OpenAlert:
    """An alert not yet closed: when it was first sent, and the levels it was escalated to."""

    id: str
    alert: Alert
    sent_at: datetime
    incident_key: str
    escalated_to: frozenset[str] = frozenset()


def alert_id(alert: Alert) -> str:
    """The same alert raised again (release, severity, title) is one open alert."""
    return hashlib.sha256(f"{alert.release}\n{alert.severity}\n{alert.title}".encode()).hexdigest()[:16]


class AlertLog:
    """Appends records to `path` (one JSON object a line) and folds them into the open alerts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def sent(self, alert: Alert, at: datetime) -> None:
        self._append(Sent(id=alert_id(alert), at=at, incident_key=alert.dedup_key, alert=alert))

    def escalated(self, open_alert: OpenAlert, level: str, channels: tuple[str, ...], at: datetime) -> None:
        self._append(Escalated(id=open_alert.id, at=at, level=level, channels=channels))

    def close(self, open_alert: OpenAlert, reason: str, at: datetime) -> None:
        self._append(Closed(id=open_alert.id, at=at, reason=reason))

    def close_release(self, release: str, reason: str, at: datetime) -> None:
        """Close every open alert of `release` (it recovered, or someone took it in hand)."""
        for open_alert in self.open_alerts():
            if open_alert.alert.release == release:
                self.close(open_alert, reason, at)

    def open_alerts(self) -> list[OpenAlert]:
        """The alerts sent and not closed, in the order first sent; a repeat while open keeps the first time."""
        if not self.path.exists():
            return []
        opened: dict[str, OpenAlert] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = RECORD.validate_json(line)
            if isinstance(record, Sent):
                opened.setdefault(record.id, OpenAlert(record.id, record.alert, record.at, record.incident_key))
            elif isinstance(record, Escalated) and record.id in opened:
                found = opened[record.id]
                opened[record.id] = replace(found, escalated_to=found.escalated_to | {record.level})
            elif isinstance(record, Closed):
                opened.pop(record.id, None)
        return list(opened.values())

    def _append(self, record: _Record) -> None:
        line = record.model_dump_json() + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line)
