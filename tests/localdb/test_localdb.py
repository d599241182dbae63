"""LocalPostgres with the machine's PostgreSQL binaries: one server per state dir, reused while it runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from delivery.localdb import LocalPostgres, LocalPostgresError
from tests.postgres import server_state_dir


@pytest.fixture
def state() -> Iterator[Path]:
    with server_state_dir() as path:
        yield path


def databases(admin_dsn: str) -> set[str]:
    with psycopg.connect(admin_dsn, connect_timeout=10) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}


def test_a_server_starts_serves_is_reused_and_stops(state: Path) -> None:
    with LocalPostgres(state / "pg") as server:
        admin = server.dsn("postgres")
        assert admin.startswith("postgresql://postgres@127.0.0.1:")
        tripgen = server.create_database("tripgen")
        assert server.create_database("tripgen") == tripgen  # already there: no error
        with psycopg.connect(tripgen, connect_timeout=10) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("tripgen",)
        assert LocalPostgres(state / "pg").start() == admin  # the running server, not a second one
    assert not (state / "pg" / "data" / "postmaster.pid").exists()  # `pg_ctl -w stop` returned once it was down
    server.stop()  # not running: nothing to do

    with LocalPostgres(state / "pg") as again:  # the same data dir: no second initdb
        assert "tripgen" in databases(again.dsn("postgres"))


def test_a_dir_that_is_not_a_data_dir_fails_naming_initdb(state: Path) -> None:
    (state / "pg" / "data").mkdir(parents=True)
    (state / "pg" / "data" / "notes.txt").write_text("not PostgreSQL's")
    with pytest.raises(LocalPostgresError, match=r"(?s)`initdb .*` failed.*not empty"):
        LocalPostgres(state / "pg").start()


def test_a_server_that_does_not_start_fails_with_the_log_tail(state: Path) -> None:
    (state / "pg" / "data").mkdir(parents=True)
    (state / "pg" / "data" / "PG_VERSION").write_text("15\n")  # looks initialised, but has no configuration
    with pytest.raises(LocalPostgresError) as failure:
        LocalPostgres(state / "pg").start()
    message = str(failure.value)
    assert "`pg_ctl " in message and f"{state / 'pg' / 'postgres.log'} ends with:" in message
    assert "postgresql.conf" in message.split("ends with:")[1]
