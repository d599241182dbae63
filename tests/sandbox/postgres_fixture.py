"""A new PostgreSQL database per test on the tests' server (tests/postgres.py), empty or holding the sandbox's
v1.0.0 schema (delivery/sandbox/seed-schema.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from delivery.sandbox.database import seed_schema_sql
from tests.postgres import postgres_admin_dsn  # noqa: F401  (a fixture: `empty_database` uses it)


@pytest.fixture
def empty_database(postgres_admin_dsn: str) -> Iterator[str]:  # noqa: F811
    """The DSN of a new database without tables; dropped afterwards."""
    name = f"sandbox_{uuid.uuid4().hex[:12]}"
    execute(postgres_admin_dsn, f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(postgres_admin_dsn, dbname=name)
    finally:
        execute(postgres_admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def seeded_database(empty_database: str) -> str:
    """The DSN of a new database holding v1.0.0's `trips` and its 2,500 rows."""
    execute(empty_database, seed_schema_sql())
    return empty_database


def execute(dsn: str, sql: str) -> list[tuple]:
    """Run `sql` (one or more statements, autocommit); the last statement's rows, if it returns any."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        cursor = conn.execute(sql.encode())
        return cursor.fetchall() if cursor.description else []
