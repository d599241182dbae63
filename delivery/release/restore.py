"""The one restore path: every service a release changed goes back to its rollback target, last changed first.

Used by the release flow on any exit but "released", by the recover flow after a crash, and by
`tripgen-release recover`. Idempotent against the release record: a service already restored, or
whose traffic already reaches its rollback target, is not touched again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import retry_if_exception

from delivery.kube.connection import is_transient
from delivery.kube.deployments import Deployments
from delivery.migrations.runner import Applied
from delivery.release.bluegreen import BlueGreen
from delivery.release.canary import CANARY, CanaryRollout
from delivery.release.record import ReleaseRecord, ReleaseRecords, ServiceRecord
from delivery.retry import retrying

RESTORE_ATTEMPTS = 5
"""Attempts per service on top of the cluster client's own retries of single calls."""
RESTORE_BACKOFF_SECONDS, RESTORE_MAX_BACKOFF_SECONDS = 0.5, 5.0


@dataclass(frozen=True)
class ServiceRestore:
    """What restoring one service did, or where it is left when it could not."""

    service: str
    restored: bool
    action: str
    seconds: float
    changed: bool = True  # False: its traffic already reached the rollback target (the failed step never took)

    def line(self) -> str:
        return f"{self.service}: {self.action}" + ("" if self.restored else " (NOT restored)")


@dataclass(frozen=True)
class DatabaseRestore:
    """What the restore did to the database: the `down` files it ran, or why the schema is left expanded."""

    reverted: tuple[Applied, ...] = ()
    problem: str | None = None

    def line(self) -> str:
        if self.problem:
            return f"database: NOT restored: {self.problem}"
        return f"database: down ran {len(self.reverted)} file(s)" if self.reverted else ""


@dataclass(frozen=True)
class RestoreReport:
    """The restore of one release record."""

    record: str
    tag: str
    services: tuple[ServiceRestore, ...]
    unrecorded: tuple[str, ...] = ()  # record writes that failed: the record may still say "open"
    database: DatabaseRestore = DatabaseRestore()

    @property
    def complete(self) -> bool:
        return all(s.restored for s in self.services) and self.database.problem is None

    @property
    def changed_anything(self) -> bool:
        return bool(self.services or self.database.reverted or self.database.problem)

    @property
    def stranded(self) -> list[ServiceRestore]:
        return [s for s in self.services if not s.restored]

    def left(self) -> list[str]:
        """What is not restored: each stranded service, and the database when its down did not run."""
        return [s.line() for s in self.stranded] + ([self.database.line()] if self.database.problem else [])

    def summary(self) -> str:
        lines = "; ".join([s.line() for s in self.services] + ([self.database.line()] if self.database.line() else [])) or "nothing had moved"
        return lines + (f" (release record not updated: {self.unrecorded[0]})" if self.unrecorded else "")


class Restorer:
    """Puts production back as a release record says it was."""

    def __init__(self, records: ReleaseRecords, blue_green: BlueGreen, canary: CanaryRollout, deployments: Deployments,
                 ready_timeout: float, keep_canary_logs: Callable[[str, str], object], attempts: int = RESTORE_ATTEMPTS,
                 revert_migrations: Callable[[str], list[Applied]] = lambda tag: []) -> None:
        self.records, self.blue_green, self.canary, self.deployments = records, blue_green, canary, deployments
        self.ready_timeout, self.keep_canary_logs, self.attempts = ready_timeout, keep_canary_logs, attempts
        self.revert_migrations = revert_migrations

    def restore(self, record: ReleaseRecord, on_restored=lambda restored: None) -> RestoreReport:
        """Restore each moved service, last changed first; `on_restored(ServiceRestore)` after each one; then,
        with every service back, run the tag's `down` when its expand was applied and its contract was not.

        A service that still fails after the retries is reported as left where it is, and the others
        are still restored. The record ends `restored`, or `stranded` naming what is left.
        """
        done: list[ServiceRestore] = []
        unrecorded: list[str] = []
        for entry in record.to_restore():
            outcome = self._with_retries(record, entry)
            done.append(outcome)
            if outcome.restored:
                self._note(unrecorded, lambda: self.records.mark(record.name, entry.service, "restored", detail=outcome.action))
            on_restored(outcome)
        database = self._restore_database(record, done, unrecorded)
        report = RestoreReport(record.name, record.tag, tuple(done), tuple(unrecorded), database)
        if not report.changed_anything:
            self._note(unrecorded, lambda: self.records.finish(record.name, "stopped", "ended before production traffic moved"))
        elif report.complete:
            self._note(unrecorded, lambda: self.records.finish(record.name, "restored", report.summary()))
        else:
            left = "left: " + "; ".join(report.left())
            self._note(unrecorded, lambda: self.records.finish(record.name, "stranded", left))
        return report

    def _restore_database(self, record: ReleaseRecord, done: list[ServiceRestore], unrecorded: list[str]) -> DatabaseRestore:
        """`down` after the old versions serve again; never while a service may still run the new one."""
        if not record.database.needs_down:
            return DatabaseRestore()
        if stranded := [s.service for s in done if not s.restored]:
            return DatabaseRestore(problem=f"down not run: {', '.join(stranded)} may still serve {record.tag}, which needs its expand")
        self._note(unrecorded, lambda: self.records.mark_database(record.name, "reverting"))
        try:
            reverted = tuple(self.revert_migrations(record.tag))
        except Exception as error:  # noqa: BLE001 - reported as the database left expanded, and paged
            return DatabaseRestore(problem=f"down failed: {type(error).__name__}: {error}")
        self._note(unrecorded, lambda: self.records.mark_database(record.name, "reverted", detail=f"down ran {len(reverted)} file(s)"))
        return DatabaseRestore(reverted)

    @staticmethod
    def _note(unrecorded: list[str], write: Callable[[], object]) -> None:
        """Record writes never stop a restore: a failed one is reported, and the record stays unfinished."""
        try:
            write()
        except Exception as error:  # noqa: BLE001 - reported in the restore's summary and alert
            unrecorded.append(f"{type(error).__name__}: {error}")

    def _with_retries(self, record: ReleaseRecord, entry: ServiceRecord) -> ServiceRestore:
        started = time.perf_counter()
        policy = retrying(attempts=self.attempts, retry=retry_if_exception(is_transient), backoff=RESTORE_BACKOFF_SECONDS,
                          max_backoff=RESTORE_MAX_BACKOFF_SECONDS)
        try:
            action, changed = policy(self._restore_one, record, entry)
            return ServiceRestore(entry.service, True, action, time.perf_counter() - started, changed)
        except Exception as error:  # noqa: BLE001 - reported as the service left where it is, and paged
            where = self._where(entry)
            return ServiceRestore(entry.service, False, f"{where}; restore failed: {type(error).__name__}: {error}",
                                  time.perf_counter() - started)

    def _restore_one(self, record: ReleaseRecord, entry: ServiceRecord) -> tuple[str, bool]:
        if record.strategy == "canary":
            return self._restore_canary(record.tag, entry)
        return self._restore_blue_green(entry)

    def _restore_blue_green(self, entry: ServiceRecord) -> tuple[str, bool]:
        target = entry.previous_color
        if target is None:
            raise RuntimeError(f"{entry.service} had no live color before the release: nothing to switch back to")
        if self.blue_green.live_color(entry.service) == target:
            return f"already on {target} ({entry.previous_image})", False
        self.blue_green.switch(entry.service, target)
        return f"selector back to {target} ({entry.previous_image})", True

    def _restore_canary(self, tag: str, entry: ServiceRecord) -> tuple[str, bool]:
        """100% stable at once, the canary's logs kept (R-CAN-4), the canary at zero, a promotion undone."""
        stable, namespace = entry.previous_color, self.canary.namespace
        if stable is None:
            raise RuntimeError(f"{entry.service} had no stable color before the canary")
        self.canary.close_routes(entry.service, stable)
        kept = self.keep_canary_logs(tag, entry.service)
        self.deployments.scale(namespace, f"{entry.service}-{CANARY}", 0)
        action = f"100% {stable}, {CANARY} at zero (logs in {kept})"
        name = f"{entry.service}-{stable}"
        if entry.previous_image and self.deployments.image_of(namespace, name) != entry.previous_image:
            self.deployments.set_image(namespace, name, entry.service, entry.previous_image)
            result = self.deployments.wait_rolled_out(namespace, name, self.ready_timeout)
            if not result.done:
                raise RuntimeError(f"{name} did not roll back to {entry.previous_image}: {result.message}")
            action += f", {name} back to {entry.previous_image}"
        return action, True

    def _where(self, entry: ServiceRecord) -> str:
        """Where the service's traffic is now, read from the cluster if it can be."""
        try:
            color = self.blue_green.live_color(entry.service)
            return f"left on {color or 'every version'} ({self.blue_green.live_image(entry.service) or 'unknown image'})"
        except Exception:  # noqa: BLE001 - the cluster is unreadable: say what the record says
            return f"left in phase {entry.phase} (the cluster could not be read)"
