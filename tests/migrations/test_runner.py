"""The migration runner on a real PostgreSQL: the ledger, idempotence, edited files, batches, down, timeouts, the lock."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest

from delivery.migrations.bundle import MigrationBundle, Phase
from delivery.migrations.runner import LEDGER, LOCK_KEY, Limits, MigrationError, MigrationRunner, edited_files
from tests.migrations.conftest import write
from tests.waiting import wait_until

LIMITS = Limits(lock_timeout=timedelta(seconds=2), statement_timeout=timedelta(seconds=30), batch_size=1000)
EXPAND = "ALTER TABLE trips ADD COLUMN IF NOT EXISTS ai_confidence_score DECIMAL(3,2);\n"
BACKFILL = """-- total: SELECT count(*) FROM trips WHERE ai_confidence_score IS NULL
UPDATE trips SET ai_confidence_score = 0.5
WHERE id IN (SELECT id FROM trips WHERE ai_confidence_score IS NULL
             LIMIT current_setting('tripgen.batch_size')::int);
"""
CONTRACT = "ALTER TABLE trips ALTER COLUMN ai_confidence_score SET NOT NULL;\n"
DOWN = "ALTER TABLE trips DROP COLUMN IF EXISTS ai_confidence_score;\n"
V120 = {"expand/001_add_score.sql": EXPAND, "backfill/001_score.sql": BACKFILL,
        "contract/001_score_not_null.sql": CONTRACT, "down/001_drop_score.sql": DOWN}


def columns(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT column_name, is_nullable FROM information_schema.columns "
                            "WHERE table_name = 'trips' ORDER BY ordinal_position").fetchall()
    return dict(rows)


def ledger(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass(%s)", (LEDGER,)).fetchone() == (None,):
            return []
        return conn.execute(f"SELECT version, phase FROM {LEDGER} ORDER BY version").fetchall()


def bundle(tmp_path, files=V120, tag="v1.2.0") -> MigrationBundle:
    return MigrationBundle.load(write(tmp_path / "migrations", tag, files), tag)


def test_the_phases_apply_once_each_and_are_recorded(database, tmp_path):
    runner, release = MigrationRunner(database, LIMITS, log=lambda _: None), bundle(tmp_path)
    seen = []
    assert [a.version for a in runner.run(release, Phase.EXPAND)] == ["v1.2.0/expand/001_add_score.sql"]
    (filled,) = runner.run(release, Phase.BACKFILL, progress=lambda f, batch, rows, total: seen.append((batch, rows, total)))
    runner.run(release, Phase.CONTRACT)
    assert filled.rows == 2500 and seen == [(1, 1000, 2500), (2, 2000, 2500), (3, 2500, 2500)]
    assert columns(database)["ai_confidence_score"] == "NO"
    assert runner.run(release, Phase.EXPAND) == [] and runner.run(release, Phase.BACKFILL) == []  # a rerun is a no-op
    assert [phase for _, phase in ledger(database)] == ["backfill", "contract", "expand"]


def test_an_applied_file_edited_since_is_refused_and_nothing_runs(database, tmp_path):
    runner = MigrationRunner(database, LIMITS, log=lambda _: None)
    runner.run(bundle(tmp_path), Phase.EXPAND)
    edited = bundle(tmp_path, {**V120, "expand/001_add_score.sql": EXPAND.replace("3,2", "4,2")})
    with pytest.raises(MigrationError, match=r"expand/001_add_score.sql: line 1: applied with checksum \w{12}, now \w{12}"):
        runner.run(edited, Phase.BACKFILL)
    assert edited_files(database, edited) and ledger(database) == [("v1.2.0/expand/001_add_score.sql", "expand")]


def test_down_restores_the_schema_and_forgets_expand_and_backfill(database, tmp_path):
    before, runner, release = columns(database), MigrationRunner(database, LIMITS, log=lambda _: None), bundle(tmp_path)
    runner.run(release, Phase.EXPAND)
    runner.run(release, Phase.BACKFILL)
    assert [a.version for a in runner.revert(release)] == ["v1.2.0/down/001_drop_score.sql"]
    assert columns(database) == before and ledger(database) == []
    assert runner.revert(release) == []  # nothing applied: nothing to undo


def test_down_is_refused_once_contract_ran(database, tmp_path):
    runner, release = MigrationRunner(database, LIMITS, log=lambda _: None), bundle(tmp_path)
    for phase in (Phase.EXPAND, Phase.BACKFILL, Phase.CONTRACT):
        runner.run(release, phase)
    with pytest.raises(MigrationError, match="contract is applied; down would not undo it"):
        runner.revert(release)


def test_a_backfill_that_ignores_the_batch_size_is_stopped(database, tmp_path):
    runner = MigrationRunner(database, LIMITS, log=lambda _: None)
    release = bundle(tmp_path, {**V120, "backfill/001_score.sql": "UPDATE trips SET ai_confidence_score = 0.5;\n"})
    runner.run(release, Phase.EXPAND)
    with pytest.raises(MigrationError, match="batch 1 changed 2500 rows, more than the batch size 1000"):
        runner.run(release, Phase.BACKFILL)


def test_a_failing_statement_names_the_file_and_line_and_rolls_its_file_back(database, tmp_path):
    broken = "ALTER TABLE trips ADD COLUMN a int;\nALTER TABLE trips ADD COLUMN b int;\nUPDATE trips SET nowhere = 1;\n"
    runner = MigrationRunner(database, LIMITS, log=lambda _: None)
    with pytest.raises(MigrationError, match=r'expand/001_add_score.sql: line 3: column "nowhere" of relation "trips" does not exist'):
        runner.run(bundle(tmp_path, {**V120, "expand/001_add_score.sql": broken}), Phase.EXPAND)
    assert "a" not in columns(database) and ledger(database) == []  # one transaction per file


def test_a_concurrent_index_runs_outside_a_transaction(database, tmp_path):
    files = {**V120, "expand/002_index.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS trips_user ON trips (user_id);\n"}
    MigrationRunner(database, LIMITS, log=lambda _: None).run(bundle(tmp_path, files), Phase.EXPAND)
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'trips_user'::regclass").fetchone() == (True,)


def test_a_lock_held_elsewhere_fails_the_file_after_lock_timeout(database, tmp_path):
    with psycopg.connect(database) as holder:
        holder.execute("LOCK TABLE trips IN ACCESS EXCLUSIVE MODE")  # the transaction stays open
        with pytest.raises(MigrationError, match="001_add_score.sql: canceling statement due to lock timeout"):
            MigrationRunner(database, LIMITS, log=lambda _: None).run(bundle(tmp_path), Phase.EXPAND)


def test_a_second_release_waits_for_the_migration_lock(database, tmp_path):
    said: list[str] = []
    runner, release = MigrationRunner(database, LIMITS, log=said.append), bundle(tmp_path)
    with psycopg.connect(database, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))  # another release is migrating
        worker = threading.Thread(target=runner.run, args=(release, Phase.EXPAND))
        worker.start()
        wait_until(lambda: "waiting for the migration lock" in " ".join(said), 30, "the runner to wait for the lock")
        assert ledger(database) == []
        other.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        worker.join(30)
    assert not worker.is_alive() and ledger(database) == [("v1.2.0/expand/001_add_score.sql", "expand")]


def test_connection_errors_never_show_the_password(database, tmp_path):
    dsn = psycopg.conninfo.make_conninfo(database, host="127.0.0.1", user="nobody", password="s3cret-pw")
    with pytest.raises(MigrationError) as raised:
        MigrationRunner(dsn, LIMITS, log=lambda _: None).run(bundle(tmp_path), Phase.EXPAND)
    assert "cannot connect" in str(raised.value) and "s3cret-pw" not in str(raised.value)


def test_two_releases_migrations_never_run_at_once(database, tmp_path):
    """Two runners (two releases' tags) started together: each file notes its start and end; they never interleave."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE steps (n bigint GENERATED ALWAYS AS IDENTITY, tag text, step text)")
    noted = "INSERT INTO steps (tag, step) VALUES ('{tag}', 'start'); SELECT pg_sleep(0.3); " \
            "INSERT INTO steps (tag, step) VALUES ('{tag}', 'end');\n"
    for tag in ("v1.2.0", "v1.3.0"):
        write(tmp_path, tag, {f"expand/00{n}_step.sql": noted.format(tag=tag) for n in (1, 2)} | {"down/001.sql": "SELECT 1;\n"})
    runners = [threading.Thread(target=MigrationRunner(database, LIMITS, log=lambda _: None).run,
                                args=(MigrationBundle.load(tmp_path, tag), Phase.EXPAND)) for tag in ("v1.2.0", "v1.3.0")]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(60)
    with psycopg.connect(database) as conn:
        steps = conn.execute("SELECT tag, step FROM steps ORDER BY n").fetchall()
    first, second = steps[0][0], steps[-1][0]
    assert first != second and steps == [(first, "start"), (first, "end")] * 2 + [(second, "start"), (second, "end")] * 2
