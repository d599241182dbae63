"""Automatic failover: a thread that checks the primary, and once it fails `misses` checks in a row (connection
refused, no answer) promotes the standby and probes it until it accepts a write."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg

from delivery.dr.replication import promote

PROBE = ("INSERT INTO dr_heartbeat (seq, committed_at, origin) SELECT coalesce(max(seq), 0) + 1, clock_timestamp(), "
         "'failover-probe' FROM dr_heartbeat")


@dataclass(frozen=True)
class Failover:
    """Monotonic times of the watchdog's steps: the failed check that decided, promotion done, first write accepted."""

    detected_at: float
    promoted_at: float
    writable_at: float


class FailoverFailed(RuntimeError):
    """The watchdog could not promote the standby, or the promoted standby refused writes, within its deadline."""


def answers(dsn: str, timeout: int = 2) -> bool:
    """Whether the server at `dsn` takes a connection and answers `SELECT 1` (libpq waits at least 2 s)."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


class Watchdog:
    """Watches `primary_dsn` every `interval` seconds; after `misses` failed checks in a row promotes `standby_dsn`,
    giving promotion and the first accepted write `deadline` seconds in all."""

    def __init__(self, primary_dsn: str, standby_dsn: str, deadline: float, interval: float = 0.2, misses: int = 3) -> None:
        self.primary_dsn, self.standby_dsn = primary_dsn, standby_dsn
        self.deadline, self.interval, self.misses = deadline, interval, misses
        self.failover: Failover | None = None
        self.error: str | None = None
        self._stop, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="dr-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval * 10)

    def result(self, timeout: float) -> Failover:
        """The failover once done; FailoverFailed when it failed or did not happen within `timeout` seconds."""
        if not self._done.wait(timeout):
            raise FailoverFailed(f"the watchdog did not fail over within {timeout:g}s of being asked")
        if self.failover is None:
            raise FailoverFailed(self.error or "the watchdog stopped before failing over")
        return self.failover

    def _run(self) -> None:
        try:
            failed = 0
            while failed < self.misses:
                if self._stop.wait(self.interval):
                    return
                failed = 0 if answers(self.primary_dsn) else failed + 1
            detected = time.monotonic()
            self.failover = self._promote(detected)
        except (psycopg.Error, FailoverFailed) as err:
            self.error = f"failover failed: {err}"
        finally:
            self._done.set()

    def _promote(self, detected: float) -> Failover:
        """Promotes the standby and probes a write until one is accepted; both within `deadline` of `detected`."""
        end = detected + self.deadline
        if not promote(self.standby_dsn, max(1, int(end - time.monotonic()))):
            raise FailoverFailed(f"pg_promote did not finish within {self.deadline:g}s")
        promoted = time.monotonic()
        while True:
            try:
                with psycopg.connect(self.standby_dsn, autocommit=True, connect_timeout=2) as conn:
                    conn.execute(PROBE)
                return Failover(detected, promoted, time.monotonic())
            except psycopg.Error as err:
                if time.monotonic() > end or self._stop.is_set():
                    raise FailoverFailed(f"the promoted standby refused writes: {err}") from err
                time.sleep(self.interval / 4)
