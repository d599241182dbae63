"""A fresh PostgreSQL database per test, on TRIPGEN_TEST_POSTGRES's server or one the tests start."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.postgres import postgres_admin_dsn  # noqa: F401  (a fixture: `database` uses it)

SCHEMA = """CREATE TABLE trips (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint NOT NULL,
                                destination text NOT NULL);
INSERT INTO trips (user_id, destination) SELECT g % 50, 'Seoul' FROM generate_series(1, 2500) AS g;"""


def admin(admin_dsn: str, sql: str) -> None:
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is not reachable ({err}): check TRIPGEN_TEST_POSTGRES, or unset it to let the tests start one")


@pytest.fixture
def database(postgres_admin_dsn: str) -> Iterator[str]:  # noqa: F811
    """The DSN of a new database holding a `trips` table of 2,500 rows; dropped afterwards."""
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin(postgres_admin_dsn, f"CREATE DATABASE {name}")
    dsn = psycopg.conninfo.make_conninfo(postgres_admin_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
    try:
        yield dsn
    finally:
        admin(postgres_admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def write(root: Path, tag: str, files: dict[str, str]) -> Path:
    """`files` ("expand/001_add.sql" -> SQL) under root/tag; returns root."""
    for relative, sql in files.items():
        path = root / tag / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
    return root
