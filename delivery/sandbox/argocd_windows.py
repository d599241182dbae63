"""AppProject sync windows as ArgoCD applies them: which windows match an Application, which are
active, and whether they let a (manual or automated) sync through."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from delivery.policy.models import SyncWindow
from delivery.policy.window import window_open_at
from delivery.units import format_duration, parse_duration


@dataclass(frozen=True)
class ProjectWindow:
    """One AppProject spec.syncWindows entry."""

    kind: str
    schedule: str
    duration: timedelta
    time_zone: str = "UTC"
    applications: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    manual_sync: bool = False
    and_operator: bool = False

    @classmethod
    def of(cls, entry: dict) -> ProjectWindow:
        """Raises ValueError for a kind other than allow/deny or a malformed duration."""
        kind = entry.get("kind", "")
        if kind not in ("allow", "deny"):
            raise ValueError(f"invalid sync window kind {kind!r}: it must be allow or deny")
        return cls(kind, entry.get("schedule", ""), parse_duration(entry.get("duration", "")),
                   entry.get("timeZone") or "UTC", tuple(entry.get("applications") or ()),
                   tuple(entry.get("namespaces") or ()), tuple(entry.get("clusters") or ()),
                   bool(entry.get("manualSync")), bool(entry.get("andOperator")))

    def matches(self, application: str, namespace: str, clusters: Sequence[str]) -> bool:
        """ArgoCD's rule: any listed criterion matching (all of the listed ones with andOperator)."""
        criteria = [any(fnmatch.fnmatchcase(value, glob) for glob in globs for value in values)
                    for globs, values in ((self.applications, [application]), (self.namespaces, [namespace]),
                                          (self.clusters, clusters)) if globs]
        return bool(criteria) and (all(criteria) if self.and_operator else any(criteria))

    def active(self, now: datetime) -> bool:
        """Whether a window opened by the cron schedule (in its time zone) is still open at `now`."""
        try:
            return window_open_at(SyncWindow(schedule=self.schedule, duration=self.duration,
                                             timezone=self.time_zone), now) is not None
        except (ValueError, KeyError) as error:
            raise ValueError(f"invalid sync window {self}: {error}") from error

    def __str__(self) -> str:
        return f"{self.kind} '{self.schedule}' for {format_duration(self.duration)} ({self.time_zone})"


def blocking(windows: Sequence[ProjectWindow], now: datetime, manual: bool) -> list[ProjectWindow]:
    """The windows (of those matching the app) that block a sync now; empty when it may run.

    ArgoCD's CanSync: an active deny blocks (a manual sync passes if every active deny has manualSync);
    else an active allow lets it run; else inactive allows block unless one has manualSync for a manual sync."""
    active = [w for w in windows if w.active(now)]
    denies = [w for w in active if w.kind == "deny"]
    if denies:
        return [] if manual and all(w.manual_sync for w in denies) else denies
    if any(w.kind == "allow" for w in active):
        return []
    closed = [w for w in windows if w.kind == "allow"]
    return [] if manual and any(w.manual_sync for w in closed) else closed
