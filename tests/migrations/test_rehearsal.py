"""The throwaway run (R-DB-3): the chain on copies of the schema; a down that does not undo expand is caught."""

from __future__ import annotations

from delivery.migrations.bundle import MigrationBundle
from delivery.migrations.rehearsal import rehearse, schema_of
from tests.migrations.conftest import write
from tests.migrations.test_runner import LIMITS, V120, columns


def test_a_sound_chain_rehearses_clean_and_leaves_the_database_alone(database, tmp_path):
    before = schema_of(database)
    result = rehearse(database, MigrationBundle.load(write(tmp_path, "v1.2.0", V120), "v1.2.0"), LIMITS)
    assert result.passed, result.problems
    assert result.ran == ["expand: 1 file(s)", "backfill: 1 file(s)", "contract: 1 file(s)", "expand: 1 file(s)", "down: 1 file(s)"]
    assert schema_of(database) == before and "ai_confidence_score" not in columns(database)


def test_a_down_that_leaves_expand_behind_is_a_problem(database, tmp_path):
    files = {**V120, "down/001_drop_score.sql": "SELECT 1;\n"}
    result = rehearse(database, MigrationBundle.load(write(tmp_path, "v1.2.0", files), "v1.2.0"), LIMITS)
    (problem,) = result.problems
    assert problem.startswith("down does not restore the schema:") and "+    ai_confidence_score numeric(3,2)" in problem, problem


def test_a_failing_contract_is_a_problem_naming_its_file(database, tmp_path):
    files = {**V120, "contract/001_score_not_null.sql": "ALTER TABLE trips ALTER COLUMN no_such SET NOT NULL;\n"}
    result = rehearse(database, MigrationBundle.load(write(tmp_path, "v1.2.0", files), "v1.2.0"), LIMITS)
    assert [p for p in result.problems if p.startswith("contract: ") and "001_score_not_null.sql" in p
            and 'column "no_such" of relation "trips" does not exist' in p], result.problems
