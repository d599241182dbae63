"""A fresh PostgreSQL database per test on the server .ci/run starts (root over the Unix socket)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ADMIN_DSN = os.environ.get("TRIPGEN_TEST_POSTGRES", "postgresql://root@/postgres?host=/var/run/postgresql")
SCHEMA = """CREATE TABLE trips (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint NOT NULL,
                                destination text NOT NULL);
INSERT INTO trips (user_id, destination) SELECT g % 50, 'Seoul' FROM generate_series(1, 2500) AS g;"""


def admin(sql: str) -> None:
    try:
        with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN} ({err}): .ci/run starts it; locally run "
                    "`pg_ctlcluster 15 main start`, or set TRIPGEN_TEST_POSTGRES")


@pytest.fixture
def database() -> Iterator[str]:
    """The DSN of a new database holding a `trips` table of 2,500 rows; dropped afterwards."""
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin(f"CREATE DATABASE {name}")
    dsn = psycopg.conninfo.make_conninfo(ADMIN_DSN, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
    try:
        yield dsn
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def write(root: Path, tag: str, files: dict[str, str]) -> Path:
    """`files` ("expand/001_add.sql" -> SQL) under root/tag; returns root."""
    for relative, sql in files.items():
        path = root / tag / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
    return root
