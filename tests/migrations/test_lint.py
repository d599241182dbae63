"""The migration lint on real squawk: what blocks a release in expand, in any phase, and what is only reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery.migrations.bundle import MigrationBundle
from delivery.migrations.lint import Finding, lint

TAG = "v1.4.0"
ADDITIVE = "ALTER TABLE trips ADD COLUMN IF NOT EXISTS ai_confidence_score DECIMAL(3,2);\n"


def linted(root: Path, phase: str, sql: str, name: str = "001_change.sql") -> list[Finding]:
    """`sql` as `name` in `phase` of a bundle (with the down/ an expand needs), linted."""
    for folder, file, text in ((phase, name, sql), ("down", "001_undo.sql", "SELECT 1;\n")):
        (root / TAG / folder).mkdir(parents=True, exist_ok=True)
        (root / TAG / folder / file).write_text(text)
    return lint(MigrationBundle.load(root, TAG))


def only(findings: list[Finding], rule: str) -> Finding:
    """The single finding of `rule`."""
    matching = [f for f in findings if f.rule == rule]
    assert len(matching) == 1, findings
    return matching[0]


@pytest.mark.parametrize(("sql", "rule"), [
    ("ALTER TABLE trips RENAME COLUMN fare TO fare_cents;\n", "renaming-column"),
    ("ALTER TABLE trips ADD COLUMN IF NOT EXISTS rider_id BIGINT NOT NULL;\n", "adding-required-field"),
    ("ALTER TABLE trips ALTER COLUMN fare TYPE BIGINT;\n", "changing-column-type"),
    ("CREATE INDEX IF NOT EXISTS trips_rider ON trips (rider_id);\n", "require-concurrent-index-creation"),
])
def test_a_breaking_change_in_expand_blocks(tmp_path, sql, rule):
    finding = only(linted(tmp_path, "expand", sql), rule)
    assert (finding.file.name, finding.line, finding.blocking) == ("001_change.sql", 1, True)


def test_a_drop_column_in_expand_blocks_at_its_line(tmp_path):
    finding = only(linted(tmp_path, "expand", ADDITIVE + "ALTER TABLE trips DROP COLUMN IF EXISTS legacy_code;\n"),
                   "ban-drop-column")
    assert (finding.file.name, finding.line, finding.blocking) == ("001_change.sql", 2, True)
    assert str(finding) == f"{finding.file}:2: ban-drop-column: {finding.message} (blocks the release)"


def test_a_concurrent_index_in_expand_does_not_block(tmp_path):
    findings = linted(tmp_path, "expand", "CREATE INDEX CONCURRENTLY IF NOT EXISTS trips_rider ON trips (rider_id);\n")
    assert not [f for f in findings if f.blocking], findings


def test_a_syntax_error_blocks_in_contract(tmp_path):
    findings = linted(tmp_path, "contract", "SELECT 1;\nALTER TABL trips;\n", name="002_broken.sql")
    errors = [f for f in findings if f.rule == "syntax-error"]
    assert errors and all(f.blocking for f in errors), findings
    assert (errors[0].file.name, errors[0].line) == ("002_broken.sql", 2)


def test_a_drop_column_in_contract_is_reported_without_blocking(tmp_path):
    finding = only(linted(tmp_path, "contract", "ALTER TABLE trips DROP COLUMN IF EXISTS legacy_code;\n"),
                   "ban-drop-column")
    assert (finding.file.name, finding.line, finding.blocking) == ("001_change.sql", 1, False)
    assert not str(finding).endswith("(blocks the release)")


def test_an_additive_expand_has_no_blocking_finding(tmp_path):
    findings = linted(tmp_path, "expand", ADDITIVE)
    assert not [f for f in findings if f.blocking], findings


def test_timeout_rules_never_appear(tmp_path):
    findings = linted(tmp_path, "expand", ADDITIVE + "ALTER TABLE trips DROP COLUMN legacy_code;\n")
    assert findings and not {f.rule for f in findings} & {"require-lock-timeout", "require-statement-timeout"}


def test_a_missing_squawk_names_its_package(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="pip install squawk-cli"):
        linted(tmp_path, "expand", ADDITIVE)
