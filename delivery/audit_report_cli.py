"""`tripgen-release audit report`: the monthly compliance report (R-AUDIT) as PDF or CSV."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from delivery.audit_report import Month, build_report, write_csv
from delivery.audit_report_pdf import write_pdf
from delivery.settings import Settings


def _month(ctx: click.Context, param: click.Parameter, value: str) -> Month:
    try:
        return Month.parse(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx, param) from None


@click.command("report")
@click.option("--month", required=True, callback=_month, help="The UTC month to report, YYYY-MM (e.g. 2026-11).")
@click.option("--format", "form", type=click.Choice(["pdf", "csv"]), default="pdf", show_default=True)
@click.option("--audit-log", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=lambda: Settings().audit_log,
              show_default="$TRIPGEN_AUDIT_LOG or audit/audit.jsonl", help="The hash-chained audit log to read.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write it (default: audit-report-MONTH.FORMAT).")
def report(month: Month, form: str, audit_log: Path, out: Path | None) -> None:
    """Write MONTH's compliance report: every release with its approvers, gates, switches and rollbacks,
    the overrides, and the chain's verification and head; exit 1 if the chain is broken (the report is still written)."""
    found = build_report(audit_log, month)
    out = out or Path(f"audit-report-{month}.{form}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if form == "pdf":
        write_pdf(found, out, generated=datetime.now(timezone.utc))
    else:
        with out.open("w", newline="", encoding="utf-8") as handle:
            write_csv(found, handle)
    click.echo(f"{out}: {len(found.runs)} run(s), {len(found.events)} event(s) of {month}; chain "
               + ("intact" if found.verification.intact else f"BROKEN at line {found.verification.broken_line}"))
    if not found.verification.intact:
        raise SystemExit(1)
