"""The monthly compliance report's content (R-AUDIT): one UTC month of the audit log, grouped into release runs,
with the overrides called out, the chain's verification and head, and the CSV of every event."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

from delivery.audit import Verification, run_of, verify

CSV_FIELDS = ("seq", "time", "event", "actor", "release", "flow_run_id", "service", "details")
ENDINGS = ("deployment_completed", "deployment_failed")


@dataclass(frozen=True)
class Month:
    """A calendar month in UTC, written YYYY-MM."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """`2026-11` → Month(2026, 11); ValueError naming the expected form otherwise."""
        match = re.fullmatch(r"([1-9]\d{3})-(\d{2})", text.strip())
        if not match or not 1 <= int(match[2]) <= 12:
            raise ValueError(f"month must be YYYY-MM with a month from 01 to 12, not '{text}'")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.number:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.number, 1, tzinfo=timezone.utc)

    @property
    def end(self) -> datetime:
        """The first instant of the next month."""
        return datetime(self.year + self.number // 12, self.number % 12 + 1, 1, tzinfo=timezone.utc)

    def weeks(self) -> list[str]:
        """The ISO weeks that overlap the month, in order (2026-W44 … 2026-W49 for 2026-11)."""
        days = (self.end - self.start).days
        return sorted({iso_week(self.start + timedelta(days=day)) for day in range(days)})


def iso_week(moment: datetime) -> str:
    """The ISO week of `moment`, e.g. 2026-W45."""
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class Event:
    """One audit record, its time parsed."""

    seq: int
    time: datetime
    event: str
    actor: str
    release: str
    details: dict
    sha256: str

    @classmethod
    def from_record(cls, record: dict) -> Event:
        return cls(record["seq"], datetime.fromisoformat(record["time"]), record["event"], record["actor"],
                   record["release"], record.get("details") or {}, record["sha256"])

    @property
    def run(self) -> str:
        """The release run it belongs to: a recovery's events count toward the run that crashed."""
        return str(run_of(self.event, self.details) or f"(no run) {self.release}")

    def text(self, key: str) -> str:
        value = self.details.get(key)
        return "" if value is None else str(value)


@dataclass(frozen=True)
class Approval:
    """An approver's answer: granted, refused (not allowed to answer) or rejected."""

    approver: str
    time: datetime
    decision: str
    note: str
    override: bool


@dataclass(frozen=True)
class Switch:
    """A traffic switch of one service."""

    service: str
    time: datetime
    from_color: str
    to_color: str
    seconds: float | None


@dataclass(frozen=True)
class Rollback:
    """One service put back (or not: `restored` False), and why."""

    service: str
    time: datetime
    action: str
    reason: str
    restored: bool


@dataclass(frozen=True)
class Notice:
    """Something auditors look at first: an emergency override, a hotfix approved by policy, a manual promotion."""

    time: datetime
    release: str
    run: str
    kind: str
    actor: str
    text: str


@dataclass(frozen=True)
class ReleaseRun:
    """The month's events of one flow run (a release, or a rollback asked for by hand)."""

    run: str
    events: tuple[Event, ...]

    def _named(self, *names: str) -> list[Event]:
        return [e for e in self.events if e.event in names]

    @property
    def release(self) -> str:
        return self.events[0].release

    @property
    def kind(self) -> str:
        return "rollback" if self._named("rollback_requested") else "release"

    @property
    def initiated(self) -> Event | None:
        """The run's deployment_initiated or rollback_requested record, if it is in the month."""
        return next(iter(self._named("deployment_initiated", "rollback_requested")), None)

    @property
    def initiator(self) -> str:
        return (self.initiated or self.events[0]).actor

    @property
    def started(self) -> datetime:
        return self.events[0].time

    @property
    def approvals(self) -> list[Approval]:
        return [Approval(e.actor, e.time, e.event.removeprefix("approval_"), e.text("comment") or e.text("reason"),
                         bool(e.details.get("override")))
                for e in self._named("approval_granted", "approval_refused", "approval_rejected")]

    @property
    def approvers(self) -> list[str]:
        return [a.approver for a in self.approvals if a.decision == "granted"]

    @property
    def failed_gates(self) -> list[str]:
        return [f"{e.text('gate')} (measured {e.text('measured')}, threshold {e.text('threshold')})"
                for e in self._named("gate_failed")]

    @property
    def switches(self) -> list[Switch]:
        return [Switch(e.text("service"), e.time, e.text("from_color") or "none", e.text("to_color"), _number(e.details.get("seconds")))
                for e in self._named("traffic_switched")]

    @property
    def rollbacks(self) -> list[Rollback]:
        return [Rollback(e.text("service"), e.time, e.text("action"), e.text("reason"), e.event == "rollback_executed")
                for e in self._named("rollback_executed", "rollback_failed")]

    @property
    def ending(self) -> Event | None:
        """The run's deployment_completed or deployment_failed record, if it is in the month."""
        ended = self._named(*ENDINGS)
        return ended[-1] if ended else None

    @property
    def outcome(self) -> str:
        if self.ending:
            return self.ending.text("outcome") or self.ending.event
        if self._named("deployment_recovered"):
            return "crashed, recovered"
        if self.kind == "rollback" and self.rollbacks:
            return "rolled back" if all(r.restored for r in self.rollbacks) else "rollback failed"
        return "crashed" if self._named("deployment_crashed") else "not finished in this month"

    @property
    def detail(self) -> str:
        """The outcome's explanation as the run recorded it."""
        return self.ending.text("detail") if self.ending else ""

    @property
    def seconds(self) -> float:
        """The duration the run recorded at its end, else first to last event of the month."""
        recorded = _number(self.ending.details.get("seconds")) if self.ending else None
        return recorded if recorded is not None else (self.events[-1].time - self.started).total_seconds()


@dataclass(frozen=True)
class WeekCount:
    """Releases started and runs rolled back in one ISO week."""

    week: str
    releases: int
    rollbacks: int


@dataclass(frozen=True)
class MonthReport:
    """Everything the compliance report shows for one month."""

    month: Month
    log: Path
    events: tuple[Event, ...]
    runs: tuple[ReleaseRun, ...]
    notices: tuple[Notice, ...]
    weeks: tuple[WeekCount, ...]
    verification: Verification
    head: Event | None  # the log's last record: its sha256 is the chain head

    @property
    def releases(self) -> list[ReleaseRun]:
        return [r for r in self.runs if r.kind == "release"]


def build_report(log: str | Path, month: Month) -> MonthReport:
    """Read and verify the log at `log` and gather `month`'s events into runs, notices and weekly counts."""
    everything = _readable_events(Path(log))
    events = tuple(e for e in everything if month.start <= e.time < month.end)
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.run, []).append(event)
    runs = tuple(ReleaseRun(run, tuple(found)) for run, found in grouped.items())
    return MonthReport(month, Path(log), events, runs, tuple(n for e in events if (n := notice(e))),
                       tuple(_week_counts(month, runs)), verify(log), everything[-1] if everything else None)


def notice(event: Event) -> Notice | None:
    """The call-out an event deserves, if any: an override, a hotfix auto-approval or a manual canary promotion."""
    if event.event == "approval_granted" and event.actor == "policy":
        kind, text = "hotfix auto-approval", event.text("reason")
    elif event.event == "approval_granted" and event.details.get("override"):
        kind, text = "emergency override", event.text("comment")
    elif event.event == "canary_promoted" and event.details.get("manual"):
        kind, text = "manual canary promotion", f"{event.text('service')} promoted fully at {event.text('point')}: {event.text('comment')}"
    else:
        return None
    return Notice(event.time, event.release, event.run, kind, event.actor, text)


def write_csv(report: MonthReport, out: TextIO) -> None:
    """One row per audit event of the month, under a header row; details as compact JSON."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for e in report.events:
        writer.writerow({"seq": e.seq, "time": e.time.isoformat(timespec="milliseconds"), "event": e.event, "actor": e.actor,
                         "release": e.release, "flow_run_id": e.text("flow_run_id"), "service": e.text("service"),
                         "details": json.dumps(e.details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)})


def _week_counts(month: Month, runs: tuple[ReleaseRun, ...]) -> list[WeekCount]:
    started = [iso_week(r.initiated.time) for r in runs if r.kind == "release" and r.initiated]
    rolled_back = [iso_week(r.rollbacks[0].time) for r in runs if r.rollbacks]
    return [WeekCount(week, started.count(week), rolled_back.count(week)) for week in month.weeks()]


def _readable_events(path: Path) -> list[Event]:
    """Every record that parses, oldest first; `verify` names any line that does not."""
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(Event.from_record(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return events


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
