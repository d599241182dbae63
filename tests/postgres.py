"""The PostgreSQL tests run against: TRIPGEN_TEST_POSTGRES if set, else a server the project starts (one per
xdist worker). A conftest that needs it imports the fixture: `from tests.postgres import postgres_admin_dsn`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from delivery.localdb import LocalPostgres


@contextmanager
def server_state_dir() -> Iterator[Path]:
    """A new dir the `postgres` user can enter, removed afterwards (pytest's tmp dirs are private to root, and
    as root the server runs as `postgres`)."""
    with tempfile.TemporaryDirectory(prefix="tripgen-postgres-") as name:
        os.chmod(name, 0o755)
        yield Path(name)


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """A DSN that may create and drop databases: TRIPGEN_TEST_POSTGRES, or a project-started server's."""
    if configured := os.environ.get("TRIPGEN_TEST_POSTGRES"):
        yield configured
        return
    with server_state_dir() as state, LocalPostgres(state) as server:
        yield server.dsn("postgres")
