"""The production database as the simulated versions see it: a daemon thread reads PostgreSQL's public tables,
views and columns about every 250 ms, so a request only looks sets up and never queries PostgreSQL itself.

Only the production namespace has a database in the sandbox: staging's pods answer /actuator/health/db from
their behavior's `db_healthy`, as every pod does when the sandbox runs without a database."""

from __future__ import annotations

import fnmatch
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg.conninfo import conninfo_to_dict

DATABASE_URL_ENV = "TRIPGEN_SANDBOX_DATABASE_URL"  # read from the environment only: the DSN may hold a password
REFRESH_SECONDS = 0.25
STOP_TIMEOUT_SECONDS = 10.0
UNREACHABLE = "cannot reach PostgreSQL"
SEED_LOCK = 0x7365_6564  # "seed": pg_advisory_xact_lock's key
COLUMNS_SQL = "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"

Column = tuple[str, str]  # (table or view, column)


def seed_schema_sql() -> str:
    """The v1.0.0 schema and its rows (seed-schema.sql)."""
    return resources.files("delivery.sandbox").joinpath("seed-schema.sql").read_text()


@dataclass(frozen=True)
class SchemaRule:
    """Pods of `services` running a tag that matches the glob `tag_glob` read and write `columns`."""

    tag_glob: str
    services: frozenset[str]
    columns: frozenset[Column]


def needs_of(rules: Sequence[SchemaRule], service: str, tag: str) -> frozenset[Column] | None:
    """The columns of the first rule for `service` at `tag`; None when no rule names it (it uses no database)."""
    return next((r.columns for r in rules if service in r.services and fnmatch.fnmatchcase(tag, r.tag_glob)), None)


def schema_problem(needs: frozenset[Column], columns: frozenset[Column] | None) -> str | None:
    """Why a version needing `needs` fails on a database holding `columns` (None: unreadable); None when it works."""
    if columns is None:
        return UNREACHABLE
    missing = needs - columns
    return "missing " + ", ".join(f"{table}.{column}" for table, column in sorted(missing)) if missing else None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class SchemaSnapshot:
    """The public schema's (table, column) pairs, re-read every `interval` seconds by a daemon thread; `columns` is
    None before the first read and while PostgreSQL cannot be read. The first connection seeds v1.0.0 if `trips`
    is absent. The DSN goes to psycopg only; what is logged is libpq's message, which never quotes the password."""

    def __init__(self, dsn: str, interval: float = REFRESH_SECONDS, log: Callable[[str], None] = _stderr) -> None:
        try:
            conninfo_to_dict(dsn)
        except psycopg.Error:
            raise ValueError(f"{DATABASE_URL_ENV} is not a PostgreSQL connection string") from None  # its text may hold the password
        self._dsn, self.interval, self.log = dsn, interval, log
        self.columns: frozenset[Column] | None = None
        self.first_read = threading.Event()  # set once the first read succeeded or failed
        self._stop = threading.Event()
        self._seeded = False
        self._thread = threading.Thread(target=self._refresh_forever, name="sandbox-database", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread and close its connection."""
        self._stop.set()
        self._thread.join(STOP_TIMEOUT_SECONDS)

    def _refresh_forever(self) -> None:
        conn: psycopg.Connection | None = None
        reported: str | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self._connect()
                self.columns, problem = frozenset(conn.execute(COLUMNS_SQL).fetchall()), None
            except psycopg.Error as err:
                self.columns, conn = None, _closed(conn)
                problem = f"sandbox database: {UNREACHABLE}: {str(err).strip().splitlines()[0]}"
            if problem != reported:
                self.log(problem or "sandbox database: PostgreSQL is reachable again")
                reported = problem
            self.first_read.set()
            self._stop.wait(self.interval)
        _closed(conn)

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5, options="-c statement_timeout=5000")
        try:
            if not self._seeded:
                self._seed(conn)
        except psycopg.Error:
            conn.close()
            raise
        return conn

    def _seed(self, conn: psycopg.Connection) -> None:
        """The v1.0.0 schema, unless `trips` exists (under a lock, so sandboxes sharing the database seed it once)."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK,))
            if conn.execute("SELECT to_regclass('public.trips')").fetchone() == (None,):
                conn.execute(seed_schema_sql().encode())
                self.log("sandbox database: seeded the v1.0.0 schema (trips, 2,500 rows)")
        self._seeded = True


def _closed(conn: psycopg.Connection | None) -> None:
    if conn is not None:
        conn.close()


class ProductionDatabase:
    """What the gateway asks per request: the database problem, if any, of a pod of `service` running `tag` in
    `namespace`; only pods in the production namespace (`self.namespace`) use the database."""

    def __init__(self, namespace: str, rules: Sequence[SchemaRule], snapshot: SchemaSnapshot) -> None:
        self.namespace, self.rules, self.snapshot = namespace, tuple(rules), snapshot
        self._needs: dict[tuple[str, str], frozenset[Column] | None] = {}

    def problem(self, namespace: str, service: str, tag: str) -> str | None:
        """`missing table.column`, `cannot reach PostgreSQL`, or None (healthy, or no database for this pod)."""
        if namespace != self.namespace:
            return None  # staging has no database in the sandbox
        key = (service, tag)
        if key not in self._needs:
            self._needs[key] = needs_of(self.rules, service, tag)
        needs = self._needs[key]
        return None if needs is None else schema_problem(needs, self.snapshot.columns)
