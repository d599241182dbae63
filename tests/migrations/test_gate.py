"""The `database migrations` gate: none shipped passes; blocking lint, an edited applied file, a failed rehearsal
(the old color or the version itself left without its columns) or no database stop it."""

from __future__ import annotations

from delivery.migrations.bundle import MigrationBundle, Phase
from delivery.migrations.gate import check_database_migrations, limits_of
from delivery.migrations.runner import MigrationRunner
from delivery.policy.models import DatabaseMigrationsGate
from tests.migrations.conftest import write
from tests.migrations.test_runner import V120

GATE = DatabaseMigrationsGate()
NEEDS = "trips: [id, user_id, destination, ai_confidence_score]\n"


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


def test_a_syntax_error_fails_naming_file_line_and_rule_before_any_database(tmp_path):
    write(tmp_path / "migrations", "v1.2.0", {**V120, "backfill/001_score.sql": "UPDATE trips SET\n  ai_confidence_score = 0.5 WHER id = 1;\n"})
    result = check_database_migrations(GATE, "v1.2.0", tmp_path, unasked)
    assert result.verdict == "failed"
    assert "v1.2.0/backfill/001_score.sql:2: syntax-error" in result.summary, result.summary


def test_an_applied_file_edited_since_fails_naming_the_file_and_the_line(database, tmp_path):
    root = write(tmp_path / "migrations", "v1.2.0", V120)
    MigrationRunner(database, limits_of(GATE), log=lambda _: None).run(MigrationBundle.load(root, "v1.2.0"), Phase.EXPAND)
    write(root, "v1.2.0", {"expand/001_add_score.sql": "-- widened\nALTER TABLE trips ADD COLUMN IF NOT EXISTS ai_confidence_score DECIMAL(4,2);\n"})
    result = check_database_migrations(GATE, "v1.2.0", tmp_path, lambda: database)
    assert result.verdict == "failed", result.summary
    assert "v1.2.0/expand/001_add_score.sql: line 1: applied with checksum" in result.summary, result.summary


def test_a_contract_that_breaks_its_own_version_fails_the_gate(database, tmp_path):
    """After contract this version is the next release's old color (its rollback target): it must keep working."""
    write(tmp_path / "migrations", "v1.2.0", {**V120, "needs.yaml": NEEDS,
                                             "contract/002_drop_destination.sql": "ALTER TABLE trips DROP COLUMN destination;\n"})
    result = check_database_migrations(GATE, "v1.2.0", tmp_path, lambda: database)
    assert result.verdict == "failed", result.summary
    assert "contract: trips.destination is missing, which v1.2.0 needs" in result.summary, result.summary


def test_an_expand_that_takes_a_column_from_the_old_color_fails_the_gate(database, tmp_path):
    """squawk cannot see inside a DO block; the rehearsal compares the columns before and after."""
    hidden = "DO $$ BEGIN EXECUTE 'ALTER TABLE trips DROP COLUMN destination'; END $$;\n"
    write(tmp_path / "migrations", "v1.2.0", {**V120, "expand/002_tidy.sql": hidden})
    result = check_database_migrations(GATE, "v1.2.0", tmp_path, lambda: database)
    assert result.verdict == "failed", result.summary
    assert "expand: trips.destination is gone — the old color still reads it" in result.summary, result.summary


def test_a_version_whose_schema_is_missing_fails_even_without_migrations(database, tmp_path):
    write(tmp_path / "migrations", "v1.2.0", {"needs.yaml": NEEDS})
    result = check_database_migrations(GATE, "v1.2.0", tmp_path, lambda: database)
    assert result.verdict == "failed" and "trips.ai_confidence_score is missing" in result.summary, result.summary


def test_an_earlier_tags_pending_contract_is_rehearsed_first(database, tmp_path):
    """With `contract: next_release`, v1.2.0's contract runs at the start of the next release: its rehearsal too."""
    root = write(tmp_path / "migrations", "v1.2.0", {**V120, "needs.yaml": NEEDS})
    runner = MigrationRunner(database, limits_of(GATE), log=lambda _: None)
    for phase in (Phase.EXPAND, Phase.BACKFILL):
        runner.run(MigrationBundle.load(root, "v1.2.0"), phase)
    write(root, "v1.3.0", {"expand/001_share.sql": "ALTER TABLE trips ADD COLUMN share_token text;\n",
                           "down/001_share.sql": "ALTER TABLE trips DROP COLUMN IF EXISTS share_token;\n"})
    result = check_database_migrations(GATE, "v1.3.0", tmp_path, lambda: database)
    assert result.verdict == "passed", result.summary
    assert [r["rehearsal"] for r in result.rows if "rehearsal" in r][0] == "v1.2.0 contract: 1 file(s)"
    write(root, "v1.2.0", {"contract/002_drop_destination.sql": "ALTER TABLE trips DROP COLUMN destination;\n"})
    failed = check_database_migrations(GATE, "v1.3.0", tmp_path, lambda: database)
    assert failed.verdict == "failed", failed.summary
    assert "v1.2.0 contract: trips.destination is missing, which v1.2.0 needs" in failed.summary, failed.summary
