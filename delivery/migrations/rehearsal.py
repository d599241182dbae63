"""The whole chain on throwaway copies of the production schema before anything changes (R-DB-3): expand,
backfill, contract on one copy; expand then down on another, which must give back the schema it started from.

The compatibility contract is checked on the copy, not assumed: after expand and backfill every column the
old color reads is still there with its type, and after each phase the tag's own `needs.yaml` holds (its
version deploys after expand, and stays the next release's rollback target after contract)."""

from __future__ import annotations

import difflib
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from delivery.migrations.bundle import NEEDS_FILE, MigrationBundle, Phase
from delivery.migrations.runner import LEDGER, Limits, MigrationError, MigrationRunner

LIBPQ_ENV = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE",
             "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "connect_timeout": "PGCONNECT_TIMEOUT"}


@dataclass
class Rehearsal:
    """What the throwaway run did and found; it passed when `problems` is empty."""

    ran: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def rehearse(dsn: str, bundle: MigrationBundle, limits: Limits, earlier: list[MigrationBundle] = ()) -> Rehearsal:
    """Run `bundle` on two copies of the schema at `dsn` (on the same server, dropped afterwards), after the
    `earlier` tags' pending contracts, as the release will; `dsn` is untouched."""
    result, source = Rehearsal(), schema_of(dsn)
    if earlier:
        with schema_copy(dsn, source) as copy:
            runner = MigrationRunner(copy, limits, log=lambda _: None)
            if not all(_step(result, f"{b.tag} contract", lambda b=b: runner.run(b, Phase.CONTRACT)) for b in earlier):
                return result
            live = earlier[-1]  # the newest: its version serves now, and stays the rollback target
            result.problems += [f"{live.tag} contract: {c}, which {live.tag} needs ({live.directory / NEEDS_FILE})"
                                for c in missing(live.needs, columns_of(copy))]
            if result.problems:
                return result
            source = schema_of(copy)
    with schema_copy(dsn, source) as copy:
        runner, before = MigrationRunner(copy, limits, log=lambda _: None), columns_of(copy)
        for phase in (Phase.EXPAND, Phase.BACKFILL, Phase.CONTRACT):
            if not _step(result, phase.value, lambda p=phase: runner.run(bundle, p)):
                break
            after = columns_of(copy)
            old_color = [] if phase is Phase.CONTRACT else removed(before, after)
            result.problems += [f"{phase.value}: {c} — the old color still reads it while traffic can switch back" for c in old_color]
            result.problems += [f"{phase.value}: {c}, which {bundle.tag} needs ({bundle.directory / NEEDS_FILE})"
                                for c in missing(bundle.needs, after)]
    if bundle.phases[Phase.EXPAND]:
        with schema_copy(dsn, source) as copy:
            runner = MigrationRunner(copy, limits, log=lambda _: None)
            if _step(result, "expand", lambda: runner.run(bundle, Phase.EXPAND)) and _step(result, "down", lambda: runner.revert(bundle)):
                if (after := schema_of(copy)) != source:
                    diff = difflib.unified_diff(source.splitlines(), after.splitlines(), "before", "after down", lineterm="", n=0)
                    result.problems.append("down does not restore the schema:\n" + "\n".join(list(diff)[2:40]))
    return result


Columns = dict[tuple[str, str], str]


def columns_of(dsn: str) -> Columns:
    """(table or view, column) -> data type, in the public schema."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = 'public'").fetchall()
    return {(table, column): kind for table, column, kind in rows if table != LEDGER}


def removed(before: Columns, after: Columns) -> list[str]:
    """Columns of `before` gone or of another type in `after`, as `table.column is gone` lines."""
    return [f"{t}.{c} is gone" if (t, c) not in after else f"{t}.{c} changed from {kind} to {after[(t, c)]}"
            for (t, c), kind in sorted(before.items()) if after.get((t, c)) != kind]


def missing(needs: dict[str, tuple[str, ...]], columns: Columns) -> list[str]:
    """The needed columns the schema lacks, as `table.column is missing` lines."""
    return [f"{table}.{column} is missing" for table, wanted in needs.items() for column in wanted if (table, column) not in columns]


def _step(result: Rehearsal, name: str, run) -> bool:
    try:
        applied = run()
    except MigrationError as err:
        result.problems.append(f"{name}: {err}")
        return False
    result.ran.append(f"{name}: {len(applied)} file(s)")
    return True


def schema_of(dsn: str) -> str:
    """`pg_dump --schema-only` of the database, without comments, psql's \\restrict lines and the ledger."""
    dumped = _pg(["pg_dump", "--schema-only", "--no-owner", "--no-privileges", f"--exclude-table={LEDGER}"], dsn)
    return "\n".join(line for line in dumped.splitlines()
                     if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict")))


@contextmanager
def schema_copy(dsn: str, schema: str) -> Iterator[str]:
    """A new database on the server of `dsn` holding `schema`; yields its DSN and drops it afterwards."""
    name = f"tripgen_rehearsal_{uuid.uuid4().hex[:12]}"
    admin = make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    copy = make_conninfo(dsn, dbname=name)
    try:
        _pg(["psql", "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1"], copy, stdin=schema)
        yield copy
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pg(command: list[str], dsn: str, stdin: str | None = None) -> str:
    """Run a PostgreSQL client with the DSN in libpq's environment variables (never on its command line)."""
    env = {**os.environ, **{LIBPQ_ENV[k]: str(v) for k, v in conninfo_to_dict(dsn).items() if k in LIBPQ_ENV}}
    done = subprocess.run(command, env=env, input=stdin, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise MigrationError(f"{command[0]} failed: {done.stderr.strip()}")
    return done.stdout
