"""A primary and its streaming hot standby for one test, started from the machine's PostgreSQL binaries."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from delivery.dr.replication import ReplicatedPair
from tests.postgres import server_state_dir


@pytest.fixture
def pair() -> Iterator[ReplicatedPair]:
    with server_state_dir() as state, ReplicatedPair(state) as started:
        yield started


def break_replication(pair: ReplicatedPair) -> None:
    """Cuts the standby off its primary: an empty primary_conninfo, reloaded, stops its WAL receiver."""
    with psycopg.connect(pair.standby_dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
        conn.execute("SELECT pg_reload_conf()")
