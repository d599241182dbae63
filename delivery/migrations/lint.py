"""A release's migrations linted by squawk (PostgreSQL migration linter): what breaks the old color blocks the release."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from delivery.migrations.bundle import MigrationBundle, Phase

# The migration runner sets lock_timeout and statement_timeout itself from the policy, so the files need not.
EXCLUDED = ("require-lock-timeout", "require-statement-timeout")
# Non-additive or table-locking changes: in expand they break the old color, which still serves traffic.
# (squawk flags adding-field-with-default on pg >= 11 only for a volatile default, which rewrites the table.)
EXPAND_BLOCKING = frozenset({
    "ban-drop-column", "renaming-column", "renaming-table", "ban-drop-table", "changing-column-type",
    "adding-required-field", "adding-not-nullable-field", "require-concurrent-index-creation",
    "constraint-missing-not-valid", "adding-field-with-default", "disallowed-unique-constraint", "ban-drop-not-null",
})
SYNTAX_ERROR = "syntax-error"


@dataclass(frozen=True)
class Finding:
    """One squawk finding at a 1-based line of a bundle file; `blocking` ones stop the release."""

    file: Path
    line: int
    rule: str
    message: str
    blocking: bool

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message}" + (" (blocks the release)" if self.blocking else "")


def _squawk() -> str:
    """The squawk binary next to this interpreter, else on PATH; RuntimeError when there is none."""
    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.is_file() else shutil.which("squawk")
    if found is None:
        raise RuntimeError("squawk not found: pip install squawk-cli")
    return found


def lint(bundle: MigrationBundle, pg_version: str = "15") -> list[Finding]:
    """Every file of `bundle` linted in one squawk run for `pg_version`, sorted by (file, line); RuntimeError when
    squawk fails (an exit code other than 0/1, or output that is not JSON)."""
    files = {f.path.resolve(): f for f in bundle.files()}
    if not files:  # squawk without paths would read stdin
        return []
    done = subprocess.run([_squawk(), "--reporter", "json", "--pg-version", pg_version, "--exclude", ",".join(EXCLUDED),
                           *map(str, files)], capture_output=True, text=True, timeout=120)
    failure = f"squawk failed (exit {done.returncode}): {done.stderr.strip()}"
    if done.returncode not in (0, 1):
        raise RuntimeError(failure)
    try:
        reported = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise RuntimeError(failure) from error
    findings = []
    for item in reported:
        source = files[Path(item["file"]).resolve()]
        rule = item["rule_name"]
        findings.append(Finding(source.path, item["line"] + 1, rule, item["message"],
                                rule == SYNTAX_ERROR or (source.phase is Phase.EXPAND and rule in EXPAND_BLOCKING)))
    return sorted(findings, key=lambda f: (f.file, f.line))
