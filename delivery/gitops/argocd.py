"""Wait for ArgoCD to report a commit: Synced at it, the sync finished, health read after that (Kargo's rule)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from delivery.kube.connection import KubeConnection

ARGOCD = ("argoproj.io", "v1alpha1")


@dataclass(frozen=True)
class AppStatus:
    """What an Application's status says about the last sync."""

    sync: str
    revision: str | None
    health: str
    phase: str | None
    finished_at: datetime | None
    reconciled_at: datetime | None
    blocked_by: str | None  # the message of a sync window that holds the sync, if one does

    def reports(self, revision: str, healthy: bool = True) -> bool:
        """Synced at `revision`, the operation Succeeded, reconciled after it finished, and Healthy (when asked)."""
        return (self.sync == "Synced" and self.revision == revision and self.phase == "Succeeded"
                and (self.health == "Healthy" or not healthy)
                and None not in (self.finished_at, self.reconciled_at) and self.reconciled_at > self.finished_at)

    def line(self) -> str:
        return f"sync {self.sync} at {(self.revision or '?')[:12]}, health {self.health}, operation {self.phase or 'none'}"


def app_status(application: dict) -> AppStatus:
    status = application.get("status") or {}
    operation = status.get("operationState") or {}
    window = next((c.get("message") for c in status.get("conditions") or [] if "sync window" in (c.get("message") or "").lower()), None)
    if window is None and "sync window" in (operation.get("message") or "").lower():
        window = operation["message"]
    return AppStatus(
        sync=(status.get("sync") or {}).get("status", "Unknown"),
        revision=(status.get("sync") or {}).get("revision"),
        health=(status.get("health") or {}).get("status", "Unknown"),
        phase=operation.get("phase"),
        finished_at=_time(operation.get("finishedAt")),
        reconciled_at=_time(status.get("reconciledAt")),
        blocked_by=window,
    )


class SyncTimeout(TimeoutError):
    """ArgoCD did not report the commit in time; the message says what it reported last."""


class ApplicationWaiter:
    """Reads one Application until it reports a revision; time spent behind a closed sync window does not count."""

    def __init__(self, conn: KubeConnection, namespace: str, name: str, timeout: float, poll: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.conn, self.namespace, self.name = conn, namespace, name
        self.timeout, self.poll, self.clock, self.sleep = timeout, poll, clock, sleep

    def status(self) -> AppStatus:
        app = self.conn.call(self.conn.custom.get_namespaced_custom_object, *ARGOCD, self.namespace, "applications", self.name)
        return app_status(app)

    def request_sync(self, revision: str) -> None:
        """Ask for a sync of `revision` now, as `argocd app sync --revision` does: a manual sync, which a closed
        sync window with `manualSync: true` lets through, and which does not wait for the next refresh."""
        body = {"operation": {"initiatedBy": {"username": "tripgen-release"}, "sync": {"revision": revision}}}
        self.conn.call(self.conn.custom.patch_namespaced_custom_object, *ARGOCD, self.namespace, "applications", self.name, body)

    def wait(self, revision: str, is_at_or_after: Callable[[str, str], bool], on_blocked: Callable[[str], None],
             healthy: bool = True) -> AppStatus:
        """Until the Application reports `revision` or a later commit (`is_at_or_after(reported, revision)`).

        A restore does not wait for Healthy: the version it moves traffic away from may be what is unhealthy.
        """
        spent, last_blocked = 0.0, None
        while True:
            started = self.clock()
            status = self.status()
            if status.revision and is_at_or_after(status.revision, revision) and status.reports(status.revision, healthy):
                return status
            if status.blocked_by and status.blocked_by != last_blocked:
                on_blocked(status.blocked_by)
            last_blocked = status.blocked_by
            if spent >= self.timeout:
                raise SyncTimeout(f"application {self.namespace}/{self.name} did not report {revision[:12]} within "
                                  f"{self.timeout:g}s: {status.line()}")
            self.sleep(self.poll)
            if not status.blocked_by:
                spent += self.clock() - started


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
