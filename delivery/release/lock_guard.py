"""Notice a lost release lock while the release runs (Prefect-free): renew its lease, and say when it is gone.

A lease that the server revoked or let expire means another release may take the lock and change
production too; the guard stops this run's watches and makes its next recorded step refuse, so
the one restore path runs (issue 10).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable



class LockLost(RuntimeError):
    """This run no longer holds the release lock: it must not change production, only restore it."""


class LockGuard:
    """Renews the lease every `check_seconds`; lost when the server says it is gone, or no renewal took for a lease."""

    def __init__(self, renew: Callable[[], None], is_gone: Callable[[Exception], bool], lease_seconds: float,
                 check_seconds: float, on_lost: Callable[[str], None] = lambda reason: None) -> None:
        self._renew, self._is_gone, self._on_lost = renew, is_gone, on_lost
        self._lease_seconds, self._check_seconds = lease_seconds, check_seconds
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost_because: str | None = None

    def start(self) -> LockGuard:
        self._thread = threading.Thread(target=self._keep, name="release-lock-guard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread:
            self._thread.join(timeout=self._check_seconds + 5)

    def ensure_held(self) -> None:
        """Raise LockLost, naming why, once the lock is lost."""
        if self.lost_because:
            raise LockLost(f"the release lock was lost ({self.lost_because}): another release may change production")

    def _keep(self) -> None:
        renewed = time.monotonic()
        while not self._stopped.wait(self._check_seconds):
            try:
                self._renew()
                renewed = time.monotonic()
            except Exception as error:  # noqa: BLE001 - any failure is judged below
                if self._is_gone(error):
                    return self._lose(f"the server no longer has its lease: {error}")
                if time.monotonic() - renewed >= self._lease_seconds:
                    return self._lose(f"no renewal for {self._lease_seconds:g}s, the lease's length: {error}")

    def _lose(self, reason: str) -> None:
        self.lost_because = reason
        self._on_lost(reason)


class LockGuards:
    """The guard of each release run in this process, by flow run id."""

    def __init__(self) -> None:
        self._guards: dict[str, LockGuard] = {}
        self._lock = threading.Lock()

    def register(self, flow_run_id: str, guard: LockGuard) -> None:
        with self._lock:
            self._guards[flow_run_id] = guard

    def forget(self, flow_run_id: str) -> None:
        with self._lock:
            self._guards.pop(flow_run_id, None)

    def ensure_held(self, flow_run_id: str) -> None:
        with self._lock:
            guard = self._guards.get(flow_run_id)
        if guard:
            guard.ensure_held()


LOCK_GUARDS = LockGuards()
