"""The `database migrations` quality gate (R-DB-3): the tag's files linted by squawk, then rehearsed on
throwaway copies of the production schema, before the release touches staging."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from delivery.gates import GateResult, judged, no_verdict
from delivery.migrations.bundle import MigrationBundle, Phase
from delivery.migrations.lint import lint
from delivery.migrations.rehearsal import rehearse
from delivery.migrations.runner import Limits, MigrationError, edited_files, uncontracted_tags
from delivery.policy.models import DatabaseMigrationsGate
from delivery.reports.source import ReportSource, ReportSourceError, report_source

DATABASE_MIGRATIONS = "database migrations"
THRESHOLD = "no blocking squawk finding; expand → backfill → contract and expand → down pass on a schema copy"


def limits_of(gate: DatabaseMigrationsGate) -> Limits:
    return Limits(gate.lock_timeout, gate.statement_timeout, gate.batch_size)


def bundle_of(gate: DatabaseMigrationsGate, root: Path | ReportSource, tag: str) -> MigrationBundle:
    """The tag's migrations, at the gate's `report` path under `root` (a directory, or a container's copy);
    ValueError names a malformed entry."""
    directory = report_source(root).local_path(gate.report.format(tag=tag))
    return MigrationBundle.load(directory.parent, directory.name)


def pending_contracts(gate: DatabaseMigrationsGate, root: Path | ReportSource, dsn: str, tag: str) -> list[MigrationBundle]:
    """Earlier tags' bundles whose expand is applied and contract is not: the next release runs their contract first."""
    bundles = [bundle_of(gate, root, earlier) for earlier in uncontracted_tags(dsn, but=tag)]
    return [b for b in bundles if b.phases[Phase.CONTRACT]]


def check_database_migrations(gate: DatabaseMigrationsGate, tag: str, root: Path | ReportSource,
                              dsn: Callable[[], str | None]) -> GateResult:
    """Passed when the tag has no migrations, or they lint clean and rehearse; `dsn()` (asked only then) is None
    when no database is configured."""
    try:
        bundle = bundle_of(gate, root, tag)
    except ReportSourceError as err:
        return no_verdict(DATABASE_MIGRATIONS, gate, THRESHOLD, str(err))
    except ValueError as err:
        return judged(DATABASE_MIGRATIONS, gate, ok=False, measured="malformed", threshold=THRESHOLD,
                       summary=f"{DATABASE_MIGRATIONS}: {err}", rows=[{"problem": str(err)}])
    directory, where = bundle.directory, report_source(root).location(gate.report.format(tag=tag))
    if bundle.empty and not bundle.needs:
        return judged(DATABASE_MIGRATIONS, gate, ok=True, measured="none", threshold=THRESHOLD,
                       summary=f"{DATABASE_MIGRATIONS}: {tag} ships none ({where})", rows=[])
    findings = lint(bundle, gate.pg_version)
    rows = [{"file": str(f.file.relative_to(directory)), "line": f.line, "rule": f.rule, "message": f.message,
             "blocks": "yes" if f.blocking else "no"} for f in findings]
    blocking = [f for f in findings if f.blocking]
    if blocking:
        return judged(DATABASE_MIGRATIONS, gate, ok=False, measured=f"{len(blocking)} blocking finding(s)", threshold=THRESHOLD,
                       summary=f"{DATABASE_MIGRATIONS}: " + "; ".join(map(str, blocking)), rows=rows)
    if (database := dsn()) is None:
        return no_verdict(DATABASE_MIGRATIONS, gate, THRESHOLD, f"no database to rehearse on: set {gate.dsn_env}"
                           + (f" or the Prefect Secret block {gate.dsn_secret_block!r}" if gate.dsn_secret_block else ""))
    try:
        edited = edited_files(database, bundle)
        earlier = pending_contracts(gate, root, database, tag)
        rehearsal = rehearse(database, bundle, limits_of(gate), earlier) if not edited else None
    except (MigrationError, ValueError) as err:
        return no_verdict(DATABASE_MIGRATIONS, gate, THRESHOLD, f"the rehearsal could not run: {err}", rows=rows)
    if edited:
        return judged(DATABASE_MIGRATIONS, gate, ok=False, measured=f"{len(edited)} applied file(s) edited", threshold=THRESHOLD,
                       summary=f"{DATABASE_MIGRATIONS}: applied migrations were edited since: " + "; ".join(edited),
                       rows=rows + [{"problem": f"edited since applied: {e}"} for e in edited])
    rows += [{"rehearsal": step} for step in rehearsal.ran] + [{"problem": p} for p in rehearsal.problems]
    count = len(bundle.files())
    if not rehearsal.passed:
        return judged(DATABASE_MIGRATIONS, gate, ok=False, measured="rehearsal failed", threshold=THRESHOLD,
                       summary=f"{DATABASE_MIGRATIONS}: " + "; ".join(rehearsal.problems), rows=rows)
    return judged(DATABASE_MIGRATIONS, gate, ok=True, measured=f"{count} file(s)", threshold=THRESHOLD,
                   summary=f"{DATABASE_MIGRATIONS}: {count} file(s) lint clean and rehearse on a schema copy", rows=rows)
