"""The drill's load: a thread committing one row about every 100 ms on the primary (a sequence number and the
commit's timestamp), remembering the last row the server acknowledged."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import psycopg

TABLE_DDL = ("CREATE TABLE IF NOT EXISTS dr_heartbeat (seq bigint PRIMARY KEY, committed_at timestamptz NOT NULL, "
             "origin text NOT NULL DEFAULT 'primary')")
INSERT = "INSERT INTO dr_heartbeat (seq, committed_at) VALUES (%s, clock_timestamp()) RETURNING committed_at"


@dataclass(frozen=True)
class Row:
    """One acknowledged heartbeat: its sequence number (1, 2, ...) and clock_timestamp() taken by its INSERT."""

    seq: int
    committed_at: datetime


def create_table(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(TABLE_DDL)


def last_row(dsn: str) -> Row | None:
    """The highest-numbered writer row in the database at `dsn` (the failover probe's rows are not the writer's)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT seq, committed_at FROM dr_heartbeat WHERE origin = 'primary' "
                           "ORDER BY seq DESC LIMIT 1").fetchone()
    return Row(*row) if row else None


def missing_rows(dsn: str, upto: int) -> int:
    """How many of the writer's rows 1..`upto` the database at `dsn` lacks."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        have = conn.execute("SELECT count(*) FROM dr_heartbeat WHERE origin = 'primary' AND seq <= %s", (upto,)).fetchone()[0]
    return upto - have


class HeartbeatWriter:
    """Commits rows 1, 2, 3, ... (autocommit: each INSERT returns after its commit) until stopped or the server is gone."""

    def __init__(self, dsn: str, interval: float = 0.1) -> None:
        self.dsn, self.interval = dsn, interval
        self.last: Row | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._acked = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="dr-heartbeat-writer", daemon=True)

    def start(self) -> HeartbeatWriter:
        self._thread.start()
        return self

    def stop(self, timeout: float) -> None:
        """Asks the thread to end and waits for it up to `timeout` seconds."""
        self._stop.set()
        self._thread.join(timeout)

    def join(self, timeout: float) -> bool:
        """Waits for the thread to end by itself (after the server went away); True when it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_for(self, seq: int, timeout: float) -> Row:
        """Waits until row `seq` is acknowledged; raises TimeoutError (with the writer's error, if any) otherwise."""
        with self._acked:
            if not self._acked.wait_for(lambda: (self.last and self.last.seq >= seq) or self.error, timeout) or self.error:
                raise TimeoutError(f"the heartbeat writer did not commit row {seq} within {timeout:g}s: {self.error or 'no error'}")
            return self.last

    def _run(self) -> None:
        seq = 0
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                while not self._stop.is_set():
                    committed_at = conn.execute(INSERT, (seq + 1,)).fetchone()[0]
                    seq += 1
                    with self._acked:
                        self.last = Row(seq, committed_at)
                        self._acked.notify_all()
                    self._stop.wait(self.interval)
        except psycopg.Error as err:
            with self._acked:
                self.error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else 'connection lost'}"
                self._acked.notify_all()
