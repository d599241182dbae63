"""A PostgreSQL primary and a hot standby streaming from it through a replication slot, each a LocalPostgres in its
own dir and port; the primary can be cut (SIGKILL of its processes: the disaster) and the standby promoted."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from delivery.localdb import LocalPostgres

SLOT = "dr_standby"
POLL = 0.05  # seconds between looks at the replication state


class ReplicationBroken(RuntimeError):
    """The standby does not stream from the primary (or lags behind it): a failover now would lose data."""


@dataclass(frozen=True)
class LagSample:
    """WAL positions read just before the cut: the standby's replayed LSN first, then the primary's flushed LSN."""

    standby_replay_lsn: str
    primary_flush_lsn: str
    bytes: int  # pg_wal_lsn_diff(primary_flush_lsn, standby_replay_lsn): WAL the primary had and the standby had not applied


class Standby(LocalPostgres):
    """A LocalPostgres whose data dir is a base backup of a primary (`pg_basebackup -R`), started as a hot standby."""

    def clone(self, primary: LocalPostgres, slot: str = SLOT) -> None:
        """Copies the running `primary` into this empty data dir, creating replication slot `slot` there."""
        self._prepare()
        self._run("pg_basebackup", "-D", str(self.data), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                  "-R", "-X", "stream", "-C", "-S", slot, "-c", "fast", "--no-sync")
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write("hot_standby = on\n")


class ReplicatedPair:
    """The primary (`state_dir/primary`) and its hot standby (`state_dir/standby`), started together, stopped together."""

    def __init__(self, state_dir: Path, seed_sql: str | None = None) -> None:
        self.seed_sql = seed_sql  # run on the primary before the base backup, so the standby starts with it
        self.primary = LocalPostgres(Path(state_dir) / "primary")
        self.standby = Standby(Path(state_dir) / "standby")
        self.cut = False

    def __enter__(self) -> ReplicatedPair:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Starts the primary (seeded), clones it into the standby and starts that streaming from the slot."""
        self.primary.start()
        if self.seed_sql:
            with psycopg.connect(self.primary_dsn(), autocommit=True, connect_timeout=5) as conn:
                conn.execute(self.seed_sql.encode())
        self.standby.clone(self.primary)
        self.standby.start()

    def stop(self) -> None:
        """Stops the standby, and the primary unless it was cut (its killed postmaster may linger as a zombie)."""
        self.standby.stop()
        if not self.cut:
            self.primary.stop()

    def primary_dsn(self) -> str:
        return self.primary.dsn("postgres")

    def standby_dsn(self) -> str:
        return self.standby.dsn("postgres")

    def streaming_state(self) -> str | None:
        """The primary's view of the slot's walsender (`streaming`, `catchup`, ...), None when nobody uses the slot."""
        with psycopg.connect(self.primary_dsn(), autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT r.state FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid"
                               " WHERE s.slot_name = %s", (SLOT,)).fetchone()
        return row[0] if row else None

    def wait_caught_up(self, timeout: float) -> None:
        """Waits until the standby streams and has replayed all the primary had flushed when asked; raises
        ReplicationBroken naming what it saw after `timeout` seconds."""
        with psycopg.connect(self.primary_dsn(), autocommit=True, connect_timeout=5) as conn:
            target = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0]
        deadline, state, replayed = time.monotonic() + timeout, None, None
        while time.monotonic() < deadline:
            state = self.streaming_state()
            with psycopg.connect(self.standby_dsn(), autocommit=True, connect_timeout=5) as conn:
                replayed, done = conn.execute("SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                              (target,)).fetchone()
            if state == "streaming" and done:
                return
            time.sleep(POLL)
        raise ReplicationBroken(f"replication is broken: after {timeout:g}s the primary's slot '{SLOT}' shows "
                                f"{'walsender state ' + repr(state) if state else 'no standby streaming'}, and the standby "
                                f"replayed up to {replayed} of the primary's {target}; a failover now would lose data")

    def sample_lag(self) -> LagSample:
        """The standby's replay LSN, then the primary's flush LSN, and the bytes between (read in that order, so the
        bytes never undercount the WAL the standby lacked when the primary was read)."""
        with psycopg.connect(self.standby_dsn(), autocommit=True, connect_timeout=5) as conn:
            replay = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()[0]
        with psycopg.connect(self.primary_dsn(), autocommit=True, connect_timeout=5) as conn:
            flush, lag = conn.execute("SELECT pg_current_wal_flush_lsn()::text, pg_wal_lsn_diff(pg_current_wal_flush_lsn(), %s)",
                                      (replay,)).fetchone()
        return LagSample(standby_replay_lsn=replay, primary_flush_lsn=flush, bytes=int(lag))

    def cut_primary(self) -> float:
        """Kills the primary without warning, as a crashed host would: SIGKILL to its postmaster and every process
        the postmaster started (each is a session of its own). Returns the monotonic time just before the kills."""
        pid = int((self.primary.data / "postmaster.pid").read_text().splitlines()[0])
        doomed = [*children(pid), pid]  # backends first: none gets to notice its postmaster gone
        at, self.cut = time.monotonic(), True
        for each in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        return at


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc/<pid>/stat (the field after the parenthesised name)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def promote(dsn: str, wait_seconds: int) -> bool:
    """`SELECT pg_promote(wait => true)` on a standby: True once it left recovery within `wait_seconds`."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return bool(conn.execute("SELECT pg_promote(true, %s)", (wait_seconds,)).fetchone()[0])
