"""The demo's migrations (migrations/<tag>) on a real PostgreSQL seeded as the sandbox seeds it: the demo's chain,
each tag's down giving back the schema its expand started from, the gate's rehearsal, and no blocking squawk finding."""

from __future__ import annotations

from datetime import timedelta

import pytest

from delivery.migrations.bundle import MigrationBundle, Phase
from delivery.migrations.lint import lint
from delivery.migrations.rehearsal import rehearse, schema_of
from delivery.migrations.runner import Limits, MigrationRunner
from tests.conftest import REPO
from tests.postgres import postgres_admin_dsn  # noqa: F401  (fixtures)
from tests.sandbox.postgres_fixture import empty_database, execute, seeded_database  # noqa: F401

MIGRATIONS = REPO / "migrations"
TAGS = ["v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0-faulty", "v1.4.0"]
RELEASED_BEFORE = {"v1.2.0": [], "v1.3.0-faulty": ["v1.2.0"], "v1.4.0": ["v1.2.0"]}  # what each tag's migrations expect
LIMITS = Limits(lock_timeout=timedelta(seconds=5), statement_timeout=timedelta(minutes=1), batch_size=1000)
COLUMNS = ("SELECT table_name, column_name, is_nullable FROM information_schema.columns "
           "WHERE table_schema = 'public' AND table_name LIKE 'trips%' ORDER BY table_name, ordinal_position")


def bundle(tag: str) -> MigrationBundle:
    return MigrationBundle.load(MIGRATIONS, tag)


def release(runner: MigrationRunner, tag: str) -> list[tuple[int, int | None]]:
    """Expand, backfill and contract; the backfill's progress as (rows so far, total) per batch."""
    progress: list[tuple[int, int | None]] = []
    runner.run(bundle(tag), Phase.EXPAND)
    runner.run(bundle(tag), Phase.BACKFILL, progress=lambda _file, _batch, rows, total: progress.append((rows, total)))
    runner.run(bundle(tag), Phase.CONTRACT)
    return progress


def columns(dsn: str) -> dict[str, list[str]]:
    """table or view -> its columns, `name?` when nullable."""
    found: dict[str, list[str]] = {}
    for table, column, nullable in execute(dsn, COLUMNS):
        found.setdefault(table, []).append(column + ("?" if nullable == "YES" else ""))
    return found


def test_the_tags_are_there_and_squawk_finds_nothing_that_blocks():
    assert sorted(p.name for p in MIGRATIONS.iterdir()) == TAGS
    for tag in TAGS:
        assert [str(f) for f in lint(bundle(tag), "15") if f.blocking] == [], tag
    assert [tag for tag in TAGS if bundle(tag).empty] == ["v1.0.0", "v1.1.0"]


def test_the_demo_chain_runs_on_the_seeded_schema(seeded_database):
    runner = MigrationRunner(seeded_database, LIMITS, log=lambda _: None)
    assert release(runner, "v1.2.0") == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert columns(seeded_database) == {"trips": ["id", "user_id", "destination", "created_at", "ai_confidence_score"]}
    assert execute(seeded_database, "SELECT count(*) FROM trips WHERE ai_confidence_score = 0.5") == [(2500,)]

    faulty = bundle("v1.3.0-faulty")
    runner.run(faulty, Phase.EXPAND)
    assert "share_token?" in columns(seeded_database)["trips"]
    assert execute(seeded_database, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'trips_share_token_idx'::regclass") == [(True,)]
    runner.revert(faulty)
    assert "share_token?" not in columns(seeded_database)["trips"]

    assert release(runner, "v1.4.0") == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert columns(seeded_database) == {
        "trips": ["id?", "user_id?", "destination?", "ai_confidence_score?", "created_at?"],  # a view's columns
        "trips_v2": ["id", "user_id", "city", "country?", "ai_confidence_score", "created_at"],
    }
    assert execute(seeded_database, "SELECT table_type FROM information_schema.tables WHERE table_name = 'trips'") == [("VIEW",)]
    assert execute(seeded_database, "SELECT count(*), count(DISTINCT city), count(DISTINCT country) FROM trips_v2") == [(2500, 5, 2)]
    assert execute(seeded_database, "SELECT destination FROM trips WHERE id = 1") == [("Busan, South Korea",)]
    written = execute(seeded_database, "INSERT INTO trips (user_id, destination, ai_confidence_score) "
                                       "VALUES (7, 'Paris, France', 0.9) RETURNING id")
    assert execute(seeded_database, f"SELECT id, city, country FROM trips_v2 WHERE id = {written[0][0]}") == [(2501, "Paris", "France")]


@pytest.mark.parametrize("tag", ["v1.2.0", "v1.3.0-faulty", "v1.4.0"])
def test_down_gives_back_the_schema_expand_started_from(seeded_database, tag):
    runner = MigrationRunner(seeded_database, LIMITS, log=lambda _: None)
    for earlier in RELEASED_BEFORE[tag]:
        release(runner, earlier)
    before = schema_of(seeded_database)
    runner.run(bundle(tag), Phase.EXPAND)
    runner.run(bundle(tag), Phase.BACKFILL)
    assert schema_of(seeded_database) != before
    runner.revert(bundle(tag))
    assert schema_of(seeded_database) == before


@pytest.mark.parametrize("tag", ["v1.2.0", "v1.3.0-faulty", "v1.4.0"])
def test_the_gates_rehearsal_passes_from_the_schema_the_tags_before_left(seeded_database, tag):
    runner = MigrationRunner(seeded_database, LIMITS, log=lambda _: None)
    for earlier in RELEASED_BEFORE[tag]:
        release(runner, earlier)
    result = rehearse(seeded_database, bundle(tag), LIMITS)
    assert result.passed, result.problems
