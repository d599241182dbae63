"""The `database migrations` gate: none shipped passes; blocking lint, a failed rehearsal or no database stop it."""

from __future__ import annotations

from delivery.migrations.gate import check_database_migrations
from delivery.policy.models import DatabaseMigrationsGate
from tests.migrations.conftest import write
from tests.migrations.test_runner import V120

GATE = DatabaseMigrationsGate()


def unasked() -> str:
    raise AssertionError("the database is asked for only when there are migrations to rehearse")


def test_a_tag_without_migrations_passes_without_a_database(tmp_path):
    result = check_database_migrations(GATE, "v1.1.0", tmp_path, unasked)
    assert result.verdict == "passed" and "ships none" in result.summary


def test_lint_clean_files_that_rehearse_pass(database, tmp_path):
    write(tmp_path / "migrations", "v1.2.0", V120)
    result = check_database_migrations(GATE, "v1.2.0", tmp_path, lambda: database)
    assert result.verdict == "passed", result.summary
    assert {"rehearsal": "down: 1 file(s)"} in result.rows


def test_a_drop_column_in_expand_fails_naming_file_line_and_rule_before_any_database(tmp_path):
    write(tmp_path / "migrations", "v1.2.0", {**V120, "expand/001_add_score.sql": "-- tidy\nALTER TABLE trips DROP COLUMN destination;\n"})
    result = check_database_migrations(GATE, "v1.2.0", tmp_path, unasked)
    assert result.verdict == "failed" and result.required
    assert "v1.2.0/expand/001_add_score.sql:2: ban-drop-column" in result.summary, result.summary


def test_without_a_database_there_is_no_verdict_and_the_variable_is_named(tmp_path):
    write(tmp_path / "migrations", "v1.2.0", V120)
    result = check_database_migrations(GATE, "v1.2.0", tmp_path, lambda: None)
    assert result.verdict == "error" and "set TRIPGEN_DATABASE_URL" in result.summary


def test_a_down_that_does_not_undo_expand_fails_the_gate(database, tmp_path):
    write(tmp_path / "migrations", "v1.2.0", {**V120, "down/001_drop_score.sql": "SELECT 1;\n"})
    result = check_database_migrations(GATE, "v1.2.0", tmp_path, lambda: database)
    assert result.verdict == "failed" and "down does not restore the schema" in result.summary
