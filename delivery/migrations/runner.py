"""Applies migration files to one PostgreSQL database with psycopg 3: one advisory lock per database, the
policy's lock and statement timeouts, a transaction per file (autocommit for CONCURRENTLY), and a ledger of
applied versions with checksums. The DSN is only handed to psycopg: never logged, never in an error."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from delivery.migrations.bundle import MigrationBundle, MigrationFile, Phase

LEDGER = "tripgen_schema_migrations"
LOCK_KEY = 0x7472_6970  # "trip": pg_advisory_lock's key, the same for every release on a database
BATCH_SETTING = "tripgen.batch_size"  # a backfill reads it: ... LIMIT current_setting('tripgen.batch_size')::int

LEDGER_DDL = f"""CREATE TABLE IF NOT EXISTS {LEDGER} (
    version text PRIMARY KEY, tag text NOT NULL, phase text NOT NULL, checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(), seconds double precision NOT NULL, rows bigint, sql text)"""


class MigrationError(RuntimeError):
    """A migration that cannot run or failed; the message names the file and PostgreSQL's reason."""


@dataclass(frozen=True)
class Limits:
    """The policy's limits on a migration: how long to wait for a lock, how long one statement may run, batch rows."""

    lock_timeout: timedelta
    statement_timeout: timedelta
    batch_size: int
    max_batches: int = 1_000_000


@dataclass(frozen=True)
class Applied:
    """A file run: its version, how long it took, and the rows a backfill changed (None for other phases)."""

    version: str
    seconds: float
    rows: int | None = None

    def audited(self) -> dict[str, object]:
        """What an audit record keeps of the file: its version, seconds to the millisecond, and a backfill's rows."""
        return {"version": self.version, "seconds": round(self.seconds, 3), **({"rows": self.rows} if self.rows is not None else {})}


def percent_done(rows: int, total: int | None) -> float | None:
    """A backfill's progress in percent of its `-- total:` rows (None without a total)."""
    return min(100.0, 100.0 * rows / total) if total else None


Progress = Callable[[MigrationFile, int, int, int | None], None]  # file, batches done, rows changed so far, rows in all


class MigrationRunner:
    """Runs a bundle's phases on the database at `dsn`, recording each file in the ledger."""

    def __init__(self, dsn: str, limits: Limits, log: Callable[[str], None] = print) -> None:
        self._dsn, self.limits, self.log = dsn, limits, log

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection]:
        """A connection holding the database's migration lock, with the policy's timeouts set."""
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as err:
            raise MigrationError(f"cannot connect to the migration database: {str(err).strip()}") from None  # libpq never quotes the password
        with conn:
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
                self.log("waiting for the migration lock: another release is migrating this database")
                conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            try:
                conn.execute(f"SET lock_timeout = {_ms(self.limits.lock_timeout)}")
                conn.execute(f"SET statement_timeout = {_ms(self.limits.statement_timeout)}")
                conn.execute(LEDGER_DDL)
                yield conn
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    def run(self, bundle: MigrationBundle, phase: Phase, progress: Progress | None = None) -> list[Applied]:
        """Apply the phase's files not yet in the ledger, in order; refuses the lot if an applied file was edited."""
        files = bundle.phases[phase]
        if not files:
            return []
        with self._session() as conn:
            if edited := _edited(conn, bundle.files()):
                raise MigrationError("applied migrations were edited since: " + "; ".join(edited))
            done = _applied(conn, [f.version for f in files])
            return [self._apply(conn, f, progress) for f in files if f.version not in done]

    def revert(self, bundle: MigrationBundle) -> list[Applied]:
        """Run `down` when the tag's expand is applied and its contract is not; forget expand and backfill."""
        with self._session() as conn:
            applied = _applied(conn, [f.version for f in bundle.files()])
            if not any(f.version in applied for f in bundle.phases[Phase.EXPAND]):
                return []
            if any(f.version in applied for f in bundle.phases[Phase.CONTRACT]):
                raise MigrationError(f"{bundle.tag}: contract is applied; down would not undo it")
            ran = [self._execute(conn, f) for f in bundle.phases[Phase.DOWN]]
            conn.execute(f"DELETE FROM {LEDGER} WHERE tag = %s AND phase IN ('expand', 'backfill')", (bundle.tag,))
            return ran

    def _apply(self, conn: psycopg.Connection, file: MigrationFile, progress: Progress | None) -> Applied:
        result = self._backfill(conn, file, progress) if file.phase is Phase.BACKFILL else self._execute(conn, file)
        conn.execute(f"INSERT INTO {LEDGER} (version, tag, phase, checksum, seconds, rows, sql) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                     (file.version, file.tag, file.phase.value, file.checksum, result.seconds, result.rows, file.sql))
        self.log(f"migration {file.version} applied in {result.seconds:.2f}s"
                 + (f" ({result.rows} rows)" if result.rows is not None else ""))
        return result

    def _execute(self, conn: psycopg.Connection, file: MigrationFile) -> Applied:
        """The whole file in one transaction, or in autocommit when it builds an index CONCURRENTLY."""
        started = time.monotonic()
        try:
            if file.concurrent:
                conn.execute(file.sql.encode())
            else:
                with conn.transaction():
                    conn.execute(file.sql.encode())
        except psycopg.Error as err:
            raise MigrationError(f"{file.path}: {_reason(err, file.sql)}") from None
        return Applied(file.version, time.monotonic() - started)

    def _backfill(self, conn: psycopg.Connection, file: MigrationFile, progress: Progress | None) -> Applied:
        """Repeat the file, a transaction per batch of at most `batch_size` rows, until a batch changes none."""
        started, rows, size = time.monotonic(), 0, self.limits.batch_size
        total = _total(conn, file)
        for batch in range(1, self.limits.max_batches + 1):
            try:
                with conn.transaction():
                    conn.execute("SELECT set_config(%s, %s, true)", (BATCH_SETTING, str(size)))
                    changed = conn.execute(file.sql.encode()).rowcount
            except psycopg.Error as err:
                raise MigrationError(f"{file.path}: batch {batch}: {_reason(err, file.sql)}") from None
            if changed > size:
                raise MigrationError(f"{file.path}: batch {batch} changed {changed} rows, more than the batch size {size}: "
                                     f"limit it with current_setting('{BATCH_SETTING}')::int")
            if changed <= 0:
                break
            rows += changed
            if progress:
                progress(file, batch, rows, total)
        else:
            raise MigrationError(f"{file.path}: still changing rows after {self.limits.max_batches} batches: "
                                 "its WHERE must leave out the rows it already changed")
        return Applied(file.version, time.monotonic() - started, rows)


def edited_files(dsn: str, bundle: MigrationBundle) -> list[str]:
    """Applied files of `bundle` whose content changed since, read without a lock or any write (the gate's check)."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT to_regclass(%s)", (LEDGER,)).fetchone()[0] is None:
                return []
            return _edited(conn, bundle.files())
    except psycopg.OperationalError as err:
        raise MigrationError(f"cannot connect to the migration database: {str(err).strip()}") from None


def _total(conn: psycopg.Connection, file: MigrationFile) -> int | None:
    """The rows the backfill has to change, by its `-- total:` query (None without one)."""
    if not file.total_query:
        return None
    try:
        return int(conn.execute(file.total_query.encode()).fetchone()[0])
    except (psycopg.Error, TypeError, ValueError) as err:
        raise MigrationError(f"{file.path}: its -- total: query: {err}") from None


def uncontracted_tags(dsn: str, but: str) -> list[str]:
    """Tags other than `but` whose expand is applied and no contract file yet, oldest expand first (read only)."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT to_regclass(%s)", (LEDGER,)).fetchone()[0] is None:
                return []
            rows = conn.execute(f"SELECT tag FROM {LEDGER} WHERE tag <> %s GROUP BY tag HAVING bool_or(phase = 'expand') "
                                "AND NOT bool_or(phase = 'contract') ORDER BY min(applied_at)", (but,)).fetchall()
    except psycopg.OperationalError as err:
        raise MigrationError(f"cannot connect to the migration database: {str(err).strip()}") from None
    return [tag for (tag,) in rows]


def _applied(conn: psycopg.Connection, versions: Sequence[str]) -> set[str]:
    rows = conn.execute(f"SELECT version FROM {LEDGER} WHERE version = ANY(%s)", (list(versions),)).fetchall()
    return {row[0] for row in rows}


def _edited(conn: psycopg.Connection, files: Sequence[MigrationFile]) -> list[str]:
    by_version = {f.version: f for f in files}
    rows = conn.execute(f"SELECT version, checksum, sql FROM {LEDGER} WHERE version = ANY(%s)", (list(by_version),)).fetchall()
    return [f"{by_version[v].path}: {_first_change(applied, by_version[v].sql)}applied with checksum {c[:12]}, now "
            f"{by_version[v].checksum[:12]}: an applied migration is never edited, add a new file instead"
            for v, c, applied in rows if by_version[v].checksum != c]


def _first_change(applied: str | None, now: str) -> str:
    """`line N: ` where the file first differs from what was applied (nothing when the applied text is unknown)."""
    if applied is None:
        return ""
    old, new = applied.splitlines(), now.splitlines()
    line = next((n for n, (a, b) in enumerate(zip(old, new), 1) if a != b), min(len(old), len(new)) + 1)
    return f"line {line}: "


def _ms(duration: timedelta) -> str:
    return f"'{int(duration.total_seconds() * 1000)}ms'"


def _reason(err: psycopg.Error, sql: str) -> str:
    """PostgreSQL's message and, where it points at one, the line of the file it stopped at."""
    position = int(err.diag.statement_position or 0)
    line = f"line {sql[:position].count(chr(10)) + 1}: " if position else ""
    return f"{line}{err.diag.message_primary or str(err).strip()}"
