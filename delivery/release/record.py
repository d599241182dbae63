"""The durable release record: what a release is about to do to production, kept in the cluster before it does it.

One ConfigMap per release run in the production namespace (`release-<tag>-<run>`, label
`tripgen.io/record-state`), holding per service the rollback target, the new color and digest,
the phase and the canary weight. Every step reads it first, so a retried or recovered step is a
no-op when it already happened, and a new release is refused while a record is unfinished.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

from delivery.kube.configmaps import JsonConfigMaps
from delivery.release.lock_guard import LOCK_GUARDS

Phase = Literal["planned", "deploying", "deployed", "switching", "switched", "watched",
                "canary", "promoting", "promoted", "restored", "retired"]
State = Literal["open", "released", "restored", "stranded", "stopped"]
DatabasePhase = Literal["none", "expanding", "expanded", "backfilling", "backfilled", "contracting", "contracted",
                        "reverting", "reverted"]

TRAFFIC_MOVED: frozenset[str] = frozenset({"switching", "switched", "watched", "canary", "promoting", "promoted"})
"""Phases after which production traffic (or the stable image) differs from the rollback target."""
UNFINISHED: frozenset[str] = frozenset({"open", "stranded"})
DOWN_UNDOES: frozenset[str] = frozenset({"expanding", "expanded", "backfilling", "backfilled", "reverting"})
"""Database phases the restore undoes with the tag's `down` (contract is never undone)."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "tripgen-release", "tripgen.io/kind": "release-record"}
STATE_LABEL = "tripgen.io/record-state"


class RecordError(RuntimeError):
    """A release may not start or go on because of what the release records say; the message says what to do."""


class ServiceRecord(BaseModel):
    """One service in a release: its rollback target, what replaces it, and how far the release got."""

    service: str
    previous_color: str | None = Field(description="the color production traffic reached before this release")
    previous_image: str | None = Field(description="the image it ran: the rollback target")
    new_image: str
    new_color: str | None = Field(default=None, description="the color deployed into (blue-green) or 'canary'")
    phase: Phase = "planned"
    canary_weight: int = 0
    detail: str = ""

    @property
    def traffic_moved(self) -> bool:
        return self.phase in TRAFFIC_MOVED


class DatabaseRecord(BaseModel):
    """The release's migrations on the production database: how far they got, and the versions applied."""

    phase: DatabasePhase = "none"
    applied: list[str] = Field(default_factory=list)
    detail: str = ""

    @property
    def needs_down(self) -> bool:
        return self.phase in DOWN_UNDOES


class ReleaseRecord(BaseModel):
    """The whole release as production sees it; `changed` lists services in the order traffic first moved."""

    name: str
    tag: str
    strategy: Literal["blue-green", "canary"]
    flow_run_id: str
    initiator: str
    state: State = "open"
    services: dict[str, ServiceRecord]
    changed: list[str] = Field(default_factory=list)
    lock_lease: str | None = Field(default=None, description="the release lock's lease, freed by recovery when the run died")
    database: DatabaseRecord = Field(default_factory=DatabaseRecord)
    detail: str = ""
    opened_at: datetime
    updated_at: datetime

    @property
    def unfinished(self) -> bool:
        return self.state in UNFINISHED

    def to_restore(self) -> list[ServiceRecord]:
        """The services whose traffic moved and is not restored yet, last changed first."""
        return [self.services[name] for name in reversed(self.changed) if self.services[name].traffic_moved]

    def where(self) -> str:
        """One line per service: where production stands according to the record."""
        services = [f"{s.service}: {s.phase}" + (f" ({s.detail})" if s.detail else "") for s in self.services.values()]
        database = [f"database: {self.database.phase}"] if self.database.phase != "none" else []
        return "; ".join(services + database)


def record_name(tag: str, flow_run_id: str) -> str:
    """`release-<tag>-<first 8 of the run id>`, as a ConfigMap name allows."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", tag.lower()).strip("-.")
    return f"release-{slug}-{flow_run_id.replace('-', '')[:8]}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ReleaseRecords:
    """The release records of one production namespace."""

    def __init__(self, configmaps: JsonConfigMaps) -> None:
        self.configmaps = configmaps

    def open(self, record: ReleaseRecord) -> ReleaseRecord:
        """Write `record` before production changes; the same run gets its own record back (a retry).

        Refused while another run's record is unfinished: that run's changes must be recovered first.
        """
        existing = self.get(record.name)
        if existing is not None:
            return existing
        self.refuse_while_unfinished(record.flow_run_id)
        self.configmaps.create(record.name, self._labels(record), record.model_dump(mode="json"))
        return record

    def refuse_while_unfinished(self, flow_run_id: str, among: list[ReleaseRecord] | None = None) -> None:
        """RecordError naming every other run's unfinished record (of `among`, default all) and how to recover it."""
        blocking = [r for r in (self.unfinished() if among is None else among) if r.flow_run_id != flow_run_id]
        if blocking:
            names = ", ".join(f"{r.name} ({r.tag}, {r.state}: {r.where()})" for r in blocking)
            raise RecordError(f"release record {names} is unfinished: run `tripgen-release recover {blocking[0].tag}` "
                              "(or the recover deployment) to restore production first, then release again")

    def get(self, name: str) -> ReleaseRecord | None:
        found = self.configmaps.read(name)
        return ReleaseRecord.model_validate(found) if found is not None else None

    def unfinished(self) -> list[ReleaseRecord]:
        selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items()) + f",{STATE_LABEL} in (open,stranded)"
        return sorted((ReleaseRecord.model_validate(d) for d in self.configmaps.list(selector)), key=lambda r: r.opened_at)

    def all(self) -> list[ReleaseRecord]:
        selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
        return sorted((ReleaseRecord.model_validate(d) for d in self.configmaps.list(selector)), key=lambda r: r.opened_at)

    def find(self, tag: str | None = None, flow_run_id: str | None = None) -> list[ReleaseRecord]:
        """Unfinished records of `tag` and/or `flow_run_id` (every unfinished one when both are None)."""
        return [r for r in self.unfinished() if tag in (None, r.tag) and flow_run_id in (None, r.flow_run_id)]

    def mark(self, name: str, service: str, phase: Phase, **fields: object) -> ReleaseRecord:
        """Set one service's phase (and fields); the first move of its traffic appends it to `changed`.

        Refused (LockLost) when the run that owns the record lost the release lock, except a restore's own marks.
        """

        def change(record: ReleaseRecord) -> ReleaseRecord:
            if phase != "restored":
                LOCK_GUARDS.ensure_held(record.flow_run_id)
            entry = record.services[service].model_copy(update={"phase": phase, **fields})
            record.services[service] = ServiceRecord.model_validate(entry.model_dump())
            if phase in TRAFFIC_MOVED and service not in record.changed:
                record.changed.append(service)
            return record

        return self._update(name, change)

    def mark_database(self, name: str, phase: DatabasePhase, applied: list[str] | None = None, detail: str = "") -> ReleaseRecord:
        """Set the migrations' phase (adding the versions applied); refused like `mark` once the lock is lost, except a revert."""

        def change(record: ReleaseRecord) -> ReleaseRecord:
            if phase not in ("reverting", "reverted"):
                LOCK_GUARDS.ensure_held(record.flow_run_id)
            database = record.database
            record.database = DatabaseRecord(phase=phase, applied=[*database.applied, *(applied or [])], detail=detail)
            return record

        return self._update(name, change)

    def finish(self, name: str, state: State, detail: str) -> ReleaseRecord:
        def change(record: ReleaseRecord) -> ReleaseRecord:
            record.state, record.detail = state, detail
            return record

        return self._update(name, change)

    def _update(self, name: str, change) -> ReleaseRecord:
        def apply(document: dict) -> tuple[dict, dict[str, str]]:
            record = change(ReleaseRecord.model_validate(document))
            record.updated_at = _now()
            return record.model_dump(mode="json"), self._labels(record)

        return ReleaseRecord.model_validate(self.configmaps.update(name, apply))

    @staticmethod
    def _labels(record: ReleaseRecord) -> dict[str, str]:
        tag = re.sub(r"[^A-Za-z0-9._-]+", "-", record.tag)[:63].strip("-._")
        return {**MANAGED_BY, STATE_LABEL: record.state, "tripgen.io/release": tag, "tripgen.io/flow-run": record.flow_run_id}


def new_record(name: str, tag: str, strategy: str, flow_run_id: str, initiator: str, services: list[ServiceRecord],
               lock_lease: str | None = None) -> ReleaseRecord:
    now = _now()
    return ReleaseRecord(name=name, tag=tag, strategy=strategy, flow_run_id=flow_run_id, initiator=initiator,
                         services={s.service: s for s in services}, lock_lease=lock_lease, opened_at=now, updated_at=now)
